//! The user's mailbox lock, for `dotlock -m`: `$MAIL.lock`, else
//! `/var/mail/<user>.lock` with the user of the effective uid (as
//! liblockfile's `dotlockfile -m`).

use std::path::PathBuf;

use nix::unistd::{User, geteuid};

/// The system mail spool directory.
pub const MAILDIR: &str = "/var/mail";

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
