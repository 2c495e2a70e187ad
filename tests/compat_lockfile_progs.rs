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

use crate::util::{
    LOCKFILE_PROGS, Scratch, age, assert_no_differences, real_tools_dir, skip, wait_until,
};

/// The real tools, if installed.
fn real() -> Option<PathBuf> {
    real_tools_dir(&LOCKFILE_PROGS, "lockfile-progs")
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
            "remove of a directory at the lock path",
            |s| fs::create_dir(s.path("d.lock")).unwrap(),
            &[&["lockfile-remove", "d"]],
        ),
        (
            "remove -q of a directory at the lock path",
            |s| fs::create_dir(s.path("d.lock")).unwrap(),
            &[&["lockfile-remove", "-q", "d"]],
        ),
        (
            "remove where the directory is a file",
            |s| fs::write(s.path("file"), "").unwrap(),
            &[&["lockfile-remove", "file/f"]],
        ),
        (
            "remove in a missing directory",
            none,
            &[&["lockfile-remove", "nodir/f"]],
        ),
        // Retry counts as sscanf("%d") reads them.
        ("-r 3x", none, &[&["lockfile-create", "-r", "3x", "f"]]),
        ("-r +5", none, &[&["lockfile-create", "-r", "+5", "f"]]),
        ("-r 1e30", none, &[&["lockfile-create", "-r", "1e30", "f"]]),
        (
            "-r 4294967295: no attempt",
            none,
            &[&["lockfile-create", "-r", "4294967295", "f"]],
        ),
        (
            "-r 4294967296 on a held lock: one attempt",
            none,
            &[
                &["lockfile-create", "f"],
                &["lockfile-create", "-r", "4294967296", "f"],
            ],
        ),
        (
            "-r 99999999999999999999: no attempt",
            none,
            &[&["lockfile-create", "-r", "99999999999999999999", "f"]],
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

/// `lockfile-remove` on a read-only filesystem fails as lockfile-progs
/// does (255, its line); without permission it fails too, where
/// lockfile-progs exits 0 having removed nothing (an intended difference).
#[test]
fn a_removal_that_fails_is_reported() {
    let Some(real_bin) = real() else { return };
    if !crate::util::is_root() {
        return skip("mounting and acting as nobody need root");
    }
    let remove = |bin: &Path, s: &Scratch, lock: &str, nobody: bool| {
        let mut cmd = Command::new(bin.join("lockfile-remove"));
        cmd.arg(lock).current_dir(s.dir.path());
        if nobody {
            crate::util::as_nobody(&mut cmd);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Read-only: a tmpfs with a lock in it, remounted read-only.
    let mut seen = Vec::new();
    for bin in [real_bin.clone(), ours(&Scratch::new())] {
        let s = Scratch::new();
        let mnt = s.path("mnt");
        fs::create_dir(&mnt).unwrap();
        let mount = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .arg(&mnt)
                .status()
                .is_ok_and(|st| st.success())
        };
        assert!(mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"]), "mount");
        fs::write(mnt.join("f.lock"), "0\n").unwrap();
        assert!(mount(&["-o", "remount,ro"]), "remount read-only");
        let got = remove(&bin, &s, "mnt/f", false);
        let still = mnt.join("f.lock").exists();
        let _ = Command::new("umount").arg(&mnt).status();
        seen.push((got, still));
    }
    assert_eq!(seen[0], seen[1], "read-only: lockfile-progs, then ours");
    assert_eq!(seen[1].0.0, Some(255));
    assert_eq!(
        seen[1].0.1,
        "lockfile removal failed: Read-only file system\n"
    );

    // Without permission: lockfile-progs says nothing and exits 0.
    let s = Scratch::new();
    let dir = crate::util::read_only_dir(&s, "ro");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("f.lock"), "0\n").unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    assert_eq!(
        remove(&real_bin, &s, "ro/f", true),
        (Some(0), String::new())
    );
    assert_eq!(
        remove(&ours(&s), &s, "ro/f", true),
        (
            Some(255),
            "lockfile removal failed: Permission denied\n".to_string()
        )
    );
    assert!(dir.join("f.lock").exists());
}

/// `mail-unlock` removes the caller's mailbox lock through the same path:
/// a directory there is reported as lockfile-progs reports it, and left.
#[test]
fn mail_unlock_of_a_directory_is_reported_as_lockfile_progs_does() {
    let Some(real_bin) = real() else { return };
    if !crate::util::is_root() {
        return skip("the mailbox lock of root is in /var/mail");
    }
    let lock = Path::new("/var/mail/root.lock");
    // Somebody's lock there is left alone (not a missing prerequisite: the
    // test just cannot run without touching it).
    if fs::symlink_metadata(lock).is_ok() {
        eprintln!("SKIPPED: /var/mail/root.lock exists and is not ours to touch");
        return;
    }
    let mut seen = Vec::new();
    for bin in [real_bin, ours(&Scratch::new())] {
        fs::create_dir(lock).unwrap();
        let out = Command::new(bin.join("mail-unlock")).output().unwrap();
        let still = lock.is_dir();
        let _ = fs::remove_dir(lock);
        seen.push((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            still,
        ));
    }
    assert_eq!(seen[0], seen[1], "lockfile-progs, then ours");
    assert_eq!(seen[1].0, Some(255));
}
