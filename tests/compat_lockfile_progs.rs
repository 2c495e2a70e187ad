//! Side by side with Debian's lockfile-progs 0.1.19: each scenario runs
//! once through the real tools and once through `dotlock` invoked under
//! their names, each in a fresh directory, and must give the same exit
//! code, stderr, lock content and mode, and files afterwards. The fixed
//! bugs are tested apart, as intended differences.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{LOCKFILE_PROGS, Scratch, age, assert_no_differences, skip, wait_until};

/// The real tools, if installed.
fn real() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/lockfile-create");
    if p.exists() {
        Some(PathBuf::from("/usr/bin"))
    } else {
        skip("lockfile-progs is not installed (apt-get install lockfile-progs)");
        None
    }
}

/// Where our tools of those names are: symlinks to dotlock.
fn ours(s: &Scratch) -> PathBuf {
    let links: Vec<PathBuf> = LOCKFILE_PROGS
        .iter()
        .map(|n| s.personality_link(n))
        .collect();
    links[0].parent().unwrap().to_path_buf()
}

/// What a scenario leaves.
#[derive(Debug, PartialEq)]
struct Seen {
    code: Option<i32>,
    stderr: String,
    locks: Vec<(String, Vec<u8>, u32)>,
    listing: Vec<String>,
}

/// Run `steps` (`TOOL ARGS…`) in `s` with the tools in `bin`; the last
/// step is judged.
fn run(s: &Scratch, bin: &Path, setup: fn(&Scratch), steps: &[&[&str]]) -> Seen {
    setup(s);
    let mut last: Option<Output> = None;
    for step in steps {
        let out = Command::new(bin.join(step[0]))
            .args(&step[1..])
            .current_dir(s.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        last = Some(out);
    }
    let out = last.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", bin.display()), "");
    let mut locks = Vec::new();
    for entry in fs::read_dir(s.dir.path()).unwrap().flatten() {
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_file() {
            locks.push((
                entry.file_name().to_string_lossy().into_owned(),
                fs::read(entry.path()).unwrap(),
                meta.permissions().mode() & 0o7777,
            ));
        }
    }
    locks.sort();
    Seen {
        code: out.status.code(),
        stderr,
        locks,
        listing: s.listing(),
    }
}

fn none(_: &Scratch) {}

#[test]
fn the_same_as_lockfile_progs() {
    let Some(real_bin) = real() else { return };
    type Steps = &'static [&'static [&'static str]];
    type Scenario = (&'static str, fn(&Scratch), Steps);
    let scenarios: Vec<Scenario> = vec![
        ("create", none, &[&["lockfile-create", "f"]]),
        ("create with -p", none, &[&["lockfile-create", "-p", "f"]]),
        (
            "double create with -r 0",
            none,
            &[
                &["lockfile-create", "f"],
                &["lockfile-create", "-r", "0", "f"],
            ],
        ),
        (
            "double create, quiet",
            none,
            &[
                &["lockfile-create", "f"],
                &["lockfile-create", "-q", "-r", "0", "f"],
            ],
        ),
        ("create -l", none, &[&["lockfile-create", "-l", "g"]]),
        (
            "create -r -1",
            none,
            &[&["lockfile-create", "-r", "-1", "f"]],
        ),
        (
            "remove",
            none,
            &[&["lockfile-create", "f"], &["lockfile-remove", "f"]],
        ),
        (
            "remove of a missing lock",
            none,
            &[&["lockfile-remove", "f"]],
        ),
        (
            "check of a held lock",
            none,
            &[&["lockfile-create", "f"], &["lockfile-check", "f"]],
        ),
        ("check of a missing lock", none, &[&["lockfile-check", "f"]]),
        (
            "check -p of a dead pid",
            |s| fs::write(s.path("f.lock"), "2147483646\n").unwrap(),
            &[&["lockfile-check", "-p", "f"]],
        ),
        (
            "check without -p of a dead pid",
            |s| fs::write(s.path("f.lock"), "2147483646\n").unwrap(),
            &[&["lockfile-check", "f"]],
        ),
        (
            "touch -o",
            none,
            &[&["lockfile-create", "f"], &["lockfile-touch", "-o", "f"]],
        ),
        (
            "touch -o of a missing lock",
            none,
            &[&["lockfile-touch", "-o", "f"]],
        ),
        (
            "missing directory",
            none,
            &[&["lockfile-create", "nodir/f"]],
        ),
        ("bad option", none, &[&["lockfile-create", "-x", "f"]]),
        (
            "unknown long option",
            none,
            &[&["lockfile-create", "--help"]],
        ),
        (
            "an option the tool does not take",
            none,
            &[&["lockfile-remove", "-p", "f"]],
        ),
        ("no argument", none, &[&["lockfile-create"]]),
        ("two files", none, &[&["lockfile-create", "f", "g"]]),
        (
            "bad retry count",
            none,
            &[&["lockfile-create", "-r", "x", "f"]],
        ),
        (
            "a directory at the lock path",
            |s| fs::create_dir(s.path("d.lock")).unwrap(),
            &[&["lockfile-create", "-r", "0", "d"]],
        ),
        (
            "mail-unlock with an argument",
            none,
            &[&["mail-unlock", "f"]],
        ),
    ];
    let mut differences = Vec::new();
    for (name, setup, steps) in scenarios {
        let (a, b) = (Scratch::new(), Scratch::new());
        let theirs = run(&a, &real_bin, setup, steps);
        let mine = run(&b, &ours(&b), setup, steps);
        if theirs != mine {
            differences.push(format!(
                "{name}:\n  lockfile-progs: {theirs:?}\n  ours:           {mine:?}"
            ));
        }
    }
    assert_no_differences(&differences);
}

/// `--retry 1`: one attempt more, after liblockfile's first 5 s step.
#[test]
fn retry_1_waits_one_five_second_step() {
    let Some(real_bin) = real() else { return };
    for bin in [real_bin, ours(&Scratch::new())] {
        let s = Scratch::new();
        fs::write(s.path("f.lock"), "0\n").unwrap();
        let start = Instant::now();
        let out = Command::new(bin.join("lockfile-create"))
            .args(["--retry", "1", "f"])
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(4), "{bin:?}");
        assert!(
            took >= Duration::from_millis(4800) && took < Duration::from_secs(8),
            "{bin:?}: {took:?}"
        );
    }
}

/// `lockfile-touch` without `-o` touches until killed, and a signal leaves
/// the lock, exit 0 — both tools.
#[test]
fn lockfile_touch_runs_until_killed_and_leaves_the_lock() {
    let Some(real_bin) = real() else { return };
    for bin in [real_bin, ours(&Scratch::new())] {
        let s = Scratch::new();
        fs::write(s.path("f.lock"), "0\n").unwrap();
        age(&s.path("f.lock"), 600);
        let mtime = || fs::metadata(s.path("f.lock")).unwrap().modified().unwrap();
        let old = mtime();
        let mut child = Command::new(bin.join("lockfile-touch"))
            .arg("f")
            .current_dir(s.dir.path())
            .spawn()
            .unwrap();
        wait_until("the first touch", Duration::from_secs(10), || mtime() > old);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "{bin:?}: {status:?} {:?}",
            status.signal()
        );
        assert!(s.path("f.lock").exists(), "{bin:?}: the lock is left");
        assert_eq!(s.listing(), ["f.lock"], "{bin:?}");
    }
}

/// Intended differences: the fixed bugs.
#[test]
fn a_ten_minute_old_lock_is_stale_unlike_lockfile_progs() {
    let Some(real_bin) = real() else { return };
    let check = |bin: &Path| {
        let s = Scratch::new();
        fs::write(s.path("f.lock"), "0\n").unwrap();
        age(&s.path("f.lock"), 600);
        Command::new(bin.join("lockfile-check"))
            .arg("f")
            .current_dir(s.dir.path())
            .status()
            .unwrap()
            .code()
    };
    // lockfile-progs judges "now" by the lock's atime and calls it valid.
    assert_eq!(check(&real_bin), Some(0));
    assert_eq!(check(&ours(&Scratch::new())), Some(255));
}

#[test]
fn a_live_pid_younger_than_its_lock_is_no_holder() {
    let Some(_) = real() else { return };
    let s = Scratch::new();
    let mut live = Command::new("sleep").arg("60").spawn().unwrap();
    fs::write(s.path("f.lock"), format!("{}\n", live.id())).unwrap();
    // The lock is an hour old; its pid's process started just now: the pid
    // was reused, the lock is stale.
    age(&s.path("f.lock"), 3600);
    let bin = ours(&s);
    let check = |args: &[&str]| {
        Command::new(bin.join("lockfile-check"))
            .args(args)
            .current_dir(s.dir.path())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(check(&["-p", "f"]), Some(255));
    // A lock younger than the process is held by it.
    fs::write(s.path("g.lock"), format!("{}\n", live.id())).unwrap();
    assert_eq!(check(&["-p", "g"]), Some(0));
    // The dotlockfile personality's -p follows the same rule.
    let out = s.expect(s.as_dotlockfile().args(["-p", "-c", "f.lock"]), 1);
    assert!(out.stderr.is_empty());
    let _ = live.kill();
    let _ = live.wait();
}
