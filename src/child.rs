//! Running the command under the lock: started only once the lock names
//! it, signals forwarded, the lock kept fresh, its end passed on. The
//! child is never orphaned.
//!
//! The command's process is made first and held before its `exec`
//! ([`start`]); the caller records its pid in the lock, and only then lets
//! it go ([`Held::go`]). Killed with SIGKILL at any instant, we leave
//! either a held process that exits without running anything (the socket
//! it waits on reads end-of-file) or a record naming the command: never a
//! running command the lock does not name.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{read, write};

use crate::signals::{Sig, Signals};
use crate::sys::{self, Reaped};

/// How a command run under the lock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(Sig),
}

impl ChildEnd {
    /// The shell's number for it: the exit code, or 128+N.
    pub fn shell_status(self) -> i32 {
        match self {
            ChildEnd::Exited(code) => code,
            ChildEnd::Signaled(sig) => 128 + sig.number(),
        }
    }
}

/// The one connection to a command's process before its `exec`: a
/// socket pair, made before the lock is taken (so that a lock, once
/// taken, never fails to run its command for want of descriptors). The
/// child waits on its end for the go byte; on a failed `exec` it writes
/// the errno back; its end is close-on-exec, so a successful `exec`
/// reads as end-of-file to us.
#[derive(Debug)]
pub struct Channel {
    ours: OwnedFd,
    theirs: OwnedFd,
}

impl Channel {
    pub fn new() -> io::Result<Channel> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok(Channel { ours, theirs })
    }
}

/// A command's process, made but held before its `exec`: it runs nothing
/// of the command until [`Held::go`]. Dropped without `go`, it exits
/// without running anything, and is reaped.
#[derive(Debug)]
pub struct Held {
    pid: i32,
    /// Our end of the channel; `None` once the child was let go.
    ours: Option<OwnedFd>,
}

/// Make the process of `argv` (run as `execvp(3)` would: a `PATH` search,
/// a file without a `#!` line under `/bin/sh`) with `extra_env` added,
/// held before its `exec`. It will start with an empty signal mask;
/// ignored signals stay ignored, caught ones (none: we block and read
/// them) start at their default.
///
/// SIGPIPE is passed on as this process has it. The programs leave it as
/// they inherited it; a Rust `main` ignores it, so a program using this
/// library from one should restore the default first if its commands are
/// to die of a broken pipe.
pub fn start(
    channel: Channel,
    argv: &[OsString],
    extra_env: &[(&str, String)],
) -> io::Result<Held> {
    let cstr = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let args = argv
        .iter()
        .map(|a| cstr(a))
        .collect::<io::Result<Vec<_>>>()?;
    if args.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let extra = extra_env
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    let env = std::env::vars_os()
        .filter(|(k, _)| !extra_env.iter().any(|(e, _)| k == e))
        .chain(extra)
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(&kv)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let Channel { ours, theirs } = channel;
    let pid = sys::fork_held(&sys::HeldExec {
        argv: &args,
        envp: &env,
        theirs: &theirs,
        ours: &ours,
    })?;
    Ok(Held {
        pid,
        ours: Some(ours),
    })
}

impl Held {
    /// The pid the command will have.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Let the command run, and wait until it has `exec`ed. `Err`: it could
    /// not be (not found, not executable), and its process is reaped.
    pub fn go(mut self) -> io::Result<u32> {
        let ours = self.ours.take().expect("go is said once");
        // EPIPE: the child is gone already (killed while held); its end
        // is seen by the caller's wait. (SIGPIPE is blocked and read, and
        // ours is not forwarded.)
        let _ = write(&ours, b"g");
        let mut errno = [0u8; 4];
        let mut got = 0;
        while got < errno.len() {
            match read(&ours, &mut errno[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if got < errno.len() {
            return Ok(self.pid());
        }
        let _ = sys::waitpid_raw(self.pid, true);
        self.pid = 0;
        Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
    }
}

impl Drop for Held {
    /// Never let go: the child reads end-of-file, exits without running
    /// anything, and is reaped.
    fn drop(&mut self) {
        if self.ours.take().is_some() && self.pid > 0 {
            let _ = sys::waitpid_raw(self.pid, true);
        }
    }
}

/// What [`run_child`] tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEvent {
    /// The command's process exists with this pid, held before its `exec`:
    /// record it. `false` from the caller: do not run it.
    Spawned(u32),
    /// `every` has passed: time to keep the lock fresh.
    Tick,
}

/// Why [`run_child`] did not run the command.
#[derive(Debug, thiserror::Error)]
pub enum NotRun {
    /// It could not be started.
    #[error("the command could not be started: {0}")]
    Start(io::Error),
    /// The caller refused it on [`ChildEvent::Spawned`].
    #[error("the command was not let run")]
    Refused,
}

/// Run `argv` and wait for it, forwarding the signals
/// [`Signals::forwards`], telling `event` the child's pid before it may
/// run (the command runs only if `event` says `true`) and then every
/// `every` (to keep the lock fresh). `signals` must already catch SIGCHLD
/// and the forwarded signals: blocked before the spawn, none can be lost.
pub fn run_child(
    channel: Channel,
    argv: &[OsString],
    extra_env: &[(&str, String)],
    signals: &Signals,
    every: Duration,
    mut event: impl FnMut(ChildEvent) -> bool,
) -> Result<ChildEnd, NotRun> {
    signals.ready().map_err(NotRun::Start)?;
    let held = start(channel, argv, extra_env).map_err(NotRun::Start)?;
    if !event(ChildEvent::Spawned(held.pid())) {
        return Err(NotRun::Refused);
    }
    let pid = held.go().map_err(NotRun::Start)? as i32;
    let mut next = Instant::now() + every;
    loop {
        match sys::waitpid_raw(pid, false) {
            Ok(Reaped::Exited(code)) => return Ok(ChildEnd::Exited(code)),
            Ok(Reaped::Signaled(n)) => {
                let sig = Sig::from_number(n).expect("the kernel's own signal number");
                return Ok(ChildEnd::Signaled(sig));
            }
            Ok(Reaped::Running) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(NotRun::Start(e)),
        }
        // Signals first, then look at the child again: a SIGCHLD read here
        // means the next waitpid finds it.
        let mut chld = false;
        while let Some(caught) = signals.take_caught() {
            if Signals::forwards(caught) {
                let _ = sys::kill_number(pid, caught.sig.number());
            }
            chld |= caught.sig == nix::sys::signal::Signal::SIGCHLD;
        }
        if chld {
            continue;
        }
        let now = Instant::now();
        if now >= next {
            event(ChildEvent::Tick);
            next = now + every;
        }
        let left = next.saturating_duration_since(Instant::now());
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // Made by `ready` above; should it be missing, the tick still comes.
        let fd = signals.pollable().ok();
        let mut fds: Vec<PollFd> = fd
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .into_iter()
            .collect();
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn shell_status_of_child_ends() {
        assert_eq!(ChildEnd::Exited(3).shell_status(), 3);
        assert_eq!(
            ChildEnd::Signaled(Signal::SIGTERM.into()).shell_status(),
            143
        );
        assert_eq!(
            ChildEnd::Signaled(Signal::SIGINT.into()).shell_status(),
            130
        );
    }
}
