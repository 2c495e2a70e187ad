//! The integration tests: one binary, one module per concern. Every test
//! runs the real `dotlock` binary (and, where installed, the real
//! `dotlockfile`) in a scratch directory of its own.

// The tests set lock ages against the wall clock; the programs never read it
// to judge a lock (clippy.toml).
#![allow(clippy::disallowed_methods)]

// Shared helpers: scratch directories, running as nobody, failure context.
mod util;
// The programs under test, and the ancestors' real ones.
mod programs;

// Every flag and every exit status of dotlock, in one table.
mod exit_codes;

// --list: every lock in a directory, --stale, --clean.
mod listing;

// --check: is a directory safe to lock in.
mod dircheck;

// Everyday use as cron and flock(1) users expect: -q, -E, flock's habits,
// a short -h, whole-line messages, a caller that has exited.
mod everyday;

// The one exit status table of dotlock, lockdir and filelock, every cell run,
// the same in the README and the man pages.
mod exit_table;

// Side by side with liblockfile's dotlockfile: same codes, content, leftovers.
mod compat_dotlockfile;

// Side by side with Debian's lockfile-progs, and the bugs fixed there.
mod compat_lockfile_progs;

// The personalities at the edges, side by side: a full disk, few
// descriptors, a dangling symlink at the lock path.
mod compat_edges;

// NFS faults played on chosen calls: ESTALE, lost replies, EIO.
mod nfs_faults;

// On the NFS bed (nfsbed/): only when asked for (-- --ignored).
mod nfs_bed;

// The link(2) protocol: lost replies, no hard links, release only if ours.
mod protocol;

// Mutual exclusion under real contention between processes.
mod contention;

// Chaos: random SIGKILLs of the lock tools, never two holders (only when
// asked for: -- --ignored).
mod chaos;

// A command never runs before its lock names it: SIGKILL of the tool at the
// instant its command starts lets nobody in while the command runs.
mod exclusion;

// Signals while waiting and while holding in command mode.
mod signals;

// Waiting over time: the parent watch of -p, keeping a lock fresh, --timeout.
mod syscalls;
mod waiting;

// Temporary files of killed processes, reclaimed by the next taker.
mod debris;

// Two machines played on this one (namespaces): a host name or a boot id
// proves nothing alone, a lock of this host's previous boot is proven by its
// age against our uptime, the holder's lease is honoured.
mod machines;

// Keepers: a lock held for a shell lives on every machine exactly as long
// as the shell; their races, each forced.
mod keepers;

// Stale locks: proof of death, filesystem-clock age, race-free breaking, --status.
mod stale;

// Who holds it: --status --json of every command, the record's args=, the
// live wait line on a terminal and never on a pipe.
mod status;

// lockdir: the trap helper in five shells, grace period, refusal, contention.
mod lockdir;

// Names planted at a shared lock's share and want names jam nothing.
mod planted;

// --slots: a counting semaphore that never leaks a slot.
mod slots;

// --shared: readers together, one writer alone, no writer starvation, no
// leaked shares.
mod shared;
// --shared at its edges: refusals, waiters ended by a signal.
mod shared_edges;
// Fencing tokens: increasing over holders, paused claims, planted counters.
mod fence;

// The completions in bash, zsh and fish: the command after the lock, no
// hidden options, no file names after numbers.
mod completions;

// Docs that cannot rot: man/completions drift, rendering, make install, README recipes.
mod docs;
// make install, install-compat and uninstall into a DESTDIR.
mod install;

// filelock and the lockfile personality: procmail side by side, no deadlock.
mod filelock;
// The lockfile personality side by side with procmail's lockfile.
mod compat_lockfile;

// The setgid mailbox rules, as root with a test user and a setgid copy.
mod mailbox;

// Out of file descriptors at every point: the lock taken, or one line and
// nothing left.
mod fd_limits;

// Bad input (SPEC §8): one clear line, the documented code, nothing removed.
mod bad_input;

// Safety under attack: nothing not a lock removed, no overlap after SIGKILL,
// huge values refused, breaks never take a taken lock, no file left by a signal.
mod safety;

// Tests aimed at the bugs the rest would let through: touch that does nothing,
// a timeout that does not cut the sleep, the local clock, lockdir's ownership,
// the break lock's mutual exclusion, attempts counted.
mod mutants;

// Fail closed, say why: the trap idiom in every shell, -u of another's lock,
// a wait that gives up names the holder, --timeout alone, --on-lost.
mod fail_closed;
