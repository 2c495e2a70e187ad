//! One `mkdir(2)` attempt at a lock directory, and the lock directory it
//! gives: a directory is the lock, `DIR/owner` its record (what a waiter
//! sees of one is [`crate::seen_dir`]).
//!
//! `mkdir(2)` either creates the directory or fails with `EEXIST`, atomically,
//! on every filesystem including old NFS — which is why portable shell
//! scripts use it. The owner record (see [`crate::record`]) is written to a
//! temporary file inside the new directory and hard-linked to `owner`
//! (judged by inode), so a reader sees either no record or a whole one, and
//! only one record is ever placed (see [`try_lock_at`] for why).
//!
//! A directory without an owner file is being created right now, or was
//! left by a crash between `mkdir` and the link: it is stale only once it
//! is older than a grace period (10 s by default, on the filesystem's
//! clock). Otherwise the rules of [`crate::stale`] apply, and stale lock
//! directories are broken under the same `LOCK.break` protocol.
//!
//! **Only a lock is ever removed.** A lock directory holds nothing but what
//! lockdir puts there: `owner` and its temporary `.owner.PID`. A directory
//! holding anything else — a mistyped path naming somebody's data — is not
//! a lock: it is never judged stale, never broken and never removed, at
//! any age, `--force` or not ([`Error::NotALock`]). Removal unlinks our
//! own names inside, then removes the then empty directory with `rmdir(2)`,
//! which refuses a directory that anything was added to meanwhile. Killed
//! half-way, it leaves an empty directory, which the grace rule reclaims.
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

use nix::libc;

use crate::acquire::Holding;
use crate::attempt::Try;
use crate::error::{Error, Result};
use crate::fs::{self as rel, Dir};
use crate::path::LockPath;
use crate::retry::{again, is_stale};

pub use crate::seen_dir::{OWNER, SeenDir, is_ours, observe, observe_at};
use crate::seen_dir::{OWNER_TEMP, check_contents};

/// One attempt: `mkdir`, then the owner record.
#[cfg(test)]
pub fn try_lock(lock: &LockPath, record: &[u8]) -> Result<Try<HeldDir, SeenDir>> {
    try_lock_at(&lock.open_dir()?, lock, record)
}

/// [`try_lock`] in the lock's opened parent directory.
///
/// A lost `MKDIR` reply (NFS: the server made the directory, the
/// retransmission answers `EEXIST`) leaves a directory that this attempt
/// made but cannot tell from one another process made in the same instant:
/// the two are alike in every attribute. So the owner record is placed
/// exclusively (`link(2)`, judged by inode), and an attempt that finds a
/// directory without an owner right after its `mkdir`, other than the one
/// it saw just before (none, or one since removed: the lost reply can come
/// right after a holder's release, which a cached look still shows), races
/// for its owner like its creator does: among lockdir processes exactly one
/// wins, whichever made the directory. Without that, every waiter would
/// wait out the grace period for a directory that is nobody's. The same
/// directory (device, inode) before and after without an owner is
/// somebody's creation in progress, a release in progress, or a crash's
/// leftover: busy, and the grace rule applies. (Where a server gives a
/// removed directory's inode number to the next one, that case waits out
/// the grace period; never less safe. A legacy `mkdir` locker that made
/// the directory between the two looks could lose it: the same bounded
/// window as breaking.)
pub fn try_lock_at(parent: &Dir, lock: &LockPath, record: &[u8]) -> Result<Try<HeldDir, SeenDir>> {
    let path = lock.path();
    // What was there just before: nothing, or a directory (device, inode).
    // A look that fails counts as one that saw it.
    let before = match again(|| parent.lstat(lock.name())) {
        Ok(m) => Some((m.dev, m.ino)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(_) => Some((0, 0)),
    };
    // What the lock will need once its directory exists, had first: a
    // failure after `mkdir` must not leave an empty lock directory.
    let held_parent = parent.try_clone().map_err(|e| Error::io(lock.dir(), e))?;
    let made = match parent.mkdir(lock.name(), 0o755) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if crate::error::vanished(path, &e) => return Ok(Try::Vanished),
        Err(e) => return Err(crate::error::creating(path, e)),
    };
    // The directory we made, by device and inode (`fstatat(2)`: no
    // descriptor needed).
    let fresh = match made {
        true => again(|| parent.lstat(lock.name()))
            .ok()
            .map(|m| (m.dev, m.ino)),
        false => None,
    };
    let finished = finish_attempt(parent, lock, record, made, before);
    match finished {
        Ok(Try::Acquired((dev, ino))) => Ok(Try::Acquired(HeldDir {
            parent: held_parent,
            lock: lock.clone(),
            dev,
            ino,
            record: record.to_vec(),
            done: false,
        })),
        Ok(Try::Busy(seen)) => Ok(Try::Busy(seen)),
        Ok(Try::Vanished) => Ok(Try::Vanished),
        Err(e) => {
            abandon(parent, lock, fresh);
            Err(e)
        }
    }
}

/// The rest of an attempt once `mkdir` has answered: look, then place the
/// owner record. `Acquired` carries the directory's device and inode.
fn finish_attempt(
    parent: &Dir,
    lock: &LockPath,
    record: &[u8],
    made: bool,
    before: Option<(u64, u64)>,
) -> Result<Try<(u64, u64), SeenDir>> {
    let path = lock.path();
    let seen = match (made, observe_at(parent, lock.name(), path)?) {
        (_, None) => return Ok(Try::Vanished),
        (false, Some(seen)) if seen.owner.is_some() || before == Some((seen.dev, seen.ino)) => {
            return Ok(Try::Busy(seen));
        }
        (_, Some(seen)) => seen,
    };
    match write_owner(parent, lock, record)? {
        true => Ok(Try::Acquired((seen.dev, seen.ino))),
        // Another process's owner record came first: its lock.
        false => match observe_at(parent, lock.name(), path)? {
            Some(seen) => Ok(Try::Busy(seen)),
            None => Ok(Try::Vanished),
        },
    }
}

/// Our own fresh directory (`fresh`: device, inode), left without an
/// owner by a failure (out of descriptors, a write error), is removed: as
/// a release removes it, or, where that cannot even open it, by
/// `rmdir(2)` of the name while it is still that directory — `rmdir`
/// needs no descriptor, and refuses a directory somebody has since placed
/// an owner in.
fn abandon(parent: &Dir, lock: &LockPath, fresh: Option<(u64, u64)>) {
    let Some((dev, ino)) = fresh else { return };
    if remove_dir(parent, lock, Some((dev, ino)), Sweep::Ours).is_ok() {
        return;
    }
    if again(|| parent.lstat(lock.name())).is_ok_and(|m| (m.dev, m.ino) == (dev, ino)) {
        let _ = parent.rmdir(lock.name());
    }
}

/// Place `DIR/owner` whole and exclusively: a temporary file, then
/// `link(2)` to `owner`, whose answer is not trusted (NFS): ours iff the
/// temporary file then has two links or `owner` is its inode.
/// `Ok(false)`: another owner record was there first. Where there are no
/// hard links, `owner` is created with `O_EXCL` and written in place.
fn write_owner(parent: &Dir, lock: &LockPath, record: &[u8]) -> Result<bool> {
    let short = |source| Error::ShortWrite {
        path: lock.path().into(),
        source,
    };
    let created = |source| Error::CreateTemp {
        path: lock.path().into(),
        source,
    };
    let inside = match again(|| parent.open_child(lock.name())) {
        Ok(inside) => inside,
        // Removed since we looked (its holder's release, seen from another
        // NFS client), or something else at the name now: not ours; the
        // caller looks again.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(false);
        }
        Err(e) => return Err(Error::io(lock.path(), e)),
    };
    let owner = OsStr::new(OWNER);
    let mut tries = 0;
    let (temp, file) = loop {
        let temp = OsString::from(format!(
            "{OWNER_TEMP}{}.{:08x}",
            std::process::id(),
            crate::fs::random_tag()
        ));
        match inside.create_new(&temp, 0o644) {
            Ok(file) => break (temp, file),
            // The directory was removed meanwhile (its holder's release,
            // seen from another NFS client): not ours; look again.
            Err(e) if e.kind() == io::ErrorKind::NotFound || is_stale(&e) => return Ok(false),
            // Our own create, whose reply was lost: the name is ours alone.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 10 => {
                let _ = again(|| inside.unlink_own(&temp));
                tries += 1;
            }
            Err(e) => return Err(created(e)),
        }
    };
    let placed = rel::write_and_close(file, record)
        .map_err(short)
        .and_then(|()| {
            let before = again(|| inside.lstat(&temp)).map_err(short)?;
            let linked = inside.link(&temp, owner);
            if linked.as_ref().is_err_and(|e| {
                matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::EOPNOTSUPP | libc::EXDEV)
                )
            }) {
                return place_without_links(&inside, record).map_err(short);
            }
            // Judged by inode, whatever link answered. A look that fails
            // (the directory removed meanwhile) finds nothing of ours.
            let two = again(|| inside.lstat(&temp)).is_ok_and(|m| m.nlink == 2);
            Ok(two || again(|| inside.lstat(owner)).is_ok_and(|m| m.same_file(&before)))
        });
    let _ = again(|| inside.unlink_own(&temp));
    placed
}

/// `owner` created with `O_EXCL` and written in place (no hard links).
fn place_without_links(inside: &Dir, record: &[u8]) -> io::Result<bool> {
    match inside.create_new(OsStr::new(OWNER), 0o644) {
        Ok(file) => rel::write_and_close(file, record).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove the lock directory `lock` (in `parent`): only our own names
/// inside are unlinked, then the directory itself with `rmdir(2)`. With
/// `expect`, only if it is still that directory (device, inode).
/// `Ok(false)`: it was gone, or is another directory now. A directory
/// holding anything else is refused ([`Error::NotALock`]) and left intact.
pub fn remove_dir(
    parent: &Dir,
    lock: &LockPath,
    expect: Option<(u64, u64)>,
    sweep: Sweep,
) -> Result<bool> {
    let path = lock.path();
    let inside = match parent.open_child(lock.name()) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::LockIsSymlink { path: path.into() });
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(Error::NotALockDirectory { path: path.into() });
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let meta = inside.meta().map_err(|e| Error::io(path, e))?;
    if expect.is_some_and(|(dev, ino)| (meta.dev, meta.ino) != (dev, ino)) {
        return Ok(false);
    }
    check_contents(&inside, path)?;
    let names = inside.names().map_err(|e| Error::io(path, e))?;
    for name in names.iter().filter(|n| sweep.takes(n)) {
        let removed = again(|| inside.lstat(name))
            .and_then(|m| again(|| inside.unlink_this(name, m.dev, m.ino)));
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path.join(name), e)),
        }
    }
    match again(|| parent.rmdir_this(lock.name(), meta.dev, meta.ino)) {
        Ok(()) => Ok(true),
        // Emptied by us and gone: our rmdir's reply was lost (NFS), or
        // another removed the empty directory in that instant.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        // Something was put inside meanwhile. Anything but lockdir's names:
        // it stays, and so does the lock ([`Error::NotALock`]). Only
        // lockdir's: another lockdir found the directory we emptied without
        // an owner and is placing its own; the directory is its lock now.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            check_contents(&inside, path)?;
            Ok(sweep == Sweep::Ours)
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Which of lockdir's names [`remove_dir`] unlinks inside the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// A holder's release: `owner` and this process's temporary names; a
    /// temporary name of another process belongs to a lockdir placing its
    /// owner right now (it found the directory being emptied without one).
    Ours,
    /// A stale or forced removal: every name lockdir puts there (a dead
    /// process's temporary names too).
    All,
}

impl Sweep {
    fn takes(self, name: &OsStr) -> bool {
        match self {
            Sweep::All => is_ours(name),
            Sweep::Ours => {
                let mine = format!("{OWNER_TEMP}{}.", std::process::id());
                name == OWNER || name.as_bytes().starts_with(mine.as_bytes())
            }
        }
    }
}

/// A lock directory we hold. Dropping it releases it (best effort).
#[must_use = "dropping a HeldDir releases the lock at once"]
#[derive(Debug)]
pub struct HeldDir {
    parent: Dir,
    lock: LockPath,
    dev: u64,
    ino: u64,
    record: Vec<u8>,
    done: bool,
}

impl HeldDir {
    /// The directory's (dev, ino).
    pub(crate) fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    fn same_dir(&self) -> bool {
        self.parent
            .lstat(self.lock.name())
            .is_ok_and(|m| m.dev == self.dev && m.ino == self.ino)
    }

    fn inside(&self) -> io::Result<Dir> {
        let inside = self.parent.open_child(self.lock.name())?;
        let m = inside.meta()?;
        if (m.dev, m.ino) != (self.dev, self.ino) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(inside)
    }

    fn release_inner(&self) -> Result<bool> {
        if !Holding::is_ours(self) {
            return Ok(false);
        }
        remove_dir(
            &self.parent,
            &self.lock,
            Some((self.dev, self.ino)),
            Sweep::Ours,
        )
    }
}

impl Holding for HeldDir {
    fn still_ours(&self) -> Result<bool> {
        let inside = match self.inside() {
            Ok(inside) => inside,
            // Gone, or another directory (or a file) at the name now.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return Ok(false);
            }
            Err(e) => return Err(Error::io(self.lock.path(), e)),
        };
        let owner = rel::observe_at(&inside, OsStr::new(OWNER), &self.lock.path().join(OWNER))?;
        Ok(owner.is_some_and(|o| o.content.as_deref() == Some(&self.record[..])))
    }

    fn touch(&self) -> Result<bool> {
        let owner = self.lock.path().join(OWNER);
        match self.inside() {
            Ok(inside) => rel::touch_at(&inside, OsStr::new(OWNER), &owner),
            Err(_) => Ok(false),
        }
    }

    fn append(&mut self, lines: &[u8]) -> Result<bool> {
        if !self.same_dir() || !Holding::is_ours(self) {
            return Ok(false);
        }
        let owner = self.lock.path().join(OWNER);
        let inside = self.inside().map_err(|e| Error::io(self.lock.path(), e))?;
        let file = inside
            .open_append(OsStr::new(OWNER))
            .map_err(|e| Error::io(&owner, e))?;
        rel::write_record(file, lines, self.lock.path())?;
        self.record.extend_from_slice(lines);
        Ok(true)
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
#[path = "mkdir_tests.rs"]
mod tests;
