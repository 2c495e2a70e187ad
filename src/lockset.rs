//! Several locks at once, all or nothing.
//!
//! [`LockSet::canonical`] orders the lock paths canonically — absolute,
//! lexically normalised, sorted, duplicates collapsed — so that two calls
//! on overlapping sets take their common locks in the same order and can
//! never deadlock. [`LockSet::in_order`] keeps the order given (procmail's
//! `lockfile`). [`LockSet::take_each`] takes each lock in turn; if one cannot
//! be had — retries spent, an error, a signal — every lock this call took is
//! released before it returns.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::acquire::{Holding, Stop};
use crate::error::{Error, Result};
use crate::path::LockPath;

/// An ordered set of lock paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSet {
    locks: Vec<LockPath>,
}

impl LockSet {
    /// Canonical order: absolute, normalised (`.` and `..` folded without
    /// following symlinks), sorted, duplicates collapsed.
    pub fn canonical(paths: &[OsString]) -> Result<LockSet> {
        let mut abs = Vec::with_capacity(paths.len());
        for p in paths {
            let path = Path::new(p);
            let full = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
            abs.push(normalize(&full));
        }
        abs.sort();
        abs.dedup();
        Ok(LockSet {
            locks: abs.iter().map(LockPath::new).collect::<Result<_>>()?,
        })
    }

    /// The order given, duplicates kept (procmail's `lockfile`).
    pub fn in_order(paths: &[OsString]) -> Result<LockSet> {
        Ok(LockSet {
            locks: paths.iter().map(LockPath::new).collect::<Result<_>>()?,
        })
    }

    /// The locks, in the order they are taken.
    pub fn locks(&self) -> &[LockPath] {
        &self.locks
    }

    /// Take every lock in order with `take`; on the first failure release
    /// those taken (in reverse order) and return the failure with the index
    /// of the lock that could not be had.
    pub fn take_each<H: Holding>(
        &self,
        mut take: impl FnMut(usize, &LockPath) -> std::result::Result<H, Stop>,
    ) -> std::result::Result<Vec<H>, (usize, Stop)> {
        let mut held = Vec::with_capacity(self.locks.len());
        for (i, lock) in self.locks.iter().enumerate() {
            match take(i, lock) {
                Ok(h) => held.push(h),
                Err(stop) => {
                    while let Some(h) = held.pop() {
                        let _ = h.release();
                    }
                    return Err((i, stop));
                }
            }
        }
        Ok(held)
    }
}

/// Every lock of a set, held together (command mode of `filelock`): ours
/// only while each is, touched, given the command and released together.
#[derive(Debug)]
pub struct AllOf<H>(pub Vec<H>);

impl<H: Holding> Holding for AllOf<H> {
    /// Not ours if any one is seen not ours; else unknown if any look
    /// failed.
    fn still_ours(&self) -> Result<bool> {
        let mut failed = None;
        for held in &self.0 {
            match held.still_ours() {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(true), Err)
    }
    /// Touch every lock, even after one fails (the first error is said).
    fn touch(&self) -> Result<bool> {
        all_of(self.0.iter().map(Holding::touch))
    }
    /// Name the command in every lock, even after one fails.
    fn append(&mut self, lines: &[u8]) -> Result<bool> {
        all_of(self.0.iter_mut().map(|h| h.append(lines)))
    }
    /// Release every lock (in reverse order), even after one fails; the
    /// first error, else whether every one was still ours.
    fn release(self) -> Result<bool> {
        all_of(self.0.into_iter().rev().map(Holding::release))
    }
    fn keep(self) {
        self.0.into_iter().for_each(Holding::keep);
    }
}

/// Run every one of `results` (all of them, whatever each says): the
/// first error, else whether every one said yes.
fn all_of(results: impl Iterator<Item = Result<bool>>) -> Result<bool> {
    let mut first_error = None;
    let mut all = true;
    for one in results {
        match one {
            Ok(yes) => all &= yes,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(all), Err)
}

/// Fold `.` and `..` lexically (the lock names need not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &LockSet) -> Vec<String> {
        set.locks()
            .iter()
            .map(|l| l.path().display().to_string())
            .collect()
    }

    #[test]
    fn canonical_order_is_absolute_sorted_and_unique() {
        let args: Vec<OsString> = ["/t/b", "/t/a", "/t/./b", "/t/x/../a", "/t/c"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(
            names(&LockSet::canonical(&args).unwrap()),
            ["/t/a", "/t/b", "/t/c"]
        );
        let rel = LockSet::canonical(&[OsString::from("r.lock")]).unwrap();
        assert!(rel.locks()[0].path().is_absolute());
    }

    #[test]
    fn in_order_keeps_order_and_duplicates() {
        let args: Vec<OsString> = ["b", "a", "b"].iter().map(OsString::from).collect();
        assert_eq!(names(&LockSet::in_order(&args).unwrap()), ["b", "a", "b"]);
    }

    #[test]
    fn failure_releases_what_was_taken() {
        use crate::attempt::Try as Attempt;
        use crate::link::try_lock;
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<OsString> = ["a", "b", "c"]
            .iter()
            .map(|n| dir.path().join(n).into_os_string())
            .collect();
        std::fs::write(dir.path().join("c"), "held").unwrap();
        let set = LockSet::canonical(&paths).unwrap();
        let result = set.take_each(|_, lock| match try_lock(lock, b"1\n", 0o644) {
            Ok(Attempt::Acquired(h)) => Ok(h),
            Ok(_) => Err(Stop::Error(Error::Busy {
                path: lock.path().into(),
                attempts: 1,
            })),
            Err(e) => Err(Stop::Error(e)),
        });
        let Err((2, _)) = result else {
            panic!("the third lock is held")
        };
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["c"]);
    }
}
