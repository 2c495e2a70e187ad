//! Exit statuses, spelled out in one place.
//!
//! The numbers are liblockfile's (`lockfile_create(3)`), which scripts
//! written for `dotlockfile` already test for. Every error of the library
//! maps to exactly one of them through [`Error::exit_code`]; the one
//! difference of the `dotlockfile` personality (a missing lock directory,
//! which liblockfile 1.17 reports as 5) is applied by the command layer.

use crate::Error;

/// A process exit status of the lock commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The action succeeded.
    Success = 0,
    /// Usage error, name too long, `-c` found no valid lock, `-t`/`-u` failed.
    Failure = 1,
    /// The temporary file could not be created (directory missing, not
    /// writable, read-only filesystem). liblockfile's `L_TMPLOCK`.
    TempLock = 2,
    /// The owner record could not be written completely. `L_TMPWRITE`.
    TempWrite = 3,
    /// Retries exhausted or `--timeout` reached. `L_MAXTRYS`.
    MaxTries = 4,
    /// Any other error: bad `-r`/`-i`, the parent died while waiting, the
    /// lock path is not a regular file, fork failure. `L_ERROR`.
    Error = 5,
    /// `-p` without a command while the parent is already init. `L_ORPHANED`.
    Orphaned = 7,
    /// A stale lock could not be removed. `L_RMSTALE`.
    RmStale = 8,
    /// The command was found but could not be executed.
    NotExecutable = 126,
    /// The command was not found.
    NotFound = 127,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

impl Error {
    /// The exit status that reports this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::NameTooLong { .. } | Error::NotOurs { .. } => ExitCode::Failure,
            Error::NoDirectory { .. } | Error::NotADirectory { .. } | Error::CreateTemp { .. } => {
                ExitCode::TempLock
            }
            Error::ShortWrite { .. } => ExitCode::TempWrite,
            Error::Busy { .. } | Error::TimedOut { .. } => ExitCode::MaxTries,
            Error::StaleNotRemoved { .. } => ExitCode::RmStale,
            Error::Orphaned => ExitCode::Orphaned,
            Error::LockIsDirectory { .. }
            | Error::NotALockDirectory { .. }
            | Error::NotALock { .. }
            | Error::BadValue(_)
            | Error::LockIsSymlink { .. }
            | Error::LockNotRegular { .. }
            | Error::ParentDied
            | Error::Io { .. } => ExitCode::Error,
        }
    }
}
