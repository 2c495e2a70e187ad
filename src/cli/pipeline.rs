//! The one lock pipeline of the commands: validated options make a
//! [`Plan`]; [`run`] waits for the lock (signals caught, early wake, the
//! parent watched, `--verbose` lines), then leaves it in place — printing
//! the slot taken — or runs the command under it and releases it, and says
//! what came of it as an [`Outcome`].

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::Error;
use crate::acquire::{self, Event, Holding, Protocol, Stop};
use crate::child::{self, Channel, ChildEvent, NotRun};
use crate::cli::args::OnLost;
use crate::cli::live::{self, LiveLine};
use crate::cli::{Outcome, Reporter, report};
use crate::judge::Policy;
use crate::path::LockPath;
use crate::readers::Kind;
use crate::signals::{self, Signals};
use crate::slots::AnyOf;
use crate::wait::{Patience, Sleeper};
use crate::watch::ParentWatch;

/// How to wait for a lock.
#[derive(Debug, Clone)]
pub struct Waiter {
    pub out: Reporter,
    pub patience: Patience,
    pub policy: Policy,
    /// Wake when one of these locks (all in one directory) goes away;
    /// `None` keeps the legacy polling.
    pub wake_on: Option<(Vec<PathBuf>, PathBuf)>,
    /// `-p` without a command: give up if the parent dies.
    pub watch_parent: bool,
    /// Keep a live status line on stderr while waiting, if it is a
    /// terminal (the native commands; never the personalities).
    pub live: bool,
}

impl Waiter {
    /// Early wake on the release of any of `locks`.
    pub fn waking_on(mut self, locks: &[LockPath]) -> Self {
        if let Some(first) = locks.first() {
            let paths = locks.iter().map(|l| l.path().to_path_buf()).collect();
            self.wake_on = Some((paths, first.dir().to_path_buf()));
        }
        self
    }

    /// Wait for `lock` with signals already caught, telling `report` what
    /// happens on the way.
    pub fn wait_for<P: Protocol>(
        &self,
        lock: &P,
        signals: &Signals,
        report: impl FnMut(Event),
    ) -> Result<P::Held, Stop> {
        let parent = self.watch_parent.then(ParentWatch::new);
        let mut sleeper = Sleeper::new(Some(signals), parent);
        if let Some((paths, dir)) = &self.wake_on {
            sleeper = sleeper.wake_on_release(paths.clone(), dir);
        }
        let mut line = match self.live {
            true => LiveLine::on_stderr(&self.out, lock.path()),
            false => None,
        };
        if line.is_some() {
            sleeper = sleeper.ticking(live::TICK);
        }
        let mut report = report;
        let report = |event: Event| {
            if let Some(line) = &mut line {
                line.event(&event);
            }
            report(event);
        };
        let held = acquire::acquire(lock, &self.patience, &self.policy, &mut sleeper, report);
        // The watch of a busy directory, if one was needed, is closed at
        // the process's exit, after the lock is released.
        sleeper.linger();
        held
    }
}

/// Catch the signals that end a wait (and SIGIO, for early wake).
pub fn catch(early_wake: bool) -> Result<Signals, Error> {
    let mut caught = signals::WAITING.to_vec();
    if early_wake {
        caught.push(Signal::SIGIO);
    }
    Signals::catch(&caught).map_err(|e| Error::io("signalfd", e))
}

/// What to do once the lock is ours.
#[derive(Debug, Clone)]
pub struct Plan {
    pub waiter: Waiter,
    /// `--slots N`, if given: the slot taken is printed or exported.
    pub slots: Option<usize>,
    /// The command to run under the lock; empty: leave the lock in place.
    pub command: Vec<OsString>,
    /// Keep the lock fresh while the command runs (touch every this long).
    pub touch_every: Option<Duration>,
    /// Check at each touch that the lock is still ours, and act when it is
    /// not; `None`: no check (the legacy personalities).
    pub on_lost: Option<OnLost>,
    /// Without a command: leave a keeper for the lock's holder (a trusted
    /// pid), [`crate::keeper`].
    pub keeper: Option<Keeper>,
    /// `--fence`: claim a fencing token once the lock is taken.
    pub fence: bool,
}

/// The keeper to leave for a lock held for a trusted pid.
#[derive(Debug, Clone, Copy)]
pub struct Keeper {
    pub holder: crate::keeper::For,
    pub keeping: crate::keeper::Keeping,
}

impl Keeper {
    /// A keeper named `name` for the holder `record` (the owner record
    /// written) names — its pid and recorded start time — touching as
    /// command mode does for `stale_after`, signalling the holder as
    /// `on_lost` asks (`term`, `kill`) when its lock is lost. `None`: the
    /// record names no pid.
    pub fn for_record(
        name: &'static str,
        record: &[u8],
        stale_after: Duration,
        on_lost: Option<OnLost>,
    ) -> Option<Keeper> {
        let record = crate::record::Record::parse(record);
        Some(Keeper {
            holder: crate::keeper::For {
                pid: record.pid?,
                start: record.start,
            },
            keeping: crate::keeper::Keeping {
                every: touch_interval(stale_after),
                on_lost: match on_lost {
                    Some(OnLost::Term) => Some(nix::sys::signal::Signal::SIGTERM),
                    Some(OnLost::Kill) => Some(nix::sys::signal::Signal::SIGKILL),
                    Some(OnLost::Warn) | None => None,
                },
                name,
            },
        })
    }

    /// Leave it for `held` (`path`: the lock, for a `--verbose` line
    /// when no keeper can be had: the lock then ages as it is).
    pub fn leave<H: Holding>(&self, out: &Reporter, path: &Path, held: H) {
        if let Err(e) = crate::keeper::leave(held, self.holder, &self.keeping) {
            out.info(format_args!(
                "{}: no keeper: {}; another machine judges the lock by its age",
                path.display(),
                crate::error::describe(&e)
            ));
        }
    }
}

impl Plan {
    /// With a command: its channel, made before the lock is taken, so
    /// that a lock once taken never fails to run it for want of
    /// descriptors.
    pub fn channel(&self) -> Result<Option<Channel>, Error> {
        match self.command.is_empty() {
            true => Ok(None),
            false => Channel::new()
                .map(Some)
                .map_err(|e| Error::io(&self.command[0], e)),
        }
    }
}

/// How [`run`] ended, before the caller says anything of it.
pub enum Ended {
    /// The outcome is final (and said).
    Done(Outcome),
    /// Retries or the timeout ran out: the caller says who holds it.
    GaveUp(Error),
}

/// Take one of `locks` (the slots, or the one lock) and follow `plan`;
/// `announce` is shown the lock first (for `--verbose` lines).
pub fn run<P: Protocol>(plan: &Plan, locks: AnyOf<P>, announce: impl FnOnce(&P::Held)) -> Ended
where
    P::Held: Holding,
{
    let out = &plan.waiter.out;
    let signals = match catch(plan.waiter.wake_on.is_some()) {
        Ok(s) => s,
        Err(e) => return Ended::Done(out.failed(e)),
    };
    let channel = match plan.channel() {
        Ok(c) => c,
        Err(e) => return Ended::Done(out.failed(e)),
    };
    let path = locks.path.clone();
    let taken = plan
        .waiter
        .wait_for(&locks, &signals, report::events(*out, &path));
    let (slot, held) = match taken {
        Ok(held) => held,
        Err(Stop::Signal(sig)) => return Ended::Done(Outcome::Signal(sig)),
        Err(Stop::Error(e @ (Error::Busy { .. } | Error::TimedOut { .. }))) => {
            return Ended::GaveUp(e);
        }
        Err(Stop::Error(e)) => return Ended::Done(out.failed(e)),
    };
    announce(&held);
    // The waiter's descriptors are not needed any more.
    drop(locks);
    Ended::Done(hold_or_run(plan, &path, slot, held, signals, channel))
}

/// The lock is ours: leave it in place (printing the slot), or run the
/// command under it.
pub fn hold_or_run<H: Holding>(
    plan: &Plan,
    path: &Path,
    slot: usize,
    mut held: H,
    signals: Signals,
    channel: Option<Channel>,
) -> Outcome {
    let token = match plan.fence {
        true => match fence(plan, path, slot, &mut held) {
            Ok(token) => Some(token),
            Err(e) => {
                let _ = held.release();
                return plan.waiter.out.failed(e);
            }
        },
        false => None,
    };
    let Some(channel) = channel.filter(|_| !plan.command.is_empty()) else {
        match &plan.keeper {
            Some(keeper) => keeper.leave(&plan.waiter.out, path, held),
            None => held.keep(),
        }
        print_taken(plan.slots, slot, token);
        return Outcome::Success;
    };
    let env = taken_env(plan.slots, slot, token);
    let run = Run {
        command: &plan.command,
        env: &env,
        touch_every: plan.touch_every,
        on_lost: plan.on_lost,
    };
    match run_under(&plan.waiter.out, path, held, signals, channel, &run) {
        Ok(end) => Outcome::Command(end),
        Err(Unrun::Refused(e)) => plan.waiter.out.failed(e),
        Err(Unrun::Start(e)) => {
            plan.waiter.out.error(format_args!(
                "{}: {}",
                Path::new(&plan.command[0]).display(),
                crate::error::describe(&e)
            ));
            Outcome::NotStarted(e.kind())
        }
    }
}

/// `-u` of a dot-lock (`dotlock`, `filelock`'s each), said: refused is
/// [`Outcome::Refused`].
pub fn unlock_file(out: &Reporter, lock: &LockPath, policy: &Policy, force: bool) -> Outcome {
    match crate::release::release_file(lock, policy, force) {
        Ok(_) => Outcome::Success,
        Err(e) => refused_or_failed(out, e),
    }
}

/// `-u --shared`: leave the readers ([`crate::release::leave_shared`]).
pub fn unlock_shared(
    out: &Reporter,
    lock: &LockPath,
    kind: Kind,
    policy: &Policy,
    force: bool,
) -> Outcome {
    match crate::release::leave_shared(lock, kind, policy, force) {
        Ok(()) => Outcome::Success,
        Err(e) => refused_or_failed(out, e),
    }
}

/// `-t --shared`: touch the caller's shares and the shared `LOCK`.
pub fn touch_shared(out: &Reporter, lock: &LockPath, kind: Kind, policy: &Policy) -> Outcome {
    match crate::release::touch_shared(lock, kind, policy) {
        Ok(true) => Outcome::Success,
        Ok(false) => Outcome::NoLock,
        Err(e) => failed_action(out, e),
    }
}

/// A release said: somebody else's lock is refused (exit 1), any other
/// failure an action that failed.
pub fn refused_or_failed(out: &Reporter, e: Error) -> Outcome {
    out.error(&e);
    match e {
        Error::NotOurs { .. } => Outcome::Refused,
        e => Outcome::ActionFailed(e),
    }
}

/// An action (`-u`, `-t`, `-c`) that failed, said.
pub fn failed_action(out: &Reporter, e: crate::Error) -> Outcome {
    out.error(&e);
    Outcome::ActionFailed(e)
}

/// `--fence`: the token of the lock taken (slot `slot` of `path`).
fn fence<H: Holding>(plan: &Plan, path: &Path, slot: usize, held: &mut H) -> Result<u64, Error> {
    let lock = LockPath::new(path)?;
    let lock = match plan.slots {
        Some(_) => lock.sibling(&format!(".{slot}"))?,
        None => lock,
    };
    crate::fence::take(held, &lock)
}

/// After taking the lock without a command: print the slot taken, so that
/// the script can release it (`dotlock -u LOCK.$slot`), and the fencing
/// token (`SLOT TOKEN` with both), in one write.
pub fn print_taken(slots: Option<usize>, slot: usize, token: Option<u64>) {
    let line = match (slots, token) {
        (Some(_), Some(token)) => format!("{slot} {token}\n"),
        (Some(_), None) => format!("{slot}\n"),
        (None, Some(token)) => format!("{token}\n"),
        (None, None) => return,
    };
    report::to_stdout(&line);
}

/// The environment a command gets under slot `slot`, with `token`.
fn taken_env(slots: Option<usize>, slot: usize, token: Option<u64>) -> Vec<(&'static str, String)> {
    let slot = slots.map(|_| ("DOTLOCK_SLOT", slot.to_string()));
    let token = token.map(|t| ("DOTLOCK_TOKEN", t.to_string()));
    slot.into_iter().chain(token).collect()
}

pub use crate::judge::touch_interval;

/// A command to run under a lock.
struct Run<'a> {
    command: &'a [OsString],
    env: &'a [(&'a str, String)],
    /// `None`: the lock is not touched (dotlockfile's `-p` locks).
    touch_every: Option<Duration>,
    on_lost: Option<OnLost>,
}

/// Run the command under `held`: signals forwarded, the command recorded
/// in the lock, the lock kept fresh, released when the command ends.
/// `Err`: it could not be started (the lock is released all the same).
fn run_under<H: Holding>(
    out: &Reporter,
    path: &Path,
    mut held: H,
    mut signals: Signals,
    channel: Channel,
    run: &Run<'_>,
) -> Result<child::ChildEnd, Unrun> {
    // The waiting signals are caught already, and are what is passed on.
    signals.add(&[Signal::SIGCHLD]).map_err(Unrun::Start)?;
    let every = run.touch_every.unwrap_or(Duration::from_secs(30));
    let mut child = None;
    let mut lost = false;
    let mut unnamed = None;
    let ended = child::run_child(
        channel,
        run.command,
        run.env,
        &signals,
        every,
        |event| match event {
            // The command may run only once the record names it, so that a
            // waiter never judges the lock dead while the command lives, even
            // if we are killed with SIGKILL at any instant. A lock we cannot
            // name it in, or that is no longer ours, does not run it.
            ChildEvent::Spawned(pid) => {
                child = Some(pid);
                crate::seam::pause("SPAWNED");
                match held.append(&crate::record::Record::child_lines(pid)) {
                    Ok(true) => true,
                    Ok(false) => {
                        let lost = Error::LockLost { path: path.into() };
                        unnamed = Some(Error::NotRecorded {
                            source: Box::new(lost),
                        });
                        false
                    }
                    Err(e) => {
                        unnamed = Some(Error::NotRecorded {
                            source: Box::new(e),
                        });
                        false
                    }
                }
            }
            ChildEvent::Tick => {
                // A look that failed (EIO, no descriptor) proves nothing:
                // the next tick looks again.
                let seen = match run.on_lost {
                    Some(_) if !lost => held.still_ours().ok(),
                    _ => Some(true),
                };
                if let (Some(on_lost), Some(false)) = (run.on_lost, seen) {
                    lost = true;
                    lost_lock(out, path, on_lost, child);
                } else if run.touch_every.is_some() && !lost && seen == Some(true) {
                    let _ = held.touch();
                }
                true
            }
        },
    );
    let released = held.release();
    if let Some(e) = unnamed {
        return Err(Unrun::Refused(e));
    }
    match released {
        Ok(true) => {}
        Ok(false) if lost => {}
        Ok(false) => out.error(format_args!(
            "{}: the lock was broken while the command ran; left the new holder's lock alone",
            path.display()
        )),
        Err(e) => out.error(e),
    }
    ended.map_err(|e| match e {
        NotRun::Start(e) => Unrun::Start(e),
        NotRun::Refused => unreachable!("refused only with a reason"),
    })
}

/// Why [`run_under`] did not run the command.
#[derive(Debug, thiserror::Error)]
enum Unrun {
    /// It could not be started.
    #[error("the command could not be started: {0}")]
    Start(io::Error),
    /// The lock could not name it: it was not let run.
    #[error(transparent)]
    Refused(Error),
}

/// The lock was found lost while the command runs: say so at once, and
/// signal the command if asked to.
fn lost_lock(out: &Reporter, path: &Path, on_lost: OnLost, child: Option<u32>) {
    let sig = match on_lost {
        OnLost::Warn => None,
        OnLost::Term => Some(Signal::SIGTERM),
        OnLost::Kill => Some(Signal::SIGKILL),
    };
    let what = match sig {
        Some(sig) => format!("; sending the command {}", sig.as_str()),
        None => String::new(),
    };
    out.error(format_args!(
        "{}: the lock was lost while the command runs (removed or taken by another){what}",
        path.display()
    ));
    if let (Some(sig), Some(pid)) = (sig, child) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }
}
