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
            Outcome::Command(_) | Outcome::NotStarted(_) | Outcome::Stale => self.native(),
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

/// One situation of the exit status table that `dotlock`, `lockdir` and
/// `filelock` share ([`TABLE`]).
#[derive(Debug, Clone, Copy)]
pub struct Situation {
    /// A short name, for tests.
    pub id: &'static str,
    /// What happened, in words (Markdown: `code` spans only).
    pub what: &'static str,
    /// The status of `dotlock`, `lockdir`, `filelock`: a number, `n` (the
    /// command's own status), `128+N` (death by signal N, re-raised), or
    /// `-` where the situation cannot arise.
    pub codes: [&'static str; 3],
    /// Why a command departs from the others, if it does.
    pub note: &'static str,
}

/// The commands of [`TABLE`]'s columns.
pub const COMMANDS: [&str; 3] = ["dotlock", "lockdir", "filelock"];

const SEED: &str = "filelock keeps the seed script's contract: every failure to lock is 1";

/// The exit statuses of the three commands: the same situation has the
/// same status, except where a note says why not. The README and each man
/// page show this table; a test runs every cell against the programs.
pub const TABLE: &[Situation] = &[
    Situation {
        id: "taken",
        what: "The lock is taken (or released by `-u`)",
        codes: ["0", "0", "0"],
        note: "",
    },
    Situation {
        id: "usage",
        what: "Usage error: unknown option, no lock named, actions combined",
        codes: ["1", "1", "1"],
        note: "",
    },
    Situation {
        id: "too-long",
        what: "A lock name too long (at most 249 bytes: room for its `.break`) or a path over `PATH_MAX`",
        codes: ["1", "1", "1"],
        note: "",
    },
    Situation {
        id: "bad-value",
        what: "A bad number or duration (`-r x`, `-i -1`, `--timeout abc`)",
        codes: ["5", "5", "1"],
        note: SEED,
    },
    Situation {
        id: "busy",
        what: "Busy: retries spent or `--timeout` reached",
        codes: ["4", "4", "1"],
        note: SEED,
    },
    Situation {
        id: "no-dir",
        what: "The lock's directory is missing, not writable or read-only",
        codes: ["2", "2", "1"],
        note: SEED,
    },
    Situation {
        id: "short-write",
        what: "The owner record cannot be written (disk full, file size limit)",
        codes: ["3", "3", "1"],
        note: SEED,
    },
    Situation {
        id: "not-a-lock",
        what: "The lock path is no lock: a directory (lockdir: a file), a symlink, a FIFO, or a directory holding what lockdir did not put there",
        codes: ["5", "5", "1"],
        note: SEED,
    },
    Situation {
        id: "rm-stale",
        what: "A stale lock cannot be removed",
        codes: ["8", "8", "1"],
        note: SEED,
    },
    Situation {
        id: "orphaned",
        what: "`-p` without a command while the parent is init",
        codes: ["7", "-", "-"],
        note: "only dotlock has `-p`",
    },
    Situation {
        id: "check-valid",
        what: "`-c`: the lock is validly held (filelock: every lock)",
        codes: ["0", "0", "0"],
        note: "",
    },
    Situation {
        id: "check-none",
        what: "`-c`: no valid lock",
        codes: ["1", "1", "1"],
        note: "",
    },
    Situation {
        id: "status-held",
        what: "`--status`: held (for several locks or slots: any is held)",
        codes: ["0", "0", "0"],
        note: "",
    },
    Situation {
        id: "status-free",
        what: "`--status`: free",
        codes: ["1", "1", "1"],
        note: "",
    },
    Situation {
        id: "status-stale",
        what: "`--status`: stale (for several: none held, one stale)",
        codes: ["9", "9", "9"],
        note: "",
    },
    Situation {
        id: "unlock-missing",
        what: "`-u` of a lock that is not there",
        codes: ["0", "0", "1"],
        note: "filelock keeps the seed's warning and 1",
    },
    Situation {
        id: "unlock-refused",
        what: "`-u` of somebody else's live lock, without `--force`",
        codes: ["1", "1", "1"],
        note: "",
    },
    Situation {
        id: "touch-missing",
        what: "`-t` of a lock that is not there",
        codes: ["1", "-", "-"],
        note: "only dotlock has `-t`",
    },
    Situation {
        id: "command",
        what: "With a command: the command's status (killed by signal N: death by N, which the shell shows as 128+N)",
        codes: ["n", "n", "n"],
        note: "",
    },
    Situation {
        id: "not-executable",
        what: "With a command that is not executable",
        codes: ["126", "126", "126"],
        note: "",
    },
    Situation {
        id: "not-found",
        what: "With a command that is not found",
        codes: ["127", "127", "127"],
        note: "",
    },
    Situation {
        id: "signal",
        what: "A signal (INT, TERM, HUP, QUIT, PIPE) while waiting: every lock taken is released, then death by the same signal",
        codes: ["128+N", "128+N", "128+N"],
        note: "",
    },
];

/// [`TABLE`] as a Markdown table (the README's).
pub fn table_markdown() -> String {
    let mut out = String::from(
        "| situation | dotlock | lockdir | filelock | note |\n|---|---|---|---|---|\n",
    );
    for s in TABLE {
        let cell = |c: &str| {
            if c == "-" {
                "—".to_string()
            } else {
                c.to_string()
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            s.what,
            cell(s.codes[0]),
            cell(s.codes[1]),
            cell(s.codes[2]),
            s.note
        ));
    }
    out
}

/// [`TABLE`] as a man page section (roff without tbl).
pub fn table_roff() -> String {
    let roff = |text: &str| {
        let mut out = String::new();
        for (i, part) in text.split('`').enumerate() {
            let part = part.replace('\\', "\\e").replace('-', "\\-");
            if i % 2 == 1 {
                out.push_str(&format!("\\fB{part}\\fR"));
            } else {
                out.push_str(&part);
            }
        }
        out
    };
    let mut out = String::from(
        ".SH \"EXIT STATUS\"\nOne table for \\fBdotlock\\fR, \\fBlockdir\\fR and \\fBfilelock\\fR: the same situation has the same status, except where a note says why not.\n",
    );
    for s in TABLE {
        let codes: Vec<String> = COMMANDS
            .iter()
            .zip(s.codes)
            .filter(|(_, c)| *c != "-")
            .map(|(cmd, c)| format!("{cmd} \\fB{}\\fR", c))
            .collect();
        out.push_str(&format!(".TP\n{}\n{}", roff(s.what), codes.join(", ")));
        if !s.note.is_empty() {
            out.push_str(&format!(" ({})", roff(s.note)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[path = "exit_tests.rs"]
mod tests;
