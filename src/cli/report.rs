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
    pub quiet: Quiet,
    pub verbose: bool,
}

/// What `-q` silences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// Nothing: no `-q`.
    No,
    /// The native `-q`: only the "busy" line of a wait that gave up (and
    /// the live wait line); every other failure still says its line.
    Busy,
    /// The ancestors' `-q` (the personalities): every message.
    All,
}

impl Quiet {
    /// The native meaning of `-q` given or not.
    pub fn native(q: bool) -> Quiet {
        match q {
            true => Quiet::Busy,
            false => Quiet::No,
        }
    }

    /// The ancestors' meaning of `-q` given or not.
    pub fn ancestors(q: bool) -> Quiet {
        match q {
            true => Quiet::All,
            false => Quiet::No,
        }
    }
}

impl Reporter {
    /// An error or warning (suppressed only by the ancestors' `-q`).
    pub fn error(&self, msg: impl std::fmt::Display) {
        if self.quiet != Quiet::All {
            say(self.prog, msg);
        }
    }

    /// That a wait gave up, the lock being busy (suppressed by any `-q`).
    pub fn busy(&self, msg: impl std::fmt::Display) {
        if self.quiet == Quiet::No {
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

/// One line on stderr, `PROG: message`, in one write(2).
pub fn say(prog: &str, msg: impl std::fmt::Display) {
    to_stderr(&format!("{prog}: {msg}\n"));
}

/// `text` on stderr in one write(2), so that lines written by several
/// processes into one pipe never interleave (stderr is unbuffered: a
/// formatted write would be one call per piece). A failed write (closed
/// stderr, a full disk) is ignored rather than turned into a panic: the
/// exit status still tells.
pub fn to_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Write `text` to stdout in one write(2) (a slot or token taken).
pub fn to_stdout(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
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
/// `held shared by 2 readers for 4m12s`; for a caller that has exited
/// (`dotlock L` without `-p`), that it has, and when the lock ages out.
pub fn held_by_holder(h: &Holder) -> String {
    if h.record.shared {
        return format!(
            "{} for {}",
            h.verdict,
            human(h.held_for.unwrap_or_default())
        );
    }
    let exited = crate::inspect::caller_alive(&h.record) == Some(false);
    match exited && !h.verdict.is_stale() {
        true => format!("{}{}", taken_by_exited(&h.record), kept_until(h)),
        false => held_by_known(&h.record, h.held_for, exited),
    }
}

/// `held by pid P (cmd) on HOST for 4m12s`: who holds a lock held
/// `held_for`; `taken by pid P (cmd), which has exited, on HOST` where
/// the lock names only the caller that took it, and it has exited.
pub fn held_by(record: &Record, held_for: Option<Duration>) -> String {
    let exited = crate::inspect::caller_alive(record) == Some(false);
    held_by_known(record, held_for, exited)
}

/// [`held_by`], whether the recorded caller has exited already told
/// (one look at it per message).
fn held_by_known(record: &Record, held_for: Option<Duration>, exited: bool) -> String {
    if exited {
        return taken_by_exited(record);
    }
    format!(
        "held by {} for {}",
        record.describe(),
        human(held_for.unwrap_or_default())
    )
}

/// `taken by pid P (cmd), which has exited, on HOST`.
fn taken_by_exited(record: &Record) -> String {
    let pid = record.taker().map(|(p, _)| p).unwrap_or_default();
    let cmd = record
        .cmd
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let host = record
        .host
        .as_ref()
        .map(|h| format!(" on {h}"))
        .unwrap_or_default();
    format!("taken by pid {pid}{cmd}{host}, which has exited")
}

/// `; without -p it is kept until it ages out at TIME`: what becomes of a
/// lock whose caller has exited.
pub fn kept_until(h: &Holder) -> String {
    match h.ages_out_at() {
        Some(t) => format!("; without -p it is kept until it ages out at {}", utc(t)),
        None => "; without -p it is kept until it ages out".to_string(),
    }
}

/// A time as `2026-12-06 21:45:12 UTC`.
pub fn utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Say that a wait gave up, naming the holder where it can be seen:
/// `PROG: PATH: busy: held by pid P (cmd) on HOST for 4m12s`.
pub fn gave_up(out: &Reporter, path: &Path, holder: Option<Holder>, e: crate::Error) -> Outcome {
    match holder {
        Some(h) => out.busy(format_args!(
            "{}: busy: {}{}",
            path.display(),
            held_by_holder(&h),
            planted(&h, path)
        )),
        None => out.busy(&e),
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

    #[test]
    fn times_in_utc() {
        let at = |secs| utc(std::time::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(at(1_796_593_512), "2026-12-06 21:45:12 UTC");
        assert_eq!(at(4_107_542_399), "2100-02-28 23:59:59 UTC");
    }
}
