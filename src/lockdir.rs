//! The `mkdir(2)` lock: a directory is the lock, `DIR/owner` its record.
//!
//! `mkdir(2)` either creates the directory or fails with `EEXIST`, atomically,
//! on every filesystem including old NFS — which is why portable shell
//! scripts use it. The owner record (see [`crate::record`]) is written to a
//! temporary file inside the new directory and renamed to `owner`, so a
//! reader sees either no record or a whole one.
//!
//! A directory without an owner file is being created right now, or was
//! left by a crash between `mkdir` and the rename: it is stale only once it
//! is older than a grace period (10 s by default, on the filesystem's
//! clock). Otherwise the rules of [`crate::stale`] apply, and stale lock
//! directories are broken under the same `LOCK.break` protocol.
//!
//! Removal first renames the directory to a unique name beside it — freeing
//! the lock name atomically, so nobody ever sees a half-removed lock — and
//! then deletes that tree without following symbolic links inside it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::libc;

use crate::dotlock::{self, LockPath, Observed};
use crate::error::{Error, Result};
use crate::lock::{self, Try};
use crate::record::Record;
use crate::stale::{self, Broken, Here, Policy, Reason, SystemProbe, Verdict};

/// The owner record's name inside the lock directory.
pub const OWNER: &str = "owner";

/// How long a directory without an owner file is presumed to be in the
/// middle of being created.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What a waiter saw of somebody else's lock directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenDir {
    pub dev: u64,
    pub ino: u64,
    /// The directory's own mtime.
    pub mtime: SystemTime,
    /// The owner file, if there is one.
    pub owner: Option<Observed>,
    /// The filesystem's "now" (see [`dotlock::fs_now`]).
    pub fs_now: Option<SystemTime>,
}

impl SeenDir {
    /// The owner record (empty without an owner file).
    pub fn record(&self) -> Record {
        self.owner
            .as_ref()
            .map(Observed::record)
            .unwrap_or_default()
    }

    /// Age on the filesystem's clock: of the owner file (holders touch
    /// it), else of the directory.
    pub fn age(&self) -> Option<Duration> {
        let now = self.fs_now?;
        let then = self.owner.as_ref().map_or(self.mtime, |o| o.mtime);
        Some(now.duration_since(then).unwrap_or(Duration::ZERO))
    }

    /// Is `other` the very same lock: same directory, same owner file (or
    /// still none, with the same mtime)?
    pub fn same(&self, other: &SeenDir) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && match (&self.owner, &other.owner) {
                (Some(a), Some(b)) => a.same_lock(b),
                (None, None) => self.mtime == other.mtime,
                _ => false,
            }
    }
}

/// Look at the lock directory without following links. `Ok(None)`: none.
pub fn observe(path: &Path) -> Result<Option<SeenDir>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(Error::LockIsSymlink { path: path.into() });
    }
    if !ft.is_dir() {
        return Err(Error::NotALockDirectory { path: path.into() });
    }
    // An owner that is not a readable regular file is no record at all.
    let owner = dotlock::observe(&path.join(OWNER)).ok().flatten();
    Ok(Some(SeenDir {
        dev: meta.dev(),
        ino: meta.ino(),
        mtime: meta.modified().map_err(|e| Error::io(path, e))?,
        owner,
        fs_now: None,
    }))
}

/// Judge a lock directory: by its record, or — without one — by age
/// against the grace period.
pub fn judge(seen: &SeenDir, grace: Duration, policy: &Policy) -> Verdict {
    let age = seen.age().unwrap_or(Duration::ZERO);
    match &seen.owner {
        None if age >= grace => Verdict::Stale(Reason::Aged { age }),
        None => Verdict::Valid(Reason::Fresh { age }),
        Some(owner) => stale::judge(&owner.record(), age, &Here::current(), policy, &SystemProbe),
    }
}

/// A lock directory to take.
#[derive(Debug, Clone, Copy)]
pub struct DirLock<'a> {
    pub lock: &'a LockPath,
    /// The owner record written to `DIR/owner`.
    pub record: &'a [u8],
    pub grace: Duration,
}

impl lock::Protocol for DirLock<'_> {
    type Held = HeldDir;
    type Seen = SeenDir;

    fn path(&self) -> &Path {
        self.lock.path()
    }

    fn try_once(&self) -> Result<Try<HeldDir, SeenDir>> {
        try_lock(self.lock, self.record)
    }

    fn judge(&self, seen: &SeenDir, policy: &Policy) -> Verdict {
        judge(seen, self.grace, policy)
    }

    fn break_stale(&self, seen: &SeenDir) -> Result<Broken> {
        let path = self.lock.path();
        stale::break_guarded(
            self.lock,
            || Ok(observe(path)?.is_some_and(|now| now.same(seen))),
            || remove_tree(path),
        )
    }

    fn holder(&self, seen: &SeenDir) -> (Record, Option<Duration>) {
        (seen.record(), seen.age())
    }
}

/// One attempt: `mkdir`, then the owner record.
pub fn try_lock(lock: &LockPath, record: &[u8]) -> Result<Try<HeldDir, SeenDir>> {
    let path = lock.path();
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => {
            if let Err(e) = write_owner(lock, record) {
                let _ = remove_tree(path);
                return Err(e);
            }
            let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
            Ok(Try::Acquired(HeldDir {
                path: path.to_path_buf(),
                dev: meta.dev(),
                ino: meta.ino(),
                record: record.to_vec(),
                done: false,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match observe(path)? {
            Some(mut seen) => {
                seen.fs_now = dotlock::fs_now(lock).ok();
                Ok(Try::Busy(seen))
            }
            None => Ok(Try::Vanished),
        },
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NoDirectory {
                dir: lock.dir().into(),
            },
            Some(libc::ENOTDIR) => Error::NotADirectory {
                dir: lock.dir().into(),
            },
            Some(libc::ENAMETOOLONG) => Error::NameTooLong { path: path.into() },
            Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ENOSPC | libc::EDQUOT) => {
                Error::CreateTemp {
                    path: path.into(),
                    source: e,
                }
            }
            _ => Error::io(path, e),
        }),
    }
}

/// Write `DIR/owner` whole: a temporary file, then `rename(2)`.
fn write_owner(lock: &LockPath, record: &[u8]) -> Result<()> {
    let dir = lock.path();
    let temp = dir.join(format!(".owner.{}", std::process::id()));
    let short = |source| Error::ShortWrite {
        path: lock.path().into(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .map_err(|source| Error::CreateTemp {
            path: lock.path().into(),
            source,
        })?;
    file.write_all(record).map_err(short)?;
    drop(file);
    fs::rename(&temp, dir.join(OWNER)).map_err(short)
}

/// Remove a lock directory: rename it away (freeing the name at once), then
/// delete the renamed tree; symbolic links inside are removed, never
/// followed.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let grave = parent.join(format!(
        ".lkgone.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    fs::rename(path, &grave)?;
    fs::remove_dir_all(&grave)
}

/// A lock directory we hold. Dropping it releases it (best effort).
#[must_use = "dropping a HeldDir releases the lock at once"]
#[derive(Debug)]
pub struct HeldDir {
    path: PathBuf,
    dev: u64,
    ino: u64,
    record: Vec<u8>,
    done: bool,
}

impl HeldDir {
    fn same_dir(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    fn release_inner(&self) -> Result<bool> {
        if !lock::Holding::is_ours(self) {
            return Ok(false);
        }
        match remove_tree(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

impl lock::Holding for HeldDir {
    fn is_ours(&self) -> bool {
        self.same_dir()
            && dotlock::observe(&self.path.join(OWNER))
                .ok()
                .flatten()
                .is_some_and(|o| o.content.as_deref() == Some(&self.record[..]))
    }

    fn touch(&self) -> Result<bool> {
        if !self.same_dir() {
            return Ok(false);
        }
        dotlock::touch(&self.path.join(OWNER))
    }

    fn release(mut self) -> Result<bool> {
        self.done = true;
        self.release_inner()
    }

    fn keep(mut self) {
        self.done = true;
    }
}

impl Drop for HeldDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.release_inner();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Holding, Protocol};

    fn dirlock(dir: &Path) -> LockPath {
        LockPath::new(dir.join("L.d")).unwrap()
    }

    #[test]
    fn take_busy_release() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = dirlock(tmp.path());
        let Try::Acquired(held) = try_lock(&lock, b"1\n").unwrap() else {
            panic!()
        };
        assert_eq!(fs::read(lock.path().join(OWNER)).unwrap(), b"1\n");
        assert_eq!(
            fs::read_dir(lock.path()).unwrap().count(),
            1,
            "only the owner file"
        );
        let Try::Busy(seen) = try_lock(&lock, b"2\n").unwrap() else {
            panic!()
        };
        assert_eq!(seen.record().pid, Some(1));
        fs::write(lock.path().join("scratch"), "x").unwrap();
        assert!(held.release().unwrap());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
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
        assert!(!judge(&seen, DEFAULT_GRACE, &p).is_stale());
        seen.fs_now = Some(seen.mtime + Duration::from_secs(11));
        assert!(judge(&seen, DEFAULT_GRACE, &p).is_stale());
    }

    #[test]
    fn break_removes_only_the_judged_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = dirlock(tmp.path());
        fs::create_dir(lock.path()).unwrap();
        fs::write(lock.path().join(OWNER), "0\n").unwrap();
        let seen = observe(lock.path()).unwrap().unwrap();
        let proto = DirLock {
            lock: &lock,
            record: b"9\n",
            grace: DEFAULT_GRACE,
        };
        // Re-taken meanwhile: left alone.
        remove_tree(lock.path()).unwrap();
        let Try::Acquired(other) = try_lock(&lock, b"7\n").unwrap() else {
            panic!()
        };
        assert_eq!(proto.break_stale(&seen).unwrap(), Broken::Changed);
        assert!(other.is_ours());
        // Still the one judged: removed, symlinks inside not followed.
        let target = tmp.path().join("precious");
        fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, lock.path().join("link")).unwrap();
        let seen = observe(lock.path()).unwrap().unwrap();
        assert_eq!(proto.break_stale(&seen).unwrap(), Broken::Removed);
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        let left: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["precious"]);
        other.keep();
    }
}
