//! The user's mailbox lock, for `dotlock -m`: `$MAIL.lock`, else
//! `/var/mail/<user>.lock` with the user of the effective uid (as
//! liblockfile's `dotlockfile -m`).

use std::path::PathBuf;

use nix::unistd::{User, geteuid};

/// The system mail spool directory.
pub const MAILDIR: &str = "/var/mail";

/// procmail's mailbox lock (`-ml`, `-mu`): `/var/mail/NAME.lock`, NAME
/// from `$LOGNAME` if that user's uid is the real uid, else the real uid's
/// passwd entry.
pub fn procmail_lock_path() -> Result<PathBuf, String> {
    let uid = nix::unistd::getuid();
    let from_logname = std::env::var("LOGNAME")
        .ok()
        .and_then(|name| User::from_name(&name).ok().flatten())
        .filter(|u| u.uid == uid);
    let user = match from_logname {
        Some(u) => u,
        None => match User::from_uid(uid) {
            Ok(Some(u)) => u,
            _ => {
                return Err(format!(
                    "uid {uid} has no passwd entry: cannot name its mailbox"
                ));
            }
        },
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
    match User::from_uid(geteuid()) {
        Ok(Some(user)) => Ok(PathBuf::from(MAILDIR).join(format!("{}.lock", user.name))),
        _ => Err(format!(
            "uid {} has no passwd entry: cannot name its mailbox",
            geteuid()
        )),
    }
}
