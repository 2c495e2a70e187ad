//! Tests aimed at bugs the other tests would let through (found by breaking
//! the code on purpose): each fails if the behaviour it names is removed.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use lockutils::Record;

use crate::lockdir::lockdir_bin;
use crate::util::{Scratch, age, paused_at, stderr_lines};

/// `-t` refreshes the lock's mtime (not only its exit status), and leaves
/// its content alone.
#[test]
fn touch_moves_the_mtime_to_now() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    age(&s.path("L"), 3600);
    let mtime = || fs::metadata(s.path("L")).unwrap().modified().unwrap();
    let before = mtime();
    s.expect(s.dotlock().args(["-t", "L"]), 0);
    let after = mtime();
    let fresh = SystemTime::now()
        .duration_since(after)
        .unwrap_or(Duration::ZERO);
    assert!(
        after > before && fresh < Duration::from_secs(60),
        "{after:?}"
    );
    assert_eq!(fs::read(s.path("L")).unwrap(), b"0\n");
}

/// `--timeout 1` cuts the default schedule's first 5 s sleep short even
/// when the lock is never released (no early wake to hide behind).
#[test]
fn the_timeout_cuts_the_sleep_short_without_a_release() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    let start = Instant::now();
    s.expect(s.dotlock().args(["-r", "-1", "--timeout", "1", "L"]), 4);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(4000),
        "took {took:?}"
    );
    // Without -r, --timeout alone bounds the wait in the same way.
    let start = Instant::now();
    s.expect(s.dotlock().args(["-i", "0.2", "--timeout", "0.6", "L"]), 4);
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// Ages are judged on the filesystem's clock: with this process's wall
/// clock an hour off either way, a fresh lock is not stale and a 310 s old
/// one is broken on the first attempt.
#[test]
fn ages_ignore_a_skewed_local_clock() {
    for skew in ["3600", "-3600"] {
        let s = Scratch::new();
        // Another host's lock: nothing can be proven, age decides.
        fs::write(s.path("young"), "4242\nhost=elsewhere\n").unwrap();
        fs::write(s.path("old"), "4242\nhost=elsewhere\n").unwrap();
        age(&s.path("old"), 310);
        let skewed = |args: &[&str]| {
            let mut cmd = s.dotlock();
            cmd.env("LOCKUTILS_TEST_CLOCK_SKEW", skew).args(args);
            cmd
        };
        s.expect(&mut skewed(&["-r", "0", "young"]), 4);
        s.expect(&mut skewed(&["-c", "young"]), 0);
        s.expect(&mut skewed(&["-r", "0", "old"]), 0);
        let status = s.expect(&mut skewed(&["--status", "young"]), 0);
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(
            text.lines()
                .any(|l| l == "touched: 0s ago" || l == "touched: 1s ago"),
            "skew {skew}: {text}"
        );
        // lockdir alike, for a directory without an owner record (grace).
        fs::create_dir(s.path("D")).unwrap();
        let mut cmd = Command::new(lockdir_bin());
        cmd.current_dir(s.dir.path())
            .env("LOCKUTILS_TEST_CLOCK_SKEW", skew)
            .args(["-r", "0", "--pid", "1", "D"]);
        s.expect(&mut cmd, 4);
    }
}

/// A lockdir holder whose directory was taken over (its owner record
/// replaced) while its command ran leaves the new owner's lock alone.
#[test]
fn lockdir_releases_only_a_lock_whose_record_is_still_its_own() {
    let s = Scratch::new();
    let out = s.expect(
        Command::new(lockdir_bin()).current_dir(s.dir.path()).args([
            "L.d",
            "sh",
            "-c",
            "echo 4242 > L.d/.owner.x && mv L.d/.owner.x L.d/owner",
        ]),
        0,
    );
    let lines = stderr_lines(&out);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the lock was broken while the command ran")),
        "{lines:?}"
    );
    assert_eq!(fs::read(s.path("L.d/owner")).unwrap(), b"4242\n");
}

/// Two breakers of one stale lock: while the first holds `L.break`
/// (paused between its check and its unlink), the second breaks nothing;
/// once the first is done, exactly one of them holds the lock.
#[test]
fn the_break_lock_admits_one_breaker_at_a_time() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    age(&s.path("L"), 400);
    let mut first = s.dotlock();
    first.args(["-r", "0", "L"]);
    let (first, gate) = paused_at(&s, first, "BEFORE_UNLINK", "gate");
    let guard = Record::parse(&fs::read(s.path("L.break")).unwrap());
    assert!(guard.break_lock, "{guard:?}");
    // The second breaker finds the break lock held: it removes nothing.
    let out = s.expect(s.dotlock().args(["-r", "2", "-i", "0.1", "L"]), 4);
    let said = stderr_lines(&out);
    assert!(
        said.len() == 1 && said[0].starts_with("dotlock: L: busy: held by an unknown process"),
        "{said:?}"
    );
    assert_eq!(
        fs::read(s.path("L")).unwrap(),
        b"0\n",
        "the judged lock is intact"
    );
    assert!(s.path("L.break").exists());
    fs::write(&gate, "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mine = Record::parse(&fs::read(s.path("L")).unwrap());
    assert!(mine.host.is_some(), "the first breaker's lock: {mine:?}");
    assert!(!s.path("L.break").exists());
}

/// `-r N` means N+1 counted attempts, however the waits end.
#[test]
fn retries_count_attempts_exactly() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    for (retries, want) in [("0", 1), ("2", 3)] {
        let count = s.path(format!("count{retries}"));
        s.expect(
            s.dotlock()
                .env("LOCKUTILS_TEST_COUNT_ATTEMPTS", &count)
                .args(["-r", retries, "-i", "0.05", "L"]),
            4,
        );
        let n = fs::read_to_string(&count).unwrap().lines().count();
        assert_eq!(n, want, "-r {retries}");
    }
}
