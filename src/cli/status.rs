//! `--status [--json]`: who holds each lock (or slot), since when, last
//! touched when, alive or not, and why it is stale; for people, or as one
//! JSON object per lock, one per line.
//!
//! The status says 0 if any lock is held, else 9 if any is stale, else 1.
//!
//! JSON strings are UTF-8. A lock path that is not (Linux paths are bytes)
//! is given as `lock` with each byte that is not UTF-8 replaced by U+FFFD,
//! and losslessly as `lock_bytes`, the path's bytes as an array of
//! numbers; `lock_bytes` is there only for such a path. Likewise
//! `args_cut: true` is there only when the recorded arguments were cut
//! short (at 160 bytes, when the lock was taken).

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::report::{self, human};
use crate::cli::{Outcome, Reporter};
use crate::inspect::Holder;
use crate::judge::{Reason, Verdict};
use crate::path::LockPath;
use crate::record;

/// The keys of every JSON object, in order (SPEC §6).
pub const KEYS: [&str; 14] = [
    "lock",
    "state",
    "pid",
    "host",
    "command",
    "args",
    "held_for_s",
    "touched_s_ago",
    "alive",
    "reason",
    "slot",
    "lease_s",
    "keeper",
    "token",
];

/// A lock's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Free,
    Held,
    Stale,
}

impl State {
    fn of(holder: Option<&Holder>) -> State {
        match holder {
            None => State::Free,
            Some(h) if h.verdict.is_stale() => State::Stale,
            Some(_) => State::Held,
        }
    }

    fn word(self) -> &'static str {
        match self {
            State::Free => "free",
            State::Held => "held",
            State::Stale => "stale",
        }
    }

    /// The status of several: held if any is, else stale if any is, else free.
    fn of_all(states: &[State]) -> State {
        if states.contains(&State::Held) {
            State::Held
        } else if states.contains(&State::Stale) {
            State::Stale
        } else {
            State::Free
        }
    }

    /// `--status` exits 0 held, 1 free, 9 stale.
    pub fn outcome(self) -> Outcome {
        match self {
            State::Held => Outcome::Success,
            State::Free => Outcome::NoLock,
            State::Stale => Outcome::Stale,
        }
    }
}

/// How `--status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The format `--json` asks for.
pub fn status_format(json: bool) -> Format {
    if json { Format::Json } else { Format::Text }
}

/// `--status` of every lock (or slot: `slots` says the lock is slotted, and
/// the `i`-th path is slot `i + 1`), looked at with `look`; an error is
/// said on stderr, and unless another lock is held, the status is the
/// error's (a path that is no lock: 5), never "free".
pub fn status_of(
    paths: &[LockPath],
    slotted: bool,
    format: Format,
    mut look: impl FnMut(&LockPath) -> crate::Result<Option<Holder>>,
    out: &Reporter,
) -> Outcome {
    let mut states = Vec::new();
    let mut failed = None;
    let mut stdout = io::stdout().lock();
    for (i, path) in paths.iter().enumerate() {
        let holder = match look(path) {
            Ok(holder) => holder,
            Err(e) => {
                out.error(&e);
                failed.get_or_insert(e);
                continue;
            }
        };
        let slot = slotted.then_some(i + 1);
        let first = match format {
            Format::Json => json(path.path(), slot, holder.as_ref()).to_string(),
            Format::Text => {
                let sep = if states.is_empty() { "" } else { "\n" };
                format!("{sep}{}", text(path.path(), holder.as_ref()))
            }
        };
        let _ = writeln!(stdout, "{first}");
        states.push(State::of(holder.as_ref()));
        // Names planted where shares and wants go: said once, counted never.
        if holder.as_ref().is_some_and(|h| h.record.shared) {
            for planted in crate::shared::foreign_members(path).unwrap_or_default() {
                out.error(format_args!(
                    "{}: not a regular file: not a reader, left alone",
                    planted.path().display()
                ));
            }
        }
        // Readers holding it together: each one's share.
        for (share, reader) in holder.iter().flat_map(|h| &h.readers) {
            let line = match format {
                Format::Json => {
                    let mut object = json(share, slot, Some(reader));
                    object["reader_of"] = json!(path.path().to_string_lossy());
                    object.to_string()
                }
                Format::Text => format!("\n{}", text(share, Some(reader))),
            };
            let _ = writeln!(stdout, "{line}");
        }
    }
    match (State::of_all(&states), failed) {
        (State::Held, _) | (_, None) => State::of_all(&states).outcome(),
        (_, Some(e)) => Outcome::Failed(e),
    }
}

/// Seconds, to the millisecond.
fn seconds(d: Duration) -> Value {
    json!((d.as_millis() as f64) / 1000.0)
}

/// One lock as a JSON object (the keys of SPEC §6, every key always there).
pub fn json(path: &Path, slot: Option<usize>, holder: Option<&Holder>) -> Value {
    let state = State::of(holder);
    let record = holder.map(|h| &h.record);
    let (args, cut) = match record.and_then(|r| r.args.as_deref()) {
        Some(line) => {
            let (args, cut) = record::split_args(line);
            (Some(args), cut)
        }
        None => (
            record.and_then(|r| r.cmd.as_ref()).map(|_| Vec::new()),
            false,
        ),
    };
    let mut object = json!({
        "lock": path.to_string_lossy(),
        "state": state.word(),
        "pid": record.and_then(|r| r.taker()).map(|(pid, _)| pid),
        "host": record.and_then(|r| r.host.clone()),
        "command": record.and_then(|r| r.cmd.clone()),
        "args": args,
        "held_for_s": holder.and_then(|h| h.held_for).map(seconds),
        "touched_s_ago": holder.and_then(|h| h.age).map(seconds),
        "alive": holder.and_then(Holder::alive),
        "reason": holder.filter(|h| h.verdict.is_stale()).map(|h| h.verdict.to_string()),
        "slot": slot,
        "lease_s": holder.and_then(|h| h.lease).map(seconds),
        "keeper": record.and_then(|r| r.keeper),
        "token": record.and_then(|r| r.token),
    });
    if cut {
        object["args_cut"] = json!(true);
    }
    if let Some(h) = holder.filter(|h| h.record.shared) {
        object["readers"] = json!(h.readers.len());
    }
    if std::str::from_utf8(path.as_os_str().as_bytes()).is_err() {
        object["lock_bytes"] = json!(path.as_os_str().as_bytes());
    }
    object
}

/// One lock in readable form.
pub fn text(path: &Path, holder: Option<&Holder>) -> String {
    let Some(h) = holder else {
        return format!("lock:    {}\nstate:   free", path.display());
    };
    let unknown = || "-".to_string();
    let alive = match h.verdict {
        Verdict::Valid(Reason::Alive { .. }) => "yes".to_string(),
        Verdict::Stale(Reason::Dead { .. }) => "no".to_string(),
        Verdict::Stale(Reason::PidReused { pid }) => {
            format!("no (pid {pid} now belongs to another process)")
        }
        Verdict::Stale(Reason::OtherBoot) => "no (written before the last boot)".into(),
        _ if h.record.taker().is_none() => "unknown (no pid recorded)".into(),
        _ => match crate::inspect::caller_alive(&h.record) {
            Some(false) => format!(
                "no: taken by pid {}, which has exited{}",
                h.record.caller.unwrap_or_default(),
                report::kept_until(h)
            ),
            Some(true) => "yes (the caller that took it)".into(),
            None => "unknown (cannot be checked from this host)".into(),
        },
    };
    let command = match (&h.record.cmd, &h.record.args) {
        (Some(cmd), Some(args)) => format!("{cmd} {args}"),
        (Some(cmd), None) => cmd.clone(),
        (None, _) => unknown(),
    };
    // Command mode: the lock is held by the tool, which runs the command
    // as its child; each named as what it is.
    let (pid, command) = match (h.record.taker(), h.record.child) {
        (Some((pid, _)), Some(child)) => (
            format!("{pid} (the lock tool, running the command)"),
            format!("{command} (pid {child})"),
        ),
        (taker, _) => (
            taker.map_or_else(unknown, |(pid, _)| pid.to_string()),
            command,
        ),
    };
    let lease = match h.lease {
        Some(lease) if h.record.stale_after == Some(lease.as_secs()) => {
            format!("{} (its holder's)", human(lease))
        }
        Some(lease) => human(lease),
        None => unknown(),
    };
    let keeper = match h.record.keeper {
        Some(pid) => format!("\nkeeper:  pid {pid} (touches it while its holder lives)"),
        None => String::new(),
    };
    let token = match h.record.token {
        Some(t) => format!("\ntoken:   {t} (fencing)"),
        None => String::new(),
    };
    format!(
        "lock:    {}\nstate:   {}\npid:     {pid}\ncommand: {command}\nhost:    {}\nheld:    {}\ntouched: {}\nlease:   {lease}\nalive:   {alive}{keeper}{token}\nreason:  {}",
        path.display(),
        State::of(holder).word(),
        h.record.host.clone().unwrap_or_else(unknown),
        h.held_for.map_or_else(unknown, human),
        h.age.map_or_else(unknown, |a| format!("{} ago", human(a))),
        h.verdict,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use std::ffi::OsStr;

    #[test]
    fn several_locks_are_held_if_any_is_then_stale_then_free() {
        use State::*;
        assert_eq!(State::of_all(&[]), Free);
        assert_eq!(State::of_all(&[Free, Free]), Free);
        assert_eq!(State::of_all(&[Free, Stale]), Stale);
        assert_eq!(State::of_all(&[Stale, Held, Free]), Held);
        assert_eq!(State::of_all(&[Held]), Held);
    }

    #[test]
    fn a_free_lock_has_every_key_and_null_values() {
        let v = json(Path::new("/x/L"), None, None);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, KEYS);
        assert_eq!(v["state"], "free");
        assert_eq!(v["lock"], "/x/L");
        assert!(v["pid"].is_null() && v["alive"].is_null());
    }

    #[test]
    fn a_non_utf8_path_round_trips_through_lock_bytes() {
        let raw: &[u8] = b"/tmp/caf\xe9.lock";
        let v = json(Path::new(OsStr::from_bytes(raw)), Some(2), None);
        assert_eq!(v["lock"], "/tmp/caf\u{fffd}.lock");
        let bytes: Vec<u8> = v["lock_bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(bytes, raw);
        assert_eq!(v["slot"], 2);
    }

    #[test]
    fn a_dead_holder_is_stale_with_a_reason() {
        let record = Record {
            pid: Some(42),
            cmd: Some("sh".into()),
            args: Some("backup.sh --full".into()),
            ..Record::default()
        };
        let h = Holder::new(
            record,
            Some(Duration::from_millis(1500)),
            Verdict::Stale(Reason::Dead { pid: 42 }),
        );
        let v = json(Path::new("L"), None, Some(&h));
        assert_eq!(v["state"], "stale");
        assert_eq!(v["alive"], false);
        assert_eq!(v["pid"], 42);
        assert_eq!(v["args"], json!(["backup.sh", "--full"]));
        assert_eq!(v["touched_s_ago"], 1.5);
        assert_eq!(v["held_for_s"], 1.5, "no created=: since the mtime");
        assert_eq!(v["reason"], "pid 42 is gone");
        let t = text(Path::new("L"), Some(&h));
        assert!(t.contains("\ncommand: sh backup.sh --full\n"), "{t}");
        assert!(t.contains("\ntouched: 1s ago\n"), "{t}");
    }

    #[test]
    fn the_lease_judged_by_is_shown_and_named_when_it_is_the_holders() {
        let record = Record {
            pid: Some(42),
            stale_after: Some(6),
            ..Record::default()
        };
        let fresh = Verdict::Valid(Reason::Fresh {
            age: Duration::from_secs(1),
        });
        let theirs = Holder::new(record.clone(), None, fresh).leased(Duration::from_secs(6));
        assert_eq!(json(Path::new("L"), None, Some(&theirs))["lease_s"], 6.0);
        let t = text(Path::new("L"), Some(&theirs));
        assert!(t.contains("\nlease:   6s (its holder's)\n"), "{t}");
        let ours = Holder::new(record, None, fresh).leased(Duration::from_secs(300));
        let t = text(Path::new("L"), Some(&ours));
        assert!(t.contains("\nlease:   5m00s\n"), "{t}");
        assert!(json(Path::new("L"), None, None)["lease_s"].is_null());
    }
}
