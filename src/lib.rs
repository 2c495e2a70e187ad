//! # lockutils: lock files for shell scripts, safe on local disks and NFS
//!
//! The library behind `dotlock`, `lockdir` and `filelock`; also usable from
//! Rust, to take, wait for, inspect and release the same locks.
//!
//! ## Guarantees
//!
//! * **Mutual exclusion by `link(2)`.** A lock is taken by linking a
//!   uniquely named temporary file, created in the lock's own directory, to
//!   the lock name. `link(2)` is atomic on local filesystems and on NFS,
//!   where `O_EXCL` historically was not. Its return value is *not* trusted
//!   — a lost NFS reply can report failure for a link that happened — so
//!   success is decided by looking: the temporary file has two links, or the
//!   lock has its inode. See [`link`].
//! * **Nothing left behind.** The temporary file is removed on every path,
//!   errors and signals included; signals are handled in ordinary code
//!   ([`signals`]), and a signal that ends a wait is re-raised so the shell
//!   sees 128+N.
//! * **Only our own lock is released.** Release checks device, inode and
//!   record first: a holder whose lock was broken never removes the new
//!   holder's lock.
//! * **Stale locks are proven, not guessed.** Each lock holds an owner
//!   record ([`record`]): pid, host, boot id, pid namespace, process start
//!   time, and in command mode the command's. A lock is stale when its
//!   holder is proven dead on this host, or, where nothing can be proven
//!   (another host, no record), when it is older than the stale age *on the
//!   filesystem's clock* — the mtime of a file just created beside it, never
//!   the local clock and never atime ([`judge`]). Breaking is race-free:
//!   under a short-lived `LOCK.break` lock, and only if the lock is still
//!   the very one judged.
//! * **Nothing that is not a lock is removed or followed.** Every call is
//!   relative to the lock's directory, opened once ([`fs::Dir`]); a lock
//!   directory holding anything lockdir did not put there is not a lock.
//!
//! ## NFS
//!
//! Everything above holds on NFS, with two limits: a holder's death can only
//! be proven on its own host (elsewhere the lock ages out, so live holders
//! touch their lock), and clocks are never compared across machines — only
//! the server's timestamps are.
//!
//! ## Layers
//!
//! Dependencies run one way, from the bottom up; `ARCHITECTURE.md` has a
//! line per file and how one `dotlock -l L cmd` flows through them.
//!
//! * facts and primitives: [`error`], [`path`], [`fs`], `sys`, [`host`],
//!   [`record`], [`attempt`];
//! * judgement, pure: [`judge`];
//! * waiting: [`signals`], [`watch`], [`wait`];
//! * the protocols: [`link`] (one `link(2)` attempt), `breaking`
//!   (`LOCK.break`), [`dotlock`] and [`lockdir`] (what a waiter runs);
//! * acquiring: [`acquire`], [`slots`], [`lockset`];
//! * the programs: `child` (the command under the lock), [`exit`], and
//!   `cli`.
//!
//! ## Example
//!
//! One attempt at a dot-lock, and what a second attempt sees:
//!
//! ```
//! use lockutils::attempt::Try;
//! use lockutils::link::try_lock;
//! use lockutils::path::LockPath;
//! use lockutils::record::Record;
//!
//! let dir = tempfile::tempdir()?;
//! let lock = LockPath::new(dir.path().join("queue.lock"))?;
//! let record = Record::for_holder(Some(std::process::id()), Some("example".into())).to_bytes();
//!
//! let Try::Acquired(held) = try_lock(&lock, &record, 0o644)? else { panic!("free lock") };
//! // A second attempt finds it busy, and sees who holds it.
//! match try_lock(&lock, b"0\n", 0o644)? {
//!     Try::Busy(seen) => assert_eq!(seen.record().pid, Some(std::process::id())),
//!     _ => panic!("lock should be busy"),
//! }
//! assert!(held.release()?); // removed: it was still ours
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Waiting is the same for every kind of lock ([`acquire::Protocol`]): here
//! a lock directory, with a stale one (its owner is long dead) broken on
//! the way, and patience of one retry half a second later.
//!
//! ```
//! use std::time::Duration;
//! use lockutils::acquire::{acquire, Holding};
//! use lockutils::judge::Policy;
//! use lockutils::lockdir::{DirLock, DEFAULT_GRACE};
//! use lockutils::path::LockPath;
//! use lockutils::record::Record;
//! use lockutils::wait::{Patience, Schedule, Sleeper};
//!
//! let dir = tempfile::tempdir()?;
//! let lock = LockPath::new(dir.path().join("nightly.d"))?;
//! // Left by a process that no longer exists (pid beyond any pid_max).
//! std::fs::create_dir(lock.path())?;
//! let dead = Record::for_holder(Some(i32::MAX as u32 - 1), Some("crashed".into()));
//! std::fs::write(lock.path().join("owner"), dead.to_bytes())?;
//!
//! let record = Record::for_holder(Some(std::process::id()), None).to_bytes();
//! let protocol = DirLock::new(&lock, &record, DEFAULT_GRACE)?;
//! let patience = Patience {
//!     schedule: Schedule::Fixed(Duration::from_millis(500)),
//!     retries: Some(1),
//!     timeout: None,
//! };
//! let mut sleeper = Sleeper::new(None, None);
//! let held = acquire(&protocol, &patience, &Policy::default(), &mut sleeper, |_| {})
//!     .expect("the dead owner's lock is broken, ours taken");
//! assert!(held.is_ours());
//! assert!(held.release()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Who holds a lock, and is it stale?
//!
//! ```
//! use lockutils::judge::{judge_observed, Policy};
//! use lockutils::path::LockPath;
//!
//! let dir = tempfile::tempdir()?;
//! let lock = LockPath::new(dir.path().join("mbox.lock"))?;
//! std::fs::write(lock.path(), "0\n")?; // procmail's: no pid
//! let mut seen = lockutils::fs::observe(lock.path())?.expect("there is a lock");
//! seen.fs_now = Some(lockutils::fs::fs_now(&lock)?);
//! assert_eq!(seen.record().pid, None);
//! assert!(!judge_observed(&seen, &Policy::default()).is_stale()); // young: valid
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[doc(hidden)]
pub mod accounts;
pub mod acquire;
pub mod attempt;
mod breaking;
mod child;
#[doc(hidden)]
pub mod cli;
mod debris;
mod dir;
pub mod dotlock;
pub mod error;
pub mod exit;
mod exit_table;
pub mod fs;
pub mod host;
pub mod inspect;
pub mod judge;
pub mod link;
pub mod lockdir;
pub mod lockset;
mod mailbox;
mod mkdir;
pub mod path;
pub mod readers;
pub mod record;
pub mod release;
mod seam;
mod seen_dir;
pub mod shared;
pub mod signals;
pub mod slots;
mod sys;
pub mod wait;
pub mod watch;

pub use error::{Error, Result};

/// This release's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub use exit::ExitCode;
