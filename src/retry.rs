//! The errno rules of remote filesystems, in one place: which failed
//! calls are made again, and how often. What a call's errno *means* for a
//! lock (no directory, no permission, ...) is [`crate::error`]'s; whether
//! a call whose reply was lost happened is decided by looking, by each
//! caller (see [`crate::link`], [`crate::mkdir`]).
//!
//! * `ESTALE`: the file handle the call used is no longer valid — on NFS,
//!   another client removed or replaced what it named. A call that names
//!   its file afresh is made again ([`again`]); the client looks the name
//!   up anew.
//! * `EIO`: on a soft NFS mount, a call that timed out, which the server
//!   may or may not have done ([`eio`]).

use std::io;

/// How many times a call that met `ESTALE` is made again (the name looked
/// up afresh each time) before the caller is told.
pub(crate) const STALE_RETRIES: u32 = 5;

/// `ESTALE`: the file handle the call used is no longer valid.
pub(crate) fn is_stale(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::ESTALE)
}

/// Make `call` again while it meets `ESTALE` (up to [`STALE_RETRIES`]
/// times): each call names its file afresh, which an NFS client looks up
/// anew once its handle has gone stale.
pub(crate) fn again<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match call() {
            Err(e) if is_stale(&e) && tries < STALE_RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// How many times a call that answered `EIO` is made again.
const EIO_RETRIES: u32 = 2;

/// Make `call` again when it answers `EIO` (up to [`EIO_RETRIES`] times),
/// unless it `removes` a name.
///
/// Made again, a call that creates a name or moves our own answers as a
/// lost reply's retransmission would (`EEXIST`, `ENOENT`) if it was done,
/// which every caller decides by looking; or it does it now. A removal
/// made again blindly could remove what another process put at the name
/// in between — its lock — so `unlink` and `rmdir` give `EIO` back, and
/// their callers look first. A lasting I/O error answers `EIO` every time
/// and is given back.
pub(crate) fn eio<T>(removes: bool, mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match call() {
            Err(e)
                if e.raw_os_error() == Some(nix::libc::EIO) && !removes && tries < EIO_RETRIES =>
            {
                tries += 1
            }
            answer => return answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(errno: i32, times: u32) -> impl FnMut() -> io::Result<u32> {
        let mut calls = 0;
        move || {
            calls += 1;
            match calls <= times {
                true => Err(io::Error::from_raw_os_error(errno)),
                false => Ok(calls),
            }
        }
    }

    #[test]
    fn estale_is_met_with_a_fresh_lookup_a_bounded_number_of_times() {
        assert_eq!(
            again(failing(nix::libc::ESTALE, STALE_RETRIES)).unwrap(),
            STALE_RETRIES + 1
        );
        let lasting = again(failing(nix::libc::ESTALE, STALE_RETRIES + 1)).unwrap_err();
        assert!(is_stale(&lasting));
        let other = again(failing(nix::libc::EACCES, 1)).unwrap_err();
        assert_eq!(other.raw_os_error(), Some(nix::libc::EACCES), "only ESTALE");
    }

    #[test]
    fn eio_is_made_again_except_for_a_removal() {
        assert_eq!(
            eio(false, failing(nix::libc::EIO, EIO_RETRIES)).unwrap(),
            EIO_RETRIES + 1
        );
        let lasting = eio(false, failing(nix::libc::EIO, EIO_RETRIES + 1)).unwrap_err();
        assert_eq!(lasting.raw_os_error(), Some(nix::libc::EIO));
        let removal = eio(true, failing(nix::libc::EIO, 1)).unwrap_err();
        assert_eq!(
            removal.raw_os_error(),
            Some(nix::libc::EIO),
            "never blindly again"
        );
        let other = eio(false, failing(nix::libc::ESTALE, 1)).unwrap_err();
        assert!(is_stale(&other), "only EIO");
    }
}
