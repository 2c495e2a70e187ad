//! When a waiter may remove somebody else's lock, and how to do it without
//! ever removing a lock that is not the one it judged.
//!
//! [`judge`] is a pure function of the record, the lock's age on the
//! filesystem's clock, the facts of this host and a liveness probe. A lock
//! is stale when it is *proven dead* — its record names this host, this
//! boot and this pid namespace and the pid is gone or now belongs to a
//! process with another start time, or it names this host and another boot
//! — or when no proof is possible and it has *aged out*. Content that
//! cannot be understood is never proof of death.
//!
//! [`break_lock`] removes a stale lock race-free: the breaker takes the
//! short-lived dot-lock `LOCK.break`, looks again, and unlinks the lock
//! only if it is still the very one it judged (device, inode, mtime, size,
//! content). Two breakers that judged the same lock can then never remove a
//! lock that a third process took in between.

use std::fs;
use std::io;
use std::time::Duration;

use crate::dotlock::{self, Attempt, LockPath, Observed};
use crate::error::{Error, Result};
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
            match probe.liveness(pid) {
                Liveness::Gone => return Verdict::Stale(Reason::Dead { pid }),
                Liveness::Running => {
                    let reused = match (record.start, probe.start_time(pid)) {
                        (Some(recorded), Some(now)) => recorded != now,
                        _ => false,
                    };
                    return if reused {
                        Verdict::Stale(Reason::PidReused { pid })
                    } else {
                        Verdict::Valid(Reason::Alive { pid })
                    };
                }
                Liveness::Unknown => {}
            }
        }
    }
    if age >= policy.stale_after {
        Verdict::Stale(Reason::Aged { age })
    } else {
        Verdict::Valid(Reason::Fresh { age })
    }
}

/// Judge an observed lock with the real probe and this host's facts.
pub fn judge_observed(seen: &Observed, policy: &Policy) -> Verdict {
    let age = seen.age().unwrap_or(Duration::ZERO);
    judge(&seen.record(), age, &Here::current(), policy, &SystemProbe)
}

/// What [`break_lock`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The judged lock was removed.
    Removed,
    /// The lock is no longer the one judged (released, or taken anew):
    /// nothing was removed.
    Changed,
    /// Another breaker is at work; try again shortly.
    Busy,
}

/// Remove `seen`, judged stale, from `lock` if and only if it is still
/// there, under the break lock `LOCK.break` (which holds our own record).
pub fn break_lock(lock: &LockPath, seen: &Observed) -> Result<Broken> {
    break_guarded(
        lock,
        || Ok(dotlock::observe(lock.path())?.is_some_and(|now| now.same_lock(seen))),
        || fs::remove_file(lock.path()),
    )
}

/// The break protocol for any kind of lock at `lock`: take `LOCK.break`,
/// ask `still_same` whether the lock is still the one judged stale, and
/// only then `remove` it. A lock gone by the time `remove` runs counts as
/// changed.
pub fn break_guarded(
    lock: &LockPath,
    still_same: impl FnOnce() -> Result<bool>,
    remove: impl FnOnce() -> io::Result<()>,
) -> Result<Broken> {
    seam::pause_before_break();
    let guard = lock.sibling(".break");
    let me = std::process::id();
    let breaker = Record::for_holder(Some(me), host::command_name(me)).to_bytes();
    let held = match dotlock::try_lock(&guard, &breaker, 0o644)? {
        Attempt::Acquired(held) => held,
        Attempt::Busy(other) => {
            clear_dead_break_lock(&guard, &other);
            return Ok(Broken::Busy);
        }
        Attempt::Vanished => return Ok(Broken::Busy),
    };
    let outcome = match still_same() {
        Ok(true) => match remove() {
            Ok(()) => Ok(Broken::Removed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Broken::Changed),
            Err(source) => Err(Error::StaleNotRemoved {
                path: lock.path().into(),
                source,
            }),
        },
        Ok(false) => Ok(Broken::Changed),
        Err(e) => Err(e),
    };
    held.release()?;
    outcome
}

/// A break lock is held for a few system calls; one whose breaker is
/// proven dead, or older than [`BREAK_LOCK_STALE_AFTER`], was left by a
/// crash. It is removed only if it is still the one seen.
fn clear_dead_break_lock(guard: &LockPath, other: &Observed) {
    let policy = Policy {
        stale_after: BREAK_LOCK_STALE_AFTER,
        trust_bare_pid: false,
    };
    if judge_observed(other, &policy).is_stale()
        && let Ok(Some(now)) = dotlock::observe(guard.path())
        && now.same_lock(other)
    {
        let _ = fs::remove_file(guard.path());
    }
}

/// Test seam, compiled into debug builds only: with
/// `LOCKUTILS_TEST_PAUSE_BEFORE_BREAK=PATH` a breaker that has judged a
/// lock stale creates `PATH.reached`, then waits (up to 60 s) until `PATH`
/// exists before it breaks. Tests use it to force the interleaving of two
/// breakers and a third process deterministically.
mod seam {
    pub fn pause_before_break() {
        #[cfg(debug_assertions)]
        if let Some(gate) = std::env::var_os("LOCKUTILS_TEST_PAUSE_BEFORE_BREAK") {
            let gate = std::path::PathBuf::from(gate);
            let mut reached = gate.clone().into_os_string();
            reached.push(".reached");
            let _ = std::fs::write(&reached, std::process::id().to_string());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !gate.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
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

    fn observed(dir: &std::path::Path, name: &str, content: &[u8]) -> (LockPath, Observed) {
        let lock = LockPath::new(dir.join(name)).unwrap();
        fs::write(lock.path(), content).unwrap();
        let seen = dotlock::observe(lock.path()).unwrap().unwrap();
        (lock, seen)
    }

    #[test]
    fn break_removes_the_judged_lock_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, seen) = observed(dir.path(), "x.lock", b"0\n");
        assert_eq!(break_lock(&lock, &seen).unwrap(), Broken::Removed);
        assert!(!lock.path().exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "break lock and temp files gone"
        );
    }

    #[test]
    fn break_leaves_a_lock_taken_anew() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, seen) = observed(dir.path(), "x.lock", b"0\n");
        fs::remove_file(lock.path()).unwrap();
        fs::write(lock.path(), b"4242\n").unwrap();
        assert_eq!(break_lock(&lock, &seen).unwrap(), Broken::Changed);
        assert_eq!(fs::read(lock.path()).unwrap(), b"4242\n");
    }

    #[test]
    fn break_waits_for_a_live_breaker_and_clears_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, seen) = observed(dir.path(), "x.lock", b"0\n");
        let guard = lock.sibling(".break");
        // A breaker at work (this process, alive): wait.
        let live = Record::for_holder(Some(std::process::id()), None).to_bytes();
        fs::write(guard.path(), &live).unwrap();
        assert_eq!(break_lock(&lock, &seen).unwrap(), Broken::Busy);
        assert!(guard.path().exists());
        // A breaker that died (pid beyond pid_max): its break lock is cleared.
        let dead = Record::for_holder(Some(i32::MAX as u32 - 1), None).to_bytes();
        fs::write(guard.path(), &dead).unwrap();
        assert_eq!(break_lock(&lock, &seen).unwrap(), Broken::Busy);
        assert!(!guard.path().exists());
        assert_eq!(break_lock(&lock, &seen).unwrap(), Broken::Removed);
    }
}
