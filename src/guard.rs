//! [`Guard`]: a lock held from Rust. It releases the lock when dropped —
//! in the process that took it, never in a forked child — and keeps it
//! fresh on a background thread while held, so that other machines, which
//! can judge it only by age, never find it stale.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::acquire::Holding;
use crate::link::Held;
use crate::mkdir::HeldDir;
use crate::readers::Share;
use crate::{Error, Result};

/// What a guard holds: one lock of any kind.
#[derive(Debug)]
pub(crate) enum Kept {
    File(Held),
    Dir(HeldDir),
    Share(Share),
}

/// One lock of any kind, held as its own kind holds it.
impl Holding for Kept {
    fn still_ours(&self) -> Result<bool> {
        match self {
            Kept::File(h) => h.still_ours(),
            Kept::Dir(h) => h.still_ours(),
            Kept::Share(h) => h.still_ours(),
        }
    }

    fn touch(&self) -> Result<bool> {
        match self {
            Kept::File(h) => Holding::touch(h),
            Kept::Dir(h) => h.touch(),
            Kept::Share(h) => h.touch(),
        }
    }

    fn append(&mut self, lines: &[u8]) -> Result<bool> {
        match self {
            Kept::File(h) => Holding::append(h, lines),
            Kept::Dir(h) => h.append(lines),
            Kept::Share(h) => h.append(lines),
        }
    }

    fn release(self) -> Result<bool> {
        match self {
            Kept::File(h) => Holding::release(h),
            Kept::Dir(h) => h.release(),
            Kept::Share(h) => h.release(),
        }
    }

    fn keep(self) {
        match self {
            Kept::File(h) => Holding::keep(h),
            Kept::Dir(h) => h.keep(),
            Kept::Share(h) => h.keep(),
        }
    }
}

/// What the guard and its keep-alive thread share.
#[derive(Debug)]
struct Shared {
    kept: Mutex<Option<Kept>>,
    /// Set by the guard when it is done; the thread then ends at once.
    stop: Mutex<bool>,
    wake: Condvar,
    /// Set by the thread when it finds the lock no longer ours.
    lost: AtomicBool,
}

impl Shared {
    fn kept(&self) -> MutexGuard<'_, Option<Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lock held, released when dropped (or by [`Guard::release`], which
/// says how it went).
///
/// While held, a background thread touches the lock at the commands'
/// cadence — every 30 s, or every third of the stale age if that is
/// shorter — after checking that it is still ours; when it is not (it was
/// broken, removed, replaced), the thread stops and [`Guard::is_lost`]
/// says so. [`crate::Lock::keep_fresh`] turns the thread off.
///
/// A guard remembers the process that took the lock: dropped in a child
/// forked meanwhile, it leaves the lock alone (the parent still holds it).
///
/// Held, contended, released by drop, and a release that finds the lock
/// taken away:
///
/// ```
/// use lockutils::{Error, Lock};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("L");
/// let guard = Lock::dot(&path).acquire()?;
/// let contender = Lock::dot(&path);
/// std::thread::scope(|s| {
///     let other_thread = s.spawn(|| contender.try_acquire().map(|g| g.is_none()));
///     assert!(other_thread.join().unwrap().unwrap(), "busy while the guard lives");
/// });
/// drop(guard); // released
/// let again = contender.try_acquire()?.expect("free once the guard is dropped");
/// std::fs::remove_file(&path)?; // taken away behind its back
/// assert!(matches!(again.release(), Err(Error::LockLost { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Kept fresh while held — with a stale age of 0.6 s, touched every
/// 0.2 s — until it is found replaced:
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use lockutils::Lock;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("L");
/// let guard = Lock::dot(&path).stale_after(Duration::from_millis(600)).acquire()?;
/// let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
/// std::fs::File::options().write(true).open(&path)?.set_modified(long_ago)?;
/// let until = |what: &dyn Fn() -> bool| {
///     let deadline = Instant::now() + Duration::from_secs(20);
///     while !what() && Instant::now() < deadline {
///         std::thread::sleep(Duration::from_millis(20));
///     }
///     what()
/// };
/// let mtime = || std::fs::metadata(&path).and_then(|m| m.modified()).unwrap();
/// assert!(until(&|| mtime() > long_ago), "touched by the keep-alive thread");
/// assert!(!guard.is_lost());
/// std::fs::remove_file(&path)?;
/// std::fs::write(&path, "0\n")?; // somebody else's lock now
/// assert!(until(&|| guard.is_lost()), "seen at the next touch");
/// assert!(guard.release().is_err());
/// assert!(path.exists(), "the other's lock is left alone");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the guard releases the lock at once"]
#[derive(Debug)]
pub struct Guard {
    path: PathBuf,
    slot: Option<usize>,
    owner: u32,
    shared: Arc<Shared>,
    keeper: Option<JoinHandle<()>>,
}

impl Guard {
    /// `kept`, taken by this process; kept fresh every `every` (`None`:
    /// not at all).
    pub(crate) fn new(
        path: PathBuf,
        slot: Option<usize>,
        kept: Kept,
        every: Option<Duration>,
    ) -> Guard {
        let shared = Arc::new(Shared {
            kept: Mutex::new(Some(kept)),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            lost: AtomicBool::new(false),
        });
        let keeper = every.and_then(|every| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("lockutils-keep-alive".into())
                .spawn(move || keep_alive(&shared, every))
                .ok()
        });
        Guard {
            path,
            slot,
            owner: std::process::id(),
            shared,
            keeper,
        }
    }

    /// The lock's path (with `slots`, the slot's: `LOCK.N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// With `slots`, the slot taken (from 1).
    pub fn slot(&self) -> Option<usize> {
        self.slot
    }

    /// Did the keep-alive thread find the lock no longer ours (broken as
    /// stale by another process, removed, replaced)?
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// Release the lock now. [`Error::LockLost`] if it was found lost
    /// while held or is no longer ours now — it is then left alone, as
    /// somebody else's.
    pub fn release(mut self) -> Result<()> {
        let lost = Error::LockLost {
            path: self.path.clone(),
        };
        match self.finish() {
            _ if self.is_lost() => Err(lost),
            Some(Ok(true)) => Ok(()),
            Some(Ok(false)) | None => Err(lost),
            Some(Err(e)) => Err(e),
        }
    }

    /// Stop the keep-alive thread and release the lock, once: in the
    /// process that took it only. `None`: already done, or not ours to
    /// release (a forked child).
    fn finish(&mut self) -> Option<Result<bool>> {
        if std::process::id() != self.owner {
            // A forked child: the keep-alive thread is the parent's, and
            // so is the lock. Leave both, and never wait on a mutex the
            // parent's thread may have held at the fork.
            if let Ok(mut kept) = self.shared.kept.try_lock()
                && let Some(kept) = kept.take()
            {
                kept.keep();
            }
            std::mem::forget(self.keeper.take());
            return None;
        }
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
        let kept = self.shared.kept().take()?;
        Some(kept.release())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The keep-alive thread: every `every`, check that the lock is still
/// ours and touch it; stop when the guard is done or the lock is lost.
fn keep_alive(shared: &Shared, every: Duration) {
    loop {
        let stop = shared.stop.lock().unwrap_or_else(|e| e.into_inner());
        let (stop, _) = shared
            .wake
            .wait_timeout_while(stop, every, |stop| !*stop)
            .unwrap_or_else(|e| e.into_inner());
        if *stop {
            return;
        }
        drop(stop);
        let kept = shared.kept();
        let Some(held) = kept.as_ref() else {
            return;
        };
        match held.still_ours() {
            Ok(false) => {
                shared.lost.store(true, Ordering::SeqCst);
                return;
            }
            // A failed touch (a lost reply, ESTALE) is tried again at the
            // next turn.
            Ok(true) => {
                let _ = held.touch();
            }
            // A look that failed (EIO, no descriptor) proves nothing: the
            // next turn looks again.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Lock;

    #[test]
    fn kept_fresh_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("L");
        let lock = Lock::dot(&path).stale_after(Duration::from_millis(300));
        let guard = lock.clone().keep_fresh(false).acquire().unwrap();
        let long_ago = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(long_ago).unwrap();
        // Ten keep-alive periods: a thread would have touched it by now.
        std::thread::sleep(Duration::from_secs(1));
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(mtime, long_ago, "no keep-alive thread");
        guard.release().unwrap();
    }

    #[test]
    fn a_forked_child_dropping_the_guard_leaves_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("L");
        // The child drops its copy of the guard; the parent's is untouched.
        let slot = std::cell::RefCell::new(Some(Lock::dot(&path).acquire().unwrap()));
        let status = crate::sys::in_forked_child(|| drop(slot.borrow_mut().take()));
        assert_eq!(status, Some(0), "the child ended normally");
        assert!(path.exists(), "the child left the parent's lock");
        let guard = slot.into_inner().expect("the parent's guard");
        guard.release().unwrap();
        assert!(!path.exists());
    }
}
