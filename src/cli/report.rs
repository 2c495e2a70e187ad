//! What the commands say: `PROG: message` lines ([`Reporter`]), the
//! `--verbose` lines while waiting, who holds a lock and why it is stale.

use std::path::Path;
use std::time::Duration;

use crate::acquire::Event;
use crate::cli::Outcome;
use crate::inspect::{Holder, held_for};
use crate::record::Record;

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

    /// Say a usage error.
    pub fn usage_error(&self, msg: impl std::fmt::Display) -> Outcome {
        self.usage(msg);
        Outcome::Usage
    }

    /// Say a bad option value.
    pub fn bad_value(&self, msg: impl std::fmt::Display) -> Outcome {
        self.error(msg);
        Outcome::BadValue
    }

    /// Say why taking a lock failed (giving up only with `--verbose`:
    /// as the old tools, `dotlock -r 0` says nothing unless asked).
    pub fn failed(&self, e: crate::Error) -> Outcome {
        match e {
            crate::Error::Busy { .. } | crate::Error::TimedOut { .. } => self.info(&e),
            _ => self.error(&e),
        }
        Outcome::Failed(e)
    }
}

/// One line on stderr. A failed write (closed stderr, a full disk) is
/// ignored rather than turned into a panic: the exit status still tells.
pub fn say(prog: &str, msg: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{prog}: {msg}");
}

/// A `--verbose` reporter of waiting events for the lock at `path`.
pub fn events(out: Reporter, path: &Path) -> impl FnMut(Event) + '_ {
    move |event| match event {
        Event::Waiting { holder, age } => out.info(format_args!(
            "waiting for {}: held by {} for {}",
            path.display(),
            holder.describe(),
            human(held_for(&holder, age).unwrap_or_default())
        )),
        Event::Breaking { holder, verdict } => out.info(format_args!(
            "{}: removing stale lock of {} ({})",
            path.display(),
            holder.describe(),
            verdict
        )),
        Event::Pausing { .. } => {}
    }
}

/// A duration as people read it: `42s`, `4m12s`, `2h03m`, `3d04h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `held by pid P (cmd) on HOST for 4m12s`, or for readers together
/// `held shared by 2 readers for 4m12s`.
pub fn held_by_holder(h: &Holder) -> String {
    if h.record.shared {
        return format!(
            "{} for {}",
            h.verdict,
            human(h.held_for.unwrap_or_default())
        );
    }
    held_by(&h.record, h.held_for)
}

/// `held by pid P (cmd) on HOST for 4m12s`: who holds a lock held `held_for`.
pub fn held_by(record: &Record, held_for: Option<Duration>) -> String {
    format!(
        "held by {} for {}",
        record.describe(),
        human(held_for.unwrap_or_default())
    )
}

/// Say that a wait gave up, naming the holder where it can be seen:
/// `PROG: PATH: busy: held by pid P (cmd) on HOST for 4m12s`.
pub fn gave_up(out: &Reporter, path: &Path, holder: Option<Holder>, e: crate::Error) -> Outcome {
    match holder {
        Some(h) => out.error(format_args!(
            "{}: busy: {}{}",
            path.display(),
            held_by_holder(&h),
            planted(&h, path)
        )),
        None => out.error(&e),
    }
    Outcome::Failed(e)
}

/// For a lock held by readers: the names planted where shares and wants
/// go, which count for nothing (said once, in the give-up line).
fn planted(h: &Holder, path: &Path) -> String {
    if !h.record.shared {
        return String::new();
    }
    let found = crate::path::LockPath::new(path)
        .and_then(|l| crate::shared::foreign_members(&l))
        .unwrap_or_default();
    match found.first() {
        None => String::new(),
        Some(first) => format!(
            "; {}{} not a regular file, not counted",
            first.path().display(),
            match found.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        let s = Duration::from_secs;
        assert_eq!(human(s(0)), "0s");
        assert_eq!(human(s(59)), "59s");
        assert_eq!(human(s(60)), "1m00s");
        assert_eq!(human(s(252)), "4m12s");
        assert_eq!(human(s(3599)), "59m59s");
        assert_eq!(human(s(7380)), "2h03m");
        assert_eq!(human(s(86_400 + 4 * 3600 + 59)), "1d04h");
    }
}
