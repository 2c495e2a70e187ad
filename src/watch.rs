//! What a sleeping waiter watches besides the clock: the lock's directory
//! (a release wakes it), on remote filesystems the lock itself through
//! probes, and its parent (its death ends a `-p` wait).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::stat::Mode;
use nix::sys::statfs::statfs;
use nix::unistd::getppid;

use crate::dir::{Dir, Meta};
use crate::sys;

/// Watches the parent process: through a pidfd (`pidfd_open(2)`) where the
/// kernel has one, else by noticing that `getppid()` changed.
#[derive(Debug)]
pub struct ParentWatch {
    ppid: i32,
    pub(crate) pidfd: Option<OwnedFd>,
}

impl ParentWatch {
    /// Start watching our current parent.
    pub fn new() -> ParentWatch {
        let ppid = getppid().as_raw();
        let pidfd = sys::pidfd_open(ppid as u32);
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

/// Watches the lock's directory for names being removed or renamed away —
/// dnotify (`fcntl(F_NOTIFY)`, delivered as SIGIO through our signalfd) —
/// so that a waiter tries again the moment the lock is released instead of
/// at the end of its sleep.
///
/// dnotify first, rather than inotify: closing an inotify instance waits
/// for the kernel's fsnotify reaper (see [`crate::release_watch`]); a
/// dnotify registration goes away with its descriptor at no cost. But
/// dnotify does not say which name changed, so every change in the
/// directory wakes every waiter: in a busy directory
/// [`crate::early_wake`] moves to an inotify watch on the lock itself.
///
/// SIGIO is directed at the process: every thread must block it, as a
/// single-threaded command does through [`crate::signals::Signals`].
#[derive(Debug)]
pub struct DirWatch {
    _dir: OwnedFd,
}

/// `<linux/fcntl.h>`: a name was removed, renamed, and keep notifying.
const DN_DELETE: libc::c_int = 0x8;
const DN_RENAME: libc::c_int = 0x10;
const DN_MULTISHOT: libc::c_int = 0x8000_0000_u32 as libc::c_int;

impl DirWatch {
    /// Watch `dir`; `None` where that cannot work (no dnotify). SIGIO,
    /// which carries the notifications, must be caught already.
    pub fn new(dir: &Path) -> Option<DirWatch> {
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        sys::notify(fd.as_fd(), DN_DELETE | DN_RENAME | DN_MULTISHOT)
            .then_some(DirWatch { _dir: fd })
    }

    /// The directory, not registered: a test process does not catch SIGIO.
    #[cfg(test)]
    pub(crate) fn unregistered(dir: &Path) -> DirWatch {
        let fd = nix::fcntl::open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty());
        DirWatch { _dir: fd.unwrap() }
    }
}

/// Looks, between a waiter's counted attempts, whether a lock on a remote
/// filesystem was released on another machine: a few cheap calls per
/// probe, at pauses that back off (`Backoff`), so that a waiter that
/// waits a minute costs the server about one call a second.
///
/// What a probe looks at must get past the client's caches. On Linux NFS:
///
/// - `stat(2)` may be answered from the attribute cache (`acregmin` 3 s up
///   to `acregmax` 60 s) and the name from the dentry cache, which is
///   trusted as long as the directory's cached attributes are (`acdirmin`
///   30 s up to `acdirmax` 60 s): a lock removed by another client can
///   look present for a minute.
/// - `open(2)` without `O_PATH` is a lookup with the `LOOKUP_OPEN` intent:
///   close-to-open makes the client revalidate the file with the server
///   (`GETATTR`) whatever it has cached. A file removed on the server
///   answers `ESTALE`; the client then drops the name and looks it up
///   again (`LOOKUP`): `ENOENT`. A file still open elsewhere may survive
///   its last name on the server, so the opened file's link count is
///   read too: 0 means removed.
///
/// So a probe `lstat`s the name first, from the caches (free; never opens
/// a device, FIFO or symbolic link found at the name), then opens it to
/// revalidate: normally one `GETATTR` while the lock is held, a `LOOKUP`
/// more when it is gone. A missing name is believed at once: at worst it
/// is a cached negative entry, and the attempt it causes (its `link(2)`
/// goes to the server and drops that entry on `EEXIST`) costs a few calls,
/// once. `ESTALE` and other errors count as "still there": the counted
/// attempts on the schedule deal with them. A wait for any of N locks
/// (`--slots N`) looks at each of them at every probe: N times the cost.
#[derive(Debug)]
pub struct ReleaseProbe {
    dir: Dir,
    names: Vec<OsString>,
    backoff: Backoff,
    since: Instant,
}

impl ReleaseProbe {
    /// Probe for any of `locks` (all in `dir`) going away; `None` if the
    /// directory cannot be opened (the attempts will say why).
    pub fn new(locks: &[PathBuf], dir: &Path) -> Option<ReleaseProbe> {
        let dir = Dir::open(dir).ok()?;
        let names = locks
            .iter()
            .filter_map(|l| l.file_name())
            .map(OsStr::to_os_string);
        Some(ReleaseProbe {
            dir,
            names: names.collect(),
            backoff: Backoff::new(),
            since: Instant::now(),
        })
    }

    /// Look for `locks` (all in `dir`) from now on, the pauses going on
    /// as they were.
    pub(crate) fn look_for(&mut self, locks: &[PathBuf], dir: &Path) {
        if let Ok(d) = Dir::open(dir) {
            self.dir = d;
        }
        self.names = locks
            .iter()
            .filter_map(|l| l.file_name())
            .map(OsStr::to_os_string)
            .collect();
    }

    /// How long to wait before the next probe.
    pub(crate) fn pause(&mut self) -> Duration {
        let waited = self.since.elapsed();
        self.backoff.pause(waited, rand::random::<f64>())
    }

    /// Is one of the locks gone, as the server sees it?
    pub(crate) fn released(&self) -> bool {
        self.names.iter().any(|name| self.gone(name))
    }

    fn gone(&self, name: &OsStr) -> bool {
        match self.dir.lstat(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Ok(meta) if meta.is_file() || meta.is_dir() => {}
            _ => return false,
        }
        match self.dir.open_read(name) {
            Ok(file) => Meta::of(&file).is_ok_and(|m| m.nlink == 0),
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }
}

/// The pauses between release probes: from [`Backoff::FIRST`], doubling,
/// up to a cap that is [`Backoff::CAP`] for the first seconds and then
/// grows with the wait, a sixteenth of the time waited so far, to at most
/// [`Backoff::MAX`]. Each pause is moved by up to a fifth either way, so
/// that many waiters woken by one release do not probe in step.
///
/// A hand-over is therefore fast when the release comes soon, at most
/// about `CAP` late after a hold of a few seconds, and at most a sixteenth
/// of the wait late after a long one; a waiter that waits a minute probes
/// about once a second, and one that waits an hour once every `MAX`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) const FIRST: Duration = Duration::from_millis(20);
    pub(crate) const CAP: Duration = Duration::from_millis(800);
    pub(crate) const MAX: Duration = Duration::from_secs(2);

    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The next pause, `waited` into the wait; `jitter` in `[0, 1)` places
    /// it between 0.8 and 1.2 times the nominal one.
    pub(crate) fn pause(&mut self, waited: Duration, jitter: f64) -> Duration {
        let cap = (waited / 16).clamp(Self::CAP, Self::MAX);
        let nominal = self.next.min(cap);
        self.next = (nominal * 2).min(Self::MAX);
        nominal.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_filesystems_are_known() {
        assert!(is_remote_magic(0x6969));
        assert!(is_remote_magic(0xFF53_4D42));
        assert!(is_remote_magic(0x6573_5546));
        assert!(!is_remote_magic(0xEF53)); // ext4
        assert!(!is_remote_magic(0x0102_1994)); // tmpfs
    }

    #[test]
    fn a_probe_sees_a_lock_gone_and_never_opens_what_is_not_a_lock() {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let tmp = tempfile::tempdir().unwrap();
        let at = |name: &str| tmp.path().join(name);
        std::fs::write(at("L"), "0\n").unwrap();
        std::fs::create_dir(at("D")).unwrap();
        nix::unistd::mkfifo(&at("F"), Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::symlink("L", at("S")).unwrap();
        let probe = |names: &[&str]| {
            let locks: Vec<PathBuf> = names.iter().map(|n| at(n)).collect();
            ReleaseProbe::new(&locks, tmp.path()).unwrap().released()
        };
        // What each probe opened: close-to-open needs the open, and a
        // FIFO or device is never opened.
        let opened = |name: &str, names: &[&str]| {
            let watch = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
            watch.add_watch(&at(name), AddWatchFlags::IN_OPEN).unwrap();
            let released = probe(names);
            (released, watch.read_events().is_ok_and(|e| !e.is_empty()))
        };
        assert_eq!(opened("L", &["L"]), (false, true), "a file held");
        assert_eq!(opened("D", &["D"]), (false, true), "a lock directory held");
        assert_eq!(opened("F", &["F"]), (false, false), "a FIFO");
        assert_eq!(opened("L", &["S"]), (false, false), "a symbolic link");
        assert!(probe(&["gone"]));
        assert!(probe(&["L", "gone"]), "any of them");
        // A name that cannot be looked at is not a release.
        assert!(!probe(&[&"n".repeat(300)]));
        std::fs::remove_file(at("L")).unwrap();
        std::fs::remove_dir(at("D")).unwrap();
        assert!(probe(&["L"]) && probe(&["D"]));
    }

    #[test]
    fn the_first_probe_comes_after_tens_of_milliseconds() {
        let tmp = tempfile::tempdir().unwrap();
        let mut probe = ReleaseProbe::new(&[tmp.path().join("L")], tmp.path()).unwrap();
        let first = probe.pause();
        assert!(
            (Duration::from_millis(16)..=Duration::from_millis(24)).contains(&first),
            "{first:?}"
        );
        assert!(probe.pause() >= Duration::from_millis(32));
    }

    fn ms(pauses: impl Iterator<Item = Duration>) -> Vec<u128> {
        pauses.map(|d| d.as_millis()).collect()
    }

    #[test]
    fn probes_back_off_from_tens_of_milliseconds_to_the_cap() {
        let mut b = Backoff::new();
        let early = ms((0..9).map(|_| b.pause(Duration::from_secs(1), 0.5)));
        assert_eq!(early, [20, 40, 80, 160, 320, 640, 800, 800, 800]);
    }

    #[test]
    fn the_cap_grows_with_the_wait_to_the_max() {
        let mut b = Backoff::new();
        for _ in 0..8 {
            b.pause(Duration::ZERO, 0.5);
        }
        let at = |b: &mut Backoff, s: u64| b.pause(Duration::from_secs(s), 0.5).as_millis();
        assert_eq!(at(&mut b, 12), 800);
        assert_eq!(at(&mut b, 16), 1000);
        assert_eq!(at(&mut b, 24), 1500);
        assert_eq!(at(&mut b, 32), 2000);
        assert_eq!(at(&mut b, 3600), 2000);
        // A long wait does not skip the fast start.
        let mut fresh = Backoff::new();
        assert_eq!(at(&mut fresh, 3600), 20);
        assert_eq!(at(&mut fresh, 3600), 40);
    }

    #[test]
    fn probe_pauses_are_jittered_by_a_fifth_either_way() {
        let second = Duration::from_secs(1);
        let mut low = Backoff::new();
        let mut high = Backoff::new();
        assert_eq!(low.pause(second, 0.0), Duration::from_millis(16));
        assert_eq!(high.pause(second, 1.0), Duration::from_millis(24));
        assert_eq!(low.pause(second, 0.0), Duration::from_millis(32));
        assert_eq!(Backoff::new().pause(second, 7.0), Duration::from_millis(24));
        assert_eq!(
            Backoff::new().pause(second, -1.0),
            Duration::from_millis(16)
        );
    }
}
