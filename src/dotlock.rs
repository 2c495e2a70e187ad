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
//!
//! Every call is made relative to the lock's directory, opened once
//! ([`crate::fs::Dir`]). A waiter ([`DotLock`]) first *looks* at a busy
//! lock and creates nothing while its holder is alive or the lock is young
//! (so idle waiters do not wake each other's directory watches), and a
//! locker that finds a breaker at work backs off until the break is done
//! (see [`DotLock`]).

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::libc;

use crate::error::{Error, Result};
use crate::fs::{self as rel, Dir, Meta};
use crate::host;
use crate::lock::{self, Try};
use crate::mailbox;
use crate::record::{MAX_RECORD, Record};
use crate::seam;
use crate::stale::{self, Broken, Policy, Verdict};

/// `NAME_MAX` on Linux: the longest file name.
pub const NAME_MAX: usize = 255;
/// `PATH_MAX` on Linux, counting the terminating NUL.
pub const PATH_MAX: usize = 4096;

/// The suffix of the break lock beside each lock.
pub const BREAK_SUFFIX: &str = ".break";

/// A validated lock path, split into its directory and file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPath {
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
}

impl LockPath {
    /// Check lengths (`NAME_MAX` per component, `PATH_MAX` in all) and split.
    /// A path that names a directory (`dir/`, `..`) is refused, and so is a
    /// name too long for its break lock (`NAME.break`) to fit in `NAME_MAX`.
    pub fn new(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() + BREAK_SUFFIX.len() >= PATH_MAX
            || bytes.split(|&b| b == b'/').any(|c| c.len() > NAME_MAX)
        {
            return Err(Error::NameTooLong { path: path.into() });
        }
        let names_dir = bytes.is_empty() || bytes.ends_with(b"/");
        let name = match path.file_name() {
            Some(name) if !names_dir => name.to_os_string(),
            _ => return Err(Error::LockIsDirectory { path: path.into() }),
        };
        if name.len() + BREAK_SUFFIX.len() > NAME_MAX {
            return Err(Error::NameTooLong { path: path.into() });
        }
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

    /// The sibling lock `<name><suffix>` (a slot `.N`), refused with "name
    /// too long" where it, or its own break lock, would not fit in
    /// `NAME_MAX`: a name is never cut short.
    pub fn sibling(&self, suffix: &str) -> Result<LockPath> {
        let mut name = self.name.clone();
        name.push(suffix);
        if name.len() + BREAK_SUFFIX.len() > NAME_MAX && suffix != BREAK_SUFFIX
            || name.len() > NAME_MAX
        {
            return Err(Error::NameTooLong {
                path: self.path.with_file_name(&name),
            });
        }
        Ok(LockPath {
            path: self.path.with_file_name(&name),
            dir: self.dir.clone(),
            name,
        })
    }

    /// The break lock `<name>.break`, which [`LockPath::new`] made room for.
    pub fn break_lock(&self) -> LockPath {
        self.sibling(BREAK_SUFFIX)
            .expect("LockPath::new leaves room for .break")
    }

    /// Open the lock's directory, which must exist and be a directory.
    pub fn open_dir(&self) -> Result<Dir> {
        Dir::open(&self.dir).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NoDirectory {
                dir: self.dir.clone(),
            },
            Some(libc::ENOTDIR) => Error::NotADirectory {
                dir: self.dir.clone(),
            },
            _ => Error::io(&self.dir, e),
        })
    }

    /// The lock's directory must exist and be a directory.
    pub fn check_dir(&self) -> Result<()> {
        self.open_dir().map(drop)
    }
}

/// How long the filesystem's clock may be read as an offset from ours
/// before it is measured again; it is always measured afresh before a
/// break.
const FS_CLOCK_FOR: Duration = Duration::from_secs(30);

/// The filesystem's clock as last measured, carried forward on our
/// monotonic clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FsClock {
    at: Instant,
    fs: SystemTime,
}

impl FsClock {
    pub(crate) fn measured(fs: SystemTime) -> FsClock {
        FsClock {
            at: Instant::now(),
            fs,
        }
    }

    /// The filesystem's "now", if the measurement is recent enough.
    pub(crate) fn now(&self) -> Option<SystemTime> {
        let since = self.at.elapsed();
        (since <= FS_CLOCK_FOR).then(|| self.fs + since)
    }
}

/// What a look at a busy lock, before any file is created, concludes.
pub(crate) enum Glance {
    /// Not decided: make a real attempt (which measures the clock).
    Attempt,
    /// Held by a live holder, or young: busy, with no file created; the
    /// filesystem's "now" as far as it is known (for messages), and the
    /// verdict.
    Busy(Option<SystemTime>, Verdict),
}

/// Judge a busy lock without creating a file: by proof alone where the
/// record allows it, else by its age on the filesystem's clock measured
/// at most [`FS_CLOCK_FOR`] ago. Undecided — never measured, or a lock
/// that may be stale — it is left to a real attempt, which measures the
/// clock afresh and judges again before anything is broken.
pub(crate) fn glance<S>(
    seen: &S,
    clock: Option<FsClock>,
    judge: impl Fn(&S, Option<SystemTime>) -> Verdict,
) -> Glance {
    let Some(clock) = clock else {
        return Glance::Attempt;
    };
    let estimate = Some(clock.fs + clock.at.elapsed());
    let verdict = judge(seen, None);
    if let Verdict::Valid(stale::Reason::Alive { .. }) = verdict {
        return Glance::Busy(estimate, verdict);
    }
    let Some(now) = clock.now() else {
        return Glance::Attempt;
    };
    match judge(seen, Some(now)) {
        verdict @ Verdict::Valid(_) => Glance::Busy(Some(now), verdict),
        Verdict::Stale(_) => Glance::Attempt,
    }
}

/// A dot-lock to take: the lock path, its opened directory, the owner
/// record, the file mode.
///
/// Each attempt first looks ([`glance`]): a lock whose holder is alive,
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
        })
    }

    /// The lock's path.
    pub fn lock(&self) -> &LockPath {
        self.lock
    }

    fn attempt(&self, policy: &Policy) -> Result<Attempt> {
        let (dir, lock) = (&self.dir, self.lock);
        if let Some((dev, ino)) = self.deferred.get() {
            match observe_at(dir, lock.name(), lock.path())? {
                Some(mut seen) if seen.dev == dev && seen.ino == ino => {
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
            let judged = |s: &Observed, now| {
                let s = Observed {
                    fs_now: now,
                    ..s.clone()
                };
                stale::judge_observed(&s, policy)
            };
            if let Glance::Busy(now, verdict) = glance(&seen, self.clock.get(), judged) {
                seen.fs_now = now;
                self.judged.replace(Some((seen.clone(), verdict)));
                return Ok(Try::Busy(seen));
            }
        }
        let attempt = try_lock_at(dir, lock, self.record, self.mode)?;
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

    /// Is a live breaker at work on this lock? A file at `LOCK.break`
    /// counts only if it is marked as a break lock (`break=1`) and is not
    /// itself stale.
    fn break_in_progress(&self) -> bool {
        let guard = self.lock.break_lock();
        match observe_at(&self.dir, guard.name(), guard.path()) {
            Ok(Some(mut seen)) => {
                seen.fs_now = self.clock.get().and_then(|c| c.now());
                seen.record().break_lock
                    && !stale::judge_observed(&seen, &stale::break_lock_policy()).is_stale()
            }
            _ => false,
        }
    }
}

impl Drop for DotLock<'_> {
    /// Giving up while backed off: our own unused lock is removed, if it
    /// is still the one we linked.
    fn drop(&mut self) {
        if let Some((dev, ino)) = self.deferred.take()
            && let Ok(m) = self.dir.lstat(self.lock.name())
            && m.dev == dev
            && m.ino == ino
        {
            let dir = &self.dir;
            let _ = mailbox::privileged(dir, self.lock.name(), || dir.unlink(self.lock.name()));
        }
    }
}

impl lock::Protocol for DotLock<'_> {
    type Held = Held;
    type Seen = Observed;

    fn path(&self) -> &Path {
        self.lock.path()
    }

    fn try_once(&self, policy: &Policy) -> Result<Attempt> {
        mailbox::privileged(&self.dir, self.lock.name(), || self.attempt(policy))
    }

    fn judge(&self, seen: &Observed, policy: &Policy) -> Verdict {
        match self.judged.take() {
            Some((last, verdict)) if last == *seen => verdict,
            _ => stale::judge_observed(seen, policy),
        }
    }

    fn break_stale(&self, seen: &Observed) -> Result<Broken> {
        mailbox::privileged(&self.dir, self.lock.name(), || {
            stale::break_lock(&self.dir, self.lock, seen)
        })
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
    fn add_child(&mut self, pid: u32) -> Result<bool> {
        Held::add_child(self, pid)
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
    try_lock_at(&lock.open_dir()?, lock, record, mode)
}

/// One attempt, in the lock's opened directory `dir`.
pub fn try_lock_at(dir: &Dir, lock: &LockPath, record: &[u8], mode: u32) -> Result<Attempt> {
    let temp = TempFile::create(dir, lock.path(), record, mode)?;
    seam::pause("IN_ATTEMPT");
    let linked = link(dir, temp.name(), lock.name());
    let tmeta = dir
        .lstat(temp.name())
        .map_err(|e| Error::io(temp.path(), e))?;
    let fs_now = Some(tmeta.mtime);
    let same_inode = || {
        dir.lstat(lock.name())
            .map(|m| m.same_file(&tmeta))
            .unwrap_or(false)
    };
    if tmeta.nlink == 2 || same_inode() {
        let via = if linked.is_ok() {
            Via::Link
        } else {
            Via::LinkDespiteError
        };
        let dir = dir.try_clone().map_err(|e| Error::io(lock.dir(), e))?;
        return Ok(Try::Acquired(Held::new(
            dir, lock, &tmeta, record, mode, via,
        )));
    }
    if let Err(e) = &linked
        && no_hard_links(e)
    {
        drop(temp);
        return create_exclusive(dir, lock, record, mode, fs_now);
    }
    match observe_at(dir, lock.name(), lock.path())? {
        Some(mut seen) => {
            seen.fs_now = fs_now;
            Ok(Try::Busy(seen))
        }
        None => match linked {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(link_error(lock, e)),
            _ => Ok(Try::Vanished),
        },
    }
}

/// `link(2)`, or what a test seam asks it to pretend.
fn link(dir: &Dir, temp: &OsStr, lock: &OsStr) -> io::Result<()> {
    match seam::link() {
        seam::Link::LostReply => {
            let _ = dir.link(temp, lock);
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
        seam::Link::Unsupported => Err(io::Error::from_raw_os_error(libc::EPERM)),
        seam::Link::Real => dir.link(temp, lock),
    }
}

fn no_hard_links(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EOPNOTSUPP | libc::EXDEV)
    )
}

/// Write (part of) an owner record to `file` and close it; a failure is
/// the lock's [`Error::ShortWrite`].
pub(crate) fn write_record(file: std::fs::File, bytes: &[u8], lock: &Path) -> Result<()> {
    rel::write_and_close(file, bytes).map_err(|source| Error::ShortWrite {
        path: lock.into(),
        source,
    })
}

/// The error for a failed create or link of a name in the lock's directory.
pub(crate) fn create_error(lock: &Path, e: io::Error) -> Error {
    let dir = match lock.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NoDirectory { dir },
        Some(libc::ENOTDIR) => Error::NotADirectory { dir },
        Some(libc::ENAMETOOLONG) => Error::NameTooLong { path: lock.into() },
        Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ENOSPC | libc::EDQUOT) => {
            Error::CreateTemp {
                path: lock.into(),
                source: e,
            }
        }
        _ => Error::io(lock, e),
    }
}

fn link_error(lock: &LockPath, e: io::Error) -> Error {
    create_error(lock.path(), e)
}

/// The fallback for filesystems without hard links.
fn create_exclusive(
    dir: &Dir,
    lock: &LockPath,
    record: &[u8],
    mode: u32,
    fs_now: Option<SystemTime>,
) -> Result<Attempt> {
    match dir.create_new(lock.name(), mode) {
        Ok(file) => {
            write_record(file, record, lock.path()).inspect_err(|_| {
                let _ = dir.unlink(lock.name());
            })?;
            let m = dir
                .lstat(lock.name())
                .map_err(|e| Error::io(lock.path(), e))?;
            let dir = dir.try_clone().map_err(|e| Error::io(lock.dir(), e))?;
            Ok(Try::Acquired(Held::new(
                dir,
                lock,
                &m,
                record,
                mode,
                Via::Exclusive,
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            match observe_at(dir, lock.name(), lock.path())? {
                Some(mut seen) => {
                    seen.fs_now = fs_now;
                    Ok(Try::Busy(seen))
                }
                None => Ok(Try::Vanished),
            }
        }
        Err(e) => Err(link_error(lock, e)),
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

/// Look at the lock `name` in `dir` (`path` for messages).
pub fn observe_at(dir: &Dir, name: &OsStr, path: &Path) -> Result<Option<Observed>> {
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
            (meta, rel::read_prefix(file, MAX_RECORD, meta.size))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
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
fn check_regular(path: &Path, meta: &Meta) -> Result<()> {
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
    match dir.lstat(name) {
        Ok(m) => check_regular(path, &m)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    match dir.touch(name) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Remove whatever lock is at `lock` (`-u`): a regular file, or a symbolic
/// link itself (never its target). Directories, FIFOs and devices are not
/// locks and are left alone. `Ok(false)`: there was none.
pub fn remove(lock: &LockPath) -> Result<bool> {
    let dir = lock.open_dir()?;
    mailbox::privileged(&dir, lock.name(), || remove_at(&dir, lock))
}

fn remove_at(dir: &Dir, lock: &LockPath) -> Result<bool> {
    let path = lock.path();
    match dir.lstat(lock.name()) {
        Ok(m) if m.is_symlink() => {}
        Ok(m) => check_regular(path, &m)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    match dir.unlink(lock.name()) {
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
    dir: Dir,
    lock: LockPath,
    dev: u64,
    ino: u64,
    record: Vec<u8>,
    mode: u32,
    via: Via,
    done: bool,
}

impl Held {
    fn new(dir: Dir, lock: &LockPath, meta: &Meta, record: &[u8], mode: u32, via: Via) -> Self {
        Held {
            dir,
            lock: lock.clone(),
            dev: meta.dev,
            ino: meta.ino,
            record: record.to_vec(),
            mode,
            via,
            done: false,
        }
    }

    /// The lock's path.
    pub fn path(&self) -> &Path {
        self.lock.path()
    }

    /// How the lock was obtained.
    pub fn via(&self) -> Via {
        self.via
    }

    /// Is the lock at our path still the one we created: same device and
    /// inode, same record?
    pub fn is_ours(&self) -> bool {
        match observe_at(&self.dir, self.lock.name(), self.lock.path()) {
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
        match self.dir.lstat(self.lock.name()) {
            Ok(m) if m.dev == self.dev && m.ino == self.ino => {
                touch_at(&self.dir, self.lock.name(), self.lock.path())
            }
            _ => Ok(false),
        }
    }

    /// Record the command run under the lock (`child=`, `child_start=`),
    /// appended to the lock file in one write, so that the lock is not
    /// judged dead while the command lives, even if we are killed.
    /// `Ok(false)`: the lock is no longer ours.
    pub fn add_child(&mut self, pid: u32) -> Result<bool> {
        let extra = Record::child_lines(pid);
        let file = match self.dir.open_append(self.lock.name()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(self.lock.path(), e)),
        };
        let m = Meta::of(&file).map_err(|e| Error::io(self.lock.path(), e))?;
        if m.dev != self.dev || m.ino != self.ino {
            return Ok(false);
        }
        write_record(file, &extra, self.lock.path())?;
        self.record.extend_from_slice(&extra);
        Ok(true)
    }

    /// Replace the lock's record with `record`, atomically (a temporary
    /// file renamed over the lock, which is ours), if it is still ours.
    pub fn rewrite(&mut self, record: &[u8]) -> Result<bool> {
        if !self.is_ours() {
            return Ok(false);
        }
        let (dir, lock) = (&self.dir, &self.lock);
        let meta = mailbox::privileged(dir, lock.name(), || -> Result<Meta> {
            let temp = TempFile::create(dir, lock.path(), record, self.mode)?;
            let m = dir
                .lstat(temp.name())
                .map_err(|e| Error::io(temp.path(), e))?;
            dir.rename(temp.name(), lock.name())
                .map_err(|e| Error::io(lock.path(), e))?;
            Ok(m)
        })?;
        self.dev = meta.dev;
        self.ino = meta.ino;
        self.record = record.to_vec();
        Ok(true)
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
        let (dir, name) = (&self.dir, self.lock.name());
        match mailbox::privileged(dir, name, || dir.unlink(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(self.lock.path(), e)),
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
struct TempFile<'a> {
    dir: &'a Dir,
    name: OsString,
    path: PathBuf,
}

impl<'a> TempFile<'a> {
    fn create(dir: &'a Dir, lock: &Path, record: &[u8], mode: u32) -> Result<TempFile<'a>> {
        let mut tries = 0;
        loop {
            let name = temp_name();
            match dir.create_new(&name, mode) {
                Ok(file) => {
                    let temp = TempFile {
                        dir,
                        path: dir.path().join(&name),
                        name,
                    };
                    write_record(file, record, lock)?;
                    return Ok(temp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 10 => tries += 1,
                Err(e) => return Err(create_error(lock, e)),
            }
        }
    }

    fn name(&self) -> &OsStr {
        &self.name
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        let _ = self.dir.unlink(&self.name);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
        assert!(LockPath::new("a".repeat(249)).is_ok());
        let deep = "d/".repeat(2048);
        assert!(matches!(
            LockPath::new(&deep),
            Err(Error::NameTooLong { .. })
        ));
    }

    #[test]
    fn names_too_long_for_their_siblings_are_refused_not_cut() {
        let too_long = |r: Result<LockPath>| matches!(r, Err(Error::NameTooLong { .. }));
        // Room for `.break` is needed beside every lock.
        assert!(too_long(LockPath::new(format!("/tmp/{}", "a".repeat(250)))));
        let l = LockPath::new(format!("/tmp/{}", "a".repeat(249))).unwrap();
        let b = l.break_lock();
        assert_eq!(b.name().len(), 255);
        assert!(b.name().as_bytes().ends_with(b".break"));
        // A slot `.N` needs room for its own `.break`.
        assert!(too_long(l.sibling(".1")));
        let l = LockPath::new(format!("/tmp/{}", "a".repeat(247))).unwrap();
        assert_eq!(l.sibling(".1").unwrap().name().len(), 249);
        assert!(too_long(l.sibling(".10")));
        assert_eq!(
            LockPath::new("/tmp/x").unwrap().break_lock().path(),
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
