//! Facts about this host and its processes, read from `/proc` on Linux.
//!
//! Each reader degrades to `None` where the fact is unavailable (another
//! kernel, a restricted `/proc`): a missing fact only ever makes a stale
//! decision fall back to age, never to "dead".

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// The host name as `gethostname(2)` reports it ("" if that fails).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The first label of the host name (`mail` of `mail.example.org`).
pub fn short_hostname() -> String {
    let host = hostname();
    host.split('.').next().unwrap_or_default().to_string()
}

/// This boot's random id (`/proc/sys/kernel/random/boot_id`), read once
/// per process.
pub fn boot_id() -> Option<String> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let id = read_small("/proc/sys/kernel/random/boot_id").ok()?;
        let id = std::str::from_utf8(&id).ok()?.trim();
        (!id.is_empty()).then(|| id.to_string())
    })
    .clone()
}

/// A small file (`/proc`, `/etc/machine-id`) read whole without asking its
/// size first: an `open(2)`, a `read(2)` or two, a `close(2)`.
pub fn read_small(path: impl AsRef<std::path::Path>) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 512];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // A `/proc` file of one line comes in one read; a short read of a
        // regular file is its end.
        if len < buf.len() && buf[..len].ends_with(b"\n") {
            break;
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// How long this host has been up, suspended time included
/// (`CLOCK_BOOTTIME`): a lock last touched longer ago than this, on the
/// filesystem's clock, was touched before this host booted.
pub fn uptime() -> Option<std::time::Duration> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    Some(std::time::Duration::from(t))
}

/// The inode of our pid namespace (`/proc/self/ns/pid`): two processes
/// share a pid space exactly when these are equal. Read once per process
/// (a process never changes its pid namespace).
pub fn pid_namespace() -> Option<u64> {
    static NS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *NS.get_or_init(|| fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino()))
}

/// A process's start time in clock ticks since boot: field 22 of
/// `/proc/PID/stat` (`proc(5)`). With the pid it names one process for the
/// whole life of a boot, which a pid alone does not.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = read_stat(pid).ok()?;
    parse_start_time(&stat)
}

/// `/proc/PID/stat` in one `read(2)`: the line is a few hundred bytes, and
/// waiters read it on every attempt.
fn read_stat(pid: u32) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; 1024];
    let mut f = fs::File::open(format!("/proc/{pid}/stat"))?;
    let n = f.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Field 22 of a `/proc/PID/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its closing `)`.
pub fn parse_start_time(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After ")" come field 3 (state) onwards; field 22 is the 20th of those.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// How long ago a process started: the time since boot (`/proc/uptime`)
/// less its start time in clock ticks. No wall clock is read, so a clock
/// set since boot does not move it.
pub fn started_ago(pid: u32) -> Option<std::time::Duration> {
    let ticks = start_time(pid)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let uptime: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let ago = uptime - ticks as f64 / hz as f64;
    std::time::Duration::try_from_secs_f64(ago.max(0.0)).ok()
}

/// `/proc/sys/kernel/pid_max`: every pid is below it.
pub fn pid_max() -> Option<u32> {
    fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A process's short command name and start time, from one read of
/// `/proc/PID/stat` (its field 2 is what `/proc/PID/comm` holds).
pub fn name_and_start(pid: u32) -> (Option<String>, Option<u64>) {
    let Ok(stat) = read_stat(pid) else {
        return (None, None);
    };
    let name = stat.iter().position(|&b| b == b'(').and_then(|open| {
        let close = stat.iter().rposition(|&b| b == b')')?;
        let name = String::from_utf8_lossy(stat.get(open + 1..close)?).into_owned();
        (!name.is_empty()).then_some(name)
    });
    (name, parse_start_time(&stat))
}

/// A process's parent (field 4 of `/proc/PID/stat`).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = read_stat(pid).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// A process's arguments after its name (`/proc/PID/cmdline`), so that
/// `sh backup.sh` can be told from any other `sh`.
pub fn command_args(pid: u32) -> Option<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let line = read_small(format!("/proc/{pid}/cmdline")).ok()?;
    let line = line.strip_suffix(b"\0").unwrap_or(&line);
    let args = line
        .split(|&b| b == 0)
        .skip(1)
        .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string());
    Some(args.collect())
}

/// A process's short command name (`/proc/PID/comm`).
pub fn command_name(pid: u32) -> Option<String> {
    let comm = read_small(format!("/proc/{pid}/comm")).ok()?;
    let comm = String::from_utf8_lossy(&comm);
    let comm = comm.trim_end_matches('\n');
    (!comm.is_empty()).then(|| comm.to_string())
}

/// Field 3 (the state letter) of a `/proc/PID/stat` line.
fn parse_state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

/// Is `pid`, recorded on `host` with start time `start`, our parent or one
/// of its ancestors, on this host, and (where recorded) the very same
/// process? So a subshell or a trap of the shell that took a lock may
/// release it.
pub fn is_caller_or_ancestor(pid: u32, host: Option<&str>, start: Option<u64>) -> bool {
    if host.is_some_and(|h| h != hostname()) {
        return false;
    }
    if let (Some(start), Some(now)) = (start, start_time(pid))
        && start != now
    {
        return false;
    }
    let mut p = nix::unistd::getppid().as_raw() as u32;
    for _ in 0..64 {
        if p == pid {
            return true;
        }
        match parent_of(p) {
            Some(next) if next > 0 && next != p => p = next,
            _ => return false,
        }
    }
    false
}

/// What `kill(pid, 0)` can tell about a process on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It exists (possibly owned by another user: `EPERM`).
    Running,
    /// No such process (`ESRCH`).
    Gone,
    /// Nothing can be concluded (pid out of range, other errors).
    Unknown,
}

pub use crate::sys::pidfd_open;

/// Has the process behind `pidfd` exited (the descriptor is readable)?
fn exited(pidfd: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Processes found running, each with its start time and a pidfd: a pidfd
/// names one process for its whole life, so while it is not readable the
/// process runs — no pid reuse can fool it — and a waiter's next look costs
/// one `poll(2)` instead of `kill(2)` and a read of `/proc/PID/stat`.
static KNOWN: Mutex<Vec<(u32, u64, OwnedFd)>> = Mutex::new(Vec::new());

/// How many processes [`KNOWN`] holds at most.
const KNOWN_MAX: usize = 16;

/// Probe a pid: its liveness and, if it runs, its start time. A zombie
/// counts as gone.
pub fn probe(pid: u32) -> (Liveness, Option<u64>) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = known.iter().position(|(p, _, _)| *p == pid) {
        if !exited(&known[i].2) {
            return (Liveness::Running, Some(known[i].1));
        }
        // That process is gone; the pid may belong to another by now.
        known.swap_remove(i);
    }
    // The pidfd is opened first, then the process looked at once: if the
    // pidfd's process still runs after the look, the look saw it (a pid
    // names one running process at a time); if the pid was given again in
    // between, the pidfd's process has exited, and it is not kept.
    let fd = (known.len() < KNOWN_MAX).then(|| pidfd_open(pid)).flatten();
    let found = probe_uncached(pid);
    if let (Liveness::Running, Some(start)) = found
        && let Some(fd) = fd
        && !exited(&fd)
    {
        known.push((pid, start, fd));
    }
    found
}

/// [`probe`] by `kill(pid, 0)` and one read of `/proc/PID/stat`.
fn probe_uncached(pid: u32) -> (Liveness, Option<u64>) {
    match liveness_only(pid) {
        Liveness::Running => match read_stat(pid) {
            Ok(stat) if parse_state(&stat).is_some_and(|s| s == b'Z' || s == b'X') => {
                (Liveness::Gone, None)
            }
            Ok(stat) => (Liveness::Running, parse_start_time(&stat)),
            Err(_) => (Liveness::Running, None),
        },
        other => (other, None),
    }
}

/// Probe a pid with `kill(2)` and signal 0; a zombie counts as gone.
pub fn liveness(pid: u32) -> Liveness {
    probe(pid).0
}

fn liveness_only(pid: u32) -> Liveness {
    let Ok(raw) = i32::try_from(pid) else {
        return Liveness::Unknown;
    };
    if raw <= 0 {
        return Liveness::Unknown;
    }
    match kill(Pid::from_raw(raw), None) {
        Ok(()) | Err(Errno::EPERM) => Liveness::Running,
        Err(Errno::ESRCH) => Liveness::Gone,
        Err(_) => Liveness::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_parentheses_and_spaces_in_comm() {
        let line =
            b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(line), Some(987654));
    }

    #[test]
    fn state_letter_follows_the_command_name() {
        assert_eq!(parse_state(b"42 (a) Z) R 1 2"), Some(b'R'));
        assert_eq!(parse_state(b"42 (x) Z 1"), Some(b'Z'));
        assert_eq!(parse_state(b"garbage"), None);
    }

    #[test]
    fn a_known_process_is_followed_by_its_pidfd() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let first = probe(pid);
        assert_eq!(first.0, Liveness::Running);
        assert_eq!(first.1, start_time(pid));
        assert_eq!(probe(pid), first, "answered from the pidfd");
        child.kill().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while probe(pid).0 != Liveness::Gone && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(probe(pid).0, Liveness::Gone);
        child.wait().unwrap();
    }

    #[test]
    fn a_zombie_is_gone() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while liveness(pid) != Liveness::Gone && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Not reaped yet: kill(pid, 0) still succeeds, but it has ended.
        assert!(kill(Pid::from_raw(pid as i32), None).is_ok());
        assert_eq!(liveness(pid), Liveness::Gone);
        drop(child);
    }

    #[test]
    fn start_time_of_garbage_is_none() {
        assert_eq!(parse_start_time(b"no parens here"), None);
        assert_eq!(parse_start_time(b"1 (x) S 1"), None);
    }

    #[test]
    fn own_process_facts_are_readable() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert_eq!(liveness(me), Liveness::Running);
        assert_eq!(liveness(0), Liveness::Unknown);
    }
}
