//! The command-line layer: clap definitions and `run()` for each command.
//! `main` in `src/bin/` only calls into here, so man pages, completions and
//! tests all use the same definitions.

pub mod dotlock;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

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
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{s}: duration too large"))
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
