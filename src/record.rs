//! The owner record: what a lock file says about its holder.
//!
//! The first line is the holder's pid in decimal and `\n` (`0\n` when no pid
//! is recorded), which is all liblockfile reads, so `dotlockfile -p` and
//! mail clients understand every record. Optional `key=value` lines follow:
//! `host`, `boot_id`, `start` (field 22 of `/proc/PID/stat`), `pidns`,
//! `cmd`, `created` (unix seconds); in command mode `child` and
//! `child_start`, the command's pid and start time, appended right after
//! it is spawned; `break=1` in the record of a break lock (`LOCK.break`).
//!
//! Parsing is tolerant: procmail's `0` without a newline, empty files,
//! garbage and binary all parse; whatever cannot be understood is simply
//! absent, and an absent fact is never taken as proof that a holder is dead.

use std::time::UNIX_EPOCH;

use crate::host;

/// At most this many bytes of a lock file are read.
pub const MAX_RECORD: usize = 512;

/// A parsed or to-be-written owner record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The holder's pid; `None` for `0`, an empty file or garbage.
    pub pid: Option<u32>,
    pub host: Option<String>,
    pub boot_id: Option<String>,
    pub start: Option<u64>,
    pub pidns: Option<u64>,
    pub cmd: Option<String>,
    pub created: Option<i64>,
    /// Command mode: the command's pid (`child=`).
    pub child: Option<u32>,
    /// Command mode: the command's start time (`child_start=`).
    pub child_start: Option<u64>,
    /// This is the record of a break lock (`break=1`).
    pub break_lock: bool,
    /// Who took the lock when no pid is recorded (native `dotlock` without
    /// `-p`): its pid and start time (`caller=`, `caller_start=`). It tells
    /// whose lock it is (for `-u` and messages), and is never proof of
    /// death: such a lock goes stale by age.
    pub caller: Option<u32>,
    pub caller_start: Option<u64>,
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
        let pid = pid.filter(|&p| p != 0);
        Record {
            pid,
            host: Some(host::hostname()).filter(|h| !h.is_empty()),
            boot_id: host::boot_id(),
            start: pid.and_then(host::start_time),
            pidns: pid.and(host::pid_namespace()),
            cmd,
            created: crate::seam::local_now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok()),
            ..Record::default()
        }
    }

    /// This record, naming `pid` as the caller that took the lock.
    pub fn with_caller(self, pid: u32) -> Self {
        Record {
            caller: Some(pid).filter(|&p| p != 0),
            caller_start: host::start_time(pid),
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
        if let Some(v) = &self.boot_id {
            field("boot_id", v);
        }
        if let Some(v) = self.start {
            field("start", &v.to_string());
        }
        if let Some(v) = self.pidns {
            field("pidns", &v.to_string());
        }
        if let Some(v) = &self.cmd {
            field("cmd", v);
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
        if let Some(v) = self.caller {
            field("caller", &v.to_string());
        }
        if let Some(v) = self.caller_start {
            field("caller_start", &v.to_string());
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
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key.trim() {
                "host" => record.host = Some(value.to_string()),
                "boot_id" => record.boot_id = Some(value.to_string()),
                "start" => record.start = value.parse().ok(),
                "pidns" => record.pidns = value.parse().ok(),
                "cmd" => record.cmd = Some(value.to_string()),
                "created" => record.created = value.parse().ok(),
                "child" => record.child = value.parse().ok().filter(|&p| p != 0),
                "child_start" => record.child_start = value.parse().ok(),
                "break" => record.break_lock = value == "1",
                "caller" => record.caller = value.parse().ok().filter(|&p| p != 0),
                "caller_start" => record.caller_start = value.parse().ok(),
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
mod tests {
    use super::*;

    #[test]
    fn legacy_records_are_liblockfiles_bytes() {
        assert_eq!(Record::legacy(None).to_bytes(), b"0\n");
        assert_eq!(Record::legacy(Some(1234)).to_bytes(), b"1234\n");
    }

    #[test]
    fn full_record_round_trips() {
        let r = Record {
            pid: Some(77),
            host: Some("mail".into()),
            boot_id: Some("b-1".into()),
            start: Some(123),
            pidns: Some(4026531836),
            cmd: Some("fetchmail".into()),
            created: Some(1_700_000_000),
            child: Some(78),
            child_start: Some(124),
            break_lock: true,
            caller: Some(79),
            caller_start: Some(125),
        };
        let bytes = r.to_bytes();
        assert!(bytes.starts_with(b"77\nhost=mail\n"));
        assert_eq!(Record::parse(&bytes), r);
    }

    #[test]
    fn tolerant_parsing() {
        let cases: &[(&[u8], Option<u32>)] = &[
            (b"", None),
            (b"0", None),
            (b"0\n", None),
            (b"42", Some(42)),
            (b"42\n", Some(42)),
            (b"  42  \n", Some(42)),
            (b"42abc\n", None),
            (b"+42\n", None),
            (b"-5\n", None),
            (b"99999999999999999999\n", None),
            (b"\xff\xfe\x00\x01binary", None),
            (b"garbage\nhost=x\n", None),
        ];
        for (bytes, pid) in cases {
            assert_eq!(Record::parse(bytes).pid, *pid, "{bytes:?}");
        }
        let r = Record::parse(b"garbage\nhost=x\nstart=notanumber\n=\nnoequals\n");
        assert_eq!(r.host.as_deref(), Some("x"));
        assert_eq!(r.start, None);
    }

    #[test]
    fn a_holders_record_names_it() {
        let me = std::process::id();
        let r = Record::for_holder(Some(me), Some("job".into()));
        assert_eq!(r.pid, Some(me));
        assert_eq!(r.start, host::start_time(me));
        assert!(r.start.is_some());
        assert_eq!(r.pidns, host::pid_namespace());
        assert_eq!(r.cmd.as_deref(), Some("job"));
        let now = crate::seam::local_now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(r.created.is_some_and(|c| (now - 5..=now).contains(&c)));
        // No pid, no process facts.
        let none = Record::for_holder(None, None);
        assert_eq!((none.pid, none.start, none.pidns), (None, None, None));
    }

    #[test]
    fn the_commands_lines_name_it() {
        let me = std::process::id();
        let mut bytes = b"1\n".to_vec();
        bytes.extend(Record::child_lines(me));
        let r = Record::parse(&bytes);
        assert_eq!(r.child, Some(me));
        assert_eq!(r.child_start, host::start_time(me));
        assert!(r.child_start.is_some());
    }

    #[test]
    fn a_half_written_line_is_not_read() {
        let r = Record::parse(b"7\nhost=h\nchild=12\nchild_start=99");
        assert_eq!(r.child, Some(12));
        assert_eq!(r.child_start, None);
        let r = Record::parse(b"7\nhost=h\nchild=1");
        assert_eq!((r.host.as_deref(), r.child), (Some("h"), None));
        assert!(Record::parse(b"7\nbreak=1\n").break_lock);
        assert!(!Record::parse(b"7\nbreak=0\n").break_lock);
    }

    #[test]
    fn huge_content_is_cut_at_512_bytes() {
        let mut big = b"12\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 10_000));
        big.extend(b"\nhost=late\n");
        let r = Record::parse(&big);
        assert_eq!(r.pid, Some(12));
        assert_eq!(r.host, None);
    }

    #[test]
    fn values_cannot_break_lines() {
        let r = Record {
            pid: Some(1),
            cmd: Some("evil\nhost=forged".into()),
            ..Record::default()
        };
        let parsed = Record::parse(&r.to_bytes());
        assert_eq!(parsed.host, None);
        assert_eq!(parsed.cmd.as_deref(), Some("evil?host=forged"));
    }

    #[test]
    fn describe_names_what_is_known() {
        assert_eq!(Record::legacy(None).describe(), "an unknown process");
        let r = Record {
            pid: Some(9),
            cmd: Some("make".into()),
            host: Some("h".into()),
            ..Record::default()
        };
        assert_eq!(r.describe(), "pid 9 (make) on h");
    }
}
