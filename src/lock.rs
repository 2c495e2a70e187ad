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
}

/// Take the lock, waiting as `request.patience` allows.
///
/// Attempts are counted as the schedule says: after the n-th failure the
/// waiter sleeps `schedule.delay(n)` before the next counted attempt. If the
/// sleeper sees the lock released meanwhile, it makes an extra attempt at
/// once; should that one lose the race, it sleeps out the rest of the
/// period. So waking early makes hand-over fast without changing `-r N`:
/// N+1 counted attempts, over the same total patience.
pub fn acquire(
    request: &Request<'_>,
    sleeper: &mut Sleeper<'_>,
    mut report: impl FnMut(Event<'_>),
) -> Result<Held, Stop> {
    let deadline = request.patience.timeout.map(|t| Instant::now() + t);
    let mut failures: u64 = 0;
    let mut announced = false;
    loop {
        if let Some(held) = attempt(request, sleeper, &mut report, &mut announced)? {
            return Ok(held);
        }
        failures += 1;
        if request.patience.retries.is_some_and(|r| failures > r) {
            return Err(Error::Busy {
                path: request.lock.path().into(),
                attempts: failures,
            }
            .into());
        }
        let now = Instant::now();
        let mut until = now + request.patience.schedule.delay(failures);
        if let Some(deadline) = deadline {
            if now >= deadline {
                return Err(Error::TimedOut {
                    path: request.lock.path().into(),
                }
                .into());
            }
            until = until.min(deadline);
        }
        loop {
            match sleeper.sleep(until.saturating_duration_since(Instant::now())) {
                Wake::Elapsed => break,
                Wake::Released => {
                    if let Some(held) = attempt(request, sleeper, &mut report, &mut announced)? {
                        return Ok(held);
                    }
                }
                Wake::Signal(sig) => return Err(Stop::Signal(sig)),
                Wake::ParentDied => return Err(Error::ParentDied.into()),
            }
        }
    }
}

/// One attempt, retried at once (up to [`FREE_RETRIES`] times) when the
/// lock vanished under us or a stale lock was broken. `Ok(None)`: busy.
fn attempt(
    request: &Request<'_>,
    sleeper: &Sleeper<'_>,
    report: &mut impl FnMut(Event<'_>),
    announced: &mut bool,
) -> Result<Option<Held>, Stop> {
    for _ in 0..=FREE_RETRIES {
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
                return Ok(Some(held));
            }
            Attempt::Vanished => continue,
            Attempt::Busy(seen) => {
                let verdict = stale::judge_observed(&seen, &request.policy);
                if verdict.is_stale() {
                    report(Event::Breaking(&seen, verdict));
                    match stale::break_lock(request.lock, &seen)? {
                        Broken::Removed | Broken::Changed => continue,
                        Broken::Busy => {}
                    }
                }
                if !*announced {
                    report(Event::Waiting(&seen));
                    *announced = true;
                }
                return Ok(None);
            }
        }
    }
    Ok(None)
}
