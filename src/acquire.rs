//! Acquiring a lock: attempts, stale breaking and waiting put together,
//! for any kind of lock ([`Protocol`]): dot-locks and lock directories.
//!
//! Each attempt is one run of the lock's protocol. A busy lock is judged;
//! a stale one is broken (race-free) and tried again at once, without
//! counting an attempt, as liblockfile does. Otherwise the waiter sleeps on
//! its schedule until the retries or the timeout run out, a caught signal
//! arrives, or the watched parent dies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::signals::Sig;

use crate::attempt::{Broken, Try};
use crate::error::{Error, Result};
use crate::judge::{Policy, Verdict};
use crate::record::Record;
use crate::wait::{Patience, Sleeper, Wake};

/// Immediate retries allowed in a row (after a lock vanished or was broken)
/// before an attempt counts as failed anyway.
const FREE_RETRIES: u32 = 3;

/// A kind of lock: how to try it once, judge a holder, break a stale one.
pub trait Protocol {
    /// What we hold once acquired.
    type Held;
    /// What a waiter saw of somebody else's lock.
    type Seen;

    /// The lock's path.
    fn path(&self) -> &Path;
    /// One attempt. `policy` lets it tell, before creating anything, that
    /// a busy lock is surely not stale.
    fn try_once(&self, policy: &Policy) -> Result<Try<Self::Held, Self::Seen>>;
    /// Is the lock seen stale?
    fn judge(&self, seen: &Self::Seen, policy: &Policy) -> Verdict;
    /// Remove the stale lock seen, race-free.
    fn break_stale(&self, seen: &Self::Seen) -> Result<Broken>;
    /// Who holds it, and for how long (for messages).
    fn holder(&self, seen: &Self::Seen) -> (Record, Option<Duration>);
    /// After a busy attempt: the locks whose release is worth an attempt
    /// at once — the lock itself, unless the attempt is waiting for
    /// something else (a dot-lock linked during a break waits for the
    /// break lock to go).
    fn awaited(&self) -> Vec<PathBuf> {
        vec![self.path().to_path_buf()]
    }
}

/// A lock we hold, as command mode needs it.
pub trait Holding {
    /// Is the lock still the one we created? `Err`: the look failed (an
    /// I/O error, no descriptor left), which proves nothing either way.
    fn still_ours(&self) -> Result<bool>;
    /// Is the lock still the one we created, as far as can be seen (a
    /// failed look counts as no: what is not proven ours is not removed)?
    fn is_ours(&self) -> bool {
        self.still_ours().unwrap_or(false)
    }
    /// Refresh its timestamp, if still ours.
    fn touch(&self) -> Result<bool>;
    /// Append `lines` to its record, if still ours: the command run under
    /// it ([`Record::child_lines`]), so that the lock is not judged dead
    /// while the command lives; its keeper ([`Record::keeper_lines`]).
    fn append(&mut self, lines: &[u8]) -> Result<bool>;
    /// Remove it if still ours; `Ok(false)`: it was not, and was left alone.
    fn release(self) -> Result<bool>;
    /// Leave it in place.
    fn keep(self);
}

/// Why acquiring stopped without the lock.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// An error; see [`Error::exit_code`].
    #[error(transparent)]
    Error(#[from] Error),
    /// A caught signal arrived while waiting. Nothing of ours is left on
    /// disk; the caller should die by it ([`crate::signals::die_by`]).
    #[error("{0} arrived while waiting")]
    Signal(Sig),
}

/// What happened along the way, for `--verbose`.
#[derive(Debug)]
pub enum Event {
    /// The first failed attempt: someone holds the lock.
    Waiting {
        holder: Record,
        age: Option<Duration>,
    },
    /// A stale lock is about to be broken.
    Breaking { holder: Record, verdict: Verdict },
    /// Sleeping before the next counted attempt (only with a ticking
    /// sleeper, at each tick): `attempt` attempts of `attempts` (`None`:
    /// no limit) have failed, the next is due in `next_in`; the holder as
    /// last seen, and how long ago it was seen so.
    Pausing {
        holder: Option<(Record, Option<Duration>)>,
        seen_ago: Duration,
        attempt: u64,
        attempts: Option<u64>,
        next_in: Duration,
    },
}

/// Take the lock, waiting as `patience` allows.
///
/// Attempts are counted as the schedule says: after the n-th failure the
/// waiter sleeps `schedule.delay(n)` before the next counted attempt. If the
/// sleeper sees the lock released meanwhile, it makes an extra attempt at
/// once; should that one lose the race, it sleeps out the rest of the
/// period. So waking early makes hand-over fast without changing `-r N`:
/// N+1 counted attempts, over the same total patience.
pub fn acquire<P: Protocol>(
    lock: &P,
    patience: &Patience,
    policy: &Policy,
    sleeper: &mut Sleeper<'_>,
    mut report: impl FnMut(Event),
) -> Result<P::Held, Stop> {
    // A deadline beyond what the clock can hold is no deadline.
    let deadline = patience.timeout.and_then(|t| Instant::now().checked_add(t));
    let mut failures: u64 = 0;
    let mut announced = false;
    let mut last = None;
    let mut seen_at = Instant::now();
    let ticking = sleeper.tick();
    let mut attempt = |sleeper: &Sleeper<'_>, report: &mut dyn FnMut(Event), last: &mut _| {
        attempt(
            lock,
            policy,
            sleeper,
            report,
            &mut announced,
            ticking.map(|_| last),
        )
    };
    loop {
        crate::seam::counted_attempt();
        if let Some(held) = attempt(sleeper, &mut report, &mut last)? {
            return Ok(held);
        }
        sleeper.awaiting(lock.awaited());
        seen_at = if ticking.is_some() {
            Instant::now()
        } else {
            seen_at
        };
        failures += 1;
        if patience.retries.is_some_and(|r| failures > r) {
            return Err(Error::Busy {
                path: lock.path().into(),
                attempts: failures,
            }
            .into());
        }
        if failures == 1 {
            sleeper.ready().map_err(|e| Error::io("signalfd", e))?;
        }
        let now = Instant::now();
        let far = now + Duration::from_secs(86_400 * 365);
        let mut until = now
            .checked_add(patience.schedule.delay(failures))
            .unwrap_or(far)
            .min(far);
        if let Some(deadline) = deadline {
            if now >= deadline {
                return Err(Error::TimedOut {
                    path: lock.path().into(),
                }
                .into());
            }
            until = until.min(deadline);
        }
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let step = match ticking {
                Some(tick) => {
                    report(Event::Pausing {
                        holder: last.clone(),
                        seen_ago: seen_at.elapsed(),
                        attempt: failures,
                        attempts: patience.retries.map(|r| r.saturating_add(1)),
                        next_in: left,
                    });
                    left.min(tick)
                }
                None => left,
            };
            match sleeper.sleep(step) {
                Wake::Elapsed if Instant::now() < until => {}
                Wake::Elapsed => break,
                Wake::Released => {
                    if let Some(held) = attempt(sleeper, &mut report, &mut last)? {
                        return Ok(held);
                    }
                    sleeper.awaiting(lock.awaited());
                }
                Wake::Signal(sig) => return Err(Stop::Signal(sig)),
                Wake::ParentDied => return Err(Error::ParentDied.into()),
            }
        }
    }
}

/// One attempt, retried at once (up to [`FREE_RETRIES`] times) when the
/// lock vanished under us or a stale lock was broken. `Ok(None)`: busy.
///
/// `last`, if given, is set to the holder of a busy lock.
fn attempt<P: Protocol>(
    lock: &P,
    policy: &Policy,
    sleeper: &Sleeper<'_>,
    report: &mut dyn FnMut(Event),
    announced: &mut bool,
    last: Option<&mut Option<(Record, Option<Duration>)>>,
) -> Result<Option<P::Held>, Stop> {
    for _ in 0..=FREE_RETRIES {
        if let Some(sig) = sleeper.pending_signal() {
            return Err(Stop::Signal(sig));
        }
        let tried = match lock.try_once(policy) {
            // On NFS: another client changed the lock between two calls of
            // the attempt. Look again; never give up on it.
            Err(e) if e.is_stale_handle() => continue,
            other => other?,
        };
        match tried {
            Try::Acquired(held) => {
                // A signal that came during the attempt still wins.
                if let Some(sig) = sleeper.pending_signal() {
                    drop(held);
                    return Err(Stop::Signal(sig));
                }
                return Ok(Some(held));
            }
            Try::Vanished => continue,
            Try::Busy(seen) => {
                let verdict = lock.judge(&seen, policy);
                if verdict.is_stale() {
                    let (holder, _) = lock.holder(&seen);
                    report(Event::Breaking { holder, verdict });
                    // A signal that came while reporting (procmail's
                    // suspend) ends the wait before anything is removed.
                    if let Some(sig) = sleeper.pending_signal() {
                        return Err(Stop::Signal(sig));
                    }
                    match lock.break_stale(&seen)? {
                        Broken::Removed | Broken::Changed => continue,
                        Broken::Busy => {}
                    }
                }
                if !*announced {
                    let (holder, age) = lock.holder(&seen);
                    report(Event::Waiting { holder, age });
                    *announced = true;
                }
                if let Some(last) = last {
                    *last = Some(lock.holder(&seen));
                }
                return Ok(None);
            }
        }
    }
    Ok(None)
}
