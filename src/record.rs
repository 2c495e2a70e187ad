//! The owner record: what a lock file says about its holder.
//!
//! The first line is the holder's pid in decimal and `\n` (`0\n` when no pid
//! is recorded), which is all liblockfile reads, so `dotlockfile -p` and
//! mail clients understand every record. Optional `key=value` lines follow:
//! `host`, `machine_id` (the machine's identity, [`crate::machine`]),
//! `boot_id`, `start` (field 22 of `/proc/PID/stat`), `pidns`,
//! `stale_after` (the holder's lease: after how many seconds without a
//! touch its lock may be broken), `cmd`, `args` (the command's arguments,
//! escaped to one line by [`escape_args`], at most 160 bytes),
//! `created` (unix seconds);
//! in command mode `child` and
//! `child_start`, the command's pid and start time, appended right after
//! it is spawned; `break=1` in the record of a break lock (`LOCK.break`);
//! `keeper` and `keeper_start`, the keeper of a lock held for a shell
//! ([`crate::keeper`]), appended when it starts;
//! `shared=1` in the record of a lock held by readers together
//! (`--shared`, see [`crate::shared`]).
//!
//! Parsing is tolerant: procmail's `0` without a newline, empty files,
//! garbage and binary all parse; whatever cannot be understood is simply
//! absent, and an absent fact is never taken as proof that a holder is dead.

use std::ffi::OsStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::host;

/// At most this many bytes of a lock file are read.
pub const MAX_RECORD: usize = 512;

#[cfg(test)]
use crate::args_line::MAX_ARGS;
pub use crate::args_line::{escape_args, split_args};

/// A parsed or to-be-written owner record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The holder's pid; `None` for `0`, an empty file or garbage.
    pub pid: Option<u32>,
    pub host: Option<String>,
    /// The machine's identity (`machine_id=`, 32 hex digits, a keyed hash of
    /// its machine id); anything else reads as none.
    pub machine_id: Option<String>,
    pub boot_id: Option<String>,
    pub start: Option<u64>,
    pub pidns: Option<u64>,
    /// The holder's lease in seconds (`stale_after=`): it touches its lock
    /// often enough for this, and waiters wait at least this long for a
    /// lock they cannot prove dead. Garbage or a negative number reads as
    /// none.
    pub stale_after: Option<u64>,
    pub cmd: Option<String>,
    /// The command's arguments on one line, separated by spaces; in each a
    /// backslash is `\\`, a space `\ `, a quote `\'`, a control or
    /// non-UTF-8 byte `\xHH`, an empty argument `''`; cut after 160 bytes,
    /// ending ` \...`.
    pub args: Option<String>,
    pub created: Option<i64>,
    /// Command mode: the command's pid (`child=`).
    pub child: Option<u32>,
    /// Command mode: the command's start time (`child_start=`).
    pub child_start: Option<u64>,
    /// This is the record of a break lock (`break=1`).
    pub break_lock: bool,
    /// This is the record of a lock held by readers together (`shared=1`):
    /// it names no holder, its readers' shares do.
    pub shared: bool,
    /// Who took the lock when no pid is recorded (native `dotlock` without
    /// `-p`): its pid and start time (`caller=`, `caller_start=`). It tells
    /// whose lock it is (for `-u` and messages), and is never proof of
    /// death: such a lock goes stale by age.
    pub caller: Option<u32>,
    pub caller_start: Option<u64>,
    /// The keeper of a lock held for a shell (`keeper=`, `keeper_start=`):
    /// the process that touches it while the shell lives and releases it
    /// when it dies; told by `-u` to stop.
    pub keeper: Option<u32>,
    pub keeper_start: Option<u64>,
    /// The holder's fencing token (`--fence`, [`crate::fence`]).
    pub token: Option<u64>,
}

impl Record {
    /// A record with only the pid line, byte for byte what liblockfile
    /// writes (`0\n` for `None`).
    pub fn legacy(pid: Option<u32>) -> Self {
        Record {
            pid,
            ..Record::default()
        }
    }

    /// A full record for a holder on this host. With a pid, its start time
    /// is recorded too; `cmd` names what holds the lock.
    pub fn for_holder(pid: Option<u32>, cmd: Option<String>) -> Self {
        Record::started(pid, cmd, host::start_time)
    }

    /// [`Record::for_holder`], the holder's start time told by `start_of`.
    fn started(
        pid: Option<u32>,
        cmd: Option<String>,
        start_of: impl FnOnce(u32) -> Option<u64>,
    ) -> Self {
        let pid = pid.filter(|&p| p != 0);
        Record {
            pid,
            host: Some(host::hostname()).filter(|h| !h.is_empty()),
            machine_id: crate::machine::identity(),
            boot_id: host::boot_id(),
            start: pid.and_then(start_of),
            pidns: pid.and(host::pid_namespace()),
            cmd,
            created: crate::seam::local_now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok()),
            ..Record::default()
        }
    }

    /// A full record for `holder` ([`Record::for_holder`]) that names
    /// what holds the lock: `command` (its name and arguments) when one is
    /// run under it, else the process `caller` (as `/proc` shows it).
    pub fn naming<A: AsRef<OsStr>>(holder: Option<u32>, command: &[A], caller: u32) -> Self {
        match command.split_first() {
            Some((first, args)) => {
                let name = std::path::Path::new(first.as_ref())
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                Record::for_holder(holder, name).with_args(args)
            }
            None => {
                // The caller's name and start time from one look at it.
                let (name, start) = host::name_and_start(caller);
                let start_of = |pid| match pid == caller {
                    true => start,
                    false => host::start_time(pid),
                };
                Record::started(holder, name, start_of)
                    .with_args(&host::command_args(caller).unwrap_or_default())
            }
        }
    }

    /// This record, declaring the holder's lease: `stale_after` in whole
    /// seconds, rounded up.
    pub fn with_lease(self, stale_after: Duration) -> Self {
        let secs = stale_after.as_secs() + u64::from(stale_after.subsec_nanos() > 0);
        Record {
            stale_after: Some(secs.max(1)),
            ..self
        }
    }

    /// This record, with the arguments of its command.
    pub fn with_args<A: AsRef<OsStr>>(self, args: &[A]) -> Self {
        Record {
            args: Some(escape_args(args)).filter(|a| !a.is_empty()),
            ..self
        }
    }

    /// How long the lock has been held at `now` (the record's own clock:
    /// `created=` is written by the holder's clock), or `None` if the
    /// record does not say when it was created.
    pub fn held_for(&self, now: SystemTime) -> Option<Duration> {
        let created =
            UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(self.created?).ok()?))?;
        Some(now.duration_since(created).unwrap_or_default())
    }

    /// This record, naming `pid` as the caller that took the lock.
    pub fn with_caller(self, pid: u32) -> Self {
        let caller = Some(pid).filter(|&p| p != 0);
        Record {
            caller,
            caller_start: host::start_time(pid),
            // A pid means something only in its pid namespace.
            pidns: self.pidns.or_else(|| caller.and(host::pid_namespace())),
            ..self
        }
    }

    /// Whoever the record names as having taken the lock: the holder, or
    /// else the caller; with its recorded start time.
    pub fn taker(&self) -> Option<(u32, Option<u64>)> {
        match (self.pid, self.caller) {
            (Some(pid), _) => Some((pid, self.start)),
            (None, Some(caller)) => Some((caller, self.caller_start)),
            (None, None) => None,
        }
    }

    /// The lines that record the command `pid` run under a lock, appended
    /// to its record right after the spawn.
    pub fn child_lines(pid: u32) -> Vec<u8> {
        let mut out = format!("child={pid}\n");
        if let Some(start) = host::start_time(pid) {
            out.push_str(&format!("child_start={start}\n"));
        }
        out.into_bytes()
    }

    /// The lines that record the keeper `pid` of a lock held for a shell,
    /// appended to its record when the keeper starts.
    pub fn keeper_lines(pid: u32) -> Vec<u8> {
        let mut out = format!("keeper={pid}\n");
        if let Some(start) = host::start_time(pid) {
            out.push_str(&format!("keeper_start={start}\n"));
        }
        out.into_bytes()
    }

    /// The bytes written to the lock file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\n", self.pid.unwrap_or(0));
        let mut field = |key: &str, value: &str| {
            let value = clean(value);
            if !value.is_empty() {
                out.push_str(&format!("{key}={value}\n"));
            }
        };
        if let Some(v) = &self.host {
            field("host", v);
        }
        if let Some(v) = &self.machine_id {
            field("machine_id", v);
        }
        if let Some(v) = &self.boot_id {
            field("boot_id", v);
        }
        if let Some(v) = self.start {
            field("start", &v.to_string());
        }
        if let Some(v) = self.pidns {
            field("pidns", &v.to_string());
        }
        if let Some(v) = self.stale_after {
            field("stale_after", &v.to_string());
        }
        if let Some(v) = &self.cmd {
            field("cmd", v);
        }
        if let Some(v) = &self.args {
            field("args", v);
        }
        if let Some(v) = self.created {
            field("created", &v.to_string());
        }
        if let Some(v) = self.child {
            field("child", &v.to_string());
        }
        if let Some(v) = self.child_start {
            field("child_start", &v.to_string());
        }
        if self.break_lock {
            field("break", "1");
        }
        if self.shared {
            field("shared", "1");
        }
        if let Some(v) = self.caller {
            field("caller", &v.to_string());
        }
        if let Some(v) = self.caller_start {
            field("caller_start", &v.to_string());
        }
        if let Some(v) = self.keeper {
            field("keeper", &v.to_string());
        }
        if let Some(v) = self.keeper_start {
            field("keeper_start", &v.to_string());
        }
        if let Some(v) = self.token {
            field("token", &v.to_string());
        }
        let mut bytes = out.into_bytes();
        bytes.truncate(MAX_RECORD);
        bytes
    }

    /// Parse whatever a lock file holds. Never fails.
    pub fn parse(bytes: &[u8]) -> Self {
        let bytes = &bytes[..bytes.len().min(MAX_RECORD)];
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.split('\n');
        let first = lines.next().unwrap_or("").trim();
        let mut record = Record {
            pid: parse_pid(first),
            ..Record::default()
        };
        // A key line counts only when complete (ended by a newline): a
        // reader that meets a record half appended sees the lines before.
        let complete = text.matches('\n').count();
        for line in lines.take(complete.saturating_sub(1)) {
            let Some((key, raw)) = line.split_once('=') else {
                continue;
            };
            let value = raw.trim();
            if value.is_empty() {
                continue;
            }
            match key.trim() {
                "host" => record.host = Some(value.to_string()),
                "machine_id" => {
                    record.machine_id =
                        Some(value.to_string()).filter(|v| crate::machine::is_identity(v))
                }
                "stale_after" => record.stale_after = value.parse().ok(),
                "boot_id" => record.boot_id = Some(value.to_string()),
                "start" => record.start = value.parse().ok(),
                "pidns" => record.pidns = value.parse().ok(),
                "cmd" => record.cmd = Some(value.to_string()),
                "args" => {
                    // Untrimmed: an argument may end in an escaped space.
                    record.args = Some(raw.trim_start().to_string());
                }
                "created" => record.created = value.parse().ok(),
                "child" => record.child = value.parse().ok().filter(|&p| p != 0),
                "child_start" => record.child_start = value.parse().ok(),
                "break" => record.break_lock = value == "1",
                "shared" => record.shared = value == "1",
                "caller" => record.caller = value.parse().ok().filter(|&p| p != 0),
                "caller_start" => record.caller_start = value.parse().ok(),
                "keeper" => record.keeper = value.parse().ok().filter(|&p| p != 0),
                "keeper_start" => record.keeper_start = value.parse().ok(),
                "token" => record.token = value.parse().ok(),
                _ => {}
            }
        }
        record
    }

    /// A short human description: `pid 42 (make) on mail`.
    pub fn describe(&self) -> String {
        let mut out = match self.taker() {
            Some((pid, _)) => format!("pid {pid}"),
            None => "an unknown process".to_string(),
        };
        if let Some(cmd) = &self.cmd {
            out.push_str(&format!(" ({cmd})"));
        }
        if let Some(host) = &self.host {
            out.push_str(&format!(" on {host}"));
        }
        out
    }
}

/// A pid line: decimal digits only, not zero, within `pid_t`.
fn parse_pid(line: &str) -> Option<u32> {
    if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    line.parse::<u32>()
        .ok()
        .filter(|&p| p != 0 && p <= i32::MAX as u32)
}

/// Values stay on one line: control characters become `?`.
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
