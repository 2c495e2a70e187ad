//! `dotlock`: the link(2) dot-lock command, a superset of liblockfile's
//! `dotlockfile` (which it becomes when invoked under that name).

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::Error;
use crate::cli::{Personality, Reporter, clap_one_line, parse_duration, parse_retries};
use crate::dotlock::{self, LockPath, Observed, Via};
use crate::exit::ExitCode;
use crate::guard::{self, ChildEnd, Signals};
use crate::host;
use crate::lock::{self, Event, Request, Stop};
use crate::mailbox;
use crate::record::Record;
use crate::stale::{self, Policy, Verdict};
use crate::wait::{ParentWatch, Patience, Schedule, Sleeper};

/// Create, test and remove dot-lock files, safely on local disks and NFS.
///
/// With a COMMAND, take the lock, run the command, keep the lock fresh while
/// it runs, remove the lock when it ends and exit with its status. Options
/// end at the first non-option argument: `dotlock -l L cmd -x` passes `-x`
/// to `cmd`.
#[derive(Debug, Parser)]
#[command(
    name = "dotlock",
    version,
    args_override_self = true,
    after_help = "Exit status: 0 success; 1 usage error, name too long, -c found no valid lock, \
                  -t/-u failed; 2 cannot create a file in the lock's directory; 3 cannot write \
                  the lock; 4 retries exhausted or timeout; 5 other error; 7 -p while the parent \
                  is init; 8 a stale lock could not be removed; with a COMMAND: its status \
                  (126 not executable, 127 not found)."
)]
pub struct Args {
    /// Lock (the default action)
    #[arg(short = 'l')]
    pub lock: bool,

    /// Unlock: remove the lock file (a missing lock is success)
    #[arg(short = 'u')]
    pub unlock: bool,

    /// Touch: refresh the lock's timestamp
    #[arg(short = 't')]
    pub touch: bool,

    /// Check: exit 0 if a valid lock exists, else 1
    #[arg(short = 'c')]
    pub check: bool,

    /// Status: describe the lock's holder (pid, command, host, age, alive);
    /// exit 0 if held, 1 if free or stale
    #[arg(long)]
    pub status: bool,

    /// Retries after the first attempt [default: 5]; -1 for forever
    #[arg(short = 'r', value_name = "RETRIES", allow_hyphen_values = true)]
    pub retries: Option<String>,

    /// Wait SECONDS between attempts instead of 5, 10, ... 60 s (0: no wait)
    #[arg(short = 'i', value_name = "SECONDS", allow_hyphen_values = true)]
    pub interval: Option<String>,

    /// Record a pid (the parent's; dotlock's own with a COMMAND) and trust a
    /// live pid when checking
    #[arg(short = 'p')]
    pub pid: bool,

    /// Lock the user's mailbox: $MAIL.lock, else /var/mail/USER.lock
    #[arg(short = 'm')]
    pub mailbox: bool,

    /// Quiet: no error messages
    #[arg(short = 'q')]
    pub quiet: bool,

    /// With a COMMAND, exit with its status (always so in dotlock; only
    /// with -P as dotlockfile)
    #[arg(short = 'P')]
    pub passthrough: bool,

    /// Accepted and ignored (liblockfile passes it)
    #[arg(short = 'N', hide = true)]
    pub nop: bool,

    /// Give up after DURATION of waiting (seconds; 0.5, 200ms, 2m allowed)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub timeout: Option<String>,

    /// A lock whose holder cannot be proven alive or dead is stale after
    /// DURATION [default: 300]; holders touch their lock every third of it
    /// (at most every 30 s)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub stale_after: Option<String>,

    /// Say when waiting, whom for, and when a stale lock is broken
    #[arg(long)]
    pub verbose: bool,

    /// The lock file, then an optional command and its arguments
    #[arg(trailing_var_arg = true, value_name = "LOCKFILE [COMMAND [ARG]...]")]
    pub args: Vec<OsString>,
}

/// How `dotlock` ends: with a status, or by re-raising a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(nix::sys::signal::Signal),
}

impl From<ExitCode> for Exit {
    fn from(code: ExitCode) -> Self {
        Exit::Code(i32::from(code.code()))
    }
}

/// The clap command (for man pages, completions and help).
pub fn command() -> clap::Command {
    Args::command()
}

/// Parse `argv`, run, and exit the process accordingly.
pub fn main() -> ! {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let personality = Personality::from_argv0(argv.first().map(OsString::as_os_str));
    let exit = run_argv(argv, personality);
    finish(exit)
}

/// End the process with `exit`.
pub fn finish(exit: Exit) -> ! {
    match exit {
        Exit::Code(code) => std::process::exit(code),
        Exit::Signal(sig) => guard::die_by(sig),
    }
}

fn prog_name(personality: Personality) -> &'static str {
    match personality {
        Personality::Native => "dotlock",
        Personality::Dotlockfile => "dotlockfile",
    }
}

/// Parse and run; usage errors exit 1 as liblockfile's do.
pub fn run_argv(argv: Vec<OsString>, personality: Personality) -> Exit {
    let prog = prog_name(personality);
    let matches = command()
        .name(prog)
        .bin_name(prog)
        .try_get_matches_from(argv);
    let args = match matches.and_then(|m| Args::from_arg_matches(&m)) {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                let _ = e.print();
                return Exit::Code(0);
            }
            crate::cli::say(
                prog,
                format_args!("{}; try '{prog} --help'", clap_one_line(&e)),
            );
            return ExitCode::Failure.into();
        }
    };
    run(args, personality)
}

/// What one invocation is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Lock,
    Unlock,
    Touch,
    Check,
    Status,
}

/// Run a parsed invocation.
pub fn run(args: Args, personality: Personality) -> Exit {
    let out = Reporter {
        prog: prog_name(personality),
        quiet: args.quiet,
        verbose: args.verbose,
    };
    let usage = |msg: &str| {
        out.usage(msg);
        Exit::from(ExitCode::Failure)
    };
    let bad_value = |msg: String| {
        out.error(msg);
        Exit::from(ExitCode::Error)
    };

    let retries = match args.retries.as_deref().map(parse_retries) {
        None => Some(5),
        Some(Ok(r)) => r,
        Some(Err(msg)) => return bad_value(msg),
    };
    let schedule = match args.interval.as_deref().map(parse_duration) {
        None => Schedule::Backoff,
        Some(Ok(d)) => Schedule::Fixed(d),
        Some(Err(msg)) => return bad_value(format!("-i {msg}")),
    };
    let timeout = match args.timeout.as_deref().map(parse_duration) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(msg)) => return bad_value(format!("--timeout {msg}")),
    };
    let stale_after = match args.stale_after.as_deref().map(parse_duration) {
        None => stale::DEFAULT_STALE_AFTER,
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => return bad_value("--stale-after 0: must be more than zero".into()),
        Some(Err(msg)) => return bad_value(format!("--stale-after {msg}")),
    };

    let mut rest = args.args.clone();
    let lockfile: PathBuf = if args.mailbox {
        match mailbox::lock_path() {
            Ok(p) => p,
            Err(msg) => return bad_value(msg),
        }
    } else if rest.is_empty() {
        return usage("no lock file given");
    } else {
        PathBuf::from(rest.remove(0))
    };
    let command = rest;
    if lockfile.as_os_str().is_empty() {
        return usage("the lock file name is empty");
    }

    let chosen = [args.unlock, args.touch, args.check, args.status];
    let action = match chosen {
        [false, false, false, false] => Action::Lock,
        [true, false, false, false] => Action::Unlock,
        [false, true, false, false] => Action::Touch,
        [false, false, true, false] => Action::Check,
        [false, false, false, true] => Action::Status,
        _ => return usage("-u, -t, -c and --status cannot be combined"),
    };
    if action != Action::Lock && (args.lock || !command.is_empty()) {
        return usage("-u, -t, -c and --status take a lock file and no -l or command");
    }

    let lock = match LockPath::new(&lockfile) {
        Ok(l) => l,
        Err(e) => return fail(&out, personality, e),
    };
    if let Err(e) = lock.check_dir() {
        return fail(&out, personality, e);
    }

    let policy = Policy {
        trust_bare_pid: args.pid,
        stale_after,
    };
    match action {
        Action::Unlock => match dotlock::remove(lock.path()) {
            Ok(_) => ExitCode::Success.into(),
            Err(e) => {
                out.error(e);
                ExitCode::Failure.into()
            }
        },
        Action::Touch => match dotlock::touch(lock.path()) {
            Ok(true) => ExitCode::Success.into(),
            Ok(false) => ExitCode::Failure.into(),
            Err(e) => {
                out.error(e);
                ExitCode::Failure.into()
            }
        },
        Action::Check => check(&out, &lock, &policy),
        Action::Status => status(&out, &lock, &policy),
        Action::Lock => {
            let patience = Patience {
                schedule,
                retries,
                timeout,
            };
            let setup = Setup {
                out,
                personality,
                lock: &lock,
                patience,
                policy,
                write_pid: args.pid,
                passthrough: args.passthrough || personality == Personality::Native,
            };
            take(&setup, &command)
        }
    }
}

/// Report an error and map it to the exit status of this personality.
fn fail(out: &Reporter, personality: Personality, e: Error) -> Exit {
    let code = match (&e, personality) {
        // liblockfile 1.17 reports a missing or non-directory parent as 5.
        (Error::NoDirectory { .. } | Error::NotADirectory { .. }, Personality::Dotlockfile) => {
            ExitCode::Error
        }
        _ => e.exit_code(),
    };
    match e {
        // Giving up is the normal outcome of `-r 0`; as the old tools, say
        // nothing unless asked.
        Error::Busy { .. } | Error::TimedOut { .. } => out.info(&e),
        _ => out.error(&e),
    }
    code.into()
}

/// Look at the lock as a waiter would: observed, with the filesystem's
/// "now" (our own clock where nothing can be created, e.g. a read-only
/// spool), and judged.
fn look(lock: &LockPath, policy: &Policy) -> crate::Result<Option<(Observed, Verdict)>> {
    let Some(mut seen) = dotlock::observe(lock.path())? else {
        return Ok(None);
    };
    seen.fs_now = dotlock::fs_now(lock)
        .ok()
        .or_else(|| Some(SystemTime::now()));
    let verdict = stale::judge_observed(&seen, policy);
    Ok(Some((seen, verdict)))
}

/// `-c`: is there a valid (not stale) lock?
fn check(out: &Reporter, lock: &LockPath, policy: &Policy) -> Exit {
    match look(lock, policy) {
        Ok(Some((_, Verdict::Valid(_)))) => ExitCode::Success.into(),
        Ok(Some((_, Verdict::Stale(_)))) | Ok(None) => ExitCode::Failure.into(),
        Err(e) => {
            out.error(e);
            ExitCode::Failure.into()
        }
    }
}

/// `--status`: the holder in readable form; 0 held, 1 free or stale.
fn status(out: &Reporter, lock: &LockPath, policy: &Policy) -> Exit {
    let (seen, verdict) = match look(lock, policy) {
        Ok(Some(found)) => found,
        Ok(None) => {
            let _ = writeln!(
                io::stdout().lock(),
                "lock:    {}\nstate:   free",
                lock.path().display()
            );
            return ExitCode::Failure.into();
        }
        Err(e) => {
            out.error(e);
            return ExitCode::Failure.into();
        }
    };
    let record = seen.record();
    let unknown = || "-".to_string();
    let state = if verdict.is_stale() { "stale" } else { "held" };
    let alive = match verdict {
        Verdict::Valid(stale::Reason::Alive { .. }) => "yes".to_string(),
        Verdict::Stale(stale::Reason::Dead { .. }) => "no".to_string(),
        Verdict::Stale(stale::Reason::PidReused { pid }) => {
            format!("no (pid {pid} now belongs to another process)")
        }
        Verdict::Stale(stale::Reason::OtherBoot) => "no (written before the last boot)".into(),
        _ if record.pid.is_none() => "unknown (no pid recorded)".into(),
        _ => "unknown (cannot be checked from this host)".into(),
    };
    let age = seen
        .age()
        .map_or_else(unknown, |a| format!("{}s", a.as_secs()));
    let _ = writeln!(
        io::stdout().lock(),
        "lock:    {}\nstate:   {state}\npid:     {}\ncommand: {}\nhost:    {}\nage:     {age}\nalive:   {alive}\nreason:  {}",
        lock.path().display(),
        record.pid.map_or_else(unknown, |p| p.to_string()),
        record.cmd.clone().unwrap_or_else(unknown),
        record.host.clone().unwrap_or_else(unknown),
        why(verdict),
    );
    if verdict.is_stale() {
        ExitCode::Failure.into()
    } else {
        ExitCode::Success.into()
    }
}

struct Setup<'a> {
    out: Reporter,
    personality: Personality,
    lock: &'a LockPath,
    patience: Patience,
    policy: Policy,
    write_pid: bool,
    passthrough: bool,
}

/// Take the lock; then leave it in place, or run the command under it.
fn take(s: &Setup<'_>, command: &[OsString]) -> Exit {
    let with_command = !command.is_empty();
    let watch_parent = s.write_pid && !with_command;
    if watch_parent && nix::unistd::getppid().as_raw() == 1 {
        return fail(&s.out, s.personality, Error::Orphaned);
    }
    let holder = if with_command {
        Some(std::process::id())
    } else if s.write_pid {
        Some(nix::unistd::getppid().as_raw() as u32)
    } else {
        None
    };
    let record = match s.personality {
        Personality::Dotlockfile => Record::legacy(holder.filter(|_| s.write_pid)),
        Personality::Native => {
            let cmd = match command.first() {
                Some(c) => Path::new(c)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned()),
                None => host::command_name(nix::unistd::getppid().as_raw() as u32),
            };
            Record::for_holder(holder, cmd)
        }
    }
    .to_bytes();

    // dotlockfile keeps its exact legacy timing; dotlock wakes on release,
    // through dnotify's SIGIO.
    let mut caught = guard::WAITING.to_vec();
    if s.personality == Personality::Native {
        caught.push(nix::sys::signal::Signal::SIGIO);
    }
    let mut signals = match Signals::catch(&caught) {
        Ok(s) => s,
        Err(e) => return fail(&s.out, s.personality, Error::io("signalfd", e)),
    };
    let parent = watch_parent.then(ParentWatch::new);
    let mut sleeper =
        Sleeper::new(Some(&signals), parent).wake_on_release(s.lock.path(), s.lock.dir());
    let request = Request {
        lock: s.lock,
        record: &record,
        mode: 0o644,
        patience: s.patience,
        policy: s.policy,
    };
    let out = s.out;
    let acquired = lock::acquire(&request, &mut sleeper, |event| match event {
        Event::Waiting(seen) => {
            let age = seen.age().unwrap_or_default().as_secs();
            out.info(format_args!(
                "waiting for {}: held by {} for {age}s",
                s.lock.path().display(),
                seen.record().describe()
            ));
        }
        Event::Breaking(seen, verdict) => out.info(format_args!(
            "{}: removing stale lock of {} ({})",
            s.lock.path().display(),
            seen.record().describe(),
            why(verdict)
        )),
    });
    drop(sleeper);
    let held = match acquired {
        Ok(held) => held,
        Err(Stop::Signal(sig)) => return Exit::Signal(sig),
        Err(Stop::Error(e)) => return fail(&s.out, s.personality, e),
    };
    match held.via() {
        Via::Link => {}
        Via::LinkDespiteError => out.info(format_args!(
            "{}: link(2) reported failure, but the lock has our inode: acquired",
            s.lock.path().display()
        )),
        Via::Exclusive => out.info(format_args!(
            "{}: no hard links on this filesystem; lock created with O_EXCL",
            s.lock.path().display()
        )),
    }
    if !with_command {
        held.keep();
        return ExitCode::Success.into();
    }

    // Command mode: forward signals to the child, keep the lock fresh.
    let mut forwarded = guard::FORWARDED.to_vec();
    forwarded.push(nix::sys::signal::Signal::SIGCHLD);
    if let Err(e) = signals.add(&forwarded) {
        drop(held);
        return fail(&s.out, s.personality, Error::io("signalfd", e));
    }
    let every = touch_interval(s.policy.stale_after);
    // dotlockfile touches only locks without a pid (its -p pid is proof enough).
    let refresh = s.personality == Personality::Native || !s.write_pid;
    let ended = guard::run_child(command, &signals, every, || {
        if refresh {
            let _ = held.touch();
        }
    });
    let ours = held.is_ours();
    if let Err(e) = held.release() {
        s.out.error(e);
    } else if !ours {
        s.out.error(format_args!(
            "{}: the lock was broken while the command ran; left the new holder's lock alone",
            s.lock.path().display()
        ));
    }
    match ended {
        Ok(end) => child_exit(s, end),
        Err(e) => {
            s.out.error(format_args!(
                "{}: {}",
                Path::new(&command[0]).display(),
                describe(&e)
            ));
            let code = match (e.kind(), s.personality) {
                (io::ErrorKind::PermissionDenied, Personality::Native) => ExitCode::NotExecutable,
                (io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied, _) => {
                    ExitCode::NotFound
                }
                _ => ExitCode::Error,
            };
            if s.passthrough || code == ExitCode::Error {
                code.into()
            } else {
                ExitCode::Success.into()
            }
        }
    }
}

/// The status `dotlock` leaves after its command ended.
fn child_exit(s: &Setup<'_>, end: ChildEnd) -> Exit {
    match (s.personality, end) {
        (Personality::Native, ChildEnd::Exited(code)) => Exit::Code(code),
        (Personality::Native, ChildEnd::Signaled(sig)) => Exit::Signal(sig),
        (Personality::Dotlockfile, end) if s.passthrough => Exit::Code(end.shell_status()),
        (Personality::Dotlockfile, _) => ExitCode::Success.into(),
    }
}

/// Holders touch their lock every 30 s, or every third of the stale age
/// if that is shorter.
fn touch_interval(stale_after: Duration) -> Duration {
    Duration::from_secs(30)
        .min(stale_after / 3)
        .max(Duration::from_millis(100))
}

fn why(verdict: Verdict) -> String {
    use stale::Reason::*;
    let reason = match verdict {
        Verdict::Valid(r) | Verdict::Stale(r) => r,
    };
    match reason {
        Alive { pid } => format!("pid {pid} is alive"),
        Dead { pid } => format!("pid {pid} is gone"),
        PidReused { pid } => format!("pid {pid} now belongs to another process"),
        OtherBoot => "written before this host last booted".into(),
        Fresh { age } => format!("{}s old, younger than the stale age", age.as_secs()),
        Aged { age } => format!("{}s old, past the stale age", age.as_secs()),
    }
}

fn describe(e: &io::Error) -> String {
    crate::error::describe(e)
}
