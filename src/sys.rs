//! Every `unsafe` call of the library, each with its SAFETY note: the few
//! system calls and queries that nix does not wrap.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::libc;
use nix::sys::signal::Signal;

/// A pidfd for `pid` (`pidfd_open(2)`), where the kernel has them.
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = i32::try_from(pid).ok().filter(|&p| p > 0)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| {
        // SAFETY: the kernel just returned this descriptor to us alone.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    })
}

/// Is `sig` ignored (`SIG_IGN`) in this process?
pub fn is_ignored(sig: Signal) -> bool {
    // SAFETY: a null new action only queries the current one, into a
    // zeroed `sigaction` that we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig as libc::c_int, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Restore the default action of `sig`.
pub fn default_action(sig: Signal) {
    // SAFETY: SIG_DFL installs no handler, so there is none to race with.
    let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
}

/// `fcntl(fd, F_NOTIFY, events)`: dnotify on the directory `fd`.
pub fn notify(fd: BorrowedFd<'_>, events: libc::c_int) -> bool {
    // SAFETY: F_NOTIFY takes an int argument; fd is open for the call.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_NOTIFY, events) == 0 }
}

/// The width in columns of the terminal on `fd`, if it is one and says.
pub fn terminal_columns(fd: BorrowedFd<'_>) -> Option<usize> {
    // SAFETY: `winsize` is plain integers, for which zero is valid.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the `winsize` we own and pass by pointer.
    let ok = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}
