//! Unit tests of `debris`: which temporary files are debris.

use super::*;
use std::time::UNIX_EPOCH;

struct Fake(Liveness);

impl Probe for Fake {
    fn liveness(&self, _pid: u32) -> Liveness {
        self.0
    }
    fn start_time(&self, _pid: u32) -> Option<u64> {
        None
    }
}

const MACHINE: &str = "0123456789abcdef0123456789abcdef";

fn here() -> Here {
    Here {
        host: "mail.example.org".into(),
        machine_id: Some(MACHINE.into()),
        boot_id: Some("boot-a".into()),
        pidns: Some(7),
        uptime: Some(Duration::from_secs(3600)),
    }
}

/// A record written on this host, boot and pid namespace.
fn ours() -> Record {
    Record {
        pid: Some(12345),
        host: Some("mail.example.org".into()),
        machine_id: Some(MACHINE.into()),
        boot_id: Some("boot-a".into()),
        pidns: Some(7),
        ..Record::default()
    }
}

/// The filesystem's clock at `secs` (it reads 100 "now").
fn t(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((1_000_000 + secs) as u64)
}

fn started_10s_ago(_: u32) -> Option<Duration> {
    Some(Duration::from_secs(10))
}

fn started_long_ago(_: u32) -> Option<Duration> {
    Some(Duration::from_secs(100_000))
}

fn judge_with(name: TempName, record: &Record, mtime: SystemTime, probe: &dyn Probe) -> bool {
    let here = here();
    let cx = Context {
        fs_now: t(100),
        stale_after: Duration::from_secs(300),
        here: &here,
        pid_max: Some(4_194_304),
        probe,
        started_ago: started_long_ago,
    };
    is_debris(name, record, mtime, &cx)
}

const THIS: TempName = TempName {
    pid: Some(12345),
    this_host: true,
};

#[test]
fn names_are_parsed_by_the_shape_temp_name_gives() {
    let p = |s: &str| parse(OsStr::new(s), b"mail");
    assert_eq!(p(".lk12345deadbeef.mail"), Some(THIS));
    assert_eq!(
        p(".lk00042deadbeef.mail"),
        Some(TempName {
            pid: Some(42),
            this_host: true
        })
    );
    assert_eq!(
        p(".lk12345deadbeef.other"),
        Some(TempName {
            pid: Some(12345),
            this_host: false
        })
    );
    let foreign = Some(TempName {
        pid: None,
        this_host: false,
    });
    // liblockfile's names, short or odd ones: `.lk`, but not ours.
    assert_eq!(p(".lk123457mail"), foreign);
    assert_eq!(p(".lk1234deadbeef.mail"), foreign, "a pid of 4 digits");
    assert_eq!(p(".lk12345deadbeeg.mail"), foreign, "not hex");
    assert_eq!(p(".lk12345DEADBEEF.mail"), foreign, "not lowercase");
    assert_eq!(p(".lk1x345deadbeef.mail"), foreign, "not digits");
    assert_eq!(p(".lk"), foreign);
    assert_eq!(p("lk12345deadbeef.mail"), None);
    assert_eq!(p("L.lk12345deadbeef.mail"), None);
    assert_eq!(p(".Lk12345deadbeef.mail"), None);
}

#[test]
fn a_dead_process_of_this_host_leaves_debris() {
    assert!(judge_with(THIS, &ours(), t(99), &Fake(Liveness::Gone)));
}

#[test]
fn a_live_process_keeps_its_file() {
    assert!(!judge_with(THIS, &ours(), t(99), &Fake(Liveness::Running)));
    assert!(!judge_with(THIS, &ours(), t(99), &Fake(Liveness::Unknown)));
}

#[test]
fn a_reused_pid_is_no_proof_of_life() {
    let here = here();
    let cx = Context {
        fs_now: t(100),
        stale_after: Duration::from_secs(300),
        here: &here,
        pid_max: None,
        probe: &Fake(Liveness::Running),
        started_ago: started_10s_ago,
    };
    // Written 50 s ago by a process that started 10 s ago: not its.
    assert!(is_debris(THIS, &ours(), t(50), &cx));
    // Written 5 s ago: it may well be its.
    assert!(!is_debris(THIS, &ours(), t(95), &cx));
}

#[test]
fn a_pid_beyond_pid_max_is_dead() {
    let big = TempName {
        pid: Some(4_194_304),
        this_host: true,
    };
    assert!(judge_with(big, &ours(), t(99), &Fake(Liveness::Running)));
    let below = TempName {
        pid: Some(4_194_303),
        this_host: true,
    };
    assert!(!judge_with(below, &ours(), t(99), &Fake(Liveness::Running)));
}

#[test]
fn another_host_boot_or_namespace_proves_nothing_until_it_ages_out() {
    let dead = Fake(Liveness::Gone);
    let other_host = TempName {
        pid: Some(12345),
        this_host: false,
    };
    assert!(!judge_with(other_host, &ours(), t(99), &dead));
    for record in [
        Record {
            host: Some("twin.example.org".into()),
            ..ours()
        },
        // Our host name, another machine's identity (a same-named twin).
        Record {
            machine_id: Some("fedcba9876543210fedcba9876543210".into()),
            ..ours()
        },
        Record {
            boot_id: Some("boot-b".into()),
            ..ours()
        },
        Record {
            boot_id: None,
            ..ours()
        },
        Record {
            pidns: Some(8),
            ..ours()
        },
        Record {
            pidns: None,
            ..ours()
        },
        Record {
            host: None,
            ..ours()
        },
        Record::default(),
    ] {
        assert!(!judge_with(THIS, &record, t(99), &dead), "{record:?}");
        // Older than the stale age: debris, whoever made it.
        assert!(judge_with(THIS, &record, t(100 - 301), &dead), "{record:?}");
    }
    let liblockfile = TempName {
        pid: None,
        this_host: false,
    };
    assert!(!judge_with(liblockfile, &ours(), t(100 - 300), &dead));
    assert!(judge_with(liblockfile, &ours(), t(100 - 301), &dead));
}

#[test]
fn a_temporary_file_lives_as_long_as_its_holders_lease() {
    let dead = Fake(Liveness::Gone);
    let other_host = TempName {
        pid: Some(12345),
        this_host: false,
    };
    let leased = Record {
        host: Some("relay".into()),
        stale_after: Some(3600),
        ..ours()
    };
    assert!(!judge_with(other_host, &leased, t(100 - 301), &dead));
    assert!(!judge_with(other_host, &leased, t(100 - 3600), &dead));
    assert!(judge_with(other_host, &leased, t(100 - 3601), &dead));
}
