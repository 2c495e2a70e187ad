//! The dot-lock protocol a waiter runs: look first, link, back off from a
//! break in progress.
//!
//! Each attempt first looks (`judge::glance`): a lock whose holder is alive, or
//! that is younger than the stale age on the filesystem's clock, is busy
//! without a temporary file being made — idle waiters create nothing, so
//! they do not wake each other. Otherwise it is one `link(2)` attempt
//! ([`crate::link`]); a stale lock is broken (`breaking`).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::acquire::{Holding, Protocol};
use crate::attempt::{Broken, Try};
use crate::breaking;
use crate::error::{Error, Result};
use crate::fs::{Dir, Observed, observe_at};
use crate::judge::{self, FsClock, Glance, Policy, Verdict, glance};
use crate::link::{Attempt, Held, Via, try_lock_full_disk};
use crate::mailbox;
use crate::path::LockPath;
use crate::record::Record;
use crate::shared::{self, Want};

/// A dot-lock to take: the lock path, its opened directory, the owner
/// record, the file mode.
///
/// Each attempt first looks (`judge::glance`): a lock whose holder is alive,
/// or that is younger than the stale age on the filesystem's clock (kept
/// as an offset for at most 30 s), is busy without a temporary file being
/// made — idle waiters create nothing, so they do not wake each other.
///
/// After a successful `link(2)`, a live break lock (`LOCK.break`) means a
/// breaker has confirmed the *previous* lock and is about to unlink the
/// name: our fresh lock may be what it removes. We then back off without
/// using the lock — the breaker's unlink removes it, or, once the break
/// lock is gone and our lock is still there, we claim it. So among
/// lockutils processes a lock that was taken is never removed by a break.
/// On NFS the look at `LOCK.break` right after our own `LINK` is not
/// answered from a stale negative cache: the link changed the directory,
/// and the client revalidates negative entries of a changed directory.
#[derive(Debug)]
pub struct DotLock<'a> {
    lock: &'a LockPath,
    dir: Dir,
    record: &'a [u8],
    mode: u32,
    clock: Cell<Option<FsClock>>,
    /// Our own lock, linked while a break was in progress: (dev, ino).
    deferred: Cell<Option<(u64, u64)>>,
    /// The last busy lock judged by a look, and its verdict: the wait
    /// loop's judgement of the same sight is not made twice.
    judged: std::cell::RefCell<Option<(Observed, Verdict)>>,
    /// Readers hold the lock (`--shared`): our want, posted once we have
    /// seen them, keeps new readers out until we have the lock.
    want: std::cell::RefCell<Want>,
    /// The policy of the last attempt, for breaking a shared lock.
    policy: Cell<Policy>,
    /// The filesystem's clock, for judging readers' shares.
    shares_clock: shared::Clock,
    /// A directory at the lock path is a busy lock, judged by its age,
    /// that cannot be removed (the old tools: liblockfile's `dotlockfile`
    /// waits for it and gives up, exit 4, or finds it stale and cannot
    /// remove it, exit 8; procmail's `lockfile` gives up, 73), instead of
    /// an error at once.
    directory_is_busy: bool,
    /// On a full disk, take the lock with an empty record (procmail's
    /// `lockfile`).
    empty_if_full: bool,
    /// The debris of killed attempts was swept in this wait.
    swept: Cell<bool>,
    /// Attempts made so far.
    tries: Cell<u32>,
}

impl<'a> DotLock<'a> {
    /// A dot-lock at `lock` holding `record`, mode `mode` before the umask
    /// (0644; procmail's lockfile: 0444). Opens the lock's directory.
    pub fn new(lock: &'a LockPath, record: &'a [u8], mode: u32) -> Result<DotLock<'a>> {
        Ok(DotLock {
            lock,
            dir: lock.open_dir()?,
            record,
            mode,
            clock: Cell::new(None),
            deferred: Cell::new(None),
            judged: std::cell::RefCell::new(None),
            want: Default::default(),
            policy: Cell::new(Policy::default()),
            shares_clock: shared::Clock::default(),
            directory_is_busy: false,
            empty_if_full: false,
            swept: Cell::new(false),
            tries: Cell::new(0),
        })
    }

    /// On a full disk, take the lock with an empty record, as procmail's
    /// `lockfile` does (its record, `0`, says nothing an empty one does
    /// not).
    pub fn empty_if_full(mut self) -> Self {
        self.empty_if_full = true;
        self
    }

    /// Treat a directory at the lock path as the old tools do: a busy lock
    /// that cannot be removed. It is never removed.
    pub fn directory_is_busy(mut self) -> Self {
        self.directory_is_busy = true;
        self
    }

    /// The directory at the lock path, seen as a lock without a record.
    fn directory_seen(&self) -> Result<Attempt> {
        let (dir, lock) = (&self.dir, self.lock);
        let meta = match dir.lstat(lock.name()) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => return Ok(Try::Vanished),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Try::Vanished),
            Err(e) => return Err(Error::io(lock.path(), e)),
        };
        let fs_now = crate::fs::fs_now_at(dir, lock.path()).ok();
        Ok(Try::Busy(Observed {
            dev: meta.dev,
            ino: meta.ino,
            size: meta.size,
            mtime: meta.mtime,
            content: None,
            fs_now,
        }))
    }

    /// Readers hold the lock seen: judge it by their shares, and post our
    /// want (a want that cannot be made only leaves readers free to join).
    fn held_shared(&self, seen: Observed, policy: &Policy) -> Result<Attempt> {
        let verdict = shared::judge_shared(&self.dir, self.lock, policy, &self.shares_clock)?;
        let _ = self.want.borrow_mut().post(&self.dir, self.lock);
        self.judged.replace(Some((seen.clone(), verdict)));
        Ok(Try::Busy(seen))
    }

    fn attempt(&self, policy: &Policy) -> Result<Attempt> {
        self.policy.set(*policy);
        self.tries.set(self.tries.get().saturating_add(1));
        let attempt = match self.attempt_once(policy) {
            Err(Error::LockIsDirectory { .. }) if self.directory_is_busy => {
                return self.directory_seen();
            }
            other => other?,
        };
        match attempt {
            Try::Busy(seen) if seen.record().shared => self.held_shared(seen, policy),
            Try::Acquired(_) => {
                self.want.borrow_mut().withdraw();
                Ok(attempt)
            }
            // Once a wait has slept (its release watch is up), its next
            // busy attempt sweeps the debris of killed attempts, once. Not
            // sooner: the time between the first busy look and the watch
            // is a window in which a release is seen only by looking; and
            // never on an uncontended take, where a directory read would
            // cost every lock. "Now" is at least the busy lock's mtime: a
            // clock behind keeps more, never removes more.
            Try::Busy(ref seen) if self.tries.get() > 1 && !self.swept.replace(true) => {
                let now = seen.fs_now.unwrap_or(seen.mtime).max(seen.mtime);
                crate::debris::sweep(&self.dir, now, policy.stale_after);
                Ok(attempt)
            }
            other => Ok(other),
        }
    }

    fn attempt_once(&self, policy: &Policy) -> Result<Attempt> {
        let (dir, lock) = (&self.dir, self.lock);
        if let Some(deferred) = self.deferred.get() {
            match observe_at(dir, lock.name(), lock.path())? {
                // Our very lock: the inode, and our record in it (a freed
                // inode number is soon another file's).
                Some(mut seen) if self.is_our_deferred(&seen, deferred) => {
                    if self.break_in_progress() {
                        seen.fs_now = self.clock.get().and_then(|c| c.now());
                        return Ok(Try::Busy(seen));
                    }
                    self.deferred.set(None);
                    let meta = dir
                        .lstat(lock.name())
                        .map_err(|e| Error::io(lock.path(), e))?;
                    return Ok(Try::Acquired(Held::new(
                        dir.try_clone().map_err(|e| Error::io(lock.dir(), e))?,
                        lock,
                        &meta,
                        self.record,
                        self.mode,
                        Via::Link,
                    )));
                }
                _ => self.deferred.set(None),
            }
        }
        if let Some(mut seen) = observe_at(dir, lock.name(), lock.path())? {
            if seen.record().shared {
                return Ok(Try::Busy(seen));
            }
            let judged = |s: &Observed, now| {
                let s = Observed {
                    fs_now: now,
                    ..s.clone()
                };
                judge::judge_observed(&s, policy)
            };
            if let Glance::Busy(now, verdict) = glance(&seen, self.clock.get(), judged) {
                seen.fs_now = now;
                self.judged.replace(Some((seen.clone(), verdict)));
                return Ok(Try::Busy(seen));
            }
        }
        let attempt = try_lock_full_disk(dir, lock, self.record, self.mode, self.empty_if_full)?;
        match attempt {
            Try::Busy(ref seen) => {
                if let Some(fs) = seen.fs_now {
                    self.clock.set(Some(FsClock::measured(fs)));
                }
                Ok(attempt)
            }
            Try::Acquired(held) if self.break_in_progress() => {
                // A breaker may be about to unlink the name: do not use
                // the lock until the break is over (see the type's docs).
                self.deferred.set(Some((held.dev, held.ino)));
                held.keep();
                match observe_at(dir, lock.name(), lock.path())? {
                    Some(seen) => Ok(Try::Busy(seen)),
                    None => Ok(Try::Vanished),
                }
            }
            other => Ok(other),
        }
    }

    fn is_our_deferred(&self, seen: &Observed, (dev, ino): (u64, u64)) -> bool {
        seen.dev == dev && seen.ino == ino && seen.content.as_deref() == Some(self.record)
    }

    /// Is a live breaker at work on this lock? A file at `LOCK.break`
    /// counts only if it is marked as a break lock (`break=1`) and is not
    /// itself stale.
    fn break_in_progress(&self) -> bool {
        let guard = self.lock.break_lock();
        match observe_at(&self.dir, guard.name(), guard.path()) {
            Ok(Some(mut seen)) => {
                seen.fs_now = self.clock.get().and_then(|c| c.now());
                seen.record().break_lock
                    && !judge::judge_observed(&seen, &judge::break_lock_policy()).is_stale()
            }
            _ => false,
        }
    }
}

impl Drop for DotLock<'_> {
    /// Giving up while backed off: our own unused lock is removed, if it
    /// is still the one we linked.
    fn drop(&mut self) {
        self.want.get_mut().withdraw();
        if let Some(deferred) = self.deferred.take()
            && let Ok(Some(seen)) = observe_at(&self.dir, self.lock.name(), self.lock.path())
            && self.is_our_deferred(&seen, deferred)
        {
            let dir = &self.dir;
            let _ = mailbox::privileged(dir, self.lock.name(), || {
                dir.unlink_this(self.lock.name(), seen.dev, seen.ino)
            });
        }
    }
}

impl Protocol for DotLock<'_> {
    type Held = Held;
    type Seen = Observed;

    fn path(&self) -> &Path {
        self.lock.path()
    }

    /// Linked while a break was in progress, our lock waits for the
    /// break lock to go (or for itself to go, removed by the breaker).
    fn awaited(&self) -> Vec<PathBuf> {
        let lock = self.lock.path().to_path_buf();
        match self.deferred.get() {
            Some(_) => vec![self.lock.break_lock().path().to_path_buf(), lock],
            None => vec![lock],
        }
    }

    fn try_once(&self, policy: &Policy) -> Result<Attempt> {
        mailbox::privileged(&self.dir, self.lock.name(), || self.attempt(policy))
    }

    fn judge(&self, seen: &Observed, policy: &Policy) -> Verdict {
        match self.judged.take() {
            Some((last, verdict)) if last == *seen => verdict,
            // Readers hold it: judged by their shares (an error keeps it).
            _ if seen.record().shared => {
                shared::judge_shared(&self.dir, self.lock, policy, &self.shares_clock).unwrap_or(
                    Verdict::Valid(judge::Reason::Fresh {
                        age: Duration::ZERO,
                    }),
                )
            }
            _ => judge::judge_observed(seen, policy),
        }
    }

    fn break_stale(&self, seen: &Observed) -> Result<Broken> {
        if self.directory_is_busy && self.dir.lstat(self.lock.name()).is_ok_and(|m| m.is_dir()) {
            return Err(Error::StaleNotRemoved {
                path: self.lock.path().into(),
                source: std::io::Error::from_raw_os_error(nix::libc::EISDIR),
            });
        }
        if seen.record().shared {
            return shared::break_orphan(&self.dir, self.lock, &self.policy.get(), || {
                breaking::break_lock(&self.dir, self.lock, seen)
            });
        }
        let broken = mailbox::privileged(&self.dir, self.lock.name(), || {
            breaking::break_lock(&self.dir, self.lock, seen)
        })?;
        // A holder died: its attempts may have left debris too.
        if broken == Broken::Removed
            && let Some(now) = seen.fs_now
        {
            crate::debris::sweep(&self.dir, now, self.policy.get().stale_after);
        }
        Ok(broken)
    }

    fn holder(&self, seen: &Observed) -> (Record, Option<Duration>) {
        (seen.record(), seen.age())
    }
}

impl Holding for Held {
    fn still_ours(&self) -> Result<bool> {
        Held::ours(self)
    }
    fn touch(&self) -> Result<bool> {
        Held::touch(self)
    }
    fn append(&mut self, lines: &[u8]) -> Result<bool> {
        Held::append(self, lines)
    }
    fn release(self) -> Result<bool> {
        Held::release(self)
    }
    fn keep(self) {
        Held::keep(self)
    }
}
