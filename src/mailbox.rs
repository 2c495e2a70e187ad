//! Mailbox locks: where they are, and the setgid rules for taking them.
//!
//! `dotlock -m` locks `$MAIL.lock`, else `/var/mail/<user>.lock` (as
//! liblockfile's `dotlockfile -m`); `lockfile -ml` locks procmail's choice.
//!
//! These tools may be installed setgid `mail`, so that users can lock their
//! mailbox in a spool only group `mail` may write. That makes them a
//! security boundary. The extra group is dropped at start
//! ([`drop_privileges`]) and taken back only around creating or removing a
//! lock for which every rule holds ([`privileged`]): the name ends in
//! `.lock`; the mailbox (the name without `.lock`) exists, is a regular file
//! (by `lstat`, so no symlink) and is owned by the *real* uid; the lock's
//! directory belongs to our setgid group and is group-writable. A command
//! run under a lock never has the group: it is started while the group is
//! dropped, and `execve(2)` makes the saved group the effective one.
//!
//! The rules are checked on the lock's directory as opened once, and the
//! privileged calls act on that descriptor ([`crate::fs`]): a symbolic
//! link along the path that is flipped between the check and the call
//! cannot point them at another user's spool.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use nix::unistd::{Gid, getegid, geteuid, getgid, getuid, setresgid};

use crate::accounts;
use crate::fs::Dir;

/// The setgid group we were started with, kept as the saved group.
static MAIL_GROUP: OnceLock<Option<Gid>> = OnceLock::new();

/// Drop the setgid group (if any) at start, keeping it as the saved group
/// so that [`privileged`] can take it back. Call before anything else.
pub fn drop_privileges() {
    let (real, effective) = (getgid(), getegid());
    let group = (real != effective).then_some(effective);
    if group.is_some() && setresgid(real, real, effective).is_err() {
        // Cannot drop it: then never use it either.
        let _ = setresgid(real, real, real);
    }
    let _ = MAIL_GROUP.set(group);
}

/// Run `f` with the setgid group if the lock `name` in the opened
/// directory `dir` passes every mailbox rule; otherwise without it (where
/// it will fail for lack of permission, as it should).
///
/// The rules are checked on the opened directory (`fstat(2)`) and the
/// mailbox in it (`fstatat(2)`, `AT_SYMLINK_NOFOLLOW`), and `f` must act
/// on `dir` alone, by its descriptor (`openat`, `linkat`, `unlinkat`):
/// nothing renamed or swapped along the lock's path after `dir` was opened
/// can redirect the privileged calls to another directory.
pub fn privileged<T>(dir: &Dir, name: &OsStr, f: impl FnOnce() -> T) -> T {
    let Some(Some(group)) = MAIL_GROUP.get().copied() else {
        return f();
    };
    if !rules_hold(dir, name, group) {
        return f();
    }
    crate::seam::pause("PRIVILEGED");
    let keep = Gid::from_raw(u32::MAX);
    if setresgid(keep, group, keep).is_err() {
        return f();
    }
    let result = f();
    let _ = setresgid(keep, getgid(), keep);
    result
}

/// The mailbox rules of the module docs, on the opened directory.
fn rules_hold(dir: &Dir, name: &OsStr, group: Gid) -> bool {
    let Some(mailbox) = name
        .as_bytes()
        .strip_suffix(b".lock")
        .filter(|m| !m.is_empty())
    else {
        return false;
    };
    let Ok(meta) = dir.lstat(OsStr::from_bytes(mailbox)) else {
        return false;
    };
    if !meta.is_file() || meta.uid != getuid().as_raw() {
        return false;
    }
    dir.meta()
        .is_ok_and(|d| d.is_dir() && d.gid == group.as_raw() && d.mode & 0o020 != 0)
}

/// The system mail spool directory.
pub const MAILDIR: &str = "/var/mail";

/// procmail's mailbox lock (`-ml`, `-mu`): `/var/mail/NAME.lock`, NAME
/// from `$LOGNAME` if that user's uid is the real uid, else the real uid's
/// passwd entry.
pub fn procmail_lock_path() -> Result<PathBuf, String> {
    let uid = getuid().as_raw();
    let from_logname = std::env::var("LOGNAME")
        .ok()
        .and_then(|name| accounts::user_by_name(&name))
        .filter(|u| u.id == uid);
    let Some(user) = from_logname.or_else(|| accounts::user_by_id(uid)) else {
        return Err(format!(
            "uid {uid} has no passwd entry: cannot name its mailbox"
        ));
    };
    Ok(PathBuf::from(MAILDIR).join(format!("{}.lock", user.name)))
}

/// The mailbox lock path, or why there is none.
pub fn lock_path() -> Result<PathBuf, String> {
    if let Some(mail) = std::env::var_os("MAIL").filter(|m| !m.is_empty()) {
        let mut lock = mail;
        lock.push(".lock");
        return Ok(PathBuf::from(lock));
    }
    let uid = geteuid().as_raw();
    match accounts::user_by_id(uid) {
        Some(user) => Ok(PathBuf::from(MAILDIR).join(format!("{}.lock", user.name))),
        None => Err(format!(
            "uid {uid} has no passwd entry: cannot name its mailbox"
        )),
    }
}
