//! A lock directory as a waiter sees it: the directory, its owner record,
//! and whether it holds only what lockdir puts there (else it is no lock).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::fs::{self as rel, Dir, Observed};
use crate::record::Record;

/// The owner record's name inside the lock directory.
pub const OWNER: &str = "owner";

/// The prefix of the owner record's temporary name inside the directory.
pub(crate) const OWNER_TEMP: &str = ".owner.";

/// Is `name`, inside a lock directory, something lockdir puts there?
pub fn is_ours(name: &OsStr) -> bool {
    name == OWNER || name.as_bytes().starts_with(OWNER_TEMP.as_bytes())
}

/// What a waiter saw of somebody else's lock directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenDir {
    pub dev: u64,
    pub ino: u64,
    /// The directory's own mtime.
    pub mtime: SystemTime,
    /// The owner file, if there is one.
    pub owner: Option<Observed>,
    /// The filesystem's "now" (see [`rel::fs_now`]).
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

/// The parent directory of a lock directory, and the lock's name in it.
fn split(path: &Path) -> (PathBuf, &OsStr) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (parent, path.file_name().unwrap_or(path.as_os_str()))
}

/// Look at the lock directory without following links. `Ok(None)`: none.
/// A directory holding anything lockdir did not put there is
/// [`Error::NotALock`].
pub fn observe(path: &Path) -> Result<Option<SeenDir>> {
    let (parent, name) = split(path);
    match Dir::open(&parent) {
        Ok(dir) => observe_at(&dir, name, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&parent, e)),
    }
}

/// `-t`: refresh the lock directory at `path` — its owner file, whose
/// mtime is the lock's age, else (no owner yet, or a legacy `mkdir` lock)
/// the directory itself. `Ok(false)`: there is none. What is not a lock
/// directory is refused as [`observe`] refuses it, and left alone.
pub fn touch(path: &Path) -> Result<bool> {
    let (parent, name) = split(path);
    let parent = match Dir::open(&parent) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&parent, e)),
    };
    let Some(seen) = observe_at(&parent, name, path)? else {
        return Ok(false);
    };
    if seen.owner.is_some() {
        let inside = match crate::retry::again(|| parent.open_child(name)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(path, e)),
        };
        return rel::touch_at(&inside, OsStr::new(OWNER), &path.join(OWNER));
    }
    match crate::retry::again(|| parent.touch(name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// [`observe`] of `name` in the opened directory `parent`.
pub fn observe_at(parent: &Dir, name: &OsStr, path: &Path) -> Result<Option<SeenDir>> {
    let meta = match parent.lstat(name) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.is_symlink() {
        return Err(Error::LockIsSymlink { path: path.into() });
    }
    if !meta.is_dir() {
        return Err(Error::NotALockDirectory { path: path.into() });
    }
    let inside = match parent.open_child(name) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    check_contents(&inside, path)?;
    // An owner that is not a readable regular file is no record at all.
    let owner_path = path.join(OWNER);
    let owner = rel::observe_at(&inside, OsStr::new(OWNER), &owner_path)
        .ok()
        .flatten();
    Ok(Some(SeenDir {
        dev: meta.dev,
        ino: meta.ino,
        mtime: meta.mtime,
        owner,
        fs_now: None,
    }))
}

/// Refuse a directory that holds anything but what lockdir puts there.
pub(crate) fn check_contents(inside: &Dir, path: &Path) -> Result<()> {
    let names = match inside.names() {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    match names.into_iter().find(|n| !is_ours(n)) {
        Some(entry) => Err(Error::NotALock {
            path: path.into(),
            entry: PathBuf::from(entry),
        }),
        None => Ok(()),
    }
}
