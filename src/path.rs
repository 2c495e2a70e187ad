//! Lock paths: lengths checked, split into directory and name, and the
//! sibling names a lock needs (`NAME.break`, slots `NAME.N`).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `NAME_MAX` on Linux: the longest file name.
pub const NAME_MAX: usize = 255;
/// `PATH_MAX` on Linux, counting the terminating NUL.
pub const PATH_MAX: usize = 4096;

/// The suffix of the break lock beside each lock.
pub const BREAK_SUFFIX: &str = ".break";

/// A validated lock path, split into its directory and file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPath {
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
}

impl LockPath {
    /// Check lengths (`NAME_MAX` per component, `PATH_MAX` in all) and split.
    /// A path that names a directory (`dir/`, `..`) is refused, and so is a
    /// name too long for its break lock (`NAME.break`) to fit in `NAME_MAX`.
    pub fn new(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() + BREAK_SUFFIX.len() >= PATH_MAX
            || bytes.split(|&b| b == b'/').any(|c| c.len() > NAME_MAX)
        {
            return Err(Error::NameTooLong { path: path.into() });
        }
        let names_dir = bytes.is_empty() || bytes.ends_with(b"/");
        let name = match path.file_name() {
            Some(name) if !names_dir => name.to_os_string(),
            _ => return Err(Error::LockIsDirectory { path: path.into() }),
        };
        if name.len() + BREAK_SUFFIX.len() > NAME_MAX {
            return Err(Error::NameTooLong { path: path.into() });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(LockPath {
            path: path.to_path_buf(),
            dir,
            name,
        })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory that holds the lock (`.` for a bare name).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock's file name.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The sibling lock `<name><suffix>` (a slot `.N`), refused with "name
    /// too long" where it, or its own break lock, would not fit in
    /// `NAME_MAX`: a name is never cut short.
    pub fn sibling(&self, suffix: &str) -> Result<LockPath> {
        let mut name = self.name.clone();
        name.push(suffix);
        if name.len() + BREAK_SUFFIX.len() > NAME_MAX && suffix != BREAK_SUFFIX
            || name.len() > NAME_MAX
        {
            return Err(Error::NameTooLong {
                path: self.path.with_file_name(&name),
            });
        }
        Ok(LockPath {
            path: self.path.with_file_name(&name),
            dir: self.dir.clone(),
            name,
        })
    }

    /// The break lock `<name>.break`, which [`LockPath::new`] made room for.
    pub fn break_lock(&self) -> LockPath {
        self.sibling(BREAK_SUFFIX)
            .expect("LockPath::new leaves room for .break")
    }
}

/// A trailing slash names the same directory (`lockdir D/`).
pub fn without_trailing_slash(dir: &std::ffi::OsStr) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    match dir.as_bytes().strip_suffix(b"/") {
        Some(t) if !t.is_empty() => std::ffi::OsStr::from_bytes(t),
        _ => dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_path_splits_and_validates() {
        let l = LockPath::new("/var/mail/joe.lock").unwrap();
        assert_eq!(l.dir(), Path::new("/var/mail"));
        assert_eq!(l.name(), "joe.lock");
        assert_eq!(LockPath::new("x.lock").unwrap().dir(), Path::new("."));
        assert!(matches!(
            LockPath::new("d/"),
            Err(Error::LockIsDirectory { .. })
        ));
        assert!(matches!(
            LockPath::new(".."),
            Err(Error::LockIsDirectory { .. })
        ));
        let long = "a".repeat(256);
        assert!(matches!(
            LockPath::new(&long),
            Err(Error::NameTooLong { .. })
        ));
        assert!(LockPath::new("a".repeat(249)).is_ok());
        let deep = "d/".repeat(2048);
        assert!(matches!(
            LockPath::new(&deep),
            Err(Error::NameTooLong { .. })
        ));
    }

    #[test]
    fn names_too_long_for_their_siblings_are_refused_not_cut() {
        let too_long = |r: Result<LockPath>| matches!(r, Err(Error::NameTooLong { .. }));
        // Room for `.break` is needed beside every lock.
        assert!(too_long(LockPath::new(format!("/tmp/{}", "a".repeat(250)))));
        let l = LockPath::new(format!("/tmp/{}", "a".repeat(249))).unwrap();
        let b = l.break_lock();
        assert_eq!(b.name().len(), 255);
        assert!(b.name().as_bytes().ends_with(b".break"));
        // A slot `.N` needs room for its own `.break`.
        assert!(too_long(l.sibling(".1")));
        let l = LockPath::new(format!("/tmp/{}", "a".repeat(247))).unwrap();
        assert_eq!(l.sibling(".1").unwrap().name().len(), 249);
        assert!(too_long(l.sibling(".10")));
        assert_eq!(
            LockPath::new("/tmp/x").unwrap().break_lock().path(),
            Path::new("/tmp/x.break")
        );
    }
}
