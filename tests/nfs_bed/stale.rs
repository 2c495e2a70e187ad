//! Stale locks across machines on the bed: a dead holder taken over after
//! its stale age, a live one never broken, a server clock an hour off.

use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant, SystemTime};

use super::{Bed, since};
use crate::util::run_with_timeout;

/// A holder on host A killed with SIGKILL is taken over from host B once
/// its lease (its `--stale-after`, longer than B's) has passed; a live command-mode holder on A is never
/// broken from B with a `--stale-after` just past the attribute cache time.
pub(super) fn cross_host_stale(bed: &Bed, figures: &mut String) {
    // The dead holder, whose lease is 4 s: dotlock and its command, killed
    // at once.
    let mut holder = bed.held_on_a(
        "dotlock",
        &["--stale-after", "4s", "L", "sleep", "1000"],
        "L",
    );
    // On host A itself: the holder's pid is dotlock's; its command is its
    // child.
    let children = format!("/proc/{0}/task/{0}/children", holder.id());
    let mut command = String::new();
    crate::util::wait_until("dotlock runs its command", Duration::from_secs(10), || {
        command = fs::read_to_string(&children).unwrap_or_default();
        !command.trim().is_empty()
    });
    let killed = Instant::now();
    holder.kill().unwrap();
    for pid in command.split_whitespace() {
        let pid = nix::unistd::Pid::from_raw(pid.parse().unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    holder.wait().unwrap();
    let out = run_with_timeout(
        &mut bed.on_host(
            "b",
            "dotlock",
            &["--stale-after", "1s", "-r", "-1", "L", "true"],
        ),
        Duration::from_secs(30),
    );
    let took = since(killed);
    assert!(out.status.success(), "B never took over: {out:?}");
    // Not before the holder's lease (the lock was last touched when
    // taken), however short B's own stale age.
    assert!(took >= 3.5, "B broke a 4 s lease after {took:.1} s");
    assert!(
        took < 20.0,
        "B took {took:.1} s to take over a 4 s stale lock"
    );
    writeln!(
        figures,
        "    dead holder on host A, --stale-after 4s: taken over from host B (--stale-after 1s) after {took:.1} s"
    )
    .unwrap();
    assert_eq!(bed.left(), Vec::<String>::new());

    // The live holder, touching its lock every third of 5 s; B tries for
    // 15 s with the same stale age, 2 s past the 3 s attribute cache.
    let mut holder = bed.held_on_a("dotlock", &["--stale-after", "5s", "L", "sleep", "18"], "L");
    let out = run_with_timeout(
        &mut bed.on_host(
            "b",
            "dotlock",
            &["--stale-after", "5s", "-r", "15", "-i", "1", "L", "true"],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "B broke a live holder's lock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = holder.wait().unwrap();
    assert!(
        status.success(),
        "the live holder lost its lock: {status:?}"
    );
    writeln!(
        figures,
        "    live holder on host A, --stale-after 5s (actimeo 3 s): never broken from host B in 15 attempts"
    )
    .unwrap();
    assert_eq!(bed.left(), Vec::<String>::new());
}

/// The server an hour ahead of the client, then an hour behind: a fresh
/// lock is never stale, and a lock 310 s old on the server's clock is
/// broken on the first attempt.
pub(super) fn clock_skew(bed: &Bed, figures: &mut String) {
    for skew in [3600, -3600] {
        bed.set_faults("b", &format!("skew={skew}"));
        // A fresh lock, taken from host A (no skew there).
        let out = bed.on_host("a", "dotlock", &["L"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let out = bed
            .on_host("b", "dotlock", &["--stale-after", "300s", "-r", "0", "L"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(4),
            "skew {skew}: a fresh lock was taken from a skewed client: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // 310 s old on the server's clock: set through client A, which
        // shows the server's clock as it is (the server runs on this
        // machine's clock).
        let old = SystemTime::now() - Duration::from_secs(310);
        let f = fs::File::options()
            .write(true)
            .open(bed.mnt("a").join("L"))
            .unwrap();
        f.set_modified(old).unwrap();
        drop(f);
        // Past the client's attribute cache.
        std::thread::sleep(Duration::from_secs(4));
        let out = bed
            .on_host("b", "dotlock", &["--stale-after", "300s", "-r", "0", "L"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skew {skew}: a 310 s old lock was not broken on the first attempt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = bed.on_host("b", "dotlock", &["-u", "L"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        writeln!(
            figures,
            "    server clock {skew:+} s from client B: fresh lock kept, 310 s old lock broken at once"
        )
        .unwrap();
        bed.set_faults("b", "");
        assert_eq!(bed.left(), Vec::<String>::new());
    }
}
