//! The programs under test — the ones cargo built, or the installed ones
//! (`LOCKUTILS_TEST_BINDIR`) — and the ancestors' real programs, found
//! where dpkg put them, diverted or not.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::skip;

/// A program under test: the one cargo built, or, with
/// `LOCKUTILS_TEST_BINDIR` set (packaging/check-install, against the
/// installed package), the one installed there.
pub fn bin(prog: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("LOCKUTILS_TEST_BINDIR") {
        return PathBuf::from(dir).join(prog);
    }
    PathBuf::from(match prog {
        "dotlock" => env!("CARGO_BIN_EXE_dotlock"),
        "lockdir" => env!("CARGO_BIN_EXE_lockdir"),
        "filelock" => env!("CARGO_BIN_EXE_filelock"),
        other => panic!("no program {other}"),
    })
}

/// The `dotlock` binary under test.
pub fn dotlock_bin() -> PathBuf {
    bin("dotlock")
}

/// Are we testing the installed programs (`LOCKUTILS_TEST_BINDIR`)?
pub fn testing_installed() -> bool {
    std::env::var_os("LOCKUTILS_TEST_BINDIR").is_some()
}

/// Are the test seams (`LOCKUTILS_TEST_PAUSE_…` and the others) built into
/// the programs under test? Not into the installed ones: those are release
/// builds. A test that needs them returns early there, saying so; it has
/// run against the cargo-built programs in the same CI run.
pub fn has_seams() -> bool {
    if testing_installed() {
        eprintln!("not run against the installed programs: release builds have no test seams");
        return false;
    }
    true
}

/// Where the original of `/usr/bin/NAME` is: that path, or, where
/// lockutils-compat put ours there, the file it diverted
/// (`dpkg-divert --truename`).
fn truename(name: &str) -> PathBuf {
    let path = format!("/usr/bin/{name}");
    let diverted = Command::new("dpkg-divert")
        .args(["--truename", &path])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|t| !t.is_empty());
    PathBuf::from(diverted.unwrap_or(path))
}

/// A directory holding the ancestors' real programs `names` (of the Debian
/// package `package`) under their own names: `/usr/bin`, or, where some
/// are diverted, a directory of links to the originals (they read their
/// name from argv[0]). None, said with [`skip`], where one is missing or
/// is ours.
pub fn real_tools_dir(names: &[&str], package: &str) -> Option<PathBuf> {
    let mut found = Vec::new();
    for name in names {
        let real = truename(name);
        if !real.exists() {
            skip(&format!(
                "/usr/bin/{name} is not installed (apt-get install {package})"
            ));
            return None;
        }
        let target = fs::canonicalize(&real).unwrap_or_else(|_| real.clone());
        if matches!(
            target.file_name().and_then(OsStr::to_str),
            Some("dotlock" | "filelock")
        ) {
            skip(&format!(
                "/usr/bin/{name} is lockutils' own, and no original is diverted"
            ));
            return None;
        }
        found.push((*name, real));
    }
    if found
        .iter()
        .all(|(name, real)| real == Path::new("/usr/bin").join(name).as_path())
    {
        return Some(PathBuf::from("/usr/bin"));
    }
    let dir = std::env::temp_dir().join(format!("lockutils-real-tools-{}", std::process::id()));
    let _ = fs::create_dir(&dir);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    for (name, real) in found {
        let link = dir.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(real, &link).unwrap();
    }
    Some(dir)
}

/// The ancestor's real program `name`, of the Debian package `package`.
pub fn real_tool(name: &str, package: &str) -> Option<PathBuf> {
    real_tools_dir(&[name], package).map(|dir| dir.join(name))
}

/// liblockfile's real `dotlockfile`, if installed.
pub fn real_dotlockfile() -> Option<PathBuf> {
    real_tool("dotlockfile", "liblockfile-bin")
}
