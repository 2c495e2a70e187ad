//! Every lock in a directory (`--list`): found by name first, so that
//! nothing else is opened — `*.lock` files, our own siblings of a lock
//! (slots, shares, wants, gates, break locks), directories holding
//! `owner`, our temporary `.lk*` files and NFS silly-renamed `.nfs*`
//! files — then each judged as `--status` judges one lock; and `--clean`,
//! which removes exactly the stale ones that are ours to remove, each
//! under the break protocol and only if it is still the very one judged.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::attempt::Broken;
use crate::error::{Error, Result};
use crate::fs::{self, Dir};
use crate::inspect::{self, Holder};
use crate::judge::Policy;
use crate::path::LockPath;
use crate::record::{MAX_RECORD, Record};
use crate::shared::{ID_DIGITS, SHARE, WANT};

/// What a name in the directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    DotLock,
    LockDir,
    Slot(usize),
    Share,
    Want,
    Gate,
    Break,
    /// A temporary `.lk*` file of an attempt.
    Temp,
    /// An NFS client's silly-renamed `.nfs*` file: another client has it
    /// open; never removed.
    NfsSilly,
    /// A lock's fencing counter `NAME.fence` ([`crate::fence`]): never
    /// stale, never removed.
    Counter,
}

impl Kind {
    /// The word of `--list` and its JSON `kind`.
    pub fn word(self) -> &'static str {
        match self {
            Kind::DotLock => "dot-lock",
            Kind::LockDir => "lock directory",
            Kind::Slot(_) => "slot",
            Kind::Share => "share",
            Kind::Want => "want",
            Kind::Gate => "gate",
            Kind::Break => "break lock",
            Kind::Counter => "fence counter",
            Kind::Temp | Kind::NfsSilly => "debris",
        }
    }

    /// Debris: no lock, what a lock's work left behind.
    pub fn is_debris(self) -> bool {
        matches!(self, Kind::Temp | Kind::NfsSilly)
    }
}

/// A name's kind, told by the name alone (and whether it is a directory),
/// with the lock it belongs to; `names` are all the directory's names.
/// `None`: not a candidate (a small other file may still hold a record:
/// [`survey`] looks at those).
pub fn classify<'a>(
    name: &'a [u8],
    is_dir: bool,
    names: &HashSet<&[u8]>,
) -> Option<(Kind, Option<&'a [u8]>)> {
    if name.starts_with(b".lk") && !is_dir {
        return Some((Kind::Temp, None));
    }
    if name.starts_with(b".nfs") && !is_dir {
        return Some((Kind::NfsSilly, None));
    }
    if let Some(base) = name.strip_suffix(crate::fence::SUFFIX.as_bytes())
        && is_dir
        && !base.is_empty()
    {
        return Some((Kind::Counter, Some(base)));
    }
    for (suffix, kind) in [(&b".break"[..], Kind::Break), (b".gate", Kind::Gate)] {
        if let Some(base) = name.strip_suffix(suffix).filter(|b| !b.is_empty()) {
            return Some((kind, Some(base)));
        }
    }
    for (tag, kind) in [(SHARE, Kind::Share), (WANT, Kind::Want)] {
        if let Some(base) = member_base(name, tag) {
            return Some((kind, Some(base)));
        }
    }
    if let Some((base, n)) = slot_of(name) {
        let sibling = names.iter().any(|other| {
            *other != name && (*other == base || slot_of(other).is_some_and(|(b, _)| b == base))
        });
        if sibling {
            return Some((Kind::Slot(n), Some(base)));
        }
    }
    if is_dir {
        return Some((Kind::LockDir, None));
    }
    name.ends_with(b".lock").then_some((Kind::DotLock, None))
}

/// `BASE` of `BASE` + `tag` + 12 lowercase hex digits.
fn member_base<'a>(name: &'a [u8], tag: &str) -> Option<&'a [u8]> {
    let cut = name.len().checked_sub(ID_DIGITS + tag.len())?;
    let (base, rest) = name.split_at(cut);
    let digits = rest.strip_prefix(tag.as_bytes())?;
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (!base.is_empty() && digits.iter().all(hex)).then_some(base)
}

/// `(BASE, N)` of `BASE.N`, N a slot number (1 to 10000, no leading 0).
fn slot_of(name: &[u8]) -> Option<(&[u8], usize)> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let (base, digits) = (&name[..dot], &name[dot + 1..]);
    let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let plain = !digits.is_empty() && digits[0] != b'0' && digits.iter().all(u8::is_ascii_digit);
    (plain && !base.is_empty() && (1..=10_000).contains(&n)).then_some((base, n))
}

/// One thing found.
#[derive(Debug, Clone)]
pub struct Found {
    pub name: OsString,
    pub path: PathBuf,
    pub kind: Kind,
    /// A directory (a lock directory, or one of its slots).
    pub is_dir: bool,
    /// The name of the lock it belongs to (a slot, share, want, gate or
    /// break lock), for grouping.
    pub of: Option<OsString>,
    /// Its holder, judged; `None` for debris.
    pub holder: Option<Holder>,
    /// Stale: its holder proven dead or aged out; debris: removable.
    pub stale: bool,
    /// What could not be seen (vanished while listing, unreadable).
    pub note: Option<String>,
    /// A fencing counter's highest token.
    pub token: Option<u64>,
}

/// Every lock, member and piece of debris in `dir`, grouped: each lock
/// followed by its members, in name order.
pub fn survey(dir: &Path, policy: &Policy, grace: Duration) -> Result<Vec<Found>> {
    let opened = Dir::open(dir).map_err(|e| match e.raw_os_error() {
        Some(nix::libc::ENOENT) => Error::NoDirectory { dir: dir.into() },
        Some(nix::libc::ENOTDIR) => Error::NotADirectory { dir: dir.into() },
        _ => Error::io(dir, e),
    })?;
    let listing = opened.open_child(OsStr::new(".")).and_then(|d| d.names());
    let mut names = listing.map_err(|e| Error::io(dir, e))?;
    names.sort();
    let set: HashSet<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let fs_now = fs::fs_now_at(&opened, &dir.join(".")).ok();
    let mut found = Vec::new();
    for name in &names {
        let Ok(meta) = opened.lstat(name) else {
            continue; // gone since the listing
        };
        // Never anything but regular files and directories; never a
        // symbolic link followed.
        if !(meta.is_file() || meta.is_dir()) {
            continue;
        }
        let path = dir.join(name);
        let class = classify(name.as_bytes(), meta.is_dir(), &set);
        let class = match class {
            Some((Kind::LockDir, _)) if opened.lstat(&path_in(name, "owner")).is_err() => None,
            Some(c) => Some(c),
            None if meta.is_file() && meta.size <= MAX_RECORD as u64 => {
                lockutils_record(&opened, name, &path).then_some((Kind::DotLock, None))
            }
            None => None,
        };
        let Some((kind, of)) = class else { continue };
        let of = of.map(|b| OsStr::from_bytes(b).to_os_string());
        let mut f = judge(
            &opened,
            name,
            path,
            kind,
            meta.is_dir(),
            policy,
            grace,
            fs_now,
        );
        f.of = of;
        found.push(f);
    }
    Ok(grouped(found))
}

/// `name/child`, relative to the directory.
fn path_in(name: &OsStr, child: &str) -> OsString {
    let mut p = name.to_os_string();
    p.push("/");
    p.push(child);
    p
}

/// Does the small file `name` hold a lockutils record (a pid line, then
/// `host=` and its other fields)?
fn lockutils_record(dir: &Dir, name: &OsStr, path: &Path) -> bool {
    match fs::observe_at(dir, name, path) {
        Ok(Some(seen)) => is_lockutils_record(seen.content.as_deref().unwrap_or_default()),
        _ => false,
    }
}

/// A lockutils record: a pid line first, then `host=` and `created=`.
pub fn is_lockutils_record(content: &[u8]) -> bool {
    let first = content.split(|&b| b == b'\n').next().unwrap_or_default();
    let record = Record::parse(content);
    !first.is_empty()
        && first.iter().all(u8::is_ascii_digit)
        && record.host.is_some()
        && record.created.is_some()
}

/// A legacy tool's record: a pid line alone (dotlockfile's `%d\n`,
/// lockfile-progs'), or procmail's empty lock.
pub fn is_legacy_pid_line(content: &[u8]) -> bool {
    let line = content.strip_suffix(b"\n").unwrap_or(content);
    line.iter().all(u8::is_ascii_digit) && !line.contains(&b'\n')
}

#[allow(clippy::too_many_arguments)]
fn judge(
    dir: &Dir,
    name: &OsStr,
    path: PathBuf,
    kind: Kind,
    is_dir: bool,
    policy: &Policy,
    grace: Duration,
    fs_now: Option<std::time::SystemTime>,
) -> Found {
    let mut out = Found {
        name: name.to_os_string(),
        path,
        kind,
        is_dir,
        of: None,
        holder: None,
        stale: false,
        note: None,
        token: None,
    };
    let lock = match LockPath::new(&out.path) {
        Ok(l) => l,
        Err(e) => {
            out.note = Some(e.to_string());
            return out;
        }
    };
    let looked = match kind {
        Kind::Temp => {
            out.stale = temp_is_debris(dir, name, &out.path, policy, fs_now);
            return out;
        }
        Kind::NfsSilly => return out,
        Kind::Counter => {
            out.token = crate::fence::highest(dir, name);
            return out;
        }
        _ if is_dir => Holder::of_dir(&lock, policy, grace),
        // The directory's "now", measured once for the whole listing.
        _ => fs::observe_at(dir, name, &out.path).map(|seen| {
            seen.map(|mut seen| {
                seen.fs_now = fs_now.or_else(|| fs::fs_now_at(dir, &out.path).ok());
                Holder::judged_as_seen(&lock, &mut seen, policy)
            })
        }),
    };
    match looked {
        Ok(Some(h)) => {
            out.stale = h.verdict.is_stale();
            out.holder = Some(h);
        }
        Ok(None) => out.note = Some("vanished while listing".into()),
        Err(e) => out.note = Some(e.to_string()),
    }
    out
}

/// Is the temporary file `name` debris by the rules of [`crate::debris`]?
fn temp_is_debris(
    dir: &Dir,
    name: &OsStr,
    path: &Path,
    policy: &Policy,
    fs_now: Option<std::time::SystemTime>,
) -> bool {
    let (Ok(Some(seen)), Some(fs_now)) = (fs::observe_at(dir, name, path), fs_now) else {
        return false;
    };
    let label = fs::temp_label();
    let Some(parsed) = crate::debris::parse(name, label.as_bytes()) else {
        return false;
    };
    let here = crate::judge::Here::current();
    let cx = crate::debris::Context {
        fs_now,
        stale_after: policy.stale_after,
        here: &here,
        pid_max: crate::host::pid_max(),
        probe: &crate::judge::SystemProbe,
        started_ago: crate::host::started_ago,
    };
    crate::debris::is_debris(parsed, &seen.record(), seen.mtime, &cx)
}

/// Each lock followed by its members (in name order); members whose
/// lock is not there, and debris, after.
fn grouped(found: Vec<Found>) -> Vec<Found> {
    let bases: HashSet<OsString> = found
        .iter()
        .filter(|f| f.of.is_none() && !f.kind.is_debris())
        .map(|f| f.name.clone())
        .collect();
    let (locks, rest): (Vec<Found>, Vec<Found>) = found
        .into_iter()
        .partition(|f| f.of.is_none() && !f.kind.is_debris());
    let (members, orphans): (Vec<Found>, Vec<Found>) = rest
        .into_iter()
        .partition(|f| f.of.as_ref().is_some_and(|o| bases.contains(o)));
    let mut out = Vec::new();
    for lock in locks {
        let name = lock.name.clone();
        out.push(lock);
        out.extend(
            members
                .iter()
                .filter(|m| m.of.as_ref() == Some(&name))
                .cloned(),
        );
    }
    out.extend(orphans);
    out
}

/// What `--clean` did with one thing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaned {
    Removed,
    /// Not the thing judged any more (released, taken, touched).
    Changed,
    /// Left alone, and why (not ours to remove).
    Kept(&'static str),
}

/// `--clean`: remove `f` if it is stale and ours to remove — a lock whose
/// record is a lockutils record or a legacy pid line in a `*.lock` file,
/// judged stale (each under the break protocol, only if still the very
/// one judged); a `.lk*` file judged debris (only that very file); never
/// an `.nfs*` file, a counter, or a lock whose content is no record.
/// `opened` is the listed directory, opened once for all of them.
pub fn clean(opened: &Dir, f: &Found, policy: &Policy, grace: Duration) -> Result<Cleaned> {
    if f.kind == Kind::NfsSilly {
        return Ok(Cleaned::Kept("another NFS client has it open"));
    }
    if !f.stale {
        return Ok(Cleaned::Kept("not stale"));
    }
    let lock = LockPath::new(&f.path)?;
    match f.kind {
        Kind::Temp => {
            let Some(seen) = fs::observe_at(opened, &f.name, &f.path)? else {
                return Ok(Cleaned::Changed);
            };
            let fs_now = fs::fs_now_at(opened, &f.path).ok();
            if !temp_is_debris(opened, &f.name, &f.path, policy, fs_now) {
                return Ok(Cleaned::Changed);
            }
            Ok(match opened.unlink_this(&f.name, seen.dev, seen.ino) {
                Ok(()) => Cleaned::Removed,
                Err(_) => Cleaned::Changed,
            })
        }
        _ if f.is_dir => {
            let Some(seen) = inspect::seen_dir(&lock)? else {
                return Ok(Cleaned::Changed);
            };
            if !crate::lockdir::judge(&seen, grace, policy).is_stale() {
                return Ok(Cleaned::Changed);
            }
            broken(crate::lockdir::break_dir(opened, &lock, &seen)?)
        }
        _ => {
            let Some(mut seen) = fs::observe_at(opened, &f.name, &f.path)? else {
                return Ok(Cleaned::Changed);
            };
            let content = seen.content.clone().unwrap_or_default();
            let ours = is_lockutils_record(&content)
                || (f.name.as_bytes().ends_with(b".lock") && is_legacy_pid_line(&content));
            if !ours {
                return Ok(Cleaned::Kept("its content is no lock record"));
            }
            // Judged again as listed (a lock held by readers: by its shares).
            if !Holder::judged(&lock, &mut seen, policy).verdict.is_stale() {
                return Ok(Cleaned::Changed);
            }
            broken(crate::breaking::break_lock(opened, &lock, &seen)?)
        }
    }
}

fn broken(b: Broken) -> Result<Cleaned> {
    Ok(match b {
        Broken::Removed => Cleaned::Removed,
        Broken::Changed | Broken::Busy => Cleaned::Changed,
    })
}

#[cfg(test)]
#[path = "survey_tests.rs"]
mod tests;
