//! `dotlock`: the link(2) dot-lock command. Its machinery also runs the
//! `dotlockfile` personality (`cli/dotlockfile.rs`), which says
//! where it differs in a [`Flavour`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::Result;
use crate::cli::args::{self, ActionArgs, SlotArgs, TouchArgs, WaitArgs, Waiting, one_action};
use crate::cli::list;
use crate::cli::pipeline::{self, Ended, Plan, Waiter};
use crate::cli::report::{self, Quiet};
use crate::cli::status::{self, status_format};
use crate::cli::{Exit, Outcome, Program, Reporter};
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
#[command(name = "dotlock", version, args_override_self = true)]
pub struct Args {
    #[command(flatten)]
    pub action: ActionArgs,

    #[command(flatten)]
    pub touch: TouchArgs,

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

/// What sets a program run on dotlock's machinery apart: native
/// `dotlock`'s ([`Flavour::NATIVE`]), or the `dotlockfile` personality's.
#[derive(Debug, Clone, Copy)]
pub struct Flavour {
    /// The name in messages.
    pub prog: &'static str,
    /// Which action the flags choose.
    pub choose: fn(&Args, &[OsString], &Reporter) -> Result<Action, Outcome>,
    /// `L -- cmd`: the `--` ends the options (liblockfile runs a command
    /// named `--`).
    pub dash_dash_ends_options: bool,
    /// `--shared` is taken.
    pub shared: bool,
    /// `-u` removes only what the release rules allow; else whatever is
    /// there (the ancestors' unconditional removal).
    pub release_rules: bool,
    /// The lock's owner record, for the caller's `args` and `command`,
    /// with the holder's lease (its stale age) where the record has room.
    pub record: fn(&Args, &[OsString], Duration) -> Vec<u8>,
    /// Waiting as native tools wait — early wake, a live line on a
    /// terminal, the lock checked at each touch, the holder named on
    /// giving up, a full directory refused — rather than with liblockfile's
    /// exact timing and silence.
    pub native_waiting: bool,
    /// Touch a `-p` lock while its command runs (liblockfile does not:
    /// its pid is proof enough).
    pub touch_trusted_pid: bool,
    /// No attempt at all: give up at once (liblockfile's `-r 2147483647`).
    pub no_attempt: bool,
}

impl Flavour {
    /// Native `dotlock`.
    pub const NATIVE: Flavour = Flavour {
        prog: "dotlock",
        choose: one_of_the_flags,
        dash_dash_ends_options: true,
        shared: true,
        release_rules: true,
        record: native_record,
        native_waiting: true,
        touch_trusted_pid: true,
        no_attempt: false,
    };
}

/// Parse `argv` and run native `dotlock`.
pub fn main(argv: Vec<OsString>) -> Exit {
    match crate::cli::parse::<Args>(command(), "dotlock", argv) {
        Ok(args) => run(args, &Flavour::NATIVE),
        Err(outcome) => outcome,
    }
    .exit(Program::Native)
}

/// What one invocation is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Lock,
    Unlock,
    Touch,
    Check,
    Status,
}

/// Native `dotlock`'s choice: one action flag at most.
fn one_of_the_flags(args: &Args, _: &[OsString], out: &Reporter) -> Result<Action, Outcome> {
    let chosen = [
        (args.action.unlock, Action::Unlock),
        (args.touch.touch, Action::Touch),
        (args.action.check, Action::Check),
        (args.action.status, Action::Status),
    ];
    one_action(Action::Lock, &chosen)
        .ok_or_else(|| out.usage_error("-u, -t, -c and --status cannot be combined"))
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

/// Run a parsed invocation of `flavour`.
pub fn run(args: Args, flavour: &Flavour) -> Outcome {
    let grace = crate::lockdir::DEFAULT_GRACE;
    if let Some(o) = list::maybe(flavour.prog, &args.action, &args.wait, &args.args, grace) {
        return o;
    }
    let inv = match check(&args, flavour) {
        Ok(inv) => inv,
        Err(outcome) => return outcome,
    };
    let out = &inv.out;
    let lock = &inv.lock;
    let force = args.action.force;
    match inv.action {
        Action::Unlock if !flavour.release_rules => match link::remove(lock) {
            Ok(_) => Outcome::Success,
            Err(e) => pipeline::failed_action(out, e),
        },
        Action::Unlock if args.shared => {
            pipeline::unlock_shared(out, lock, FILE, &inv.policy, force)
        }
        Action::Unlock => pipeline::unlock_file(out, lock, &inv.policy, force),
        Action::Touch if args.shared => pipeline::touch_shared(out, lock, FILE, &inv.policy),
        Action::Touch => match fs::touch(lock) {
            Ok(true) => Outcome::Success,
            Ok(false) => Outcome::NoLock,
            Err(e) => pipeline::failed_action(out, e),
        },
        Action::Check => match Holder::of_file(lock, &inv.policy) {
            Ok(Some(h)) if !h.verdict.is_stale() => Outcome::Success,
            Ok(_) => Outcome::NoLock,
            Err(e) => pipeline::failed_action(out, e),
        },
        Action::Status => status::status_of(
            &inv.paths,
            inv.waiting.slots.is_some(),
            status_format(args.action.json),
            |l| Holder::of_file(l, &inv.policy),
            out,
        ),
        Action::Lock if flavour.no_attempt => Outcome::Failed(crate::Error::Busy {
            path: lock.path().into(),
            attempts: 0,
        }),
        Action::Lock => take(&inv, &args, flavour).or_conflict(inv.waiting.conflict),
    }
}

/// Check the options and the lock path.
fn check(args: &Args, flavour: &Flavour) -> Result<Invocation, Outcome> {
    let mut waiting = args.wait.checked(flavour.prog, &args.slots)?;
    if !flavour.native_waiting {
        // liblockfile's -q: no message at all.
        waiting.out.quiet = Quiet::ancestors(args.wait.quiet);
    }
    let out = waiting.out;
    let mut rest = args.args.clone();
    let lockfile: PathBuf = if args.mailbox {
        mailbox::lock_path().map_err(|msg| out.bad_value(msg))?
    } else if rest.is_empty() {
        return Err(out.usage_error("no lock file given"));
    } else {
        PathBuf::from(rest.remove(0))
    };
    let command = match rest.split_first() {
        Some((first, tail)) if first == "--" && flavour.dash_dash_ends_options => tail.to_vec(),
        _ => rest,
    };
    if lockfile.as_os_str().is_empty() {
        return Err(out.usage_error("the lock file name is empty"));
    }
    let action = (flavour.choose)(args, &command, &out)?;
    if action != Action::Lock && (args.action.lock || !command.is_empty()) {
        return Err(
            out.usage_error("-u, -t, -c and --status take a lock file and no -l or command")
        );
    }
    if args.action.force && action != Action::Unlock {
        return Err(out.usage_error("--force goes with -u"));
    }
    args::conflict_needs_command(&out, waiting.conflict, !command.is_empty())?;
    let taking = action == Action::Lock && !args.shared && flavour.native_waiting;
    args::fence_needs_taking(&out, waiting.fence, taking)?;
    if flavour.native_waiting {
        crate::cli::flock_command(&out, &command)?;
    }
    if args.shared {
        if !flavour.shared {
            return Err(out.usage_error(format_args!(
                "--shared is dotlock's, not {}'s",
                flavour.prog
            )));
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
    let paths = crate::slots::paths(&lock, waiting.slots).map_err(failed)?;
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

/// Native `dotlock`'s owner record: the caller (or dotlock itself with a
/// command), named also without `-p` — but then not trusted: the lock
/// goes stale by age, as liblockfile's.
fn native_record(args: &Args, command: &[OsString], lease: Duration) -> Vec<u8> {
    let ppid = nix::unistd::getppid().as_raw() as u32;
    let record = match (command.is_empty(), args.pid) {
        (false, _) => Record::naming(Some(std::process::id()), command, ppid),
        (true, true) => Record::naming(Some(ppid), command, ppid),
        (true, false) => Record::naming(None, command, ppid).with_caller(ppid),
    };
    record.with_lease(lease).to_bytes()
}

/// Take the lock (or a slot); then leave it in place, or run the command
/// under it.
fn take(inv: &Invocation, args: &Args, flavour: &Flavour) -> Outcome {
    let out = &inv.out;
    let watch_parent = args.pid && inv.command.is_empty();
    if watch_parent && nix::unistd::getppid().as_raw() == 1 {
        return out.failed(crate::Error::Orphaned);
    }
    let record = (flavour.record)(args, &inv.command, inv.waiting.stale_after);
    if args.shared {
        return take_shared(inv, args, flavour, &record, watch_parent);
    }
    let slots = inv
        .paths
        .iter()
        .map(|lock| {
            let protocol = DotLock::new(lock, &record, 0o644)?;
            Ok(match flavour.native_waiting {
                true => protocol,
                false => protocol.directory_is_busy(),
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
    let plan = plan(inv, args, flavour, watch_parent, &record);
    match pipeline::run(&plan, locks, |held: &Held| announce(out, held)) {
        Ended::Done(outcome) => outcome,
        // liblockfile gives up silently.
        Ended::GaveUp(e) if !flavour.native_waiting => out.failed(e),
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
fn plan(
    inv: &Invocation,
    args: &Args,
    flavour: &Flavour,
    watch_parent: bool,
    record: &[u8],
) -> Plan {
    let waiter = Waiter {
        out: inv.out,
        patience: inv.waiting.patience,
        policy: inv.policy,
        wake_on: None,
        watch_parent,
        live: flavour.native_waiting,
    };
    let waiter = match flavour.native_waiting {
        true => waiter.waking_on(&inv.paths),
        false => waiter,
    };
    let touch = flavour.touch_trusted_pid || !args.pid;
    Plan {
        waiter,
        slots: inv.waiting.slots,
        command: inv.command.clone(),
        touch_every: touch.then(|| pipeline::touch_interval(inv.policy.stale_after)),
        on_lost: flavour
            .native_waiting
            .then(|| args.wait.on_lost.unwrap_or_default()),
        // A trusted pid that outlives dotlock (-p, no command) is kept
        // for; not by the personalities, not for a mailbox (setgid).
        keeper: (watch_parent && flavour.native_waiting && !args.mailbox && !args.wait.no_keeper)
            .then(|| {
                pipeline::Keeper::for_record(
                    "dotlock-keeper",
                    record,
                    inv.policy.stale_after,
                    args.wait.on_lost,
                )
            })
            .flatten(),
        fence: inv.waiting.fence,
    }
}

/// `--shared`: take a reader's share; then leave it in place, or run the
/// command under it — as for a plain lock.
fn take_shared(
    inv: &Invocation,
    args: &Args,
    flavour: &Flavour,
    record: &[u8],
    watch_parent: bool,
) -> Outcome {
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
    let plan = plan(inv, args, flavour, watch_parent, record);
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
