//! [`Lock`]: the one-call way to take a lock from Rust, and [`status`]:
//! who holds one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::acquire::{Protocol, Stop};
use crate::dotlock::DotLock;
use crate::guard::{Guard, Kept};
use crate::inspect::Holder;
use crate::judge::{self, Policy};
use crate::lockdir::{DEFAULT_GRACE, DirLock};
use crate::path::LockPath;
use crate::readers::{Kind, Reader};
use crate::record::Record;
use crate::slots::AnyOf;
use crate::wait::{Patience, Schedule, Sleeper};
use crate::{Error, Result};

/// A dot-lock or a lock directory to take, and how to wait for it: the
/// same locks, with the same rules, as `dotlock` and `lockdir` take.
///
/// By default [`Lock::acquire`] waits as long as it takes, looking again
/// every 100 ms ([`Lock::interval`]); a stale lock met on the way (its
/// holder proven dead, or older than the stale age) is broken.
#[derive(Debug, Clone)]
pub struct Lock {
    path: PathBuf,
    directory: bool,
    timeout: Option<Duration>,
    retries: Option<u64>,
    interval: Duration,
    stale_after: Duration,
    shared: bool,
    slots: Option<usize>,
    keep_fresh: bool,
}

impl Lock {
    /// A dot-lock at `path`: a file, taken by `link(2)` (as `dotlock`).
    pub fn dot(path: impl AsRef<Path>) -> Lock {
        Lock::new(path.as_ref(), false)
    }

    /// A lock directory at `path`, taken by `mkdir(2)` (as `lockdir`).
    pub fn dir(path: impl AsRef<Path>) -> Lock {
        Lock::new(path.as_ref(), true)
    }

    fn new(path: &Path, directory: bool) -> Lock {
        Lock {
            path: path.to_path_buf(),
            directory,
            timeout: None,
            retries: None,
            interval: Duration::from_millis(100),
            stale_after: judge::DEFAULT_STALE_AFTER,
            shared: false,
            slots: None,
            keep_fresh: true,
        }
    }

    /// Give up after waiting this long ([`Error::TimedOut`]).
    pub fn timeout(mut self, timeout: Duration) -> Lock {
        self.timeout = Some(timeout);
        self
    }

    /// Give up after this many retries after the first attempt
    /// ([`Error::Busy`]).
    pub fn retries(mut self, retries: u64) -> Lock {
        self.retries = Some(retries);
        self
    }

    /// Look again this often while the lock is busy (default 100 ms).
    pub fn interval(mut self, interval: Duration) -> Lock {
        self.interval = interval;
        self
    }

    /// A lock whose holder cannot be proven alive or dead is stale after
    /// this long (default 300 s); a held lock is touched every third of it
    /// (at most every 30 s).
    pub fn stale_after(mut self, stale_after: Duration) -> Lock {
        self.stale_after = stale_after.max(Duration::from_millis(1));
        self
    }

    /// Take a reader's share: any number of readers at once, or one
    /// writer (a plain lock of the same name), never both.
    pub fn shared(mut self) -> Lock {
        self.shared = true;
        self
    }

    /// A counting semaphore: take any free one of `n` locks, `PATH.1` …
    /// `PATH.n` ([`Guard::slot`] says which).
    pub fn slots(mut self, n: usize) -> Lock {
        self.slots = Some(n);
        self
    }

    /// Keep the held lock fresh on a background thread (the default), or
    /// not: then another machine breaks it once it is older than the stale
    /// age.
    pub fn keep_fresh(mut self, on: bool) -> Lock {
        self.keep_fresh = on;
        self
    }

    /// Take the lock, waiting as set. [`Error::Busy`] or
    /// [`Error::TimedOut`] when the patience runs out.
    pub fn acquire(&self) -> Result<Guard> {
        let patience = Patience {
            schedule: Schedule::Fixed(self.interval),
            retries: self.retries,
            timeout: self.timeout,
        };
        self.take(&patience)
    }

    /// One attempt (a stale lock is broken on the way); `None`: busy.
    pub fn try_acquire(&self) -> Result<Option<Guard>> {
        let once = Patience {
            schedule: Schedule::Fixed(Duration::ZERO),
            retries: Some(0),
            timeout: None,
        };
        match self.take(&once) {
            Ok(guard) => Ok(Some(guard)),
            Err(Error::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn take(&self, patience: &Patience) -> Result<Guard> {
        let lock = LockPath::new(&self.path)?;
        lock.check_dir()?;
        let policy = Policy {
            stale_after: self.stale_after,
            trust_bare_pid: false,
        };
        let me = std::process::id();
        let record = Record::naming::<&str>(Some(me), &[], me)
            .with_lease(self.stale_after)
            .to_bytes();
        match self.slots {
            Some(0) => return Err(Error::BadValue("slots: at least 1".into())),
            Some(_) if self.shared => {
                return Err(Error::BadValue("a shared lock has no slots".into()));
            }
            _ => {}
        }
        let paths = crate::slots::paths(&lock, self.slots)?;
        let every = self
            .keep_fresh
            .then(|| judge::touch_interval(self.stale_after));
        let guard = |slot: usize, kept| {
            let path = paths[slot - 1].path().to_path_buf();
            Guard::new(path, self.slots.map(|_| slot), kept, every)
        };
        let grace = DEFAULT_GRACE;
        if self.shared {
            crate::shared::check_names(&lock)?;
            let kind = match self.directory {
                true => Kind::Directory { grace },
                false => Kind::File,
            };
            let reader = Reader::new(&lock, kind, &record)?;
            let share = wait(&lock, vec![reader], patience, &policy)?;
            return Ok(guard(1, Kept::Share(share.1)));
        }
        if self.directory {
            let slots = paths.iter().map(|p| DirLock::new(p, &record, grace));
            let (slot, held) = wait(&lock, slots.collect::<Result<_>>()?, patience, &policy)?;
            return Ok(guard(slot, Kept::Dir(held)));
        }
        let slots = paths.iter().map(|p| DotLock::new(p, &record, 0o644));
        let (slot, held) = wait(&lock, slots.collect::<Result<_>>()?, patience, &policy)?;
        Ok(guard(slot, Kept::File(held)))
    }
}

/// Wait for any of `slots`, without signals (a library does not take the
/// process's signals) and without a parent to watch.
fn wait<P: Protocol>(
    lock: &LockPath,
    slots: Vec<P>,
    patience: &Patience,
    policy: &Policy,
) -> Result<(usize, P::Held)> {
    let any = AnyOf {
        path: lock.path().to_path_buf(),
        slots,
        policy: *policy,
    };
    let mut sleeper = Sleeper::new(None, None);
    crate::acquire::acquire(&any, patience, policy, &mut sleeper, |_| {}).map_err(|stop| {
        match stop {
            Stop::Error(e) => e,
            // No signal is caught, so none can end the wait.
            Stop::Signal(sig) => Error::io(lock.path(), std::io::Error::other(sig.to_string())),
        }
    })
}

/// Who holds the lock at `path` — a dot-lock, or a lock directory if a
/// directory stands there — judged with the default stale age; `None`:
/// it is free.
pub fn status(path: impl AsRef<Path>) -> Result<Option<Holder>> {
    let lock = LockPath::new(path.as_ref())?;
    let policy = Policy::default();
    match crate::retry::again(|| std::fs::symlink_metadata(lock.path())) {
        Ok(meta) if meta.is_dir() => Holder::of_dir(&lock, &policy, DEFAULT_GRACE),
        _ => Holder::of_file(&lock, &policy),
    }
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
