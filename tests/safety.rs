//! Safety: what was found by attacking the programs. Nothing that is not a
//! lock is removed, a SIGKILL never lets a second holder in, a half-taken
//! set never wedges its caller, huge values are refused, a break never
//! removes a lock that was taken, and no signal leaves a file behind.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use lockutils::Record;
use lockutils::cli::testing as host;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::filelock::filelock_bin;
use crate::lockdir::lockdir_bin;
use crate::util::{Scratch, age, holding, paused_at, stderr_lines, wait_until};

fn lockdir(s: &Scratch) -> Command {
    let mut cmd = Command::new(lockdir_bin());
    cmd.current_dir(s.dir.path());
    cmd
}

fn filelock(s: &Scratch) -> Command {
    let mut cmd = Command::new(filelock_bin());
    cmd.current_dir(s.dir.path());
    cmd
}

/// A directory of somebody's data, an hour old.
fn precious(s: &Scratch) -> PathBuf {
    let p = s.path("precious");
    fs::create_dir_all(p.join("sub")).unwrap();
    fs::write(p.join("data.txt"), "important").unwrap();
    fs::write(p.join("sub/more"), "also").unwrap();
    age(&p, 3600);
    p
}

fn intact(p: &Path) {
    assert_eq!(fs::read(p.join("data.txt")).unwrap(), b"important");
    assert_eq!(fs::read(p.join("sub/more")).unwrap(), b"also");
}

#[test]
fn a_directory_of_data_survives_lockdir_at_any_age() {
    let s = Scratch::new();
    let p = precious(&s);
    for args in [
        &["-r", "0", "precious"][..],
        &["-r", "1", "-i", "0", "--grace", "0.1", "precious"],
        &["-u", "precious"],
        &["-u", "--force", "precious"],
        &["-c", "precious"],
        &["precious", "true"],
    ] {
        let out = lockdir(&s).args(args).output().unwrap();
        let lines = stderr_lines(&out);
        let code = out.status.code();
        if args == ["-c", "precious"] {
            assert_eq!(code, Some(1), "{args:?}: {out:?}");
        } else {
            assert_eq!(code, Some(5), "{args:?}: {out:?}");
            assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
            assert!(
                lines[0].starts_with("lockdir: precious: holds ")
                    && lines[0].ends_with("not a lock directory, left alone"),
                "{args:?}: {lines:?}"
            );
        }
        intact(&p);
    }
    // An empty directory just as old is an abandoned lock, and is taken.
    fs::create_dir(s.path("abandoned")).unwrap();
    age(&s.path("abandoned"), 3600);
    s.expect(lockdir(&s).args(["-r", "0", "--pid", "1", "abandoned"]), 0);
    assert!(s.path("abandoned/owner").exists());
    intact(&p);
}

#[test]
fn sigkill_of_lockdir_in_command_mode_lets_nobody_in_while_the_command_lives() {
    let s = Scratch::new();
    let (mut holder, child) = holding(&s, lockdir(&s), "L.d");
    wait_until("the command in the record", Duration::from_secs(10), || {
        fs::read(s.path("L.d/owner")).is_ok_and(|r| Record::parse(&r).child == Some(child as u32))
    });
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL).unwrap();
    holder.wait().unwrap();
    s.expect(
        lockdir(&s).args(["-r", "2", "-i", "0.1", "--pid", "1", "L.d"]),
        4,
    );
    s.expect(lockdir(&s).args(["-c", "L.d"]), 0);
    kill(Pid::from_raw(child), Signal::SIGKILL).unwrap();
    wait_until("the command to end", Duration::from_secs(10), || {
        host::liveness(child as u32) == host::Liveness::Gone
    });
    s.expect(lockdir(&s).args(["-r", "0", "--pid", "1", "L.d"]), 0);
}

#[test]
fn a_filelock_killed_half_way_leaves_nothing_that_blocks_its_shell() {
    let s = Scratch::new();
    // B is held by a live process; filelock waits for it with A taken.
    let (mut b_holder, _) = holding(&s, s.dotlock(), "B");
    let script = r#"
        "$FILELOCK" -r -1 -s 0.1 A B & pid=$!
        i=0; while [ ! -e A ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done
        kill -9 $pid; wait $pid
        "$FILELOCK" -r 0 A || exit 9
        "$FILELOCK" -u A
    "#;
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(s.dir.path())
        .env("FILELOCK", filelock_bin())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let _ = kill(Pid::from_raw(b_holder.id() as i32), Signal::SIGTERM);
    b_holder.wait().unwrap();
    assert!(
        !s.path("A").exists() && !s.path("B").exists(),
        "{:?}",
        s.listing()
    );
}

#[test]
fn a_completed_set_names_the_calling_shell() {
    let s = Scratch::new();
    let out = s.expect(
        Command::new("sh")
            .args(["-c", r#""$FILELOCK" --no-keeper A B && echo $$"#])
            .current_dir(s.dir.path())
            .env("FILELOCK", filelock_bin()),
        0,
    );
    let shell: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    for name in ["A", "B"] {
        let r = Record::parse(&fs::read(s.path(name)).unwrap());
        assert_eq!(r.pid, Some(shell), "{name}: {r:?}");
    }
    assert!(s.leftovers().is_empty(), "{:?}", s.listing());
}

#[test]
fn huge_values_are_refused_in_one_line_never_a_panic() {
    let s = Scratch::new();
    let huge = "10000000000000000000";
    let lockfile = s.personality_link_to("lockfile", &filelock_bin());
    let cases: Vec<(Command, i32, &str)> = vec![
        (s.dotlock(), 5, "--timeout"),
        (s.dotlock(), 5, "-i"),
        (s.dotlock(), 5, "--stale-after"),
        (lockdir(&s), 5, "--timeout"),
        (lockdir(&s), 5, "-i"),
        (lockdir(&s), 5, "--grace"),
        (filelock(&s), 1, "-s"),
    ];
    for (mut cmd, code, flag) in cases {
        let out = s.expect(cmd.args(["-r", "0", flag, huge, "X"]), code);
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{flag}: {lines:?}");
        assert!(lines[0].contains("too large"), "{flag}: {lines:?}");
    }
    for args in [
        vec![format!("-{huge}"), "X".into()],
        vec!["-s".into(), "9223372036854775807".into(), "X".into()],
        vec!["-l".into(), "9223372036854775807".into(), "X".into()],
    ] {
        let out = s.expect(
            Command::new(&lockfile)
                .args(&args)
                .current_dir(s.dir.path()),
            64,
        );
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].contains("too large"), "{args:?}: {lines:?}");
    }
    // The longest accepted value works on a free lock.
    s.expect(
        s.dotlock()
            .args(["-r", "0", "--timeout", "3153600000", "Y"]),
        0,
    );
    assert!(s.path("Y").exists() && !s.path("X").exists());
}

#[test]
fn a_lock_named_like_a_break_lock_survives_breaking_its_namesake() {
    let s = Scratch::new();
    let live = Command::new("sleep").arg("60").spawn().unwrap();
    let mut live = scopeguard(live);
    // foo.break is somebody's live lock, 60 s old; foo is stale by age.
    let record = Record::for_holder(Some(live.0.id()), Some("sleep".into())).to_bytes();
    fs::write(s.path("foo.break"), &record).unwrap();
    age(&s.path("foo.break"), 60);
    fs::write(s.path("foo"), "0\n").unwrap();
    age(&s.path("foo"), 400);
    s.expect(s.dotlock().args(["-r", "1", "-i", "0", "foo"]), 4);
    assert_eq!(fs::read(s.path("foo.break")).unwrap(), record);
    // Even with its holder gone and long past the break lock's 30 s.
    let _ = live.0.kill();
    let _ = live.0.wait();
    s.expect(s.dotlock().args(["-r", "1", "-i", "0", "foo"]), 4);
    assert_eq!(fs::read(s.path("foo.break")).unwrap(), record);
    assert_eq!(fs::read(s.path("foo")).unwrap(), b"0\n");
}

/// Kills the child when dropped.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
fn scopeguard(c: Child) -> Guard {
    Guard(c)
}

#[test]
fn a_signal_during_an_attempt_leaves_no_temporary_file() {
    let s = Scratch::new();
    use Signal::*;
    let dotlock = [
        SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM,
    ];
    let filelock_sigs = [SIGTERM, SIGUSR2, SIGALRM];
    let cases = dotlock
        .iter()
        .map(|&sig| ("dotlock", sig))
        .chain(filelock_sigs.iter().map(|&sig| ("filelock", sig)));
    for (prog, sig) in cases {
        let mut cmd = if prog == "dotlock" {
            s.dotlock()
        } else {
            filelock(&s)
        };
        cmd.args(["-r", "0", "L"]);
        let gate = format!("gate-{prog}-{}", sig as i32);
        let (mut child, gate) = paused_at(&s, cmd, "IN_ATTEMPT", &gate);
        let temps = || -> Vec<String> {
            s.listing()
                .into_iter()
                .filter(|n| n.starts_with(".lk"))
                .collect()
        };
        assert_eq!(temps().len(), 1, "paused with its temporary file");
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        fs::write(&gate, "").unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(sig as i32),
            "{prog} {sig}: {status:?}"
        );
        assert!(temps().is_empty(), "{prog} {sig}: {:?}", s.listing());
        assert!(
            !s.path("L").exists(),
            "{prog} {sig}: the lock taken is released"
        );
        for f in [
            gate.clone(),
            PathBuf::from(format!("{}.reached", gate.display())),
        ] {
            fs::remove_file(f).unwrap();
        }
    }
}

#[test]
fn a_lock_taken_while_a_breaker_is_at_work_is_never_lost() {
    // Several rounds: the freed inode of a lock is soon another's, and a
    // round where it is must not let two holders in.
    for _ in 0..5 {
        breaker_and_third_never_overlap();
    }
}

fn breaker_and_third_never_overlap() {
    let s = Scratch::new();
    // The judged lock: no pid, older than the stale age.
    fs::write(s.path("L"), "0\n").unwrap();
    age(&s.path("L"), 400);
    // The breaker confirms it and pauses before the unlink.
    let mut breaker = s.dotlock();
    breaker.args([
        "-r",
        "50",
        "-i",
        "0.1",
        "L",
        "sh",
        "-c",
        "echo breaker >> log; sleep 0.3; echo breaker-done >> log",
    ]);
    let (breaker, gate) = paused_at(&s, breaker, "BEFORE_UNLINK", "gate");
    // Meanwhile the judged holder releases, and a third process locks.
    fs::remove_file(s.path("L")).unwrap();
    let mut third = s
        .dotlock()
        .args([
            "-r",
            "50",
            "-i",
            "0.1",
            "L",
            "sh",
            "-c",
            "echo third >> log; sleep 0.3; echo third-done >> log",
        ])
        .spawn()
        .unwrap();
    wait_until("the third process to link", Duration::from_secs(10), || {
        s.path("L").exists()
    });
    // It must not be running its command: a break is in progress.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!s.path("log").exists(), "ran while a breaker was at work");
    fs::write(&gate, "").unwrap();
    let b = breaker.wait_with_output().unwrap();
    let t = third.wait().unwrap();
    assert_eq!(b.status.code(), Some(0), "{b:?}");
    assert_eq!(t.code(), Some(0));
    // One after the other, never both.
    let log = fs::read_to_string(s.path("log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines == ["breaker", "breaker-done", "third", "third-done"]
            || lines == ["third", "third-done", "breaker", "breaker-done"],
        "{lines:?}"
    );
    assert!(s.leftovers().is_empty(), "{:?}", s.listing());
    assert!(!s.path("L").exists());
}

#[test]
fn idle_waiters_create_nothing_while_the_holder_lives() {
    let s = Scratch::new();
    let (mut holder, _) = holding(&s, s.dotlock(), "L");
    // A waiter whose attempts create files would show up in strace; here,
    // count the creations in the directory with a dnotify-free probe: the
    // directory's mtime changes with every entry created or removed.
    let mtime = || fs::metadata(s.dir.path()).unwrap().modified().unwrap();
    let mut waiter = s
        .dotlock()
        .args(["-r", "-1", "-i", "0.05", "L"])
        .spawn()
        .unwrap();
    // The first attempt measures the filesystem's clock (one temp file).
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(400));
    let before = mtime();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(mtime(), before, "a waiter's attempts changed the directory");
    assert!(start.elapsed() < Duration::from_secs(25));
    let _ = kill(Pid::from_raw(holder.id() as i32), Signal::SIGTERM);
    holder.wait().unwrap();
    let status = waiter.wait().unwrap();
    assert!(status.success());
    assert!(s.leftovers().is_empty(), "{:?}", s.listing());
}
