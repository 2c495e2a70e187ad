//! When a waiter may remove somebody else's lock: a pure judgement.
//!
//! [`judge`] is a pure function of the record, the lock's age on the
//! filesystem's clock, the facts of this host and a liveness probe. A lock
//! is stale when it is *proven dead* — its record names this host, this
//! boot and this pid namespace and the pid is gone or now belongs to a
//! process with another start time (in command mode: both the holder and
//! its command), or it names this host and another boot — or when no proof
//! is possible and it has *aged out*. Content that cannot be understood is
//! never proof of death.
//!
//! `glance` judges a busy lock before anything is created, on the
//! filesystem clock carried forward from its last measurement (`FsClock`).

use std::time::{Duration, Instant, SystemTime};

use crate::fs::Observed;
use crate::host::{self, Liveness};
use crate::record::Record;

/// The default age after which an unprovable lock is stale (liblockfile's).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(300);

/// A break lock older than this was left by a breaker that died.
pub const BREAK_LOCK_STALE_AFTER: Duration = Duration::from_secs(30);

/// How a waiter judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Age after which a lock that cannot be proven dead is stale.
    pub stale_after: Duration,
    /// Trust the pid of a record that holds only a pid (liblockfile's
    /// `-p`): such a record does not say which host wrote it.
    pub trust_bare_pid: bool,
}

/// How a break lock is judged: by proof, else stale after
/// [`BREAK_LOCK_STALE_AFTER`].
pub fn break_lock_policy() -> Policy {
    Policy {
        stale_after: BREAK_LOCK_STALE_AFTER,
        trust_bare_pid: false,
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            stale_after: DEFAULT_STALE_AFTER,
            trust_bare_pid: false,
        }
    }
}

/// The facts of this host a record is compared with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Here {
    pub host: String,
    pub boot_id: Option<String>,
    pub pidns: Option<u64>,
}

impl Here {
    /// This host's facts, read once per process: they cannot change while
    /// it runs, and waiters judge a busy lock on every attempt.
    pub fn current() -> Here {
        static HERE: std::sync::OnceLock<Here> = std::sync::OnceLock::new();
        HERE.get_or_init(|| Here {
            host: host::hostname(),
            boot_id: host::boot_id(),
            pidns: host::pid_namespace(),
        })
        .clone()
    }
}

/// Asks about processes on this host; injected so that [`judge`] stays pure.
pub trait Probe {
    fn liveness(&self, pid: u32) -> Liveness;
    fn start_time(&self, pid: u32) -> Option<u64>;
    /// Both at once (the start time only of a running process).
    fn probe(&self, pid: u32) -> (Liveness, Option<u64>) {
        match self.liveness(pid) {
            Liveness::Running => (Liveness::Running, self.start_time(pid)),
            other => (other, None),
        }
    }
}

/// The real probe: `kill(pid, 0)` and `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl Probe for SystemProbe {
    fn liveness(&self, pid: u32) -> Liveness {
        host::liveness(pid)
    }
    fn start_time(&self, pid: u32) -> Option<u64> {
        host::start_time(pid)
    }
    fn probe(&self, pid: u32) -> (Liveness, Option<u64>) {
        host::probe(pid)
    }
}

/// Why a lock is valid or stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its holder runs (and, where recorded, with the same start time).
    Alive { pid: u32 },
    /// Its holder is gone.
    Dead { pid: u32 },
    /// Its pid runs, but as another process (another start time).
    PidReused { pid: u32 },
    /// It was written on this host before the last boot.
    OtherBoot,
    /// No proof either way; younger than the stale age.
    Fresh { age: Duration },
    /// No proof either way; as old as the stale age or older.
    Aged { age: Duration },
    /// Held by readers together (`--shared`): this many live shares.
    Readers { count: u32 },
    /// Held by readers together, but no live share is left.
    NoReaders,
}

/// The judgement on one lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid(Reason),
    Stale(Reason),
}

impl Verdict {
    pub fn is_stale(self) -> bool {
        matches!(self, Verdict::Stale(_))
    }
}

/// Judge a lock from its record and its age on the filesystem's clock.
pub fn judge(
    record: &Record,
    age: Duration,
    here: &Here,
    policy: &Policy,
    probe: &dyn Probe,
) -> Verdict {
    let this_host = record.host.as_deref() == Some(here.host.as_str()) && !here.host.is_empty();
    let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    let same_boot = same(&record.boot_id, &here.boot_id);
    if this_host && same_boot == Some(false) {
        return Verdict::Stale(Reason::OtherBoot);
    }
    if let Some(pid) = record.pid {
        let provable = if record.host.is_some() {
            this_host
                && same_boot == Some(true)
                && matches!((record.pidns, here.pidns), (Some(a), Some(b)) if a == b)
        } else {
            policy.trust_bare_pid
        };
        if provable {
            // In command mode the record names the command too: the lock
            // is dead only when both are.
            let holder = process(probe, pid, record.start);
            let child = match holder {
                Process::Alive => None,
                _ => record
                    .child
                    .map(|c| (c, process(probe, c, record.child_start))),
            };
            match (holder, child) {
                (Process::Alive, _) => return Verdict::Valid(Reason::Alive { pid }),
                (_, Some((c, Process::Alive))) => {
                    return Verdict::Valid(Reason::Alive { pid: c });
                }
                (Process::Unknown, _) | (_, Some((_, Process::Unknown))) => {}
                (Process::Dead, _) => return Verdict::Stale(Reason::Dead { pid }),
                (Process::Reused, _) => return Verdict::Stale(Reason::PidReused { pid }),
            }
        }
    }
    if age >= policy.stale_after {
        Verdict::Stale(Reason::Aged { age })
    } else {
        Verdict::Valid(Reason::Fresh { age })
    }
}

/// What the probe says of one recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Process {
    Alive,
    Dead,
    Reused,
    Unknown,
}

fn process(probe: &dyn Probe, pid: u32, start: Option<u64>) -> Process {
    let (liveness, started) = probe.probe(pid);
    match liveness {
        Liveness::Gone => Process::Dead,
        Liveness::Unknown => Process::Unknown,
        Liveness::Running => match (start, started) {
            (Some(recorded), Some(now)) if recorded != now => Process::Reused,
            _ => Process::Alive,
        },
    }
}

/// Judge an observed lock with the real probe and this host's facts.
pub fn judge_observed(seen: &Observed, policy: &Policy) -> Verdict {
    let age = seen.age().unwrap_or(Duration::ZERO);
    let record = seen.record();
    let verdict = judge(&record, age, &Here::current(), policy, &SystemProbe);
    // A bare pid (liblockfile's, lockfile-progs') names no start time: a
    // live process that started after the lock was made cannot be its
    // holder. How long ago it started is set against the filesystem's
    // "now", so neither clock is compared with the other.
    if let Verdict::Valid(Reason::Alive { pid }) = verdict
        && record.host.is_none()
        && let (Some(ago), Some(fs_now)) = (host::started_ago(pid), seen.fs_now)
        && started_after(ago, fs_now, seen.mtime)
    {
        return Verdict::Stale(Reason::PidReused { pid });
    }
    verdict
}

/// How far a process's start may lie after its lock's mtime and still be
/// its holder: timestamp granularity and the two clocks' reading.
pub const REUSE_MARGIN: Duration = Duration::from_secs(2);

/// Did a process that started `ago` start after a lock made at `mtime`
/// (the filesystem's clock, which reads `fs_now`), by more than
/// [`REUSE_MARGIN`]?
pub fn started_after(ago: Duration, fs_now: SystemTime, mtime: SystemTime) -> bool {
    let started = fs_now.checked_sub(ago).unwrap_or(fs_now);
    started > mtime + REUSE_MARGIN
}

/// How long the filesystem's clock may be read as an offset from ours
/// before it is measured again; it is always measured afresh before a
/// break.
const FS_CLOCK_FOR: Duration = Duration::from_secs(30);

/// The filesystem's clock as last measured, carried forward on our
/// monotonic clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FsClock {
    at: Instant,
    fs: SystemTime,
}

impl FsClock {
    pub(crate) fn measured(fs: SystemTime) -> FsClock {
        FsClock {
            at: Instant::now(),
            fs,
        }
    }

    /// The filesystem's "now", if the measurement is recent enough.
    pub(crate) fn now(&self) -> Option<SystemTime> {
        let since = self.at.elapsed();
        (since <= FS_CLOCK_FOR).then(|| self.fs + since)
    }
}

/// What a look at a busy lock, before any file is created, concludes.
pub(crate) enum Glance {
    /// Not decided: make a real attempt (which measures the clock).
    Attempt,
    /// Held by a live holder, or young: busy, with no file created; the
    /// filesystem's "now" as far as it is known (for messages), and the
    /// verdict.
    Busy(Option<SystemTime>, Verdict),
}

/// Judge a busy lock without creating a file: by proof alone where the
/// record allows it, else by its age on the filesystem's clock measured
/// at most [`FS_CLOCK_FOR`] ago. Undecided — never measured, or a lock
/// that may be stale — it is left to a real attempt, which measures the
/// clock afresh and judges again before anything is broken.
pub(crate) fn glance<S>(
    seen: &S,
    clock: Option<FsClock>,
    judge: impl Fn(&S, Option<SystemTime>) -> Verdict,
) -> Glance {
    let Some(clock) = clock else {
        return Glance::Attempt;
    };
    let estimate = Some(clock.fs + clock.at.elapsed());
    let verdict = judge(seen, None);
    if let Verdict::Valid(Reason::Alive { .. }) = verdict {
        return Glance::Busy(estimate, verdict);
    }
    let Some(now) = clock.now() else {
        return Glance::Attempt;
    };
    match judge(seen, Some(now)) {
        verdict @ Verdict::Valid(_) => Glance::Busy(Some(now), verdict),
        Verdict::Stale(_) => Glance::Attempt,
    }
}

#[cfg(test)]
mod tests {
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
}
