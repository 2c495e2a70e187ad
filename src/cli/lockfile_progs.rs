//! Debian's lockfile-progs 0.1.19, as `dotlock` invoked under its names:
//! `lockfile-create`, `lockfile-remove`, `lockfile-touch`,
//! `lockfile-check`, `mail-lock`, `mail-unlock`, `mail-touchlock`.
//!
//! The options, `FILE.lock` naming, retries (9 by default, on liblockfile's
//! 5…60 s backoff), lock content (`0` or the caller's pid), messages and
//! exit statuses are the real ones, measured side by side. Fixed: ages are
//! judged on the filesystem's clock (a ten-minute-old lock is stale, where
//! lockfile-progs' atime check calls it valid), a bare pid that belongs to
//! a process started after the lock was made is no holder (pid reuse), and
//! no temporary file is left on any path.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::cli::pipeline::{self, Waiter};
use crate::cli::report::{Quiet, to_stderr};
use crate::cli::{Exit, Outcome, Program, Reporter, say};
use crate::dotlock::DotLock;
use crate::inspect::Holder;
use crate::judge::Policy;
use crate::link;
use crate::path::LockPath;
use crate::record::Record;
use crate::signals::Signals;
use crate::slots::AnyOf;
use crate::wait::{Patience, Schedule};
use crate::{Error, accounts, fs};

/// One of the programs of lockfile-progs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Create,
    Remove,
    Touch,
    Check,
    MailLock,
    MailUnlock,
    MailTouchlock,
}

impl Tool {
    /// The tool a program invoked as `name` is.
    pub fn from_name(name: &OsStr) -> Option<Tool> {
        Some(match name.to_str()? {
            "lockfile-create" => Tool::Create,
            "lockfile-remove" => Tool::Remove,
            "lockfile-touch" => Tool::Touch,
            "lockfile-check" => Tool::Check,
            "mail-lock" => Tool::MailLock,
            "mail-unlock" => Tool::MailUnlock,
            "mail-touchlock" => Tool::MailTouchlock,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Tool::Create => "lockfile-create",
            Tool::Remove => "lockfile-remove",
            Tool::Touch => "lockfile-touch",
            Tool::Check => "lockfile-check",
            Tool::MailLock => "mail-lock",
            Tool::MailUnlock => "mail-unlock",
            Tool::MailTouchlock => "mail-touchlock",
        }
    }

    /// The usage line, as lockfile-progs prints it.
    fn usage(self) -> String {
        let opts = match self {
            Tool::Create => "[--use-pid] [--retry retry-count] [--lock-name] file",
            Tool::Remove => "[--lock-name] file",
            Tool::Touch => "[--oneshot] [--lock-name] file",
            Tool::Check => "[--use-pid] [--lock-name] file",
            Tool::MailLock => "[--use-pid] [--retry retry-count]",
            Tool::MailUnlock => "",
            Tool::MailTouchlock => "[--oneshot]",
        };
        format!("usage: {} {opts}", self.name())
            .trim_end()
            .to_string()
    }

    /// Does this tool take option `opt` (its short letter)? `-q` and `-v`
    /// every tool takes.
    fn takes(self, opt: char) -> bool {
        match opt {
            'q' | 'v' => true,
            'p' => matches!(self, Tool::Create | Tool::Check | Tool::MailLock),
            'r' => matches!(self, Tool::Create | Tool::MailLock),
            'l' => matches!(
                self,
                Tool::Create | Tool::Remove | Tool::Touch | Tool::Check
            ),
            'o' => matches!(self, Tool::Touch | Tool::MailTouchlock),
            _ => false,
        }
    }

    fn mail(self) -> bool {
        matches!(
            self,
            Tool::MailLock | Tool::MailUnlock | Tool::MailTouchlock
        )
    }
}

/// What the command line asks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Opts {
    pub quiet: bool,
    pub verbose: bool,
    pub use_pid: bool,
    /// `-r N`; negative: no attempt at all (as lockfile-progs).
    pub retries: Option<i64>,
    pub lock_name: bool,
    pub oneshot: bool,
    pub file: Option<OsString>,
}

/// Why the command line is refused: the line said before the usage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only the usage.
    #[error("usage")]
    Usage,
    /// `PROG: invalid option -- 'x'`.
    #[error("invalid option -- '{0}'")]
    Invalid(char),
    /// `PROG: unrecognized option '--x'`.
    #[error("unrecognized option '{0}'")]
    Unrecognized(String),
    /// `PROG: bad retry-count value`.
    #[error("bad retry-count value")]
    BadRetry,
}

/// Read `args` (without the program name) as getopt_long does for `tool`:
/// options and the file in any order, short options bundled, `-rN`,
/// `-r N`, `--retry=N`, `--retry N`, `--` ending the options.
pub fn parse(tool: Tool, args: &[OsString]) -> Result<Opts, Refusal> {
    let mut opts = Opts::default();
    let mut files = Vec::new();
    let mut i = 0;
    let mut only_files = false;
    while i < args.len() {
        let arg = args[i].as_encoded_bytes();
        i += 1;
        if only_files || arg == b"-" || !arg.starts_with(b"-") {
            files.push(args[i - 1].clone());
            continue;
        }
        if arg == b"--" {
            only_files = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix(b"--") {
            let text = String::from_utf8_lossy(long).into_owned();
            let (name, value) = match text.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (text.clone(), None),
            };
            let opt = match name.as_str() {
                "quiet" => 'q',
                "verbose" => 'v',
                "use-pid" => 'p',
                "retry" => 'r',
                "lock-name" => 'l',
                "oneshot" => 'o',
                _ => return Err(Refusal::Unrecognized(format!("--{text}"))),
            };
            let value = match (opt, value) {
                ('r', Some(v)) => Some(v),
                ('r', None) => Some(next_value(args, &mut i)?),
                _ => None,
            };
            set(tool, &mut opts, opt, value)?;
            continue;
        }
        let mut letters = arg[1..].iter();
        while let Some(&b) = letters.next() {
            let opt = b as char;
            if !"qvprlo".contains(opt) {
                return Err(Refusal::Invalid(opt));
            }
            let value = if opt == 'r' {
                let rest: Vec<u8> = letters.by_ref().copied().collect();
                if rest.is_empty() {
                    Some(next_value(args, &mut i)?)
                } else {
                    Some(String::from_utf8_lossy(&rest).into_owned())
                }
            } else {
                None
            };
            set(tool, &mut opts, opt, value)?;
        }
    }
    match (tool.mail(), files.len()) {
        (true, 0) => {}
        (false, 1) => opts.file = files.pop(),
        _ => return Err(Refusal::Usage),
    }
    Ok(opts)
}

/// An option's value from the next argument (`-r N`, `--retry N`).
fn next_value(args: &[OsString], i: &mut usize) -> Result<String, Refusal> {
    let value = args.get(*i).ok_or(Refusal::Usage)?;
    *i += 1;
    Ok(value.to_string_lossy().into_owned())
}

fn set(tool: Tool, opts: &mut Opts, opt: char, value: Option<String>) -> Result<(), Refusal> {
    if !tool.takes(opt) {
        return Err(Refusal::Usage);
    }
    match opt {
        'q' => opts.quiet = true,
        'v' => opts.verbose = true,
        'p' => opts.use_pid = true,
        'l' => opts.lock_name = true,
        'o' => opts.oneshot = true,
        _ => {
            // As lockfile-progs' sscanf("%d"): `3x` is 3, `4294967296`
            // is 0 and `4294967295` is -1 (no attempt at all).
            let v = value.unwrap_or_default();
            let Some(n) = crate::cli::legacy_numbers::scan_int(&v) else {
                return Err(Refusal::BadRetry);
            };
            opts.retries = Some(i64::from(n));
        }
    }
    Ok(())
}

/// Run the lockfile-progs tool `tool`, invoked as `argv0`, on `args`.
pub fn main(tool: Tool, argv0: &OsStr, args: &[OsString]) -> Exit {
    run(tool, argv0, args).exit(Program::LockfileProgs)
}

fn run(tool: Tool, argv0: &OsStr, args: &[OsString]) -> Outcome {
    let opts = match parse(tool, args) {
        Ok(opts) => opts,
        Err(refusal) => return refuse(tool, argv0, refusal),
    };
    let out = Reporter {
        prog: tool.name(),
        quiet: Quiet::ancestors(opts.quiet),
        verbose: opts.verbose,
    };
    let path = match lock_path(tool, &opts) {
        Ok(p) => p,
        Err(msg) => {
            out.error(msg);
            return Outcome::BadValue;
        }
    };
    let lock = match LockPath::new(&path) {
        Ok(l) => l,
        Err(e) => return failed_create(&out, e),
    };
    let policy = Policy {
        trust_bare_pid: opts.use_pid,
        ..Policy::default()
    };
    match tool {
        Tool::Create | Tool::MailLock => create(&out, &lock, &opts, policy),
        // As lockfile-progs: the lock is removed, whoever holds it.
        Tool::Remove | Tool::MailUnlock => remove(&out, &lock),
        Tool::Touch | Tool::MailTouchlock => touch(&lock, opts.oneshot),
        Tool::Check => match Holder::of_file(&lock, &policy) {
            Ok(Some(h)) if !h.verdict.is_stale() => Outcome::Success,
            _ => Outcome::NoLock,
        },
    }
}

fn refuse(tool: Tool, argv0: &OsStr, refusal: Refusal) -> Outcome {
    // getopt names the program as it was invoked; lockfile-progs by name.
    let invoked = Path::new(argv0).display().to_string();
    match refusal {
        Refusal::Usage => {}
        Refusal::BadRetry => say(tool.name(), refusal),
        _ => say(&invoked, refusal),
    }
    to_stderr(&format!("{}\n", tool.usage()));
    Outcome::Usage
}

/// `FILE.lock`, or `FILE` with `-l`; the mail tools lock
/// `/var/spool/mail/USER.lock` of the real user.
fn lock_path(tool: Tool, opts: &Opts) -> Result<PathBuf, String> {
    if tool.mail() {
        let uid = nix::unistd::getuid().as_raw();
        return match accounts::user_by_id(uid) {
            Some(user) => Ok(PathBuf::from("/var/spool/mail").join(format!("{}.lock", user.name))),
            None => Err(format!(
                "uid {uid} has no passwd entry: cannot name its mailbox"
            )),
        };
    }
    let file = opts.file.clone().unwrap_or_default();
    if opts.lock_name {
        return Ok(PathBuf::from(file));
    }
    let mut name = file;
    name.push(".lock");
    Ok(PathBuf::from(name))
}

/// `lockfile-remove`, `mail-unlock`: remove the lock, whoever holds it. A
/// missing lock, or a missing directory, is success (`unlink(2)`'s
/// `ENOENT`); any other failure is lockfile-progs' line and 255. Unlike
/// lockfile-progs, "permission denied" is a failure too (it exits 0
/// having removed nothing), and what is not a lock file (a directory, a
/// FIFO) is never removed.
fn remove(out: &Reporter, lock: &LockPath) -> Outcome {
    let why = match link::remove(lock) {
        Ok(_) | Err(Error::NoDirectory { .. }) => return Outcome::Success,
        Err(Error::LockIsDirectory { .. }) => errno_text(nix::libc::EISDIR),
        Err(Error::NotADirectory { .. }) => errno_text(nix::libc::ENOTDIR),
        Err(Error::LockNotRegular { .. }) => "Not a regular file, left alone".to_string(),
        Err(
            Error::Io { source, .. }
            | Error::CreateTemp { source, .. }
            | Error::StaleNotRemoved { source, .. },
        ) => crate::error::describe(&source),
        Err(e) => e.to_string(),
    };
    // lockfile-progs' words, without the program's name.
    if out.quiet != Quiet::All {
        to_stderr(&format!("lockfile removal failed: {why}\n"));
    }
    Outcome::ActionFailed(Error::BadValue(why))
}

/// `strerror(errno)`.
fn errno_text(errno: i32) -> String {
    nix::errno::Errno::from_raw(errno).desc().to_string()
}

/// The message of a lock that could not be made, and its outcome.
fn failed_create(out: &Reporter, e: Error) -> Outcome {
    let why = match &e {
        // Any failing call (out of descriptors, I/O) is lockfile-progs'
        // failure to make its temporary file, never "attempts exceeded".
        Error::NoDirectory { .. }
        | Error::NotADirectory { .. }
        | Error::CreateTemp { .. }
        | Error::Io { .. } => "cannot create temporary lockfile",
        Error::ShortWrite { .. } => "cannot write PID lockfile",
        _ => "exceeded maximum number of lock attempts",
    };
    // lockfile-progs' words, without the program's name.
    if out.quiet != Quiet::All {
        to_stderr(&format!("lockfile creation failed: {why}\n"));
    }
    Outcome::Failed(e)
}

fn create(out: &Reporter, lock: &LockPath, opts: &Opts, policy: Policy) -> Outcome {
    let retries = opts.retries.unwrap_or(9);
    let busy = || Error::Busy {
        path: lock.path().into(),
        attempts: 0,
    };
    if retries < 0 {
        // liblockfile makes no attempt at all.
        return failed_create(out, busy());
    }
    let record = match opts.use_pid {
        true => Record::legacy(Some(nix::unistd::getppid().as_raw() as u32)),
        false => Record::legacy(None),
    }
    .to_bytes();
    let protocol = match DotLock::new(lock, &record, 0o644) {
        Ok(p) => p,
        Err(e) => return failed_create(out, e),
    };
    let locks = AnyOf {
        path: lock.path().to_path_buf(),
        slots: vec![protocol],
        policy,
    };
    let waiter = Waiter {
        out: Reporter {
            quiet: Quiet::All,
            ..*out
        },
        patience: Patience {
            schedule: Schedule::Backoff,
            retries: Some(retries as u64),
            timeout: None,
        },
        policy,
        // lockfile-progs keeps liblockfile's timing: no early wake.
        wake_on: None,
        watch_parent: false,
        live: false,
    };
    let signals = match pipeline::catch(false) {
        Ok(s) => s,
        Err(e) => return failed_create(out, e),
    };
    match waiter.wait_for(&locks, &signals, |_| {}) {
        Ok((_, held)) => {
            held.keep();
            Outcome::Success
        }
        Err(crate::acquire::Stop::Signal(sig)) => Outcome::Signal(sig),
        Err(crate::acquire::Stop::Error(e)) => failed_create(out, e),
    }
}

/// `lockfile-touch`: touch the lock now and every minute until killed, or
/// once with `-o`. Killed by a signal, it leaves the lock, as the real one
/// (its man page's recipe kills it, then calls `lockfile-remove`).
fn touch(lock: &LockPath, oneshot: bool) -> Outcome {
    let touched = || matches!(fs::touch(lock), Ok(true));
    if oneshot {
        return if touched() {
            Outcome::Success
        } else {
            Outcome::NoLock
        };
    }
    let Ok(signals) = Signals::catch(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP]) else {
        return Outcome::NoLock;
    };
    loop {
        let _ = touched();
        if signals.wait(Duration::from_secs(60)) {
            return Outcome::Success;
        }
    }
}

#[cfg(test)]
#[path = "lockfile_progs_tests.rs"]
mod tests;
