//! Signals: nothing left behind, death by the same signal.
//!
//! The signals we act on are blocked and read from a `signalfd(2)`, so they
//! are handled in ordinary code at the points where we wait — never in the
//! middle of creating a temporary file — and the cleanup needs no
//! async-signal-safe tricks. A signal that arrives during an attempt is seen
//! right after it.
//!
//! * Waiting: every fatal signal of [`WAITING`] ends the wait; the caller
//!   drops what it holds and calls [`die_by`], which restores the default
//!   action and re-raises, so the shell sees 128+N.
//! * Holding, in command mode: [`FORWARDED`] signals are passed on to the
//!   child (`child`).
//!
//! Signals that were ignored when we started (`nohup`, `trap '' HUP`) stay
//! ignored and are not caught, and the command inherits them ignored. That
//! includes SIGPIPE: the programs enter at the C `main`, so the Rust
//! runtime does not ignore SIGPIPE behind the caller's back.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, raise, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::sys;

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
            if !sys::is_ignored(sig) {
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
            if !sys::is_ignored(sig) {
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

/// Die by `sig`: default action, unblocked, raised. Core dumps are turned
/// off first (a re-raised SIGQUIT or SIGSEGV of the child is not our crash).
/// Falls back to exiting 128+N should the signal not kill us.
pub fn die_by(sig: Signal) -> ! {
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    sys::default_action(sig);
    let mut only = SigSet::empty();
    only.add(sig);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    let _ = raise(sig);
    std::process::exit(128 + sig as i32)
}
