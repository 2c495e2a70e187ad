//! `filelock`: several lock files at once, all or nothing. Invoked as
//! `lockfile` it is procmail's `lockfile` ([`crate::cli::lockfile`]).

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::Error;
use crate::acquire::Stop;
use crate::cli::args::{parse_duration, parse_retries};
use crate::cli::pipeline::{self, Waiter};
use crate::cli::report::{self, Holder};
use crate::cli::{Exit, Outcome, Program, Reporter};
use crate::dotlock::DotLock;
use crate::judge::Policy;
use crate::link::Held;
use crate::lockset::LockSet;
use crate::path::LockPath;
use crate::record::Record;
use crate::signals::Signals;
use crate::wait::{Patience, Schedule};

/// Create several lock files at once, all or nothing, safely on local disks
/// and NFS; or remove them.
///
/// The locks are taken in a canonical order (absolute path, duplicates
/// collapsed), so two calls on overlapping sets never deadlock; if one
/// cannot be had in time, every lock this call took is released. The locks
/// name the calling shell as their holder and stay until `filelock -u`.
#[derive(Debug, Parser)]
#[command(
    name = "filelock",
    version,
    args_override_self = true,
    after_help = "Exit status: 0 success; 1 a lock could not be had in time, -u of a missing lock, \
                  any error, usage error. A signal while waiting releases every lock taken and \
                  ends filelock by the same signal."
)]
pub struct Args {
    /// Lock (the default)
    #[arg(short = 'l')]
    pub lock: bool,

    /// Unlock: remove the lock files (those of the calling shell, stale ones
    /// and nobody's)
    #[arg(short = 'u')]
    pub unlock: bool,

    /// With -u: remove the lock files whoever holds them
    #[arg(long)]
    pub force: bool,

    /// Retries for each lock after its first attempt [default: 10]; -1 for forever
    #[arg(short = 'r', value_name = "RETRIES", allow_hyphen_values = true)]
    pub retries: Option<String>,

    /// Seconds between attempts [default: 1]
    #[arg(short = 's', value_name = "SECONDS", allow_hyphen_values = true)]
    pub sleep: Option<String>,

    /// Say when waiting, whom for, and when a stale lock is broken
    #[arg(long)]
    pub verbose: bool,

    /// The lock files
    #[arg(value_name = "LOCKFILE", required = true)]
    pub files: Vec<OsString>,
}

/// The clap command (for man pages, completions and help).
pub fn command() -> clap::Command {
    Args::command()
}

/// Parse `argv` and run, as `lockfile` if invoked under that name.
pub fn main(argv: Vec<OsString>) -> Exit {
    let name = argv.first().map(Path::new).and_then(Path::file_name);
    if name == Some(OsStr::new("lockfile")) {
        return crate::cli::lockfile::main(&argv[1..]);
    }
    match crate::cli::parse(command(), "filelock", argv) {
        Ok(args) => run(args),
        Err(outcome) => outcome,
    }
    .exit(Program::Filelock)
}

/// The record of a lock held for the calling shell.
fn shell_record() -> Vec<u8> {
    let ppid = nix::unistd::getppid().as_raw() as u32;
    Record::naming::<&OsStr>(Some(ppid), &[], ppid).to_bytes()
}

/// The record of a lock held by this process itself: while a set of locks
/// is being taken, its members name us, so that if we are killed half-way
/// the locks already taken are proven dead at once, and block nobody —
/// not even the calling shell.
fn own_record() -> Vec<u8> {
    let me = std::process::id();
    Record::naming::<&OsStr>(Some(me), &[], me).to_bytes()
}

/// Take every lock of `set` with `waiter`, each with early wake on its own
/// release; on failure, the index of the lock that could not be had and
/// why (every lock taken is released by then).
fn take_all(
    set: &LockSet,
    waiter: &Waiter,
    record: &[u8],
    mode: u32,
    signals: &Signals,
    mut report: impl FnMut(usize, crate::acquire::Event),
) -> Result<Vec<Held>, (usize, Stop)> {
    set.take_each(|i, lock| {
        let waiter = waiter.clone().waking_on(std::slice::from_ref(lock));
        let protocol = DotLock::new(lock, record, mode)?;
        waiter.wait_for(&protocol, signals, |e| report(i, e))
    })
}

/// Run native `filelock`.
pub fn run(args: Args) -> Outcome {
    let out = Reporter {
        prog: "filelock",
        quiet: false,
        verbose: args.verbose,
    };
    if args.lock && args.unlock {
        return out.usage_error("-l and -u cannot be combined");
    }
    if args.force && !args.unlock {
        return out.usage_error("--force goes with -u");
    }
    if args.unlock {
        return unlock(&out, &args.files, args.force);
    }
    let (set, waiter) = match check(&out, &args) {
        Ok(checked) => checked,
        Err(outcome) => return outcome,
    };
    let signals = match pipeline::catch(true) {
        Ok(s) => s,
        Err(e) => return out.failed(e),
    };
    let record = shell_record();
    let several = set.locks().len() > 1;
    let taking = if several {
        own_record()
    } else {
        record.clone()
    };
    let report = |i: usize, e| report::events(out, set.locks()[i].path())(e);
    match take_all(&set, &waiter, &taking, 0o644, &signals, report) {
        Ok(mut held) => {
            // The set is complete: hand every lock over to the shell.
            if several {
                for h in &mut held {
                    if let Err(e) = h.rewrite(&record) {
                        out.error(&e);
                        return Outcome::Failed(e);
                    }
                }
            }
            held.into_iter().for_each(Held::keep);
            Outcome::Success
        }
        Err((_, Stop::Signal(sig))) => Outcome::Signal(sig),
        Err((i, Stop::Error(e @ (Error::Busy { .. } | Error::TimedOut { .. })))) => {
            let lock = &set.locks()[i];
            let holder = Holder::of_file(lock, &waiter.policy).ok().flatten();
            let by = holder
                .map(|h| format!(": {}", h.held_by()))
                .unwrap_or_default();
            out.error(format_args!(
                "Failed: couldn't create {} in time{by}",
                lock.path().display()
            ));
            Outcome::Failed(e)
        }
        Err((_, Stop::Error(e))) => {
            out.error(&e);
            Outcome::Failed(e)
        }
    }
}

/// The lock set in canonical order, and how to wait for each lock.
fn check(out: &Reporter, args: &Args) -> Result<(LockSet, Waiter), Outcome> {
    let retries = match args.retries.as_deref().map(parse_retries) {
        None => Some(10),
        Some(Ok(r)) => r,
        Some(Err(msg)) => return Err(out.bad_value(msg)),
    };
    let interval = match args.sleep.as_deref().map(parse_duration) {
        None => Duration::from_secs(1),
        Some(Ok(d)) => d,
        Some(Err(msg)) => return Err(out.bad_value(format!("-s {msg}"))),
    };
    let set = LockSet::canonical(&args.files).map_err(|e| {
        out.error(&e);
        Outcome::Failed(e)
    })?;
    for lock in set.locks() {
        if let Err(e) = lock.check_dir() {
            out.error(&e);
            return Err(Outcome::Failed(e));
        }
    }
    let waiter = Waiter {
        out: *out,
        patience: Patience {
            schedule: Schedule::Fixed(interval),
            retries,
            timeout: None,
        },
        policy: Policy::default(),
        wake_on: None,
        watch_parent: false,
    };
    Ok((set, waiter))
}

/// `-u`: remove each lock that the caller may release
/// ([`pipeline::may_release`]), or each with `--force`; a missing one is a
/// warning, somebody else's is refused.
fn unlock(out: &Reporter, files: &[OsString], force: bool) -> Outcome {
    let mut outcome = Outcome::Success;
    for f in files {
        match unlock_one(f, force) {
            Ok(true) => {}
            Ok(false) => {
                out.error(format_args!("{}: not locked", Path::new(f).display()));
                outcome = Outcome::NotLocked;
            }
            Err(e @ Error::NotOurs { .. }) => {
                out.error(&e);
                outcome = Outcome::Refused;
            }
            Err(e) => {
                out.error(&e);
                outcome = Outcome::ActionFailed(e);
            }
        }
    }
    outcome
}

fn unlock_one(file: &OsStr, force: bool) -> crate::Result<bool> {
    pipeline::release(&LockPath::new(file)?, &Policy::default(), force)
}
