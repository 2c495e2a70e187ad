//! What the commands say: `PROG: message` lines ([`Reporter`]), the
//! `--verbose` lines while waiting, why a lock is stale, and `--status`.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use crate::acquire::Event;
use crate::cli::Outcome;
use crate::judge::{Reason, Verdict};
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
    pub fn usage_error(&self, msg: &str) -> Outcome {
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
            "waiting for {}: held by {} for {}s",
            path.display(),
            holder.describe(),
            age.unwrap_or_default().as_secs()
        )),
        Event::Breaking { holder, verdict } => out.info(format_args!(
            "{}: removing stale lock of {} ({})",
            path.display(),
            holder.describe(),
            why(verdict)
        )),
    }
}

/// Why a lock is valid or stale, in words.
pub fn why(verdict: Verdict) -> String {
    let reason = match verdict {
        Verdict::Valid(r) | Verdict::Stale(r) => r,
    };
    match reason {
        Reason::Alive { pid } => format!("pid {pid} is alive"),
        Reason::Dead { pid } => format!("pid {pid} is gone"),
        Reason::PidReused { pid } => format!("pid {pid} now belongs to another process"),
        Reason::OtherBoot => "written before this host last booted".into(),
        Reason::Fresh { age } => format!("{}s old, younger than the stale age", age.as_secs()),
        Reason::Aged { age } => format!("{}s old, past the stale age", age.as_secs()),
    }
}

/// What `--status` knows of a held lock.
pub struct Holder {
    pub record: Record,
    pub age: Option<Duration>,
    pub verdict: Verdict,
}

/// `--status`: print the holder in readable form; success if held.
pub fn status(path: &Path, holder: Option<Holder>) -> Outcome {
    let mut out = io::stdout().lock();
    let Some(h) = holder else {
        let _ = writeln!(out, "lock:    {}\nstate:   free", path.display());
        return Outcome::NoLock;
    };
    let unknown = || "-".to_string();
    let state = if h.verdict.is_stale() {
        "stale"
    } else {
        "held"
    };
    let alive = match h.verdict {
        Verdict::Valid(Reason::Alive { .. }) => "yes".to_string(),
        Verdict::Stale(Reason::Dead { .. }) => "no".to_string(),
        Verdict::Stale(Reason::PidReused { pid }) => {
            format!("no (pid {pid} now belongs to another process)")
        }
        Verdict::Stale(Reason::OtherBoot) => "no (written before the last boot)".into(),
        _ if h.record.pid.is_none() => "unknown (no pid recorded)".into(),
        _ => "unknown (cannot be checked from this host)".into(),
    };
    let _ = writeln!(
        out,
        "lock:    {}\nstate:   {state}\npid:     {}\ncommand: {}\nhost:    {}\nage:     {}\nalive:   {alive}\nreason:  {}",
        path.display(),
        h.record.pid.map_or_else(unknown, |p| p.to_string()),
        h.record.cmd.clone().unwrap_or_else(unknown),
        h.record.host.clone().unwrap_or_else(unknown),
        h.age.map_or_else(unknown, |a| format!("{}s", a.as_secs())),
        why(h.verdict),
    );
    if h.verdict.is_stale() {
        Outcome::NoLock
    } else {
        Outcome::Success
    }
}
