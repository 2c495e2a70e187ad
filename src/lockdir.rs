//! The lock-directory protocol a waiter runs: one `mkdir(2)` attempt
//! (`mkdir`), a busy lock judged — by its owner record, or without
//! one by age against a grace period — first without creating anything,
//! and a stale one broken under `LOCK.break`.

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::time::Duration;

use nix::libc;

use crate::acquire::Protocol;
use crate::attempt::{Broken, Try};
use crate::breaking;
use crate::error::Result;
use crate::fs::{self as rel, Dir};
use crate::judge::{self, FsClock, Glance, Here, Policy, Reason, SystemProbe, Verdict, glance};
pub use crate::mkdir::{HeldDir, SeenDir, Sweep, observe, remove_dir};
use crate::mkdir::{observe_at, try_lock_at};
use crate::path::LockPath;
use crate::record::Record;
use crate::shared::{self, Want};

/// How long a directory without an owner file is presumed to be in the
/// middle of being created.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Judge a lock directory: by its record, or — without one — by age
/// against the grace period.
pub fn judge(seen: &SeenDir, grace: Duration, policy: &Policy) -> Verdict {
    let age = seen.age().unwrap_or(Duration::ZERO);
    match &seen.owner {
        None if age >= grace && seen.fs_now.is_some() => Verdict::Stale(Reason::Aged { age }),
        None => Verdict::Valid(Reason::Fresh { age }),
        Some(owner) => judge::judge(&owner.record(), age, &Here::current(), policy, &SystemProbe),
    }
}

/// A lock directory to take. Like [`crate::dotlock::DotLock`], an attempt on a
/// busy lock creates nothing while its holder is alive or the lock young.
#[derive(Debug)]
pub struct DirLock<'a> {
    lock: &'a LockPath,
    parent: Dir,
    /// The owner record written to `DIR/owner`.
    record: &'a [u8],
    grace: Duration,
    clock: Cell<Option<FsClock>>,
    /// Readers hold the lock (`--shared`): our want, posted once we have
    /// seen them, keeps new readers out until we have the lock.
    want: std::cell::RefCell<Want>,
    /// The policy of the last attempt, for breaking a shared lock.
    policy: Cell<Policy>,
    /// The filesystem's clock, for judging readers' shares.
    shares_clock: shared::Clock,
}

impl<'a> DirLock<'a> {
    /// A lock directory at `lock` with owner record `record`; an ownerless
    /// directory is stale after `grace`. Opens the parent directory.
    pub fn new(lock: &'a LockPath, record: &'a [u8], grace: Duration) -> Result<DirLock<'a>> {
        Ok(DirLock {
            lock,
            parent: lock.open_dir()?,
            record,
            grace,
            clock: Cell::new(None),
            want: Default::default(),
            policy: Cell::new(Policy::default()),
            shares_clock: shared::Clock::default(),
        })
    }

    /// Judge `seen`: a lock directory held by readers together by their
    /// shares (an error keeps it), any other by its record or the grace.
    fn judged(&self, seen: &SeenDir, policy: &Policy) -> Verdict {
        match seen.record().shared {
            true => shared::judge_shared(&self.parent, self.lock, policy, &self.shares_clock)
                .unwrap_or(Verdict::Valid(Reason::Fresh {
                    age: Duration::ZERO,
                })),
            false => judge(seen, self.grace, policy),
        }
    }

    fn attempt(&self, policy: &Policy) -> Result<Try<HeldDir, SeenDir>> {
        self.policy.set(*policy);
        let tried = self.attempt_once(policy)?;
        match &tried {
            // Readers hold it: post our want (one that cannot be made only
            // leaves readers free to join).
            Try::Busy(seen) if seen.record().shared => {
                let _ = self.want.borrow_mut().post(&self.parent, self.lock);
            }
            Try::Acquired(_) => self.want.borrow_mut().withdraw(),
            _ => {}
        }
        Ok(tried)
    }

    fn attempt_once(&self, policy: &Policy) -> Result<Try<HeldDir, SeenDir>> {
        let (parent, lock) = (&self.parent, self.lock);
        match try_lock_at(parent, lock, self.record)? {
            Try::Busy(mut seen) => {
                let judged = |s: &SeenDir, now| {
                    let s = SeenDir {
                        fs_now: now,
                        ..s.clone()
                    };
                    judge(&s, self.grace, policy)
                };
                seen.fs_now = match glance(&seen, self.clock.get(), judged) {
                    Glance::Busy(now, _) => now,
                    Glance::Attempt => {
                        let fs = rel::fs_now_at(parent, lock.path()).ok();
                        self.clock.set(fs.map(FsClock::measured));
                        fs
                    }
                };
                Ok(Try::Busy(seen))
            }
            other => Ok(other),
        }
    }
}

impl Protocol for DirLock<'_> {
    type Held = HeldDir;
    type Seen = SeenDir;

    fn path(&self) -> &Path {
        self.lock.path()
    }

    fn try_once(&self, policy: &Policy) -> Result<Try<HeldDir, SeenDir>> {
        self.attempt(policy)
    }

    fn judge(&self, seen: &SeenDir, policy: &Policy) -> Verdict {
        self.judged(seen, policy)
    }

    fn break_stale(&self, seen: &SeenDir) -> Result<Broken> {
        if seen.record().shared {
            return shared::break_orphan(&self.parent, self.lock, &self.policy.get(), || {
                break_dir(&self.parent, self.lock, seen)
            });
        }
        break_dir(&self.parent, self.lock, seen)
    }

    fn holder(&self, seen: &SeenDir) -> (Record, Option<Duration>) {
        (seen.record(), seen.age())
    }
}

impl Drop for DirLock<'_> {
    fn drop(&mut self) {
        self.want.get_mut().withdraw();
    }
}

/// Remove the lock directory `seen`, judged stale, if it is still the
/// very one judged, under the break protocol.
pub fn break_dir(parent: &Dir, lock: &LockPath, seen: &SeenDir) -> Result<Broken> {
    let path = lock.path();
    let mut removal = None;
    let broken = breaking::break_guarded(
        parent,
        lock,
        || Ok(observe_at(parent, lock.name(), path)?.is_some_and(|now| now.same(seen))),
        || match remove_dir(parent, lock, Some((seen.dev, seen.ino)), Sweep::All) {
            Ok(true) => Ok(()),
            Ok(false) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            // A name inside that cannot be removed (EACCES, EPERM): the
            // stale lock cannot be removed (exit 8).
            Err(crate::Error::Io { source, .. }) => Err(source),
            Err(e) => {
                removal = Some(e);
                Err(io::Error::from_raw_os_error(libc::ENOTEMPTY))
            }
        },
    );
    match removal {
        Some(e) => Err(e),
        None => broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acquire::Holding;
    use crate::error::Error;
    use crate::mkdir::{OWNER, try_lock};
    use std::fs;

    fn dirlock(dir: &Path) -> LockPath {
        LockPath::new(dir.join("L.d")).unwrap()
    }

    #[test]
    fn ownerless_directory_waits_out_the_grace_period() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = dirlock(tmp.path());
        fs::create_dir(lock.path()).unwrap();
        let Try::Busy(mut seen) = try_lock(&lock, b"1\n").unwrap() else {
            panic!()
        };
        let p = Policy::default();
        seen.fs_now = Some(seen.mtime);
        assert!(!judge(&seen, DEFAULT_GRACE, &p).is_stale());
        seen.fs_now = Some(seen.mtime + Duration::from_secs(11));
        assert!(judge(&seen, DEFAULT_GRACE, &p).is_stale());
        // Without the filesystem's clock, nothing is stale by age.
        seen.fs_now = None;
        assert!(!judge(&seen, DEFAULT_GRACE, &p).is_stale());
    }

    #[test]
    fn break_removes_only_the_judged_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = dirlock(tmp.path());
        fs::create_dir(lock.path()).unwrap();
        fs::write(lock.path().join(OWNER), "0\n").unwrap();
        let seen = observe(lock.path()).unwrap().unwrap();
        let proto = DirLock::new(&lock, b"9\n", DEFAULT_GRACE).unwrap();
        // Re-taken meanwhile: left alone.
        assert!(remove_dir(&lock.open_dir().unwrap(), &lock, None, Sweep::All).unwrap());
        let Try::Acquired(other) = try_lock(&lock, b"7\n").unwrap() else {
            panic!()
        };
        assert_eq!(proto.break_stale(&seen).unwrap(), Broken::Changed);
        assert!(other.is_ours());
        // Still the one judged: removed.
        let seen = observe(lock.path()).unwrap().unwrap();
        assert_eq!(proto.break_stale(&seen).unwrap(), Broken::Removed);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
        other.keep();
    }

    #[test]
    fn a_symlink_inside_makes_it_no_lock_and_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = dirlock(tmp.path());
        fs::create_dir(lock.path()).unwrap();
        fs::write(lock.path().join(OWNER), "0\n").unwrap();
        let target = tmp.path().join("precious");
        fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, lock.path().join("link")).unwrap();
        let proto = DirLock::new(&lock, b"9\n", DEFAULT_GRACE).unwrap();
        assert!(matches!(
            proto.try_once(&Policy::default()),
            Err(Error::NotALock { .. })
        ));
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(lock.path().join("link").exists());
    }
}
