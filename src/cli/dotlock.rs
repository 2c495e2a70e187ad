//! `dotlock`: the link(2) dot-lock command, a superset of liblockfile's
//! `dotlockfile` (which it becomes when invoked under that name).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use crate::Result;
use crate::cli::args::{ActionArgs, SlotArgs, WaitArgs, Waiting, one_action};
use crate::cli::dotlockfile;
use crate::cli::pipeline::{self, Ended, Plan, Waiter};
use crate::cli::report;
use crate::cli::status::{self, status_format};
use crate::cli::{Exit, Outcome, Personality, Program, Reporter};
use crate::dotlock::DotLock;
use crate::fs;
use crate::inspect::Holder;
use crate::judge::Policy;
use crate::link::{self, Held, Via};
use crate::mailbox;
use crate::path::LockPath;
use crate::record::Record;
const FILE: crate::readers::Kind = crate::readers::Kind::File;
use crate::slots::AnyOf;

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
    after_help = crate::cli::help_lines("dotlock")
)]
pub struct Args {
    #[command(flatten)]
    pub action: ActionArgs,

    /// Touch: refresh the lock's timestamp
    #[arg(short = 't')]
    pub touch: bool,

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

    /// Take a reader's share: any number of readers at once, or one writer
    /// (a plain lock of the same name), never both; with -u, -t: the
    /// caller's share
    #[arg(long)]
    pub shared: bool,

    /// Accepted and ignored (liblockfile passes it)
    #[arg(short = 'N', hide = true)]
    pub nop: bool,

    #[command(flatten)]
    pub wait: WaitArgs,

    #[command(flatten)]
    pub slots: SlotArgs,

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
        Personality::Dotlockfile => "dotlockfile",
        _ => "dotlock",
    }
}

/// Parse `argv` and run, as `dotlockfile` if invoked under that name;
/// usage errors exit 1 as liblockfile's do.
pub fn main(argv: Vec<OsString>) -> Exit {
    let personality = Personality::from_argv0(argv.first().map(OsString::as_os_str));
    if let Personality::LockfileProgs(tool) = personality {
        return crate::cli::lockfile_progs::main(tool, &argv[0], &argv[1..]);
    }
    let prog = prog_name(personality);
    let program = |passthrough| match personality {
        Personality::Dotlockfile => Program::Dotlockfile { passthrough },
        _ => Program::Native,
    };
    let mut cmd = command().name(prog).bin_name(prog);
    if personality == Personality::Dotlockfile {
        // dotlockfile has no -h or --version: a usage error and its usage.
        cmd = cmd.disable_help_flag(true).disable_version_flag(true);
    }
    match crate::cli::parse::<Args>(cmd, prog, argv) {
        Ok(args) => {
            let program = program(args.passthrough);
            run(args, personality).exit(program)
        }
        Err(outcome) => {
            if personality == Personality::Dotlockfile {
                dotlockfile::usage();
            }
            outcome.exit(program(false))
        }
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

/// A checked invocation.
struct Invocation {
    out: Reporter,
    waiting: Waiting,
    action: Action,
    lock: LockPath,
    /// The slots (`LOCK.N`), or the lock itself.
    paths: Vec<LockPath>,
    command: Vec<OsString>,
    policy: Policy,
}

/// Run a parsed invocation.
pub fn run(mut args: Args, personality: Personality) -> Outcome {
    let mut attempts = true;
    if personality == Personality::Dotlockfile {
        attempts = match dotlockfile::read_numbers(&mut args.wait) {
            Ok(any) => any,
            Err(outcome) => return outcome,
        };
    }
    let inv = match check(&args, personality) {
        Ok(inv) => inv,
        Err(outcome) => return outcome,
    };
    let out = &inv.out;
    let lock = &inv.lock;
    match inv.action {
        Action::Unlock if personality == Personality::Dotlockfile => match link::remove(lock) {
            Ok(_) => Outcome::Success,
            Err(e) => action_failed(out, e),
        },
        Action::Unlock if args.shared => {
            pipeline::unlock_shared(out, lock, FILE, &inv.policy, args.action.force)
        }
        Action::Unlock => pipeline::unlock_file(out, lock, &inv.policy, args.action.force),
        Action::Touch if args.shared => pipeline::touch_shared(out, lock, FILE, &inv.policy),
        Action::Touch => match fs::touch(lock) {
            Ok(true) => Outcome::Success,
            Ok(false) => Outcome::NoLock,
            Err(e) => action_failed(out, e),
        },
        Action::Check => match Holder::of_file(lock, &inv.policy) {
            Ok(Some(h)) if !h.verdict.is_stale() => Outcome::Success,
            Ok(_) => Outcome::NoLock,
            Err(e) => action_failed(out, e),
        },
        Action::Status => status::status_of(
            &inv.paths,
            inv.waiting.slots.is_some(),
            status_format(args.action.json),
            |l| Holder::of_file(l, &inv.policy),
            out,
        ),
        // liblockfile's `-r 2147483647`: no attempt at all, silently.
        Action::Lock if !attempts => Outcome::Failed(crate::Error::Busy {
            path: lock.path().into(),
            attempts: 0,
        }),
        Action::Lock => take(&inv, &args, personality),
    }
}

fn action_failed(out: &Reporter, e: crate::Error) -> Outcome {
    out.error(&e);
    Outcome::ActionFailed(e)
}

/// Check the options and the lock path.
fn check(args: &Args, personality: Personality) -> Result<Invocation, Outcome> {
    let waiting = args.wait.checked(prog_name(personality), &args.slots)?;
    let out = waiting.out;
    let mut rest = args.args.clone();
    let lockfile: PathBuf = if args.mailbox {
        mailbox::lock_path().map_err(|msg| out.bad_value(msg))?
    } else if rest.is_empty() {
        return Err(out.usage_error("no lock file given"));
    } else {
        PathBuf::from(rest.remove(0))
    };
    // `dotlock L -- cmd`: the `--` ends dotlock's options, it is no
    // command. (liblockfile runs a command named `--`.)
    let command = match rest.split_first() {
        Some((first, tail)) if first == "--" && personality != Personality::Dotlockfile => {
            tail.to_vec()
        }
        _ => rest,
    };
    if lockfile.as_os_str().is_empty() {
        return Err(out.usage_error("the lock file name is empty"));
    }
    let chosen = [
        (args.action.unlock, Action::Unlock),
        (args.touch, Action::Touch),
        (args.action.check, Action::Check),
        (args.action.status, Action::Status),
    ];
    let action = match personality {
        Personality::Dotlockfile => {
            let flags = dotlockfile::Flags {
                lock: args.action.lock,
                unlock: args.action.unlock,
                touch: args.touch,
                check: args.action.check,
            };
            match dotlockfile::action(&flags, &command)? {
                dotlockfile::Chosen::Lock => Action::Lock,
                dotlockfile::Chosen::Unlock => Action::Unlock,
                dotlockfile::Chosen::Touch => Action::Touch,
                dotlockfile::Chosen::Check => Action::Check,
            }
        }
        _ => one_action(Action::Lock, &chosen)
            .ok_or_else(|| out.usage_error("-u, -t, -c and --status cannot be combined"))?,
    };
    if action != Action::Lock && (args.action.lock || !command.is_empty()) {
        return Err(
            out.usage_error("-u, -t, -c and --status take a lock file and no -l or command")
        );
    }
    if args.action.force && action != Action::Unlock {
        return Err(out.usage_error("--force goes with -u"));
    }
    if args.shared {
        if personality != Personality::Native {
            return Err(out.usage_error("--shared is dotlock's, not dotlockfile's"));
        }
        if args.mailbox || waiting.slots.is_some() {
            return Err(out.usage_error("--shared does not go with -m or --slots"));
        }
        if matches!(action, Action::Check | Action::Status) {
            return Err(out.usage_error(
                "--shared goes with locking, -u and -t; -c and --status see readers anyway",
            ));
        }
    }
    if waiting.slots.is_some() && matches!(action, Action::Unlock | Action::Touch | Action::Check) {
        return Err(out
            .usage_error("--slots goes with locking and --status; release a slot with -u LOCK.N"));
    }
    let failed = |e| out.failed(e);
    let lock = LockPath::new(&lockfile).map_err(failed)?;
    if args.shared {
        crate::shared::check_names(&lock).map_err(failed)?;
    }
    lock.check_dir().map_err(failed)?;
    let paths = pipeline::slot_paths(&lock, waiting.slots).map_err(failed)?;
    let policy = WaitArgs::policy(waiting.stale_after, args.pid);
    Ok(Invocation {
        out,
        waiting,
        action,
        lock,
        paths,
        command,
        policy,
    })
}

/// The owner record: the pid of the caller (or ours with a command), and
/// in the `dotlockfile` personality liblockfile's bytes.
fn record(args: &Args, personality: Personality, command: &[OsString]) -> Vec<u8> {
    let ppid = nix::unistd::getppid().as_raw() as u32;
    let holder = match (command.is_empty(), args.pid) {
        (false, _) => Some(std::process::id()),
        (true, true) => Some(ppid),
        (true, false) => None,
    };
    match personality {
        Personality::Dotlockfile => Record::legacy(holder.filter(|_| args.pid)),
        _ => {
            let record = Record::naming(holder, command, ppid);
            // Without -p the caller is named all the same, but not trusted:
            // the lock goes stale by age, as liblockfile's.
            match holder {
                None => record.with_caller(ppid),
                Some(_) => record,
            }
        }
    }
    .to_bytes()
}

/// Take the lock (or a slot); then leave it in place, or run the command
/// under it.
fn take(inv: &Invocation, args: &Args, personality: Personality) -> Outcome {
    let out = &inv.out;
    let watch_parent = args.pid && inv.command.is_empty();
    if watch_parent && nix::unistd::getppid().as_raw() == 1 {
        return out.failed(crate::Error::Orphaned);
    }
    let record = record(args, personality, &inv.command);
    if args.shared {
        return take_shared(inv, args, &record, watch_parent);
    }
    let slots = inv
        .paths
        .iter()
        .map(|lock| {
            let protocol = DotLock::new(lock, &record, 0o644)?;
            Ok(match personality {
                Personality::Dotlockfile => protocol.directory_is_busy(),
                _ => protocol,
            })
        })
        .collect::<Result<Vec<_>>>();
    let locks = match slots {
        Ok(slots) => AnyOf {
            path: inv.lock.path().to_path_buf(),
            slots,
            policy: inv.policy,
        },
        Err(e) => return out.failed(e),
    };
    let plan = plan(inv, args, personality, watch_parent);
    match pipeline::run(&plan, locks, |held: &Held| announce(out, held)) {
        Ended::Done(outcome) => outcome,
        // dotlockfile gives up silently, as liblockfile does.
        Ended::GaveUp(e) if personality == Personality::Dotlockfile => out.failed(e),
        Ended::GaveUp(e) => {
            let holder = inv
                .paths
                .iter()
                .find_map(|l| Holder::of_file(l, &inv.policy).ok().flatten());
            report::gave_up(out, inv.lock.path(), holder, e)
        }
    }
}

/// How to wait, and what to do once the lock (or a share) is ours.
fn plan(inv: &Invocation, args: &Args, personality: Personality, watch_parent: bool) -> Plan {
    let waiter = Waiter {
        out: inv.out,
        patience: inv.waiting.patience,
        policy: inv.policy,
        wake_on: None,
        watch_parent,
        live: personality == Personality::Native,
    };
    // dotlockfile keeps its exact legacy timing.
    let waiter = match personality {
        Personality::Dotlockfile => waiter,
        _ => waiter.waking_on(&inv.paths),
    };
    // dotlockfile touches only locks without a pid (its -p pid is proof enough).
    let refresh = personality != Personality::Dotlockfile || !args.pid;
    Plan {
        waiter,
        slots: inv.waiting.slots,
        command: inv.command.clone(),
        touch_every: refresh.then(|| pipeline::touch_interval(inv.policy.stale_after)),
        on_lost: match personality {
            Personality::Dotlockfile => None,
            _ => Some(args.wait.on_lost.unwrap_or_default()),
        },
    }
}

/// `--shared`: take a reader's share; then leave it in place, or run the
/// command under it — as for a plain lock.
fn take_shared(inv: &Invocation, args: &Args, record: &[u8], watch_parent: bool) -> Outcome {
    let out = &inv.out;
    let reader = match crate::readers::Reader::new(&inv.lock, FILE, record) {
        Ok(reader) => reader,
        Err(e) => return out.failed(e),
    };
    let locks = AnyOf {
        path: inv.lock.path().to_path_buf(),
        slots: vec![reader],
        policy: inv.policy,
    };
    let plan = plan(inv, args, Personality::Native, watch_parent);
    match pipeline::run(&plan, locks, |_| {}) {
        Ended::Done(outcome) => outcome,
        Ended::GaveUp(e) => {
            let holder = Holder::of_file(&inv.lock, &inv.policy).ok().flatten();
            report::gave_up(out, inv.lock.path(), holder, e)
        }
    }
}

/// `--verbose`: how the lock was had, where that is worth saying.
fn announce(out: &Reporter, held: &Held) {
    match held.via() {
        Via::Link => {}
        Via::LinkDespiteError => out.info(format_args!(
            "{}: link(2) reported failure, but the lock has our inode: acquired",
            held.path().display()
        )),
        Via::Exclusive => out.info(format_args!(
            "{}: no hard links on this filesystem; lock created with O_EXCL",
            held.path().display()
        )),
    }
}
