//! Signals: nothing left behind, the child never orphaned, death by the
//! same signal.
//!
//! The signals we act on are blocked and read from a `signalfd(2)`, so they
//! are handled in ordinary code at the points where we wait — never in the
//! middle of creating a temporary file — and the cleanup needs no
//! async-signal-safe tricks. A signal that arrives during an attempt is seen
//! right after it.
//!
//! * Waiting: INT, TERM, HUP, QUIT, PIPE end the wait; the caller drops what
//!   it holds and calls [`die_by`], which restores the default action and
//!   re-raises, so the shell sees 128+N.
//! * Holding, in command mode: INT, TERM, HUP, QUIT, USR1, USR2 are forwarded
//!   to the child ([`run_child`]); we keep waiting for it, keep the lock
//!   fresh, and report how it ended.
//!
//! Signals that were ignored when we started (`nohup`, `trap '' HUP`) stay
//! ignored and are not caught, and the command inherits them ignored. That
//! includes SIGPIPE: the programs enter at the C `main`, so the Rust
//! runtime does not ignore SIGPIPE behind the caller's back.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, raise, signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Signals that end a wait: every catchable signal whose default action
/// ends the process (SIGIO aside, which carries the directory watch), so
/// that none can leave a temporary file or a half-taken set of locks.
/// Real-time signals are not among them.
pub const WAITING: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGPIPE,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGPWR,
    Signal::SIGSTKFLT,
];

/// Signals passed on to the child in command mode: those of SPEC §5 (INT,
/// TERM, HUP, QUIT, USR1, USR2) and the other fatal ones a process may be
/// sent. SIGPIPE and SIGXFSZ concern our own writes and are not.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGXCPU,
    Signal::SIGPWR,
    Signal::SIGSTKFLT,
];

/// A set of blocked signals, readable from a signalfd.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
    set: SigSet,
}

impl Signals {
    /// Block and catch `signals`, leaving alone those already ignored.
    pub fn catch(signals: &[Signal]) -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for &sig in signals {
            if !is_ignored(sig) {
                set.add(sig);
            }
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd, set })
    }

    /// Catch more signals with the same descriptor.
    pub fn add(&mut self, signals: &[Signal]) -> io::Result<()> {
        let mut more = SigSet::empty();
        for &sig in signals {
            if !is_ignored(sig) {
                more.add(sig);
                self.set.add(sig);
            }
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&more), None)?;
        self.fd.set_mask(&self.set)?;
        Ok(())
    }

    /// Is `sig` among the caught signals?
    pub fn catches(&self, sig: Signal) -> bool {
        self.set.contains(sig)
    }

    /// Wait up to `d` for a caught signal to be pending, leaving it
    /// pending; `true` if one is.
    /// SIGIO (directory notifications) does not count and is consumed.
    pub fn wait(&self, d: Duration) -> bool {
        let deadline = Instant::now().checked_add(d);
        loop {
            let left = deadline.map_or(Duration::MAX, |t| {
                t.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return false;
            }
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let ready = poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            );
            if !matches!(ready, Ok(n) if n > 0) {
                continue;
            }
            match self.take() {
                Some(Signal::SIGIO) | None => {}
                Some(sig) => {
                    // Still blocked: raised again, it stays pending for
                    // whoever reads it next.
                    let _ = raise(sig);
                    return true;
                }
            }
        }
    }

    /// The next pending caught signal, if any; never blocks.
    pub fn take(&self) -> Option<Signal> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn is_ignored(sig: Signal) -> bool {
    // SAFETY: a null new action only queries the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig as libc::c_int, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Die by `sig`: default action, unblocked, raised. Core dumps are turned
/// off first (a re-raised SIGQUIT or SIGSEGV of the child is not our crash).
/// Falls back to exiting 128+N should the signal not kill us.
pub fn die_by(sig: Signal) -> ! {
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    // SAFETY: restoring the default disposition has no handler to race with.
    let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    let mut only = SigSet::empty();
    only.add(sig);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    let _ = raise(sig);
    std::process::exit(128 + sig as i32)
}

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
