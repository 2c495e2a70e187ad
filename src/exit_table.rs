//! The one exit status table of `dotlock`, `lockdir` and `filelock`
//! ([`TABLE`]), and its renderings: the README's Markdown, the man pages'
//! roff, each program's `--help` lines.

/// One situation of the exit status table that `dotlock`, `lockdir` and
/// `filelock` share ([`TABLE`]).
#[derive(Debug, Clone, Copy)]
pub struct Situation {
    /// A short name, for tests.
    pub id: &'static str,
    /// What happened, in words (Markdown: `code` spans only).
    pub what: &'static str,
    /// The status of `dotlock`, `lockdir`, `filelock`: a number, `n` (the
    /// command's own status), `N` (`-E N`'s), `128+N` (death by signal N,
    /// re-raised), or
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
        id: "conflict",
        what: "Busy with a command and `-E N` (`--conflict-exit-code`; without a command it is a usage error)",
        codes: ["N", "N", "N"],
        note: "",
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
        codes: ["1", "1", "-"],
        note: "filelock has no `-t`",
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
        id: "unsafe",
        what: "`--check DIR`: something is `unsafe` to lock there (0: nothing is; a missing directory: as above)",
        codes: ["10", "10", "10"],
        note: "",
    },
    Situation {
        id: "no-token",
        what: "`--fence`: no fencing token (its counter `LOCK.fence` unusable, or the lock lost before its token was recorded): the lock is released, nothing runs",
        codes: ["11", "11", "1"],
        note: "filelock keeps the seed script's contract: every failure to lock is 1",
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

/// The "Exit status" lines of `command`'s `--help` (one of [`COMMANDS`]),
/// from its column of [`TABLE`].
pub fn help_lines(command: &str) -> String {
    let column = COMMANDS
        .iter()
        .position(|c| *c == command)
        .expect("one of the three commands");
    let mut out = String::from("Exit status:");
    for s in TABLE.iter().filter(|s| s.codes[column] != "-") {
        out.push_str(&format!(
            "\n  {:>5}  {}",
            s.codes[column],
            s.what.replace('`', "")
        ));
    }
    out
}
