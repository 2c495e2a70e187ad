//! An inotify watch on the lock itself — the very file or directory at
//! each awaited name — rather than on its directory: nothing else
//! happening in a busy directory (a spool, `/var/lock`) wakes the waiter.
//! [`crate::early_wake`] moves to it from the directory watch when the
//! directory proves busy.
//!
//! A release changes the watched inode: `unlink(2)` of a dot-lock drops
//! its link count (`IN_ATTRIB`), a name renamed over it does too, a lock
//! renamed away moves (`IN_MOVE_SELF`), a removed lock directory loses its
//! owner file first (`IN_DELETE`) and is then deleted (`IN_DELETE_SELF`).
//! The watched inode deleted or moved is a release — whatever is at the
//! name: a freed inode number is at once another file's (measured: a lock
//! released and taken again between two looks came back with the same
//! number). Any other event is a hint: the waiter looks whether the name
//! still holds the watched inode, and counts it released if not.
//!
//! The watch is put on whatever is at the name *now*, then the name is
//! looked at again: if it still holds the inode it held before the watch,
//! every later release of it is reported; if not, it changed in between
//! and counts as released at once. So no release between a busy attempt
//! and the sleep can be missed.
//!
//! Closing an inotify instance waits for the kernel's fsnotify reaper —
//! an SRCU grace period, milliseconds — whenever any watch on the machine
//! was removed lately, as waiters' watches constantly are when a lock
//! changes hands (measured: two shell loops taking one lock in turn went
//! from 0.33 s to 1.2 s for 400 locks when each new holder closed its
//! watch). A waiter that got the lock must not spend that wait holding
//! it: [`ReleaseWatch::linger`] removes the watches and leaves the
//! descriptor to the process's exit, after the lock is released.
//!
//! Where a lock cannot be watched — no inotify instance left (at most
//! `fs.inotify.max_user_instances` per user, 128 by default), no read
//! permission on it — the caller probes instead ([`crate::watch::ReleaseProbe`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// The events that may mean a watched lock was released.
fn events() -> AddWatchFlags {
    AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DONT_FOLLOW
}

/// Which file is at `name` — device, inode, change time — `None` if
/// nothing is.
pub(crate) fn inode_at(name: &Path) -> io::Result<Option<Ident>> {
    match std::fs::symlink_metadata(name) {
        Ok(m) => Ok(Some((m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A file's device, inode and change time.
pub(crate) type Ident = (u64, u64, i64, i64);

/// How arming went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Armed {
    /// Every name holds the inode now watched.
    Watching,
    /// A name is empty, or changed while the watch was put on it: a
    /// release the caller must act on now.
    Released,
    /// A name could not be watched: the caller must look for itself.
    Unwatchable,
}

/// An inotify watch on the locks at a few names.
#[derive(Debug)]
pub struct ReleaseWatch {
    inotify: Inotify,
    /// Each name, the inode watched there, and its watch.
    watched: Vec<(PathBuf, Ident, WatchDescriptor)>,
}

impl ReleaseWatch {
    /// An inotify instance; `None` if none can be had (the per-user limit).
    pub fn new() -> Option<ReleaseWatch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        Some(ReleaseWatch {
            inotify,
            watched: Vec::new(),
        })
    }

    /// Watch the locks now at `names` instead of those watched so far.
    pub fn arm(&mut self, names: &[PathBuf]) -> Armed {
        self.arm_then(names, || {})
    }

    /// [`ReleaseWatch::arm`], running `between` after each watch is put
    /// and before the name is looked at again (a test's release there).
    fn arm_then(&mut self, names: &[PathBuf], between: impl Fn()) -> Armed {
        self.disarm();
        for name in names {
            let before = match inode_at(name) {
                Ok(Some(at)) => at,
                Ok(None) => return Armed::Released,
                Err(_) => return Armed::Unwatchable,
            };
            let wd = match self.inotify.add_watch(name.as_path(), events()) {
                Ok(wd) => wd,
                Err(nix::errno::Errno::ENOENT) => return Armed::Released,
                Err(_) => return Armed::Unwatchable,
            };
            self.watched.push((name.clone(), before, wd));
            between();
            match inode_at(name) {
                Ok(Some(after)) if (after.0, after.1) == (before.0, before.1) => {}
                _ => return Armed::Released,
            }
        }
        Armed::Watching
    }

    /// Read what the kernel queued; then is a watched lock gone from its
    /// name (or replaced)? A name that cannot be looked at is not a release.
    pub fn released(&self) -> bool {
        let gone =
            AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED;
        let mut released = false;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            released |= events.iter().any(|e| {
                e.mask.intersects(gone) && self.watched.iter().any(|(_, _, wd)| *wd == e.wd)
            });
        }
        released
            || self
                .watched
                .iter()
                .any(|(name, at, _)| match inode_at(name) {
                    Ok(Some(now)) => (now.0, now.1) != (at.0, at.1),
                    Ok(None) => true,
                    Err(_) => false,
                })
    }

    /// Stop watching, and leave the descriptor open until the process
    /// exits (close-on-exec: a command never inherits it). For a process
    /// about to hold a lock and then end: see the module docs.
    pub fn linger(mut self) {
        self.disarm();
        std::mem::forget(self);
    }

    fn disarm(&mut self) {
        for (_, _, wd) in self.watched.drain(..) {
            let _ = self.inotify.rm_watch(wd);
        }
    }
}

impl AsFd for ReleaseWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

impl Drop for ReleaseWatch {
    /// Marks removed first: the close is then cheap (see the module docs).
    fn drop(&mut self) {
        self.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn readable(w: &ReleaseWatch) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(50u16)).unwrap() > 0
    }

    #[test]
    fn a_released_dot_lock_wakes_and_a_busy_directory_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("L");
        std::fs::write(&lock, "1\n").unwrap();
        let mut w = ReleaseWatch::new().unwrap();
        assert_eq!(w.arm(std::slice::from_ref(&lock)), Armed::Watching);
        // Others' files come and go beside it: no wake.
        for i in 0..20 {
            let other = tmp.path().join(format!("other{i}"));
            std::fs::write(&other, "").unwrap();
            std::fs::rename(&other, tmp.path().join("moved")).unwrap();
            std::fs::remove_file(tmp.path().join("moved")).unwrap();
        }
        assert!(!readable(&w), "woken by another file");
        assert!(!w.released());
        std::fs::remove_file(&lock).unwrap();
        assert!(readable(&w));
        assert!(w.released());
    }

    #[test]
    fn a_lock_replaced_or_renamed_away_is_released() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("L");
        let new = tmp.path().join("N");
        for replace in [true, false] {
            std::fs::write(&lock, "1\n").unwrap();
            let mut w = ReleaseWatch::new().unwrap();
            assert_eq!(w.arm(std::slice::from_ref(&lock)), Armed::Watching);
            if replace {
                std::fs::write(&new, "2\n").unwrap();
                std::fs::rename(&new, &lock).unwrap();
            } else {
                std::fs::rename(&lock, &new).unwrap();
            }
            assert!(readable(&w), "replace: {replace}");
            assert!(w.released(), "replace: {replace}");
            let _ = std::fs::remove_file(&lock);
            let _ = std::fs::remove_file(&new);
        }
    }

    #[test]
    fn a_removed_lock_directory_wakes() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("D");
        std::fs::create_dir(&lock).unwrap();
        std::fs::write(lock.join("owner"), "1\n").unwrap();
        let mut w = ReleaseWatch::new().unwrap();
        assert_eq!(w.arm(std::slice::from_ref(&lock)), Armed::Watching);
        std::fs::remove_file(lock.join("owner")).unwrap();
        assert!(readable(&w), "the owner file's removal");
        assert!(!w.released(), "the directory is still there");
        std::fs::remove_dir(&lock).unwrap();
        assert!(readable(&w));
        assert!(w.released());
    }

    #[test]
    fn arming_a_missing_name_is_a_release_and_any_of_several_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("A"), tmp.path().join("B"));
        let mut w = ReleaseWatch::new().unwrap();
        assert_eq!(w.arm(std::slice::from_ref(&a)), Armed::Released);
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        assert_eq!(w.arm(&[a.clone(), b.clone()]), Armed::Watching);
        std::fs::remove_file(&b).unwrap();
        assert!(readable(&w));
        assert!(w.released());
        // Armed again on A alone: B's fate no longer matters.
        assert_eq!(w.arm(std::slice::from_ref(&a)), Armed::Watching);
        std::fs::write(&b, "").unwrap();
        std::fs::remove_file(&b).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        assert!(!w.released());
    }

    /// A release between the watch and the second look, and a lock taken
    /// again there (its inode number may well be the old one's): either
    /// arming says released, or the watch does at once.
    #[test]
    fn a_release_while_the_watch_is_put_is_never_missed() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("L");
        let retake = |again: bool| {
            std::fs::remove_file(&lock).unwrap();
            if again {
                std::fs::write(tmp.path().join("T"), "2\n").unwrap();
                std::fs::hard_link(tmp.path().join("T"), &lock).unwrap();
                std::fs::remove_file(tmp.path().join("T")).unwrap();
            }
        };
        for again in [false, true] {
            std::fs::write(&lock, "1\n").unwrap();
            let mut w = ReleaseWatch::new().unwrap();
            let armed = w.arm_then(std::slice::from_ref(&lock), || retake(again));
            assert!(
                armed == Armed::Released || (readable(&w) && w.released()),
                "taken again: {again}: {armed:?}"
            );
            let _ = std::fs::remove_file(&lock);
        }
    }

    /// A lock its holder still has open loses its last name: the inode
    /// lives on, and only its link count says so (`IN_ATTRIB`).
    #[test]
    fn a_lock_removed_while_held_open_wakes_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("L");
        std::fs::write(&lock, "1\n").unwrap();
        let open = std::fs::File::open(&lock).unwrap();
        let mut w = ReleaseWatch::new().unwrap();
        assert_eq!(w.arm(std::slice::from_ref(&lock)), Armed::Watching);
        std::fs::remove_file(&lock).unwrap();
        assert!(readable(&w), "woken while the file is still open");
        assert!(w.released());
        drop(open);
    }

    #[test]
    fn a_name_that_cannot_be_looked_at_is_not_a_release() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("F"), "").unwrap();
        let mut w = ReleaseWatch::new().unwrap();
        let under_a_file = tmp.path().join("F").join("L");
        assert_eq!(w.arm(&[under_a_file]), Armed::Unwatchable);
    }

    #[test]
    fn a_symbolic_link_is_watched_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, lock) = (tmp.path().join("T"), tmp.path().join("L"));
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let mut w = ReleaseWatch::new().unwrap();
        assert_eq!(w.arm(std::slice::from_ref(&lock)), Armed::Watching);
        std::fs::remove_file(&target).unwrap();
        assert!(!w.released(), "the link's target is not the lock");
        std::fs::remove_file(&lock).unwrap();
        assert!(w.released());
    }
}
