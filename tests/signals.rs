//! Signals with real signals: a waiter dies by the signal it got and leaves
//! nothing behind; a holder in command mode forwards signals to its child,
//! waits for it, removes the lock and reports how the child ended.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Scratch, wait_until};

fn send(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// Start a waiter on a held lock and return once it is surely waiting
/// (it said so under --verbose).
fn waiting_dotlock(s: &Scratch) -> Child {
    fs::write(s.path("L"), "0\n").unwrap();
    let child = s
        .dotlock()
        .args(["--verbose", "-r", "-1", "L"])
        .stderr(fs::File::create(s.dir.path().with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    wait_until("the waiting line", Duration::from_secs(10), || {
        fs::read_to_string(s.dir.path().with_extension("err"))
            .unwrap_or_default()
            .contains("waiting for L")
    });
    child
}

fn waiter_dies_by(sig: Signal) {
    let s = Scratch::new();
    let mut child = waiting_dotlock(&s);
    send(&child, sig);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(sig as i32), "{status:?}");
    assert_eq!(
        s.listing(),
        ["L"],
        "temp file left, or the holder's lock touched"
    );
    assert_eq!(fs::read(s.path("L")).unwrap(), b"0\n");
}

#[test]
fn sigterm_while_waiting() {
    waiter_dies_by(Signal::SIGTERM);
}

#[test]
fn sigint_while_waiting() {
    waiter_dies_by(Signal::SIGINT);
}

#[test]
fn sighup_while_waiting() {
    waiter_dies_by(Signal::SIGHUP);
}

#[test]
fn the_shell_sees_128_plus_n() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    let out = s
        .shell(r#""$0" -r -1 L & p=$!; sleep 0.3; kill -TERM $p; wait $p; echo "status $?""#)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "status 143");
    assert_eq!(s.listing(), ["L"]);
}

#[test]
fn an_ignored_signal_stays_ignored() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    for sig in ["HUP", "PIPE"] {
        let script = format!(
            r#"trap '' {sig}; "$0" -r 1 -i 0.5 L & p=$!; sleep 0.2; kill -{sig} $p; wait $p; echo "status $?""#
        );
        let out = s.shell(&script).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "status 4",
            "{sig} should have been ignored"
        );
    }
}

/// The command inherits SIGPIPE as the caller left it: ignored after
/// `trap '' PIPE`, else at its default (so `yes | head` in it ends).
#[test]
fn the_command_inherits_sigpipe_as_the_caller_left_it() {
    let s = Scratch::new();
    // Bit 13-1 of SigIgn in /proc/PID/status is SIGPIPE.
    let ignores_pipe = |script: &str| {
        let out = s.shell(script).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let mask = line
            .trim()
            .strip_prefix("SigIgn:")
            .unwrap()
            .trim()
            .to_string();
        u64::from_str_radix(&mask, 16).unwrap() & (1 << 12) != 0
    };
    let probe = r#""$0" -l L grep SigIgn /proc/self/status"#;
    assert!(!ignores_pipe(probe));
    assert!(ignores_pipe(&format!("trap '' PIPE; {probe}")));
    // And a broken pipe ends a command at once, as without the lock.
    let out = s
        .shell(r#""$0" -l L sh -c 'yes | head -n 1'; echo "status $?""#)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\nstatus 0\n");
}

/// The holder's child records its pid and which signals reached it.
const CHILD: &str = r#"echo $$ > child.pid
trap 'echo USR1 >> got' USR1
trap 'echo TERM >> got; exit 143' TERM
while :; do sleep 0.05; done"#;

fn holding_dotlock(s: &Scratch, extra: &[&str]) -> Child {
    let child = s
        .dotlock()
        .args(extra)
        .args(["L", "sh", "-c", CHILD])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the child to start", Duration::from_secs(10), || {
        s.path("child.pid").exists()
    });
    child
}

fn child_pid(s: &Scratch) -> i32 {
    fs::read_to_string(s.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn gone(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_err()
}

#[test]
fn sigterm_to_a_holder_reaches_the_child_and_removes_the_lock() {
    let s = Scratch::new();
    let mut holder = holding_dotlock(&s, &[]);
    assert!(s.path("L").exists());
    send(&holder, Signal::SIGTERM);
    let status = holder.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert_eq!(fs::read_to_string(s.path("got")).unwrap(), "TERM\n");
    assert!(!s.path("L").exists(), "lock left behind");
    assert!(gone(child_pid(&s)), "child orphaned");
}

#[test]
fn sigterm_to_dotlock_sleep_gives_143() {
    let s = Scratch::new();
    let out = s
        .shell(
            r#""$0" -l L sleep 60 & p=$!; sleep 0.3; kill -TERM $p; wait $p; echo "status $?"; ls"#,
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "status 143\n",
        "lock left, or wrong status"
    );
}

#[test]
fn sigusr1_is_forwarded_and_the_holder_keeps_waiting() {
    let s = Scratch::new();
    let mut holder = holding_dotlock(&s, &[]);
    send(&holder, Signal::SIGUSR1);
    wait_until("USR1 at the child", Duration::from_secs(10), || {
        s.path("got").exists()
    });
    assert!(
        s.path("L").exists(),
        "the lock must stay while the child runs"
    );
    assert!(
        holder.try_wait().unwrap().is_none(),
        "holder must keep waiting"
    );
    send(&holder, Signal::SIGTERM);
    assert_eq!(holder.wait().unwrap().code(), Some(143));
    assert_eq!(fs::read_to_string(s.path("got")).unwrap(), "USR1\nTERM\n");
    assert!(!s.path("L").exists());
}

#[test]
fn a_child_killed_by_a_signal_is_reported_by_the_same_signal() {
    let s = Scratch::new();
    let out = s
        .dotlock()
        .args(["L", "sh", "-c", "kill -INT $$"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(Signal::SIGINT as i32),
        "{:?}",
        out.status
    );
    assert!(!s.path("L").exists());
}

#[test]
fn dotlockfile_personality_sigterm_no_longer_leaves_lock_or_orphan() {
    let s = Scratch::new();
    let link = s.personality_link("dotlockfile");
    let mut holder = Command::new(link)
        .current_dir(s.dir.path())
        .args(["-P", "L", "sh", "-c", CHILD])
        .spawn()
        .unwrap();
    wait_until("the child to start", Duration::from_secs(10), || {
        s.path("child.pid").exists()
    });
    send(&holder, Signal::SIGTERM);
    assert_eq!(holder.wait().unwrap().code(), Some(143));
    assert!(!s.path("L").exists());
    assert!(gone(child_pid(&s)));
}

/// Send the signal numbered `sig` (real-time ones included) to `child`.
fn send_number(child: &Child, sig: i32) {
    // SAFETY: kill takes two integers.
    let rc = unsafe { nix::libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill {sig}");
}

/// Real-time signals (`SIGRTMIN`..`SIGRTMAX`, which the tool catches by
/// number) reach the command while it runs: a handled one leaves the tool
/// waiting for it, an unhandled one ends the command and then the tool by
/// the same signal, with the lock released and the command not orphaned.
#[test]
fn realtime_signals_are_forwarded_and_the_command_is_never_orphaned() {
    let rtmin = nix::libc::SIGRTMIN();
    let script = "trap 'echo rt1 >> got' RTMIN+1; trap 'echo rt2 >> got' RTMIN+2; \
        echo $$ > child.pid; i=0; while [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done";
    let tools = [
        (crate::util::dotlock_bin(), &[][..]),
        (crate::lockdir::lockdir_bin(), &[][..]),
        (crate::filelock::filelock_bin(), &["--"][..]),
    ];
    for (bin, sep) in tools {
        let name = bin.file_name().unwrap().to_string_lossy().into_owned();
        let s = Scratch::new();
        let mut tool = Command::new(&bin)
            .current_dir(s.dir.path())
            .arg("L")
            .args(sep)
            .args(["bash", "-c", script])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("the command", Duration::from_secs(10), || {
            fs::read_to_string(s.path("child.pid")).is_ok_and(|c| c.ends_with('\n'))
        });
        let command = child_pid(&s);
        send_number(&tool, rtmin + 1);
        send_number(&tool, rtmin + 2);
        wait_until(
            "both handled by the command",
            Duration::from_secs(10),
            || fs::read_to_string(s.path("got")).is_ok_and(|g| g.lines().count() == 2),
        );
        assert!(
            tool.try_wait().unwrap().is_none(),
            "{name}: ended by a signal its command handled"
        );
        assert!(s.path("L").exists(), "{name}: the lock is still held");
        // Unhandled: the command dies of it, then the tool, the same way.
        send_number(&tool, rtmin + 4);
        let out = tool.wait_with_output().unwrap();
        assert_eq!(out.status.signal(), Some(rtmin + 4), "{name}: {out:?}");
        assert!(gone(command), "{name}: the command outlived the tool");
        assert!(
            !s.path("L").exists(),
            "{name}: the lock was left: {:?}",
            s.listing()
        );
    }
}

/// A real-time signal while waiting ends the wait as SIGTERM does: the
/// waiter dies by it and leaves nothing.
#[test]
fn a_realtime_signal_while_waiting_leaves_nothing() {
    let s = Scratch::new();
    let mut child = waiting_dotlock(&s);
    let sig = nix::libc::SIGRTMIN() + 3;
    send_number(&child, sig);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(sig), "{status:?}");
    assert_eq!(s.listing(), ["L"]);
}

/// SIGPIPE sent to the tool by another process reaches the command (which
/// dies of it, and the tool after it); SIGPIPE of the tool's own write to
/// a closed stderr does not, and the command goes on.
#[test]
fn sigpipe_from_another_process_is_forwarded_and_our_own_is_not() {
    let s = Scratch::new();
    let mut holder = holding_dotlock(&s, &[]);
    let command = child_pid(&s);
    send(&holder, Signal::SIGPIPE);
    let status = holder.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGPIPE as i32), "{status:?}");
    assert!(gone(command));
    assert!(!s.path("L").exists());
    fs::remove_file(s.path("child.pid")).unwrap();

    // The tool's own SIGPIPE: stderr is a pipe whose reader is gone, and
    // the tool writes to it (the lock is taken away while the command runs,
    // --on-lost=warn says so at the next touch).
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let mut holder = s
        .dotlock()
        .args(["--stale-after", "0.6", "--on-lost=warn", "L", "sh", "-c"])
        .arg("echo $$ > child.pid; sleep 2; echo done > done")
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    wait_until("the command", Duration::from_secs(10), || {
        fs::read_to_string(s.path("child.pid")).is_ok_and(|c| c.ends_with('\n'))
    });
    fs::remove_file(s.path("L")).unwrap();
    let status = holder.wait().unwrap();
    assert!(
        s.path("done").exists(),
        "the command was cut short: {status:?}"
    );
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// The fault signals sent by another process (`kill -SEGV`) are passed on
/// like the others: the command dies of it, then the tool, the same way,
/// with the lock released and nothing orphaned.
#[test]
fn fault_signals_sent_by_kill_are_forwarded_too() {
    for sig in [
        Signal::SIGABRT,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGILL,
        Signal::SIGSEGV,
        Signal::SIGSYS,
        Signal::SIGTRAP,
    ] {
        let s = Scratch::new();
        let mut tool = s
            .dotlock()
            .args([
                "L",
                "sh",
                "-c",
                "ulimit -c 0; echo $$ > child.pid; exec sleep 30",
            ])
            .spawn()
            .unwrap();
        wait_until("the command", Duration::from_secs(10), || {
            fs::read_to_string(s.path("child.pid")).is_ok_and(|c| c.ends_with('\n'))
        });
        let command = child_pid(&s);
        send(&tool, sig);
        let status = tool.wait().unwrap();
        assert_eq!(status.signal(), Some(sig as i32), "{sig}: {status:?}");
        assert!(gone(command), "{sig}: the command outlived the tool");
        assert!(!s.path("L").exists(), "{sig}: the lock was left");
    }
}
