//! Acquiring a lock: attempts, stale breaking and waiting put together.
//!
//! Each attempt is one run of the dot-lock protocol. A busy lock is judged;
//! a stale one is broken (race-free) and tried again at once, without
//! counting an attempt, as liblockfile does. Otherwise the waiter sleeps on
//! its schedule until the retries or the timeout run out, a caught signal
//! arrives, or the watched parent dies.

use std::time::Instant;

use nix::sys::signal::Signal;

use crate::dotlock::{self, Attempt, Held, LockPath, Observed};
use crate::error::Error;
use crate::stale::{self, Broken, Policy, Verdict};
use crate::wait::{Patience, Sleeper, Wake};

/// Immediate retries allowed in a row (after a lock vanished or was broken)
/// before an attempt counts as failed anyway.
const FREE_RETRIES: u32 = 3;

/// Why acquiring stopped without the lock.
#[derive(Debug)]
pub enum Stop {
    /// An error; see [`Error::exit_code`].
    Error(Error),
    /// A caught signal arrived while waiting. Nothing of ours is left on
    /// disk; the caller should die by it ([`crate::guard::die_by`]).
    Signal(Signal),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Error(e)
    }
}

/// What happened along the way, for `--verbose`.
#[derive(Debug)]
pub enum Event<'a> {
    /// The first failed attempt: someone holds the lock.
    Waiting(&'a Observed),
    /// A stale lock is about to be broken.
    Breaking(&'a Observed, Verdict),
}

/// What to lock, with which record, and how patiently.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub lock: &'a LockPath,
    /// The owner record written into the lock.
    pub record: &'a [u8],
    /// The lock file's mode before the umask (0644; procmail's 0444).
    pub mode: u32,
    pub patience: Patience,
    pub policy: Policy,
    /// Our record for a break lock, should we have to break a stale lock.
    pub breaker: &'a [u8],
}

/// Take the lock, waiting as `request.patience` allows.
pub fn acquire(
    request: &Request<'_>,
    sleeper: &mut Sleeper<'_>,
    mut report: impl FnMut(Event<'_>),
) -> Result<Held, Stop> {
    let deadline = request.patience.timeout.map(|t| Instant::now() + t);
    let mut failures: u64 = 0;
    let mut free = 0;
    let mut announced = false;
    loop {
        if let Some(sig) = sleeper.pending_signal() {
            return Err(Stop::Signal(sig));
        }
        match dotlock::try_lock(request.lock, request.record, request.mode)? {
            Attempt::Acquired(held) => {
                // A signal that came during the attempt still wins.
                if let Some(sig) = sleeper.pending_signal() {
                    drop(held);
                    return Err(Stop::Signal(sig));
                }
                return Ok(held);
            }
            Attempt::Vanished if free < FREE_RETRIES => {
                free += 1;
                continue;
            }
            Attempt::Vanished => {}
            Attempt::Busy(seen) => {
                let verdict = stale::judge_observed(&seen, &request.policy);
                if verdict.is_stale() && free < FREE_RETRIES {
                    report(Event::Breaking(&seen, verdict));
                    match stale::break_lock(request.lock, &seen, request.breaker)? {
                        Broken::Removed | Broken::Changed => {
                            free += 1;
                            continue;
                        }
                        Broken::Busy => {}
                    }
                }
                if !announced {
                    report(Event::Waiting(&seen));
                    announced = true;
                }
            }
        }
        free = 0;
        failures += 1;
        if request.patience.retries.is_some_and(|r| failures > r) {
            return Err(Error::Busy {
                path: request.lock.path().into(),
                attempts: failures,
            }
            .into());
        }
        let mut delay = request.patience.schedule.delay(failures);
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::TimedOut {
                    path: request.lock.path().into(),
                }
                .into());
            }
            delay = delay.min(left);
        }
        match sleeper.sleep(delay) {
            Wake::Elapsed => {}
            Wake::Signal(sig) => return Err(Stop::Signal(sig)),
            Wake::ParentDied => return Err(Error::ParentDied.into()),
        }
    }
}
