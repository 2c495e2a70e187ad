//! The keeper of the locks one invocation took for a shell (SPEC §13).
//!
//! A lock bound to a trusted pid that outlives the tool — `lockdir DIR`
//! (and the code `--trap` prints), `dotlock -p` without a command,
//! `filelock` without one — is left with one keeper process for all the
//! locks the invocation took. The keeper is detached: a session of its
//! own, 0, 1 and 2 on `/dev/null`, none of the caller's other descriptors
//! (cron, `$(…)` and pipes never wait for it). It watches the holder
//! through a pidfd opened before it was forked, and checks the holder's
//! recorded start time once it runs (a holder that died, or whose pid was
//! reused, before it started is caught). Then, every touch interval (30 s,
//! or a third of the lease if shorter):
//!
//! * while the holder lives and each lock is still its own (device, inode,
//!   record — which names the keeper, `keeper=`, `keeper_start=`), it
//!   touches them, so that other machines, which can judge only by age,
//!   never break a live shell's lock;
//! * when a lock is no longer its own (released: `-u` also tells the
//!   keeper at once, [`stop`]; or broken by another machine after a
//!   freeze), it signals the holder if asked (`--on-lost=term|kill`) and
//!   exits, touching nothing;
//! * when the holder dies without releasing (`kill -9`, a shell that exits
//!   without its trap), it releases each lock that is still the very one
//!   it keeps, at once: every machine can take it within a touch of the
//!   holder's death instead of a lease later.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

use crate::acquire::Holding;
use crate::host;
use crate::judge::Here;
use crate::record::Record;

/// Whom the locks are kept for: the pid their records name, with its
/// recorded start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct For {
    pub pid: u32,
    pub start: Option<u64>,
}

/// How a keeper keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keeping {
    /// Touch this often.
    pub every: Duration,
    /// Send the holder this signal when its lock is found lost while it
    /// lives.
    pub on_lost: Option<Signal>,
    /// The keeper's process name (`ps -e`, `/proc/PID/comm`).
    pub name: &'static str,
}

/// How long the tool waits for its keeper to have recorded itself.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Leave a keeper for `held`, kept for `holder`; its pid. Whatever
/// happens, this process leaves the locks in place: with no keeper (no
/// pidfd, no fork) they age as locks without one always did. A holder
/// already gone is not kept for: its locks are released at once.
pub fn leave<H: Holding>(held: H, holder: For, keeping: &Keeping) -> io::Result<u32> {
    crate::seam::pause("BEFORE_KEEPER");
    let pidfd = match crate::sys::pidfd_open(holder.pid) {
        Some(fd) => fd,
        None if host::liveness(holder.pid) == host::Liveness::Gone => {
            let _ = held.release();
            return Err(io::Error::other("its holder is gone: released"));
        }
        None => {
            held.keep();
            return Err(io::Error::other("no pidfd for its holder"));
        }
    };
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // Nothing buffered may be written twice, by the keeper too.
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    }
    match crate::sys::fork() {
        Err(e) => {
            held.keep();
            Err(e)
        }
        Ok(None) => {
            drop(ready_r);
            keep(held, holder, &pidfd, ready_w, keeping);
            crate::sys::exit_now(0)
        }
        Ok(Some(pid)) => {
            drop(ready_w);
            wait_ready(&ready_r);
            held.keep();
            Ok(pid)
        }
    }
}

/// Wait until the keeper has recorded itself (it closes its end of the
/// pipe), at most [`READY_WITHIN`].
fn wait_ready(ready: &OwnedFd) {
    let timeout = PollTimeout::try_from(READY_WITHIN).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, timeout);
}

/// The keeper's life (in the forked child).
fn keep<H: Holding>(mut held: H, holder: For, pidfd: &OwnedFd, ready: OwnedFd, keeping: &Keeping) {
    detach(keeping.name, &ready);
    let recorded = held.append(&Record::keeper_lines(std::process::id()));
    // The tool may return to its caller now.
    drop(ready);
    if !matches!(recorded, Ok(true)) {
        return;
    }
    crate::seam::pause("KEEPER_START");
    // The pidfd names the process that had the holder's pid when it was
    // opened: the holder itself only if it started when recorded.
    let started_as_recorded = holder
        .start
        .is_none_or(|start| host::start_time(holder.pid) == Some(start));
    if exited(pidfd, Duration::ZERO) || !started_as_recorded {
        crate::seam::pause("KEEPER_RELEASE");
        let _ = held.release();
        return;
    }
    loop {
        if exited(pidfd, keeping.every) {
            crate::seam::pause("KEEPER_RELEASE");
            let _ = held.release();
            return;
        }
        match held.still_ours() {
            Ok(true) => {
                crate::seam::pause("KEEPER_TOUCH");
                let _ = held.touch();
            }
            Ok(false) => {
                if let Some(sig) = keeping.on_lost {
                    let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), sig as i32);
                }
                return;
            }
            // A look that failed proves nothing: look again next turn.
            Err(_) => {}
        }
    }
}

/// Leave the caller's session, terminal and descriptors: 0, 1 and 2 on
/// `/dev/null`, every descriptor not our own closed (ours are close-on-exec;
/// what the caller passed down is not). Signals unblocked, at their
/// default: `-u`'s SIGTERM ends the keeper.
fn detach(name: &str, keep_open: &OwnedFd) {
    let _ = nix::unistd::setsid();
    if let Ok(null) = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        for fd in 0..3 {
            crate::sys::dup2(null.as_fd(), fd);
        }
    }
    let inherited: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in inherited.into_iter().filter(|&fd| fd > 2) {
        if fd != keep_open.as_raw_fd() && !crate::sys::is_cloexec(fd) {
            crate::sys::close(fd);
        }
    }
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGPIPE,
    ] {
        crate::sys::default_disposition(sig);
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::new(name).unwrap_or_default());
}

/// Has the process behind `pidfd` exited, waiting at most `within`?
fn exited(pidfd: &OwnedFd, within: Duration) -> bool {
    let timeout = PollTimeout::try_from(within).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, timeout) {
            Ok(n) => return n > 0,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// `-u` released a lock whose record names a keeper: tell it to stop,
/// if it is that very process on this machine (its pid namespace, its
/// recorded start time).
pub fn stop(record: &Record) {
    let (Some(keeper), Some(start)) = (record.keeper, record.keeper_start) else {
        return;
    };
    if !Here::current().is_this_boot_and_pidns(record) {
        return;
    }
    let Some(pidfd) = crate::sys::pidfd_open(keeper) else {
        return;
    };
    // Checked after the pidfd is open: the pidfd names this process
    // whatever happens to the pid.
    if host::start_time(keeper) == Some(start) {
        let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), Signal::SIGTERM as i32);
    }
}
