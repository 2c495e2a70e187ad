//! The options the lock commands share, each defined once — the action
//! flags ([`ActionArgs`]), the waiting options ([`WaitArgs`]), `--slots`
//! ([`SlotArgs`]) — and the numbers and durations they take.

use std::ffi::OsString;
use std::time::Duration;

use clap::parser::ValueSource;

use crate::cli::report::Quiet;
use crate::cli::{Outcome, Reporter};
use crate::judge::{self, Policy};
use crate::wait::{Patience, Schedule};

/// The action flags of every program (`dotlock` and `lockdir` add `-t`,
/// [`TouchArgs`]; `lockdir` `--trap`).
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct ActionArgs {
    /// Lock (the default action)
    #[arg(short = 'l')]
    pub lock: bool,

    /// Unlock: remove the lock if it is the caller's (or stale, or
    /// nobody's); a missing lock is success
    #[arg(short = 'u')]
    pub unlock: bool,

    /// With -u: remove the lock whoever holds it
    #[arg(long)]
    pub force: bool,

    /// Check: exit 0 if a valid lock exists, else 1
    #[arg(short = 'c')]
    pub check: bool,

    /// Status: describe the lock's holder (pid, command, host, held for,
    /// alive); exit 0 if held, 1 if free, 9 if stale
    #[arg(long)]
    pub status: bool,

    /// With --status: one JSON object per lock or slot, one per line (with
    /// --list, --check: per lock, per finding)
    #[arg(long)]
    pub json: bool,

    /// List every lock in the directory named instead of a lock: its kind
    /// (dot-lock, lock directory, slot, share, want, gate, break lock,
    /// debris), state and holder, each lock's members under it
    #[arg(long)]
    pub list: bool,

    /// With --list: only stale locks and debris
    #[arg(long)]
    pub stale: bool,

    /// With --list: remove the stale locks and debris that are ours to
    /// remove (each only if still the one judged), saying each
    #[arg(long)]
    pub clean: bool,

    /// Diagnose the directory named instead of a lock: is it safe to lock
    /// in (filesystem, link(2), clock, identity, permissions, space)? Exit
    /// 10 if anything is unsafe
    #[arg(long = "check")]
    pub diagnose: bool,
}

/// `-t`, of the commands that have it (`dotlock`, `lockdir`).
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct TouchArgs {
    /// Touch: refresh the lock's timestamp (with --shared: the caller's
    /// share)
    #[arg(short = 't')]
    pub touch: bool,
}

/// Options for waiting, shared by the lock commands.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct WaitArgs {
    /// Retries after the first attempt [default: 5, that is 6 attempts over
    /// 75 s, then exit 4]; -1 for forever, 0 for one attempt
    #[arg(short = 'r', value_name = "RETRIES", allow_hyphen_values = true)]
    pub retries: Option<String>,

    /// Wait SECONDS between attempts instead of 5, 10, ... 60 s (0: no wait)
    #[arg(short = 'i', value_name = "SECONDS", allow_hyphen_values = true)]
    pub interval: Option<String>,

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

    /// Quiet: no "busy" line when the lock cannot be had (other failures
    /// still say theirs)
    #[arg(short = 'q')]
    pub quiet: bool,

    /// With a COMMAND: exit N when the lock cannot be had (retries or
    /// --timeout spent) [default: 4]; -E 0 makes "still running from last
    /// time" a success for cron
    #[arg(
        short = 'E',
        long = "conflict-exit-code",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub conflict_exit_code: Option<String>,

    /// When the lock is found lost at a keep-alive touch: with a COMMAND,
    /// warn (the default), or also send the command SIGTERM (term) or
    /// SIGKILL (kill), which then ends by that signal; held for a shell,
    /// its keeper sends the shell that signal (term, kill) and stops
    #[arg(long, value_name = "ACTION", value_enum)]
    pub on_lost: Option<OnLost>,

    /// Fencing token: once the lock is taken, claim a number larger than
    /// every earlier holder's (in LOCK.fence beside it), record it, and
    /// print it (with --slots: "SLOT TOKEN"), or give it to the COMMAND as
    /// $DOTLOCK_TOKEN
    #[arg(long)]
    pub fence: bool,

    /// Held for a shell (no COMMAND): leave no keeper. The lock is then
    /// never touched: another machine breaks it once --stale-after has
    /// passed, and waits that long after the shell died
    #[arg(long)]
    pub no_keeper: bool,
}

/// `-E` given without a command to run (`running`: a command is given,
/// and no `--trap`) is a usage error: a busy lock would exit with the
/// status of success, and the caller's work would run unlocked.
pub fn conflict_needs_command(
    out: &Reporter,
    conflict: Option<u8>,
    running: bool,
) -> Result<(), Outcome> {
    match conflict.is_some() && !running {
        true => Err(out.usage_error(
            "-E/--conflict-exit-code goes with a COMMAND only: without one, a busy lock's status could let the caller's work run unlocked",
        )),
        false => Ok(()),
    }
}

/// `--fence` given where no lock is taken for a holder of its own (an
/// action, a reader of a shared lock) is a usage error: no token could
/// mean anything there.
pub fn fence_needs_taking(out: &Reporter, fence: bool, taking: bool) -> Result<(), Outcome> {
    match fence && !taking {
        true => Err(out.usage_error(
            "--fence goes with taking a lock, not with -u, -t, -c, --status or a reader's --shared: a token belongs to one holder",
        )),
        false => Ok(()),
    }
}

/// `--slots N` (`dotlock`, `lockdir`).
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct SlotArgs {
    /// Counting semaphore: take any free one of N locks, LOCK.1 ... LOCK.N;
    /// the slot is printed, or given to the command as $DOTLOCK_SLOT
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub slots: Option<String>,
}

/// What to do when a lock is lost while its holder runs: a command run
/// under it, or the shell a keeper keeps it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnLost {
    /// Say so on stderr, at once.
    #[default]
    Warn,
    /// Say so, and send the command SIGTERM.
    Term,
    /// Say so, and send the command SIGKILL.
    Kill,
}

/// What the waiting options say, parsed and checked.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    pub out: Reporter,
    pub patience: Patience,
    pub stale_after: Duration,
    pub slots: Option<usize>,
    /// `-E N`: the status of a lock that could not be had.
    pub conflict: Option<u8>,
    /// `--fence`: claim a fencing token once the lock is taken.
    pub fence: bool,
}

impl WaitArgs {
    /// The reporter for `prog` and the parsed waiting options (with
    /// `slots`), or [`Outcome::BadValue`] (said in one line on stderr).
    pub fn checked(&self, prog: &'static str, slots: &SlotArgs) -> Result<Waiting, Outcome> {
        let out = Reporter {
            prog,
            quiet: Quiet::native(self.quiet),
            verbose: self.verbose,
        };
        let parsed = self.parse().and_then(|(patience, stale_after)| {
            Ok((patience, stale_after, slots.parse()?, self.conflict_code()?))
        });
        match parsed {
            Ok((patience, stale_after, slots, conflict)) => Ok(Waiting {
                out,
                patience,
                stale_after,
                slots,
                conflict,
                fence: self.fence,
            }),
            Err(msg) => Err(out.bad_value(msg)),
        }
    }

    /// The patience and stale age these options ask for, or the message
    /// for a bad value (exit 5).
    pub fn parse(&self) -> Result<(Patience, Duration), String> {
        // --timeout alone bounds the wait by time: retries are unbounded.
        let retries = match self.retries.as_deref().map(parse_retries) {
            None if self.timeout.is_some() => None,
            None => Some(5),
            Some(r) => r?,
        };
        let schedule = match self.interval.as_deref().map(parse_duration) {
            None => Schedule::Backoff,
            Some(Ok(d)) => Schedule::Fixed(d),
            Some(Err(msg)) => return Err(format!("-i {msg}")),
        };
        let timeout = match self.timeout.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(msg)) => return Err(format!("--timeout {msg}")),
        };
        let stale_after = match self.stale_after.as_deref().map(parse_duration) {
            None => judge::DEFAULT_STALE_AFTER,
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => return Err("--stale-after 0: must be more than zero".into()),
            Some(Err(msg)) => return Err(format!("--stale-after {msg}")),
        };
        let patience = Patience {
            schedule,
            retries,
            timeout,
        };
        Ok((patience, stale_after))
    }

    /// `-E N`: a status from 0 to 255, or the message for a bad value.
    pub fn conflict_code(&self) -> Result<Option<u8>, String> {
        let Some(s) = self.conflict_exit_code.as_deref() else {
            return Ok(None);
        };
        match s.parse::<u8>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(format!(
                "-E {s}: not an exit status (a whole number from 0 to 255)"
            )),
        }
    }

    /// The judging policy, with `-p`'s trust in a bare pid.
    pub fn policy(stale_after: Duration, trust_bare_pid: bool) -> Policy {
        Policy {
            stale_after,
            trust_bare_pid,
        }
    }
}

impl SlotArgs {
    /// `--slots N`: a whole number from 1 to 10000, or the message for a
    /// bad value (exit 5).
    pub fn parse(&self) -> Result<Option<usize>, String> {
        let Some(s) = self.slots.as_deref() else {
            return Ok(None);
        };
        match s.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) && s.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(n))
            }
            _ => Err(format!(
                "--slots {s}: must be a whole number from 1 to 10000"
            )),
        }
    }
}

/// The ids of the options of a group (`WaitArgs`, `SlotArgs`): what
/// [`given`] passes on.
pub fn ids<A: clap::Args>() -> Vec<String> {
    A::augment_args(clap::Command::new("group"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// The options among `ids` that were given on the command line, as
/// arguments again (`--timeout 5`, `-q`), in the order `cmd` defines them:
/// how `lockdir --trap` passes its waiting options to the `lockdir` its
/// code runs, from the one definition of each.
pub fn given(cmd: &clap::Command, matches: &clap::ArgMatches, ids: &[String]) -> Vec<OsString> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if !ids.iter().any(|i| i == id)
            || matches.value_source(id) != Some(ValueSource::CommandLine)
        {
            continue;
        }
        let flag = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => continue,
        };
        let takes_value = arg.get_action().takes_values();
        match matches.get_raw(id) {
            Some(values) if takes_value => {
                for value in values {
                    out.push(OsString::from(&flag));
                    out.push(value.to_os_string());
                }
            }
            _ => out.push(OsString::from(&flag)),
        }
    }
    out
}

/// `-r N`: a whole number of retries, or `-1` for forever (`None`).
pub fn parse_retries(s: &str) -> Result<Option<u64>, String> {
    if s == "-1" {
        return Ok(None);
    }
    if !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = s.parse::<u32>()
    {
        return Ok(Some(u64::from(n)));
    }
    Err(format!(
        "-r {s}: invalid argument (a whole number of retries, or -1 for forever)"
    ))
}

/// A duration in seconds, fractions allowed, with an optional unit suffix
/// `ms`, `s`, `m` or `h`: `5`, `0.25`, `1.5s`, `200ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let plain = !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && num.bytes().filter(|&b| b == b'.').count() <= 1
        && num != ".";
    let value: f64 = if plain {
        num.parse().map_err(|_| ())
    } else {
        Err(())
    }
    .map_err(|()| format!("{s}: not a duration (seconds >= 0, e.g. 5, 0.5, 200ms, 2m)"))?;
    match Duration::try_from_secs_f64(value * scale) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!(
            "{s}: too large (at most {} s, 100 years)",
            MAX_DURATION.as_secs()
        )),
    }
}

/// The one action that `flags` choose, `default` where none is set;
/// `None` where several are.
pub fn one_action<A: Copy>(default: A, flags: &[(bool, A)]) -> Option<A> {
    let mut chosen = flags.iter().filter(|(set, _)| *set).map(|&(_, a)| a);
    match (chosen.next(), chosen.next()) {
        (None, _) => Some(default),
        (Some(a), None) => Some(a),
        (Some(_), Some(_)) => None,
    }
}

/// The longest duration any option takes: 100 years. Longer ones would
/// overflow the clocks they are added to.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_action_of_the_flags() {
        let flags = |a, b| [(a, 'a'), (b, 'b')];
        assert_eq!(one_action('l', &flags(false, false)), Some('l'));
        assert_eq!(one_action('l', &flags(true, false)), Some('a'));
        assert_eq!(one_action('l', &flags(false, true)), Some('b'));
        assert_eq!(one_action('l', &flags(true, true)), None);
    }

    #[test]
    fn retries() {
        assert_eq!(parse_retries("0"), Ok(Some(0)));
        assert_eq!(parse_retries("12"), Ok(Some(12)));
        assert_eq!(parse_retries("-1"), Ok(None));
        for bad in [
            "",
            "-5",
            "-0",
            "x",
            "3x",
            " 3",
            "+3",
            "99999999999999999999",
            "1.5",
        ] {
            assert!(parse_retries(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("0"), Ok(ms(0)));
        assert_eq!(parse_duration("5"), Ok(ms(5000)));
        assert_eq!(parse_duration("0.25"), Ok(ms(250)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("200ms"), Ok(ms(200)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("3153600000"), Ok(MAX_DURATION));
        for bad in [
            "",
            "-1",
            "abc",
            "1e3",
            "1..2",
            ".",
            "inf",
            "NaN",
            "5x",
            "1e400",
            "99999999999999999999999",
            "10000000000000000000",
            "3153600001",
            "52560001m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
