//! How a sleeping waiter sees, before its next counted attempt, that a lock
//! it awaits was released.
//!
//! - In a quiet directory: a dnotify watch on the lock's directory
//!   ([`DirWatch`]), free to set up and to close. Every name removed or
//!   renamed in the directory wakes the waiter, which then looks at the
//!   awaited names: one gone, or holding another file, is a release.
//! - In a busy directory — a spool, `/var/lock` — most such wakes have
//!   nothing to do with the lock. A wake that finds the awaited locks
//!   exactly as they were (same inode, same change time) is *unrelated*;
//!   one that finds a lock changed but still there (its holder's temporary
//!   file unlinked, a touch) is *related*. When unrelated wakes outnumber
//!   related ones by [`BUSY`] (each related one counting four), the waiter
//!   moves to an inotify watch on the locks themselves ([`ReleaseWatch`]),
//!   which nothing else wakes; where none can be had, to probes on a
//!   backoff ([`ReleaseProbe`]). A contended lock in a quiet directory
//!   never moves: each hand-over brings related wakes.
//! - On a remote filesystem the kernel sees only this machine's changes:
//!   probes look for the others' releases as well.
//!
//! The awaited names are looked at (or watched) anew after every busy
//! attempt ([`EarlyWake::awaiting`]), the watch being set up before the
//! look: no release between an attempt and the sleep is missed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::release_watch::{Armed, Ident, ReleaseWatch, inode_at};
use crate::watch::{DirWatch, ReleaseProbe, is_remote};

/// Unrelated wakes (beyond four per related one) that make a directory busy.
pub(crate) const BUSY: i32 = 16;

/// Releases seen by arming in a row (each a lock taken and released again
/// between an attempt and the watch) before probes take over: beyond that
/// the lock is busy for another reason (a readers' gate, a waiting writer),
/// and attempts must not follow each other in a tight loop.
const EMPTY_ARMS: u32 = 3;

#[derive(Debug)]
enum How {
    /// Not set up yet: at the first sleep.
    Unarmed,
    /// The directory (watched while held), and what was at each name when
    /// last looked at.
    Dir {
        _watch: DirWatch,
        seen: Vec<Option<Ident>>,
    },
    /// The locks themselves.
    Inode(ReleaseWatch),
    /// Only probes.
    Probe,
}

/// A waiter's early wake (see the module docs).
#[derive(Debug)]
pub(crate) struct EarlyWake {
    dir: PathBuf,
    names: Vec<PathBuf>,
    how: How,
    rearm: bool,
    /// Unrelated wakes less four per related one, from zero.
    unrelated: i32,
    empty: u32,
    remote: Option<bool>,
    probe: Option<(ReleaseProbe, Instant)>,
    probing: bool,
}

impl EarlyWake {
    /// Wake early when one of `names` (all in `dir`) is released.
    pub(crate) fn new(names: Vec<PathBuf>, dir: &Path) -> EarlyWake {
        EarlyWake {
            dir: dir.to_path_buf(),
            names,
            how: How::Unarmed,
            rearm: true,
            unrelated: 0,
            empty: 0,
            remote: None,
            probe: None,
            probing: false,
        }
    }

    /// From the next sleep on, await `names`, as they are then.
    pub(crate) fn awaiting(&mut self, names: Vec<PathBuf>) {
        self.names = names;
        self.rearm = true;
    }

    /// Before a sleep: watch the names anew if an attempt was made since;
    /// `true`: one is released already. `dnotify` says, at the first sleep,
    /// whether SIGIO is caught, so that the directory watch can be used.
    pub(crate) fn arm(&mut self, dnotify: impl FnOnce() -> bool) -> bool {
        if !std::mem::take(&mut self.rearm) {
            return false;
        }
        if matches!(self.how, How::Unarmed) {
            self.how = match dnotify().then(|| DirWatch::new(&self.dir)).flatten() {
                Some(watch) => How::Dir {
                    _watch: watch,
                    seen: Vec::new(),
                },
                None => Self::inode_or_probe(),
            };
        }
        let armed = match &mut self.how {
            How::Dir { seen, .. } => look(&self.names, seen),
            How::Inode(watch) => watch.arm(&self.names),
            How::Unarmed | How::Probe => Armed::Unwatchable,
        };
        self.settle(armed)
    }

    fn inode_or_probe() -> How {
        ReleaseWatch::new().map_or(How::Probe, How::Inode)
    }

    /// Act on how arming went; `true`: released.
    fn settle(&mut self, armed: Armed) -> bool {
        let remote = *self.remote.get_or_insert_with(|| is_remote(&self.dir));
        self.probing = remote || armed != Armed::Watching;
        match armed {
            Armed::Released if self.empty < EMPTY_ARMS => {
                self.empty += 1;
                return true;
            }
            Armed::Watching => self.empty = 0,
            _ => {}
        }
        if self.probing {
            match &mut self.probe {
                Some((probe, _)) => probe.look_for(&self.names, &self.dir),
                None => {
                    self.probe = ReleaseProbe::new(&self.names, &self.dir).map(|mut probe| {
                        let due = Instant::now() + probe.pause();
                        (probe, due)
                    });
                }
            }
        }
        false
    }

    /// The directory changed (SIGIO); `true`: an awaited lock was released.
    pub(crate) fn directory_changed(&mut self) -> bool {
        let How::Dir { seen, .. } = &mut self.how else {
            return false;
        };
        let mut related = false;
        for (name, slot) in self.names.iter().zip(seen.iter_mut()) {
            match (inode_at(name), *slot) {
                (Ok(None), _) => return true,
                (Ok(Some(now)), Some(was)) if (now.0, now.1) != (was.0, was.1) => return true,
                (Ok(Some(now)), Some(was)) if now != was => {
                    related = true;
                    *slot = Some(now);
                }
                _ => {}
            }
        }
        self.unrelated = match related {
            true => (self.unrelated - 4).max(0),
            false => self.unrelated + 1,
        };
        if self.unrelated <= BUSY {
            return false;
        }
        // A busy directory: watch the locks themselves.
        self.how = Self::inode_or_probe();
        let armed = match &mut self.how {
            How::Inode(watch) => watch.arm(&self.names),
            _ => Armed::Unwatchable,
        };
        self.settle(armed)
    }

    /// The inotify watch, while it is the one in use.
    pub(crate) fn inode_watch(&self) -> Option<&ReleaseWatch> {
        match &self.how {
            How::Inode(watch) => Some(watch),
            _ => None,
        }
    }

    /// When the next probe is due, if probes are needed.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.probe
            .as_ref()
            .filter(|_| self.probing)
            .map(|(_, due)| *due)
    }

    /// Probe if one is due; `true`: released.
    pub(crate) fn probe(&mut self) -> bool {
        match &mut self.probe {
            Some((probe, due)) if self.probing && Instant::now() >= *due => {
                let released = probe.released();
                *due = Instant::now() + probe.pause();
                released
            }
            _ => false,
        }
    }

    /// Leave an inotify watch to the process's exit
    /// ([`ReleaseWatch::linger`]).
    pub(crate) fn linger(&mut self) {
        if let How::Inode(_) = self.how
            && let How::Inode(watch) = std::mem::replace(&mut self.how, How::Probe)
        {
            watch.linger();
        }
    }
}

/// What is at each of `names` now, into `seen`.
fn look(names: &[PathBuf], seen: &mut Vec<Option<Ident>>) -> Armed {
    seen.clear();
    for name in names {
        match inode_at(name) {
            Ok(Some(at)) => seen.push(Some(at)),
            Ok(None) => return Armed::Released,
            Err(_) => seen.push(None),
        }
    }
    Armed::Watching
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_directory_moves_to_the_lock_itself_and_a_contended_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = tmp.path().join("L");
        std::fs::write(&lock, "1\n").unwrap();
        // Without SIGIO (no dnotify here), the lock itself at once.
        let mut early = EarlyWake::new(vec![lock.clone()], tmp.path());
        assert!(!early.arm(|| false));
        assert!(early.inode_watch().is_some());
        // With the directory watch: unrelated wakes move it.
        let mut early = EarlyWake::new(vec![lock.clone()], tmp.path());
        early.how = How::Dir {
            _watch: DirWatch::unregistered(tmp.path()),
            seen: Vec::new(),
        };
        assert!(!early.arm(|| false));
        for _ in 0..BUSY {
            assert!(!early.directory_changed());
        }
        assert!(early.inode_watch().is_none(), "moved too soon");
        assert!(!early.directory_changed());
        assert!(early.inode_watch().is_some(), "a busy directory");
        // Armed on the lock at once: its release is seen.
        let renamed = tmp.path().join("renamed");
        std::fs::rename(&lock, &renamed).unwrap();
        assert!(early.inode_watch().unwrap().released(), "watching the lock");
        std::fs::rename(&renamed, &lock).unwrap();
        // Related wakes (the lock changed, still there) keep it put.
        let mut early = EarlyWake::new(vec![lock.clone()], tmp.path());
        early.how = How::Dir {
            _watch: DirWatch::unregistered(tmp.path()),
            seen: Vec::new(),
        };
        assert!(!early.arm(|| false));
        for i in 0..10 * BUSY {
            if i % 4 == 0 {
                // A change time the filesystem's clock grain can tell apart.
                std::thread::sleep(std::time::Duration::from_millis(5));
                std::fs::write(&lock, "1\n").unwrap();
            }
            assert!(!early.directory_changed());
        }
        assert!(early.inode_watch().is_none(), "a contended lock moved");
        std::fs::remove_file(&lock).unwrap();
        assert!(early.directory_changed(), "the release");
    }

    #[test]
    fn a_name_empty_at_each_arm_turns_to_probes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut early = EarlyWake::new(vec![tmp.path().join("gate")], tmp.path());
        for _ in 0..EMPTY_ARMS {
            early.awaiting(vec![tmp.path().join("gate")]);
            assert!(early.arm(|| false));
        }
        early.awaiting(vec![tmp.path().join("gate")]);
        assert!(!early.arm(|| false), "a tight loop of attempts");
        // Probes instead, the first some milliseconds ahead: none is due
        // now, and when it is, the empty name is a release.
        let due = early.due().expect("probing");
        assert!(due > Instant::now());
        assert!(!early.probe(), "not due yet");
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        assert!(early.probe(), "due, and the name is empty");
        assert!(early.due().unwrap() > Instant::now(), "the next one later");
        // A watch that holds again starts the count afresh.
        std::fs::write(tmp.path().join("gate"), "").unwrap();
        early.awaiting(vec![tmp.path().join("gate")]);
        assert!(!early.arm(|| false));
        assert!(early.due().is_none(), "no probes while watching");
        std::fs::remove_file(tmp.path().join("gate")).unwrap();
        early.awaiting(vec![tmp.path().join("gate")]);
        assert!(early.arm(|| false), "the count started afresh");
    }

    #[test]
    fn the_directory_watch_sees_a_lock_gone_or_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let (lock, other) = (tmp.path().join("L"), tmp.path().join("N"));
        for replace in [false, true] {
            std::fs::write(&lock, "1\n").unwrap();
            let mut early = EarlyWake::new(vec![lock.clone()], tmp.path());
            early.how = How::Dir {
                _watch: DirWatch::unregistered(tmp.path()),
                seen: Vec::new(),
            };
            assert!(!early.arm(|| false));
            match replace {
                true => {
                    std::fs::write(&other, "2\n").unwrap();
                    std::fs::rename(&other, &lock).unwrap();
                }
                false => std::fs::remove_file(&lock).unwrap(),
            }
            assert!(early.directory_changed(), "replaced: {replace}");
            let _ = std::fs::remove_file(&lock);
        }
    }
}
