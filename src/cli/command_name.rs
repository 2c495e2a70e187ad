//! `filelock a.lock make deploy`: names that look like a command left
//! without `--`. filelock takes them as lock files (the seed's contract),
//! and says so in one warning line.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The first of `files` that does not exist, has no `/` in it, and names
/// an executable on `path` (`$PATH`): most likely a command meant to go
/// after `--`.
pub fn first_command_like<'a>(files: &'a [OsString], path: Option<&OsStr>) -> Option<&'a OsStr> {
    let path = path?;
    files.iter().map(OsString::as_os_str).find(|name| {
        !name.is_empty()
            && !name.as_bytes().contains(&b'/')
            && Path::new(name).symlink_metadata().is_err()
            && on_path(name, path)
    })
}

/// Is `name` an executable regular file in one of `path`'s directories
/// (an empty entry is the current directory, as for execvp(3))?
fn on_path(name: &OsStr, path: &OsStr) -> bool {
    path.as_bytes().split(|&b| b == b':').any(|dir| {
        let dir = match dir {
            b"" => Path::new("."),
            d => Path::new(OsStr::from_bytes(d)),
        };
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The warning for `name`, taken as a lock file.
pub fn warning(name: &OsStr) -> String {
    let name = Path::new(name).display();
    format!(
        "{name}: taken as a lock file, though a command of that name is on PATH; a command goes after --: filelock LOCKFILE... -- {name} ..."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_name_that_is_a_command_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("deploy");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("notes");
        std::fs::write(&plain, "").unwrap();
        let path = OsString::from(format!("/nonexistent:{}", dir.path().display()));
        let names = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let found = |v: &[&str]| first_command_like(&names(v), Some(&path)).map(OsStr::to_owned);
        assert_eq!(found(&["a.lock", "deploy"]), Some("deploy".into()));
        // Not executable, a path, or absent from PATH: no warning.
        assert_eq!(found(&["a.lock", "notes"]), None);
        assert_eq!(found(&["a.lock", "./deploy"]), None);
        assert_eq!(found(&["a.lock", "b.lock"]), None);
        assert_eq!(first_command_like(&names(&["deploy"]), None), None);
        assert!(warning(OsStr::new("make")).starts_with("make: taken as a lock file"));
    }
}
