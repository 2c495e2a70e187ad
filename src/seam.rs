//! Test seams, compiled into debug builds only (what `cargo test` runs);
//! in a release build every function here does nothing.
//!
//! `LOCKUTILS_TEST_PAUSE_<POINT>=GATE` makes the process create
//! `GATE.reached` (holding its pid) when it reaches `<POINT>`, then wait
//! (up to 60 s) until `GATE` exists. Tests use it to force an interleaving
//! of real processes deterministically, and to deliver a signal at a known
//! point. The points:
//!
//! * `BEFORE_BREAK`: a breaker has judged a lock stale, before `LOCK.break`;
//! * `BREAK_HELD`: a breaker holds `LOCK.break`, before it looks again at
//!   the lock it judged;
//! * `BEFORE_UNLINK`: a breaker holds `LOCK.break` and has confirmed the
//!   lock is the one judged, before it removes it;
//! * `PRIVILEGED`: the setgid mailbox rules have passed, before the group
//!   is taken back;
//! * `IN_ATTEMPT`: an attempt has created its temporary file, before
//!   `link(2)`;
//! * `HAND_OVER`: `filelock` has taken a whole set of locks, before it
//!   hands them to the calling shell;
//! * `SPAWNED`: command mode has made the command's process (held before
//!   its `exec`), before the lock's record names it;
//! * `IN_GATE`: a reader holds its shared lock's gate, before it joins or
//!   leaves.
//! * `IN_TOUCH`: a holder has found its dot-lock still its own, before it
//!   touches it;
//! * `BEFORE_KEEPER`: a lock held for a shell is taken, before its
//!   keeper's pidfd is opened;
//! * `KEEPER_START`: a keeper has recorded itself (the tool may return),
//!   before it checks its holder;
//! * `KEEPER_TOUCH`: a keeper has found its locks still its own, before it
//!   touches them;
//! * `KEEPER_RELEASE`: a keeper has seen its holder die, before it
//!   releases the locks.
//! * `CHECK_PROBES`: `--check` has made its test files, before it removes
//!   them.
//!
//! `LOCKUTILS_TEST_CLOCK_SKEW=SECONDS` (signed) moves this process's
//! wall clock ([`local_now`], the only way the library reads it) by that
//! much: nothing that judges a lock may depend on it.
//!
//! `LOCKUTILS_TEST_COUNT_ATTEMPTS=FILE` appends a line to `FILE` for each
//! counted attempt.
//!
//! `LOCKUTILS_TEST_LINK=lost-reply` makes `link(2)` happen but report
//! `EIO`, as a lost NFS reply does; `=unsupported` makes it fail with
//! `EPERM` without linking, as on a filesystem without hard links.
//!
//! `LOCKUTILS_TEST_FAULTS=OP=KIND@N[@M...],...` plays an NFS client's
//! faults on chosen calls of this process: the N-th (M-th, ...) call of
//! `OP` (`lstat`, `fstat`, `open`, `read`, `create`, `link`, `unlink`,
//! `rename`, `mkdir`, `rmdir`, `touch`), counted from 1. `estale`: the call
//! fails with `ESTALE` and does nothing (another client changed the file);
//! `lost`: the call is done, but its reply is lost and the retransmission
//! answers as a server that has forgotten it would (`EEXIST` for `link`,
//! `create` and `mkdir`, `ENOENT` for `unlink`, `rmdir` and `rename`);
//! `eio`: the call is done, then `EIO` (a soft mount timing out).
//!
//! `LOCKUTILS_TEST_MOUNTINFO=FILE` is read instead of
//! `/proc/self/mountinfo` (`--check`'s mount options).

/// Wait at `point` if a test asked for it.
#[inline]
pub fn pause(point: &str) {
    #[cfg(debug_assertions)]
    {
        let Some(gate) = std::env::var_os(format!("LOCKUTILS_TEST_PAUSE_{point}")) else {
            return;
        };
        let gate = std::path::PathBuf::from(gate);
        let mut reached = gate.clone().into_os_string();
        reached.push(".reached");
        let _ = std::fs::write(&reached, std::process::id().to_string());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !gate.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// This process's wall clock — used only where no filesystem clock can be
/// had, and for the informational `created=`. In debug builds a test can
/// skew it (`LOCKUTILS_TEST_CLOCK_SKEW`).
#[allow(clippy::disallowed_methods)]
pub fn local_now() -> std::time::SystemTime {
    let now = std::time::SystemTime::now();
    #[cfg(debug_assertions)]
    if let Some(skew) = std::env::var("LOCKUTILS_TEST_CLOCK_SKEW")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        let by = std::time::Duration::from_secs(skew.unsigned_abs());
        return if skew >= 0 { now + by } else { now - by };
    }
    now
}

/// The text of `/proc/self/mountinfo`; in debug builds a test can give a
/// fixture instead (`LOCKUTILS_TEST_MOUNTINFO`: a file's path), as there
/// is no kernel NFS client to mount with real options.
pub fn mountinfo() -> Option<String> {
    #[cfg(debug_assertions)]
    if let Some(fixture) = std::env::var_os("LOCKUTILS_TEST_MOUNTINFO") {
        return std::fs::read_to_string(fixture).ok();
    }
    std::fs::read_to_string("/proc/self/mountinfo").ok()
}

/// A counted attempt, for a test that counts them.
#[inline]
pub fn counted_attempt() {
    #[cfg(debug_assertions)]
    if let Some(file) = std::env::var_os("LOCKUTILS_TEST_COUNT_ATTEMPTS") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(file)
        {
            let _ = f.write_all(b"attempt\n");
        }
    }
}

/// What `LOCKUTILS_TEST_LINK` asks `link(2)` to pretend (release builds:
/// always `Real`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub enum Link {
    Real,
    LostReply,
    Unsupported,
}

/// The link behaviour a test asked for.
pub fn link() -> Link {
    #[cfg(debug_assertions)]
    {
        use std::os::unix::ffi::OsStrExt;
        match std::env::var_os("LOCKUTILS_TEST_LINK")
            .as_deref()
            .map(std::ffi::OsStr::as_bytes)
        {
            Some(b"lost-reply") => return Link::LostReply,
            Some(b"unsupported") => return Link::Unsupported,
            _ => {}
        }
    }
    Link::Real
}

/// A fault [`fault`] asks a call to play (debug builds only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub enum Fault {
    /// Fail with `ESTALE`, doing nothing.
    Stale,
    /// Do the call, then answer as a retransmission would.
    LostReply,
    /// Do the call, then fail with `EIO`.
    Eio,
}

/// The fault, if any, that `LOCKUTILS_TEST_FAULTS` asks of this call of
/// `op` (each call counts, faulted or not).
pub fn fault(op: &str) -> Option<Fault> {
    #[cfg(debug_assertions)]
    {
        use std::collections::HashMap;
        use std::sync::Mutex;
        static CALLS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
        let spec = std::env::var("LOCKUTILS_TEST_FAULTS").ok()?;
        let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
        let n = {
            let count = calls
                .get_or_insert_with(HashMap::new)
                .entry(op.to_string())
                .or_insert(0);
            *count += 1;
            *count
        };
        for rule in spec.split(',') {
            let Some((name, rest)) = rule.split_once('=') else {
                continue;
            };
            let mut parts = rest.split('@');
            let kind = match parts.next() {
                Some("estale") => Fault::Stale,
                Some("lost") => Fault::LostReply,
                Some("eio") => Fault::Eio,
                _ => continue,
            };
            if name == op && parts.any(|p| p.parse() == Ok(n)) {
                return Some(kind);
            }
        }
        None
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = op;
        None
    }
}
