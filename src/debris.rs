//! Temporary files left by killed processes: reclaimed by the next taker.
//!
//! An attempt's temporary file (`.lk` + pid + 8 hex digits + `.` + the
//! host's first label, [`crate::fs::temp_name`]) lives for a few calls; a
//! process killed with SIGKILL inside them leaves it behind, and nothing
//! else ever removes it. A waiter that finds its dot-lock busy again
//! after a sleep, and a breaker, once it has removed a stale lock, look at the
//! `.lk*` regular files in the lock's directory and remove those that are
//! surely debris (never an uncontended take: a directory read there would
//! cost every lock in a spool of thousands of files):
//!
//! * made on this host (its name's host label and its record's host, boot
//!   and pid namespace are ours) by a process proven dead: its pid is not
//!   running, is beyond `pid_max`, or runs a process that started after
//!   the file was last written (the pid was reused);
//! * or older than the stale age (or the lease its record declares, if
//!   longer) on the filesystem's clock, whoever made it (another host's, liblockfile's `.lk…` names): a temporary file
//!   lives for microseconds.
//!
//! Nothing else is touched: not a live process's file, not a fresh file of
//! another host, not a symbolic link or anything that is not a regular
//! file, not a name of another pattern. Each removal is of the very file
//! judged (device and inode, [`Dir::unlink_this`]), and is made with the
//! caller's own rights: the setgid group of a mailbox lock is never taken
//! back for it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use crate::fs::{Dir, read_prefix};
use crate::host::Liveness;
use crate::judge::{Here, Probe, SystemProbe, started_after};
use crate::record::MAX_RECORD;
use crate::record::Record;

/// What a `.lk*` name says: the pid that made it, if the name is ours,
/// and whether it names `label` as its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempName {
    pub pid: Option<u32>,
    pub this_host: bool,
}

/// Parse a temporary file's name: `None` if it does not start with `.lk`.
/// `label` is this host's label as [`crate::fs::temp_name`] writes it.
pub fn parse(name: &OsStr, label: &[u8]) -> Option<TempName> {
    let rest = name.as_bytes().strip_prefix(b".lk")?;
    let ours = rest.iter().rposition(|&b| b == b'.').and_then(|dot| {
        let (middle, host) = (&rest[..dot], &rest[dot + 1..]);
        let digits = middle.len().checked_sub(8)?;
        let (pid, random) = middle.split_at(digits);
        let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        let number = std::str::from_utf8(pid).ok()?.parse::<u32>().ok();
        (pid.len() >= 5 && pid.iter().all(u8::is_ascii_digit) && random.iter().all(hex))
            .then_some((number, host == label))
    });
    Some(match ours {
        Some((pid, this_host)) => TempName { pid, this_host },
        None => TempName {
            pid: None,
            this_host: false,
        },
    })
}

/// What a judgement of debris needs besides the file itself.
pub struct Context<'a> {
    /// The filesystem's clock now.
    pub fs_now: SystemTime,
    /// Older than this, any `.lk*` file is debris.
    pub stale_after: Duration,
    pub here: &'a Here,
    /// `/proc/sys/kernel/pid_max`: no pid reaches it.
    pub pid_max: Option<u32>,
    pub probe: &'a dyn Probe,
    /// How long ago a running process started.
    pub started_ago: fn(u32) -> Option<Duration>,
}

/// Is the temporary file `name` (last written at `mtime`, holding
/// `record`) debris?
pub fn is_debris(name: TempName, record: &Record, mtime: SystemTime, cx: &Context<'_>) -> bool {
    let age = cx.fs_now.duration_since(mtime).unwrap_or(Duration::ZERO);
    if age > crate::judge::lease(record, cx.stale_after) {
        return true;
    }
    // Proof needs the name and the record to say it is this very host,
    // boot and pid namespace (another machine may share the host name).
    let Some(pid) = name.pid.filter(|_| name.this_host) else {
        return false;
    };
    if !cx.here.is_this_boot_and_pidns(record) {
        return false;
    }
    if cx.pid_max.is_some_and(|max| pid >= max) {
        return true;
    }
    match cx.probe.liveness(pid) {
        Liveness::Gone => true,
        Liveness::Unknown => false,
        Liveness::Running => {
            (cx.started_ago)(pid).is_some_and(|ago| started_after(ago, cx.fs_now, mtime))
        }
    }
}

/// Remove the debris among the `.lk*` files of `dir`, judged with the
/// filesystem's clock at `fs_now` (the mtime of the lock just made).
/// Best effort: a failure leaves the file for a later taker.
pub fn sweep(dir: &Dir, fs_now: SystemTime, stale_after: Duration) {
    let Ok(names) = dir.open_child(OsStr::new(".")).and_then(|d| d.names()) else {
        return;
    };
    let label = crate::fs::temp_label();
    let here = Here::current();
    let cx = Context {
        fs_now,
        stale_after,
        here: &here,
        pid_max: crate::host::pid_max(),
        probe: &SystemProbe,
        started_ago: crate::host::started_ago,
    };
    for name in names {
        let Some(parsed) = parse(&name, label.as_bytes()) else {
            continue;
        };
        let Ok(meta) = dir.lstat(&name) else { continue };
        if !meta.is_file() {
            continue;
        }
        // A name the look above may have left behind: read what is there
        // now, and remove only that file.
        let record = match dir.open_read(&name) {
            Ok(file) => match crate::fs::Meta::of(&file) {
                Ok(m) if m.same_file(&meta) => read_prefix(file, MAX_RECORD, m.size)
                    .map(|b| Record::parse(&b))
                    .unwrap_or_default(),
                _ => continue,
            },
            Err(_) => Record::default(),
        };
        if is_debris(parsed, &record, meta.mtime, &cx) {
            let _ = dir.unlink_this(&name, meta.dev, meta.ino);
        }
    }
}

#[cfg(test)]
#[path = "debris_tests.rs"]
mod tests;
