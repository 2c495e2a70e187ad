//! The hot path's system calls, counted: one uncontended `dotlock L` and
//! one `dotlock -u L`, each run from a shell, under `strace -f`. A change
//! that adds work to taking or releasing a free lock shows here.
//!
//! Budgets, from the measurement (Linux 6.18, a local disk; a test build
//! adds `fcntl(F_GETFD)` checks of its own, which are not counted): taking
//! the lock 56 calls from `execve` to `exit_group`, releasing it 43. The
//! budgets allow 2 more each for what a machine may differ in (a longer
//! command line of the caller, one more read).

use std::process::Command;

use crate::util::{Scratch, dotlock_bin, skip};

const TAKE: usize = 58;
const RELEASE: usize = 45;

/// The calls of each process of `script` (run by `sh -c` in `s`), in order
/// of their first call, the shell's first.
fn calls_per_process(s: &Scratch, script: &str) -> Option<Vec<(String, Vec<String>)>> {
    let out = s.path("strace.out");
    let status = Command::new("strace")
        .current_dir(s.dir.path())
        .args(["-f", "-qq", "-o"])
        .arg(&out)
        .args(["sh", "-c", script])
        .status()
        .ok()?;
    assert!(status.success(), "{script}: {status}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut procs: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let (pid, call) = line.split_once(' ').unwrap();
        let call = call.trim_start();
        // A test build's own descriptor checks.
        if call.contains("F_GETFD") || call.starts_with("+++") || call.starts_with("---") {
            continue;
        }
        match procs.iter_mut().find(|(p, _)| p == pid) {
            Some((_, calls)) => calls.push(call.to_string()),
            None => procs.push((pid.to_string(), vec![call.to_string()])),
        }
    }
    Some(procs)
}

#[test]
fn taking_and_releasing_a_free_lock_stay_within_their_budgets() {
    if Command::new("strace").arg("-V").output().is_err() {
        return skip("strace is not installed");
    }
    let s = Scratch::new();
    let bin = dotlock_bin();
    let script = format!("'{0}' L && '{0}' -u L", bin.display());
    let procs = calls_per_process(&s, &script).unwrap();
    // Each dotlock's calls from its execve on (a shell's child may make a
    // few before it).
    let dotlocks: Vec<&[String]> = procs
        .iter()
        .filter_map(|(_, calls)| {
            let exec = calls
                .iter()
                .position(|c| c.starts_with("execve(") && c.contains("dotlock"))?;
            Some(&calls[exec..])
        })
        .collect();
    assert_eq!(dotlocks.len(), 2, "{procs:#?}");
    let (take, release) = (dotlocks[0], dotlocks[1]);
    assert!(take.iter().any(|c| c.starts_with("linkat(")), "{take:#?}");
    assert!(
        release
            .iter()
            .any(|c| c.starts_with("unlinkat(") && c.contains("\"L\"")),
        "{release:#?}"
    );
    assert!(!s.path("L").exists());
    eprintln!(
        "dotlock L: {} calls; dotlock -u L: {} calls",
        take.len(),
        release.len()
    );
    assert!(
        take.len() <= TAKE,
        "dotlock L made {} calls (budget {TAKE}):\n{take:#?}",
        take.len()
    );
    assert!(
        release.len() <= RELEASE,
        "dotlock -u L made {} calls (budget {RELEASE}):\n{release:#?}",
        release.len()
    );
    // What waits for a wait: no signal dispositions queried, no signalfd.
    for call in take {
        assert!(
            !call.starts_with("rt_sigaction(") && !call.starts_with("signalfd"),
            "an uncontended take made {call}"
        );
    }
}
