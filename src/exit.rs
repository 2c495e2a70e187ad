//! Exit statuses, decided in one place.
//!
//! Every command ends in an [`Outcome`] — what happened, in words — and
//! [`Outcome::exit`] turns it into the status of the program that ran
//! ([`Program`]): one mapping per personality, pinned by one table test
//! below.
//!
//! The numbers of `dotlock` and `lockdir` are liblockfile's
//! (`lockfile_create(3)`), which scripts written for `dotlockfile` already
//! test for ([`ExitCode`]). The `dotlockfile` personality differs where
//! liblockfile 1.17 was measured to (a missing directory is 5; a command
//! that cannot be executed is 127; without `-P` a command's status is not
//! passed on). `filelock` keeps the seed script's 0 and 1; procmail's
//! `lockfile` its sysexits numbers.

use std::io;

use crate::signals::Sig;

use crate::Error;
use crate::child::ChildEnd;

/// A process exit status of the lock commands (liblockfile's numbers).
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
    /// `--status`: the lock is stale (ours; liblockfile has no `--status`).
    Stale = 9,
    /// `--check`: the directory is unsafe to lock in.
    Unsafe = 10,
    /// `--fence`: no fencing token could be had (the lock is released).
    NoToken = 11,
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
    /// The exit status that reports this error in `dotlock` and `lockdir`.
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
            Error::NoToken { .. } => ExitCode::NoToken,
            Error::LockIsDirectory { .. }
            | Error::NotALockDirectory { .. }
            | Error::NotALock { .. }
            | Error::BadValue(_)
            | Error::LockIsSymlink { .. }
            | Error::LockNotRegular { .. }
            | Error::ParentDied
            | Error::LockLost { .. }
            | Error::NotRecorded { .. }
            | Error::Io { .. } => ExitCode::Error,
        }
    }
}

/// What a command came to. Its message, if any, has been said already.
#[derive(Debug)]
pub enum Outcome {
    /// The action succeeded.
    Success,
    /// The arguments were wrong.
    Usage,
    /// A number or duration out of range.
    BadValue,
    /// `-c`: there is no valid lock; `-t`: there is no lock; `--status`:
    /// the lock is free.
    NoLock,
    /// `--status`: the lock is there, but stale.
    Stale,
    /// `-u` of a lock that is not there (a warning in filelock).
    NotLocked,
    /// `-u` refused: the lock is somebody else's.
    Refused,
    /// `-u`/`-t` failed for a reason the library gives.
    ActionFailed(Error),
    /// Taking the lock failed.
    Failed(Error),
    /// The lock was busy (retries or `--timeout` spent) and `-E` names
    /// the status to end with.
    Conflict(u8),
    /// `--check`: something is unsafe.
    Unsafe,
    /// A caught signal ended the wait: die by it.
    Signal(Sig),
    /// The command ran under the lock and ended so.
    Command(ChildEnd),
    /// The command could not be started.
    NotStarted(io::ErrorKind),
    /// Help or version was printed.
    Shown,
}

/// Which program, in which personality, decides the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `dotlock` and `lockdir`.
    Native,
    /// liblockfile 1.17's `dotlockfile`; `passthrough` is its `-P`.
    Dotlockfile { passthrough: bool },
    /// `filelock`: 0 or 1.
    Filelock,
    /// procmail's `lockfile`; `invert` is its `-!`.
    Lockfile { invert: bool },
    /// Debian's lockfile-progs: 0, 1 usage, 2 no temporary file, 4 gave
    /// up, 255 no valid lock (`lockfile-check`, `lockfile-touch`).
    LockfileProgs,
}

/// How a process ends: with a status, or by re-raising a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Status(u8),
    Signal(Sig),
}

impl From<ExitCode> for Exit {
    fn from(code: ExitCode) -> Self {
        Exit::Status(code.code())
    }
}

/// procmail's statuses (`sysexits.h`).
mod sysexits {
    pub const USAGE: u8 = 64;
    pub const UNAVAILABLE: u8 = 69;
    pub const NOPERM: u8 = 71;
    pub const CANTCREAT: u8 = 73;
    pub const TEMPFAIL: u8 = 75;
}

impl Outcome {
    /// With `-E N` (`conflict`): a lock that could not be had (busy,
    /// timed out) ends with status N; any other outcome is kept.
    pub fn or_conflict(self, conflict: Option<u8>) -> Outcome {
        match (self, conflict) {
            (Outcome::Failed(Error::Busy { .. } | Error::TimedOut { .. }), Some(code)) => {
                Outcome::Conflict(code)
            }
            (other, _) => other,
        }
    }

    /// The status `program` ends with.
    pub fn exit(&self, program: Program) -> Exit {
        match program {
            Program::Native => self.native(),
            Program::Dotlockfile { passthrough } => self.dotlockfile(passthrough),
            Program::Filelock => self.filelock(),
            Program::Lockfile { invert } => self.lockfile(invert),
            Program::LockfileProgs => self.lockfile_progs(),
        }
    }

    fn lockfile_progs(&self) -> Exit {
        match self {
            Outcome::Success | Outcome::Shown => Exit::Status(0),
            Outcome::NoLock => Exit::Status(255),
            Outcome::Failed(
                Error::NoDirectory { .. }
                | Error::NotADirectory { .. }
                | Error::CreateTemp { .. }
                | Error::Io { .. },
            ) => Exit::Status(2),
            Outcome::Failed(Error::ShortWrite { .. }) => Exit::Status(3),
            Outcome::Failed(_) => Exit::Status(4),
            Outcome::ActionFailed(_) => Exit::Status(255),
            Outcome::Signal(sig) => Exit::Signal(*sig),
            _ => Exit::Status(1),
        }
    }

    fn native(&self) -> Exit {
        use ExitCode as C;
        match self {
            Outcome::Success | Outcome::Shown | Outcome::NotLocked => C::Success.into(),
            Outcome::Usage | Outcome::NoLock | Outcome::Refused => C::Failure.into(),
            Outcome::Stale => C::Stale.into(),
            Outcome::BadValue => C::Error.into(),
            // -t and -u report a failure as 1, whatever the cause.
            Outcome::ActionFailed(_) => C::Failure.into(),
            Outcome::Failed(e) => e.exit_code().into(),
            Outcome::Conflict(code) => Exit::Status(*code),
            Outcome::Unsafe => C::Unsafe.into(),
            Outcome::Signal(sig) => Exit::Signal(*sig),
            Outcome::Command(ChildEnd::Exited(code)) => Exit::Status(*code as u8),
            Outcome::Command(ChildEnd::Signaled(sig)) => Exit::Signal(*sig),
            Outcome::NotStarted(io::ErrorKind::PermissionDenied) => C::NotExecutable.into(),
            Outcome::NotStarted(io::ErrorKind::NotFound) => C::NotFound.into(),
            Outcome::NotStarted(_) => C::Error.into(),
        }
    }

    fn dotlockfile(&self, passthrough: bool) -> Exit {
        use ExitCode as C;
        match self {
            // liblockfile 1.17 reports a missing or non-directory parent as 5.
            Outcome::Failed(Error::NoDirectory { .. } | Error::NotADirectory { .. }) => {
                C::Error.into()
            }
            Outcome::Command(end) if passthrough => Exit::Status(end.shell_status() as u8),
            Outcome::Command(_) => C::Success.into(),
            Outcome::NotStarted(io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound)
                if passthrough =>
            {
                C::NotFound.into()
            }
            Outcome::NotStarted(io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound) => {
                C::Success.into()
            }
            other => other.native(),
        }
    }

    fn filelock(&self) -> Exit {
        match self {
            Outcome::Success | Outcome::Shown => Exit::Status(0),
            Outcome::Signal(sig) => Exit::Signal(*sig),
            Outcome::Command(_)
            | Outcome::NotStarted(_)
            | Outcome::Stale
            | Outcome::Unsafe
            | Outcome::Conflict(_) => self.native(),
            _ => Exit::Status(1),
        }
    }

    fn lockfile(&self, invert: bool) -> Exit {
        use sysexits::*;
        let code = match self {
            Outcome::Success => 0,
            Outcome::Shown
            | Outcome::Usage
            | Outcome::BadValue
            | Outcome::NoLock
            | Outcome::ActionFailed(_) => USAGE,
            Outcome::Failed(Error::Busy { .. } | Error::TimedOut { .. }) => CANTCREAT,
            Outcome::Refused => NOPERM,
            Outcome::Signal(_) => TEMPFAIL,
            _ => UNAVAILABLE,
        };
        // -! exchanges success and giving up.
        Exit::Status(match (invert, code) {
            (true, 0) => CANTCREAT,
            (true, CANTCREAT) => 0,
            (_, c) => c,
        })
    }
}

#[cfg(test)]
#[path = "exit_tests.rs"]
mod tests;
