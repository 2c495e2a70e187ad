//! Unit tests of `judge`.

use super::*;
use std::collections::HashMap;

struct FakeProbe(HashMap<u32, (Liveness, Option<u64>)>);

impl Probe for FakeProbe {
    fn liveness(&self, pid: u32) -> Liveness {
        self.0.get(&pid).map_or(Liveness::Gone, |p| p.0)
    }
    fn start_time(&self, pid: u32) -> Option<u64> {
        self.0.get(&pid).and_then(|p| p.1)
    }
}

fn here() -> Here {
    Here {
        host: "mail".into(),
        boot_id: Some("boot-a".into()),
        pidns: Some(7),
    }
}

fn full(pid: u32, start: u64) -> Record {
    Record {
        pid: Some(pid),
        host: Some("mail".into()),
        boot_id: Some("boot-a".into()),
        start: Some(start),
        pidns: Some(7),
        cmd: Some("job".into()),
        created: Some(1),
        ..Record::default()
    }
}

fn with_child(pid: u32, child: u32, child_start: u64) -> Record {
    Record {
        child: Some(child),
        child_start: Some(child_start),
        ..full(pid, 1)
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn verdict_table() {
    let probe = FakeProbe(HashMap::from([
        (100, (Liveness::Running, Some(555))),
        (200, (Liveness::Unknown, None)),
    ]));
    let p = Policy::default();
    let trusting = Policy {
        trust_bare_pid: true,
        ..p
    };
    let other_host = Record {
        host: Some("relay".into()),
        ..full(999, 1)
    };
    let other_boot = Record {
        boot_id: Some("boot-b".into()),
        ..full(100, 555)
    };
    let other_ns = Record {
        pidns: Some(8),
        ..full(999, 1)
    };
    let no_ns = Record {
        pidns: None,
        ..full(999, 1)
    };
    let pid0_here = Record {
        pid: None,
        ..full(0, 0)
    };
    use Reason::*;
    use Verdict::*;
    #[rustfmt::skip]
    let table: Vec<(&str, Record, Duration, Policy, Verdict)> = vec![
        ("dead pid, this host and boot", full(999, 1), S(0), p, Stale(Dead { pid: 999 })),
        ("live pid, right start, any age", full(100, 555), S(100_000), p, Valid(Alive { pid: 100 })),
        ("live pid, wrong start: reused", full(100, 554), S(0), p, Stale(PidReused { pid: 100 })),
        ("liveness unknown: age decides", full(200, 1), S(10), p, Valid(Fresh { age: S(10) })),
        ("another boot on this host", other_boot, S(0), p, Stale(OtherBoot)),
        ("another host, young", other_host.clone(), S(299), p, Valid(Fresh { age: S(299) })),
        ("another host, old", other_host, S(301), p, Stale(Aged { age: S(301) })),
        ("another pid namespace: never dead by pid", other_ns.clone(), S(10), p, Valid(Fresh { age: S(10) })),
        ("another pid namespace, old", other_ns, S(300), p, Stale(Aged { age: S(300) })),
        ("no namespace recorded: no proof", no_ns, S(10), p, Valid(Fresh { age: S(10) })),
        ("no pid, this host: age only", pid0_here, S(10), p, Valid(Fresh { age: S(10) })),
        ("bare pid, not trusted: age only", Record::legacy(Some(999)), S(10), p, Valid(Fresh { age: S(10) })),
        ("bare pid, -p: dead", Record::legacy(Some(999)), S(10), trusting, Stale(Dead { pid: 999 })),
        ("bare pid, -p: alive forever", Record::legacy(Some(100)), S(100_000), trusting, Valid(Alive { pid: 100 })),
        ("procmail 0, young", Record::parse(b"0"), S(299), p, Valid(Fresh { age: S(299) })),
        ("procmail 0, old", Record::parse(b"0"), S(301), p, Stale(Aged { age: S(301) })),
        ("empty file, young", Record::parse(b""), S(1), trusting, Valid(Fresh { age: S(1) })),
        ("garbage, young", Record::parse(b"\x00\xffjunk"), S(1), trusting, Valid(Fresh { age: S(1) })),
        ("huge, young", Record::parse(&[b'9'; 100_000]), S(1), trusting, Valid(Fresh { age: S(1) })),
        ("dead holder, live command", with_child(999, 100, 555), S(0), p, Valid(Alive { pid: 100 })),
        ("dead holder, live command, any age", with_child(999, 100, 555), S(100_000), p, Valid(Alive { pid: 100 })),
        ("dead holder, dead command", with_child(999, 998, 1), S(0), p, Stale(Dead { pid: 999 })),
        ("dead holder, command pid reused", with_child(999, 100, 554), S(0), p, Stale(Dead { pid: 999 })),
        ("dead holder, command unknown: age", with_child(999, 200, 1), S(10), p, Valid(Fresh { age: S(10) })),
        ("live holder, dead command", Record { child: Some(998), ..full(100, 555) }, S(0), p, Valid(Alive { pid: 100 })),
    ];
    for (name, record, age, policy, want) in table {
        assert_eq!(
            judge(&record, age, &here(), &policy, &probe),
            want,
            "{name}"
        );
    }
}

#[test]
fn a_break_lock_ages_out_after_30_seconds() {
    let probe = FakeProbe(HashMap::new());
    let record = Record::parse(b"0\nbreak=1\n");
    let p = break_lock_policy();
    assert_eq!(p.stale_after, S(30));
    assert!(!judge(&record, S(29), &here(), &p, &probe).is_stale());
    assert!(judge(&record, S(30), &here(), &p, &probe).is_stale());
}

#[test]
fn a_process_younger_than_its_lock_is_no_holder() {
    let t = |s: u64| SystemTime::UNIX_EPOCH + S(1_000_000 + s);
    let fs_now = t(100);
    // Started 10 s ago; the lock is 50 s old: started after it.
    assert!(started_after(S(10), fs_now, t(50)));
    // Started 60 s ago, lock 50 s old: it may be the holder.
    assert!(!started_after(S(60), fs_now, t(50)));
    // Within the margin.
    assert!(!started_after(S(49), fs_now, t(50)));
    assert!(started_after(S(47), fs_now, t(50)));
}

#[test]
fn the_system_probe_reads_this_host() {
    let me = std::process::id();
    assert_eq!(SystemProbe.start_time(me), host::start_time(me));
    assert!(SystemProbe.start_time(me).is_some());
    assert_eq!(SystemProbe.liveness(me), Liveness::Running);
}

/// A clock measured `ago`, at filesystem time `fs`.
fn clock(ago: Duration, fs: SystemTime) -> FsClock {
    FsClock {
        at: Instant::now().checked_sub(ago).unwrap(),
        fs,
    }
}

#[test]
fn the_fs_clock_runs_on_for_30_seconds() {
    let fs = SystemTime::UNIX_EPOCH + S(1_000_000);
    let now = clock(S(10), fs).now().unwrap();
    assert!(now >= fs + S(10) && now < fs + S(11), "{now:?}");
    assert!(clock(S(29), fs).now().is_some());
    assert_eq!(clock(S(31), fs).now(), None);
}

#[test]
fn a_glance_decides_only_what_needs_no_new_clock() {
    let fs = SystemTime::UNIX_EPOCH + S(1_000_000);
    let alive = |_: &(), _| Verdict::Valid(Reason::Alive { pid: 1 });
    let young = |_: &(), now: Option<SystemTime>| match now {
        Some(_) => Verdict::Valid(Reason::Fresh { age: S(1) }),
        None => Verdict::Valid(Reason::Fresh { age: S(0) }),
    };
    let old = |_: &(), now: Option<SystemTime>| match now {
        Some(_) => Verdict::Stale(Reason::Aged { age: S(999) }),
        None => Verdict::Valid(Reason::Fresh { age: S(0) }),
    };
    // Never measured: a real attempt, whatever the lock.
    assert!(matches!(glance(&(), None, alive), Glance::Attempt));
    // Proof needs no clock, even an expired one; the age shown runs on.
    match glance(&(), Some(clock(S(40), fs)), alive) {
        Glance::Busy(Some(now), Verdict::Valid(Reason::Alive { .. })) => {
            assert!(now >= fs + S(40) && now < fs + S(41), "{now:?}")
        }
        _ => panic!("a live holder is busy"),
    }
    // Age needs a recent clock.
    assert!(matches!(
        glance(&(), Some(clock(S(5), fs)), young),
        Glance::Busy(Some(_), _)
    ));
    assert!(matches!(
        glance(&(), Some(clock(S(40), fs)), young),
        Glance::Attempt
    ));
    // A lock that may be stale is left to the real attempt.
    assert!(matches!(
        glance(&(), Some(clock(S(5), fs)), old),
        Glance::Attempt
    ));
}

#[test]
fn an_unknown_local_host_name_proves_nothing() {
    let probe = FakeProbe(HashMap::new());
    let nameless = Here {
        host: String::new(),
        ..here()
    };
    let record = Record {
        host: Some(String::new()),
        ..full(999, 1)
    };
    let v = judge(&record, S(1), &nameless, &Policy::default(), &probe);
    assert_eq!(v, Verdict::Valid(Reason::Fresh { age: S(1) }));
}
