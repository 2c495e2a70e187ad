//! Waiting and holding over time: the parent watch of `-p`, and a holder
//! keeping its lock fresh while its command runs.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::util::Scratch;

/// `dotlock -p` (no command) waiting on a held lock; its parent shell exits.
/// It must notice at once and give up with 5, leaving nothing behind. The
/// test process becomes a subreaper so that it can collect the status.
#[test]
fn parent_death_ends_a_p_wait_promptly_with_5() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    let out = s
        // The shell exits once dotlock says it waits (however slowly it
        // started), at most after 10 s.
        .shell(
            r#""$0" -p -r -1 --verbose L 2>err & echo $!
            i=0; until grep -q 'waiting for' err 2>/dev/null || [ $i -ge 1000 ]; do sleep 0.01; i=$((i+1)); done"#,
        )
        .output()
        .unwrap();
    let died = Instant::now();
    let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let status = waitpid(Pid::from_raw(pid), None).unwrap();
    assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid), 5));
    assert!(
        died.elapsed() < Duration::from_secs(3),
        "took {:?}",
        died.elapsed()
    );
    let err = fs::read_to_string(s.path("err")).unwrap();
    assert!(err.contains("parent process died while waiting"), "{err}");
    assert_eq!(s.listing(), ["L", "err"]);
    assert_eq!(fs::read(s.path("L")).unwrap(), b"0\n");
}

/// With `--stale-after 0.6` the holder touches every 0.2 s: the lock's
/// mtime moves while the command runs.
#[test]
fn a_holder_keeps_its_lock_fresh() {
    let s = Scratch::new();
    // The record names the command (appended at the start, which is a
    // write too): measure from then on.
    let script = r#"until grep -q '^child=' L; do sleep 0.01; done
        a=$(stat -c %Y.%y L); sleep 1; b=$(stat -c %Y.%y L); [ "$a" != "$b" ]"#;
    s.expect(
        s.dotlock()
            .args(["--stale-after", "0.6", "L", "sh", "-c", script]),
        0,
    );
    // Without the touch, the same command sees no change.
    let s = Scratch::new();
    s.expect(s.dotlock().args(["L", "sh", "-c", script]), 1);
}

/// A waiter with the default schedule would sleep 5 s after its first
/// failure; `--timeout 1` cuts that sleep short and makes a last attempt,
/// which finds the lock released meanwhile.
#[test]
fn timeout_makes_a_last_attempt() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    let lock = s.path("L");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        fs::remove_file(lock).unwrap();
    });
    let start = Instant::now();
    s.expect(s.dotlock().args(["-r", "-1", "--timeout", "1", "L"]), 0);
    releaser.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
}

/// Start `cmd` (waiting on the held lock `L`) and return once it said so.
fn started_waiting(s: &Scratch, cmd: &mut std::process::Command) -> std::process::Child {
    let err = s.dir.path().with_extension("err");
    let child = cmd.stderr(fs::File::create(&err).unwrap()).spawn().unwrap();
    crate::util::wait_until("the waiting line", Duration::from_secs(10), || {
        fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("waiting for L")
    });
    child
}

/// The default schedule sleeps 5 s after the first failure; on a local
/// filesystem the waiter still takes the lock within a second of release.
#[test]
fn a_waiter_takes_the_lock_at_once_when_it_is_released() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    let mut waiter = started_waiting(&s, s.dotlock().args(["--verbose", "L"]));
    std::thread::sleep(Duration::from_millis(300));
    let released = Instant::now();
    fs::remove_file(s.path("L")).unwrap();
    assert!(waiter.wait().unwrap().success());
    let took = released.elapsed();
    assert!(took < Duration::from_secs(1), "hand-over took {took:?}");
    assert_ne!(fs::read(s.path("L")).unwrap(), b"0\n", "the waiter's lock");
}

/// CPU time (user + system, in clock ticks) of a live process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A waiter sleeps in poll(2): 3 s of waiting cost (almost) no CPU.
#[test]
fn a_waiter_does_not_spin() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    for args in [
        &["--verbose", "-r", "-1", "L"][..],
        &["--verbose", "-r", "-1", "-i", "0.5", "L"],
    ] {
        let mut waiter = started_waiting(&s, s.dotlock().args(args));
        let before = cpu_ticks(waiter.id());
        std::thread::sleep(Duration::from_secs(3));
        let spent = cpu_ticks(waiter.id()) - before;
        waiter.kill().unwrap();
        waiter.wait().unwrap();
        // A spinning waiter would spend ~300 ticks (at 100 Hz) in 3 s.
        assert!(
            spent <= 5,
            "{args:?}: {spent} ticks of CPU while waiting 3 s"
        );
    }
}

/// As `dotlockfile`, the legacy timing stays: no early wake, the next
/// attempt comes after the full 5 s sleep.
#[test]
fn dotlockfile_personality_keeps_legacy_timing() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    let start = Instant::now();
    let mut waiter = s.as_dotlockfile().args(["-r", "1", "L"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fs::remove_file(s.path("L")).unwrap();
    assert!(waiter.wait().unwrap().success());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(4900),
        "woke early after {took:?}"
    );
}

/// The lost wake-up: a waiter links the lock while a breaker holds
/// `L.break` (the breaker judged the previous lock dead, and that lock was
/// released meanwhile). The waiter must not use its lock until the break
/// is over, and must claim it the moment the break lock goes — not at its
/// next counted attempt, 5 s later on the default schedule.
#[test]
fn a_lock_linked_during_a_break_is_claimed_when_the_break_ends() {
    use crate::util::{age, paused_at, wait_until};
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    age(&s.path("L"), 400);
    let mut breaker = s.dotlock();
    breaker.args(["-r", "5", "L", "sh", "-c", "echo breaker >> log"]);
    let (mut breaker, gate) = paused_at(&s, breaker, "BREAK_HELD", "gate");
    // The judged lock is released; a waiter links the free name. The
    // breaker, let go, finds the lock changed and ends its break.
    fs::remove_file(s.path("L")).unwrap();
    let mut waiter = s
        .dotlock()
        .args(["L", "sh", "-c", "echo waiter >> log"])
        .spawn()
        .unwrap();
    wait_until("the waiter's link", Duration::from_secs(10), || {
        fs::read_to_string(s.path("L")).is_ok_and(|r| r.starts_with(&format!("{}\n", waiter.id())))
    });
    // Asleep on its schedule, waiting for the break to end.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!s.path("log").exists(), "used its lock during a break");
    let opened = Instant::now();
    fs::write(&gate, "").unwrap();
    assert!(waiter.wait().unwrap().success());
    let took = opened.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "claimed {took:?} after the break"
    );
    assert!(breaker.wait().unwrap().success());
    let log = fs::read_to_string(s.path("log")).unwrap();
    assert!(
        log == "waiter\nbreaker\n" || log == "breaker\nwaiter\n",
        "{log:?}"
    );
}

/// A waiter in a busy directory (a spool, `/var/lock`): once the others'
/// comings and goings outnumber changes of its lock, it watches the lock
/// itself (an inotify watch shows in its descriptors) instead of the
/// directory, and still takes the lock the moment it is released.
#[test]
fn a_waiter_in_a_busy_directory_watches_the_lock_itself() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    let mut waiter = started_waiting(&s, s.dotlock().args(["--verbose", "L"]));
    let pid = waiter.id();
    let watches_inode = || {
        fs::read_dir(format!("/proc/{pid}/fdinfo"))
            .unwrap()
            .any(|e| fs::read_to_string(e.unwrap().path()).is_ok_and(|i| i.contains("inotify wd:")))
    };
    assert!(!watches_inode(), "a quiet directory needs no inotify watch");
    let mut churned = 0;
    crate::util::wait_until("an inotify watch", Duration::from_secs(20), || {
        let other = s.path(format!("other{churned}"));
        fs::write(&other, "").unwrap();
        fs::remove_file(&other).unwrap();
        churned += 1;
        std::thread::sleep(Duration::from_millis(2));
        watches_inode()
    });
    assert!(churned > 16, "moved after {churned} unrelated changes");
    std::thread::sleep(Duration::from_millis(200));
    let released = Instant::now();
    fs::remove_file(s.path("L")).unwrap();
    assert!(waiter.wait().unwrap().success());
    let took = released.elapsed();
    assert!(took < Duration::from_secs(1), "hand-over took {took:?}");
}
