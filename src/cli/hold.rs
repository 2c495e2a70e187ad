//! Taking a lock from the command line, and what follows: waiting (signals
//! caught, early wake, parent watch, `--verbose` lines), then leaving the
//! lock in place or running a command under it. Shared by `dotlock` and
//! `lockdir`.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::Error;
use crate::cli::{Exit, Personality, Reporter, report};
use crate::exit::ExitCode;
use crate::guard::{self, ChildEnd, Signals};
use crate::lock::{self, Holding, Protocol, Stop};
use crate::stale::Policy;
use crate::wait::{ParentWatch, Patience, Sleeper};

/// How to wait for a lock.
pub struct Wait<'a> {
    pub out: Reporter,
    pub patience: Patience,
    pub policy: Policy,
    /// Wake when the lock at `release.0` (in directory `release.1`) goes
    /// away; `None` keeps the legacy polling.
    pub release: Option<(&'a Path, &'a Path)>,
    /// `-p` without a command: give up if the parent dies.
    pub watch_parent: bool,
}

/// Wait for the lock. The caught signals come back with it: command mode
/// goes on with them.
pub fn acquire<P: Protocol>(w: &Wait<'_>, lock: &P) -> Result<(P::Held, Signals), Stop> {
    let mut caught = guard::WAITING.to_vec();
    if w.release.is_some() {
        caught.push(Signal::SIGIO);
    }
    let signals = Signals::catch(&caught).map_err(|e| Error::io("signalfd", e))?;
    let parent = w.watch_parent.then(ParentWatch::new);
    let mut sleeper = Sleeper::new(Some(&signals), parent);
    if let Some((path, dir)) = w.release {
        sleeper = sleeper.wake_on_release(path, dir);
    }
    let held = lock::acquire(
        lock,
        &w.patience,
        &w.policy,
        &mut sleeper,
        report::events(w.out, lock.path()),
    )?;
    drop(sleeper);
    Ok((held, signals))
}

/// Holders touch their lock every 30 s, or every third of the stale age
/// if that is shorter.
pub fn touch_interval(stale_after: Duration) -> Duration {
    Duration::from_secs(30)
        .min(stale_after / 3)
        .max(Duration::from_millis(100))
}

/// Run `command` under `held`: signals forwarded, the lock touched every
/// `every` (if `refresh`), released when the command ends. `Err`: it could
/// not be started (the lock is released all the same).
pub fn run_under<H: Holding>(
    out: &Reporter,
    path: &Path,
    held: H,
    mut signals: Signals,
    command: &[OsString],
    every: Duration,
    refresh: bool,
) -> io::Result<ChildEnd> {
    let mut forwarded = guard::FORWARDED.to_vec();
    forwarded.push(Signal::SIGCHLD);
    signals.add(&forwarded)?;
    let ended = guard::run_child(command, &signals, every, || {
        if refresh {
            let _ = held.touch();
        }
    });
    let ours = held.is_ours();
    match held.release() {
        Err(e) => out.error(e),
        Ok(_) if !ours => out.error(format_args!(
            "{}: the lock was broken while the command ran; left the new holder's lock alone",
            path.display()
        )),
        Ok(_) => {}
    }
    ended
}

/// The exit status for a command that could not be started: 126 not
/// executable, 127 not found (127 for both as `dotlockfile`), with the
/// reason on stderr.
pub fn spawn_failure(
    out: &Reporter,
    personality: Personality,
    program: &OsString,
    e: &io::Error,
) -> ExitCode {
    out.error(format_args!(
        "{}: {}",
        Path::new(program).display(),
        crate::error::describe(e)
    ));
    match (e.kind(), personality) {
        (io::ErrorKind::PermissionDenied, Personality::Native) => ExitCode::NotExecutable,
        (io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied, _) => ExitCode::NotFound,
        _ => ExitCode::Error,
    }
}

/// Pass the child's end on: its exit code, or death by the same signal.
pub fn pass_on(end: ChildEnd) -> Exit {
    match end {
        ChildEnd::Exited(code) => Exit::Code(code),
        ChildEnd::Signaled(sig) => Exit::Signal(sig),
    }
}
