//! Breaking a stale lock without ever removing a lock that is not the one
//! judged.
//!
//! The breaker takes the short-lived dot-lock `LOCK.break` (its record
//! marked `break=1`), looks again, and removes the lock only if it is
//! still the very one it judged (device, inode, mtime, size, content). Two
//! breakers that judged the same lock can then never remove a lock that a
//! third process took in between; and a lockutils process that links the
//! lock while a break is in progress backs off ([`crate::dotlock`]).

use std::io;

use crate::attempt::{Broken, Try};
use crate::error::{Error, Result};
use crate::fs::{self as rel, Dir, Observed};
use crate::host;
use crate::judge::{break_lock_policy, judge_observed};
use crate::link;
use crate::path::LockPath;
use crate::record::Record;
use crate::seam;

/// Remove `seen`, judged stale, from `lock` (in its opened directory
/// `dir`) if and only if it is still there, under the break lock
/// `LOCK.break` (which holds our own record, marked `break=1`).
pub fn break_lock(dir: &Dir, lock: &LockPath, seen: &Observed) -> Result<Broken> {
    break_guarded(
        dir,
        lock,
        || {
            Ok(rel::observe_at(dir, lock.name(), lock.path())?
                .is_some_and(|now| now.same_lock(seen)))
        },
        || dir.unlink_this(lock.name(), seen.dev, seen.ino),
    )
}

/// The break protocol for any kind of lock at `lock`: take `LOCK.break`,
/// ask `still_same` whether the lock is still the one judged stale, and
/// only then `remove` it. A lock gone by the time `remove` runs counts as
/// changed.
///
/// Between the check and the removal, a lockutils process that links the
/// lock anew sees the live `LOCK.break` and backs off (see
/// [`dotlock::DotLock`]), so the removal never takes a lock that was
/// taken. A legacy tool (dotlockfile, procmail's lockfile) knows nothing
/// of `LOCK.break`: one that takes the lock in that window — the few
/// microseconds between a `stat` and an `unlink(2)` locally, one server
/// round trip on NFS — can lose it to the removal. Unlink by name cannot be
/// made conditional.
pub fn break_guarded(
    dir: &Dir,
    lock: &LockPath,
    still_same: impl FnOnce() -> Result<bool>,
    remove: impl FnOnce() -> io::Result<()>,
) -> Result<Broken> {
    seam::pause("BEFORE_BREAK");
    let guard = lock.break_lock();
    let me = std::process::id();
    let breaker = Record {
        break_lock: true,
        ..Record::for_holder(Some(me), host::command_name(me))
    }
    .to_bytes();
    let held = match link::try_lock_at(dir, &guard, &breaker, 0o644)? {
        Try::Acquired(held) => held,
        Try::Busy(other) => {
            clear_dead_break_lock(dir, &guard, &other);
            return Ok(Broken::Busy);
        }
        Try::Vanished => return Ok(Broken::Busy),
    };
    seam::pause("BREAK_HELD");
    let outcome = match still_same() {
        Ok(true) => {
            seam::pause("BEFORE_UNLINK");
            match remove() {
                Ok(()) => Ok(Broken::Removed),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Broken::Changed),
                Err(source) => Err(Error::StaleNotRemoved {
                    path: lock.path().into(),
                    source,
                }),
            }
        }
        Ok(false) => Ok(Broken::Changed),
        Err(e) => Err(e),
    };
    held.release()?;
    outcome
}

/// A break lock is held for a few system calls; one whose breaker is
/// proven dead, or older than [`BREAK_LOCK_STALE_AFTER`], was left by a
/// crash. It is removed only if it is marked as a break lock (`break=1`:
/// a file at `LOCK.break` without the mark is somebody's lock) and is
/// still the one seen.
fn clear_dead_break_lock(dir: &Dir, guard: &LockPath, other: &Observed) {
    if other.record().break_lock
        && judge_observed(other, &break_lock_policy()).is_stale()
        && let Ok(Some(now)) = rel::observe_at(dir, guard.name(), guard.path())
        && now.same_lock(other)
    {
        let _ = dir.unlink_this(guard.name(), other.dev, other.ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn observed(dir: &std::path::Path, name: &str, content: &[u8]) -> (Dir, LockPath, Observed) {
        let lock = LockPath::new(dir.join(name)).unwrap();
        fs::write(lock.path(), content).unwrap();
        let seen = rel::observe(lock.path()).unwrap().unwrap();
        (lock.open_dir().unwrap(), lock, seen)
    }

    #[test]
    fn break_removes_the_judged_lock_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (d, lock, seen) = observed(dir.path(), "x.lock", b"0\n");
        assert_eq!(break_lock(&d, &lock, &seen).unwrap(), Broken::Removed);
        assert!(!lock.path().exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "break lock and temp files gone"
        );
    }

    #[test]
    fn break_leaves_a_lock_taken_anew() {
        let dir = tempfile::tempdir().unwrap();
        let (d, lock, seen) = observed(dir.path(), "x.lock", b"0\n");
        fs::remove_file(lock.path()).unwrap();
        fs::write(lock.path(), b"4242\n").unwrap();
        assert_eq!(break_lock(&d, &lock, &seen).unwrap(), Broken::Changed);
        assert_eq!(fs::read(lock.path()).unwrap(), b"4242\n");
    }

    #[test]
    fn break_waits_for_a_live_breaker_and_clears_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let (d, lock, seen) = observed(dir.path(), "x.lock", b"0\n");
        let guard = lock.break_lock();
        // A breaker at work (this process, alive): wait.
        let mark = |r: Record| {
            Record {
                break_lock: true,
                ..r
            }
            .to_bytes()
        };
        let live = mark(Record::for_holder(Some(std::process::id()), None));
        fs::write(guard.path(), &live).unwrap();
        assert_eq!(break_lock(&d, &lock, &seen).unwrap(), Broken::Busy);
        assert!(guard.path().exists());
        // A breaker that died (pid beyond pid_max): its break lock is cleared.
        let dead = mark(Record::for_holder(Some(i32::MAX as u32 - 1), None));
        fs::write(guard.path(), &dead).unwrap();
        assert_eq!(break_lock(&d, &lock, &seen).unwrap(), Broken::Busy);
        assert!(!guard.path().exists());
        assert_eq!(break_lock(&d, &lock, &seen).unwrap(), Broken::Removed);
    }

    #[test]
    fn a_lock_named_like_a_break_lock_is_never_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let (d, lock, seen) = observed(dir.path(), "x", b"0\n");
        // Somebody's own lock `x.break`, without the mark; its holder is
        // gone and it is old: still not ours to remove as a break lock.
        let guard = lock.break_lock();
        let dead = Record::for_holder(Some(i32::MAX as u32 - 1), None).to_bytes();
        fs::write(guard.path(), &dead).unwrap();
        assert_eq!(break_lock(&d, &lock, &seen).unwrap(), Broken::Busy);
        assert_eq!(fs::read(guard.path()).unwrap(), dead);
        assert!(lock.path().exists());
    }
}
