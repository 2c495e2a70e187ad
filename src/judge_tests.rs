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

const MACHINE: &str = "0123456789abcdef0123456789abcdef";
const CLONE_OF_NONE: &str = "fedcba9876543210fedcba9876543210";

/// Up for an hour.
const UPTIME: Duration = Duration::from_secs(3600);

fn here() -> Here {
    Here {
        host: "mail".into(),
        machine_id: Some(MACHINE.into()),
        boot_id: Some("boot-a".into()),
        pidns: Some(7),
        uptime: Some(UPTIME),
    }
}

fn full(pid: u32, start: u64) -> Record {
    Record {
        pid: Some(pid),
        host: Some("mail".into()),
        machine_id: Some(MACHINE.into()),
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
        ("another boot, touched since ours: age", other_boot.clone(), S(0), p, Valid(Fresh { age: S(0) })),
        ("another boot, touched before ours", other_boot, S(3600 + 31), p, Stale(OtherBoot)),
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
    // Exactly at the margin: still possibly the holder.
    assert!(!started_after(S(48), fs_now, t(50)));
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

/// A record of this host's name and another boot, last touched `age` ago.
fn other_boot(machine: Option<&str>) -> Record {
    Record {
        machine_id: machine.map(str::to_string),
        boot_id: Some("boot-b".into()),
        ..full(100, 555)
    }
}

#[test]
fn another_boot_is_proven_only_by_a_lock_older_than_this_boot() {
    let probe = FakeProbe(HashMap::new());
    // A waiter that would wait forever by age: only proof breaks.
    let patient = Policy {
        stale_after: S(3_000_000_000),
        ..Policy::default()
    };
    let boot = |record: &Record, age: Duration, here: &Here| {
        judge(record, age, here, &patient, &probe) == Verdict::Stale(Reason::OtherBoot)
    };
    let ours = other_boot(Some(MACHINE));
    // Touched before this host booted (by more than the margin): proven.
    assert!(boot(&ours, UPTIME + BOOT_MARGIN + S(1), &here()));
    assert!(boot(&ours, S(10_000_000), &here()));
    // Touched since, or within the margin: a same-named machine, or a
    // clone with our machine id, may hold it now.
    for age in [S(0), S(1), UPTIME, UPTIME + BOOT_MARGIN] {
        assert!(!boot(&ours, age, &here()), "{age:?}");
    }
    // Our uptime unknown: nothing is proven.
    let no_uptime = Here {
        uptime: None,
        ..here()
    };
    assert!(!boot(&ours, S(10_000_000), &no_uptime));
    // A record without a machine identity (or a host without one) may
    // still be ours.
    assert!(boot(&other_boot(None), S(10_000_000), &here()));
    let anonymous = Here {
        machine_id: None,
        ..here()
    };
    assert!(boot(&ours, S(10_000_000), &anonymous));
    // Another machine with our host name: never ours, however old.
    assert!(!boot(
        &other_boot(Some(CLONE_OF_NONE)),
        S(10_000_000),
        &here()
    ));
    // The same boot: no proof by boot.
    assert!(!boot(&full(100, 555), S(10_000_000), &here()));
    // No boot recorded: no proof.
    let no_boot = Record {
        boot_id: None,
        ..ours.clone()
    };
    assert!(!boot(&no_boot, S(10_000_000), &here()));
}

#[test]
fn another_machine_of_the_same_name_is_another_host() {
    // Its pids are not ours to probe, even with our boot and namespace
    // ids (a clone's): it ages out by its lease.
    let probe = FakeProbe(HashMap::new());
    let twin = Record {
        machine_id: Some(CLONE_OF_NONE.into()),
        ..full(999, 1)
    };
    let p = Policy::default();
    assert_eq!(
        judge(&twin, S(10), &here(), &p, &probe),
        Verdict::Valid(Reason::Fresh { age: S(10) })
    );
    assert_eq!(
        judge(&twin, S(300), &here(), &p, &probe),
        Verdict::Stale(Reason::Aged { age: S(300) })
    );
    // The same machine: pid 999 is gone.
    assert!(judge(&full(999, 1), S(10), &here(), &p, &probe).proves_dead());
}

#[test]
fn the_holders_lease_is_honoured_up_to_a_day() {
    let probe = FakeProbe(HashMap::new());
    let theirs = |lease: Option<u64>| Record {
        host: Some("relay".into()),
        stale_after: lease,
        ..full(999, 1)
    };
    let quick = Policy {
        stale_after: S(1),
        ..Policy::default()
    };
    let aged = |r: &Record, age: u64, p: &Policy| judge(r, S(age), &here(), p, &probe).is_stale();
    // A holder that declared 6 s is not broken by a waiter's 1 s.
    assert!(!aged(&theirs(Some(6)), 5, &quick));
    assert!(aged(&theirs(Some(6)), 6, &quick));
    // A waiter's longer stale age wins over a shorter lease.
    assert!(!aged(&theirs(Some(6)), 100, &Policy::default()));
    // No lease declared (the old tools): the waiter's.
    assert!(aged(&theirs(None), 1, &quick));
    // A lease above a day counts as a day: never immortal.
    let day = MAX_LEASE.as_secs();
    assert_eq!(day, 86_400);
    for huge in [day + 1, u64::MAX] {
        assert!(!aged(&theirs(Some(huge)), day - 1, &quick));
        assert!(aged(&theirs(Some(huge)), day, &quick));
    }
    // A lease of 0 is no shorter than the waiter's.
    assert!(!aged(&theirs(Some(0)), 0, &quick));
    // A break lock's lease is the break rule's, whatever it declares.
    let breaker = Record {
        break_lock: true,
        ..theirs(Some(day))
    };
    assert!(aged(&breaker, 30, &break_lock_policy()));
    assert_eq!(lease(&breaker, S(30)), S(30));
}

#[test]
fn a_garbage_lease_or_machine_is_none() {
    let probe = FakeProbe(HashMap::new());
    let quick = Policy {
        stale_after: S(1),
        ..Policy::default()
    };
    for line in [
        "stale_after=-5",
        "stale_after=1e9",
        "stale_after=ten",
        "stale_after=99999999999999999999999",
        "stale_after=",
    ] {
        let r = Record::parse(format!("0\nhost=relay\n{line}\n").as_bytes());
        assert_eq!(r.stale_after, None, "{line}");
        assert!(
            judge(&r, S(1), &here(), &quick, &probe).is_stale(),
            "{line}"
        );
    }
    // A machine identity that is not one proves no difference: a record
    // of this host, another boot, left before this boot, is still ours.
    for line in [
        "machine_id=zz",
        "machine_id=0123456789ABCDEF0123456789ABCDEF",
        "machine_id=",
    ] {
        let r = Record::parse(format!("100\nhost=mail\n{line}\nboot_id=boot-b\n").as_bytes());
        assert_eq!(r.machine_id, None, "{line}");
        let v = judge(&r, S(10_000_000), &here(), &Policy::default(), &probe);
        assert_eq!(v, Verdict::Stale(Reason::OtherBoot), "{line}");
        // ... and never, young, a proof.
        assert!(
            !judge(&r, S(1), &here(), &quick, &probe).proves_dead(),
            "{line}"
        );
    }
}

#[test]
fn holders_touch_every_third_of_their_stale_age_at_most_every_30_seconds() {
    assert_eq!(touch_interval(S(300)), S(30));
    assert_eq!(touch_interval(S(6)), S(2));
    assert_eq!(touch_interval(S(90)), S(30));
    assert_eq!(
        touch_interval(Duration::from_millis(30)),
        Duration::from_millis(100)
    );
}

#[test]
fn this_hosts_facts_carry_its_uptime_now() {
    let here = Here::current();
    let up = host::uptime().expect("CLOCK_BOOTTIME");
    let seen = here.uptime.expect("uptime in Here");
    assert!(seen <= up && up - seen < S(5), "{seen:?} vs {up:?}");
    assert_eq!(here.machine_id, crate::machine::identity());
}
