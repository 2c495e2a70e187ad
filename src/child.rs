//! Running the command under the lock: spawned, signals forwarded, the
//! lock kept fresh, its end passed on. The child is never orphaned.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::signals::{FORWARDED, Signals};

/// How a command run under the lock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(Signal),
}

impl ChildEnd {
    /// The shell's number for it: the exit code, or 128+N.
    pub fn shell_status(self) -> i32 {
        match self {
            ChildEnd::Exited(code) => code,
            ChildEnd::Signaled(sig) => 128 + sig as i32,
        }
    }
}

/// Start `argv` as `execvp(3)` would (a `PATH` search; a file without a
/// `#!` line runs under `/bin/sh`), with an empty signal mask; ignored
/// signals stay ignored, caught ones (none: we block and read them) start
/// at their default. `posix_spawn(3)` instead of `fork(2)`: no copy of our
/// page tables, which is most of the cost of a short command.
///
/// SIGPIPE is passed on as this process has it. The programs leave it as
/// they inherited it; a Rust `main` ignores it, so a program using this
/// library from one should restore the default first if its commands are
/// to die of a broken pipe.
pub fn spawn(argv: &[OsString], extra_env: &[(&str, String)]) -> io::Result<Pid> {
    let cstr = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let args = argv
        .iter()
        .map(|a| cstr(a))
        .collect::<io::Result<Vec<_>>>()?;
    let extra = extra_env
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    let env = std::env::vars_os()
        .filter(|(k, _)| !extra_env.iter().any(|(e, _)| k == e))
        .chain(extra)
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(&kv)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK)?;
    let actions = PosixSpawnFileActions::init()?;
    let program = args
        .first()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    match posix_spawnp(program, &actions, &attr, &args, &env) {
        Err(nix::errno::Errno::ENOEXEC) => {
            let mut with_sh = vec![CString::new("/bin/sh").expect("no NUL")];
            with_sh.extend(args.iter().cloned());
            Ok(posix_spawnp(&with_sh[0], &actions, &attr, &with_sh, &env)?)
        }
        other => Ok(other?),
    }
}

/// What [`run_child`] tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEvent {
    /// The command was started with this pid.
    Spawned(u32),
    /// `every` has passed: time to keep the lock fresh.
    Tick,
}

/// Run `argv` and wait for it, forwarding [`FORWARDED`] signals, telling
/// `event` the child's pid as soon as it is spawned and then every `every`
/// (to keep the lock fresh). `signals` must already
/// catch SIGCHLD and the forwarded signals: blocked before the spawn, none
/// can be lost. The child starts with an empty signal mask and the
/// dispositions we inherited.
pub fn run_child(
    argv: &[OsString],
    extra_env: &[(&str, String)],
    signals: &Signals,
    every: Duration,
    mut event: impl FnMut(ChildEvent),
) -> io::Result<ChildEnd> {
    let pid = spawn(argv, extra_env)?;
    event(ChildEvent::Spawned(pid.as_raw() as u32));
    let mut next = Instant::now() + every;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ChildEnd::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ChildEnd::Signaled(sig)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        // Signals first, then look at the child again: a SIGCHLD read here
        // means the next waitpid finds it.
        let mut chld = false;
        while let Some(sig) = signals.take() {
            if FORWARDED.contains(&sig) {
                let _ = kill(pid, sig);
            }
            chld |= sig == Signal::SIGCHLD;
        }
        if chld {
            continue;
        }
        let now = Instant::now();
        if now >= next {
            event(ChildEvent::Tick);
            next = now + every;
        }
        let left = next.saturating_duration_since(Instant::now());
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_status_of_child_ends() {
        assert_eq!(ChildEnd::Exited(3).shell_status(), 3);
        assert_eq!(ChildEnd::Signaled(Signal::SIGTERM).shell_status(), 143);
        assert_eq!(ChildEnd::Signaled(Signal::SIGINT).shell_status(), 130);
    }
}
