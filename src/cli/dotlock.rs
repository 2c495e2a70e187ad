//! `dotlock`: the link(2) dot-lock command, a superset of liblockfile's
//! `dotlockfile` (which it becomes when invoked under that name).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{CommandFactory, Parser};

use crate::acquire::Stop;
use crate::cli::hold::{self, Wait};
use crate::cli::report::Holder;
use crate::cli::{Common, Exit, Personality, WaitArgs, fail};
use crate::dotlock::DotLock;
use crate::exit::ExitCode;
use crate::fs;
use crate::host;
use crate::judge::{self, Policy};
use crate::link::{self, Via};
use crate::mailbox;
use crate::path::LockPath;
use crate::record::Record;
use crate::slots::AnyOf;
use crate::{Error, Result};

/// Create, test and remove dot-lock files, safely on local disks and NFS.
///
/// With a COMMAND, take the lock, run the command, keep the lock fresh while
/// it runs, remove the lock when it ends and exit with its status. Options
/// end at the first non-option argument: `dotlock -l L cmd -x` passes `-x`
/// to `cmd`.
///
/// A stale lock is broken under LOCK.break and only if it is still the one
/// judged; among lockutils processes a lock that was taken is never removed.
/// A legacy tool (dotlockfile, procmail's lockfile) that takes the lock in
/// the breaker's window, between its last look and unlink(2), can lose it:
/// microseconds on a local disk, one server round trip on NFS.
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

    /// Record a pid (the parent's; dotlock's own with a COMMAND) and trust a
    /// live pid when checking
    #[arg(short = 'p')]
    pub pid: bool,

    /// Lock the user's mailbox: $MAIL.lock, else /var/mail/USER.lock
    #[arg(short = 'm')]
    pub mailbox: bool,

    /// With a COMMAND, exit with its status (always so in dotlock; only
    /// with -P as dotlockfile)
    #[arg(short = 'P')]
    pub passthrough: bool,

    /// Accepted and ignored (liblockfile passes it)
    #[arg(short = 'N', hide = true)]
    pub nop: bool,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// The lock file, then an optional command and its arguments
    #[arg(trailing_var_arg = true, value_name = "LOCKFILE [COMMAND [ARG]...]")]
    pub args: Vec<OsString>,
}

/// The clap command (for man pages, completions and help).
pub fn command() -> clap::Command {
    Args::command()
}

fn prog_name(personality: Personality) -> &'static str {
    match personality {
        Personality::Native => "dotlock",
        Personality::Dotlockfile => "dotlockfile",
    }
}

/// Parse `argv` and run, as `dotlockfile` if invoked under that name;
/// usage errors exit 1 as liblockfile's do.
pub fn main(argv: Vec<OsString>) -> Exit {
    let personality = Personality::from_argv0(argv.first().map(OsString::as_os_str));
    let prog = prog_name(personality);
    match crate::cli::parse(command().name(prog).bin_name(prog), prog, argv) {
        Ok(args) => run(args, personality),
        Err(exit) => exit,
    }
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
    let Common {
        out,
        patience,
        stale_after,
        slots,
    } = match args.wait.common(prog_name(personality), false) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let usage = |msg: &str| out.usage_exit(msg);

    let mut rest = args.args.clone();
    let lockfile: PathBuf = if args.mailbox {
        match mailbox::lock_path() {
            Ok(p) => p,
            Err(msg) => return out.bad_value(msg),
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
    if slots.is_some() && matches!(action, Action::Unlock | Action::Touch | Action::Check) {
        return usage("--slots goes with locking and --status; release a slot with -u LOCK.N");
    }

    let lock = match LockPath::new(&lockfile) {
        Ok(l) => l,
        Err(e) => return fail(&out, personality, e),
    };
    if let Err(e) = lock.check_dir() {
        return fail(&out, personality, e);
    }
    let paths = match hold::slot_paths(&lock, slots) {
        Ok(p) => p,
        Err(e) => return fail(&out, personality, e),
    };

    let policy = WaitArgs::policy(stale_after, args.pid);
    let report_failure = |e: Error| {
        out.error(e);
        Exit::from(ExitCode::Failure)
    };
    match action {
        Action::Unlock => match link::remove(&lock) {
            Ok(_) => ExitCode::Success.into(),
            Err(e) => report_failure(e),
        },
        Action::Touch => match fs::touch(&lock) {
            Ok(true) => ExitCode::Success.into(),
            Ok(false) => ExitCode::Failure.into(),
            Err(e) => report_failure(e),
        },
        Action::Check => match look(&lock, &policy) {
            Ok(Some(h)) if !h.verdict.is_stale() => ExitCode::Success.into(),
            Ok(_) => ExitCode::Failure.into(),
            Err(e) => report_failure(e),
        },
        Action::Status => hold::status_of_slots(&paths, |l| look(l, &policy), &out),
        Action::Lock => {
            let wait = Wait {
                out,
                patience,
                policy,
                // dotlockfile keeps its exact legacy timing.
                release: (personality == Personality::Native).then(|| {
                    (
                        paths.iter().map(|p| p.path().to_path_buf()).collect(),
                        lock.dir(),
                    )
                }),
                watch_parent: args.pid && command.is_empty(),
            };
            let how = How {
                personality,
                write_pid: args.pid,
                passthrough: args.passthrough,
                slots,
            };
            take(&wait, &how, &lock, &paths, &command)
        }
    }
}

/// Look at the lock as a waiter would: observed, with the filesystem's
/// "now" (our own clock where nothing can be created, e.g. a read-only
/// spool), and judged.
fn look(lock: &LockPath, policy: &Policy) -> Result<Option<Holder>> {
    let Some(mut seen) = fs::observe(lock.path())? else {
        return Ok(None);
    };
    seen.fs_now = fs::fs_now(lock).ok().or_else(|| Some(SystemTime::now()));
    Ok(Some(Holder {
        record: seen.record(),
        age: seen.age(),
        verdict: judge::judge_observed(&seen, policy),
    }))
}

/// How to take the lock.
struct How {
    personality: Personality,
    write_pid: bool,
    passthrough: bool,
    slots: Option<usize>,
}

/// Take the lock (or a slot: `paths`); then leave it in place, or run the
/// command under it.
fn take(
    wait: &Wait<'_>,
    how: &How,
    lock: &LockPath,
    paths: &[LockPath],
    command: &[OsString],
) -> Exit {
    let How {
        personality,
        write_pid,
        passthrough,
        slots,
    } = *how;
    let out = &wait.out;
    if wait.watch_parent && nix::unistd::getppid().as_raw() == 1 {
        return fail(out, personality, Error::Orphaned);
    }
    let ppid = nix::unistd::getppid().as_raw() as u32;
    let holder = match (command.is_empty(), write_pid) {
        (false, _) => Some(std::process::id()),
        (true, true) => Some(ppid),
        (true, false) => None,
    };
    let record = match personality {
        Personality::Dotlockfile => Record::legacy(holder.filter(|_| write_pid)),
        Personality::Native => {
            let cmd = match command.first() {
                Some(c) => Path::new(c)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned()),
                None => host::command_name(ppid),
            };
            Record::for_holder(holder, cmd)
        }
    }
    .to_bytes();
    let slots_protocol = paths
        .iter()
        .map(|lock| DotLock::new(lock, &record, 0o644))
        .collect::<Result<Vec<_>>>();
    let protocol = match slots_protocol {
        Ok(slots) => AnyOf {
            path: lock.path().to_path_buf(),
            slots,
            policy: wait.policy,
        },
        Err(e) => return fail(out, personality, e),
    };
    let ((slot, held), signals) = match hold::acquire(wait, &protocol) {
        Ok(acquired) => acquired,
        Err(Stop::Signal(sig)) => return Exit::Signal(sig),
        Err(Stop::Error(e)) => return fail(out, personality, e),
    };
    match held.via() {
        Via::Link => {}
        Via::LinkDespiteError => out.info(format_args!(
            "{}: link(2) reported failure, but the lock has our inode: acquired",
            lock.path().display()
        )),
        Via::Exclusive => out.info(format_args!(
            "{}: no hard links on this filesystem; lock created with O_EXCL",
            lock.path().display()
        )),
    }
    if command.is_empty() {
        held.keep();
        hold::print_slot(slots, slot);
        return ExitCode::Success.into();
    }
    let every = hold::touch_interval(wait.policy.stale_after);
    // dotlockfile touches only locks without a pid (its -p pid is proof enough).
    let refresh = personality == Personality::Native || !write_pid;
    let env = hold::slot_env(slots, slot);
    let ended = hold::run_under(
        out,
        lock.path(),
        held,
        signals,
        command,
        &env,
        every,
        refresh,
    );
    let passthrough = passthrough || personality == Personality::Native;
    match (ended, personality) {
        (Ok(end), Personality::Native) => hold::pass_on(end),
        (Ok(end), Personality::Dotlockfile) if passthrough => Exit::Code(end.shell_status()),
        (Ok(_), Personality::Dotlockfile) => ExitCode::Success.into(),
        (Err(e), _) => {
            let code = hold::spawn_failure(out, personality, &command[0], &e);
            if passthrough || code == ExitCode::Error {
                code.into()
            } else {
                ExitCode::Success.into()
            }
        }
    }
}
