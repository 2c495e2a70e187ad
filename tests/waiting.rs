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
        .shell(r#""$0" -p -r -1 --verbose L 2>err & echo $!; sleep 0.5"#)
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
    let script = r#"a=$(stat -c %Y.%y L); sleep 1; b=$(stat -c %Y.%y L); [ "$a" != "$b" ]"#;
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
