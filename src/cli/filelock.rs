//! `filelock`: several lock files at once, all or nothing; and, invoked as
//! `lockfile`, procmail's `lockfile` without its endless loop.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::Error;
use crate::acquire::{Event, Stop};
use crate::cli::hold::{self, Wait};
use crate::cli::{Exit, Reporter, parse_duration, parse_retries};
use crate::dotlock::DotLock;
use crate::exit::ExitCode;
use crate::host;
use crate::judge::Policy;
use crate::link::{self, Held};
use crate::lockset::LockSet;
use crate::mailbox;
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

/// Parse `argv` and run, as `lockfile` if invoked under that name.
pub fn main(argv: Vec<OsString>) -> Exit {
    let name = argv.first().map(Path::new).and_then(Path::file_name);
    if name == Some(OsStr::new("lockfile")) {
        return procmail(&argv[1..]);
    }
    crate::cli::parse(command(), "filelock", argv).map_or_else(|exit| exit, run)
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
        let protocol = DotLock::new(lock, record, mode)?;
        hold::acquire_reporting(&w, &protocol, signals, |e| report(lock.path(), e))
    })
}

/// The record of a lock held by this process itself: while a set of locks
/// is being taken, its members name us, so that if we are killed half-way
/// the locks already taken are proven dead at once, and block nobody —
/// not even the calling shell.
fn own_record() -> Vec<u8> {
    let me = std::process::id();
    Record::for_holder(Some(me), host::command_name(me)).to_bytes()
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
            match LockPath::new(f).and_then(|l| link::remove(&l)) {
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
    let several = set.locks().len() > 1;
    let taking = if several {
        own_record()
    } else {
        record.clone()
    };
    let report = |path: &Path, e: Event| crate::cli::report::events(out, path)(e);
    match take_all(&set, &wait, &taking, 0o644, &signals, report) {
        Ok(mut held) => {
            // The set is complete: hand every lock over to the shell.
            if several {
                for h in &mut held {
                    if let Err(e) = h.rewrite(&record) {
                        out.error(e);
                        return ExitCode::Failure.into();
                    }
                }
            }
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

/// The options in force when a file is reached.
#[derive(Debug, Clone, Copy)]
struct Settings {
    sleeptime: Duration,
    retries: Option<u64>,
    locktimeout: Option<u64>,
    suspend: Duration,
}

/// procmail's `lockfile`: options and files left to right, each file taken
/// with the options seen before it, in the order given; all or nothing.
pub fn procmail(args: &[OsString]) -> Exit {
    let say = |msg: &str| crate::cli::say("lockfile", msg);
    let usage = || {
        let _ = writeln!(std::io::stderr(), "{USAGE}");
        Exit::Code(pm::USAGE)
    };
    let mut now = Settings {
        sleeptime: Duration::from_secs(8),
        retries: None,
        locktimeout: None,
        suspend: Duration::from_secs(16),
    };
    const MAX_SECS: i64 = crate::cli::MAX_DURATION.as_secs() as i64;
    let too_large = |n: i128| {
        say(&format!("{n}: too large (at most {MAX_SECS} seconds)"));
        Exit::Code(pm::USAGE)
    };
    let mut invert = false;
    let mut worked = false;
    let mut plan: Vec<(OsString, Settings)> = Vec::new();
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
        if arg == b"-" || arg.first() != Some(&b'-') {
            if arg == b"-" {
                return usage();
            }
            plan.push((args[i - 1].clone(), now));
            continue;
        }
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
            b'!' if rest.len() == 1 => invert = true,
            b'm' if rest == b"ml" || rest == b"mu" => match mailbox::procmail_lock_path() {
                Ok(p) if rest == b"ml" => plan.push((p.into_os_string(), now)),
                Ok(p) => {
                    worked = true;
                    let removed = LockPath::new(&p).and_then(|l| link::remove(&l));
                    if !matches!(removed, Ok(true)) {
                        say(&format!("Can't unlock \"{}\"", p.display()));
                        return Exit::Code(pm::USAGE);
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
                if rest[0] != b'r' && n > MAX_SECS {
                    return too_large(n.into());
                }
                match rest[0] {
                    b'r' => now.retries = u64::try_from(n).ok(),
                    b'l' => now.locktimeout = u64::try_from(n).ok().filter(|&n| n > 0),
                    _ => now.suspend = Duration::from_secs(n.max(0) as u64),
                }
            }
            b'0'..=b'9' => match std::str::from_utf8(rest)
                .ok()
                .and_then(|t| t.parse::<i128>().ok())
            {
                Some(n) if n > MAX_SECS as i128 => return too_large(n),
                Some(n) => now.sleeptime = Duration::from_secs(n as u64),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    if plan.is_empty() {
        return if worked { Exit::Code(0) } else { usage() };
    }
    let shown = |i: usize| Path::new(&plan[i].0).display().to_string();
    let files: Vec<OsString> = plan.iter().map(|(f, _)| f.clone()).collect();
    let set = match LockSet::in_order(&files) {
        Ok(set) => set,
        Err(_) => {
            let bad = files
                .iter()
                .position(|f| LockPath::new(f).is_err())
                .unwrap_or(0);
            say(&format!("Try praying, giving up on \"{}\"", shown(bad)));
            return Exit::Code(pm::UNAVAILABLE);
        }
    };
    let signals = match hold::catch(true) {
        Ok(s) => s,
        Err(_) => return Exit::Code(pm::UNAVAILABLE),
    };
    let taken = set.acquire(|i, lock| {
        let settings = plan[i].1;
        let wait = Wait {
            out: Reporter {
                prog: "lockfile",
                quiet: true,
                verbose: false,
                say_busy: false,
            },
            patience: Patience {
                schedule: Schedule::Fixed(settings.sleeptime),
                retries: settings.retries,
                timeout: None,
            },
            policy: Policy {
                stale_after: settings
                    .locktimeout
                    .map_or(Duration::MAX, Duration::from_secs),
                trust_bare_pid: false,
            },
            release: Some((vec![lock.path().to_path_buf()], lock.dir())),
            watch_parent: false,
        };
        let forced = |e: Event| {
            if let Event::Breaking { .. } = e {
                say(&format!("Forcing lock on \"{}\"", shown(i)));
                // A signal cuts the suspend short, and then nothing is
                // removed (the wait sees it pending, before the break).
                signals.wait(settings.suspend);
            }
        };
        let protocol = DotLock::new(lock, b"0", 0o444)?;
        hold::acquire_reporting(&wait, &protocol, &signals, forced)
    });
    let code = match taken {
        Ok(held) => {
            held.into_iter().for_each(Held::keep);
            0
        }
        Err((i, Stop::Signal(_))) => {
            say(&format!("Signal received, giving up on \"{}\"", shown(i)));
            pm::TEMPFAIL
        }
        Err((i, Stop::Error(Error::Busy { .. } | Error::TimedOut { .. }))) => {
            say(&format!("Sorry, giving up on \"{}\"", shown(i)));
            pm::CANTCREAT
        }
        Err((i, Stop::Error(_))) => {
            say(&format!("Try praying, giving up on \"{}\"", shown(i)));
            pm::UNAVAILABLE
        }
    };
    // -! exchanges success and giving up.
    Exit::Code(match (invert, code) {
        (true, 0) => pm::CANTCREAT,
        (true, pm::CANTCREAT) => 0,
        (_, c) => c,
    })
}
