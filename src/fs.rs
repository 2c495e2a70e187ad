//! Looking at, touching and creating lock files: what a lock file is
//! ([`Observed`]), the filesystem's clock ([`fs_now`]), and the temporary
//! file of an attempt (`TempFile`), all relative to the lock's opened
//! directory ([`Dir`]).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::libc;

pub use crate::dir::{Dir, Meta, read_prefix, write_and_close};
use crate::error::{Error, Result};
use crate::host;
use crate::path::{LockPath, NAME_MAX};
use crate::record::{MAX_RECORD, Record};

impl LockPath {
    /// Open the lock's directory, which must exist and be a directory.
    pub fn open_dir(&self) -> Result<Dir> {
        Dir::open(self.dir()).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NoDirectory {
                dir: self.dir().to_path_buf(),
            },
            Some(libc::ENOTDIR) => Error::NotADirectory {
                dir: self.dir().to_path_buf(),
            },
            _ => Error::io(self.dir(), e),
        })
    }

    /// The lock's directory must exist and be a directory.
    pub fn check_dir(&self) -> Result<()> {
        self.open_dir().map(drop)
    }
}

/// What a waiter saw of somebody else's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: SystemTime,
    /// Up to [`MAX_RECORD`] bytes of content; `None` when unreadable.
    pub content: Option<Vec<u8>>,
    /// The filesystem's "now": mtime of a file just created beside the lock.
    pub fs_now: Option<SystemTime>,
}

impl Observed {
    /// The owner record, as far as the content can be understood.
    pub fn record(&self) -> Record {
        Record::parse(self.content.as_deref().unwrap_or_default())
    }

    /// The lock's age on the filesystem's clock (zero if it is "in the future").
    pub fn age(&self) -> Option<Duration> {
        let now = self.fs_now?;
        Some(now.duration_since(self.mtime).unwrap_or(Duration::ZERO))
    }

    /// Is `other` the very same lock as this one: device, inode, mtime,
    /// size and content?
    pub fn same_lock(&self, other: &Observed) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && self.mtime == other.mtime
            && self.size == other.size
            && self.content == other.content
    }
}

/// Look at the lock at `path` without following links or blocking on a
/// FIFO. `Ok(None)`: there is no lock (any more), or no directory for it.
pub fn observe(path: &Path) -> Result<Option<Observed>> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::LockIsDirectory { path: path.into() });
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    match Dir::open(parent) {
        Ok(dir) => observe_at(&dir, name, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(parent, e)),
    }
}

/// Look at the lock `name` in `dir` (`path` for messages). A look that
/// meets `ESTALE` (on NFS: another client removed or replaced the lock
/// between two calls of the look) is made again from the start.
pub fn observe_at(dir: &Dir, name: &OsStr, path: &Path) -> Result<Option<Observed>> {
    let mut tries = 0;
    loop {
        match observe_once(dir, name, path) {
            Err(e) if e.is_stale_handle() && tries < crate::retry::STALE_RETRIES => tries += 1,
            other => return other,
        }
    }
}

fn observe_once(dir: &Dir, name: &OsStr, path: &Path) -> Result<Option<Observed>> {
    // Look before opening: a device node at the lock path is never opened
    // (opening some devices acts on them).
    let meta = match dir.lstat(name) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    check_regular(path, &meta)?;
    let (meta, content) = match dir.open_read(name) {
        Ok(file) => {
            // Judge what was opened: the name may have changed since.
            let meta = Meta::of(&file).map_err(|e| Error::io(path, e))?;
            check_regular(path, &meta)?;
            // A file no name leads to any more: the lock was removed or
            // replaced since the name was looked up (an NFS client's cached
            // name, and a server that still serves the removed file while it
            // is open anywhere). It is no lock; never judge it.
            if meta.nlink == 0 {
                return Ok(None);
            }
            match read_prefix(file, MAX_RECORD, meta.size) {
                Ok(content) => (meta, Some(content)),
                Err(e) if crate::retry::is_stale(&e) => return Err(Error::io(path, e)),
                Err(_) => (meta, None),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if crate::retry::is_stale(&e) => return Err(Error::io(path, e)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::LockIsSymlink { path: path.into() });
        }
        // Unreadable (mode 0, another user's 0400 lock): judge by metadata.
        Err(_) => (meta, None),
    };
    Ok(Some(Observed {
        dev: meta.dev,
        ino: meta.ino,
        size: meta.size,
        mtime: meta.mtime,
        content,
        fs_now: None,
    }))
}

/// Only a regular file can be a lock.
pub(crate) fn check_regular(path: &Path, meta: &Meta) -> Result<()> {
    if meta.is_file() {
        Ok(())
    } else if meta.is_dir() {
        Err(Error::LockIsDirectory { path: path.into() })
    } else if meta.is_symlink() {
        Err(Error::LockIsSymlink { path: path.into() })
    } else {
        Err(Error::LockNotRegular { path: path.into() })
    }
}

/// "Now" on the filesystem's clock: the mtime of a file just created beside
/// the lock (and removed at once). Never the local clock, never atime.
pub fn fs_now(lock: &LockPath) -> Result<SystemTime> {
    fs_now_at(&lock.open_dir()?, lock.path())
}

/// [`fs_now`] in an opened directory.
pub fn fs_now_at(dir: &Dir, lock: &Path) -> Result<SystemTime> {
    let temp = TempFile::create(dir, lock, b"", 0o600)?;
    dir.lstat(temp.name())
        .map(|m| m.mtime)
        .map_err(|e| Error::io(temp.path(), e))
}

/// Set the lock's mtime (and atime) to now, without following a symlink.
/// `Ok(false)`: there is no lock.
pub fn touch(lock: &LockPath) -> Result<bool> {
    touch_at(&lock.open_dir()?, lock.name(), lock.path())
}

/// [`touch`] of `name` in `dir`.
pub fn touch_at(dir: &Dir, name: &OsStr, path: &Path) -> Result<bool> {
    use crate::retry::again;
    match again(|| dir.lstat(name)) {
        Ok(m) => check_regular(path, &m)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    match again(|| dir.touch(name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Write (part of) an owner record to `file` and close it; a failure is
/// the lock's [`Error::ShortWrite`].
pub(crate) fn write_record(file: std::fs::File, bytes: &[u8], lock: &Path) -> Result<()> {
    write_and_close(file, bytes).map_err(|source| Error::ShortWrite {
        path: lock.into(),
        source,
    })
}

/// The temporary file of one attempt; removed when dropped, on every path.
pub(crate) struct TempFile<'a> {
    dir: &'a Dir,
    name: OsString,
    path: PathBuf,
    /// The record is in it (see [`TempFile::create_on_full_disk`]).
    pub(crate) written: bool,
}

impl<'a> TempFile<'a> {
    pub(crate) fn create(
        dir: &'a Dir,
        lock: &Path,
        record: &[u8],
        mode: u32,
    ) -> Result<TempFile<'a>> {
        Self::create_on_full_disk(dir, lock, record, mode, false)
    }

    /// [`TempFile::create`]; with `empty_if_full`, a record that cannot be
    /// written for want of space (`ENOSPC`, `EDQUOT`) leaves the file empty
    /// instead of failing (procmail's `lockfile` locks on a full disk).
    pub(crate) fn create_on_full_disk(
        dir: &'a Dir,
        lock: &Path,
        record: &[u8],
        mode: u32,
        empty_if_full: bool,
    ) -> Result<TempFile<'a>> {
        let mut tries = 0;
        loop {
            let name = temp_name();
            match dir.create_new(&name, mode) {
                Ok(file) => {
                    let mut temp = TempFile {
                        dir,
                        path: dir.path().join(&name),
                        name,
                        written: true,
                    };
                    match write_record(file, record, lock) {
                        Err(Error::ShortWrite { source, .. })
                            if empty_if_full
                                && matches!(
                                    source.raw_os_error(),
                                    Some(libc::ENOSPC | libc::EDQUOT)
                                ) =>
                        {
                            temp.written = false
                        }
                        other => other?,
                    }
                    return Ok(temp);
                }
                // The name is ours alone (pid, 32 random bits, host): if it
                // exists, our own create happened and its reply was lost.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 10 => {
                    let _ = crate::retry::again(|| dir.unlink_own(&name));
                    tries += 1;
                }
                Err(e) if crate::retry::is_stale(&e) && tries < 10 => tries += 1,
                Err(e) if crate::error::vanished(lock, &e) && tries < 10 => tries += 1,
                Err(e) => return Err(crate::error::creating(lock, e)),
            }
        }
    }

    pub(crate) fn name(&self) -> &OsStr {
        &self.name
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        let _ = crate::retry::again(|| self.dir.unlink_own(&self.name));
    }
}

/// A random number for a temporary file's name, straight from
/// `getrandom(2)`: the thread-local generator's set-up (a seed read from
/// the same call, and CPU feature probes that trap in a virtual machine)
/// would cost every lock more than the name needs.
pub fn random_tag() -> u32 {
    use rand::TryRng;
    rand::rngs::SysRng
        .try_next_u32()
        .unwrap_or_else(|_| rand::random())
}

/// `.lk` + pid + random + `.` + first label of the host name, escaped and
/// cut to `NAME_MAX` bytes.
pub fn temp_name() -> OsString {
    let mut name = format!(".lk{:05}{:08x}.", std::process::id(), random_tag()).into_bytes();
    let host = temp_label();
    let room = NAME_MAX - name.len();
    let mut cut = host.len().min(room);
    while !host.is_char_boundary(cut) {
        cut -= 1;
    }
    name.extend_from_slice(&host.as_bytes()[..cut]);
    OsString::from_vec(name)
}

/// This host's label in temporary names: the first label of the host
/// name, escaped (it may be cut to fit `NAME_MAX` in the name itself).
pub fn temp_label() -> String {
    escape_host(&host::short_hostname())
}

/// `/ : \` and control characters become `\ooo` (octal) in file names.
fn escape_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        if matches!(c, '/' | ':' | '\\') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{b:03o}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn temp_names_are_bounded_and_escaped() {
        let n = temp_name();
        assert!(n.as_bytes().starts_with(b".lk"));
        assert!(n.len() <= NAME_MAX);
        assert_eq!(escape_host("a/b:c\\d\ne"), "a\\057b\\072c\\134d\\012e");
    }
}
