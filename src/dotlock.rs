//! The `link(2)` dot-lock protocol.
//!
//! One attempt ([`try_lock`]) goes:
//!
//! 1. create a temporary file `.lk<pid><random>.<host>` in the lock's own
//!    directory with `O_CREAT|O_EXCL|O_NOFOLLOW`, and write the owner record;
//! 2. `link(2)` it to the lock name, *ignoring what link returns*: over NFS a
//!    lost reply makes a link that happened look failed;
//! 3. decide by looking: the lock is ours iff the temporary file now has two
//!    links, or the lock name has the temporary file's device and inode;
//! 4. remove the temporary file, whatever happened (a drop guard does it).
//!
//! Where the filesystem has no hard links (`EPERM`, `EOPNOTSUPP`, `EXDEV`),
//! the lock is created with `O_CREAT|O_EXCL` on its own name instead.
//! Release removes the lock only if it is still ours: same device, inode and
//! record.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::libc;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::error::{Error, Result};
use crate::host;
use crate::lock::{self, Try};
use crate::mailbox;
use crate::record::{MAX_RECORD, Record};
use crate::stale::{self, Broken, Policy, Verdict};

/// `NAME_MAX` on Linux: the longest file name.
pub const NAME_MAX: usize = 255;
/// `PATH_MAX` on Linux, counting the terminating NUL.
pub const PATH_MAX: usize = 4096;

/// A validated lock path, split into its directory and file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPath {
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
}

impl LockPath {
    /// Check lengths (`NAME_MAX` per component, `PATH_MAX` in all) and split.
    /// A path that names a directory (`dir/`, `..`) is refused.
    pub fn new(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() >= PATH_MAX || bytes.split(|&b| b == b'/').any(|c| c.len() > NAME_MAX) {
            return Err(Error::NameTooLong { path: path.into() });
        }
        let names_dir = bytes.is_empty() || bytes.ends_with(b"/");
        let name = match path.file_name() {
            Some(name) if !names_dir => name.to_os_string(),
            _ => return Err(Error::LockIsDirectory { path: path.into() }),
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(LockPath {
            path: path.to_path_buf(),
            dir,
            name,
        })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory that holds the lock (`.` for a bare name).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock's file name.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// A sibling lock named `<name><suffix>`, shortened so that the name
    /// still fits in `NAME_MAX`.
    pub fn sibling(&self, suffix: &str) -> LockPath {
        let mut name = self.name.as_bytes().to_vec();
        name.truncate(NAME_MAX - suffix.len());
        name.extend_from_slice(suffix.as_bytes());
        let name = OsString::from_vec(name);
        LockPath {
            path: self.path.with_file_name(&name),
            dir: self.dir.clone(),
            name,
        }
    }

    /// The lock's directory must exist and be a directory.
    pub fn check_dir(&self) -> Result<()> {
        match fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::NotADirectory {
                dir: self.dir.clone(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NoDirectory {
                dir: self.dir.clone(),
            }),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Err(Error::NotADirectory {
                dir: self.dir.clone(),
            }),
            Err(e) => Err(Error::io(&self.dir, e)),
        }
    }
}

/// A dot-lock to take: the lock path, the owner record, the file mode.
#[derive(Debug, Clone, Copy)]
pub struct DotLock<'a> {
    pub lock: &'a LockPath,
    pub record: &'a [u8],
    /// Before the umask: 0644 (procmail's lockfile: 0444).
    pub mode: u32,
}

impl lock::Protocol for DotLock<'_> {
    type Held = Held;
    type Seen = Observed;

    fn path(&self) -> &Path {
        self.lock.path()
    }

    fn try_once(&self) -> Result<Attempt> {
        mailbox::privileged(self.lock.path(), || {
            try_lock(self.lock, self.record, self.mode)
        })
    }

    fn judge(&self, seen: &Observed, policy: &Policy) -> Verdict {
        stale::judge_observed(seen, policy)
    }

    fn break_stale(&self, seen: &Observed) -> Result<Broken> {
        mailbox::privileged(self.lock.path(), || stale::break_lock(self.lock, seen))
    }

    fn holder(&self, seen: &Observed) -> (Record, Option<Duration>) {
        (seen.record(), seen.age())
    }
}

impl lock::Holding for Held {
    fn is_ours(&self) -> bool {
        Held::is_ours(self)
    }
    fn touch(&self) -> Result<bool> {
        Held::touch(self)
    }
    fn release(self) -> Result<bool> {
        Held::release(self)
    }
    fn keep(self) {
        Held::keep(self)
    }
}

/// How a lock was obtained (reported under `--verbose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `link(2)` succeeded.
    Link,
    /// `link(2)` reported failure, but the inode check shows it happened.
    LinkDespiteError,
    /// No hard links on this filesystem: `O_CREAT|O_EXCL` on the lock name.
    Exclusive,
}

/// The outcome of one attempt: ours, busy (with what we saw of the other
/// lock), or vanished (there when `link(2)` ran, gone when we looked:
/// released in between, worth trying again at once).
pub type Attempt = Try<Held, Observed>;

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

/// One attempt at the lock, with `record` as the owner record and `mode`
/// (before the umask) for the lock file.
pub fn try_lock(lock: &LockPath, record: &[u8], mode: u32) -> Result<Attempt> {
    let temp = TempFile::create(lock, record, mode)?;
    let linked = seam::link(temp.path(), lock.path());
    let tmeta = fs::symlink_metadata(temp.path()).map_err(|e| Error::io(temp.path(), e))?;
    let fs_now = tmeta.modified().ok();
    let same_inode = || {
        fs::symlink_metadata(lock.path())
            .map(|m| m.dev() == tmeta.dev() && m.ino() == tmeta.ino())
            .unwrap_or(false)
    };
    if tmeta.nlink() == 2 || same_inode() {
        let via = if linked.is_ok() {
            Via::Link
        } else {
            Via::LinkDespiteError
        };
        return Ok(Attempt::Acquired(Held::new(
            lock.path(),
            tmeta.dev(),
            tmeta.ino(),
            record,
            via,
        )));
    }
    if let Err(e) = &linked
        && no_hard_links(e)
    {
        drop(temp);
        return create_exclusive(lock, record, mode, fs_now);
    }
    match observe(lock.path())? {
        Some(mut seen) => {
            seen.fs_now = fs_now;
            Ok(Attempt::Busy(seen))
        }
        None => match linked {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(link_error(lock, e)),
            _ => Ok(Attempt::Vanished),
        },
    }
}

fn no_hard_links(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EOPNOTSUPP | libc::EXDEV)
    )
}

fn link_error(lock: &LockPath, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NoDirectory {
            dir: lock.dir().into(),
        },
        Some(libc::EACCES | libc::EROFS | libc::ENOSPC | libc::EDQUOT) => Error::CreateTemp {
            path: lock.path().into(),
            source: e,
        },
        _ => Error::io(lock.path(), e),
    }
}

/// The fallback for filesystems without hard links.
fn create_exclusive(
    lock: &LockPath,
    record: &[u8],
    mode: u32,
    fs_now: Option<SystemTime>,
) -> Result<Attempt> {
    match open_new(lock.path(), mode) {
        Ok(file) => {
            write_record(file, record, lock.path()).inspect_err(|_| {
                let _ = fs::remove_file(lock.path());
            })?;
            let m = fs::symlink_metadata(lock.path()).map_err(|e| Error::io(lock.path(), e))?;
            Ok(Attempt::Acquired(Held::new(
                lock.path(),
                m.dev(),
                m.ino(),
                record,
                Via::Exclusive,
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match observe(lock.path())? {
            Some(mut seen) => {
                seen.fs_now = fs_now;
                Ok(Attempt::Busy(seen))
            }
            None => Ok(Attempt::Vanished),
        },
        Err(e) => Err(link_error(lock, e)),
    }
}

/// `open(2)` with `O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`.
fn open_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Write the record and close, reporting errors of `close(2)` too: NFS
/// reports delayed write errors there.
fn write_record(mut file: File, record: &[u8], lock: &Path) -> Result<()> {
    let short = |source| Error::ShortWrite {
        path: lock.into(),
        source,
    };
    file.write_all(record).map_err(short)?;
    nix::unistd::close(file.into_raw_fd()).map_err(|errno| short(errno.into()))
}

/// Look at the lock without following links or blocking on a FIFO.
/// `Ok(None)`: there is no lock (any more).
pub fn observe(path: &Path) -> Result<Option<Observed>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    check_regular(path, &meta)?;
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let (meta, content) = match opened {
        Ok(file) => {
            let meta = file.metadata().map_err(|e| Error::io(path, e))?;
            check_regular(path, &meta)?;
            let mut buf = Vec::with_capacity(MAX_RECORD);
            let content = file
                .take(MAX_RECORD as u64)
                .read_to_end(&mut buf)
                .ok()
                .map(|_| buf);
            (meta, content)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::LockIsSymlink { path: path.into() });
        }
        // Unreadable (mode 0, another user's 0400 lock): judge by metadata.
        Err(_) => (meta, None),
    };
    Ok(Some(Observed {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime: meta.modified().map_err(|e| Error::io(path, e))?,
        content,
        fs_now: None,
    }))
}

/// Only a regular file can be a lock.
fn check_regular(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        Ok(())
    } else if ft.is_dir() {
        Err(Error::LockIsDirectory { path: path.into() })
    } else if ft.is_symlink() {
        Err(Error::LockIsSymlink { path: path.into() })
    } else {
        Err(Error::LockNotRegular { path: path.into() })
    }
}

/// "Now" on the filesystem's clock: the mtime of a file just created beside
/// the lock (and removed at once). Never the local clock, never atime.
pub fn fs_now(lock: &LockPath) -> Result<SystemTime> {
    let temp = TempFile::create(lock, b"", 0o600)?;
    fs::symlink_metadata(temp.path())
        .and_then(|m| m.modified())
        .map_err(|e| Error::io(temp.path(), e))
}

/// Set the lock's mtime (and atime) to now, without following a symlink.
/// `Ok(false)`: there is no lock.
pub fn touch(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) => check_regular(path, &m)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    let now = TimeSpec::UTIME_NOW;
    match utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &now,
        &now,
        UtimensatFlags::NoFollowSymlink,
    ) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(Error::io(path, e.into())),
    }
}

/// Remove whatever lock is at `path` (`-u`): a regular file, or a symbolic
/// link itself (never its target). Directories, FIFOs and devices are not
/// locks and are left alone. `Ok(false)`: there was none.
pub fn remove(path: &Path) -> Result<bool> {
    mailbox::privileged(path, || remove_unprivileged(path))
}

fn remove_unprivileged(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {}
        Ok(m) => check_regular(path, &m)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A lock we hold. Dropping it releases it (best effort); use
/// [`Held::release`] to learn whether that worked, or [`Held::keep`] to
/// leave it in place for a later `-u`.
#[must_use = "dropping a Held lock releases it at once"]
#[derive(Debug)]
pub struct Held {
    path: PathBuf,
    dev: u64,
    ino: u64,
    record: Vec<u8>,
    via: Via,
    done: bool,
}

impl Held {
    fn new(path: &Path, dev: u64, ino: u64, record: &[u8], via: Via) -> Self {
        Held {
            path: path.to_path_buf(),
            dev,
            ino,
            record: record.to_vec(),
            via,
            done: false,
        }
    }

    /// The lock's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the lock was obtained.
    pub fn via(&self) -> Via {
        self.via
    }

    /// Is the lock at our path still the one we created: same device and
    /// inode, same record?
    pub fn is_ours(&self) -> bool {
        match observe(&self.path) {
            Ok(Some(seen)) => {
                seen.dev == self.dev
                    && seen.ino == self.ino
                    && seen.content.as_deref() == Some(&self.record[..])
            }
            _ => false,
        }
    }

    /// Refresh the lock's mtime, if it is still ours.
    pub fn touch(&self) -> Result<bool> {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => touch(&self.path),
            _ => Ok(false),
        }
    }

    /// Remove the lock if it is still ours. `Ok(false)`: it was not (it was
    /// broken and perhaps taken by another process), and was left alone.
    pub fn release(mut self) -> Result<bool> {
        self.done = true;
        self.release_inner()
    }

    /// Leave the lock in place and forget it.
    pub fn keep(mut self) {
        self.done = true;
    }

    fn release_inner(&self) -> Result<bool> {
        if !self.is_ours() {
            return Ok(false);
        }
        match mailbox::privileged(&self.path, || fs::remove_file(&self.path)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.release_inner();
        }
    }
}

/// The temporary file of one attempt; removed when dropped, on every path.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn create(lock: &LockPath, record: &[u8], mode: u32) -> Result<TempFile> {
        let mut tries = 0;
        loop {
            let path = lock.dir().join(temp_name());
            match open_new(&path, mode) {
                Ok(file) => {
                    let temp = TempFile { path };
                    write_record(file, record, lock.path())?;
                    return Ok(temp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 10 => tries += 1,
                Err(e) => return Err(create_error(lock, e)),
            }
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn create_error(lock: &LockPath, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NoDirectory {
            dir: lock.dir().into(),
        },
        Some(libc::ENOTDIR) => Error::NotADirectory {
            dir: lock.dir().into(),
        },
        Some(libc::ENAMETOOLONG) => Error::NameTooLong {
            path: lock.path().into(),
        },
        _ => Error::CreateTemp {
            path: lock.path().into(),
            source: e,
        },
    }
}

/// `.lk` + pid + random + `.` + first label of the host name, escaped and
/// cut to `NAME_MAX` bytes.
pub fn temp_name() -> OsString {
    let mut name =
        format!(".lk{:05}{:08x}.", std::process::id(), rand::random::<u32>()).into_bytes();
    let host = escape_host(&host::short_hostname());
    let room = NAME_MAX - name.len();
    let mut cut = host.len().min(room);
    while !host.is_char_boundary(cut) {
        cut -= 1;
    }
    name.extend_from_slice(&host.as_bytes()[..cut]);
    OsString::from_vec(name)
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

/// Test seams, compiled into debug builds only (what `cargo test` runs):
/// `LOCKUTILS_TEST_LINK=lost-reply` makes `link(2)` happen but report
/// `EIO`, as a lost NFS reply does; `=unsupported` makes it fail with
/// `EPERM` without linking, as on a filesystem without hard links.
mod seam {
    use super::*;

    pub fn link(temp: &Path, lock: &Path) -> io::Result<()> {
        #[cfg(debug_assertions)]
        match std::env::var_os("LOCKUTILS_TEST_LINK")
            .as_deref()
            .map(OsStr::as_bytes)
        {
            Some(b"lost-reply") => {
                let _ = fs::hard_link(temp, lock);
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            Some(b"unsupported") => return Err(io::Error::from_raw_os_error(libc::EPERM)),
            _ => {}
        }
        fs::hard_link(temp, lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_path_splits_and_validates() {
        let l = LockPath::new("/var/mail/joe.lock").unwrap();
        assert_eq!(l.dir(), Path::new("/var/mail"));
        assert_eq!(l.name(), "joe.lock");
        assert_eq!(LockPath::new("x.lock").unwrap().dir(), Path::new("."));
        assert!(matches!(
            LockPath::new("d/"),
            Err(Error::LockIsDirectory { .. })
        ));
        assert!(matches!(
            LockPath::new(".."),
            Err(Error::LockIsDirectory { .. })
        ));
        let long = "a".repeat(256);
        assert!(matches!(
            LockPath::new(&long),
            Err(Error::NameTooLong { .. })
        ));
        assert!(LockPath::new("a".repeat(255)).is_ok());
        let deep = "d/".repeat(2048);
        assert!(matches!(
            LockPath::new(&deep),
            Err(Error::NameTooLong { .. })
        ));
    }

    #[test]
    fn sibling_names_fit() {
        let l = LockPath::new(format!("/tmp/{}", "a".repeat(255))).unwrap();
        let b = l.sibling(".break");
        assert_eq!(b.name().len(), 255);
        assert!(b.name().as_bytes().ends_with(b".break"));
        assert_eq!(
            LockPath::new("/tmp/x").unwrap().sibling(".break").path(),
            Path::new("/tmp/x.break")
        );
    }

    #[test]
    fn temp_names_are_bounded_and_escaped() {
        let n = temp_name();
        assert!(n.as_bytes().starts_with(b".lk"));
        assert!(n.len() <= NAME_MAX);
        assert_eq!(escape_host("a/b:c\\d\ne"), "a\\057b\\072c\\134d\\012e");
    }

    #[test]
    fn lock_then_busy_then_release() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockPath::new(dir.path().join("x.lock")).unwrap();
        let held = match try_lock(&lock, b"1\n", 0o644).unwrap() {
            Attempt::Acquired(h) => h,
            other => panic!("{other:?}"),
        };
        match try_lock(&lock, b"2\n", 0o644).unwrap() {
            Attempt::Busy(seen) => {
                assert_eq!(seen.content.as_deref(), Some(&b"1\n"[..]));
                assert!(seen.age().unwrap() < Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
        assert!(held.release().unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn release_leaves_a_lock_that_is_no_longer_ours() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockPath::new(dir.path().join("x.lock")).unwrap();
        let Attempt::Acquired(held) = try_lock(&lock, b"1\n", 0o644).unwrap() else {
            panic!()
        };
        // Broken and taken over by someone else.
        fs::remove_file(lock.path()).unwrap();
        fs::write(lock.path(), b"2\n").unwrap();
        assert!(!held.release().unwrap());
        assert_eq!(fs::read(lock.path()).unwrap(), b"2\n");
    }
}
