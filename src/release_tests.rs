//! The release rules, one by one: each test names the rule it pins.

use std::time::Duration;

use super::*;
use crate::judge::Reason;

const ME: u32 = 4242;
const OTHER: u32 = 777;

const MACHINE: &str = "0123456789abcdef0123456789abcdef";

fn here() -> Here {
    Here {
        host: "h1".into(),
        machine_id: Some(MACHINE.into()),
        boot_id: Some("boot-a".into()),
        pidns: Some(4_026_531_836),
        uptime: Some(Duration::from_secs(3600)),
    }
}

/// A record as native tools write it on `here()`, naming `pid`.
fn record(pid: u32) -> Record {
    Record {
        pid: Some(pid),
        start: Some(99),
        host: Some("h1".into()),
        boot_id: Some("boot-a".into()),
        pidns: Some(4_026_531_836),
        ..Record::default()
    }
}

fn valid() -> Verdict {
    Verdict::Valid(Reason::Fresh {
        age: Duration::from_secs(1),
    })
}

/// The claim on `r`, judged `verdict`, where only `ME` is the caller's
/// ancestor (on host `h1`, start 99).
fn claim(r: Record, verdict: Verdict, caller: Caller) -> Claim {
    let holder = Holder::new(r, None, verdict);
    Claim::of(&holder, caller, &here(), |pid, host, start| {
        pid == ME && host.is_none_or(|h| h == "h1") && start.is_none_or(|s| s == 99)
    })
}

fn both(c: &Claim, force: bool) -> (Release, Release) {
    (rule(Rules::File, c, force), rule(Rules::Dir, c, force))
}

#[test]
fn the_callers_own_lock_is_released() {
    let c = claim(record(ME), valid(), Caller::Ancestry);
    assert!(c.ours);
    assert_eq!(both(&c, false), (Release::Ours, Release::Ours));
}

#[test]
fn an_ancestor_is_matched_on_this_boot_and_pid_namespace_only() {
    assert!(claim(record(ME), valid(), Caller::Ancestry).ours);
    assert!(!claim(record(OTHER), valid(), Caller::Ancestry).ours);
    let other_boot = Record {
        boot_id: Some("boot-b".into()),
        ..record(ME)
    };
    assert!(!claim(other_boot, valid(), Caller::Ancestry).ours);
    // A same-named machine's pid is not our ancestor's, whatever it is.
    let other_machine = Record {
        machine_id: Some("fedcba9876543210fedcba9876543210".into()),
        ..record(ME)
    };
    assert!(!claim(other_machine, valid(), Caller::Ancestry).ours);
    let same_machine = Record {
        machine_id: Some(MACHINE.into()),
        ..record(ME)
    };
    assert!(claim(same_machine, valid(), Caller::Ancestry).ours);
    let other_ns = Record {
        pidns: Some(1),
        ..record(ME)
    };
    assert!(!claim(other_ns, valid(), Caller::Ancestry).ours);
    let reused = Record {
        start: Some(100),
        ..record(ME)
    };
    assert!(!claim(reused, valid(), Caller::Ancestry).ours);
    // A legacy record with no boot or namespace: the ancestry decides.
    let bare = Record {
        pid: Some(ME),
        ..Record::default()
    };
    assert!(claim(bare, valid(), Caller::Ancestry).ours);
}

#[test]
fn with_pid_the_very_pid_is_ours_and_no_other() {
    assert!(claim(record(OTHER), valid(), Caller::Pid(OTHER)).ours);
    assert!(!claim(record(ME), valid(), Caller::Pid(OTHER)).ours);
    assert!(!claim(Record::default(), valid(), Caller::Pid(OTHER)).ours);
}

#[test]
fn a_proven_dead_holders_lock_is_stale_for_both() {
    for dead in [
        Reason::Dead { pid: OTHER },
        Reason::PidReused { pid: OTHER },
        Reason::OtherBoot,
    ] {
        let c = claim(record(OTHER), Verdict::Stale(dead), Caller::Ancestry);
        assert_eq!(
            both(&c, false),
            (Release::Stale, Release::Stale),
            "{dead:?}"
        );
    }
}

#[test]
fn an_aged_lock_is_stale_as_a_dot_lock_but_not_as_a_directory() {
    let aged = Verdict::Stale(Reason::Aged {
        age: Duration::from_secs(900),
    });
    let c = claim(record(OTHER), aged, Caller::Ancestry);
    assert_eq!(both(&c, false), (Release::Stale, Release::Refused));
}

#[test]
fn a_legacy_zero_names_nobody_and_anyone_may_remove_the_dot_lock() {
    let c = claim(Record::default(), valid(), Caller::Ancestry);
    assert!(c.names_nobody && !c.ours);
    assert_eq!(both(&c, false), (Release::Nobody, Release::Refused));
    // Readers hold a lock together without naming anyone: theirs.
    let shared = Record {
        shared: true,
        ..Record::default()
    };
    let readers = Verdict::Valid(Reason::Readers { count: 2 });
    let c = claim(shared, readers, Caller::Ancestry);
    assert_eq!(rule(Rules::File, &c, false), Release::Refused);
}

#[test]
fn another_hosts_live_lock_is_refused() {
    let elsewhere = Record {
        host: Some("h2".into()),
        ..record(ME)
    };
    let c = claim(elsewhere, valid(), Caller::Ancestry);
    assert!(!c.ours);
    assert_eq!(both(&c, false), (Release::Refused, Release::Refused));
}

#[test]
fn force_removes_what_is_refused_and_a_directory_whatever_it_is() {
    let c = claim(record(OTHER), valid(), Caller::Ancestry);
    assert_eq!(both(&c, true), (Release::Forced, Release::Forced));
    // A dead holder's directory is swept whole on --force, not broken.
    let dead = claim(
        record(OTHER),
        Verdict::Stale(Reason::Dead { pid: OTHER }),
        Caller::Ancestry,
    );
    assert_eq!(both(&dead, true), (Release::Stale, Release::Forced));
    // Force never turns the caller's own into somebody else's.
    let ours = claim(record(ME), valid(), Caller::Ancestry);
    assert_eq!(both(&ours, true), (Release::Ours, Release::Ours));
}

#[test]
fn on_disk_a_live_strangers_lock_is_refused_and_ours_removed() {
    let dir = tempfile::tempdir().unwrap();
    let lock = LockPath::new(dir.path().join("L")).unwrap();
    let policy = Policy::default();
    assert!(!release_file(&lock, &policy, false).unwrap(), "none there");
    // A child of ours is alive and no ancestor of ours.
    let stranger = Stranger::start();
    let live = Record::for_holder(Some(stranger.pid()), Some("sleep".into()));
    std::fs::write(lock.path(), live.to_bytes()).unwrap();
    let refused = release_file(&lock, &policy, false).unwrap_err();
    assert!(matches!(refused, Error::NotOurs { .. }), "{refused:?}");
    assert!(lock.path().exists());
    assert!(release_file(&lock, &policy, true).unwrap());
    assert!(!lock.path().exists());
    // The test runner's parent is the caller: its lock is ours.
    let ppid = nix::unistd::getppid().as_raw() as u32;
    let caller = Record::for_holder(Some(ppid), None);
    std::fs::write(lock.path(), caller.to_bytes()).unwrap();
    assert!(release_file(&lock, &policy, false).unwrap());
}

#[test]
fn on_disk_a_directory_is_released_by_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let lock = LockPath::new(dir.path().join("D")).unwrap();
    let policy = Policy::default();
    let grace = Duration::from_secs(10);
    assert!(!release_dir(&lock, &policy, grace, Caller::Ancestry, false).unwrap());
    std::fs::create_dir(lock.path()).unwrap();
    let stranger = Stranger::start();
    let live = Record::for_holder(Some(stranger.pid()), None);
    std::fs::write(lock.path().join("owner"), live.to_bytes()).unwrap();
    let refused = release_dir(&lock, &policy, grace, Caller::Ancestry, false).unwrap_err();
    assert!(matches!(refused, Error::NotOurs { .. }), "{refused:?}");
    let caller = Caller::Pid(stranger.pid());
    assert!(release_dir(&lock, &policy, grace, caller, false).unwrap());
    assert!(!lock.path().exists());
    // A dead holder's: broken.
    std::fs::create_dir(lock.path()).unwrap();
    let dead = Record::for_holder(Some(i32::MAX as u32 - 1), None);
    std::fs::write(lock.path().join("owner"), dead.to_bytes()).unwrap();
    assert!(release_dir(&lock, &policy, grace, Caller::Ancestry, false).unwrap());
    assert!(!lock.path().exists());
}

/// A lock held by readers together: `L` (`shared=1`) and two shares, the
/// caller's (`.r…001`) and a live stranger's (`.r…002`).
fn readers(dir: &std::path::Path, stranger: &Stranger) -> LockPath {
    let lock = LockPath::new(dir.join("L")).unwrap();
    let together = Record {
        shared: true,
        ..Record::for_holder(None, None)
    };
    std::fs::write(lock.path(), together.to_bytes()).unwrap();
    let ppid = nix::unistd::getppid().as_raw() as u32;
    let caller = Record::for_holder(Some(ppid), None);
    std::fs::write(dir.join("L.r000000000001"), caller.to_bytes()).unwrap();
    let other = Record::for_holder(Some(stranger.pid()), None);
    std::fs::write(dir.join("L.r000000000002"), other.to_bytes()).unwrap();
    lock
}

#[test]
fn a_lock_held_by_readers_is_seen_with_each_reader() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = Stranger::start();
    let lock = readers(dir.path(), &stranger);
    let h = Holder::of_file(&lock, &Policy::default()).unwrap().unwrap();
    assert_eq!(h.verdict, Verdict::Valid(Reason::Readers { count: 2 }));
    let mut pids: Vec<_> = h.readers.iter().map(|(_, r)| r.record.pid).collect();
    pids.sort();
    let ppid = nix::unistd::getppid().as_raw() as u32;
    let mut want = vec![Some(ppid), Some(stranger.pid())];
    want.sort();
    assert_eq!(pids, want);
    // The same as a lock directory's: its owner record seen and judged.
    let d = LockPath::new(dir.path().join("D")).unwrap();
    std::fs::create_dir(d.path()).unwrap();
    let owner = Record::for_holder(Some(stranger.pid()), Some("sleep".into()));
    std::fs::write(d.path().join("owner"), owner.to_bytes()).unwrap();
    let h = Holder::of_dir(&d, &Policy::default(), Duration::ZERO)
        .unwrap()
        .unwrap();
    assert_eq!(h.record.cmd.as_deref(), Some("sleep"));
    assert_eq!(h.alive(), Some(true));
}

#[test]
fn a_reader_leaves_only_its_own_share_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = Stranger::start();
    let lock = readers(dir.path(), &stranger);
    let policy = Policy::default();
    let (ours, all) = own_shares(&lock, &policy).unwrap();
    assert_eq!((ours.len(), all.len()), (1, 2));
    assert!(ours[0].path.path().ends_with("L.r000000000001"));
    leave_shared(&lock, Kind::File, &policy, false).unwrap();
    let ours_gone = !dir.path().join("L.r000000000001").exists();
    assert!(ours_gone && dir.path().join("L.r000000000002").exists());
    assert!(lock.path().exists(), "a reader is left: L stays");
    // Only a stranger's share left: refused, then forced.
    let refused = leave_shared(&lock, Kind::File, &policy, false).unwrap_err();
    assert!(matches!(refused, Error::NotOurs { .. }), "{refused:?}");
    assert!(dir.path().join("L.r000000000002").exists());
    leave_shared(&lock, Kind::File, &policy, true).unwrap();
    assert!(!dir.path().join("L.r000000000002").exists());
    assert!(!lock.path().exists(), "no reader left: L goes too");
}

#[test]
fn a_reader_touches_its_own_share() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = Stranger::start();
    let lock = readers(dir.path(), &stranger);
    let hour_ago = crate::seam::local_now() - Duration::from_secs(3600);
    let mtime = |name: &str| {
        let p = dir.path().join(name);
        std::fs::metadata(p).unwrap().modified().unwrap()
    };
    for name in ["L", "L.r000000000001", "L.r000000000002"] {
        let f = std::fs::File::options()
            .write(true)
            .open(dir.path().join(name));
        f.unwrap().set_modified(hour_ago).unwrap();
    }
    assert!(touch_shared(&lock, Kind::File, &Policy::default()).unwrap());
    assert!(mtime("L.r000000000001") > hour_ago, "ours touched");
    assert!(mtime("L") > hour_ago, "the shared lock touched");
    assert_eq!(
        mtime("L.r000000000002"),
        hour_ago,
        "the stranger's left alone"
    );
    std::fs::remove_file(dir.path().join("L.r000000000001")).unwrap();
    assert!(!touch_shared(&lock, Kind::File, &Policy::default()).unwrap());
}

#[test]
fn a_directory_held_by_readers_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = Stranger::start();
    let lock = LockPath::new(dir.path().join("D")).unwrap();
    std::fs::create_dir(lock.path()).unwrap();
    let together = Record {
        shared: true,
        ..Record::for_holder(None, None)
    };
    std::fs::write(lock.path().join("owner"), together.to_bytes()).unwrap();
    let share = Record::for_holder(Some(stranger.pid()), None);
    std::fs::write(dir.path().join("D.r000000000001"), share.to_bytes()).unwrap();
    let grace = Duration::from_secs(10);
    let refused = release_dir(&lock, &Policy::default(), grace, Caller::Ancestry, false);
    match refused {
        Err(Error::NotOurs { holder, .. }) => {
            assert_eq!(
                holder,
                "readers (held shared by 1 reader; each leaves with -u --shared)"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(lock.path().exists());
}

/// A live process that is no ancestor of ours: a child, killed on drop.
struct Stranger(std::process::Child);

impl Stranger {
    fn start() -> Stranger {
        let child = std::process::Command::new("sleep").arg("60").spawn();
        Stranger(child.expect("sleep runs"))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
