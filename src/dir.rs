//! Filesystem calls relative to a directory opened once ([`Dir`]).
//!
//! Every operation on a lock — creating the temporary file, `link(2)`,
//! looking, touching, removing — names the lock's directory by a descriptor
//! ([`Dir`]) and the lock by a plain file name (`openat(2)`, `linkat(2)`,
//! `fstatat(2)`, `unlinkat(2)`, `utimensat(2)`, `mkdirat(2)`). The path to
//! the directory is resolved once, when it is opened; whatever is renamed
//! or swapped along that path afterwards cannot redirect the calls. That
//! is what makes the setgid mailbox rules sound ([`crate::mailbox`]): the
//! rules are checked on the opened directory, and the privileged calls act
//! on that very directory.
//!
//! The descriptor is opened with `O_PATH`: it needs no read permission on
//! the directory, costs no `OPEN` on NFS (a `LOOKUP` only), and serves as
//! the `dirfd` of every `*at` call and for `fstat(2)`.
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::libc;

use crate::seam::{self, Fault};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, UtimensatFlags, fstat, fstatat, mkdirat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};

/// What `fstatat(2)` says of a name, in the terms the locks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    pub mtime: SystemTime,
}

impl Meta {
    // The stat field types differ between targets; the casts are for those.
    #[allow(clippy::unnecessary_cast)]
    fn from_stat(st: &FileStat) -> Meta {
        let mtime = if st.st_mtime >= 0 {
            UNIX_EPOCH
                + Duration::new(
                    st.st_mtime as u64,
                    st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
                )
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(st.st_mtime.unsigned_abs()))
                .unwrap_or(UNIX_EPOCH)
        };
        Meta {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            size: st.st_size.max(0) as u64,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode as u32,
            mtime,
        }
    }

    /// `fstat(2)` of an open file.
    pub fn of(file: &File) -> io::Result<Meta> {
        if seam::fault("fstat") == Some(Fault::Stale) {
            return Err(io::Error::from_raw_os_error(libc::ESTALE));
        }
        fstat(file).map(|st| Meta::from_stat(&st)).map_err(errno)
    }

    fn kind(&self) -> SFlag {
        SFlag::from_bits_truncate(self.mode & SFlag::S_IFMT.bits())
    }

    pub fn is_file(&self) -> bool {
        self.kind() == SFlag::S_IFREG
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == SFlag::S_IFDIR
    }

    pub fn is_symlink(&self) -> bool {
        self.kind() == SFlag::S_IFLNK
    }

    /// Same device and inode.
    pub fn same_file(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// An opened directory, with the path it was opened by (for messages).
/// Clones share the one descriptor: a lock held, its waiter and its gate
/// cost one descriptor for their directory, not one each (a process near
/// its `ulimit -n` must still be able to release what it took).
#[derive(Debug)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Make the call `op`, as `LOCKUTILS_TEST_FAULTS` asks ([`seam::fault`]):
/// not at all (`ESTALE`), or done and then answered with `lost` (the
/// retransmission's answer) or `EIO`; `EIO` made again by the rules of
/// [`crate::retry::eio`].
fn faulty<T>(op: &str, lost: i32, mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let removes = matches!(op, "unlink" | "rmdir");
    crate::retry::eio(removes, || match seam::fault(op) {
        None => call(),
        Some(Fault::Stale) => Err(io::Error::from_raw_os_error(libc::ESTALE)),
        Some(Fault::LostReply) => call().and(Err(io::Error::from_raw_os_error(lost))),
        Some(Fault::Eio) => call().and(Err(io::Error::from_raw_os_error(libc::EIO))),
    })
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Dir {
    /// Open `path` as a directory (`O_PATH|O_DIRECTORY`), following
    /// symbolic links in it this once.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Dir {
            fd: Arc::new(fd),
            path: path.to_path_buf(),
        })
    }

    /// Open the directory `name` inside this one, never through a
    /// symbolic link (`O_NOFOLLOW`), for reading its entries.
    pub fn open_child(&self, name: &OsStr) -> io::Result<Dir> {
        let fd = openat(
            self,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Dir {
            fd: Arc::new(fd),
            path: self.path.join(name),
        })
    }

    /// The same directory, sharing its descriptor (never fails).
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: Arc::clone(&self.fd),
            path: self.path.clone(),
        })
    }

    /// The path the directory was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `fstat(2)` of the directory itself.
    pub fn meta(&self) -> io::Result<Meta> {
        fstat(self).map(|st| Meta::from_stat(&st)).map_err(errno)
    }

    /// `fstatat(2)` of `name`, not following a symbolic link.
    pub fn lstat(&self, name: &OsStr) -> io::Result<Meta> {
        faulty("lstat", libc::ESTALE, || {
            fstatat(self, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .map(|st| Meta::from_stat(&st))
                .map_err(errno)
        })
    }

    /// Create `name` anew: `O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        faulty("create", libc::EEXIST, || {
            let fd = openat(
                self,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            )
            .map_err(errno)?;
            Ok(File::from(fd))
        })
    }

    /// Open `name` for reading, never through a symbolic link and never
    /// blocking on a FIFO.
    pub fn open_read(&self, name: &OsStr) -> io::Result<File> {
        faulty("open", libc::ESTALE, || {
            let fd = openat(
                self,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            Ok(File::from(fd))
        })
    }

    /// Open `name` for appending (and reading what it holds first), never
    /// through a symbolic link.
    pub fn open_append(&self, name: &OsStr) -> io::Result<File> {
        let fd = openat(
            self,
            name,
            OFlag::O_RDWR
                | OFlag::O_APPEND
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(File::from(fd))
    }

    /// `linkat(2)`: a second name `to` for `from`, both in this directory.
    pub fn link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        faulty("link", libc::EEXIST, || {
            linkat(self, from, self, to, AtFlags::empty()).map_err(errno)
        })
    }

    /// `renameat(2)` within this directory.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        faulty("rename", libc::ENOENT, || {
            nix::fcntl::renameat(self, from, self, to).map_err(errno)
        })
    }

    /// `unlinkat(2)` of a file (or symbolic link) `name`.
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        faulty("unlink", libc::ENOENT, || {
            unlinkat(self, name, UnlinkatFlags::NoRemoveDir).map_err(errno)
        })
    }

    /// `unlinkat(2)` with `AT_REMOVEDIR`: remove the empty directory `name`.
    pub fn rmdir(&self, name: &OsStr) -> io::Result<()> {
        faulty("rmdir", libc::ENOENT, || {
            unlinkat(self, name, UnlinkatFlags::RemoveDir).map_err(errno)
        })
    }

    /// Remove `name` if it is the file (`dev`, `ino`). An unlink that
    /// answers `EIO` may or may not have happened: if the name still leads
    /// to that file it is made again; if it leads nowhere, or to another
    /// file (another process's lock, put there since), ours was removed and
    /// the answer is `ENOENT`, as for a lost reply.
    pub fn unlink_this(&self, name: &OsStr, dev: u64, ino: u64) -> io::Result<()> {
        let look = || match self.open_read(name) {
            Ok(file) => Meta::of(&file),
            // A symbolic link at the name (removed as such by `-u`).
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => self.lstat(name),
            Err(e) => Err(e),
        };
        self.remove_this((dev, ino), look, || self.unlink(name))
    }

    /// [`Dir::unlink_this`] for the directory `name`.
    pub fn rmdir_this(&self, name: &OsStr, dev: u64, ino: u64) -> io::Result<()> {
        let look = || self.open_child(name).and_then(|d| d.meta());
        self.remove_this((dev, ino), look, || self.rmdir(name))
    }

    /// Unlink a name only this process uses (its temporary files): made
    /// again after `EIO`, since nobody else can have put anything there.
    pub fn unlink_own(&self, name: &OsStr) -> io::Result<()> {
        match self.unlink(name) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => self.unlink(name),
            answer => answer,
        }
    }

    /// `remove`, and after `EIO` `look` at the name: by opening it, since an
    /// open revalidates with an NFS server (close-to-open) where a stat may
    /// be answered from the attribute cache, and a cached view of our own
    /// file would make the second removal hit another's. A look that fails
    /// otherwise than "not found" gives the `EIO` back, never a reason to
    /// remove again.
    fn remove_this(
        &self,
        this: (u64, u64),
        look: impl Fn() -> io::Result<Meta>,
        remove: impl Fn() -> io::Result<()>,
    ) -> io::Result<()> {
        let eio = match remove() {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => e,
            answer => return answer,
        };
        let mut seen = look();
        for _ in 0..5 {
            match &seen {
                Err(e) if e.raw_os_error() == Some(libc::ESTALE) => seen = look(),
                _ => break,
            }
        }
        match seen {
            Ok(m) if (m.dev, m.ino) == this => remove(),
            Ok(_) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
            Err(_) => Err(eio),
        }
    }

    /// `mkdirat(2)`.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        faulty("mkdir", libc::EEXIST, || {
            mkdirat(self, name, Mode::from_bits_truncate(mode)).map_err(errno)
        })
    }

    /// Set the mtime (and atime) of `name` to now, not following a link.
    pub fn touch(&self, name: &OsStr) -> io::Result<()> {
        let now = TimeSpec::UTIME_NOW;
        faulty("touch", libc::ESTALE, || {
            utimensat(self, name, &now, &now, UtimensatFlags::NoFollowSymlink).map_err(errno)
        })
    }

    /// Set the mtime (and atime) of the open `file` to now (`futimens(2)`):
    /// that very inode, whatever its name now holds.
    pub fn touch_file(file: &File) -> io::Result<()> {
        let now = TimeSpec::UTIME_NOW;
        faulty("touch", libc::ESTALE, || {
            nix::sys::stat::futimens(file, &now, &now).map_err(errno)
        })
    }

    /// The names in this directory (opened with [`Dir::open_child`]),
    /// without `.` and `..`.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let fd = self.fd.try_clone()?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(errno)?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(errno)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(out)
    }
}

/// Read at most `max` bytes of `file`, whose size was `size` when looked
/// at: one `read(2)` for a file of that size.
pub fn read_prefix(mut file: File, max: usize, size: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let mut got = 0;
    loop {
        let read = match seam::fault("read") {
            Some(Fault::Stale) => Err(io::Error::from_raw_os_error(libc::ESTALE)),
            _ => file.read(&mut buf[got..]),
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got == max || got as u64 == size {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Write `bytes` and close, reporting errors of `close(2)` too: NFS
/// reports delayed write errors there.
pub fn write_and_close(mut file: File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    let fd = OwnedFd::from(file);
    nix::unistd::close(fd).map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_calls_act_on_the_opened_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let dir = Dir::open(&a).unwrap();
        // The path is swapped for another directory after the open: calls
        // still act on the first one.
        std::fs::rename(&a, tmp.path().join("moved")).unwrap();
        std::fs::create_dir(&a).unwrap();
        let f = dir.create_new(OsStr::new("x"), 0o644).unwrap();
        write_and_close(f, b"hi").unwrap();
        assert!(tmp.path().join("moved/x").exists());
        assert!(!a.join("x").exists());
        dir.link(OsStr::new("x"), OsStr::new("y")).unwrap();
        assert_eq!(dir.lstat(OsStr::new("x")).unwrap().nlink, 2);
        dir.unlink(OsStr::new("x")).unwrap();
        assert!(dir.lstat(OsStr::new("x")).is_err());
        let m = dir.lstat(OsStr::new("y")).unwrap();
        assert!(m.is_file() && !m.is_dir() && m.size == 2);
        dir.mkdir(OsStr::new("d"), 0o755).unwrap();
        let child = dir.open_child(OsStr::new("d")).unwrap();
        assert!(child.names().unwrap().is_empty());
        dir.rmdir(OsStr::new("d")).unwrap();
        let mut names = dir.names();
        assert!(names.is_err(), "an O_PATH descriptor cannot be listed");
        names = Dir::open(&tmp.path().join("moved")).and_then(|d| {
            let parent = Dir::open(tmp.path())?;
            let _ = d;
            parent.open_child(OsStr::new("moved"))?.names()
        });
        assert_eq!(names.unwrap(), [OsString::from("y")]);
    }
}
