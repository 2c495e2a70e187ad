//! Fencing tokens (`--fence`): each holder of a lock that asks gets a
//! number larger than every earlier holder's, so that a resource can
//! refuse the work of a holder that lost its lock (paused, partitioned)
//! and wrote on regardless.
//!
//! The counter of `NAME` is the directory `NAME.fence` beside it (never
//! inside a lock directory; `.fence` is as long as `.break`, so it fits the
//! name budget of every lock). A token is claimed by creating a file named
//! by its number there, exclusively and judged by inode as a dot-lock is
//! ([`link::try_lock_at`]): two claimants can never both have one number,
//! and a lost reply is judged by looking. The next number is above the
//! highest name found and no lower than the filesystem's clock in
//! milliseconds (the lock's mtime, just made), so that a counter deleted
//! by hand restarts above the earlier tokens. Older numbers are removed.
//!
//! A token counts only once the holder's record names it ([`take`]): that
//! append is made only if the lock is still ours, after the claim, so a
//! token claimed after the lock was lost is never used. A holder paused
//! after that finds a successor's token above its own, which is what the
//! protected resource checks.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::acquire::Holding;
use crate::attempt::Try;
use crate::dir::Dir;
use crate::error::{Error, Result};
use crate::path::{LockPath, NAME_MAX};
use crate::retry::again;
use crate::seam;

/// The counter's suffix: `NAME.fence`.
pub const SUFFIX: &str = ".fence";

/// How many numbers are tried before the claim gives up (each taken by
/// another claimant in between: a holder that lost its lock, late).
const ROUNDS: u32 = 64;

/// The token a file name stands for: decimal digits only. `Err`: digits
/// beyond the largest token (nothing above it could be claimed).
pub fn token_of(name: &OsStr) -> std::result::Result<Option<u64>, ()> {
    let digits = name.as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .map(Some)
        .ok_or(())
}

/// The next token: above `highest` (the largest claimed) and `taken`
/// (a number just found taken), and at least `floor`. `None`: beyond the
/// largest token.
pub fn next(highest: Option<u64>, taken: Option<u64>, floor: u64) -> Option<u64> {
    let above = |n: Option<u64>| n.map_or(Some(0), |n| n.checked_add(1));
    Some(above(highest)?.max(above(taken)?).max(floor).max(1))
}

/// Milliseconds since the epoch of `t` (0 before it).
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The counter of `lock`: `NAME.fence` beside it.
pub fn counter_path(lock: &LockPath) -> PathBuf {
    let mut name = lock.name().to_os_string();
    name.push(SUFFIX);
    lock.path().with_file_name(name)
}

/// The counter `name` in `parent`, opened afresh (close-to-open: an NFS
/// client then lists what the server has, not what it cached), never
/// through a symbolic link, and its names. `ESTALE` (the counter removed
/// and made again by another client) looks it up again, listing included.
fn list(parent: &Dir, name: &OsStr) -> io::Result<(Dir, Vec<OsString>)> {
    again(|| {
        let dir = parent.open_child(name)?;
        let names = dir.names()?;
        Ok((dir, names))
    })
}

/// The highest token in the counter `name` of the opened directory
/// `parent`, for `--list`: `None` if there is none (or no counter).
pub fn highest(parent: &Dir, name: &OsStr) -> Option<u64> {
    let (_, names) = list(parent, name).ok()?;
    names
        .iter()
        .filter_map(|n| token_of(n).ok().flatten())
        .max()
}

/// Claim the next token of `lock` (held by us, `held`) and record it in
/// the lock's record; the token is ours to use only when this returns it.
pub fn take<H: Holding>(held: &mut H, lock: &LockPath) -> Result<u64> {
    let failed = |reason: String| Error::NoToken {
        path: lock.path().into(),
        reason,
    };
    seam::pause("FENCE");
    let token = claim(lock).map_err(failed)?;
    seam::pause("FENCE_CLAIMED");
    match held.append(format!("token={token}\n").as_bytes()) {
        Ok(true) => {
            seam::pause("FENCE_RECORDED");
            Ok(token)
        }
        Ok(false) => Err(failed(format!(
            "the lock was lost while token {token} was claimed; it is not used"
        ))),
        Err(e) => Err(failed(format!(
            "token {token} could not be recorded in the lock: {e}"
        ))),
    }
}

/// Claim the next token of `lock`: the number's file made in its
/// counter. `Err`: why not, in words.
fn claim(lock: &LockPath) -> std::result::Result<u64, String> {
    let counter = counter_path(lock);
    let io = |e: io::Error| Error::io(&counter, e).to_string();
    let name = counter.file_name().unwrap_or_default().to_os_string();
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong { path: counter }.to_string());
    }
    let parent = lock.open_dir().map_err(|e| e.to_string())?;
    // "Now" on the filesystem's clock: the lock was made just now.
    let floor = millis(
        again(|| parent.lstat(lock.name()))
            .map_err(|e| Error::io(lock.path(), e).to_string())?
            .mtime,
    );
    match parent.mkdir(&name, 0o777) {
        Ok(()) => {}
        // There already (or our own mkdir, its reply lost): opened below,
        // never through a symbolic link.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let beyond = || {
        format!(
            "{}: holds a number beyond the largest token; left alone",
            counter.display()
        )
    };
    let record = format!("{}\n", std::process::id());
    let mut taken = None;
    for _ in 0..ROUNDS {
        let (dir, names) = list(&parent, &name).map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP | nix::libc::ENOTDIR) => format!(
                "{}: is not a directory of fencing tokens; left alone",
                counter.display()
            ),
            _ => io(e),
        })?;
        let mut highest = None;
        for n in &names {
            highest = highest.max(token_of(n).map_err(|()| beyond())?);
        }
        let token = next(highest, taken, floor).ok_or_else(beyond)?;
        seam::pause("FENCE_LISTED");
        let path = LockPath::new(counter.join(token.to_string())).map_err(|e| e.to_string())?;
        match crate::link::try_lock_at(&dir, &path, record.as_bytes(), 0o644) {
            Ok(Try::Acquired(held)) => {
                held.keep();
                remove_older(&dir, &names, token);
                return Ok(token);
            }
            Ok(Try::Busy(_)) => taken = Some(token),
            Ok(Try::Vanished) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "{}: no token could be claimed in {ROUNDS} tries",
        counter.display()
    ))
}

/// Remove the counter's regular files of tokens below `token` (what is
/// not a regular file there is not ours: left alone).
fn remove_older(dir: &Dir, names: &[OsString], token: u64) {
    for n in names {
        if matches!(token_of(n), Ok(Some(t)) if t < token)
            && let Ok(m) = dir.lstat(n)
            && m.is_file()
        {
            let _ = dir.unlink_this(n, m.dev, m.ino);
        }
    }
}

#[cfg(test)]
#[path = "fence_tests.rs"]
mod tests;
