//! The `dotlockfile` personality: liblockfile 1.17's `dotlockfile`,
//! without its known bugs, run on native `dotlock`'s machinery. Here is
//! everything where it differs ([`flavour`]): its numbers, which of `-c`,
//! `-t` and `-u` wins, its usage text and its exit statuses, no `--` of
//! its own, no help or version, liblockfile's bare-pid record, its exact
//! timing and silence, and `-u` removing whatever is there.

use std::ffi::OsString;
use std::time::Duration;

use crate::cli::args::WaitArgs;
use crate::cli::dotlock::{self, Action, Args, Flavour};
use crate::cli::legacy_numbers::{attempts, dotlockfile_interval, dotlockfile_retries};
use crate::cli::{Exit, Outcome, Program, Reporter};
use crate::record::Record;

/// Parse `argv` as liblockfile's `dotlockfile` does, and run.
pub fn main(argv: Vec<OsString>) -> Exit {
    // dotlockfile has no -h or --version: a usage error and its usage.
    let cmd = dotlock::command()
        .name("dotlockfile")
        .bin_name("dotlockfile")
        .disable_help_flag(true)
        .disable_version_flag(true);
    match crate::cli::parse::<Args>(cmd, "dotlockfile", argv) {
        Ok(mut args) => {
            let program = Program::Dotlockfile {
                passthrough: args.passthrough,
            };
            let outcome = match read_numbers(&mut args.wait) {
                Ok(any) => dotlock::run(args, &flavour(!any)),
                Err(outcome) => outcome,
            };
            outcome.exit(program)
        }
        Err(outcome) => {
            usage();
            outcome.exit(Program::Dotlockfile { passthrough: false })
        }
    }
}

/// Where the personality differs from native `dotlock`; `no_attempt`:
/// its retries leave no attempt at all.
pub fn flavour(no_attempt: bool) -> Flavour {
    Flavour {
        prog: "dotlockfile",
        choose,
        dash_dash_ends_options: false,
        shared: false,
        release_rules: false,
        record,
        native_waiting: false,
        touch_trusted_pid: false,
        no_attempt,
    }
}

/// liblockfile's record: the pid with `-p` (the caller's, or ours with a
/// command), else `0`; no lease (a waiter judges it by its own).
fn record(args: &Args, command: &[OsString], _lease: Duration) -> Vec<u8> {
    let pid = match command.is_empty() {
        false => std::process::id(),
        true => nix::unistd::getppid().as_raw() as u32,
    };
    Record::legacy(args.pid.then_some(pid)).to_bytes()
}

/// Which action: `-c` before `-t` before `-u` (liblockfile looks in that
/// order and ignores the rest); any of them with `-l` or a command is a
/// usage error.
fn choose(args: &Args, command: &[OsString], _: &Reporter) -> Result<Action, Outcome> {
    let chosen = match (args.action.check, args.touch.touch, args.action.unlock) {
        (true, _, _) => Action::Check,
        (false, true, _) => Action::Touch,
        (false, false, true) => Action::Unlock,
        (false, false, false) => return Ok(Action::Lock),
    };
    if args.action.lock || !command.is_empty() {
        return Err(usage());
    }
    Ok(chosen)
}

/// liblockfile 1.17's usage text.
pub const USAGE: &str = "\
Usage:  dotlockfile -l [-r retries] [-i interval] [-p] [-q] <-m|lockfile>
        dotlockfile -l [-r retries] [-i interval] [-p] [-q] <-m|lockfile> [-P] command args...
        dotlockfile -u|-t
";

/// Print the usage text; a usage error (exit 1).
pub fn usage() -> Outcome {
    crate::cli::report::to_stderr(USAGE);
    Outcome::Usage
}

/// Read `-r` and `-i` as liblockfile does (`atoi`: `3x` is 3, `4294967295`
/// is -1, forever) and put them back in the form the shared parser takes.
/// `Ok(false)`: the retries make liblockfile try no attempt at all
/// (`-r 2147483647`: `retries + 1` overflows), and it gives up at once.
pub fn read_numbers(wait: &mut WaitArgs) -> Result<bool, Outcome> {
    if let Some(r) = wait.retries.take() {
        let Some(n) = dotlockfile_retries(&r) else {
            if !wait.quiet {
                crate::cli::say("dotlockfile", format_args!("-r {r}: invalid argument"));
            }
            return Err(Outcome::BadValue);
        };
        wait.retries = Some(n.to_string());
        if n != -1 && attempts(n) <= 0 {
            return Ok(false);
        }
    }
    if let Some(i) = wait.interval.take() {
        let Some(n) = dotlockfile_interval(&i) else {
            crate::cli::say("dotlockfile", "-i needs argument >= 0");
            return Err(Outcome::BadValue);
        };
        wait.interval = Some(n.to_string());
    }
    Ok(true)
}
