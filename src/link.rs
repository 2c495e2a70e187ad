//! One `link(2)` attempt at a dot-lock, and the lock it gives.
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
//! Release ([`Held`]) removes the lock only if it is still ours: same
//! device, inode and record. Every call is relative to the lock's opened
//! directory ([`Dir`]).

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use nix::libc;

use crate::attempt::Try;
use crate::error::{Error, Result};
use crate::fs::{Dir, Meta, Observed, TempFile, check_regular, observe_at, write_record};
use crate::mailbox;
use crate::path::LockPath;
use crate::retry::again;
use crate::seam;

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

/// One attempt at the lock, with `record` as the owner record and `mode`
/// (before the umask) for the lock file.
#[cfg(test)]
pub fn try_lock(lock: &LockPath, record: &[u8], mode: u32) -> Result<Attempt> {
    try_lock_at(&lock.open_dir()?, lock, record, mode)
}

/// One attempt, in the lock's opened directory `dir`.
pub fn try_lock_at(dir: &Dir, lock: &LockPath, record: &[u8], mode: u32) -> Result<Attempt> {
    try_lock_full_disk(dir, lock, record, mode, false)
}

/// [`try_lock_at`]; with `empty_if_full`, on a full disk the lock is
/// taken with an empty record (procmail's `lockfile` does so).
pub fn try_lock_full_disk(
    dir: &Dir,
    lock: &LockPath,
    record: &[u8],
    mode: u32,
    empty_if_full: bool,
) -> Result<Attempt> {
    let temp = TempFile::create_on_full_disk(dir, lock.path(), record, mode, empty_if_full)?;
    let record = if temp.written { record } else { &[] };
    seam::pause("IN_ATTEMPT");
    let linked = link(dir, temp.name(), lock.name());
    let tmeta = match again(|| dir.lstat(temp.name())) {
        Ok(m) => m,
        // Swept as debris (see `error::vanished`) around our link.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return temp_swept(dir, lock, record, mode, linked.is_ok());
        }
        Err(e) => return Err(Error::io(temp.path(), e)),
    };
    let fs_now = Some(tmeta.mtime);
    let same_inode = || {
        again(|| dir.lstat(lock.name()))
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
            // Our temporary file is gone (swept as debris), not the
            // directory: try again.
            Err(e) if crate::error::vanished(lock.path(), &e) => Ok(Try::Vanished),
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                Err(crate::error::creating(lock.path(), e))
            }
            _ => Ok(Try::Vanished),
        },
    }
}

/// Our temporary file was removed by another process before we could
/// look at it after `link(2)`. A link that answered success made the lock
/// ours; otherwise the lock is somebody's (busy) or nobody's (try again).
/// A link whose reply was lost cannot be told from a failed one any more:
/// the lock is judged as another's would be, and at worst waits out its age.
fn temp_swept(
    dir: &Dir,
    lock: &LockPath,
    record: &[u8],
    mode: u32,
    linked: bool,
) -> Result<Attempt> {
    if linked {
        let m = again(|| dir.lstat(lock.name())).map_err(|e| Error::io(lock.path(), e))?;
        let dir = dir.try_clone().map_err(|e| Error::io(lock.dir(), e))?;
        return Ok(Try::Acquired(Held::new(
            dir,
            lock,
            &m,
            record,
            mode,
            Via::Link,
        )));
    }
    Ok(match observe_at(dir, lock.name(), lock.path())? {
        Some(seen) => Try::Busy(seen),
        None => Try::Vanished,
    })
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
        Err(e) if crate::error::vanished(lock.path(), &e) => Ok(Try::Vanished),
        Err(e) => Err(crate::error::creating(lock.path(), e)),
    }
}

/// Remove whatever lock is at `lock` (`-u`): a regular file, or a symbolic
/// link itself (never its target). Directories, FIFOs and devices are not
/// locks and are left alone. `Ok(false)`: there was none.
pub fn remove(lock: &LockPath) -> Result<bool> {
    let dir = lock.open_dir()?;
    mailbox::privileged(&dir, lock.name(), || remove_at(&dir, lock))
}

/// Remove the lock at `lock` only if it is still the very one `seen`
/// (device, inode, mtime, size, content). `Ok(false)`: it was gone, or is
/// another lock now, left alone.
pub fn remove_seen(lock: &LockPath, seen: &Observed) -> Result<bool> {
    let dir = lock.open_dir()?;
    mailbox::privileged(&dir, lock.name(), || {
        match observe_at(&dir, lock.name(), lock.path())? {
            Some(now) if now.same_lock(seen) => unlink_seen(&dir, lock, seen),
            _ => Ok(false),
        }
    })
}

/// Remove `seen`, just looked at and found the caller's own, without
/// looking again: the look was the last thing done before, so a second one
/// would shut no window (and costs an NFS client a lookup, a revalidation
/// and a read).
pub fn remove_just_seen(lock: &LockPath, seen: &Observed) -> Result<bool> {
    let dir = lock.open_dir()?;
    mailbox::privileged(&dir, lock.name(), || unlink_seen(&dir, lock, seen))
}

/// Unlink the lock at `lock` if it is the inode `seen` (checked again only
/// after an `EIO`, [`Dir::unlink_this`]).
fn unlink_seen(dir: &Dir, lock: &LockPath, seen: &Observed) -> Result<bool> {
    match again(|| dir.unlink_this(lock.name(), seen.dev, seen.ino)) {
        Ok(()) => Ok(true),
        // Gone, as asked: our unlink's reply was lost (NFS), or another
        // removed it in the instant since we looked.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(lock.path(), e)),
    }
}

fn remove_at(dir: &Dir, lock: &LockPath) -> Result<bool> {
    let path = lock.path();
    let m = match dir.lstat(lock.name()) {
        Ok(m) if m.is_symlink() => m,
        Ok(m) => {
            check_regular(path, &m)?;
            m
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    // Only what was looked at: after EIO, another's lock may be there now.
    match again(|| dir.unlink_this(lock.name(), m.dev, m.ino)) {
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
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    record: Vec<u8>,
    mode: u32,
    via: Via,
    done: bool,
}

impl Held {
    pub(crate) fn new(
        dir: Dir,
        lock: &LockPath,
        meta: &Meta,
        record: &[u8],
        mode: u32,
        via: Via,
    ) -> Self {
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
        self.ours().unwrap_or(false)
    }

    /// [`Held::is_ours`], with a look that failed (out of descriptors, an
    /// I/O error) told apart from a lock that is not ours.
    pub(crate) fn ours(&self) -> Result<bool> {
        Ok(
            match observe_at(&self.dir, self.lock.name(), self.lock.path())? {
                Some(seen) => {
                    seen.dev == self.dev
                        && seen.ino == self.ino
                        && seen.content.as_deref() == Some(&self.record[..])
                }
                None => false,
            },
        )
    }

    /// Refresh the lock's mtime, if it is still ours (inode and record:
    /// a freed inode number is soon another file's) — through a descriptor
    /// of that very inode, so that a lock put at the name since the look
    /// (ours released, another's taken) is never touched.
    pub fn touch(&self) -> Result<bool> {
        let Some(file) = self.open_ours_recorded(|| self.dir.open_read(self.lock.name()))? else {
            return Ok(false);
        };
        crate::seam::pause("IN_TOUCH");
        again(|| Dir::touch_file(&file))
            .map(|()| true)
            .map_err(|e| Error::io(self.lock.path(), e))
    }

    /// Append `lines` to the lock's record in one write (the command run
    /// under the lock, `child=` and `child_start=`, so that the lock is not
    /// judged dead while the command lives, even if we are killed; its
    /// keeper). `Ok(false)`: the lock is no longer ours.
    pub fn append(&mut self, lines: &[u8]) -> Result<bool> {
        let Some(file) = self.open_ours_recorded(|| self.dir.open_append(self.lock.name()))? else {
            return Ok(false);
        };
        write_record(file, lines, self.lock.path())?;
        self.record.extend_from_slice(lines);
        Ok(true)
    }

    /// Open the lock with `open`, if it is still our inode: `None` if the
    /// name is gone or holds another file.
    fn open_ours(
        &self,
        open: impl Fn() -> io::Result<std::fs::File>,
    ) -> Result<Option<(std::fs::File, Meta)>> {
        let file = match again(open) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(self.lock.path(), e)),
        };
        let m = Meta::of(&file).map_err(|e| Error::io(self.lock.path(), e))?;
        Ok((m.dev == self.dev && m.ino == self.ino).then_some((file, m)))
    }

    /// [`Held::open_ours`], if it also holds our record, read through that
    /// descriptor: a freed inode number is soon another file's (a
    /// successor's lock, once ours was broken), which is never touched nor
    /// given our lines.
    fn open_ours_recorded(
        &self,
        open: impl Fn() -> io::Result<std::fs::File>,
    ) -> Result<Option<std::fs::File>> {
        let Some((file, m)) = self.open_ours(open)? else {
            return Ok(None);
        };
        let max = crate::record::MAX_RECORD;
        let content = file
            .try_clone()
            .and_then(|f| crate::fs::read_prefix(f, max, m.size))
            .map_err(|e| Error::io(self.lock.path(), e))?;
        Ok((content[..] == self.record[..self.record.len().min(max)]).then_some(file))
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
            match dir.rename(temp.name(), lock.name()) {
                Ok(()) => Ok(m),
                // The rename's reply was lost (NFS): its retransmission
                // finds the temporary name gone. It was done if the lock is
                // now that very file.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && dir
                            .lstat(lock.name())
                            .is_ok_and(|l| l.dev == m.dev && l.ino == m.ino) =>
                {
                    Ok(m)
                }
                Err(e) => Err(Error::io(lock.path(), e)),
            }
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
        if !self.ours()? {
            return Ok(false);
        }
        let (dir, name) = (&self.dir, self.lock.name());
        let (dev, ino) = (self.dev, self.ino);
        match mailbox::privileged(dir, name, || again(|| dir.unlink_this(name, dev, ino))) {
            Ok(()) => Ok(true),
            // It was ours a moment ago and is gone: our unlink's reply
            // was lost (NFS), or it was broken in that instant.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
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

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
