//! `lockdir`: the mkdir(2) lock for portable shell scripts, with a
//! trap-installing helper (`eval "$(lockdir --trap DIR)" || exit 1`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{CommandFactory, Parser};

use crate::acquire::Stop;
use crate::cli::hold::{self, Wait};
use crate::cli::report::Holder;
use crate::cli::{Common, Exit, Personality, Reporter, WaitArgs, fail, parse_duration};
use crate::exit::ExitCode;
use crate::fs;
use crate::host;
use crate::judge::{Policy, Reason, Verdict};
use crate::lockdir::{self, DirLock, SeenDir};
use crate::path::LockPath;
use crate::record::Record;
use crate::slots::AnyOf;
use crate::{Error, Result};

/// Take, test and release a lock directory (the mkdir(2) lock of portable
/// shell scripts), safely on local disks and NFS.
///
/// `lockdir DIR` takes the lock for the calling shell; `lockdir -u DIR`
/// releases it. With a COMMAND, the command runs under the lock. In a
/// script, `eval "$(lockdir --trap DIR)" || exit 1` takes the lock and
/// releases it when the script exits or is killed by HUP, INT or TERM.
///
/// The trap helper sets the EXIT, HUP, INT and TERM traps, replacing any the
/// script set before: POSIX sh cannot read an existing trap back reliably
/// (`$(trap)` is empty in some shells). It defines `lockdir_release`
/// instead; a script with cleanup of its own sets its trap after the eval
/// and calls it: `trap 'rm -f "$tmp"; lockdir_release' EXIT`.
#[derive(Debug, Parser)]
#[command(
    name = "lockdir",
    version,
    args_override_self = true,
    after_help = "Exit status: 0 success; 1 usage error, name too long, -c found no valid lock, \
                  -u refused (not ours); 2 cannot create the directory (parent missing, not \
                  writable, read-only); 3 cannot write the owner record; 4 retries exhausted or \
                  timeout; 5 other error (DIR is a file or a symlink, or holds what lockdir did not put \
                  there and so is no lock, bad numbers); 8 a stale lock \
                  could not be removed; with a COMMAND: its status (126 not executable, 127 not found)."
)]
pub struct Args {
    /// Release the lock: only if it is ours (or its owner is proven dead)
    #[arg(short = 'u')]
    pub unlock: bool,

    /// With -u: release the lock whoever holds it
    #[arg(long)]
    pub force: bool,

    /// Check: exit 0 if a valid lock exists, else 1
    #[arg(short = 'c')]
    pub check: bool,

    /// Status: describe the lock's holder; exit 0 if held, 1 if free or stale
    #[arg(long)]
    pub status: bool,

    /// Print shell code for `eval` that takes the lock and sets EXIT, HUP,
    /// INT and TERM traps releasing it
    #[arg(long)]
    pub trap: bool,

    /// The holder's pid [default: the calling shell's]; with -u, whose lock
    /// to release
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// A lock directory without an owner record is stale after DURATION
    /// [default: 10]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub grace: Option<String>,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// The lock directory, then an optional command and its arguments
    #[arg(trailing_var_arg = true, value_name = "DIR [COMMAND [ARG]...]")]
    pub args: Vec<OsString>,
}

/// The clap command (for man pages, completions and help).
pub fn command() -> clap::Command {
    Args::command()
}

/// Parse `argv` and run.
pub fn main(argv: Vec<OsString>) -> Exit {
    crate::cli::parse(command(), "lockdir", argv).map_or_else(|exit| exit, run)
}

/// Run a parsed invocation.
pub fn run(args: Args) -> Exit {
    let Common {
        out,
        patience,
        stale_after,
        slots,
    } = match args.wait.common("lockdir", true) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let usage = |msg: &str| out.usage_exit(msg);
    let bad_value = |msg: String| out.bad_value(msg);
    let grace = match args.grace.as_deref().map(parse_duration) {
        None => lockdir::DEFAULT_GRACE,
        Some(Ok(d)) => d,
        Some(Err(msg)) => return bad_value(format!("--grace {msg}")),
    };
    if args.pid == Some(0) {
        return bad_value("--pid 0: not a process".into());
    }
    let Some((dir, command)) = args.args.split_first() else {
        return usage("no lock directory given");
    };
    if dir.is_empty() {
        return usage("the lock directory name is empty");
    }
    let actions = [args.unlock, args.check, args.status, args.trap];
    if actions.iter().filter(|&&a| a).count() > 1 {
        return usage("-u, -c, --status and --trap cannot be combined");
    }
    if (args.unlock || args.check || args.status) && !command.is_empty() {
        return usage("-u, -c and --status take a lock directory and no command");
    }
    if args.force && !args.unlock {
        return usage("--force goes with -u");
    }
    if slots.is_some() && (args.unlock || args.check) {
        return usage("--slots goes with locking and --status; release a slot with -u DIR.N");
    }
    if args.trap {
        return trap(&out, &args, dir, command);
    }
    // A trailing slash names the same directory.
    let trimmed = dir
        .as_encoded_bytes()
        .strip_suffix(b"/")
        .filter(|t| !t.is_empty());
    let dir = match trimmed {
        // SAFETY: cutting an ASCII '/' off the end keeps the encoding valid.
        Some(t) => unsafe { OsString::from_encoded_bytes_unchecked(t.to_vec()) },
        None => dir.clone(),
    };
    let lock = match LockPath::new(&dir) {
        Ok(l) => l,
        Err(e) => return fail(&out, Personality::Native, e),
    };
    if let Err(e) = lock.check_dir() {
        return fail(&out, Personality::Native, e);
    }
    let policy = WaitArgs::policy(stale_after, false);
    if args.unlock {
        return unlock(&out, &lock, &policy, grace, args.pid, args.force);
    }
    let paths = match hold::slot_paths(&lock, slots) {
        Ok(p) => p,
        Err(e) => return fail(&out, Personality::Native, e),
    };
    if args.status {
        return hold::status_of_slots(&paths, |l| look(l, &policy, grace), &out);
    }
    if args.check {
        return match look(&lock, &policy, grace) {
            Ok(Some(h)) if !h.verdict.is_stale() => ExitCode::Success.into(),
            Ok(_) => ExitCode::Failure.into(),
            Err(e) => {
                out.error(e);
                ExitCode::Failure.into()
            }
        };
    }

    // Lock: for the calling shell (or --pid), or for ourselves with a command.
    let ppid = nix::unistd::getppid().as_raw() as u32;
    let holder = if command.is_empty() {
        args.pid.unwrap_or(ppid)
    } else {
        std::process::id()
    };
    let cmd = match command.first() {
        Some(c) => Path::new(c)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        None => host::command_name(holder),
    };
    let record = Record::for_holder(Some(holder), cmd).to_bytes();
    let slots_protocol = paths
        .iter()
        .map(|lock| DirLock::new(lock, &record, grace))
        .collect::<Result<Vec<_>>>();
    let protocol = match slots_protocol {
        Ok(slots) => AnyOf {
            path: lock.path().to_path_buf(),
            slots,
            policy,
        },
        Err(e) => return fail(&out, Personality::Native, e),
    };
    let wait = Wait {
        out,
        patience,
        policy,
        release: Some((
            paths.iter().map(|p| p.path().to_path_buf()).collect(),
            lock.dir(),
        )),
        // Waiting for a shell that is gone would only leave a stale lock.
        watch_parent: command.is_empty() && args.pid.is_none(),
    };
    let ((slot, held), signals) = match hold::acquire(&wait, &protocol) {
        Ok(acquired) => acquired,
        Err(Stop::Signal(sig)) => return Exit::Signal(sig),
        Err(Stop::Error(e @ (Error::Busy { .. } | Error::TimedOut { .. }))) => {
            return busy(&out, &lock, &policy, grace, e);
        }
        Err(Stop::Error(e)) => return fail(&out, Personality::Native, e),
    };
    if command.is_empty() {
        crate::acquire::Holding::keep(held);
        hold::print_slot(slots, slot);
        return ExitCode::Success.into();
    }
    let every = hold::touch_interval(stale_after);
    let env = hold::slot_env(slots, slot);
    match hold::run_under(&out, lock.path(), held, signals, command, &env, every, true) {
        Ok(end) => hold::pass_on(end),
        Err(e) => hold::spawn_failure(&out, Personality::Native, &command[0], &e).into(),
    }
}

/// Gave up: say who holds the lock (scripts print this when `eval` fails).
fn busy(
    out: &Reporter,
    lock: &LockPath,
    policy: &Policy,
    grace: std::time::Duration,
    e: Error,
) -> Exit {
    let code = e.exit_code();
    match look(lock, policy, grace) {
        Ok(Some(h)) => out.error(format_args!(
            "{}: busy: held by {} for {}s",
            lock.path().display(),
            h.record.describe(),
            h.age.unwrap_or_default().as_secs()
        )),
        _ => out.error(e),
    }
    code.into()
}

/// The lock directory as a waiter sees it, judged.
fn seen(lock: &LockPath) -> Result<Option<SeenDir>> {
    let Some(mut seen) = lockdir::observe(lock.path())? else {
        return Ok(None);
    };
    seen.fs_now = fs::fs_now(lock).ok().or_else(|| Some(SystemTime::now()));
    Ok(Some(seen))
}

fn look(lock: &LockPath, policy: &Policy, grace: std::time::Duration) -> Result<Option<Holder>> {
    Ok(seen(lock)?.map(|s| Holder {
        record: s.record(),
        age: s.age(),
        verdict: lockdir::judge(&s, grace, policy),
    }))
}

/// `-u`: release the lock if it is ours — recorded for `--pid`, or for the
/// calling shell or one of its ancestors (so a subshell or a trap may
/// release it) — or if its owner is proven dead; `--force` releases it
/// whoever holds it. A missing lock is success.
fn unlock(
    out: &Reporter,
    lock: &LockPath,
    policy: &Policy,
    grace: std::time::Duration,
    pid: Option<u32>,
    force: bool,
) -> Exit {
    let s = match seen(lock) {
        Ok(Some(s)) => s,
        Ok(None) => return ExitCode::Success.into(),
        Err(e) => return fail(out, Personality::Native, e),
    };
    let record = s.record();
    let ours = record.pid.is_some_and(|p| match pid {
        Some(want) => p == want,
        None => is_ancestor(&record, p),
    });
    let dead = matches!(
        lockdir::judge(&s, grace, policy),
        Verdict::Stale(Reason::Dead { .. } | Reason::PidReused { .. } | Reason::OtherBoot)
    );
    if !(ours || dead || force) {
        let holder = if s.owner.is_some() {
            record.describe()
        } else {
            "nobody yet (no owner record)".into()
        };
        return fail(
            out,
            Personality::Native,
            Error::NotOurs {
                path: lock.path().into(),
                holder,
            },
        );
    }
    let parent = match lock.open_dir() {
        Ok(d) => d,
        Err(e) => return fail(out, Personality::Native, e),
    };
    let removed = if dead && !ours && !force {
        // Someone else's dead lock: break it as a waiter would.
        lockdir::break_dir(&parent, lock, &s).map(|_| ())
    } else {
        lockdir::remove_dir(&parent, lock, Some((s.dev, s.ino))).map(|_| ())
    };
    match removed {
        Ok(()) => ExitCode::Success.into(),
        Err(e) => fail(out, Personality::Native, e),
    }
}

/// Is the record's pid our parent or one of its ancestors, on this host,
/// and (where recorded) the very same process?
fn is_ancestor(record: &Record, pid: u32) -> bool {
    if record
        .host
        .as_deref()
        .is_some_and(|h| h != host::hostname())
    {
        return false;
    }
    if let (Some(start), Some(now)) = (record.start, host::start_time(pid))
        && start != now
    {
        return false;
    }
    let mut p = nix::unistd::getppid().as_raw() as u32;
    for _ in 0..64 {
        if p == pid {
            return true;
        }
        match host::parent_of(p) {
            Some(next) if next > 0 && next != p => p = next,
            _ => return false,
        }
    }
    false
}

/// `--trap`: print POSIX sh that takes the lock in the calling shell (its
/// `$$` recorded as holder) and, on success, defines `lockdir_release` and
/// sets EXIT, HUP, INT and TERM traps that call it; on failure the code
/// returns non-zero, so `eval "$(lockdir --trap DIR)" || exit 1` exits.
fn trap(out: &Reporter, args: &Args, dir: &OsString, command: &[OsString]) -> Exit {
    if !command.is_empty() {
        out.usage("--trap takes a lock directory and no command");
        return ExitCode::Failure.into();
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            out.error(format_args!(
                "cannot find my own program: {}",
                crate::error::describe(&e)
            ));
            return ExitCode::Error.into();
        }
    };
    let dir = match std::path::absolute(Path::new(dir)) {
        Ok(p) => p,
        Err(_) => PathBuf::from(dir),
    };
    let mut take = Vec::new();
    let mut pass = |flag: &str, value: &Option<String>| {
        if let Some(v) = value {
            take.push(flag.to_string());
            take.push(v.clone());
        }
    };
    pass("-r", &args.wait.retries);
    pass("-i", &args.wait.interval);
    pass("--timeout", &args.wait.timeout);
    pass("--stale-after", &args.wait.stale_after);
    pass("--grace", &args.grace);
    pass("--slots", &args.wait.slots);
    if args.wait.verbose {
        take.push("--verbose".into());
    }
    let mut code = b"__lockdir_bin=".to_vec();
    code.extend(sh_quote(exe.as_os_str().as_encoded_bytes()));
    code.extend(b"\n__lockdir_dir=");
    code.extend(sh_quote(dir.as_os_str().as_encoded_bytes()));
    code.extend(b"\n__lockdir_pid=$$\n");
    code.extend(
        b"lockdir_release() { \"$__lockdir_bin\" -u -q --pid \"$__lockdir_pid\" -- \"$__lockdir_dir\"; }\n",
    );
    // With --slots the slot taken is printed: the lock is DIR.N.
    let slotted = args.wait.slots.is_some();
    code.extend(if slotted {
        &b"if __lockdir_slot=$(\"$__lockdir_bin\" --pid \"$__lockdir_pid\""[..]
    } else {
        &b"if \"$__lockdir_bin\" --pid \"$__lockdir_pid\""[..]
    });
    for t in &take {
        code.push(b' ');
        code.extend(sh_quote(t.as_bytes()));
    }
    code.extend(if slotted {
        &b" -- \"$__lockdir_dir\"); then\n\t__lockdir_dir=\"$__lockdir_dir.$__lockdir_slot\"\n"[..]
    } else {
        &b" -- \"$__lockdir_dir\"; then\n"[..]
    });
    code.extend(
        b"\
          \ttrap 'lockdir_release' EXIT\n\
          \ttrap 'lockdir_release; trap - EXIT; exit 129' HUP\n\
          \ttrap 'lockdir_release; trap - EXIT; exit 130' INT\n\
          \ttrap 'lockdir_release; trap - EXIT; exit 143' TERM\n\
          else\n\
          \tfalse\n\
          fi\n",
    );
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(&code);
    ExitCode::Success.into()
}

/// Single-quote for POSIX sh, byte for byte: every byte literal, `'` as
/// `'\''`. Spaces, `$`, backslashes, newlines and non-UTF-8 bytes survive.
pub fn sh_quote(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in bytes {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote(b"plain"), b"'plain'");
        assert_eq!(sh_quote(b"it's"), b"'it'\\''s'");
        assert_eq!(sh_quote(b"'"), b"''\\'''");
        assert_eq!(sh_quote(b"a b $(x) \\ \n"), b"'a b $(x) \\ \n'");
        assert_eq!(sh_quote(b"\xff"), b"'\xff'");
        assert_eq!(sh_quote(b""), b"''");
    }
}
