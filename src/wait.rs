//! How long to wait between attempts, and the sleep itself.
//!
//! Schedules: liblockfile's backoff (sleep 5, 10, 15 … 60 s), a fixed
//! interval (`-i`), and procmail's constant 8 s. `-r N` means N retries,
//! N+1 attempts; `--timeout` bounds the whole wait, with a last attempt
//! when it runs out.
//!
//! The sleep is a `poll(2)` on the descriptors that must cut it short: the
//! signalfd of caught signals (so that a signal is handled in ordinary code,
//! with nothing left behind) and, for `-p` without a command, a pidfd of the
//! parent (so that its death ends the wait at once). A sleeping waiter uses
//! no CPU.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::unistd::getppid;

use crate::guard::Signals;

/// The pause between failed attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// liblockfile: 5 s after the first failure, 5 s more after each, at
    /// most 60 s.
    Backoff,
    /// The same pause every time (`-i S`; zero means none).
    Fixed(Duration),
}

impl Schedule {
    /// procmail's `lockfile`: 8 s between attempts.
    pub const PROCMAIL: Schedule = Schedule::Fixed(Duration::from_secs(8));

    /// The pause after the `failures`-th failed attempt (counting from 1).
    pub fn delay(self, failures: u64) -> Duration {
        match self {
            Schedule::Backoff => Duration::from_secs(5 * failures.clamp(1, 12)),
            Schedule::Fixed(d) => d,
        }
    }
}

/// How long to keep trying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Patience {
    pub schedule: Schedule,
    /// Retries after the first attempt; `None` is forever (`-r -1`).
    pub retries: Option<u64>,
    /// Bound on the whole wait.
    pub timeout: Option<Duration>,
}

impl Default for Patience {
    /// dotlockfile's: 5 retries on the backoff schedule.
    fn default() -> Self {
        Patience {
            schedule: Schedule::Backoff,
            retries: Some(5),
            timeout: None,
        }
    }
}

/// Why a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The time was up.
    Elapsed,
    /// A caught signal arrived.
    Signal(Signal),
    /// The watched parent died.
    ParentDied,
}

/// Watches the parent process: through a pidfd (`pidfd_open(2)`) where the
/// kernel has one, else by noticing that `getppid()` changed.
#[derive(Debug)]
pub struct ParentWatch {
    ppid: i32,
    pidfd: Option<OwnedFd>,
}

impl ParentWatch {
    /// Start watching our current parent.
    pub fn new() -> ParentWatch {
        let ppid = getppid().as_raw();
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, ppid, 0) };
        let pidfd = (fd >= 0).then(|| {
            // SAFETY: the kernel just returned this descriptor to us alone.
            unsafe { OwnedFd::from_raw_fd(fd as i32) }
        });
        ParentWatch { ppid, pidfd }
    }

    /// Has the parent gone (we were reparented)?
    pub fn gone(&self) -> bool {
        getppid().as_raw() != self.ppid
    }
}

impl Default for ParentWatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Sleeps, waking early for what matters.
#[derive(Debug)]
pub struct Sleeper<'a> {
    signals: Option<&'a Signals>,
    parent: Option<ParentWatch>,
}

impl<'a> Sleeper<'a> {
    pub fn new(signals: Option<&'a Signals>, parent: Option<ParentWatch>) -> Self {
        Sleeper { signals, parent }
    }

    /// A caught signal that is already pending, if any.
    pub fn pending_signal(&self) -> Option<Signal> {
        self.signals.and_then(Signals::take)
    }

    /// Sleep for `d`, or less if a signal arrives or the parent dies.
    pub fn sleep(&mut self, d: Duration) -> Wake {
        let deadline = Instant::now() + d;
        loop {
            if let Some(sig) = self.signals.and_then(Signals::take) {
                return Wake::Signal(sig);
            }
            if self.parent.as_ref().is_some_and(ParentWatch::gone) {
                return Wake::ParentDied;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::Elapsed;
            }
            // Without a pidfd the parent is looked at once a second.
            let step = match &self.parent {
                Some(ParentWatch { pidfd: None, .. }) => left.min(Duration::from_secs(1)),
                _ => left,
            };
            let mut fds: Vec<PollFd> = Vec::with_capacity(2);
            if let Some(s) = self.signals {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some(fd) = self.parent.as_ref().and_then(|p| p.pidfd.as_ref()) {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, poll_timeout(step));
            let parent_fired = self.parent.as_ref().is_some_and(|p| p.pidfd.is_some())
                && fds
                    .last()
                    .and_then(PollFd::revents)
                    .is_some_and(|r| !r.is_empty());
            if parent_fired {
                return Wake::ParentDied;
            }
        }
    }
}

/// A poll timeout of at least `d`, rounded up to whole milliseconds.
fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
    PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_liblockfiles() {
        let s: Vec<u64> = (1..=14)
            .map(|n| Schedule::Backoff.delay(n).as_secs())
            .collect();
        assert_eq!(s, [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 60, 60]);
        assert_eq!(Schedule::Backoff.delay(u64::MAX), Duration::from_secs(60));
    }

    #[test]
    fn fixed_and_procmail() {
        let half = Duration::from_millis(500);
        assert_eq!(Schedule::Fixed(half).delay(1), half);
        assert_eq!(Schedule::Fixed(half).delay(99), half);
        assert_eq!(Schedule::PROCMAIL.delay(3), Duration::from_secs(8));
    }

    #[test]
    fn poll_timeout_rounds_up() {
        assert_eq!(i32::from(poll_timeout(Duration::from_micros(1))), 1);
        assert_eq!(i32::from(poll_timeout(Duration::from_secs(2))), 2000);
        assert_eq!(
            i32::from(poll_timeout(Duration::from_secs(u64::MAX))),
            i32::MAX
        );
    }

    #[test]
    fn plain_sleep_sleeps() {
        let start = Instant::now();
        let wake = Sleeper::new(None, None).sleep(Duration::from_millis(30));
        assert_eq!(wake, Wake::Elapsed);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
