//! Releasing a lock from outside its holder (`-u`, `-u --shared`,
//! `-t --shared`): who may release what, in one place ([`rule`], SPEC §6),
//! and the removals it allows — a dot-lock, a lock directory, or a
//! reader's shares.
//!
//! The rules:
//! * a lock whose record names the caller (or, with `--pid`, that pid) is
//!   the caller's own: released;
//! * a dot-lock that is stale — its holder proven dead, or aged out — or
//!   that names nobody (a legacy tool's `0`; not one held by readers
//!   together, which is theirs) may be removed by anyone;
//! * a lock directory whose holder is proven dead is broken as a waiter
//!   would break it; an aged-out one is not (its holder may be another
//!   host's live shell);
//! * anything else is somebody else's — another host's included —
//!   refused without `--force`.

use std::time::Duration;

use crate::inspect::{self, Holder};
use crate::judge::{Here, Policy, Verdict};
use crate::lockdir;
use crate::mkdir::Sweep;
use crate::path::LockPath;
use crate::readers::Kind;
use crate::record::Record;
use crate::shared::Member;
use crate::{Error, Result};

/// Whose rules: a dot-lock's (`dotlock -u`, `filelock -u`, a share) or a
/// lock directory's (`lockdir -u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    File,
    Dir,
}

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The calling process's parent or one of its ancestors (so a
    /// subshell or a trap of the shell that took a lock may release it).
    Ancestry,
    /// The process with this pid (`lockdir -u --pid PID`).
    Pid(u32),
}

/// What is known of a lock, for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Its record names the caller.
    pub ours: bool,
    /// How it was judged.
    pub verdict: Verdict,
    /// Its record names no process (a legacy tool's `0`).
    pub names_nobody: bool,
    /// Held by readers together.
    pub shared: bool,
}

/// What the rules allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The caller's own lock.
    Ours,
    /// Stale: removed as a waiter would remove it.
    Stale,
    /// Names nobody: anyone may remove it.
    Nobody,
    /// Somebody else's, removed because of `--force`.
    Forced,
    /// Somebody else's: refused.
    Refused,
}

/// The release rules of SPEC §6.
pub fn rule(kind: Rules, claim: &Claim, force: bool) -> Release {
    if claim.ours {
        return Release::Ours;
    }
    match kind {
        Rules::File if claim.verdict.is_stale() => Release::Stale,
        Rules::File if claim.names_nobody && !claim.shared => Release::Nobody,
        // A lock directory of a dead holder is broken, but a forced
        // release removes it whatever it holds of lockdir's.
        Rules::Dir if force => Release::Forced,
        Rules::Dir if claim.verdict.proves_dead() => Release::Stale,
        _ if force => Release::Forced,
        _ => Release::Refused,
    }
}

impl Claim {
    /// What `holder` is to `caller`, on the host `here`; `ancestry(pid,
    /// host, start)` says whether that process is the caller's parent or
    /// one of its ancestors.
    pub fn of(
        holder: &Holder,
        caller: Caller,
        here: &Here,
        ancestry: impl Fn(u32, Option<&str>, Option<u64>) -> bool,
    ) -> Claim {
        Claim::with_ours(holder, is_ours(&holder.record, caller, here, ancestry))
    }

    /// What `holder` is, whether it is ours already answered.
    fn with_ours(holder: &Holder, ours: bool) -> Claim {
        let r = &holder.record;
        Claim {
            ours,
            verdict: holder.verdict,
            names_nobody: r.taker().is_none(),
            shared: r.shared,
        }
    }

    /// Does `record` name `caller`, on this host? (The first question of
    /// the rules, answered without judging the lock: the caller's own lock
    /// needs no clock.)
    pub fn ours_here(record: &Record, caller: Caller) -> bool {
        is_ours(
            record,
            caller,
            &Here::current(),
            crate::host::is_caller_or_ancestor,
        )
    }

    /// What `holder` is to `caller`, on this host.
    pub fn here(holder: &Holder, caller: Caller) -> Claim {
        Claim::of(
            holder,
            caller,
            &Here::current(),
            crate::host::is_caller_or_ancestor,
        )
    }
}

/// Does `r` name `caller`? With `--pid`, that very pid; else the caller's
/// parent or an ancestor — on this host, this machine, this boot and this
/// pid namespace (where recorded), with the recorded start time.
fn is_ours(
    r: &Record,
    caller: Caller,
    here: &Here,
    ancestry: impl Fn(u32, Option<&str>, Option<u64>) -> bool,
) -> bool {
    let Some((pid, start)) = r.taker() else {
        return false;
    };
    let same = |a: &Option<String>, b: &Option<String>| a.is_none() || a == b;
    match caller {
        Caller::Pid(want) => pid == want,
        Caller::Ancestry => {
            same(&r.boot_id, &here.boot_id)
                && (here.machine_id.is_none() || same(&r.machine_id, &here.machine_id))
                && (r.pidns.is_none() || r.pidns == here.pidns)
                && ancestry(pid, r.host.as_deref(), start)
        }
    }
}

/// Who holds a refused lock, in words.
fn refused(lock: &LockPath, holder: &Holder, owned: bool) -> Error {
    let who = match (holder.record.shared, owned) {
        (true, _) => format!("readers ({}; each leaves with -u --shared)", holder.verdict),
        (false, true) => holder.record.describe(),
        (false, false) => "nobody yet (no owner record)".into(),
    };
    Error::NotOurs {
        path: lock.path().into(),
        holder: who,
    }
}

/// `-u` of a dot-lock (`dotlock`, `filelock`): removed where [`rule`]
/// allows — the very lock judged, looked at once. A symbolic link at the
/// lock path is removed itself, never its target. `Ok(false)`: there was
/// none; [`Error::NotOurs`]: refused.
pub fn release_file(lock: &LockPath, policy: &Policy, force: bool) -> Result<bool> {
    let mut seen = match crate::fs::observe(lock.path()) {
        Ok(Some(seen)) => seen,
        Ok(None) => return Ok(false),
        Err(Error::LockIsSymlink { .. }) => return crate::link::remove(lock),
        Err(e) => return Err(e),
    };
    // Our own lock is removed without judging it (no clock to measure) and
    // without looking again: nothing was done since the look. Another's is
    // judged (which takes a while: the filesystem's clock is measured), and
    // looked at again right before its removal.
    let record = seen.record();
    let removed = if Claim::ours_here(&record, Caller::Ancestry) {
        crate::link::remove_just_seen(lock, &seen)?
    } else {
        let holder = Holder::judged(lock, &mut seen, policy);
        if rule(Rules::File, &Claim::with_ours(&holder, false), force) == Release::Refused {
            return Err(refused(lock, &holder, true));
        }
        crate::link::remove_seen(lock, &seen)?
    };
    // Its keeper, if any, stops at once rather than at its next touch.
    if removed {
        crate::keeper::stop(&record);
    }
    Ok(removed)
}

/// `-u` of a lock directory: removed where [`rule`] allows — a dead
/// holder's broken as a waiter would, the caller's own or a forced one
/// removed (with only what lockdir puts there). `Ok(false)`: there was
/// none; [`Error::NotOurs`]: refused.
pub fn release_dir(
    lock: &LockPath,
    policy: &Policy,
    grace: Duration,
    caller: Caller,
    force: bool,
) -> Result<bool> {
    let Some(seen) = inspect::seen_dir(lock)? else {
        return Ok(false);
    };
    // Readers' lock judged by its shares (and said so); any other by its
    // record.
    let holder = Holder::of_seen_dir(lock, &seen, policy, grace);
    let claim = Claim::here(&holder, caller);
    let expect = Some((seen.dev, seen.ino));
    let removed = match rule(Rules::Dir, &claim, force) {
        Release::Refused => return Err(refused(lock, &holder, seen.owner.is_some())),
        Release::Stale | Release::Nobody => {
            lockdir::break_dir(&lock.open_dir()?, lock, &seen).map(|_| true)?
        }
        Release::Ours => lockdir::remove_dir(&lock.open_dir()?, lock, expect, Sweep::Ours)?,
        Release::Forced => lockdir::remove_dir(&lock.open_dir()?, lock, expect, Sweep::All)?,
    };
    if removed {
        crate::keeper::stop(&holder.record);
    }
    Ok(removed)
}

/// The caller's live shares of `lock` (`-u --shared`, `-t --shared`),
/// and every live share.
pub fn own_shares(lock: &LockPath, policy: &Policy) -> Result<(Vec<Member>, Vec<Member>)> {
    let all = crate::shared::shares_pruning(lock, policy)?;
    let ours = all
        .iter()
        .filter(|m| {
            let holder = Holder::new(m.seen.record(), m.seen.age(), m.verdict);
            let claim = Claim::here(&holder, Caller::Ancestry);
            rule(Rules::File, &claim, false) != Release::Refused
        })
        .cloned()
        .collect();
    Ok((ours, all))
}

/// `-u --shared`: leave the readers — remove the caller's shares, and
/// `LOCK` if no reader is left. With `force`, every reader's share. No
/// share at all is success; only other readers' shares: refused
/// ([`Error::NotOurs`]).
pub fn leave_shared(lock: &LockPath, kind: Kind, policy: &Policy, force: bool) -> Result<()> {
    let (ours, all) = own_shares(lock, policy)?;
    let leaving = match (ours.is_empty(), all.first()) {
        (false, _) => ours,
        (true, None) => Vec::new(),
        (true, Some(_)) if force => all,
        (true, Some(other)) => {
            return Err(Error::NotOurs {
                path: lock.path().into(),
                holder: format!(
                    "other readers ({} among them)",
                    other.seen.record().describe()
                ),
            });
        }
    };
    crate::readers::leave_shares(lock, kind, &leaving, policy)?;
    for share in &leaving {
        crate::keeper::stop(&share.seen.record());
    }
    Ok(())
}

/// `-t --shared`: touch the caller's shares and the shared `LOCK`.
/// `Ok(false)`: the caller holds no share.
pub fn touch_shared(lock: &LockPath, kind: Kind, policy: &Policy) -> Result<bool> {
    let (ours, _) = own_shares(lock, policy)?;
    crate::readers::touch_shares(lock, kind, &ours)
}

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;
