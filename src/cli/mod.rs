//! The command-line layer: clap definitions and `run()` for each command.
//! `main` in `src/bin/` only calls into here, so man pages, completions and
//! tests all use the same definitions.

pub mod dotlock;
pub mod filelock;
pub mod hold;
pub mod lockdir;
pub mod report;

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use crate::Error;
use crate::exit::ExitCode;
use crate::judge::{self, Policy};
use crate::wait::{Patience, Schedule};

/// How a command ends: with a status, or by re-raising a signal.
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

/// The programs' entry: drop the setgid group before anything else, run
/// `main` on the arguments, and end the process as it says.
pub fn enter(main: fn(Vec<OsString>) -> Exit) -> ! {
    crate::mailbox::drop_privileges();
    finish(main(std::env::args_os().collect()))
}

/// Define a program's C `main`, which calls [`enter`] with `$main`. The
/// program must say `#![no_main]`.
///
/// The programs enter at the C `main`: the Rust runtime's own start-up
/// (reading `/proc/self/maps` for a stack guard, an alternate signal stack,
/// SIGPIPE ignored) is about twenty system calls that a tool started once
/// per lock does not need, and SIGPIPE stays as the caller left it.
#[macro_export]
macro_rules! c_main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn main(
            _argc: ::std::ffi::c_int,
            _argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            $crate::cli::enter($main)
        }
    };
}

/// End the process with `exit`.
pub fn finish(exit: Exit) -> ! {
    match exit {
        Exit::Code(code) => std::process::exit(code),
        Exit::Signal(sig) => crate::signals::die_by(sig),
    }
}

/// Report an error and map it to the exit status of this personality.
pub fn fail(out: &Reporter, personality: Personality, e: Error) -> Exit {
    let code = match (&e, personality) {
        // liblockfile 1.17 reports a missing or non-directory parent as 5.
        (Error::NoDirectory { .. } | Error::NotADirectory { .. }, Personality::Dotlockfile) => {
            ExitCode::Error
        }
        _ => e.exit_code(),
    };
    match e {
        // Giving up is the normal outcome of `-r 0` for dotlock; as the old
        // tools, it says nothing unless asked.
        Error::Busy { .. } | Error::TimedOut { .. } if !out.say_busy => out.info(&e),
        _ => out.error(&e),
    }
    code.into()
}

/// Options for waiting, shared by the lock commands.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Retries after the first attempt [default: 5]; -1 for forever
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

    /// Quiet: no error messages
    #[arg(short = 'q')]
    pub quiet: bool,

    /// Counting semaphore: take any free one of N locks, LOCK.1 ... LOCK.N;
    /// the slot is printed, or given to the command as $DOTLOCK_SLOT
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub slots: Option<String>,
}

/// What every lock command sets up first from its waiting options.
#[derive(Debug, Clone, Copy)]
pub struct Common {
    pub out: Reporter,
    pub patience: Patience,
    pub stale_after: Duration,
    pub slots: Option<usize>,
}

impl WaitArgs {
    /// The reporter for `prog` and the parsed waiting options, or the exit
    /// for a bad value (5, with one line on stderr).
    pub fn common(&self, prog: &'static str, say_busy: bool) -> Result<Common, Exit> {
        let out = Reporter {
            prog,
            quiet: self.quiet,
            verbose: self.verbose,
            say_busy,
        };
        let parsed = self
            .parse()
            .and_then(|(patience, stale_after)| Ok((patience, stale_after, self.slots()?)));
        match parsed {
            Ok((patience, stale_after, slots)) => Ok(Common {
                out,
                patience,
                stale_after,
                slots,
            }),
            Err(msg) => Err(out.bad_value(msg)),
        }
    }

    /// The patience and stale age these options ask for, or the message
    /// for a bad value (exit 5).
    pub fn parse(&self) -> Result<(Patience, Duration), String> {
        let retries = match self.retries.as_deref().map(parse_retries) {
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

    /// `--slots N`: a whole number from 1 to 10000, or the message for a
    /// bad value (exit 5).
    pub fn slots(&self) -> Result<Option<usize>, String> {
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

    /// The judging policy, with `-p`'s trust in a bare pid.
    pub fn policy(stale_after: Duration, trust_bare_pid: bool) -> Policy {
        Policy {
            stale_after,
            trust_bare_pid,
        }
    }
}

/// Which tool we are: chosen by the name we were invoked as (`argv[0]`),
/// so that `dotlockfile` and `lockfile` symlinks behave as the old tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// Our own commands: `dotlock`, `lockdir`, `filelock`.
    Native,
    /// liblockfile 1.17's `dotlockfile`, without its known bugs.
    Dotlockfile,
}

impl Personality {
    /// The personality for a program invoked as `argv0`.
    pub fn from_argv0(argv0: Option<&OsStr>) -> Personality {
        match argv0.map(Path::new).and_then(Path::file_name) {
            Some(name) if name == "dotlockfile" => Personality::Dotlockfile,
            _ => Personality::Native,
        }
    }
}

/// Prints `PROG: message` lines on stderr, unless quiet.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    pub prog: &'static str,
    pub quiet: bool,
    pub verbose: bool,
    /// Say why we gave up on a busy lock even without `--verbose`.
    pub say_busy: bool,
}

impl Reporter {
    /// An error or warning (suppressed by `-q`).
    pub fn error(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            say(self.prog, msg);
        }
    }

    /// A `--verbose` line.
    pub fn info(&self, msg: impl std::fmt::Display) {
        if self.verbose {
            say(self.prog, msg);
        }
    }

    /// A usage error: always said, whatever `-q`.
    pub fn usage(&self, msg: impl std::fmt::Display) {
        say(self.prog, format_args!("{msg}; try '{} --help'", self.prog));
    }

    /// Say a usage error; exit 1.
    pub fn usage_exit(&self, msg: &str) -> Exit {
        self.usage(msg);
        ExitCode::Failure.into()
    }

    /// Say a bad option value; exit 5.
    pub fn bad_value(&self, msg: impl std::fmt::Display) -> Exit {
        self.error(msg);
        ExitCode::Error.into()
    }
}

/// One line on stderr. A failed write (closed stderr, a full disk) is
/// ignored rather than turned into a panic: the exit status still tells.
pub fn say(prog: &str, msg: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{prog}: {msg}");
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

/// The longest duration any option takes: 100 years. Longer ones would
/// overflow the clocks they are added to.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parse `argv` with `cmd` into `A`, or the exit for help, version or a
/// usage error (see [`clap_failure`]).
pub fn parse<A: clap::FromArgMatches>(
    cmd: clap::Command,
    prog: &str,
    argv: Vec<std::ffi::OsString>,
) -> Result<A, Exit> {
    cmd.try_get_matches_from(argv)
        .and_then(|m| A::from_arg_matches(&m))
        .map_err(|e| clap_failure(prog, &e))
}

/// A failed parse: help and version go to stdout with exit 0; errors are
/// one line on stderr with exit 1 (liblockfile's usage status).
pub fn clap_failure(prog: &str, e: &clap::Error) -> Exit {
    use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
    if matches!(e.kind(), DisplayHelp | DisplayVersion) {
        let _ = e.print();
        return Exit::Code(0);
    }
    say(
        prog,
        format_args!("{}; try '{prog} --help'", clap_one_line(e)),
    );
    ExitCode::Failure.into()
}

/// The first line of a clap error, without its `error: ` prefix.
pub fn clap_one_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn personality_from_name() {
        use std::ffi::OsStr;
        let p = |s: &str| Personality::from_argv0(Some(OsStr::new(s)));
        assert_eq!(p("dotlock"), Personality::Native);
        assert_eq!(p("/usr/bin/dotlockfile"), Personality::Dotlockfile);
        assert_eq!(p("dotlockfile"), Personality::Dotlockfile);
        assert_eq!(Personality::from_argv0(None), Personality::Native);
    }
}
