//! What the commands say about a lock's holder: the `--verbose` lines while
//! waiting, why a lock is stale, and `--status`.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use crate::acquire::Event;
use crate::cli::{Exit, Reporter};
use crate::exit::ExitCode;
use crate::judge::{Reason, Verdict};
use crate::record::Record;

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

/// `--status`: print the holder in readable form; exit 0 if held, 1 if
/// free or stale.
pub fn status(path: &Path, holder: Option<Holder>) -> Exit {
    let mut out = io::stdout().lock();
    let Some(h) = holder else {
        let _ = writeln!(out, "lock:    {}\nstate:   free", path.display());
        return ExitCode::Failure.into();
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
        ExitCode::Failure.into()
    } else {
        ExitCode::Success.into()
    }
}
