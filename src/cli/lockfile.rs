//! procmail's `lockfile`, as `filelock` invoked under that name: options
//! and files left to right, each file taken with the options seen before
//! it, in the order given; all or nothing. [`parse`] is pure; [`main`]
//! carries the steps out.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::Error;
use crate::acquire::{Event, Stop};
use crate::cli::args::MAX_DURATION;
use crate::cli::pipeline::{self, Waiter};
use crate::cli::{Exit, Outcome, Program, Reporter};
use crate::judge::Policy;
use crate::link::{self, Held};
use crate::lockset::LockSet;
use crate::mailbox;
use crate::path::LockPath;
use crate::wait::{Patience, Schedule};

const USAGE: &str =
    "Usage: lockfile -v | -nnn | -r nnn | -l nnn | -s nnn | -! | -ml | -mu | file ...";

/// The longest time any option takes, in seconds.
const MAX_SECS: i128 = MAX_DURATION.as_secs() as i128;

/// The options in force when a file is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `-nnn`: seconds between attempts (default 8).
    pub sleeptime: Duration,
    /// `-r nnn`: retries; `None` (the default, or negative) is forever.
    pub retries: Option<u64>,
    /// `-l nnn`: a lock older than this is forced (0: never).
    pub locktimeout: Option<u64>,
    /// `-s nnn`: the suspend after forcing a lock (default 16).
    pub suspend: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sleeptime: Duration::from_secs(8),
            retries: None,
            locktimeout: None,
            suspend: Duration::from_secs(16),
        }
    }
}

/// One step of the command line, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Take `file` with these settings.
    Lock(OsString, Settings),
    /// `-ml`: take the user's mailbox lock.
    LockMailbox(Settings),
    /// `-mu`: remove the user's mailbox lock, there and then.
    UnlockMailbox,
}

/// Where parsing stopped before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// `-v`: print the version.
    Version,
    /// An argument that is not an option `lockfile` knows.
    Usage,
    /// A time beyond [`MAX_DURATION`].
    TooLarge(i128),
}

/// The command line, read left to right.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub steps: Vec<Step>,
    /// `-!`: exchange success and giving up.
    pub invert: bool,
    /// Parsing stopped here; the steps before it still count.
    pub halt: Option<Halt>,
}

/// Read `args` (without the program name) as procmail's `lockfile` does.
pub fn parse(args: &[OsString]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut now = Settings::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_encoded_bytes();
        i += 1;
        if arg.first() != Some(&b'-') {
            parsed.steps.push(Step::Lock(args[i - 1].clone(), now));
            continue;
        }
        match option(arg, args, &mut i, &mut now) {
            Ok(Some(step)) => parsed.steps.push(step),
            Ok(None) if arg == b"-!" => parsed.invert = true,
            Ok(None) => {}
            Err(halt) => {
                parsed.halt = Some(halt);
                return parsed;
            }
        }
    }
    parsed
}

/// One option, its value taken from the same or the next argument.
fn option(
    arg: &[u8],
    args: &[OsString],
    i: &mut usize,
    now: &mut Settings,
) -> Result<Option<Step>, Halt> {
    let rest = &arg[1..];
    match rest {
        b"" => Err(Halt::Usage),
        b"v" => Err(Halt::Version),
        b"!" => Ok(None),
        b"ml" => Ok(Some(Step::LockMailbox(*now))),
        b"mu" => Ok(Some(Step::UnlockMailbox)),
        [b'r' | b'l' | b's', value @ ..] => {
            let n = number(value, args, i).ok_or(Halt::Usage)?;
            if rest[0] != b'r' && n > MAX_SECS {
                return Err(Halt::TooLarge(n));
            }
            match rest[0] {
                b'r' => now.retries = u64::try_from(n).ok(),
                b'l' => now.locktimeout = u64::try_from(n).ok().filter(|&n| n > 0),
                _ => now.suspend = Duration::from_secs(n.max(0) as u64),
            }
            Ok(None)
        }
        // procmail reads the number with strtol(3): a `+` may lead.
        [b'0'..=b'9' | b'+', ..] => {
            let n: i128 = std::str::from_utf8(rest)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(Halt::Usage)?;
            if n > MAX_SECS {
                return Err(Halt::TooLarge(n));
            }
            now.sleeptime = Duration::from_secs(n as u64);
            Ok(None)
        }
        _ => Err(Halt::Usage),
    }
}

/// The number after `-r`, `-l` or `-s`: in the same argument, or the next.
fn number(inline: &[u8], args: &[OsString], i: &mut usize) -> Option<i128> {
    let text = if inline.is_empty() {
        *i += 1;
        args.get(*i - 1)?.to_str()?
    } else {
        std::str::from_utf8(inline).ok()?
    };
    text.parse::<i64>().ok().map(i128::from)
}

fn say(msg: &str) {
    crate::cli::say("lockfile", msg);
}

/// Run procmail's `lockfile` on `args` (without the program name).
pub fn main(args: &[OsString]) -> Exit {
    let parsed = parse(args);
    let program = Program::Lockfile {
        invert: parsed.invert,
    };
    run(parsed).exit(program)
}

fn run(parsed: Parsed) -> Outcome {
    let mut plan: Vec<(OsString, Settings)> = Vec::new();
    let mut worked = false;
    for step in parsed.steps {
        let mailbox = || {
            mailbox::procmail_lock_path().map_err(|msg| {
                say(&msg);
                Outcome::Refused
            })
        };
        match step {
            Step::Lock(file, settings) => plan.push((file, settings)),
            Step::LockMailbox(settings) => match mailbox() {
                Ok(p) => plan.push((p.into_os_string(), settings)),
                Err(outcome) => return outcome,
            },
            Step::UnlockMailbox => {
                let p = match mailbox() {
                    Ok(p) => p,
                    Err(outcome) => return outcome,
                };
                worked = true;
                match LockPath::new(&p).and_then(|l| link::remove(&l)) {
                    Ok(true) => {}
                    Ok(false) => {
                        say(&format!("Can't unlock \"{}\"", p.display()));
                        return Outcome::NoLock;
                    }
                    Err(e) => {
                        say(&format!("Can't unlock \"{}\"", p.display()));
                        return Outcome::ActionFailed(e);
                    }
                }
            }
        }
    }
    match parsed.halt {
        Some(Halt::Version) => {
            version();
            return Outcome::Shown;
        }
        Some(Halt::Usage) => return usage(),
        Some(Halt::TooLarge(n)) => {
            say(&format!("{n}: too large (at most {MAX_SECS} seconds)"));
            return Outcome::BadValue;
        }
        None => {}
    }
    if plan.is_empty() {
        return if worked { Outcome::Success } else { usage() };
    }
    take(&plan)
}

fn usage() -> Outcome {
    crate::cli::report::to_stderr(&format!("{USAGE}\n"));
    Outcome::Usage
}

fn version() {
    crate::cli::report::to_stderr(&format!(
        "lockfile (lockutils {}), compatible with procmail's lockfile v3.22\n\nYour system mailbox's lockfile:\t{}\n",
        crate::VERSION,
        mailbox::procmail_lock_path()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ));
}

/// Take every file of `plan`, in order, each with its own settings.
fn take(plan: &[(OsString, Settings)]) -> Outcome {
    let shown = |i: usize| Path::new(&plan[i].0).display().to_string();
    let files: Vec<OsString> = plan.iter().map(|(f, _)| f.clone()).collect();
    let set = match LockSet::in_order(&files) {
        Ok(set) => set,
        Err(e) => {
            let bad = files
                .iter()
                .position(|f| LockPath::new(f).is_err())
                .unwrap_or(0);
            say(&format!("Try praying, giving up on \"{}\"", shown(bad)));
            return Outcome::Failed(e);
        }
    };
    // procmail's timing, exactly: no early wake.
    let signals = match pipeline::catch(false) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e),
    };
    // One waiter per file, with the settings in force when it was named.
    let waiters: Vec<Waiter> = plan.iter().map(|(_, s)| waiter(s)).collect();
    let taken = set.take_each(|i, lock| {
        let waiter = &waiters[i];
        let forced = |e: Event| {
            if let Event::Breaking { .. } = e {
                say(&format!("Forcing lock on \"{}\"", shown(i)));
                // A signal cuts the suspend short, and then nothing is
                // removed (the wait sees it pending, before the break).
                signals.wait(plan[i].1.suspend);
            }
        };
        let protocol = crate::dotlock::DotLock::new(lock, b"0", 0o444)?
            .directory_is_busy()
            .empty_if_full();
        waiter.wait_for(&protocol, &signals, forced)
    });
    match taken {
        Ok(held) => {
            held.into_iter().for_each(Held::keep);
            Outcome::Success
        }
        Err((i, Stop::Signal(sig))) => {
            say(&format!("Signal received, giving up on \"{}\"", shown(i)));
            Outcome::Signal(sig)
        }
        Err((i, Stop::Error(e @ (Error::Busy { .. } | Error::TimedOut { .. })))) => {
            say(&format!("Sorry, giving up on \"{}\"", shown(i)));
            Outcome::Failed(e)
        }
        Err((i, Stop::Error(e))) => {
            say(&format!("Try praying, giving up on \"{}\"", shown(i)));
            Outcome::Failed(e)
        }
    }
}

/// How to wait for a file with `settings`: quietly, at a constant pace,
/// breaking locks older than `-l`.
fn waiter(settings: &Settings) -> Waiter {
    Waiter {
        out: Reporter {
            prog: "lockfile",
            quiet: crate::cli::report::Quiet::All,
            verbose: false,
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
        wake_on: None,
        watch_parent: false,
        live: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn options_apply_to_the_files_after_them() {
        let p = parse(&args(&["a", "-2", "-r", "3", "b", "-l10", "-s", "4", "c"]));
        let d = Settings::default();
        let b = Settings {
            sleeptime: secs(2),
            retries: Some(3),
            ..d
        };
        let c = Settings {
            locktimeout: Some(10),
            suspend: secs(4),
            ..b
        };
        assert_eq!(
            p.steps,
            [
                Step::Lock("a".into(), d),
                Step::Lock("b".into(), b),
                Step::Lock("c".into(), c)
            ]
        );
        assert_eq!((p.invert, p.halt), (false, None));
    }

    #[test]
    fn defaults_negative_retries_and_zero_timeout() {
        let d = Settings::default();
        assert_eq!(
            (d.sleeptime, d.retries, d.locktimeout, d.suspend),
            (secs(8), None, None, secs(16))
        );
        let p = parse(&args(&["-r", "-1", "-l", "0", "f"]));
        assert_eq!(p.steps, [Step::Lock("f".into(), d)]);
    }

    #[test]
    fn mailbox_steps_and_inversion_keep_their_places() {
        let p = parse(&args(&["-mu", "-!", "-5", "-ml", "x"]));
        let five = Settings {
            sleeptime: secs(5),
            ..Settings::default()
        };
        assert_eq!(
            p.steps,
            [
                Step::UnlockMailbox,
                Step::LockMailbox(five),
                Step::Lock("x".into(), five)
            ]
        );
        assert!(p.invert);
    }

    #[test]
    fn parsing_halts_where_the_line_goes_wrong() {
        let cases: &[(&[&str], Halt, usize)] = &[
            (&["a", "-v", "b"], Halt::Version, 1),
            (&["a", "-", "b"], Halt::Usage, 1),
            (&["-x"], Halt::Usage, 0),
            (&["-m"], Halt::Usage, 0),
            (&["-r"], Halt::Usage, 0),
            (&["-r", "x"], Halt::Usage, 0),
            (&["-5x"], Halt::Usage, 0),
            (
                &["-mu", "-s", "9223372036854775807"],
                Halt::TooLarge(9223372036854775807),
                1,
            ),
            (
                &["-10000000000000000000"],
                Halt::TooLarge(10000000000000000000),
                0,
            ),
            (&["-l", "3153600001"], Halt::TooLarge(3153600001), 0),
        ];
        for (line, halt, steps) in cases {
            let p = parse(&args(line));
            assert_eq!(p.halt, Some(*halt), "{line:?}");
            assert_eq!(p.steps.len(), *steps, "{line:?}");
        }
        // The longest accepted time is not too large.
        assert_eq!(parse(&args(&["-l", "3153600000", "f"])).halt, None);
    }
}
