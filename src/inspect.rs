//! A lock of any kind looked at from outside: who holds it ([`Holder`]),
//! for how long, and whether that holder is valid — a dot-lock, a lock
//! directory, or either held by readers together. What `--status`, `-c`,
//! the give-up line and the release rules ([`crate::release`]) are told.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::judge::{self, Policy, Verdict};
use crate::lockdir::{self, SeenDir};
use crate::path::LockPath;
use crate::record::Record;
use crate::{Result, fs};

/// Who holds a lock that is there, and what is known of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The owner record, as written (tolerantly parsed).
    pub record: Record,
    /// How long ago the lock was last touched (its mtime, on the
    /// filesystem's clock).
    pub age: Option<Duration>,
    /// How long it has been held: since the record's `created=`, else
    /// (a legacy tool's lock) since its mtime.
    pub held_for: Option<Duration>,
    /// Valid or stale, and why.
    pub verdict: Verdict,
    /// After how long without a touch it is stale unless proven alive:
    /// the larger of the looker's stale age and the lease its holder
    /// declared (`None` for a lock held by readers together, judged by
    /// their shares).
    pub lease: Option<Duration>,
    /// Held by readers together (`--shared`): each live share's path and
    /// holder.
    pub readers: Vec<(PathBuf, Holder)>,
}

impl Holder {
    /// A holder with `record`, last touched `age` ago, judged `verdict`.
    pub(crate) fn new(record: Record, age: Option<Duration>, verdict: Verdict) -> Holder {
        Holder {
            held_for: held_for(&record, age),
            record,
            age,
            verdict,
            lease: None,
            readers: Vec::new(),
        }
    }

    /// This holder, judged by age after `lease`.
    pub(crate) fn leased(self, lease: Duration) -> Holder {
        Holder {
            lease: Some(lease),
            ..self
        }
    }

    /// The dot-lock at `lock`, observed and judged. `None`: there is none.
    pub(crate) fn of_file(lock: &LockPath, policy: &Policy) -> Result<Option<Holder>> {
        Ok(fs::observe(lock.path())?.map(|mut seen| Holder::judged(lock, &mut seen, policy)))
    }

    /// `seen` (the dot-lock `lock`) judged, with the filesystem's "now"
    /// set in it.
    pub(crate) fn judged(lock: &LockPath, seen: &mut fs::Observed, policy: &Policy) -> Holder {
        seen.fs_now = Some(fs_now(lock));
        Holder::judged_as_seen(lock, seen, policy)
    }

    /// `seen` judged with the filesystem's "now" already set in it (one
    /// measurement for a whole directory: `--list`).
    pub(crate) fn judged_as_seen(
        lock: &LockPath,
        seen: &mut fs::Observed,
        policy: &Policy,
    ) -> Holder {
        if seen.record().shared
            && let Some(holder) =
                Holder::of_readers(lock, seen.record(), seen.age(), seen.fs_now, policy)
        {
            return holder;
        }
        let verdict = judge::judge_observed(seen, policy);
        let record = seen.record();
        let lease = judge::lease(&record, policy.stale_after);
        Holder::new(record, seen.age(), verdict).leased(lease)
    }

    /// The lock directory at `lock`, observed and judged (an ownerless
    /// one by `grace`). `None`: there is none.
    pub(crate) fn of_dir(
        lock: &LockPath,
        policy: &Policy,
        grace: Duration,
    ) -> Result<Option<Holder>> {
        Ok(seen_dir(lock)?.map(|s| Holder::of_seen_dir(lock, &s, policy, grace)))
    }

    /// The lock directory `seen` (at `lock`), judged.
    pub(crate) fn of_seen_dir(
        lock: &LockPath,
        s: &SeenDir,
        policy: &Policy,
        grace: Duration,
    ) -> Holder {
        // Readers hold it together: judged by their shares, listed.
        let readers = s
            .record()
            .shared
            .then(|| Holder::of_readers(lock, s.record(), s.age(), s.fs_now, policy))
            .flatten();
        readers.unwrap_or_else(|| {
            let record = s.record();
            let lease = match s.owner {
                Some(_) => judge::lease(&record, policy.stale_after),
                None => grace,
            };
            Holder::new(record, s.age(), lockdir::judge(s, grace, policy)).leased(lease)
        })
    }

    /// A lock held by readers together (`record`, last touched `age`
    /// ago), judged by its shares and listing them; `None` where they
    /// cannot be listed.
    pub(crate) fn of_readers(
        lock: &LockPath,
        record: Record,
        age: Option<Duration>,
        fs_now: Option<SystemTime>,
        policy: &Policy,
    ) -> Option<Holder> {
        let shares = crate::shared::shares(lock, policy).ok()?;
        let mut holder = Holder::new(record, age, crate::shared::verdict(shares.len()));
        holder.readers = shares
            .into_iter()
            .map(|mut m| {
                m.seen.fs_now = m.seen.fs_now.or(fs_now);
                let record = m.seen.record();
                let lease = judge::lease(&record, policy.stale_after);
                let h = Holder::new(record, m.seen.age(), m.verdict).leased(lease);
                (m.path.path().to_path_buf(), h)
            })
            .collect();
        Some(holder)
    }

    /// Whether the holder lives, as far as can be told: `Some(false)`
    /// proven dead, `Some(true)` seen alive, `None` cannot be told from
    /// here. A lock that names only the caller that took it (`dotlock L`
    /// without `-p`) is judged by age, but on the caller's own host whether
    /// the caller still runs is told all the same ([`caller_alive`]).
    pub fn alive(&self) -> Option<bool> {
        match self.verdict {
            Verdict::Valid(judge::Reason::Alive { .. }) => Some(true),
            v if v.proves_dead() => Some(false),
            _ => caller_alive(&self.record),
        }
    }

    /// When a lock that is not stale yet ages out (on this host's clock):
    /// its lease after its last touch.
    pub fn ages_out_at(&self) -> Option<SystemTime> {
        let left = self.lease?.checked_sub(self.age?)?;
        crate::seam::local_now().checked_add(left)
    }
}

/// The lock directory at `lock` as a waiter sees it, with the
/// filesystem's "now" set in it.
pub fn seen_dir(lock: &LockPath) -> Result<Option<SeenDir>> {
    let Some(mut seen) = lockdir::observe(lock.path())? else {
        return Ok(None);
    };
    seen.fs_now = Some(fs_now(lock));
    Ok(Some(seen))
}

/// The filesystem's "now" beside `lock`; our own clock where nothing can
/// be created there (a read-only spool).
fn fs_now(lock: &LockPath) -> SystemTime {
    fs::fs_now(lock).unwrap_or_else(|_| crate::seam::local_now())
}

/// Whether the caller that `record` names as having taken its lock
/// (`caller=`, recorded without a pid of a holder: `dotlock L` without
/// `-p`) still runs: `Some(false)` it has exited (or its pid is another
/// process's now), `Some(true)` it runs, `None` where that cannot be told —
/// no caller recorded, a holder's pid recorded instead, or another host,
/// boot or pid namespace. Never proof for judging the lock: without `-p`
/// the lock goes stale by age.
pub fn caller_alive(record: &Record) -> Option<bool> {
    use crate::host::Liveness;
    let caller = record.caller.filter(|_| record.pid.is_none())?;
    if !judge::Here::current().is_this_boot_and_pidns(record) {
        return None;
    }
    match crate::host::probe(caller) {
        (Liveness::Gone, _) => Some(false),
        (Liveness::Running, Some(now)) if record.caller_start.is_some_and(|s| s != now) => {
            Some(false)
        }
        (Liveness::Running, _) => Some(true),
        (Liveness::Unknown, _) => None,
    }
}

/// How long the lock of `record`, last touched `age` ago, has been held:
/// since its `created=` (the holder's clock, read on ours), else since
/// its mtime.
pub fn held_for(record: &Record, age: Option<Duration>) -> Option<Duration> {
    record.held_for(crate::seam::local_now()).or(age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Reason;

    #[test]
    fn held_since_created_else_since_the_mtime() {
        let age = Some(Duration::from_secs(7));
        let legacy = Record::default();
        assert_eq!(held_for(&legacy, age), age);
        let ours = Record::for_holder(Some(1), None);
        let since = held_for(&ours, age).expect("created= is recorded");
        assert!(
            since < Duration::from_secs(5),
            "{since:?}: since created=, not the mtime"
        );
    }

    #[test]
    fn alive_only_where_it_can_be_told() {
        let h = |v| Holder::new(Record::default(), None, v);
        let secs = Duration::from_secs;
        assert_eq!(
            h(Verdict::Valid(Reason::Alive { pid: 3 })).alive(),
            Some(true)
        );
        for dead in [
            Reason::Dead { pid: 3 },
            Reason::PidReused { pid: 3 },
            Reason::OtherBoot,
        ] {
            assert_eq!(h(Verdict::Stale(dead)).alive(), Some(false), "{dead:?}");
        }
        for unknown in [
            Verdict::Valid(Reason::Fresh { age: secs(1) }),
            Verdict::Stale(Reason::Aged { age: secs(900) }),
            Verdict::Valid(Reason::Readers { count: 2 }),
            Verdict::Stale(Reason::NoReaders),
        ] {
            assert_eq!(h(unknown).alive(), None, "{unknown:?}");
        }
    }

    #[test]
    fn a_missing_lock_has_no_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockPath::new(dir.path().join("L")).unwrap();
        assert_eq!(Holder::of_file(&lock, &Policy::default()).unwrap(), None);
        assert_eq!(
            Holder::of_dir(&lock, &Policy::default(), Duration::ZERO).unwrap(),
            None
        );
    }

    #[test]
    fn a_lock_of_a_dead_process_is_seen_stale() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LockPath::new(dir.path().join("L")).unwrap();
        let dead = Record::for_holder(Some(i32::MAX as u32 - 1), Some("gone".into()));
        std::fs::write(lock.path(), dead.to_bytes()).unwrap();
        let h = Holder::of_file(&lock, &Policy::default()).unwrap().unwrap();
        assert_eq!(h.record.cmd.as_deref(), Some("gone"));
        assert_eq!(h.alive(), Some(false));
        assert!(h.age.is_some());
    }
}
