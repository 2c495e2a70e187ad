//! `lockdir`: the mkdir(2) lock for portable shell scripts, with a
//! trap-installing helper (`cli/trap.rs`).

use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::cli::args::{
    self, ActionArgs, SlotArgs, TouchArgs, WaitArgs, Waiting, one_action, parse_duration,
};
use crate::cli::pipeline::{self, Ended, Plan, Waiter};
use crate::cli::report;
use crate::cli::status;
use crate::cli::{Exit, Outcome, Program, Reporter, trap};
use crate::inspect::Holder;
use crate::judge::Policy;
use crate::lockdir::{self, DirLock};
use crate::path::LockPath;
use crate::record::Record;
use crate::release::Caller;
use crate::slots::AnyOf;
use crate::{Error, Result};

/// Take, test and release a lock directory (the mkdir(2) lock of portable
/// shell scripts), safely on local disks and NFS.
///
/// `lockdir DIR` takes the lock for the calling shell; `lockdir -u DIR`
/// releases it. With a COMMAND, the command runs under the lock. In a
/// script, `lk=$(lockdir --trap DIR) || exit 1; eval "$lk" || exit 1` takes
/// the lock and releases it when the script exits or is killed by HUP, INT
/// or TERM; it fails closed even when lockdir cannot be run.
///
/// The trap helper sets the EXIT, HUP, INT and TERM traps, replacing any the
/// script set before: POSIX sh cannot read an existing trap back reliably
/// (`$(trap)` is empty in some shells). It defines `lockdir_release`
/// instead; a script with cleanup of its own sets its trap after the eval
/// and calls it: `trap 'rm -f "$tmp"; lockdir_release' EXIT`.
#[derive(Debug, Parser)]
#[command(name = "lockdir", version, args_override_self = true)]
pub struct Args {
    #[command(flatten)]
    pub action: ActionArgs,

    #[command(flatten)]
    pub touch: TouchArgs,

    /// Print shell code for `eval` that takes the lock and sets EXIT, HUP,
    /// INT and TERM traps releasing it
    #[arg(long)]
    pub trap: bool,

    /// The holder's pid [default: the calling shell's]; with -u, whose lock
    /// to release
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Take a reader's share: any number of readers at once, or one writer
    /// (a plain lockdir of the same name), never both; with -u: the
    /// caller's share
    #[arg(long)]
    pub shared: bool,

    /// A lock directory without an owner record is stale after DURATION
    /// [default: 10]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub grace: Option<String>,

    #[command(flatten)]
    pub wait: WaitArgs,

    #[command(flatten)]
    pub slots: SlotArgs,

    /// The lock directory, then an optional command and its arguments
    #[arg(trailing_var_arg = true, value_name = "DIR [COMMAND [ARG]...]")]
    pub args: Vec<OsString>,
}

/// The clap command (for man pages, completions and help).
pub fn command() -> clap::Command {
    in_its_words(Args::command())
}

/// The shared options' help in lockdir's words (built only for help).
fn in_its_words(cmd: clap::Command) -> clap::Command {
    cmd.mut_arg("lock", |a| {
        a.help("Lock (the default action), as dotlock's -l")
    })
    .mut_arg("unlock", |a| {
        a.help("Release the lock: only if it is ours (or its owner is proven dead)")
    })
    .mut_arg("force", |a| {
        a.help("With -u: release the lock whoever holds it")
    })
}

/// The options `--trap` passes on to the `lockdir` its code runs: the
/// waiting options, `--slots` and `--grace`, as they were given.
fn passed_on(matches: &clap::ArgMatches) -> Vec<OsString> {
    let mut ids = args::ids::<WaitArgs>();
    ids.extend(args::ids::<SlotArgs>());
    ids.push("grace".into());
    args::given(&command(), matches, &ids)
}

/// Parse `argv` and run. With `--trap`, any failure — a usage error
/// included — prints `false` for the `eval`, so that the script stops.
pub fn main(argv: Vec<OsString>) -> Exit {
    let trapping = argv
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--trap");
    let cmd = match crate::cli::asks_help(&argv) {
        true => command(),
        false => Args::command(),
    };
    let outcome = match crate::cli::parse_matches(cmd, "lockdir", argv) {
        Ok((args, matches)) => run(args, &matches),
        Err(outcome) => outcome,
    };
    if trapping && !matches!(outcome, Outcome::Success | Outcome::Shown) {
        use std::io::Write;
        let _ = std::io::stdout().lock().write_all(b"false\n");
    }
    outcome.exit(Program::Native)
}

/// What one invocation is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Lock,
    Unlock,
    Check,
    Status,
    Touch,
    Trap,
}

/// A checked invocation.
struct Invocation {
    out: Reporter,
    waiting: Waiting,
    action: Action,
    grace: Duration,
    dir: OsString,
    command: Vec<OsString>,
}

/// Run a parsed invocation; `--trap` passes on its waiting options as
/// `matches` has them.
pub fn run(args: Args, matches: &clap::ArgMatches) -> Outcome {
    let grace = args.grace.as_deref().and_then(|g| parse_duration(g).ok());
    let grace = grace.unwrap_or(lockdir::DEFAULT_GRACE);
    if let Some(o) = crate::cli::list::maybe("lockdir", &args.action, &args.wait, &args.args, grace)
    {
        return o;
    }
    let inv = match check(&args) {
        Ok(inv) => inv,
        Err(outcome) => return outcome,
    };
    let out = &inv.out;
    if inv.action == Action::Trap {
        return trap::trap(
            out,
            &passed_on(matches),
            (inv.waiting.slots.is_some(), inv.waiting.fence),
            &inv.dir,
            &inv.command,
        );
    }
    let failed = |e| out.failed(e);
    let lock = match LockPath::new(crate::path::without_trailing_slash(&inv.dir)) {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    if let Err(e) = lock.check_dir() {
        return failed(e);
    }
    let policy = WaitArgs::policy(inv.waiting.stale_after, false);
    let grace = inv.grace;
    let paths = match crate::slots::paths(&lock, inv.waiting.slots) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let kind = crate::readers::Kind::Directory { grace };
    if args.shared
        && let Err(e) = crate::shared::check_names(&lock)
    {
        return failed(e);
    }
    match inv.action {
        Action::Unlock if args.shared => {
            pipeline::unlock_shared(out, &lock, kind, &policy, args.action.force)
        }
        Action::Lock if args.shared => take_shared(&inv, args.pid, &lock, kind, policy, &args),
        Action::Unlock => unlock(out, &lock, &policy, grace, args.pid, args.action.force),
        Action::Status => status::status_of(
            &paths,
            inv.waiting.slots.is_some(),
            status::status_format(args.action.json),
            |l| Holder::of_dir(l, &policy, grace),
            out,
        ),
        Action::Check => match Holder::of_dir(&lock, &policy, grace) {
            Ok(Some(h)) if !h.verdict.is_stale() => Outcome::Success,
            Ok(_) => Outcome::NoLock,
            Err(e) => pipeline::failed_action(out, e),
        },
        Action::Touch if args.shared => pipeline::touch_shared(out, &lock, kind, &policy),
        Action::Touch => match crate::seen_dir::touch(lock.path()) {
            Ok(true) => Outcome::Success,
            Ok(false) => Outcome::NoLock,
            Err(e) => pipeline::failed_action(out, e),
        },
        Action::Lock | Action::Trap => take(&inv, &args, &lock, &paths, policy),
    }
    .or_conflict(inv.waiting.conflict)
}

/// Check the options.
fn check(args: &Args) -> Result<Invocation, Outcome> {
    let waiting = args.wait.checked("lockdir", &args.slots)?;
    let out = waiting.out;
    let grace = match args.grace.as_deref().map(parse_duration) {
        None => lockdir::DEFAULT_GRACE,
        Some(Ok(d)) => d,
        Some(Err(msg)) => return Err(out.bad_value(format!("--grace {msg}"))),
    };
    if args.pid == Some(0) {
        return Err(out.bad_value("--pid 0: not a process"));
    }
    let Some((dir, command)) = args.args.split_first() else {
        return Err(out.usage_error("no lock directory given"));
    };
    if dir.is_empty() {
        return Err(out.usage_error("the lock directory name is empty"));
    }
    let chosen = [
        (args.action.unlock, Action::Unlock),
        (args.action.check, Action::Check),
        (args.action.status, Action::Status),
        (args.touch.touch, Action::Touch),
        (args.trap, Action::Trap),
    ];
    let Some(action) = one_action(Action::Lock, &chosen) else {
        return Err(out.usage_error("-u, -c, -t, --status and --trap cannot be combined"));
    };
    if matches!(
        action,
        Action::Unlock | Action::Check | Action::Status | Action::Touch
    ) && (args.action.lock || !command.is_empty())
    {
        return Err(
            out.usage_error("-u, -c, -t and --status take a lock directory and no -l or command")
        );
    }
    if args.action.force && action != Action::Unlock {
        return Err(out.usage_error("--force goes with -u"));
    }
    // `lockdir DIR -- cmd`: the `--` ends lockdir's options.
    let command = match command.split_first() {
        Some((first, tail)) if first == "--" => tail,
        _ => command,
    };
    let running = action == Action::Lock && !command.is_empty();
    args::conflict_needs_command(&out, waiting.conflict, running)?;
    let taking = matches!(action, Action::Lock | Action::Trap) && !args.shared;
    args::fence_needs_taking(&out, waiting.fence, taking)?;
    crate::cli::flock_command(&out, command)?;
    if args.shared
        && (waiting.slots.is_some()
            || !matches!(action, Action::Lock | Action::Unlock | Action::Touch))
    {
        return Err(out.usage_error(
            "--shared goes with locking, -u and -t, not with --slots or --trap; -c and --status see readers anyway",
        ));
    }
    if waiting.slots.is_some() && matches!(action, Action::Unlock | Action::Check | Action::Touch) {
        return Err(out.usage_error(
            "--slots goes with locking and --status; release or touch a slot as DIR.N",
        ));
    }
    Ok(Invocation {
        out,
        waiting,
        action,
        grace,
        dir: dir.clone(),
        command: command.to_vec(),
    })
}

/// Lock: for the calling shell (or `--pid`), or for ourselves with a
/// command; then leave it in place, or run the command under it.
fn take(
    inv: &Invocation,
    args: &Args,
    lock: &LockPath,
    paths: &[LockPath],
    policy: Policy,
) -> Outcome {
    let out = &inv.out;
    let record = record(inv, args.pid);
    let slots = paths
        .iter()
        .map(|lock| DirLock::new(lock, &record, inv.grace))
        .collect::<Result<Vec<_>>>();
    let locks = match slots {
        Ok(slots) => AnyOf {
            path: lock.path().to_path_buf(),
            slots,
            policy,
        },
        Err(e) => return out.failed(e),
    };
    let plan = plan(inv, args, paths, policy, &record);
    match pipeline::run(&plan, locks, |_| {}) {
        Ended::Done(outcome) => outcome,
        Ended::GaveUp(e) => busy(out, lock, &policy, inv.grace, e),
    }
}

/// `--shared`: take a reader's share of the lock directory; then leave it
/// in place, or run the command under it — as for a plain lock.
fn take_shared(
    inv: &Invocation,
    pid: Option<u32>,
    lock: &LockPath,
    kind: crate::readers::Kind,
    policy: Policy,
    args: &Args,
) -> Outcome {
    let out = &inv.out;
    let record = record(inv, pid);
    let reader = match crate::readers::Reader::new(lock, kind, &record) {
        Ok(reader) => reader,
        Err(e) => return out.failed(e),
    };
    let locks = AnyOf {
        path: lock.path().to_path_buf(),
        slots: vec![reader],
        policy,
    };
    let plan = plan(inv, args, std::slice::from_ref(lock), policy, &record);
    match pipeline::run(&plan, locks, |_| {}) {
        Ended::Done(outcome) => outcome,
        Ended::GaveUp(e) => busy(out, lock, &policy, inv.grace, e),
    }
}

/// The owner record: the calling shell's pid (or `--pid`), or ours with a
/// command.
fn record(inv: &Invocation, pid: Option<u32>) -> Vec<u8> {
    let ppid = nix::unistd::getppid().as_raw() as u32;
    let holder = if inv.command.is_empty() {
        pid.unwrap_or(ppid)
    } else {
        std::process::id()
    };
    Record::naming(Some(holder), &inv.command, holder)
        .with_lease(inv.waiting.stale_after)
        .to_bytes()
}

/// How to wait, and what to do once the lock is ours.
fn plan(inv: &Invocation, args: &Args, paths: &[LockPath], policy: Policy, record: &[u8]) -> Plan {
    Plan {
        waiter: Waiter {
            out: inv.out,
            patience: inv.waiting.patience,
            policy,
            wake_on: None,
            // Waiting for a shell that is gone would only leave a stale lock.
            watch_parent: inv.command.is_empty() && args.pid.is_none(),
            live: true,
        }
        .waking_on(paths),
        slots: inv.waiting.slots,
        command: inv.command.clone(),
        touch_every: Some(pipeline::touch_interval(inv.waiting.stale_after)),
        on_lost: Some(args.wait.on_lost.unwrap_or_default()),
        keeper: (inv.command.is_empty() && !args.wait.no_keeper)
            .then(|| {
                pipeline::Keeper::for_record(
                    "lockdir-keeper",
                    record,
                    inv.waiting.stale_after,
                    args.wait.on_lost,
                )
            })
            .flatten(),
        fence: inv.waiting.fence,
    }
}

/// Gave up: say who holds the lock (scripts print this when `eval` fails).
fn busy(out: &Reporter, lock: &LockPath, policy: &Policy, grace: Duration, e: Error) -> Outcome {
    let holder = Holder::of_dir(lock, policy, grace).ok().flatten();
    report::gave_up(out, lock.path(), holder, e)
}

/// `-u`: release the lock by the rules of [`crate::release`] — recorded
/// for `--pid`, or for the calling shell or one of its ancestors (so a
/// subshell or a trap may release it), or its owner proven dead; or
/// whoever holds it with `--force`. A missing lock is success.
fn unlock(
    out: &Reporter,
    lock: &LockPath,
    policy: &Policy,
    grace: Duration,
    pid: Option<u32>,
    force: bool,
) -> Outcome {
    let caller = pid.map_or(Caller::Ancestry, Caller::Pid);
    match crate::release::release_dir(lock, policy, grace, caller, force) {
        Ok(_) => Outcome::Success,
        Err(e) => out.failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(argv: &[&str]) -> Vec<String> {
        let matches = command().try_get_matches_from(argv).unwrap();
        passed_on(&matches)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn trap_passes_on_every_waiting_option_as_given_and_nothing_else() {
        let argv = [
            "lockdir",
            "--trap",
            "-r",
            "0",
            "-i",
            "1",
            "--timeout",
            "5",
            "--stale-after",
            "9",
            "--verbose",
            "-q",
            "--on-lost",
            "term",
            "--slots",
            "2",
            "--grace",
            "3",
            "--pid",
            "7",
            "D",
        ];
        let got = passed(&argv);
        for flag in ["--trap", "--pid", "7", "D"] {
            assert!(!got.iter().any(|a| a == flag), "{flag} passed: {got:?}");
        }
        let mut want: Vec<&str> = argv[2..argv.len() - 3].to_vec();
        want.sort();
        let mut got_sorted: Vec<&str> = got.iter().map(String::as_str).collect();
        got_sorted.sort();
        assert_eq!(got_sorted, want);
        assert!(passed(&["lockdir", "--trap", "D"]).is_empty());
    }

    #[test]
    fn every_option_of_the_waiting_groups_reaches_the_trap() {
        let cmd = command();
        let mut ids = args::ids::<WaitArgs>();
        ids.extend(args::ids::<SlotArgs>());
        for id in ids {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == id.as_str())
                .unwrap();
            let flag = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => format!("-{}", arg.get_short().unwrap()),
            };
            let mut argv = vec!["lockdir".to_string(), "--trap".into(), flag.clone()];
            if arg.get_action().takes_values() {
                argv.push(if id == "on_lost" { "warn" } else { "1" }.into());
            }
            argv.push("D".into());
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            assert_eq!(passed(&argv)[0], flag, "{id}");
        }
    }
}
