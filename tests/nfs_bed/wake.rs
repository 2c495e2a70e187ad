//! Early wake across machines on the bed, and the personalities' legacy
//! timing.

use std::fmt::Write as _;
use std::fs;
use std::process::Output;
use std::time::{Duration, Instant};

use super::{Bed, since};
use crate::util::run_with_timeout;

/// One hand-over from host A to a waiter on host B: A holds `lock` with
/// `holder` (a command that ends by releasing it); B starts `waiter` once
/// the lock is there. Returns B's output, how long after A's release B was
/// done, and how long B ran in all.
fn hand_over(bed: &Bed, holder: &[&str], waiter: &[&str], lock: &str) -> (Output, f64, f64) {
    let mut a = bed.held_on_a(holder[0], &holder[1..], lock);
    let started = Instant::now();
    let b = std::thread::spawn({
        let mut cmd = bed.on_host("b", waiter[0], &waiter[1..]);
        move || run_with_timeout(&mut cmd, Duration::from_secs(40))
    });
    let status = a.wait().unwrap();
    let released = Instant::now();
    assert!(status.success(), "the holder on A failed: {status:?}");
    let out = b.join().unwrap();
    (out, since(released), since(started))
}

/// Early wake across machines: a waiter on host B whose schedule says
/// 60 s takes the lock within a few seconds of its release on host A (it
/// probes; B's kernel sees nothing of A's changes), for dotlock, lockdir,
/// filelock and `--slots`; the `dotlockfile` and `lockfile` personalities
/// keep their legacy sleeps; and `-r 2` still gives up after exactly three
/// counted attempts.
pub(super) fn early_wake(bed: &Bed, figures: &mut String) {
    let cases: [(&str, &[&str], &[&str], &str); 4] = [
        (
            "dotlock",
            &["dotlock", "L", "sleep", "2"],
            &["dotlock", "--verbose", "-i", "60", "-r", "1", "L", "true"],
            "L",
        ),
        (
            "lockdir",
            &["lockdir", "L", "sleep", "2"],
            &["lockdir", "--verbose", "-i", "60", "-r", "1", "L", "true"],
            "L",
        ),
        (
            "filelock",
            &["filelock", "L", "--", "sleep", "2"],
            &[
                "filelock",
                "--verbose",
                "-i",
                "60",
                "-r",
                "1",
                "L",
                "--",
                "true",
            ],
            "L",
        ),
        (
            "--slots 1",
            &["dotlock", "--slots", "1", "L", "sleep", "2"],
            &[
                "dotlock",
                "--verbose",
                "--slots",
                "1",
                "-i",
                "60",
                "-r",
                "1",
                "L",
                "true",
            ],
            "L.1",
        ),
    ];
    for (name, holder, waiter, lock) in cases {
        let (out, after, _) = hand_over(bed, holder, waiter, lock);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name}: B did not take the lock: {err}"
        );
        assert!(err.contains("waiting for"), "{name}: B never waited: {err}");
        // Its next counted attempt was 60 s away.
        assert!(
            after < 5.0,
            "{name}: B took the lock {after:.1} s after A released it"
        );
        writeln!(
            figures,
            "    early wake, {name} with -i 60 on host B: done {after:.2} s after host A released"
        )
        .unwrap();
        assert_eq!(bed.left(), Vec::<String>::new());
    }
    // The personalities: the first retry after 5 s, however soon the
    // lock is free (A holds it for about 1 s).
    for (name, waiter) in [
        ("dotlockfile", &["dotlockfile", "-r", "1", "L"][..]),
        ("lockfile", &["lockfile", "-5", "-r", "1", "L"][..]),
    ] {
        let (out, _, took) = hand_over(bed, &["dotlock", "L", "sleep", "1"], waiter, "L");
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(took >= 4.9, "{name} woke early, after {took:.1} s");
        fs::remove_file(bed.mnt("b").join("L")).unwrap();
        writeln!(
            figures,
            "    legacy timing, {name} personality on host B: took the lock {took:.1} s after it started (lock free after 1 s)"
        )
        .unwrap();
    }
    assert_eq!(bed.left(), Vec::<String>::new());

    // -r 2 against a holder that stays: three counted attempts, two full
    // sleeps, probes or not.
    let mut holder = bed.held_on_a("dotlock", &["L", "sleep", "60"], "L");
    let count = bed.dir.join("attempts");
    let _ = fs::remove_file(&count);
    let started = Instant::now();
    let out = run_with_timeout(
        bed.on_host("b", "dotlock", &["-r", "2", "-i", "2", "L", "true"])
            .env("LOCKUTILS_TEST_COUNT_ATTEMPTS", &count),
        Duration::from_secs(40),
    );
    let took = since(started);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let attempts = fs::read_to_string(&count).unwrap().lines().count();
    assert_eq!(attempts, 3, "-r 2 made {attempts} counted attempts");
    assert!(
        (3.9..20.0).contains(&took),
        "-r 2 -i 2 gave up after {took:.1} s"
    );
    let pid = nix::unistd::Pid::from_raw(holder.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    holder.wait().unwrap();
    writeln!(
        figures,
        "    -r 2 -i 2 on host B against a live holder: gave up after {attempts} counted attempts, {took:.1} s"
    )
    .unwrap();
    assert_eq!(bed.left(), Vec::<String>::new());
}
