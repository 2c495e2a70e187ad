//! `--shared`: any number of readers at once, or one writer, never both.
//!
//! The writer is an ordinary lock at `LOCK` (a dot-lock, or a lock
//! directory: [`crate::readers::Kind`]). Readers hold `LOCK` together:
//! while any reader holds, `LOCK` is a lock whose record says `shared=1`
//! and names no holder (`0` on the pid line), kept fresh by the readers'
//! touches, so a legacy tool (`dotlockfile`, procmail's
//! `lockfile`) sees a live lock and waits. Each reader holds a *share*
//! beside it, `LOCK.r` + 12 hex digits: an ordinary owner record, judged
//! by the ordinary stale rules, so a killed reader's share is reclaimed
//! like any dead holder's lock, and a shared `LOCK` with no live share
//! left is stale.
//!
//! Readers join and leave under the *gate* `LOCK.gate`, a dot-lock held
//! for a few calls: a joining reader looks at `LOCK` and makes its share
//! (creating `LOCK` shared if there is none) and the last reader to leave
//! removes `LOCK`, each as one step that no other reader, and no breaker
//! of an orphaned shared `LOCK`, can come between. A writer needs no gate:
//! `link(2)` makes it or the first reader the one that creates `LOCK`.
//!
//! A writer that finds `LOCK` held shared posts a *want*, `LOCK.w` + 12 hex
//! digits (its own record: its pid, so a killed writer's want is proven
//! dead at once on its host), and keeps it, touched at each attempt, until
//! it has the lock or gives up. A reader does not join while a live want
//! is there, so a steady stream of readers cannot starve a writer. In
//! return, readers are never kept out by a writer that waits behind
//! another writer only: a writer posts a want only once it has seen
//! readers in its way, and every reader waiting when the lock comes free
//! joins in the same round.
//!
//! On NFS: every decision is made on a name looked up afresh — `observe_at`
//! opens the file (close-to-open), the members are listed with `readdir`
//! on a directory opened afresh — and `LOCK` itself is created only by
//! `link(2)` (or `mkdir(2)`), which the server decides. The gate is a
//! dot-lock like any other: a gate whose holder is proven dead, or older
//! than a break lock may be (30 s), is broken; a gate holder stalled
//! longer than that by a server outage could then overlap another, the
//! window `LOCK.break` has too.

use std::cell::Cell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::attempt::{Broken, Try};
use crate::breaking;
use crate::error::{Error, Result};
use crate::fs::{Dir, Observed, fs_now_at, observe_at};
use crate::host;
use crate::judge::{self, FsClock, Policy, Reason, Verdict};
use crate::link::{Held, try_lock_at};
use crate::path::LockPath;
use crate::record::Record;
use crate::retry::again;

/// The gate beside a shared lock: `LOCK.gate`.
pub const GATE: &str = ".gate";
/// A reader's share: `LOCK.r` + [`ID_DIGITS`] hex digits.
pub const SHARE: &str = ".r";
/// A waiting writer's want: `LOCK.w` + [`ID_DIGITS`] hex digits.
pub const WANT: &str = ".w";
/// The hex digits that make a share's or a want's name its own.
pub const ID_DIGITS: usize = 12;

/// How long a joining reader waits for the gate before the attempt counts
/// as busy (the gate is held for a few calls).
pub(crate) const GATE_WAIT_JOINING: Duration = Duration::from_secs(2);
/// How long a leaving reader waits for the gate. Without it, the share is
/// removed all the same and `LOCK` is left for the stale rules: a shared
/// lock with no live share is stale.
pub(crate) const GATE_WAIT_LEAVING: Duration = Duration::from_secs(30);

/// Is `entry` one of `lock`'s members with `tag` ([`SHARE`], [`WANT`]):
/// the lock's name, the tag, then exactly [`ID_DIGITS`] lowercase hex
/// digits?
pub fn is_member(lock: &OsStr, tag: &str, entry: &OsStr) -> bool {
    let (lock, entry) = (lock.as_bytes(), entry.as_bytes());
    let Some(rest) = entry
        .strip_prefix(lock)
        .and_then(|r| r.strip_prefix(tag.as_bytes()))
    else {
        return false;
    };
    rest.len() == ID_DIGITS
        && rest
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// A new member name of `lock` with `tag`, random: "name too long" where it
/// does not fit.
pub(crate) fn new_member(lock: &LockPath, tag: &str) -> Result<LockPath> {
    let id = rand::random::<u64>() & ((1 << (4 * ID_DIGITS)) - 1);
    lock.sibling(&format!("{tag}{id:0width$x}", width = ID_DIGITS))
}

/// Check that `lock` has room for every name `--shared` makes beside it.
/// A name too long is refused as the lock's own.
pub fn check_names(lock: &LockPath) -> Result<()> {
    lock.sibling(GATE)
        .and_then(|_| lock.sibling(&format!("{SHARE}{}", "0".repeat(ID_DIGITS))))
        .map(drop)
        .map_err(|_| Error::NameTooLong {
            path: lock.path().into(),
        })
}

/// The filesystem's clock, measured once when first needed (and again
/// after [`judge`]'s 30 s).
#[derive(Debug, Default)]
pub(crate) struct Clock(Cell<Option<FsClock>>);

impl Clock {
    /// The filesystem's "now" beside `path`, or ours where nothing can be
    /// created there.
    pub(crate) fn now(&self, dir: &Dir, path: &Path) -> SystemTime {
        if let Some(now) = self.0.get().and_then(|c| c.now()) {
            return now;
        }
        let now = fs_now_at(dir, path).unwrap_or_else(|_| crate::seam::local_now());
        self.0.set(Some(FsClock::measured(now)));
        now
    }
}

/// A share or a want, looked at and judged.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: LockPath,
    pub seen: Observed,
    pub verdict: Verdict,
}

/// Judge `seen` by proof alone if it can be; else by its age on the
/// filesystem's clock.
fn judge_member(dir: &Dir, seen: &mut Observed, policy: &Policy, clock: &Clock) -> Verdict {
    let proven = judge::judge_observed(seen, policy);
    match proven {
        Verdict::Valid(Reason::Alive { .. }) | Verdict::Stale(_) => proven,
        _ => {
            seen.fs_now = Some(clock.now(dir, Path::new(dir.path())));
            judge::judge_observed(seen, policy)
        }
    }
}

/// `lock`'s members with `tag`, each looked at and judged; the stale ones
/// (their holder dead, or aged out) are removed — each name is its
/// holder's alone, so none can have been taken anew — and not returned.
pub(crate) fn members(
    dir: &Dir,
    lock: &LockPath,
    tag: &str,
    policy: &Policy,
    clock: &Clock,
) -> Result<Vec<Member>> {
    members_pruned(dir, lock, tag, policy, clock, true)
}

/// [`members`], removing the stale ones only if `prune` (a look from
/// outside, `--status` and `--list`, removes nothing).
fn members_pruned(
    dir: &Dir,
    lock: &LockPath,
    tag: &str,
    policy: &Policy,
    clock: &Clock,
    prune: bool,
) -> Result<Vec<Member>> {
    // Opened afresh for each listing: on NFS the open revalidates the
    // directory (close-to-open), so the listing is not an old one.
    let names =
        again(|| dir.open_child(OsStr::new("."))?.names()).map_err(|e| Error::io(lock.dir(), e))?;
    let mut live = Vec::new();
    for name in names {
        if !is_member(lock.name(), tag, &name) {
            continue;
        }
        let path = lock.sibling(&suffix(lock.name(), &name))?;
        let mut seen = match observe_at(dir, path.name(), path.path()) {
            Ok(Some(seen)) => seen,
            Ok(None) => continue,
            // Not a regular file (a directory, a symbolic link, a FIFO, a
            // socket planted at a member's name): not a member. It counts
            // for nothing, blocks nobody, and is never removed: not ours.
            Err(e) if is_foreign(&e) => continue,
            Err(e) => return Err(e),
        };
        let verdict = judge_member(dir, &mut seen, policy, clock);
        if verdict.is_stale() {
            if prune {
                let _ = dir.unlink_this(path.name(), seen.dev, seen.ino);
            }
            continue;
        }
        live.push(Member {
            path,
            seen,
            verdict,
        });
    }
    live.sort_by(|a, b| a.path.name().cmp(b.path.name()));
    Ok(live)
}

/// Is `e` what looking at a name that is not a regular file gives?
fn is_foreign(e: &Error) -> bool {
    matches!(
        e,
        Error::LockIsDirectory { .. } | Error::LockIsSymlink { .. } | Error::LockNotRegular { .. }
    )
}

/// The names beside `lock` that look like its shares or wants but are not
/// regular files (planted, or made by hand): none of them counts.
pub fn foreign_members(lock: &LockPath) -> Result<Vec<LockPath>> {
    let dir = lock.open_dir()?;
    let names =
        again(|| dir.open_child(OsStr::new("."))?.names()).map_err(|e| Error::io(lock.dir(), e))?;
    let mut foreign = Vec::new();
    for name in names {
        if !is_member(lock.name(), SHARE, &name) && !is_member(lock.name(), WANT, &name) {
            continue;
        }
        let path = lock.sibling(&suffix(lock.name(), &name))?;
        if let Err(e) = observe_at(&dir, path.name(), path.path())
            && is_foreign(&e)
        {
            foreign.push(path);
        }
    }
    foreign.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(foreign)
}

/// What follows the lock's name in a member's name.
fn suffix(lock: &OsStr, member: &OsStr) -> String {
    String::from_utf8_lossy(&member.as_bytes()[lock.len()..]).into_owned()
}

/// The verdict on a shared `LOCK` with `live` live shares: held while any
/// reader holds, stale once none does.
pub fn verdict(live: usize) -> Verdict {
    match u32::try_from(live) {
        Ok(0) => Verdict::Stale(Reason::NoReaders),
        Ok(count) => Verdict::Valid(Reason::Readers { count }),
        Err(_) => Verdict::Valid(Reason::Readers { count: u32::MAX }),
    }
}

/// Judge the shared `LOCK` by its live shares (stale ones removed).
pub(crate) fn judge_shared(
    dir: &Dir,
    lock: &LockPath,
    policy: &Policy,
    clock: &Clock,
) -> Result<Verdict> {
    Ok(verdict(members(dir, lock, SHARE, policy, clock)?.len()))
}

/// The live shares of `lock`, for `-u --shared`: opens its directory;
/// the stale ones are removed on the way, as a reader's look removes them.
pub(crate) fn shares_pruning(lock: &LockPath, policy: &Policy) -> Result<Vec<Member>> {
    let dir = lock.open_dir()?;
    members(&dir, lock, SHARE, policy, &Clock::default())
}

/// The live shares of `lock`, for `--status` and `--list`: opens its
/// directory, and removes nothing.
pub fn shares(lock: &LockPath, policy: &Policy) -> Result<Vec<Member>> {
    let dir = lock.open_dir()?;
    members_pruned(&dir, lock, SHARE, policy, &Clock::default(), false)
}

/// The record of the gate: this process, provable on this host.
pub(crate) fn own_record(cmd: &str) -> Vec<u8> {
    Record::for_holder(Some(std::process::id()), Some(cmd.to_string())).to_bytes()
}

/// Take the gate `LOCK.gate`, waiting at most `within`. `Ok(None)`: it
/// stayed busy. A gate whose holder is proven dead, or older than a break
/// lock may be, is broken.
pub(crate) fn enter_gate(dir: &Dir, lock: &LockPath, within: Duration) -> Result<Option<Held>> {
    let gate = lock.sibling(GATE)?;
    let record = own_record("dotlock-gate");
    let until = Instant::now() + within;
    let mut pause = Duration::from_millis(1);
    loop {
        match try_lock_at(dir, &gate, &record, 0o644) {
            Ok(Try::Acquired(held)) => return Ok(Some(held)),
            Ok(Try::Busy(seen)) => {
                if judge::judge_observed(&seen, &judge::break_lock_policy()).is_stale()
                    && breaking::break_lock(dir, &gate, &seen)? != Broken::Busy
                {
                    continue;
                }
            }
            Ok(Try::Vanished) => continue,
            Err(e) if e.is_stale_handle() => continue,
            Err(e) => return Err(e),
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(pause.mul_f64(0.5 + rand::random::<f64>()));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The observed gate, for messages.
pub(crate) fn gate_seen(dir: &Dir, lock: &LockPath) -> Option<Observed> {
    let gate = lock.sibling(GATE).ok()?;
    observe_at(dir, gate.name(), gate.path()).ok().flatten()
}

/// A writer's want, posted once it has seen readers in its way and kept
/// until it is dropped (when the writer has the lock, or gives up).
#[derive(Debug, Default)]
pub(crate) struct Want(Option<Held>);

impl Want {
    /// Post the want, or refresh it: a want found removed (judged stale
    /// by a reader that could not see us alive) is posted anew.
    pub(crate) fn post(&mut self, dir: &Dir, lock: &LockPath) -> Result<()> {
        if let Some(want) = &self.0
            && want.touch()?
        {
            return Ok(());
        }
        let record = own_record(&host::command_name(std::process::id()).unwrap_or_default());
        let path = new_member(lock, WANT)?;
        if let Try::Acquired(want) = try_lock_at(dir, &path, &record, 0o644)?
            && let Some(old) = self.0.replace(want)
        {
            // Removed as stale: nothing of it is left to remove.
            old.keep();
        }
        Ok(())
    }

    /// Withdraw the want.
    pub(crate) fn withdraw(&mut self) {
        if let Some(want) = self.0.take() {
            let _ = want.release();
        }
    }
}

/// Break the shared `LOCK`, judged to have no live reader: under the gate,
/// and only if it still has none, with `break_it` — the lock kind's own
/// break, which removes it only if it is still the very lock seen (a
/// reader that joined since has touched it).
pub(crate) fn break_orphan(
    dir: &Dir,
    lock: &LockPath,
    policy: &Policy,
    break_it: impl FnOnce() -> Result<Broken>,
) -> Result<Broken> {
    let Some(gate) = enter_gate(dir, lock, GATE_WAIT_JOINING)? else {
        return Ok(Broken::Busy);
    };
    let broken = match members(dir, lock, SHARE, policy, &Clock::default()) {
        Ok(live) if live.is_empty() => break_it(),
        Ok(_) => Ok(Broken::Changed),
        Err(e) => Err(e),
    };
    gate.release()?;
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_the_lock_name_the_tag_and_twelve_hex_digits() {
        let lock = OsStr::new("q.lock");
        assert!(is_member(lock, SHARE, OsStr::new("q.lock.r0123456789ab")));
        assert!(is_member(lock, WANT, OsStr::new("q.lock.wcdef01234567")));
        assert!(!is_member(lock, SHARE, OsStr::new("q.lock.wcdef01234567")));
        assert!(!is_member(lock, SHARE, OsStr::new("q.lock.r0123456789a")));
        assert!(!is_member(lock, SHARE, OsStr::new("q.lock.r0123456789abc")));
        assert!(!is_member(lock, SHARE, OsStr::new("q.lock.r0123456789AB")));
        assert!(!is_member(lock, SHARE, OsStr::new("q.lock.r0123456789ag")));
        assert!(!is_member(lock, SHARE, OsStr::new("x.lock.r0123456789ab")));
        assert!(!is_member(lock, SHARE, OsStr::new("q.lock")));
        assert!(!is_member(lock, SHARE, OsStr::new("q.lock.gate")));
    }

    #[test]
    fn a_new_member_name_is_a_member() {
        let lock = LockPath::new("/tmp/x.lock").unwrap();
        let a = new_member(&lock, SHARE).unwrap();
        let b = new_member(&lock, SHARE).unwrap();
        assert!(is_member(lock.name(), SHARE, a.name()), "{a:?}");
        assert_ne!(a, b);
        assert_eq!(suffix(lock.name(), a.name()).len(), SHARE.len() + ID_DIGITS);
    }

    #[test]
    fn member_names_use_all_twelve_digits_at_random() {
        let lock = LockPath::new("/tmp/x.lock").unwrap();
        let names: Vec<String> = (0..64)
            .map(|_| new_member(&lock, WANT).unwrap())
            .map(|m| suffix(lock.name(), m.name())[WANT.len()..].to_string())
            .collect();
        assert!(names.iter().all(|n| n.len() == ID_DIGITS), "{names:?}");
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        // 48 random bits: the leading digits are not always zero.
        assert!(names.iter().any(|n| !n.starts_with("000000")), "{names:?}");
    }

    #[test]
    fn a_shared_lock_is_held_while_any_share_lives() {
        assert_eq!(verdict(0), Verdict::Stale(Reason::NoReaders));
        assert_eq!(verdict(1), Verdict::Valid(Reason::Readers { count: 1 }));
        assert_eq!(verdict(3), Verdict::Valid(Reason::Readers { count: 3 }));
    }

    #[test]
    fn names_too_long_for_a_share_are_refused() {
        let name = "a".repeat(240);
        let lock = LockPath::new(format!("/tmp/{name}")).unwrap();
        assert!(matches!(check_names(&lock), Err(Error::NameTooLong { .. })));
        let lock = LockPath::new("/tmp/ok.lock").unwrap();
        assert!(check_names(&lock).is_ok());
    }
}
