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

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::unistd::{Gid, getegid, geteuid, getgid, getuid, setresgid};

use crate::accounts;

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

/// Run `f` with the setgid group if `lock` passes every mailbox rule;
/// otherwise without it (where it will fail for lack of permission, as it
/// should).
pub fn privileged<T>(lock: &Path, f: impl FnOnce() -> T) -> T {
    let Some(Some(group)) = MAIL_GROUP.get().copied() else {
        return f();
    };
    if !rules_hold(lock, group) {
        return f();
    }
    let keep = Gid::from_raw(u32::MAX);
    if setresgid(keep, group, keep).is_err() {
        return f();
    }
    let result = f();
    let _ = setresgid(keep, getgid(), keep);
    result
}

/// The mailbox rules of the module docs.
fn rules_hold(lock: &Path, group: Gid) -> bool {
    let bytes = lock.as_os_str().as_encoded_bytes();
    let Some(mailbox) = bytes
        .strip_suffix(b".lock")
        .filter(|m| !m.is_empty() && !m.ends_with(b"/"))
    else {
        return false;
    };
    // SAFETY: cutting off an ASCII suffix keeps the encoding valid.
    let mailbox = PathBuf::from(unsafe { std::ffi::OsStr::from_encoded_bytes_unchecked(mailbox) });
    let Ok(meta) = std::fs::symlink_metadata(&mailbox) else {
        return false;
    };
    if !meta.file_type().is_file() || meta.uid() != getuid().as_raw() {
        return false;
    }
    let dir = match lock.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::metadata(dir)
        .is_ok_and(|d| d.gid() == group.as_raw() && d.permissions().mode() & 0o020 != 0)
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
