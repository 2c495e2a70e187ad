//! Taking a lock from the command line, and what follows: waiting (signals
//! caught, early wake, parent watch, `--verbose` lines), then leaving the
//! lock in place or running a command under it. Shared by `dotlock` and
//! `lockdir`.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::Error;
use crate::acquire::{self as lock, Holding, Protocol, Stop};
use crate::child::{self as guard, ChildEnd};
use crate::cli::{Exit, Personality, Reporter, report};
use crate::exit::ExitCode;
use crate::judge::Policy;
use crate::path::LockPath;
use crate::signals::{self, Signals};
use crate::wait::{Patience, Sleeper};
use crate::watch::ParentWatch;

/// How to wait for a lock.
pub struct Wait<'a> {
    pub out: Reporter,
    pub patience: Patience,
    pub policy: Policy,
    /// Wake when one of the locks `release.0` (in directory `release.1`)
    /// goes away; `None` keeps the legacy polling.
    pub release: Option<(Vec<PathBuf>, &'a Path)>,
    /// `-p` without a command: give up if the parent dies.
    pub watch_parent: bool,
}

/// Wait for the lock. The caught signals come back with it: command mode
/// goes on with them.
pub fn acquire<P: Protocol>(w: &Wait<'_>, lock: &P) -> Result<(P::Held, Signals), Stop> {
    let signals = catch(w.release.is_some())?;
    let held = acquire_with(w, lock, &signals)?;
    Ok((held, signals))
}

/// Catch the signals that end a wait (and SIGIO, for early wake).
pub fn catch(early_wake: bool) -> Result<Signals, Stop> {
    let mut caught = signals::WAITING.to_vec();
    if early_wake {
        caught.push(Signal::SIGIO);
    }
    Ok(Signals::catch(&caught).map_err(|e| Error::io("signalfd", e))?)
}

/// Wait for the lock with signals already caught (several locks in turn).
pub fn acquire_with<P: Protocol>(
    w: &Wait<'_>,
    lock: &P,
    signals: &Signals,
) -> Result<P::Held, Stop> {
    acquire_reporting(w, lock, signals, report::events(w.out, lock.path()))
}

/// The same, telling `report` what happens instead of the `--verbose` lines.
pub fn acquire_reporting<P: Protocol>(
    w: &Wait<'_>,
    lock: &P,
    signals: &Signals,
    report: impl FnMut(lock::Event),
) -> Result<P::Held, Stop> {
    let parent = w.watch_parent.then(ParentWatch::new);
    let mut sleeper = Sleeper::new(Some(signals), parent);
    if let Some((paths, dir)) = &w.release {
        sleeper = sleeper.wake_on_release(paths.clone(), dir);
    }
    lock::acquire(lock, &w.patience, &w.policy, &mut sleeper, report)
}

/// The locks of `--slots N` (`LOCK.1` … `LOCK.N`), or the lock itself;
/// "name too long" where a slot's name would not fit.
pub fn slot_paths(lock: &LockPath, slots: Option<usize>) -> crate::Result<Vec<LockPath>> {
    match slots {
        None => Ok(vec![lock.clone()]),
        Some(n) => (1..=n).map(|i| lock.sibling(&format!(".{i}"))).collect(),
    }
}

/// After taking slot `slot` without a command: print its number, so that
/// the script can release it (`dotlock -u LOCK.$slot`).
pub fn print_slot(slots: Option<usize>, slot: usize) {
    if slots.is_some() {
        use std::io::Write;
        let _ = writeln!(io::stdout().lock(), "{slot}");
    }
}

/// The environment a command gets under slot `slot`.
pub fn slot_env(slots: Option<usize>, slot: usize) -> Vec<(&'static str, String)> {
    match slots {
        Some(_) => vec![("DOTLOCK_SLOT", slot.to_string())],
        None => Vec::new(),
    }
}

/// `--status` of every slot (or of the lock), blank lines between; exit 0
/// if any is held.
pub fn status_of_slots(
    paths: &[LockPath],
    mut look: impl FnMut(&LockPath) -> crate::Result<Option<report::Holder>>,
    out: &Reporter,
) -> Exit {
    let mut held = false;
    for (i, path) in paths.iter().enumerate() {
        if i > 0 {
            use std::io::Write;
            let _ = writeln!(io::stdout().lock());
        }
        match look(path) {
            Ok(holder) => held |= report::status(path.path(), holder) == Exit::Code(0),
            Err(e) => out.error(e),
        }
    }
    if held {
        ExitCode::Success.into()
    } else {
        ExitCode::Failure.into()
    }
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
#[allow(clippy::too_many_arguments)]
pub fn run_under<H: Holding>(
    out: &Reporter,
    path: &Path,
    mut held: H,
    mut signals: Signals,
    command: &[OsString],
    env: &[(&str, String)],
    every: Duration,
    refresh: bool,
) -> io::Result<ChildEnd> {
    let mut forwarded = signals::FORWARDED.to_vec();
    forwarded.push(Signal::SIGCHLD);
    signals.add(&forwarded)?;
    let ended = guard::run_child(command, env, &signals, every, |event| match event {
        // The command is named in the record at once, so that a waiter
        // does not judge the lock dead while the command lives, even if
        // we are killed with SIGKILL.
        guard::ChildEvent::Spawned(pid) => match held.add_child(pid) {
            Ok(_) => {}
            Err(e) => out.error(e),
        },
        guard::ChildEvent::Tick if refresh => {
            let _ = held.touch();
        }
        guard::ChildEvent::Tick => {}
    });
    match held.release() {
        Ok(true) => {}
        Ok(false) => out.error(format_args!(
            "{}: the lock was broken while the command ran; left the new holder's lock alone",
            path.display()
        )),
        Err(e) => out.error(e),
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
