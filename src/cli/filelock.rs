//! `filelock`: several lock files at once, all or nothing; and, invoked as
//! `lockfile`, procmail's `lockfile` without its endless loop.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::Error;
use crate::cli::hold::{self, Wait};
use crate::cli::{Exit, Reporter, finish, parse_duration, parse_retries};
use crate::dotlock::{self, DotLock, Held};
use crate::exit::ExitCode;
use crate::guard::Signals;
use crate::host;
use crate::lock::{Event, Stop};
use crate::lockset::LockSet;
use crate::mailbox;
use crate::record::Record;
use crate::stale::Policy;
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

    /// Unlock: remove the lock files
    #[arg(short = 'u')]
    pub unlock: bool,

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

/// Parse `argv`, run, and exit: as `lockfile` if invoked under that name.
pub fn main() -> ! {
    crate::mailbox::drop_privileges();
    let argv: Vec<OsString> = std::env::args_os().collect();
    let name = argv.first().map(Path::new).and_then(Path::file_name);
    if name == Some(OsStr::new("lockfile")) {
        finish(procmail(&argv[1..]))
    }
    finish(
        match command()
            .try_get_matches_from(argv)
            .and_then(|m| Args::from_arg_matches(&m))
        {
            Ok(args) => run(args),
            Err(e) => crate::cli::clap_failure("filelock", &e),
        },
    )
}

/// The record of a lock held for the calling shell.
fn shell_record() -> Vec<u8> {
    let ppid = nix::unistd::getppid().as_raw() as u32;
    Record::for_holder(Some(ppid), host::command_name(ppid)).to_bytes()
}

/// Take every lock of `set` with `wait`; on failure, the index of the lock
/// that could not be had and why (every lock taken is released by then).
fn take_all(
    set: &LockSet,
    wait: &Wait<'_>,
    record: &[u8],
    mode: u32,
    signals: &Signals,
    mut report: impl FnMut(&Path, Event),
) -> Result<Vec<Held>, (usize, Stop)> {
    set.acquire(|_, lock| {
        let w = Wait {
            out: wait.out,
            patience: wait.patience,
            policy: wait.policy,
            release: Some((vec![lock.path().to_path_buf()], lock.dir())),
            watch_parent: wait.watch_parent,
        };
        let protocol = DotLock { lock, record, mode };
        hold::acquire_reporting(&w, &protocol, signals, |e| report(lock.path(), e))
    })
}

/// Run native `filelock`.
pub fn run(args: Args) -> Exit {
    let out = Reporter {
        prog: "filelock",
        quiet: false,
        verbose: args.verbose,
        say_busy: true,
    };
    let fail = |msg: String| {
        out.error(msg);
        Exit::from(ExitCode::Failure)
    };
    if args.lock && args.unlock {
        out.usage("-l and -u cannot be combined");
        return ExitCode::Failure.into();
    }
    if args.unlock {
        let mut code = ExitCode::Success;
        for f in &args.files {
            match dotlock::remove(Path::new(f)) {
                Ok(true) => {}
                Ok(false) => {
                    out.error(format_args!("{}: not locked", Path::new(f).display()));
                    code = ExitCode::Failure;
                }
                Err(e) => {
                    out.error(e);
                    code = ExitCode::Failure;
                }
            }
        }
        return code.into();
    }
    let retries = match args.retries.as_deref().map(parse_retries) {
        None => Some(10),
        Some(Ok(r)) => r,
        Some(Err(msg)) => return fail(msg),
    };
    let interval = match args.sleep.as_deref().map(parse_duration) {
        None => Duration::from_secs(1),
        Some(Ok(d)) => d,
        Some(Err(msg)) => return fail(format!("-s {msg}")),
    };
    let set = match LockSet::canonical(&args.files) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    for lock in set.locks() {
        if let Err(e) = lock.check_dir() {
            return fail(e.to_string());
        }
    }
    let wait = Wait {
        out,
        patience: Patience {
            schedule: Schedule::Fixed(interval),
            retries,
            timeout: None,
        },
        policy: Policy::default(),
        release: None,
        watch_parent: false,
    };
    let signals = match hold::catch(true) {
        Ok(s) => s,
        Err(Stop::Error(e)) => return fail(e.to_string()),
        Err(Stop::Signal(sig)) => return Exit::Signal(sig),
    };
    let record = shell_record();
    let report = crate::cli::report::events(out, Path::new("filelock"));
    let mut report = report;
    match take_all(&set, &wait, &record, 0o644, &signals, |_, e| report(e)) {
        Ok(held) => {
            held.into_iter().for_each(Held::keep);
            ExitCode::Success.into()
        }
        Err((_, Stop::Signal(sig))) => Exit::Signal(sig),
        Err((i, Stop::Error(Error::Busy { .. } | Error::TimedOut { .. }))) => fail(format!(
            "Failed: couldn't create {} in time",
            set.locks()[i].path().display()
        )),
        Err((_, Stop::Error(e))) => fail(e.to_string()),
    }
}

/// procmail's exit statuses.
mod pm {
    pub const USAGE: i32 = 64;
    pub const UNAVAILABLE: i32 = 69;
    pub const NOPERM: i32 = 71;
    pub const CANTCREAT: i32 = 73;
    pub const TEMPFAIL: i32 = 75;
}

const USAGE: &str =
    "Usage: lockfile -v | -nnn | -r nnn | -l nnn | -s nnn | -! | -ml | -mu | file ...";

/// procmail's `lockfile`: options and files left to right, each file taken
/// with the options seen so far, in the order given; all or nothing.
pub fn procmail(args: &[OsString]) -> Exit {
    let say = |msg: &str| crate::cli::say("lockfile", msg);
    let usage = || {
        let _ = writeln!(std::io::stderr(), "{USAGE}");
        Exit::Code(pm::USAGE)
    };
    let mut sleeptime = Duration::from_secs(8);
    let mut retries: Option<u64> = None;
    let mut locktimeout: Option<u64> = None;
    let mut suspend = Duration::from_secs(16);
    let mut invert = false;
    let mut held: Vec<Held> = Vec::new();
    let mut worked = false;
    let record: &[u8] = b"0";
    let signals = match hold::catch(true) {
        Ok(s) => s,
        Err(_) => return Exit::Code(pm::UNAVAILABLE),
    };
    let finish_with = |code: i32, invert: bool| {
        Exit::Code(match (invert, code) {
            (true, 0) => pm::CANTCREAT,
            (true, pm::CANTCREAT) => 0,
            (_, c) => c,
        })
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_encoded_bytes();
        i += 1;
        let number = |rest: &[u8], i: &mut usize| -> Option<i64> {
            let text = if rest.is_empty() {
                *i += 1;
                args.get(*i - 1)?.to_str()?.to_string()
            } else {
                std::str::from_utf8(rest).ok()?.to_string()
            };
            text.parse().ok()
        };
        let file: OsString = if arg.len() > 1 && arg[0] == b'-' {
            let rest = &arg[1..];
            match rest[0] {
                b'v' if rest.len() == 1 => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "lockfile (lockutils {}), compatible with procmail's lockfile v3.22\n\nYour system mailbox's lockfile:\t{}",
                        crate::VERSION,
                        mailbox::procmail_lock_path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    );
                    return Exit::Code(pm::USAGE);
                }
                b'!' if rest.len() == 1 => {
                    invert = true;
                    continue;
                }
                b'm' if rest == b"ml" || rest == b"mu" => match mailbox::procmail_lock_path() {
                    Ok(p) if rest == b"ml" => p.into_os_string(),
                    Ok(p) => {
                        worked = true;
                        match dotlock::remove(&p) {
                            Ok(true) => continue,
                            _ => {
                                say(&format!("Can't unlock \"{}\"", p.display()));
                                return Exit::Code(pm::USAGE);
                            }
                        }
                    }
                    Err(msg) => {
                        say(&msg);
                        return Exit::Code(pm::NOPERM);
                    }
                },
                b'r' | b'l' | b's' => {
                    let Some(n) = number(&rest[1..], &mut i) else {
                        return usage();
                    };
                    match rest[0] {
                        b'r' => retries = u64::try_from(n).ok(),
                        b'l' => locktimeout = u64::try_from(n).ok().filter(|&n| n > 0),
                        _ => suspend = Duration::from_secs(n.max(0) as u64),
                    }
                    continue;
                }
                b'0'..=b'9' => match std::str::from_utf8(rest)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    Some(n) => {
                        sleeptime = Duration::from_secs(n);
                        continue;
                    }
                    None => return usage(),
                },
                _ => return usage(),
            }
        } else if arg == b"-" {
            return usage();
        } else {
            args[i - 1].clone()
        };
        worked = true;
        let set = match LockSet::in_order(std::slice::from_ref(&file)) {
            Ok(s) => s,
            Err(_) => {
                say(&format!(
                    "Try praying, giving up on \"{}\"",
                    Path::new(&file).display()
                ));
                return Exit::Code(pm::UNAVAILABLE);
            }
        };
        let lock = &set.locks()[0];
        let wait = Wait {
            out: Reporter {
                prog: "lockfile",
                quiet: true,
                verbose: false,
                say_busy: false,
            },
            patience: Patience {
                schedule: Schedule::Fixed(sleeptime),
                retries,
                timeout: None,
            },
            policy: Policy {
                stale_after: locktimeout.map_or(Duration::MAX, Duration::from_secs),
                trust_bare_pid: false,
            },
            release: Some((vec![lock.path().to_path_buf()], lock.dir())),
            watch_parent: false,
        };
        let shown = Path::new(&file).display().to_string();
        let forced = |e: Event| {
            if let Event::Breaking { .. } = e {
                say(&format!("Forcing lock on \"{shown}\""));
                std::thread::sleep(suspend);
            }
        };
        let protocol = DotLock {
            lock,
            record,
            mode: 0o444,
        };
        match hold::acquire_reporting(&wait, &protocol, &signals, forced) {
            Ok(h) => held.push(h),
            Err(stop) => {
                for h in held.drain(..).rev() {
                    let _ = h.release();
                }
                return match stop {
                    Stop::Signal(_) => {
                        say(&format!("Signal received, giving up on \"{shown}\""));
                        Exit::Code(pm::TEMPFAIL)
                    }
                    Stop::Error(Error::Busy { .. } | Error::TimedOut { .. }) => {
                        say(&format!("Sorry, giving up on \"{shown}\""));
                        finish_with(pm::CANTCREAT, invert)
                    }
                    Stop::Error(_) => {
                        say(&format!("Try praying, giving up on \"{shown}\""));
                        Exit::Code(pm::UNAVAILABLE)
                    }
                };
            }
        }
    }
    if !worked {
        return usage();
    }
    held.into_iter().for_each(Held::keep);
    finish_with(0, invert)
}
