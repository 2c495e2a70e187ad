//! `filelock`: several lock files at once, all or nothing.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::Error;
use crate::acquire::Stop;
use crate::cli::args::{self, ActionArgs, WaitArgs, one_action};
use crate::cli::command_name;
use crate::cli::list;
use crate::cli::pipeline::{self, Plan, Waiter};
use crate::cli::report;
use crate::cli::status;
use crate::cli::{Exit, Outcome, Program, Reporter};
use crate::dotlock::DotLock;
use crate::inspect::Holder;
use crate::judge::Policy;
use crate::link::Held;
use crate::lockset::{AllOf, LockSet};
use crate::path::LockPath;
use crate::record::Record;
use crate::signals::Signals;
use crate::wait::Schedule;

/// Create several lock files at once, all or nothing, safely on local disks
/// and NFS; or remove them; or run a command under all of them.
///
/// The locks are taken in a canonical order (absolute path, duplicates
/// collapsed), so two calls on overlapping sets never deadlock; if one
/// cannot be had in time, every lock this call took is released. Without
/// a command, the locks name the calling shell as their holder and stay
/// until `filelock -u`. With one (after `--`), they are held while it runs,
/// kept fresh, and removed when it ends; filelock exits with its status.
#[derive(Debug, Parser)]
#[command(name = "filelock", version, args_override_self = true)]
pub struct Args {
    #[command(flatten)]
    pub action: ActionArgs,

    /// Seconds between attempts [default: 1]
    #[arg(short = 's', value_name = "SECONDS", allow_hyphen_values = true)]
    pub sleep: Option<String>,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// The lock files
    #[arg(value_name = "LOCKFILE", required = true)]
    pub files: Vec<OsString>,

    /// The command to run under all the locks, and its arguments
    #[arg(last = true, value_name = "COMMAND", value_hint = clap::ValueHint::CommandWithArguments)]
    pub command: Vec<OsString>,
}

/// The clap command (for man pages, completions and help): the shared
/// options, in filelock's words where its defaults or scope differ.
pub fn command() -> clap::Command {
    in_its_words(parser())
}

/// The command as parsing needs it: `-i` and `-s` are one option.
fn parser() -> clap::Command {
    Args::command().mut_arg("interval", |a| a.conflicts_with("sleep"))
}

/// The shared options' help in filelock's words (built only for help).
fn in_its_words(cmd: clap::Command) -> clap::Command {
    cmd.mut_arg("unlock", |a| {
        a.help(
            "Unlock: remove the lock files (those of the calling shell, stale ones \
                 and nobody's)",
        )
    })
    .mut_arg("force", |a| {
        a.help("With -u: remove the lock files whoever holds them")
    })
    .mut_arg("check", |a| {
        a.help("Check: exit 0 if every lock file is validly held, else 1")
    })
    .mut_arg("status", |a| {
        a.help(
            "Status: describe each lock's holder (pid, command, host, held for, \
                 alive); exit 0 if any is held, else 9 if any is stale, else 1",
        )
    })
    .mut_arg("json", |a| {
        a.help("With --status: one JSON object per lock, one per line")
    })
    .mut_arg("retries", |a| {
        a.help(
            "Retries for each lock after its first attempt [default: 10, 1 s apart, \
                 then exit 1]; -1 for forever",
        )
    })
    .mut_arg("interval", |a| {
        a.help("Seconds between attempts, as dotlock's -i (the same as -s)")
    })
    .mut_arg("timeout", |a| {
        a.help(
            "Give up after DURATION of waiting for the whole set (seconds; 0.5, \
                 200ms, 2m allowed); without -r, retries are then unbounded",
        )
    })
    .mut_arg("stale_after", |a| {
        a.help(
            "A lock whose holder cannot be proven alive or dead is stale after \
                 DURATION [default: 300]; with a COMMAND the locks are touched every \
                 third of it (at most every 30 s)",
        )
    })
    .mut_arg("on_lost", |a| {
        a.help(
            "With a COMMAND: when a lock is found lost at a keep-alive touch, warn \
                 (the default), or also send the command SIGTERM (term) or SIGKILL (kill)",
        )
    })
    .mut_arg("conflict_exit_code", |a| {
        a.help(
            "With a COMMAND: exit N when the locks cannot be had (retries or --timeout \
                 spent) [default: 1]; -E 0 makes \"still running from last time\" a success",
        )
    })
    .mut_arg("verbose", |a| {
        a.help("Say when waiting, for which lock and whom, and when a stale lock is broken")
    })
}

/// Parse `argv` and run native `filelock`.
pub fn main(argv: Vec<OsString>) -> Exit {
    let cmd = match crate::cli::asks_help(&argv) {
        true => command(),
        false => parser(),
    };
    match crate::cli::parse(cmd, "filelock", argv) {
        Ok(args) => run(args),
        Err(outcome) => outcome,
    }
    .exit(Program::Filelock)
}

/// The record of a lock held for the calling shell.
fn shell_record(lease: Duration) -> Vec<u8> {
    let ppid = nix::unistd::getppid().as_raw() as u32;
    Record::naming::<&OsStr>(Some(ppid), &[], ppid)
        .with_lease(lease)
        .to_bytes()
}

/// The record of a lock held by this process itself: while a set of locks
/// is being taken, its members name us, so that if we are killed half-way
/// the locks already taken are proven dead at once, and block nobody —
/// not even the calling shell.
fn own_record(lease: Duration) -> Vec<u8> {
    let me = std::process::id();
    Record::naming::<&OsStr>(Some(me), &[], me)
        .with_lease(lease)
        .to_bytes()
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
    // --timeout bounds the whole call, not each lock.
    let deadline = waiter
        .patience
        .timeout
        .map(|t| std::time::Instant::now().checked_add(t));
    set.take_each(|i, lock| {
        let mut waiter = waiter.clone().waking_on(std::slice::from_ref(lock));
        if let Some(Some(deadline)) = deadline {
            waiter.patience.timeout =
                Some(deadline.saturating_duration_since(std::time::Instant::now()));
        }
        let protocol = DotLock::new(lock, record, mode)?;
        waiter.wait_for(&protocol, signals, |e| report(i, e))
    })
}

/// What one invocation is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Lock,
    Unlock,
    Check,
    Status,
}

/// Run native `filelock`.
pub fn run(args: Args) -> Outcome {
    let mut operands = args.files.clone();
    operands.extend(args.command.iter().cloned());
    let grace = crate::lockdir::DEFAULT_GRACE;
    if let Some(o) = list::maybe("filelock", &args.action, &args.wait, &operands, grace) {
        return o;
    }
    let out = Reporter {
        prog: "filelock",
        quiet: report::Quiet::native(args.wait.quiet),
        verbose: args.wait.verbose,
    };
    let chosen = [
        (args.action.unlock, Action::Unlock),
        (args.action.check, Action::Check),
        (args.action.status, Action::Status),
    ];
    let Some(action) = one_action(Action::Lock, &chosen) else {
        return out.usage_error("-u, -c and --status cannot be combined");
    };
    if action != Action::Lock && (args.action.lock || !args.command.is_empty()) {
        return out.usage_error("-u, -c and --status take lock files and no -l or command");
    }
    if args.action.force && action != Action::Unlock {
        return out.usage_error("--force goes with -u");
    }
    let conflict = match args.wait.conflict_code() {
        Ok(c) => c,
        Err(msg) => return out.bad_value(msg),
    };
    let running = action == Action::Lock && !args.command.is_empty();
    if let Err(outcome) = args::conflict_needs_command(&out, conflict, running) {
        return outcome;
    }
    if let Err(outcome) = args::fence_needs_taking(&out, args.wait.fence, action == Action::Lock) {
        return outcome;
    }
    if args.wait.fence && args.files.len() > 1 {
        return out.usage_error("--fence takes one lock file: a token belongs to one lock");
    }
    if action == Action::Unlock {
        return unlock(&out, &args.files, args.action.force);
    }
    if action == Action::Lock && args.command.is_empty() {
        let path = std::env::var_os("PATH");
        if let Some(name) = command_name::first_command_like(&args.files, path.as_deref()) {
            out.error(command_name::warning(name));
        }
    }
    let (set, waiter, stale_after) = match check(&out, &args) {
        Ok(checked) => checked,
        Err(outcome) => return outcome,
    };
    let look = |l: &LockPath| Holder::of_file(l, &waiter.policy);
    match action {
        Action::Check => {
            for lock in set.locks() {
                match look(lock) {
                    Ok(Some(h)) if !h.verdict.is_stale() => {}
                    Ok(_) => return Outcome::NoLock,
                    Err(e) => return pipeline::failed_action(&out, e),
                }
            }
            Outcome::Success
        }
        Action::Status => {
            let format = status::status_format(args.action.json);
            status::status_of(set.locks(), false, format, look, &out)
        }
        _ => take(&out, &args, &set, waiter, stale_after).or_conflict(conflict),
    }
}

/// Take the whole set; then hand it over to the shell, or run the command
/// under it.
fn take(
    out: &Reporter,
    args: &Args,
    set: &LockSet,
    waiter: Waiter,
    stale_after: Duration,
) -> Outcome {
    let signals = match pipeline::catch(true) {
        Ok(s) => s,
        Err(e) => return out.failed(e),
    };
    let running = !args.command.is_empty();
    let record = shell_record(stale_after);
    let several = set.locks().len() > 1;
    let taking = if running {
        // Held by filelock itself, which names the command.
        Record::naming(Some(std::process::id()), &args.command, std::process::id())
            .with_lease(stale_after)
            .to_bytes()
    } else if several {
        own_record(stale_after)
    } else {
        record.clone()
    };
    let plan = Plan {
        waiter: waiter.clone(),
        slots: None,
        command: args.command.clone(),
        touch_every: Some(pipeline::touch_interval(stale_after)),
        on_lost: Some(args.wait.on_lost.unwrap_or_default()),
        keeper: None,
        fence: args.wait.fence,
    };
    let channel = match plan.channel() {
        Ok(c) => c,
        Err(e) => return out.failed(e),
    };
    let report = |i: usize, e| report::events(*out, set.locks()[i].path())(e);
    match take_all(set, &waiter, &taking, 0o644, &signals, report) {
        Ok(held) if running => {
            let first = set.locks()[0].path();
            pipeline::hold_or_run(&plan, first, 1, AllOf(held), signals, channel)
        }
        Ok(mut held) => {
            // The set is complete: hand every lock over to the shell.
            if several {
                crate::seam::pause("HAND_OVER");
                for (i, h) in held.iter_mut().enumerate() {
                    // Never report a set as held with a member gone: the
                    // rest are released (dropped) and the failure said.
                    let e = match h.rewrite(&record) {
                        Ok(true) => continue,
                        Ok(false) => Error::LockLost {
                            path: set.locks()[i].path().into(),
                        },
                        Err(e) => e,
                    };
                    out.error(&e);
                    return Outcome::Failed(e);
                }
            }
            if args.wait.fence {
                // One lock (checked above): its token, printed.
                match crate::fence::take(&mut held[0], &set.locks()[0]) {
                    Ok(token) => pipeline::print_taken(None, 1, Some(token)),
                    Err(e) => {
                        drop(held);
                        out.error(&e);
                        return Outcome::Failed(e);
                    }
                }
            }
            match args.wait.no_keeper {
                true => held.into_iter().for_each(Held::keep),
                false => {
                    let keeper = pipeline::Keeper::for_record(
                        "filelock-keeper",
                        &record,
                        stale_after,
                        args.wait.on_lost,
                    );
                    match keeper {
                        Some(k) => k.leave(out, set.locks()[0].path(), AllOf(held)),
                        None => held.into_iter().for_each(Held::keep),
                    }
                }
            }
            Outcome::Success
        }
        Err((_, Stop::Signal(sig))) => Outcome::Signal(sig),
        Err((i, Stop::Error(e @ (Error::Busy { .. } | Error::TimedOut { .. })))) => {
            let lock = &set.locks()[i];
            let holder = Holder::of_file(lock, &waiter.policy).ok().flatten();
            let by = holder
                .map(|h| format!(": {}", report::held_by_holder(&h)))
                .unwrap_or_default();
            out.busy(format_args!(
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

/// The lock set in canonical order, how to wait for each lock, and the
/// stale age.
fn check(out: &Reporter, args: &Args) -> Result<(LockSet, Waiter, Duration), Outcome> {
    // The seed's -s is -i by another name.
    let wait = WaitArgs {
        interval: args.wait.interval.clone().or_else(|| args.sleep.clone()),
        ..args.wait.clone()
    };
    let (mut patience, stale_after) = wait.parse().map_err(|msg| {
        // The interval may have come as the seed's -s.
        match (args.sleep.is_some(), msg.strip_prefix("-i ")) {
            (true, Some(rest)) => out.bad_value(format!("-s {rest}")),
            _ => out.bad_value(msg),
        }
    })?;
    // The seed's defaults: 10 retries, 1 s apart.
    if wait.retries.is_none() && wait.timeout.is_none() {
        patience.retries = Some(10);
    }
    if wait.interval.is_none() {
        patience.schedule = Schedule::Fixed(Duration::from_secs(1));
    }
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
        patience,
        policy: WaitArgs::policy(stale_after, false),
        wake_on: None,
        watch_parent: false,
        live: true,
    };
    Ok((set, waiter, stale_after))
}
/// `-u`: remove each lock that the caller may release
/// ([`crate::release`]), or each with `--force`; a missing one is a
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
    crate::release::release_file(&LockPath::new(file)?, &Policy::default(), force)
}
