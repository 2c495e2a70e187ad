//! `--slots N`: a counting semaphore of N ordinary locks. At most N holders
//! at once, every waiter served, dead holders' slots reclaimed.

use std::collections::HashSet;
use std::fs;
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Scratch, stderr_lines, wait_until};

/// Each run appends `start NS SLOT` and `end NS SLOT` to `log`.
const RECORDED: &str = r#"echo "start $(date +%s%N) $DOTLOCK_SLOT" >> log
sleep 0.3
echo "end $(date +%s%N) $DOTLOCK_SLOT" >> log"#;

#[test]
fn twelve_contenders_three_slots() {
    let s = Scratch::new();
    let workers: Vec<Child> = (0..12)
        .map(|_| {
            s.dotlock()
                .args(["--slots", "3", "-r", "-1", "L", "sh", "-c", RECORDED])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in workers {
        assert!(w.wait().unwrap().success());
    }
    let log = fs::read_to_string(s.path("log")).unwrap();
    let mut events: Vec<(u128, bool, String)> = log
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[1].parse().unwrap(), f[0] == "start", f[2].to_string())
        })
        .collect();
    // Ends before starts at the same instant: a slot is freed, then reused.
    events.sort_by_key(|e| (e.0, e.1));
    let (mut running, mut most) = (HashSet::new(), 0);
    for (_, start, slot) in &events {
        if *start {
            assert!(
                running.insert(slot.clone()),
                "slot {slot} used twice at once: {log}"
            );
        } else {
            running.remove(slot);
        }
        most = most.max(running.len());
        assert!(running.len() <= 3, "more than 3 at once: {log}");
    }
    assert_eq!(
        events.iter().filter(|e| e.1).count(),
        12,
        "all 12 ran: {log}"
    );
    assert_eq!(most, 3, "the slots were used: {log}");
    let slots: HashSet<&str> = events.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(slots, HashSet::from(["1", "2", "3"]));
    assert_eq!(s.listing(), ["log"], "slots left behind");
}

#[test]
fn sigkilled_holders_slots_are_reclaimed() {
    let s = Scratch::new();
    let holders: Vec<Child> = (0..3)
        .map(|_| {
            s.dotlock()
                .args([
                    "--slots",
                    "3",
                    "-r",
                    "-1",
                    "L",
                    "sh",
                    "-c",
                    "echo $$ >> children; exec sleep 60",
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    wait_until("three holders", Duration::from_secs(10), || {
        fs::read_to_string(s.path("children")).is_ok_and(|c| c.lines().count() == 3)
    });
    for mut h in holders {
        kill(Pid::from_raw(h.id() as i32), Signal::SIGKILL).unwrap();
        h.wait().unwrap();
    }
    for pid in fs::read_to_string(s.path("children")).unwrap().lines() {
        let _ = kill(Pid::from_raw(pid.parse().unwrap()), Signal::SIGKILL);
    }
    assert!(s.path("L.1").exists() && s.path("L.2").exists() && s.path("L.3").exists());
    let start = Instant::now();
    for _ in 0..3 {
        let out = s.expect(s.dotlock().args(["--slots", "3", "-r", "0", "L"]), 0);
        let slot: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!((1..=3).contains(&slot));
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    s.expect(s.dotlock().args(["--slots", "3", "-r", "0", "L"]), 4);
}

#[test]
fn without_a_command_the_slot_is_printed_and_released_by_name() {
    let s = Scratch::new();
    let take = |s: &Scratch| {
        let out = s.expect(s.dotlock().args(["--slots", "2", "-r", "0", "L"]), 0);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(take(&s), "1");
    assert_eq!(take(&s), "2");
    s.expect(s.dotlock().args(["--slots", "2", "-r", "0", "L"]), 4);
    s.expect(s.dotlock().args(["-u", "L.1"]), 0);
    assert_eq!(take(&s), "1");
    let out = s.expect(s.dotlock().args(["--status", "--slots", "2", "L"]), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lock:    L.1\nstate:   held")
            && text.contains("lock:    L.2\nstate:   held"),
        "{text}"
    );
}

#[test]
fn bad_slot_counts_are_rejected_with_5() {
    let s = Scratch::new();
    for bad in ["0", "-1", "x", "1.5", "10001", ""] {
        let out = s.expect(s.dotlock().args(["--slots", bad, "L"]), 5);
        let lines = stderr_lines(&out);
        assert_eq!(
            lines,
            [format!(
                "dotlock: --slots {bad}: must be a whole number from 1 to 10000"
            )]
        );
        let out = s.expect(
            std::process::Command::new(crate::lockdir::lockdir_bin())
                .current_dir(s.dir.path())
                .args(["--slots", bad, "D"]),
            5,
        );
        assert!(stderr_lines(&out)[0].starts_with("lockdir: --slots"));
    }
    s.expect(s.dotlock().args(["--slots", "2", "-u", "L"]), 1);
    assert!(s.listing().is_empty());
}

#[test]
fn lockdir_slots_with_the_trap_helper() {
    let s = Scratch::new();
    let body = r#"eval "$("$LOCKDIR" --trap --slots 2 -r 0 "$PWD/D")" || exit 9
echo "$__lockdir_dir" > "held.$$"
sleep 0.5"#;
    let run = |s: &Scratch| {
        std::process::Command::new("sh")
            .args(["-c", body])
            .current_dir(s.dir.path())
            .env("LOCKDIR", crate::lockdir::lockdir_bin())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = run(&s);
    let b = run(&s);
    wait_until("two holders", Duration::from_secs(10), || {
        fs::read_dir(s.dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("held.")
            })
            .count()
            == 2
    });
    let third = run(&s).wait_with_output().unwrap();
    assert_eq!(third.status.code(), Some(9), "no third slot");
    assert!(
        String::from_utf8_lossy(&third.stderr).starts_with("lockdir: "),
        "the third is told: {third:?}"
    );
    for c in [a, b] {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let held: HashSet<String> = fs::read_dir(s.dir.path())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("held.")
                .then(|| fs::read_to_string(s.path(&name)).unwrap())
        })
        .collect();
    let want: HashSet<String> = ["D.1", "D.2"]
        .iter()
        .map(|n| format!("{}\n", s.path(n).display()))
        .collect();
    assert_eq!(held, want);
    assert!(
        !s.path("D.1").exists() && !s.path("D.2").exists(),
        "slots released by the traps"
    );
}
