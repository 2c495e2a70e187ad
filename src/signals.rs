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
//! * Holding, in command mode: the same signals are passed on to the
//!   child (`child`, [`Signals::forwards`]).
//!
//! * Real-time signals (`SIGRTMIN` to `SIGRTMAX`), which `nix::Signal`
//!   cannot name, are handled by number ([`Sig`]): they end a wait as the
//!   fatal ones of [`WAITING`] do, and are forwarded to the command.
//! * SIGPIPE and SIGXFSZ sent by another process (`kill`) are forwarded to
//!   the command like the others; the ones our own failed writes raise
//!   (stderr a closed pipe, a file size limit) are not: the write fails,
//!   and the command goes on.
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
use nix::sys::signal::{SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::sys;

/// Signals that end a wait: every catchable signal whose default action
/// ends the process (SIGIO aside, which carries the directory watch), so
/// that none can leave a temporary file or a half-taken set of locks.
/// Real-time signals are caught with them, by number ([`Sig`]).
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
    // Sent by another process (`kill -SEGV`); a real fault of ours is
    // still fatal at once, blocked or not.
    Signal::SIGABRT,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGSYS,
    Signal::SIGTRAP,
];

/// A signal by number: a named one, or a real-time one (`SIGRTMIN+N`),
/// which `nix::Signal` cannot name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sig(i32);

impl Sig {
    /// The signal numbered `n`, if this system has one by that number.
    pub fn from_number(n: i32) -> Option<Sig> {
        (Signal::try_from(n).is_ok() || sys::realtime_range().contains(&n)).then_some(Sig(n))
    }

    /// Its number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// Is it a real-time signal?
    pub fn is_realtime(self) -> bool {
        sys::realtime_range().contains(&self.0)
    }
}

impl From<Signal> for Sig {
    fn from(sig: Signal) -> Sig {
        Sig(sig as i32)
    }
}

impl PartialEq<Signal> for Sig {
    fn eq(&self, other: &Signal) -> bool {
        self.0 == *other as i32
    }
}

impl std::fmt::Display for Sig {
    /// `SIGTERM`, or `SIGRTMIN+3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Signal::try_from(self.0) {
            Ok(sig) => f.write_str(sig.as_str()),
            Err(_) => write!(f, "SIGRTMIN+{}", self.0 - *sys::realtime_range().start()),
        }
    }
}

/// A caught signal, and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caught {
    pub sig: Sig,
    /// The sending process (`si_pid`); this process's own pid for a
    /// signal its own calls raised (SIGPIPE of a write to a closed pipe).
    pub from: u32,
}

/// A set of blocked signals, readable from a signalfd.
///
/// Blocking comes first and costs one call: the signals are blocked from
/// before the first attempt, so none can interrupt it and leave a
/// temporary file. Telling the ignored ones apart (a query per signal) and
/// making the signalfd wait until a signal is pending or a wait begins:
/// an uncontended lock never pays for them. A signal that was ignored when
/// we started and arrives meanwhile stays pending, blocked, until then;
/// unblocked, it is discarded as ignored signals are.
#[derive(Debug)]
pub struct Signals {
    /// The numbers blocked, the ignored ones included until the descriptor
    /// is made.
    numbers: std::cell::RefCell<Vec<i32>>,
    fd: std::cell::OnceCell<SignalFd>,
}

impl Signals {
    /// Block and catch `signals` and every real-time signal, leaving alone
    /// those already ignored.
    pub fn catch(signals: &[Signal]) -> io::Result<Signals> {
        let numbers: Vec<i32> = signals
            .iter()
            .map(|&s| s as i32)
            .chain(sys::realtime_range())
            .collect();
        let set = sys::sigset_of(numbers.iter().copied());
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        Ok(Signals {
            numbers: std::cell::RefCell::new(numbers),
            fd: std::cell::OnceCell::new(),
        })
    }

    /// Make the signalfd now, if it was not yet: before a wait or a
    /// command, where a failure (no descriptor left) can still be said.
    pub fn ready(&self) -> io::Result<()> {
        self.fd().map(drop)
    }

    /// The signalfd, to poll; made now if it was not yet.
    pub fn pollable(&self) -> io::Result<BorrowedFd<'_>> {
        self.fd().map(AsFd::as_fd)
    }

    /// The signalfd, made at the first need: the ignored signals are told
    /// apart (and unblocked) first.
    fn fd(&self) -> io::Result<&SignalFd> {
        if let Some(fd) = self.fd.get() {
            return Ok(fd);
        }
        let mut numbers = self.numbers.borrow_mut();
        let ignored: Vec<i32> = numbers
            .iter()
            .copied()
            .filter(|&n| sys::is_ignored_number(n))
            .collect();
        if !ignored.is_empty() {
            numbers.retain(|n| !ignored.contains(n));
            let set = sys::sigset_of(ignored);
            sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None)?;
        }
        let set = sys::sigset_of(numbers.iter().copied());
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(self.fd.get_or_init(|| fd))
    }

    /// Catch more signals with the same descriptor.
    pub fn add(&mut self, signals: &[Signal]) -> io::Result<()> {
        let more: Vec<i32> = signals
            .iter()
            .map(|&s| s as i32)
            .filter(|&n| !sys::is_ignored_number(n))
            .collect();
        sigprocmask(
            SigmaskHow::SIG_BLOCK,
            Some(&sys::sigset_of(more.iter().copied())),
            None,
        )?;
        self.numbers.get_mut().extend(more);
        if let Some(fd) = self.fd.get_mut() {
            fd.set_mask(&sys::sigset_of(self.numbers.get_mut().iter().copied()))?;
        }
        Ok(())
    }

    /// Is `sig` among the caught signals? Tells the ignored ones apart
    /// first: for a wait about to begin.
    pub fn catches(&self, sig: Signal) -> bool {
        let _ = self.fd();
        self.numbers.borrow().contains(&(sig as i32))
    }

    /// Is `caught` to be passed on to a command? Every signal that ends a
    /// wait ([`WAITING`], the real-time ones) — those of SPEC §5 (INT,
    /// TERM, HUP, QUIT, USR1, USR2) and the other fatal ones a process may
    /// be sent — except SIGPIPE and SIGXFSZ that our own failed writes
    /// raised (they concern us only); sent by another process, those are
    /// passed on too.
    pub fn forwards(caught: Caught) -> bool {
        let Caught { sig, from } = caught;
        let ours = matches!(
            Signal::try_from(sig.number()),
            Ok(Signal::SIGPIPE | Signal::SIGXFSZ)
        ) && from == std::process::id();
        (sig.is_realtime() || WAITING.iter().any(|&w| sig == w)) && !ours
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
            let Ok(fd) = self.fd() else {
                return false;
            };
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let ready = poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            );
            if !matches!(ready, Ok(n) if n > 0) {
                continue;
            }
            match self.take() {
                None => {}
                Some(sig) if sig == Signal::SIGIO => {}
                Some(sig) => {
                    // Still blocked: raised again, it stays pending for
                    // whoever reads it next.
                    sys::raise_number(sig.number());
                    return true;
                }
            }
        }
    }

    /// The next pending caught signal, if any; never blocks.
    pub fn take(&self) -> Option<Sig> {
        self.take_caught().map(|c| c.sig)
    }

    /// The next pending caught signal and its sender, if any; never blocks.
    pub fn take_caught(&self) -> Option<Caught> {
        // Nothing pending: no descriptor needed to say so.
        if self.fd.get().is_none() && !sys::any_pending(&self.numbers.borrow()) {
            return None;
        }
        let fd = self.fd().ok()?;
        loop {
            match fd.read_signal() {
                Ok(Some(info)) => match Sig::from_number(info.ssi_signo as i32) {
                    Some(sig) => {
                        return Some(Caught {
                            sig,
                            from: info.ssi_pid,
                        });
                    }
                    None => continue,
                },
                _ => return None,
            }
        }
    }
}

/// Die by `sig`: default action, unblocked, raised. Core dumps are turned
/// off first (a re-raised SIGQUIT or SIGSEGV of the child is not our crash).
/// Falls back to exiting 128+N should the signal not kill us.
pub fn die_by(sig: Sig) -> ! {
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    sys::default_action(sig.number());
    let only = sys::sigset_of([sig.number()]);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    sys::raise_number(sig.number());
    std::process::exit(128 + sig.number())
}
