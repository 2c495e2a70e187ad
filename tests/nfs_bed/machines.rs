//! Two machines of one name on the bed: machine B named as host A, then a
//! clone of it (its machine id too), each with a boot of its own. Neither
//! breaks the other's live lock; exclusion holds for every tool and the
//! `dotlockfile` personality; a holder's lease outlasts a waiter's shorter
//! stale age; and every personality finishes every cycle under the lost
//! replies and `EIO` of chosen kinds of call.

use std::fmt::Write as _;
use std::process::Output;
use std::time::{Duration, Instant};

use super::{Bed, exclusion};
use crate::util::run_with_timeout;

/// How each tool holds its lock around `sleep 4`, and tries it once.
const TOOLS: [(&str, &[&str], &[&str], &str); 4] = [
    ("dotlock", &["L", "sleep", "4"], &["-r", "0", "L"], "L"),
    ("lockdir", &["D", "sleep", "4"], &["-r", "0", "D"], "D"),
    (
        "filelock",
        &["F", "--", "sleep", "4"],
        &["-r", "0", "F"],
        "F",
    ),
    (
        "dotlockfile",
        &["-l", "P", "sleep", "4"],
        &["-r", "0", "-l", "P"],
        "P",
    ),
];

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A live lock held on host `holder` is never taken from the other host.
fn live_locks_stay(bed: &Bed, identity: &str, figures: &mut String) {
    for (holder, waiter) in [("a", "b"), ("b", "a")] {
        for (tool, hold, try_once, lock) in TOOLS {
            let mut held = bed.on_host(holder, tool, hold).spawn().unwrap();
            let there = bed.dir.join("export").join(lock);
            crate::util::wait_until("the lock is held", Duration::from_secs(10), || {
                there.exists()
            });
            let out = run_with_timeout(
                &mut bed.on_host(waiter, tool, try_once),
                Duration::from_secs(30),
            );
            assert!(
                !out.status.success(),
                "{identity}: {tool}: a live lock of host {holder} was taken from host {waiter}"
            );
            let status = held.wait().unwrap();
            assert!(
                status.success(),
                "{identity}: {tool}: the holder on {holder} failed"
            );
            assert_eq!(bed.left(), Vec::<String>::new());
        }
    }
    writeln!(
        figures,
        "    {identity}: a live lock of either host (dotlock, lockdir, filelock, dotlockfile) never taken from the other"
    )
    .unwrap();
}

/// Both clients' machines named alike (and then a clone): no live lock
/// broken, and 2 x 2 workers x 100 cycles of each tool keep exclusion.
pub(super) fn two_machines_of_one_name(bed: &Bed, figures: &mut String) -> Vec<String> {
    let mut broken = Vec::new();
    for identity in ["same-name", "clone"] {
        bed.identity_b(identity);
        live_locks_stay(bed, identity, figures);
        for kind in ["dotlock", "lockdir", "filelock", "dotlockfile"] {
            let (line, held) = exclusion(bed, kind, "none", 100);
            writeln!(figures, "    {identity}: {line}").unwrap();
            if !held {
                broken.push(format!("{identity}: {line}"));
            }
            bed.clean();
        }
    }
    bed.identity_b("distinct");
    broken
}

/// A holder on host A that declared a 6 s lease (touching every 2 s) is
/// never broken by a waiter on host B whose stale age is 1 s.
pub(super) fn lease(bed: &Bed, figures: &mut String) {
    for (tool, lock) in [("dotlock", "L"), ("lockdir", "D"), ("filelock", "F")] {
        let mut held = bed
            .on_host(
                "a",
                tool,
                &["--stale-after", "6s", lock, "--", "sleep", "8"],
            )
            .spawn()
            .unwrap();
        let there = bed.dir.join("export").join(lock);
        crate::util::wait_until("the lock is held", Duration::from_secs(10), || {
            there.exists()
        });
        let start = Instant::now();
        let mut tries = 0;
        while start.elapsed() < Duration::from_secs(6) {
            let out = run_with_timeout(
                &mut bed.on_host("b", tool, &["--stale-after", "1s", "-r", "0", lock]),
                Duration::from_secs(30),
            );
            assert!(
                !out.status.success(),
                "{tool}: host B broke a 6 s lease with its 1 s after {:.1} s: {}",
                start.elapsed().as_secs_f64(),
                stderr(&out)
            );
            tries += 1;
        }
        let status = held.wait().unwrap();
        assert!(status.success(), "{tool}: the holder lost its lock");
        assert_eq!(bed.left(), Vec::<String>::new());
        writeln!(
            figures,
            "    {tool} --stale-after 6s on host A: never broken by host B's --stale-after 1s in {tries} tries over 6 s"
        )
        .unwrap();
    }
}

/// Lost replies and `EIO` on chosen kinds of call, for every tool and
/// personality: 2 x 2 workers x 50 cycles, nothing overlaps, fails or is
/// left.
pub(super) fn chosen_faults(bed: &Bed, figures: &mut String) -> Vec<String> {
    let faults = [
        "link=0.08 create=0.05 remove=0.05 rmdir=0.05 mkdir=0.05 rename=0.05",
        "link=0.05 remove=0.05 mode=eio",
    ];
    super::every_kind(bed, &faults, 50, figures)
}
