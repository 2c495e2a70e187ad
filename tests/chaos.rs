//! Chaos: four workers take a lock in command mode again and again while a
//! killer sends SIGKILL to a random worker's lock tool every ~50 ms — at
//! any instant of its life: waiting, linking, breaking, starting its
//! command, holding. Only the tools are killed, never their commands
//! (each tool is the direct child of its worker's shell; a command is
//! the tool's child). The commands log when they start and end; no two
//! may ever overlap (a writer with anyone, for `--shared`).
//!
//! Bounded (`CHAOS_SECONDS`, 30 s per tool by default) and run by
//! `.ci/run` (`cargo test chaos -- --ignored`); plain `cargo test` lists
//! it as ignored.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Scratch, children};

/// One worker: lock in command mode forever; the command logs `S`, works
/// a little, logs `E`, each with its pid and whether it reads or writes.
const WORKER: &str = r#"
modes=$1
while :; do
  for m in $modes; do
    case $m in r) flag=--shared ;; *) flag= ;; esac
    "$TOOL" $flag $WAIT L $SEP sh -c 'echo "S $$ $0" >> log; sleep 0.01; echo "E $$ $0" >> log' "$m"
  done
done
"#;

fn seconds() -> u64 {
    std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// Replay the log: never a writer with anyone else. Returns how many
/// sections ran.
fn check(log: &str) -> usize {
    let (mut readers, mut writers) = (HashSet::new(), HashSet::new());
    let mut sections = 0;
    for (n, line) in log.lines().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "line {n}: {line:?}");
        match (f[0], f[2]) {
            ("S", "w") => {
                assert!(
                    readers.is_empty() && writers.is_empty(),
                    "line {n}: a writer overlaps {readers:?} {writers:?}"
                );
                writers.insert(f[1]);
                sections += 1;
            }
            ("S", _) => {
                assert!(
                    writers.is_empty(),
                    "line {n}: a reader overlaps {writers:?}"
                );
                readers.insert(f[1]);
                sections += 1;
            }
            ("E", "w") => assert!(writers.remove(f[1]), "line {n}: unmatched"),
            _ => assert!(readers.remove(f[1]), "line {n}: unmatched"),
        }
    }
    sections
}

fn chaos(name: &str, tool: PathBuf, wait: &str, sep: &str, modes: &[&str]) {
    let s = Scratch::new();
    let workers: Vec<Child> = modes
        .iter()
        .map(|m| {
            s.shell(WORKER)
                .arg(m)
                .env("TOOL", &tool)
                .env("WAIT", wait)
                .env("SEP", sep)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(seconds());
    let mut kills = 0;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(30 + rand::random::<u64>() % 40));
        let w = &workers[rand::random::<u64>() as usize % workers.len()];
        for tool in children(w.id()) {
            if kill(Pid::from_raw(tool as i32), Signal::SIGKILL).is_ok() {
                kills += 1;
            }
        }
    }
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    // Commands left running by a killed tool end within their sleep.
    std::thread::sleep(Duration::from_millis(500));
    let log = fs::read_to_string(s.path("log")).unwrap_or_default();
    let sections = check(&log);
    eprintln!("{name}: {sections} sections, {kills} tools killed, 0 overlaps");
    assert!(sections > 100, "{name}: only {sections} sections ran");
    assert!(kills > 100, "{name}: only {kills} kills");
    // Whatever the killings left, the lock is taken again: every holder is
    // proven dead on this host, at once; a lock directory whose maker was
    // killed before its owner record is reclaimed after its grace (10 s).
    let sep_args: Vec<&str> = sep.split_whitespace().collect();
    let out = Command::new(&tool)
        .current_dir(s.dir.path())
        .args(["-r", "-1", "-i", "0.2", "--timeout", "15", "L"])
        .args(&sep_args)
        .arg("true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: the lock is stuck: {out:?}");
}

#[test]
#[ignore = "chaos, about two minutes: cargo test chaos -- --ignored (run by .ci/run)"]
fn chaos_sigkill_of_lock_tools_never_lets_two_holders_in() {
    let dotlock = crate::util::dotlock_bin();
    let lockdir = crate::lockdir::lockdir_bin();
    let filelock = crate::filelock::filelock_bin();
    let w = ["w", "w", "w", "w"];
    chaos("dotlock", dotlock.clone(), "-r -1 -i 0.01", "", &w);
    chaos("lockdir", lockdir, "-r -1 -i 0.01", "", &w);
    chaos("filelock", filelock, "-r -1 -i 0.01", "--", &w);
    chaos(
        "dotlock --shared",
        dotlock,
        "-r -1 -i 0.01",
        "",
        &["r w", "r r w", "w r", "r"],
    );
}
