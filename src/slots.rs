//! `--slots N`: a counting semaphore of N ordinary locks.

use std::path::Path;
use std::time::Duration;

use crate::acquire::{Holding, Protocol};
use crate::attempt::{Broken, Try};
use crate::error::Result;
use crate::judge::{Policy, Reason, Verdict};
use crate::path::LockPath;
use crate::record::Record;

/// The locks of `--slots n`: `LOCK.1` … `LOCK.n` ("name too long" where a
/// slot's name would not fit); without slots, the lock itself.
pub fn paths(lock: &LockPath, slots: Option<usize>) -> Result<Vec<LockPath>> {
    match slots {
        None => Ok(vec![lock.clone()]),
        Some(n) => (1..=n).map(|i| lock.sibling(&format!(".{i}"))).collect(),
    }
}

/// A counting semaphore: N ordinary locks (`LOCK.1` … `LOCK.N`), any one
/// of which will do. Each slot is a full lock of its own kind, with an owner
/// record, so a dead holder's slot is reclaimed by the usual stale rules.
///
/// Fairness: every attempt tries the slots in order, 1 to N; a released
/// slot wakes every waiter and the first to take it wins — no queue, the
/// same as a plain lock, and no waiter is worse off for the slots.
#[derive(Debug)]
pub struct AnyOf<P> {
    /// The base path, for messages.
    pub path: std::path::PathBuf,
    /// One lock per slot, slot 1 first.
    pub slots: Vec<P>,
    /// Which slots to break is judged again when breaking.
    pub policy: Policy,
}

impl<P: Protocol> Protocol for AnyOf<P> {
    /// The slot number (from 1) and its lock.
    type Held = (usize, P::Held);
    /// Each slot's number and what was seen of it.
    type Seen = Vec<(usize, P::Seen)>;

    fn path(&self) -> &Path {
        &self.path
    }

    fn awaited(&self) -> Vec<std::path::PathBuf> {
        self.slots.iter().flat_map(Protocol::awaited).collect()
    }

    fn try_once(&self, policy: &Policy) -> Result<Try<Self::Held, Self::Seen>> {
        let mut seen = Vec::with_capacity(self.slots.len());
        let mut vanished = false;
        for (i, slot) in self.slots.iter().enumerate() {
            match slot.try_once(policy)? {
                Try::Acquired(held) => return Ok(Try::Acquired((i + 1, held))),
                Try::Busy(s) => seen.push((i + 1, s)),
                Try::Vanished => vanished = true,
            }
        }
        Ok(if vanished {
            Try::Vanished
        } else {
            Try::Busy(seen)
        })
    }

    fn judge(&self, seen: &Self::Seen, policy: &Policy) -> Verdict {
        let verdicts = seen.iter().map(|(i, s)| self.slots[i - 1].judge(s, policy));
        let mut first = None;
        for v in verdicts {
            if v.is_stale() {
                return v;
            }
            first.get_or_insert(v);
        }
        first.unwrap_or(Verdict::Valid(Reason::Fresh {
            age: Duration::ZERO,
        }))
    }

    fn break_stale(&self, seen: &Self::Seen) -> Result<Broken> {
        let mut outcome = Broken::Busy;
        for (i, s) in seen {
            let slot = &self.slots[i - 1];
            if slot.judge(s, &self.policy).is_stale() {
                match slot.break_stale(s)? {
                    Broken::Removed => outcome = Broken::Removed,
                    Broken::Changed if outcome == Broken::Busy => outcome = Broken::Changed,
                    _ => {}
                }
            }
        }
        Ok(outcome)
    }

    fn holder(&self, seen: &Self::Seen) -> (Record, Option<Duration>) {
        match seen.first() {
            Some((i, s)) => self.slots[i - 1].holder(s),
            None => (Record::default(), None),
        }
    }
}

impl<H: Holding> Holding for (usize, H) {
    fn still_ours(&self) -> Result<bool> {
        self.1.still_ours()
    }
    fn touch(&self) -> Result<bool> {
        self.1.touch()
    }
    fn append(&mut self, lines: &[u8]) -> Result<bool> {
        self.1.append(lines)
    }
    fn release(self) -> Result<bool> {
        self.1.release()
    }
    fn keep(self) {
        self.1.keep()
    }
}
