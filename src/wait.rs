//! How long to wait between attempts, and the sleep itself.
//!
//! Schedules: liblockfile's backoff (sleep 5, 10, 15 … 60 s), a fixed
//! interval (`-i`), and procmail's constant 8 s. `-r N` means N retries,
//! N+1 attempts; `--timeout` bounds the whole wait, with a last attempt
//! when it runs out.
//!
//! The sleep is a `poll(2)` on the descriptors that must cut it short: an
//! inotify watch of the lock's directory (so that a release is noticed at
//! once on a local filesystem — see [`ReleaseWatch`]), the signalfd of
//! caught signals (so that a signal is handled in ordinary code, with
//! nothing left behind) and, for `-p` without a command, a pidfd of the
//! parent (so that its death ends the wait at once). A sleeping waiter uses
//! no CPU.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::Signal;
use nix::sys::statfs::statfs;
use nix::unistd::getppid;

use crate::guard::Signals;

/// The pause between failed attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// liblockfile: 5 s after the first failure, 5 s more after each, at
    /// most 60 s.
    Backoff,
    /// The same pause every time (`-i S`; zero means none).
    Fixed(Duration),
}

impl Schedule {
    /// procmail's `lockfile`: 8 s between attempts.
    pub const PROCMAIL: Schedule = Schedule::Fixed(Duration::from_secs(8));

    /// The pause after the `failures`-th failed attempt (counting from 1).
    pub fn delay(self, failures: u64) -> Duration {
        match self {
            Schedule::Backoff => Duration::from_secs(5 * failures.clamp(1, 12)),
            Schedule::Fixed(d) => d,
        }
    }
}

/// How long to keep trying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Patience {
    pub schedule: Schedule,
    /// Retries after the first attempt; `None` is forever (`-r -1`).
    pub retries: Option<u64>,
    /// Bound on the whole wait.
    pub timeout: Option<Duration>,
}

impl Default for Patience {
    /// dotlockfile's: 5 retries on the backoff schedule.
    fn default() -> Self {
        Patience {
            schedule: Schedule::Backoff,
            retries: Some(5),
            timeout: None,
        }
    }
}

/// Why a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The time was up.
    Elapsed,
    /// The lock was released (its name removed or renamed away).
    Released,
    /// A caught signal arrived.
    Signal(Signal),
    /// The watched parent died.
    ParentDied,
}

/// Watches the parent process: through a pidfd (`pidfd_open(2)`) where the
/// kernel has one, else by noticing that `getppid()` changed.
#[derive(Debug)]
pub struct ParentWatch {
    ppid: i32,
    pidfd: Option<OwnedFd>,
}

impl ParentWatch {
    /// Start watching our current parent.
    pub fn new() -> ParentWatch {
        let ppid = getppid().as_raw();
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, ppid, 0) };
        let pidfd = (fd >= 0).then(|| {
            // SAFETY: the kernel just returned this descriptor to us alone.
            unsafe { OwnedFd::from_raw_fd(fd as i32) }
        });
        ParentWatch { ppid, pidfd }
    }

    /// Has the parent gone (we were reparented)?
    pub fn gone(&self) -> bool {
        getppid().as_raw() != self.ppid
    }
}

impl Default for ParentWatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Watches the lock's directory with `inotify(7)` for the lock's name being
/// removed or renamed away, so that a waiter tries again the moment the
/// lock is released instead of at the end of its sleep.
///
/// Not used on remote filesystems (NFS and the like): inotify sees only
/// this machine's changes there, so waiters poll on their schedule.
#[derive(Debug)]
pub struct ReleaseWatch {
    inotify: Inotify,
    name: OsString,
}

impl ReleaseWatch {
    /// Watch `dir` for `name` going away; `None` where that cannot work
    /// (remote filesystem, no inotify, out of watches).
    pub fn new(dir: &Path, name: &OsStr) -> Option<ReleaseWatch> {
        if is_remote(dir) {
            return None;
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let mask =
            AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_ONLYDIR;
        inotify.add_watch(dir, mask).ok()?;
        Some(ReleaseWatch {
            inotify,
            name: name.to_os_string(),
        })
    }

    /// Read what is queued; was our lock's name among it (or did the queue
    /// overflow, so that it may have been)?
    fn released(&self) -> bool {
        let mut hit = false;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            hit |= events.iter().any(|e| {
                e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                    || e.name.as_deref() == Some(&*self.name)
            });
        }
        hit
    }
}

/// Is `dir` on a filesystem whose changes may come from other machines,
/// which inotify would not report (`statfs(2)` magic numbers)?
pub fn is_remote(dir: &Path) -> bool {
    match statfs(dir) {
        // fs_type_t is i64 here but narrower on other targets.
        #[allow(clippy::unnecessary_cast)]
        Ok(fs) => is_remote_magic(fs.filesystem_type().0 as i64),
        Err(_) => true,
    }
}

fn is_remote_magic(magic: i64) -> bool {
    const REMOTE: &[i64] = &[
        0x6969,      // NFS
        0x517B,      // SMB
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x7375_7245, // Coda
        0x5346_414F, // AFS
        0x6B41_4653, // kAFS
        0x00C3_6400, // Ceph
        0x0102_1997, // 9p
        0x6573_5546, // FUSE (sshfs, s3fs, ...)
        0x0116_1970, // GFS2
        0x7461_636F, // OCFS2
        0x0BD0_0BD0, // Lustre
        0x564C,      // NCP
    ];
    REMOTE.contains(&(magic & 0xFFFF_FFFF))
}

/// Sleeps, waking early for what matters.
#[derive(Debug)]
pub struct Sleeper<'a> {
    signals: Option<&'a Signals>,
    parent: Option<ParentWatch>,
    release: Option<ReleaseWatch>,
}

impl<'a> Sleeper<'a> {
    pub fn new(signals: Option<&'a Signals>, parent: Option<ParentWatch>) -> Self {
        Sleeper {
            signals,
            parent,
            release: None,
        }
    }

    /// Also wake when the lock is released. Set this up *before* the first
    /// attempt, so that a release just after a failed attempt is not missed.
    pub fn wake_on_release(mut self, watch: Option<ReleaseWatch>) -> Self {
        self.release = watch;
        self
    }

    /// Does this sleeper wake on release (else it polls on its schedule)?
    pub fn wakes_on_release(&self) -> bool {
        self.release.is_some()
    }

    /// A caught signal that is already pending, if any.
    pub fn pending_signal(&self) -> Option<Signal> {
        self.signals.and_then(Signals::take)
    }

    /// Sleep for `d`, or less if a signal arrives, the lock is released or
    /// the parent dies. No CPU is used meanwhile: one `poll(2)`.
    pub fn sleep(&mut self, d: Duration) -> Wake {
        let deadline = Instant::now() + d;
        loop {
            if let Some(sig) = self.pending_signal() {
                return Wake::Signal(sig);
            }
            if self.parent.as_ref().is_some_and(ParentWatch::gone) {
                return Wake::ParentDied;
            }
            if self.release.as_ref().is_some_and(ReleaseWatch::released) {
                return Wake::Released;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::Elapsed;
            }
            // Without a pidfd the parent is looked at once a second.
            let step = match &self.parent {
                Some(ParentWatch { pidfd: None, .. }) => left.min(Duration::from_secs(1)),
                _ => left,
            };
            let parent_fd = self.parent.as_ref().and_then(|p| p.pidfd.as_ref());
            let mut fds: Vec<PollFd> = Vec::with_capacity(3);
            if let Some(s) = self.signals {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some(w) = &self.release {
                fds.push(PollFd::new(w.inotify.as_fd(), PollFlags::POLLIN));
            }
            let parent_at = fds.len();
            if let Some(fd) = parent_fd {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, poll_timeout(step));
            let parent_fired =
                parent_fd.is_some() && fds[parent_at].revents().is_some_and(|r| !r.is_empty());
            if parent_fired {
                return Wake::ParentDied;
            }
        }
    }
}

/// A poll timeout of at least `d`, rounded up to whole milliseconds.
fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
    PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_liblockfiles() {
        let s: Vec<u64> = (1..=14)
            .map(|n| Schedule::Backoff.delay(n).as_secs())
            .collect();
        assert_eq!(s, [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 60, 60]);
        assert_eq!(Schedule::Backoff.delay(u64::MAX), Duration::from_secs(60));
    }

    #[test]
    fn fixed_and_procmail() {
        let half = Duration::from_millis(500);
        assert_eq!(Schedule::Fixed(half).delay(1), half);
        assert_eq!(Schedule::Fixed(half).delay(99), half);
        assert_eq!(Schedule::PROCMAIL.delay(3), Duration::from_secs(8));
    }

    #[test]
    fn poll_timeout_rounds_up() {
        assert_eq!(i32::from(poll_timeout(Duration::from_micros(1))), 1);
        assert_eq!(i32::from(poll_timeout(Duration::from_secs(2))), 2000);
        assert_eq!(
            i32::from(poll_timeout(Duration::from_secs(u64::MAX))),
            i32::MAX
        );
    }

    #[test]
    fn remote_filesystems_are_known() {
        assert!(is_remote_magic(0x6969));
        assert!(is_remote_magic(0xFF53_4D42));
        assert!(is_remote_magic(0x6573_5546));
        assert!(!is_remote_magic(0xEF53)); // ext4
        assert!(!is_remote_magic(0x0102_1994)); // tmpfs
    }

    #[test]
    fn release_wakes_a_sleeper_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("L");
        std::fs::write(&lock, "0\n").unwrap();
        let watch = ReleaseWatch::new(dir.path(), OsStr::new("L")).expect("inotify on a local dir");
        let mut sleeper = Sleeper::new(None, None).wake_on_release(Some(watch));
        // Other names in the directory do not wake it.
        std::fs::write(dir.path().join("other"), "").unwrap();
        std::fs::remove_file(dir.path().join("other")).unwrap();
        assert_eq!(sleeper.sleep(Duration::from_millis(50)), Wake::Elapsed);
        let remover = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::remove_file(lock).unwrap();
        });
        let start = Instant::now();
        assert_eq!(sleeper.sleep(Duration::from_secs(10)), Wake::Released);
        assert!(start.elapsed() < Duration::from_secs(5));
        remover.join().unwrap();
    }

    #[test]
    fn plain_sleep_sleeps() {
        let start = Instant::now();
        let wake = Sleeper::new(None, None).sleep(Duration::from_millis(30));
        assert_eq!(wake, Wake::Elapsed);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
