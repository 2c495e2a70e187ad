//! When a waiter may remove somebody else's lock: a pure judgement.
//!
//! [`judge`] is a pure function of the record, the lock's age on the
//! filesystem's clock, the facts of this host and a liveness probe. A lock
//! is stale when it is *proven dead* — its record names this host (its
//! name, and its machine identity where both sides have one), this boot
//! and this pid namespace and the pid is gone or now belongs to a process
//! with another start time (in command mode: both the holder and its
//! command), or it names this host and another boot *and* was last touched
//! before this host booted (its age on the filesystem's clock exceeds our
//! uptime by [`BOOT_MARGIN`]) — or when no proof is possible and it has
//! *aged out*: it is older than its [`lease`], the larger of the waiter's
//! stale age and the one its holder declared. Content that cannot be
//! understood is never proof of death.
//!
//! `glance` judges a busy lock before anything is created, on the
//! filesystem clock carried forward from its last measurement (`FsClock`).

use std::time::{Duration, Instant, SystemTime};

use crate::fs::Observed;
use crate::host::{self, Liveness};
use crate::record::Record;

/// The default age after which an unprovable lock is stale (liblockfile's).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(300);

/// The longest lease a record may declare: a larger `stale_after=` counts
/// as this much.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// How much longer ago than this host's boot a lock must have been last
/// touched, on the filesystem's clock, to prove it was left by an earlier
/// boot: timestamp granularity, a filesystem "now" carried forward, and
/// two clocks' rates over the time since boot.
pub const BOOT_MARGIN: Duration = Duration::from_secs(30);

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

/// Holders touch their lock every 30 s, or every third of the stale age
/// if that is shorter: a live holder's lock never ages out.
pub fn touch_interval(stale_after: Duration) -> Duration {
    Duration::from_secs(30)
        .min(stale_after / 3)
        .max(Duration::from_millis(100))
}

/// The facts of this host a record is compared with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Here {
    pub host: String,
    /// This machine's identity ([`crate::machine`]).
    pub machine_id: Option<String>,
    pub boot_id: Option<String>,
    pub pidns: Option<u64>,
    /// How long this host has been up, now.
    pub uptime: Option<Duration>,
}

impl Here {
    /// This host's facts: its names and namespace read once per process
    /// (they cannot change while it runs, and waiters judge a busy lock on
    /// every attempt), its uptime now.
    pub fn current() -> Here {
        static HERE: std::sync::OnceLock<Here> = std::sync::OnceLock::new();
        let here = HERE.get_or_init(|| Here {
            host: host::hostname(),
            machine_id: crate::machine::identity(),
            boot_id: host::boot_id(),
            pidns: host::pid_namespace(),
            uptime: None,
        });
        Here {
            uptime: host::uptime(),
            ..here.clone()
        }
    }

    /// Does `record` name this host: its host name, and its machine
    /// identity unless one side has none? Another machine may share the
    /// name; only the identity tells them apart.
    pub fn is_named_by(&self, record: &Record) -> bool {
        !self.host.is_empty()
            && record.host.as_deref() == Some(self.host.as_str())
            && match (&record.machine_id, &self.machine_id) {
                (Some(theirs), Some(ours)) => theirs == ours,
                _ => true,
            }
    }

    /// Does `record` name this very host, boot and pid namespace, where its
    /// pids are ours to probe?
    pub fn is_this_boot_and_pidns(&self, record: &Record) -> bool {
        self.is_named_by(record)
            && record.boot_id.is_some()
            && record.boot_id == self.boot_id
            && record.pidns.is_some()
            && record.pidns == self.pidns
    }
}

/// The age after which a lock that cannot be proven dead is stale: the
/// larger of the waiter's `own` and the lease its holder declared (at
/// most [`MAX_LEASE`]). A record that declares none (the old tools'), and
/// a break lock, are judged by `own`.
pub fn lease(record: &Record, own: Duration) -> Duration {
    match record.stale_after {
        Some(secs) if !record.break_lock => own.max(Duration::from_secs(secs).min(MAX_LEASE)),
        _ => own,
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
    /// It names this host and another boot, and was last touched before
    /// this host booted.
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
    /// Stale, whatever the reason.
    pub fn is_stale(self) -> bool {
        matches!(self, Verdict::Stale(_))
    }

    /// Stale because its holder is proven gone — dead, its pid reused, or
    /// written before this host last booted — not merely aged out.
    pub fn proves_dead(self) -> bool {
        matches!(
            self,
            Verdict::Stale(Reason::Dead { .. } | Reason::PidReused { .. } | Reason::OtherBoot)
        )
    }
}

/// Why a lock is valid or stale, in words: `pid 42 is gone`.
impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (Verdict::Valid(reason) | Verdict::Stale(reason)) = self;
        match *reason {
            Reason::Alive { pid } => write!(f, "pid {pid} is alive"),
            Reason::Dead { pid } => write!(f, "pid {pid} is gone"),
            Reason::PidReused { pid } => write!(f, "pid {pid} now belongs to another process"),
            Reason::OtherBoot => f.write_str("written before this host last booted"),
            Reason::Fresh { age } => {
                write!(f, "{}s old, younger than the stale age", age.as_secs())
            }
            Reason::Aged { age } => write!(f, "{}s old, past the stale age", age.as_secs()),
            Reason::Readers { count: 1 } => f.write_str("held shared by 1 reader"),
            Reason::Readers { count } => write!(f, "held shared by {count} readers"),
            Reason::NoReaders => f.write_str("held shared, but no reader is left"),
        }
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
    let this_host = here.is_named_by(record);
    let same_boot = match (&record.boot_id, &here.boot_id) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    // Another boot of this host: proven only if the lock was last touched
    // before this boot began. A same-named machine, or a clone that kept
    // our machine id, has another boot id too, and touches its lock.
    if this_host
        && same_boot == Some(false)
        && here
            .uptime
            .is_some_and(|up| age > up.saturating_add(BOOT_MARGIN))
    {
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
    if age >= lease(record, policy.stale_after) {
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
#[path = "judge_tests.rs"]
mod tests;
