//! What a sleeping waiter watches besides the clock: the lock's directory
//! (a release wakes it) and its parent (its death ends a `-p` wait).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::stat::Mode;
use nix::sys::statfs::statfs;
use nix::unistd::getppid;

use crate::sys;

/// Watches the parent process: through a pidfd (`pidfd_open(2)`) where the
/// kernel has one, else by noticing that `getppid()` changed.
#[derive(Debug)]
pub struct ParentWatch {
    ppid: i32,
    pub(crate) pidfd: Option<OwnedFd>,
}

impl ParentWatch {
    /// Start watching our current parent.
    pub fn new() -> ParentWatch {
        let ppid = getppid().as_raw();
        let pidfd = sys::pidfd_open(ppid as u32);
        ParentWatch { ppid, pidfd }
    }

    /// Has the parent gone (we were reparented)?
    pub fn gone(&self) -> bool {
        getppid().as_raw() != self.ppid
    }
}

impl Default for ParentWatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Watches the lock's directory for names being removed or renamed away —
/// dnotify (`fcntl(F_NOTIFY)`, delivered as SIGIO through our signalfd) —
/// so that a waiter tries again the moment the lock is released instead of
/// at the end of its sleep.
///
/// dnotify rather than inotify: closing an inotify instance waits for the
/// kernel's fsnotify reaper (an SRCU grace period, measured at up to 16 ms),
/// and every lock, contended or not, would pay that at exit. A dnotify
/// registration goes away with its descriptor at no cost. dnotify does not
/// say which name changed, so a wake-up counts as a release only if the
/// lock's name is really gone.
///
/// Not used on remote filesystems (NFS and the like): the kernel sees only
/// this machine's changes there, so waiters poll on their schedule.
///
/// SIGIO is directed at the process: every thread must block it, as a
/// single-threaded command does through [`crate::signals::Signals`].
#[derive(Debug)]
pub struct ReleaseWatch {
    _dir: OwnedFd,
    locks: Vec<PathBuf>,
}

/// `<linux/fcntl.h>`: a name was removed, renamed, and keep notifying.
const DN_DELETE: libc::c_int = 0x8;
const DN_RENAME: libc::c_int = 0x10;
const DN_MULTISHOT: libc::c_int = 0x8000_0000_u32 as libc::c_int;

impl ReleaseWatch {
    /// Watch `dir` for any of `locks` (in it) going away; `None` where that
    /// cannot work (remote filesystem, no dnotify). SIGIO, which carries
    /// the notifications, must be caught already.
    pub fn new(locks: &[PathBuf], dir: &Path) -> Option<ReleaseWatch> {
        if is_remote(dir) {
            return None;
        }
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        sys::notify(fd.as_fd(), DN_DELETE | DN_RENAME | DN_MULTISHOT).then(|| ReleaseWatch {
            _dir: fd,
            locks: locks.to_vec(),
        })
    }

    /// Is the name of one of the locks gone?
    pub(crate) fn released(&self) -> bool {
        self.locks.iter().any(|lock| {
            matches!(std::fs::symlink_metadata(lock), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        })
    }
}

/// Is `dir` on a filesystem whose changes may come from other machines,
/// which inotify would not report (`statfs(2)` magic numbers)?
pub fn is_remote(dir: &Path) -> bool {
    match statfs(dir) {
        // fs_type_t is i64 here but narrower on other targets.
        #[allow(clippy::unnecessary_cast)]
        Ok(fs) => is_remote_magic(fs.filesystem_type().0 as i64),
        Err(_) => true,
    }
}

fn is_remote_magic(magic: i64) -> bool {
    const REMOTE: &[i64] = &[
        0x6969,      // NFS
        0x517B,      // SMB
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x7375_7245, // Coda
        0x5346_414F, // AFS
        0x6B41_4653, // kAFS
        0x00C3_6400, // Ceph
        0x0102_1997, // 9p
        0x6573_5546, // FUSE (sshfs, s3fs, ...)
        0x0116_1970, // GFS2
        0x7461_636F, // OCFS2
        0x0BD0_0BD0, // Lustre
        0x564C,      // NCP
    ];
    REMOTE.contains(&(magic & 0xFFFF_FFFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_filesystems_are_known() {
        assert!(is_remote_magic(0x6969));
        assert!(is_remote_magic(0xFF53_4D42));
        assert!(is_remote_magic(0x6573_5546));
        assert!(!is_remote_magic(0xEF53)); // ext4
        assert!(!is_remote_magic(0x0102_1994)); // tmpfs
    }
}
