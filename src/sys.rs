//! Every `unsafe` call of the library, each with its SAFETY note: the few
//! system calls and queries that nix does not wrap.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::libc;

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

/// The real-time signals of this libc, `SIGRTMIN()..=SIGRTMAX()` (glibc
/// keeps the first two or three for itself).
pub fn realtime_range() -> std::ops::RangeInclusive<libc::c_int> {
    libc::SIGRTMIN()..=libc::SIGRTMAX()
}

/// A signal set holding the signals numbered `numbers`, real-time ones
/// included (which `SigSet::add` cannot name).
pub fn sigset_of(numbers: impl IntoIterator<Item = libc::c_int>) -> nix::sys::signal::SigSet {
    // SAFETY: sigemptyset initialises the set we own; sigaddset only sets
    // bits in it (an invalid number is refused with -1, and left out).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for n in numbers {
            libc::sigaddset(&mut set, n);
        }
        nix::sys::signal::SigSet::from_sigset_t_unchecked(set)
    }
}

/// Is the signal numbered `sig` ignored (`SIG_IGN`) in this process?
pub fn is_ignored_number(sig: libc::c_int) -> bool {
    // SAFETY: a null new action only queries the current one, into a
    // zeroed `sigaction` that we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Is any of the signals numbered `numbers` pending (blocked and sent,
/// to this thread or the process)?
pub fn any_pending(numbers: &[libc::c_int]) -> bool {
    // SAFETY: sigpending fills the zeroed set we own; sigismember reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set) == 0 && numbers.iter().any(|&n| libc::sigismember(&set, n) == 1)
    }
}

/// Restore the default action of the signal numbered `sig`.
pub fn default_action(sig: libc::c_int) {
    // SAFETY: SIG_DFL installs no handler, so there is none to race with.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// `kill(2)` with a signal by number (real-time ones included).
pub fn kill_number(pid: i32, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: kill takes two integers and touches no memory of ours.
    match unsafe { libc::kill(pid, sig) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// `raise(3)` with a signal by number.
pub fn raise_number(sig: libc::c_int) {
    // SAFETY: raise takes an integer and touches no memory of ours.
    unsafe { libc::raise(sig) };
}

/// How a child ended, as `waitpid(2)` tells it, real-time signals
/// included (nix's `WaitStatus` cannot hold those, and a child reaped by
/// a call that then fails to describe it would be lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    Running,
    Exited(i32),
    Signaled(libc::c_int),
}

/// `waitpid(pid, WNOHANG)` (or blocking, with `block`).
pub fn waitpid_raw(pid: i32, block: bool) -> std::io::Result<Reaped> {
    let mut status: libc::c_int = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: waitpid writes the status into the int we own.
    let got = unsafe { libc::waitpid(pid, &mut status, flags) };
    match got {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Reaped::Running),
        _ if libc::WIFEXITED(status) => Ok(Reaped::Exited(libc::WEXITSTATUS(status))),
        _ if libc::WIFSIGNALED(status) => Ok(Reaped::Signaled(libc::WTERMSIG(status))),
        _ => Ok(Reaped::Running),
    }
}

/// What the child of [`fork_held`] is given, made before the fork: after
/// it, the child calls only async-signal-safe functions.
pub struct HeldExec<'a> {
    /// The program, looked up in `PATH` by `execvpe(3)`.
    pub argv: &'a [std::ffi::CString],
    pub envp: &'a [std::ffi::CString],
    /// The child's end of the channel (close-on-exec): it waits on it for
    /// the go byte, and reports a failed exec on it.
    pub theirs: &'a OwnedFd,
    /// Our end, closed in the child.
    pub ours: &'a OwnedFd,
}

/// `fork(2)` a child that waits, with every signal still blocked, for one
/// byte on `spec.theirs`: then it clears its signal mask and
/// `execvpe(3)`s the command (glibc runs a file without a `#!` line under
/// `/bin/sh`); if that fails it writes the errno back and exits 127. On
/// end-of-file instead (we died before saying go) it exits 127 without
/// running anything. Returns the child's pid.
pub fn fork_held(spec: &HeldExec<'_>) -> std::io::Result<i32> {
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (theirs, ours) = (spec.theirs.as_raw_fd(), spec.ours.as_raw_fd());
    // SAFETY: a zeroed sigset_t emptied by sigemptyset, before the fork.
    let empty = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    };
    // SAFETY: the program is single-threaded where it runs commands; the
    // child touches only the memory prepared above (pointers into
    // `spec`, alive until we return) and calls only async-signal-safe
    // functions (close, read, sigprocmask, execvpe as used by posix_spawn,
    // write, _exit) before it execs or exits.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => unsafe {
            libc::close(ours);
            let mut byte = 0u8;
            loop {
                let n = libc::read(theirs, (&raw mut byte).cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(127);
            }
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::execvpe(argv[0], argv.as_ptr(), envp.as_ptr());
            let errno = (*libc::__errno_location()).to_ne_bytes();
            libc::write(theirs, errno.as_ptr().cast(), errno.len());
            libc::_exit(127)
        },
        pid => Ok(pid),
    }
}

/// `fork(2)` of a process that has one thread (the programs have one when
/// they leave a keeper): `Ok(None)` in the child, the child's pid in the
/// parent. The child ends with [`exit_now`], never by returning.
pub fn fork() -> std::io::Result<Option<u32>> {
    // SAFETY: the programs run single-threaded (no thread is ever started
    // outside the library's Guard, which never forks), so the child's copy
    // of the process has no lock held by a thread that is not there.
    match unsafe { libc::fork() } {
        0 => Ok(None),
        -1 => Err(std::io::Error::last_os_error()),
        pid => Ok(Some(pid as u32)),
    }
}

/// End this process at once (`_exit(2)`): no exit handlers, no flush of
/// output buffered by the parent it was forked from.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes a status and does not return.
    unsafe { libc::_exit(code) }
}

/// Send `sig` to the process behind `pidfd` (`pidfd_send_signal(2)`):
/// never to another process that has its pid since. `false`: not sent.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> bool {
    // SAFETY: the syscall takes a pidfd, a signal number, a null siginfo and
    // no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

/// Put `sig` back to its default disposition.
pub fn default_disposition(sig: nix::sys::signal::Signal) {
    use nix::sys::signal::{SigHandler, signal};
    // SAFETY: restoring the default disposition installs no handler.
    let _ = unsafe { signal(sig, SigHandler::SigDfl) };
}

/// Make `to` a copy of `fd` (`dup2(2)`, not close-on-exec).
pub fn dup2(fd: BorrowedFd<'_>, to: libc::c_int) -> bool {
    // SAFETY: dup2 takes two descriptor numbers; `to` is replaced.
    unsafe { libc::dup2(fd.as_raw_fd(), to) == to }
}

/// Is descriptor `fd` close-on-exec? (An unknown one counts as so: it is
/// left alone.)
pub fn is_cloexec(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD reads a descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags < 0 || flags & libc::FD_CLOEXEC != 0
}

/// Close descriptor `fd`, which nothing of ours owns (one the caller
/// passed down).
pub fn close(fd: libc::c_int) {
    // SAFETY: `fd` is owned by no Rust value of this process.
    unsafe { libc::close(fd) };
}

/// Tests only: run `child` in a forked child process, which then ends
/// with `_exit(0)`; its raw wait status, or `None` if fork failed.
#[cfg(test)]
pub fn in_forked_child(child: impl FnOnce()) -> Option<i32> {
    // SAFETY: the child runs only `child` — code that takes no lock another
    // thread may hold at the fork — and ends with `_exit`, never returning
    // into the test harness; the parent reaps it.
    match unsafe { libc::fork() } {
        0 => {
            child();
            unsafe { libc::_exit(0) }
        }
        -1 => None,
        pid => {
            let mut status = 0;
            // SAFETY: waits for the child just forked, into a local.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            Some(status)
        }
    }
}
