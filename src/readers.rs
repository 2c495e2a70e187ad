//! The reader a waiter runs with `--shared`: join the readers of a
//! dot-lock or of a lock directory, and leave them (the protocol is in
//! [`crate::shared`]).

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::acquire::{Holding, Protocol};
use crate::attempt::{Broken, Try};
use crate::breaking;
use crate::error::{Error, Result};
use crate::fs::{Dir, Observed, observe_at, touch_at};
use crate::judge::{self, Policy, Reason, Verdict};
use crate::link::{Held, try_lock_at};
use crate::lockdir;
use crate::mkdir::{self, OWNER, SeenDir, Sweep};
use crate::path::LockPath;
use crate::record::Record;
use crate::retry::again;
use crate::shared::{
    self, Clock, GATE_WAIT_JOINING, GATE_WAIT_LEAVING, Member, SHARE, WANT, enter_gate, gate_seen,
    members, new_member,
};

/// What readers hold together: a dot-lock, or a lock directory (whose
/// ownerless directories are stale after `grace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory { grace: Duration },
}

/// What was seen at `LOCK`: a lock file, or a lock directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    File(Observed),
    Directory(SeenDir),
}

impl Seen {
    /// The owner record.
    pub fn record(&self) -> Record {
        match self {
            Seen::File(s) => s.record(),
            Seen::Directory(s) => s.record(),
        }
    }

    /// Held by readers together?
    pub fn is_shared(&self) -> bool {
        self.record().shared
    }

    fn id(&self) -> (u64, u64) {
        match self {
            Seen::File(s) => (s.dev, s.ino),
            Seen::Directory(s) => (s.dev, s.ino),
        }
    }

    fn age(&self) -> Option<Duration> {
        match self {
            Seen::File(s) => s.age(),
            Seen::Directory(s) => s.age(),
        }
    }

    fn set_now(&mut self, now: std::time::SystemTime) {
        match self {
            Seen::File(s) => s.fs_now = Some(now),
            Seen::Directory(s) => s.fs_now = Some(now),
        }
    }
}

impl Kind {
    /// Look at `LOCK`.
    fn look(self, dir: &Dir, lock: &LockPath) -> Result<Option<Seen>> {
        Ok(match self {
            Kind::File => observe_at(dir, lock.name(), lock.path())?.map(Seen::File),
            Kind::Directory { .. } => {
                mkdir::observe_at(dir, lock.name(), lock.path())?.map(Seen::Directory)
            }
        })
    }

    /// Create `LOCK` held by readers together: its (dev, ino), or what
    /// came first.
    fn make_shared(self, dir: &Dir, lock: &LockPath) -> Result<Try<(u64, u64), Seen>> {
        let record = shared_record();
        Ok(match self {
            Kind::File => match try_lock_at(dir, lock, &record, 0o644)? {
                Try::Acquired(made) => {
                    let id = (made.dev, made.ino);
                    made.keep();
                    Try::Acquired(id)
                }
                Try::Busy(seen) => Try::Busy(Seen::File(seen)),
                Try::Vanished => Try::Vanished,
            },
            Kind::Directory { .. } => match mkdir::try_lock_at(dir, lock, &record)? {
                Try::Acquired(made) => {
                    let id = made.id();
                    made.keep();
                    Try::Acquired(id)
                }
                Try::Busy(seen) => Try::Busy(Seen::Directory(seen)),
                Try::Vanished => Try::Vanished,
            },
        })
    }

    /// Touch `LOCK` (a lock directory: its owner record).
    fn touch(self, dir: &Dir, lock: &LockPath) -> Result<bool> {
        match self {
            Kind::File => touch_at(dir, lock.name(), lock.path()),
            Kind::Directory { .. } => {
                let inside = match again(|| dir.open_child(lock.name())) {
                    Ok(inside) => inside,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                    Err(e) => return Err(Error::io(lock.path(), e)),
                };
                touch_at(&inside, OsStr::new(OWNER), &lock.path().join(OWNER))
            }
        }
    }

    /// Remove the shared `LOCK` seen (no reader is left).
    fn remove(self, dir: &Dir, lock: &LockPath, seen: &Seen) -> Result<()> {
        let (dev, ino) = seen.id();
        match self {
            Kind::File => match again(|| dir.unlink_this(lock.name(), dev, ino)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(lock.path(), e)),
            },
            Kind::Directory { .. } => {
                mkdir::remove_dir(dir, lock, Some((dev, ino)), Sweep::All).map(drop)
            }
        }
    }

    /// Judge a writer's (or a legacy tool's) lock seen at `LOCK`.
    pub fn judge_held(self, seen: &Seen, policy: &Policy) -> Verdict {
        match (self, seen) {
            (Kind::Directory { grace }, Seen::Directory(s)) => lockdir::judge(s, grace, policy),
            (_, Seen::File(s)) => judge::judge_observed(s, policy),
            (Kind::File, Seen::Directory(_)) => Verdict::Valid(Reason::Fresh {
                age: Duration::ZERO,
            }),
        }
    }

    /// Break the stale lock seen at `LOCK`, race-free.
    pub fn break_held(self, dir: &Dir, lock: &LockPath, seen: &Seen) -> Result<Broken> {
        match seen {
            Seen::File(s) => breaking::break_lock(dir, lock, s),
            Seen::Directory(s) => lockdir::break_dir(dir, lock, s),
        }
    }
}

/// The record of a `LOCK` held by readers together: no holder (`0`), this
/// host and when, and the mark.
fn shared_record() -> Vec<u8> {
    Record {
        shared: true,
        ..Record::for_holder(None, Some("readers".into()))
    }
    .to_bytes()
}

/// What keeps a reader out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// `LOCK` is held by a writer, or a legacy tool: judged and broken as
    /// any lock.
    Holder(Seen),
    /// A writer is waiting (its want).
    Writer(Observed),
    /// The gate stayed busy.
    Gate(Option<Observed>),
}

/// A reader to take a share of `lock`, with `record` as its share's
/// owner record.
#[derive(Debug)]
pub struct Reader<'a> {
    lock: &'a LockPath,
    kind: Kind,
    dir: Dir,
    record: &'a [u8],
    clock: Clock,
    /// The last attempt found the gate busy: the wait is for the gate.
    gated: std::cell::Cell<bool>,
}

impl<'a> Reader<'a> {
    /// A reader of `lock`, of `kind`, whose share holds `record`. Opens
    /// the directory.
    pub fn new(lock: &'a LockPath, kind: Kind, record: &'a [u8]) -> Result<Reader<'a>> {
        shared::check_names(lock)?;
        Ok(Reader {
            lock,
            kind,
            dir: lock.open_dir()?,
            record,
            clock: Clock::default(),
            gated: std::cell::Cell::new(false),
        })
    }

    fn look(&self) -> Result<Option<Seen>> {
        Ok(self.kind.look(&self.dir, self.lock)?.map(|mut seen| {
            seen.set_now(self.clock.now(&self.dir, self.lock.path()));
            seen
        }))
    }

    fn waiting_writer(&self, policy: &Policy) -> Result<Option<Observed>> {
        Ok(members(&self.dir, self.lock, WANT, policy, &self.clock)?
            .into_iter()
            .next()
            .map(|m| m.seen))
    }

    /// Under the gate: join the readers, or say what keeps us out.
    fn join(&self, policy: &Policy) -> Result<Try<Share, Blocker>> {
        if let Some(want) = self.waiting_writer(policy)? {
            return Ok(Try::Busy(Blocker::Writer(want)));
        }
        let (dir, lock, kind) = (&self.dir, self.lock, self.kind);
        let seen = match self.look()? {
            Some(seen) if !seen.is_shared() => return Ok(Try::Busy(Blocker::Holder(seen))),
            seen => seen,
        };
        let share = match try_lock_at(dir, &new_member(lock, SHARE)?, self.record, 0o644)? {
            Try::Acquired(share) => share,
            // The name is ours alone: taken, it was taken by chance.
            _ => return Ok(Try::Vanished),
        };
        let joined = match seen {
            // Readers hold it: join them, and say so with a touch. It is
            // still the one seen: only a reader leaving or a breaker could
            // remove it, and both need the gate.
            Some(seen) => {
                if !kind.touch(dir, lock)? {
                    share.release()?;
                    return Ok(Try::Vanished);
                }
                seen.id()
            }
            // Free: make it shared. A writer may take it first.
            None => match kind.make_shared(dir, lock)? {
                Try::Acquired(id) => id,
                Try::Busy(seen) if !seen.is_shared() => {
                    share.release()?;
                    return Ok(Try::Busy(Blocker::Holder(seen)));
                }
                _ => {
                    share.release()?;
                    return Ok(Try::Vanished);
                }
            },
        };
        Ok(Try::Acquired(Share {
            dir: dir.try_clone().map_err(|e| Error::io(lock.dir(), e))?,
            lock: lock.clone(),
            kind,
            share: Some(share),
            joined,
            policy: *policy,
        }))
    }
}

impl Protocol for Reader<'_> {
    type Held = Share;
    type Seen = Blocker;

    fn path(&self) -> &Path {
        self.lock.path()
    }

    /// Kept out by the gate (another reader joining or leaving), a reader
    /// waits for the gate to go, not for the lock.
    fn awaited(&self) -> Vec<std::path::PathBuf> {
        let lock = self.lock.path().to_path_buf();
        match self.gated.get().then(|| self.lock.sibling(shared::GATE)) {
            Some(Ok(gate)) => vec![gate.path().to_path_buf()],
            _ => vec![lock],
        }
    }

    fn try_once(&self, policy: &Policy) -> Result<Try<Share, Blocker>> {
        self.gated.set(false);
        // Look first, without the gate: a writer's lock or a waiting
        // writer keeps us out, and idle readers then create nothing.
        match self.look()? {
            Some(seen) if !seen.is_shared() => return Ok(Try::Busy(Blocker::Holder(seen))),
            _ => {}
        }
        if let Some(want) = self.waiting_writer(policy)? {
            return Ok(Try::Busy(Blocker::Writer(want)));
        }
        let Some(gate) = enter_gate(&self.dir, self.lock, GATE_WAIT_JOINING)? else {
            self.gated.set(true);
            return Ok(Try::Busy(Blocker::Gate(gate_seen(&self.dir, self.lock))));
        };
        crate::seam::pause("IN_GATE");
        let joined = self.join(policy);
        gate.release()?;
        joined
    }

    fn judge(&self, seen: &Blocker, policy: &Policy) -> Verdict {
        match seen {
            Blocker::Holder(seen) => self.kind.judge_held(seen, policy),
            Blocker::Writer(_) | Blocker::Gate(_) => Verdict::Valid(Reason::Fresh {
                age: Duration::ZERO,
            }),
        }
    }

    fn break_stale(&self, seen: &Blocker) -> Result<Broken> {
        match seen {
            Blocker::Holder(seen) => self.kind.break_held(&self.dir, self.lock, seen),
            _ => Ok(Broken::Busy),
        }
    }

    fn holder(&self, seen: &Blocker) -> (Record, Option<Duration>) {
        match seen {
            Blocker::Holder(seen) => (seen.record(), seen.age()),
            Blocker::Writer(seen) | Blocker::Gate(Some(seen)) => (seen.record(), seen.age()),
            Blocker::Gate(None) => (Record::default(), None),
        }
    }
}

/// A reader's share of a lock, and the shared `LOCK` it joined. Dropping
/// it leaves (best effort); [`Holding::keep`] leaves it in place for a
/// later `-u --shared`.
#[must_use = "dropping a Share leaves the readers at once"]
#[derive(Debug)]
pub struct Share {
    dir: Dir,
    lock: LockPath,
    kind: Kind,
    share: Option<Held>,
    /// The shared `LOCK` joined: (dev, ino).
    joined: (u64, u64),
    policy: Policy,
}

impl Share {
    /// Is `LOCK` still the shared lock we joined?
    fn lock_is_joined(&self) -> bool {
        matches!(self.kind.look(&self.dir, &self.lock),
            Ok(Some(seen)) if seen.id() == self.joined && seen.is_shared())
    }

    fn leave(&mut self) -> Result<bool> {
        let Some(share) = self.share.take() else {
            return Ok(false);
        };
        let gate = enter_gate(&self.dir, &self.lock, GATE_WAIT_LEAVING);
        let ours = share.release();
        if let Ok(Some(gate)) = gate {
            let left = remove_if_unshared(&self.dir, &self.lock, self.kind, &self.policy);
            gate.release()?;
            left?;
        }
        ours
    }
}

/// Under the gate: remove the shared `LOCK` if no live share is left.
fn remove_if_unshared(dir: &Dir, lock: &LockPath, kind: Kind, policy: &Policy) -> Result<()> {
    if !members(dir, lock, SHARE, policy, &Clock::default())?.is_empty() {
        return Ok(());
    }
    match kind.look(dir, lock)? {
        Some(seen) if seen.is_shared() => kind.remove(dir, lock, &seen),
        _ => Ok(()),
    }
}

impl Holding for Share {
    fn still_ours(&self) -> Result<bool> {
        match &self.share {
            None => Ok(false),
            Some(share) => Ok(share.ours()? && self.lock_is_joined()),
        }
    }

    fn touch(&self) -> Result<bool> {
        let Some(share) = &self.share else {
            return Ok(false);
        };
        if !share.touch()? || !self.lock_is_joined() {
            return Ok(false);
        }
        self.kind.touch(&self.dir, &self.lock)
    }

    fn append(&mut self, lines: &[u8]) -> Result<bool> {
        match &mut self.share {
            Some(share) => share.append(lines),
            None => Ok(false),
        }
    }

    fn release(mut self) -> Result<bool> {
        self.leave()
    }

    fn keep(mut self) {
        if let Some(share) = self.share.take() {
            share.keep();
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

/// `-u --shared`: leave for every share of `lock` in `ours` (the caller's,
/// as the caller judged them): each is removed, then, under the gate,
/// `LOCK` if no live share is left.
pub fn leave_shares(lock: &LockPath, kind: Kind, ours: &[Member], policy: &Policy) -> Result<()> {
    let dir = lock.open_dir()?;
    let gate = enter_gate(&dir, lock, GATE_WAIT_LEAVING)?;
    let mut removed = Ok(());
    for m in ours {
        match again(|| dir.unlink_this(m.path.name(), m.seen.dev, m.seen.ino)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => removed = Err(Error::io(m.path.path(), e)),
        }
    }
    if let Some(gate) = gate {
        let left = remove_if_unshared(&dir, lock, kind, policy);
        gate.release()?;
        left?;
    }
    removed
}

/// `-t --shared`: touch the shares in `ours`, and the shared `LOCK`.
/// `Ok(false)`: none was there to touch.
pub fn touch_shares(lock: &LockPath, kind: Kind, ours: &[Member]) -> Result<bool> {
    let dir = lock.open_dir()?;
    let mut touched = false;
    for m in ours {
        touched |= touch_at(&dir, m.path.name(), m.path.path())?;
    }
    if touched && kind.look(&dir, lock)?.is_some_and(|s| s.is_shared()) {
        kind.touch(&dir, lock)?;
    }
    Ok(touched)
}
