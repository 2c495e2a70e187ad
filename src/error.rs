//! The library's one error type: every variant keeps the path it concerns
//! and, where a system call failed, the `io::Error` with its kind.

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, and where. Display gives `PATH: reason`; the commands
/// prefix their own name.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A component is longer than `NAME_MAX` or the path longer than `PATH_MAX`.
    #[error("{}: name too long", path.display())]
    NameTooLong { path: PathBuf },

    /// The directory that should hold the lock does not exist.
    #[error("{}: no such directory", dir.display())]
    NoDirectory { dir: PathBuf },

    /// What should be the lock's directory is something else.
    #[error("{}: not a directory", dir.display())]
    NotADirectory { dir: PathBuf },

    /// The temporary file could not be created in the lock's directory
    /// (permission denied, read-only filesystem, no space, ...).
    #[error("{}: cannot create a file in the lock's directory: {}", path.display(), describe(source))]
    CreateTemp { path: PathBuf, source: io::Error },

    /// The owner record could not be written out completely.
    #[error("{}: cannot write the owner record: {}", path.display(), describe(source))]
    ShortWrite { path: PathBuf, source: io::Error },

    /// A directory stands at the lock path: it is not a lock.
    #[error("{}: is a directory, not a lock file", path.display())]
    LockIsDirectory { path: PathBuf },

    /// A symbolic link stands at the lock path; it is never followed.
    #[error("{}: is a symbolic link (not followed)", path.display())]
    LockIsSymlink { path: PathBuf },

    /// A file stands where a lock directory should be.
    #[error("{}: is not a directory, not a lock directory", path.display())]
    NotALockDirectory { path: PathBuf },

    /// A directory holds what lockdir never puts in a lock directory: it
    /// is somebody's data, not a lock, and is left alone at any age.
    #[error("{}: holds {}, which lockdir did not put there: not a lock directory, left alone", path.display(), entry.display())]
    NotALock { path: PathBuf, entry: PathBuf },

    /// A lock we took was removed or replaced by another process before we
    /// were done with it.
    #[error("{}: the lock was taken away (removed or replaced by another process)", path.display())]
    LockLost { path: PathBuf },

    /// `--fence`: no fencing token could be had for the lock taken (the
    /// counter unusable, or the lock lost before its token was recorded);
    /// the lock is released and nothing runs.
    #[error("{}: no fencing token: {reason}", path.display())]
    NoToken { path: PathBuf, reason: String },

    /// A duration or count out of range.
    #[error("{0}")]
    BadValue(String),

    /// The command's pid could not be added to the lock's record, so the
    /// command was not run (a waiter could not tell it holds the lock).
    #[error("{source}; the command was not run: the lock could not name it")]
    NotRecorded { source: Box<Error> },

    /// A lock directory that is not ours would have to be removed.
    #[error("{}: held by {holder}; not ours, left alone (--force removes it)", path.display())]
    NotOurs { path: PathBuf, holder: String },

    /// A FIFO, socket or device stands at the lock path.
    #[error("{}: is not a regular file", path.display())]
    LockNotRegular { path: PathBuf },

    /// Every attempt found the lock held.
    #[error("{}: still locked after {attempts} attempt{}", path.display(), if *attempts == 1 { "" } else { "s" })]
    Busy { path: PathBuf, attempts: u64 },

    /// `--timeout` ran out while the lock was held.
    #[error("{}: still locked when the timeout ran out", path.display())]
    TimedOut { path: PathBuf },

    /// A lock judged stale could not be removed.
    #[error("{}: stale lock could not be removed: {}", path.display(), describe(source))]
    StaleNotRemoved { path: PathBuf, source: io::Error },

    /// `-p` without a command: the process whose pid would be recorded
    /// has already exited (we were reparented).
    #[error("parent process has exited; not recording init as the holder")]
    Orphaned,

    /// `-p` without a command: the parent died while we were waiting.
    #[error("parent process died while waiting; giving up")]
    ParentDied,

    /// Any other failed system call on a path.
    #[error("{}: {}", path.display(), describe(source))]
    Io { path: PathBuf, source: io::Error },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Did a call fail with `ESTALE`? On NFS that means another client
    /// changed (removed, replaced) what the call named: look again, never
    /// give up on it.
    pub fn is_stale_handle(&self) -> bool {
        match self {
            Error::Io { source, .. }
            | Error::CreateTemp { source, .. }
            | Error::ShortWrite { source, .. }
            | Error::StaleNotRemoved { source, .. } => crate::retry::is_stale(source),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The one errno classifier for creating a name in a lock's directory
/// (`open(O_CREAT|O_EXCL)`, `link(2)`, `mkdir(2)`): a missing or
/// non-directory parent, a name too long, or no right to create it (no
/// permission, read-only, full) become the errors with their exit codes;
/// anything else is [`Error::Io`].
///
/// `ENOENT` is "no such directory" only if the directory cannot be opened
/// now: on NFS a lost reply or a vanished operand answers it too
/// ([`vanished`]).
pub(crate) fn creating(lock: &Path, e: io::Error) -> Error {
    use nix::libc;
    let dir = parent_of(lock);
    match e.raw_os_error() {
        Some(libc::ENOENT) if crate::dir::Dir::open(&dir).is_ok() => Error::io(lock, e),
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

/// Did creating a name in `lock`'s directory fail with `ENOENT` while the
/// directory is there? Then what vanished was the call's other operand —
/// our temporary file, removed as debris by another process while the
/// exclusive create's verifier still stood in its mtime (NFS keeps it
/// there until the times are set) — or a retransmission answered for a
/// call the server had done: the attempt is made again.
pub(crate) fn vanished(lock: &Path, e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::ENOENT) && crate::dir::Dir::open(&parent_of(lock)).is_ok()
}

/// The directory a lock path names (`.` for a bare name).
fn parent_of(lock: &Path) -> PathBuf {
    match lock.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `strerror` text without Rust's " (os error N)" suffix, so messages read
/// like those of the C tools.
pub(crate) fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}
