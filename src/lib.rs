//! # lockutils: lock files for shell scripts, safe on local disks and NFS
//!
//! The library behind `dotlock`, `lockdir` and `filelock`: take, hold,
//! inspect and release the same locks from Rust.
//!
//! ```
//! use std::time::Duration;
//! use lockutils::Lock;
//!
//! let dir = tempfile::tempdir()?;
//! let lock = Lock::dot(dir.path().join("queue.lock")).timeout(Duration::from_secs(5));
//! let guard = lock.acquire()?; // waits; a stale lock is broken on the way
//! assert!(lock.try_acquire()?.is_none()); // held: a second taker is refused
//! let holder = lockutils::status(guard.path())?.expect("held");
//! assert_eq!(holder.record.pid, Some(std::process::id()));
//! guard.release()?; // or drop it; kept fresh until then
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Lock::dot`] is a dot-lock (a file, as `dotlock` and liblockfile take
//! it), [`Lock::dir`] a lock directory (as `lockdir`); both wait, break
//! stale locks and write the same owner record as the commands, so a
//! Rust program and a shell script can share one lock. [`Lock::shared`]
//! takes a reader's share, [`Lock::slots`] one of N. The [`Guard`] releases
//! the lock when dropped and keeps it fresh meanwhile; [`status`] says who
//! holds a lock ([`Holder`]).
//!
//! ## Guarantees
//!
//! * **Mutual exclusion by `link(2)`** (or `mkdir(2)`). A lock is taken by
//!   linking a uniquely named temporary file, created in the lock's own
//!   directory, to the lock name. `link(2)` is atomic on local filesystems
//!   and on NFS, where `O_EXCL` historically was not. Its return value is
//!   *not* trusted — a lost NFS reply can report failure for a link that
//!   happened — so success is decided by looking: the temporary file has
//!   two links, or the lock has its inode.
//! * **Nothing left behind.** The temporary file is removed on every path,
//!   errors and signals included.
//! * **Only our own lock is released.** Release checks device, inode and
//!   record first: a holder whose lock was broken never removes the new
//!   holder's lock ([`Guard::release`] says [`Error::LockLost`]).
//! * **Stale locks are proven, not guessed.** Each lock holds an owner
//!   record ([`Record`]): pid, host, boot id, pid namespace, process start
//!   time, and in command mode the command's. A lock is stale when its
//!   holder is proven dead on this host, or, where nothing can be proven
//!   (another host, no record), when it is older than the stale age *on the
//!   filesystem's clock* — the mtime of a file just created beside it, never
//!   the local clock and never atime ([`Verdict`]). Breaking is race-free:
//!   under a short-lived `LOCK.break` lock, and only if the lock is still
//!   the very one judged.
//! * **Nothing that is not a lock is removed or followed.** Every call is
//!   relative to the lock's directory, opened once; a lock directory
//!   holding anything lockdir did not put there is not a lock.
//!
//! ## NFS
//!
//! Everything above holds on NFS, with two limits: a holder's death can only
//! be proven on its own host (elsewhere the lock ages out, so live holders
//! touch their lock — a [`Guard`] on a background thread), and clocks are
//! never compared across machines — only the server's timestamps are.
//!
//! `ARCHITECTURE.md` has a line per file and how one `dotlock -l L cmd`
//! flows through them.

mod accounts;
mod acquire;
mod args_line;
mod attempt;
mod breaking;
mod child;
/// The programs' insides, for `src/bin/`, the tests and `xtask` only:
/// not part of the API, and free to change.
#[doc(hidden)]
pub mod cli;
mod debris;
mod diagnose;
mod dir;
mod dir_probes;
mod dotlock;
mod early_wake;
mod error;
mod exit;
mod exit_table;
mod fence;
mod finding;
mod fs;
mod guard;
mod host;
mod inspect;
mod judge;
mod keeper;
mod link;
mod lock;
mod lockdir;
mod lockset;
mod machine;
mod mailbox;
mod mkdir;
mod mountinfo;
mod path;
mod readers;
mod record;
mod release;
mod release_watch;
mod retry;
mod seam;
mod seen_dir;
mod shared;
mod signals;
mod slots;
mod survey;
mod sys;
mod wait;
mod watch;

pub use error::{Error, Result};
pub use guard::Guard;
pub use inspect::Holder;
pub use judge::{Reason, Verdict};
pub use lock::{Lock, status};
pub use record::Record;

/// The README's Rust examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

/// This release's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
