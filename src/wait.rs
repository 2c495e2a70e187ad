//! How long to wait between attempts, and the sleep itself.
//!
//! Schedules: liblockfile's backoff (sleep 5, 10, 15 … 60 s), a fixed
//! interval (`-i`), and procmail's constant 8 s. `-r N` means N retries,
//! N+1 attempts; `--timeout` bounds the whole wait, with a last attempt
//! when it runs out.
//!
//! The sleep is a `poll(2)` on the descriptors that must cut it short: the
//! signalfd of caught signals — so that a signal is handled in ordinary
//! code with nothing left behind, and so that the dnotify events of the
//! lock's directory wake the waiter the moment the lock is released (see
//! [`ReleaseWatch`]) — and, for `-p` without a command, a pidfd of the
//! parent, so that its death ends the wait at once. A sleeping waiter uses
//! no CPU. On a remote filesystem the poll also ends when a release probe
//! is due ([`ReleaseProbe`]): other machines' releases are seen only so.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::signals::{Sig, Signals};
use nix::sys::signal::Signal;

use crate::early_wake::EarlyWake;
use crate::watch::ParentWatch;

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
    /// The lock was released (its name removed or renamed away).
    Released,
    /// A caught signal arrived.
    Signal(Sig),
    /// The watched parent died.
    ParentDied,
}

/// Sleeps, waking early for what matters.
#[derive(Debug)]
pub struct Sleeper<'a> {
    signals: Option<&'a Signals>,
    parent: Option<ParentWatch>,
    /// Early wake on a release, if asked for.
    release: Option<EarlyWake>,
    /// Wake this often to show progress (a live status line).
    tick: Option<Duration>,
}

impl<'a> Sleeper<'a> {
    pub fn new(signals: Option<&'a Signals>, parent: Option<ParentWatch>) -> Self {
        Sleeper {
            signals,
            parent,
            release: None,
            tick: None,
        }
    }

    /// Have the waiter report its progress every `every` while it sleeps
    /// ([`crate::acquire::Event::Pausing`]).
    pub fn ticking(mut self, every: Duration) -> Self {
        self.tick = Some(every);
        self
    }

    /// How often progress is to be reported, if at all.
    pub fn tick(&self) -> Option<Duration> {
        self.tick
    }

    /// Also wake when one of `locks` (all in `dir`) is released. The watch
    /// is set up at the first sleep — an uncontended lock never pays for it
    /// — and put again on what is at the names after every attempt
    /// ([`Sleeper::awaiting`]), so a release in between is not missed. On
    /// a remote filesystem the locks are also probed for releases made on
    /// other machines.
    pub fn wake_on_release(mut self, locks: Vec<PathBuf>, dir: &Path) -> Self {
        self.release = Some(EarlyWake::new(locks, dir));
        self
    }

    /// An attempt found the lock busy: from now on, await the release of
    /// `locks` (the protocol's [`crate::acquire::Protocol::awaited`]), as
    /// they are at the next sleep.
    pub fn awaiting(&mut self, locks: Vec<PathBuf>) {
        if let Some(release) = &mut self.release {
            release.awaiting(locks);
        }
    }

    /// Before the first sleep: what the sleep needs, made now (the
    /// signals' descriptor), so that a failure is said before waiting.
    pub fn ready(&self) -> std::io::Result<()> {
        self.signals.map_or(Ok(()), Signals::ready)
    }

    /// The wait is over and the process will end soon after the lock is
    /// released: leave the release watch to the process's exit
    /// ([`ReleaseWatch::linger`]) rather than close it now.
    pub fn linger(&mut self) {
        if let Some(release) = &mut self.release {
            release.linger();
        }
    }

    /// A caught signal that is already pending, if any. Directory
    /// notifications (SIGIO) are consumed and not reported: the attempt
    /// about to be made looks at the lock anyway.
    pub fn pending_signal(&self) -> Option<Sig> {
        let signals = self.signals?;
        while let Some(sig) = signals.take() {
            if sig != Signal::SIGIO {
                return Some(sig);
            }
        }
        None
    }

    /// Sleep for `d`, or less if a signal arrives, the lock is released or
    /// the parent dies. No CPU is used meanwhile: one `poll(2)`.
    pub fn sleep(&mut self, d: Duration) -> Wake {
        let now = Instant::now();
        let far = now + Duration::from_secs(86_400 * 365);
        let deadline = now.checked_add(d).unwrap_or(far).min(far);
        let signals = self.signals;
        let sigio = || signals.is_some_and(|s| s.catches(Signal::SIGIO));
        if self.release.as_mut().is_some_and(|r| r.arm(sigio)) {
            return Wake::Released;
        }
        loop {
            while let Some(sig) = self.signals.and_then(Signals::take) {
                if sig != Signal::SIGIO {
                    return Wake::Signal(sig);
                }
                if self
                    .release
                    .as_mut()
                    .is_some_and(EarlyWake::directory_changed)
                {
                    return Wake::Released;
                }
            }
            if self.parent.as_ref().is_some_and(ParentWatch::gone) {
                return Wake::ParentDied;
            }
            if let Some(release) = &mut self.release
                && release.probe()
            {
                return Wake::Released;
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Wake::Elapsed;
            }
            // Without a pidfd the parent is looked at once a second.
            let mut step = match &self.parent {
                Some(ParentWatch { pidfd: None, .. }) => left.min(Duration::from_secs(1)),
                _ => left,
            };
            if let Some(due) = self.release.as_ref().and_then(EarlyWake::due) {
                step = step.min(due.saturating_duration_since(now));
            }
            let parent_fd = self.parent.as_ref().and_then(|p| p.pidfd.as_ref());
            let watch = self.release.as_ref().and_then(EarlyWake::inode_watch);
            let mut fds: Vec<PollFd> = Vec::with_capacity(3);
            if let Some(fd) = self.signals.and_then(|s| s.pollable().ok()) {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            let parent_at = fds.len();
            if let Some(fd) = parent_fd {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let watch_at = fds.len();
            if let Some(w) = watch {
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, poll_timeout(step));
            let fired = |at: usize| {
                fds.get(at)
                    .and_then(PollFd::revents)
                    .is_some_and(|r| !r.is_empty())
            };
            if parent_fd.is_some() && fired(parent_at) {
                return Wake::ParentDied;
            }
            if watch.is_some_and(|w| fired(watch_at) && w.released()) {
                return Wake::Released;
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
