//! A command never runs before its lock names it: SIGKILL of the tool
//! alone, at the very instant its command's process appears, never lets a
//! second holder in while the command runs — for dotlock, lockdir,
//! filelock and `--shared` readers.
//!
//! Two ways: a seam that pauses the tool right after it made the
//! command's process and before the record names it (the instant itself,
//! every time), and an attacker that watches `/proc/PID/task/PID/children`
//! and kills the tool the moment a child shows (many tries, each landing
//! somewhere in the start of the command).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lockutils::cli::testing::{self as host, Liveness};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Scratch, children, paused_at, wait_until};

/// One way of holding a lock in command mode, and the plain lock that
/// must not be had while its command runs.
struct Case {
    name: &'static str,
    bin: PathBuf,
    /// Arguments before the command (the lock and options).
    hold: &'static [&'static str],
    /// What a command needs in front of it (`--` for filelock).
    sep: &'static [&'static str],
    /// A second taker with `-r 0`: `TAKE... true` must fail while the
    /// command runs.
    take: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let dotlock = crate::util::dotlock_bin();
    let lockdir = crate::lockdir::lockdir_bin();
    let filelock = crate::filelock::filelock_bin();
    vec![
        Case {
            name: "dotlock",
            bin: dotlock.clone(),
            hold: &["L"],
            sep: &[],
            take: &["-r", "0", "L"],
        },
        Case {
            name: "lockdir",
            bin: lockdir.clone(),
            hold: &["L"],
            sep: &[],
            take: &["-r", "0", "L"],
        },
        Case {
            name: "filelock",
            bin: filelock,
            hold: &["L"],
            sep: &["--"],
            take: &["-r", "0", "L", "--"],
        },
        Case {
            name: "dotlock --shared",
            bin: dotlock,
            hold: &["--shared", "L"],
            sep: &[],
            take: &["-r", "0", "L"],
        },
        Case {
            name: "lockdir --shared",
            bin: lockdir,
            hold: &["--shared", "L"],
            sep: &[],
            take: &["-r", "0", "L"],
        },
    ]
}

/// The command: says it started (a file named by its try), then sleeps.
const COMMAND: &[&str] = &["sh", "-c", "echo $$ > \"ran.$0\"; exec sleep 600"];

impl Case {
    fn holder(&self, s: &Scratch, try_no: usize) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(s.dir.path())
            .args(self.hold)
            .args(self.sep)
            .args(COMMAND)
            .arg(try_no.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// Try to take the lock at once; its exit status.
    fn take(&self, s: &Scratch) -> i32 {
        Command::new(&self.bin)
            .current_dir(s.dir.path())
            .args(self.take)
            .arg("true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
            .unwrap_or(-1)
    }
}

/// After the tool was killed with its command's process `child` just
/// made: a second taker gets the lock only if the command never runs.
/// Returns whether the taker got it. Cleans up (the command, the lock).
fn judge_takeover(case: &Case, s: &Scratch, child: u32, try_no: usize) -> bool {
    let started = host::start_time(child);
    let code = case.take(s);
    let ran = s.path(format!("ran.{try_no}"));
    match code {
        0 => {
            // Taken: the command's process must end without running it.
            wait_until("the held process to end", Duration::from_secs(10), || {
                host::liveness(child) == Liveness::Gone || host::start_time(child) != started
            });
            assert!(
                !ran.exists(),
                "{}, try {try_no}: the lock was taken while its command ran",
                case.name
            );
        }
        4 | 1 => {
            // Busy: then the command does run, and the lock names it.
            wait_until("the command to start", Duration::from_secs(10), || {
                fs::read_to_string(&ran).is_ok_and(|c| c.ends_with('\n'))
            });
            let pid: i32 = fs::read_to_string(&ran).unwrap().trim().parse().unwrap();
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            wait_until("the command to end", Duration::from_secs(10), || {
                host::liveness(pid as u32) == Liveness::Gone
            });
            // Both dead now: the lock is proven dead and taken at once.
            assert_eq!(case.take(s), 0, "{}, try {try_no}", case.name);
        }
        other => panic!("{}, try {try_no}: the taker exited {other}", case.name),
    }
    let _ = fs::remove_file(&ran);
    code == 0
}

#[test]
fn killed_right_after_making_the_command_the_lock_is_taken_only_if_it_never_runs() {
    for case in cases() {
        let s = Scratch::new();
        let (mut tool, gate) = paused_at(&s, case.holder(&s, 0), "SPAWNED", "gate");
        let pid = tool.id();
        let kids = children(pid);
        assert_eq!(kids.len(), 1, "{}: {kids:?}", case.name);
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        tool.wait().unwrap();
        // Paused before the record names it: the command must not run,
        // and so the lock is proven dead and taken.
        assert!(
            judge_takeover(&case, &s, kids[0], 0),
            "{}: a lock whose holder died before naming its command was not taken",
            case.name
        );
        let _ = fs::remove_file(gate);
    }
}

#[test]
fn killed_the_moment_its_command_appears_no_second_holder_while_it_runs() {
    const TRIES: usize = 60;
    for case in cases() {
        let s = Scratch::new();
        let (mut taken, mut busy) = (0, 0);
        for try_no in 0..TRIES {
            let mut tool = case.holder(&s, try_no).spawn().unwrap();
            let pid = tool.id();
            let deadline = Instant::now() + Duration::from_secs(20);
            let child = loop {
                if let Some(&c) = children(pid).first() {
                    break c;
                }
                assert!(Instant::now() < deadline, "{}: no command", case.name);
                std::hint::spin_loop();
            };
            kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
            tool.wait().unwrap();
            // The taker's `true` released the lock again.
            match judge_takeover(&case, &s, child, try_no) {
                true => taken += 1,
                false => busy += 1,
            }
        }
        eprintln!(
            "{}: {taken} taken before the command ran, {busy} busy",
            case.name
        );
    }
}
