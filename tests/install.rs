//! `make install`, `install-compat` and `uninstall` into a `DESTDIR`: the
//! programs taken from `CARGO_TARGET_DIR`, everything in place, nothing
//! put over what is not ours, and only ours removed. (The Debian packages
//! and the live system: `packaging/check-install`, run by `.ci/run`.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docs::{have, root};
use crate::util::{Scratch, dotlock_bin, skip};

#[test]
fn make_install_puts_everything_in_place() {
    if !have("make") {
        return skip("make is not installed");
    }
    let dest = tempfile::tempdir().unwrap();
    // The programs where cargo puts them with CARGO_TARGET_DIR set:
    // `make install` finds them there, with no BUILD given.
    let target_dir = tempfile::tempdir().unwrap();
    let triple = dotlock_bin()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let release = target_dir
        .path()
        .join(triple.file_name().unwrap())
        .join("release");
    fs::create_dir_all(&release).unwrap();
    for p in ["dotlock", "lockdir", "filelock"] {
        fs::copy(crate::util::bin(p), release.join(p)).unwrap();
    }
    let run = |target: &str| {
        Command::new("make")
            .current_dir(root())
            .args(["-s", target, "PREFIX=/usr"])
            .arg(format!("DESTDIR={}", dest.path().display()))
            .env("CARGO_TARGET_DIR", target_dir.path())
            .output()
            .unwrap()
    };
    let make = |target: &str| {
        let out = run(target);
        assert!(out.status.success(), "make {target}: {out:?}");
    };
    make("install");
    assert!(
        fs::read(dest.path().join("usr/bin/lockdir")).unwrap()
            == fs::read(release.join("lockdir")).unwrap(),
        "make install took another lockdir than CARGO_TARGET_DIR's"
    );
    // install-compat never replaces a file that is not ours, and then
    // changes nothing at all.
    let foreign = dest.path().join("usr/bin/lockfile");
    fs::write(&foreign, "#!/bin/sh\n").unwrap();
    let out = run("install-compat");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/usr/bin/lockfile: exists and is not ours"),
        "{out:?}"
    );
    assert!(!dest.path().join("usr/bin/dotlockfile").exists(), "{out:?}");
    fs::remove_file(&foreign).unwrap();
    make("install-compat");
    let usr = dest.path().join("usr");
    for p in ["dotlock", "lockdir", "filelock"] {
        let bin = usr.join("bin").join(p);
        assert!(
            fs::metadata(&bin).unwrap().permissions().mode() & 0o111 != 0,
            "{p} not executable"
        );
        for f in [
            format!("share/man/man1/{p}.1"),
            format!("share/bash-completion/completions/{p}"),
            format!("share/zsh/site-functions/_{p}"),
            format!("share/fish/vendor_completions.d/{p}.fish"),
        ] {
            assert!(usr.join(&f).is_file(), "{f} missing");
        }
    }
    let compat = usr.join("bin/dotlockfile");
    assert_eq!(fs::read_link(&compat).unwrap(), Path::new("dotlock"));
    assert_eq!(
        fs::read_link(usr.join("bin/lockfile")).unwrap(),
        Path::new("filelock")
    );
    // The installed personality is the real thing.
    let s = Scratch::new();
    let out = Command::new(&compat)
        .current_dir(s.dir.path())
        .args(["-r", "x", "L"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("dotlockfile: "));
    // And lockfile-progs' names.
    for name in crate::util::LOCKFILE_PROGS {
        let link = usr.join("bin").join(name);
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("dotlock"),
            "{name}"
        );
    }
    let completions = usr.join("share/bash-completion/completions");
    assert!(completions.join("lockfile-progs").is_file());
    assert_eq!(
        fs::read_link(completions.join("mail-lock")).unwrap(),
        Path::new("lockfile-progs")
    );
    let out = Command::new(usr.join("bin/lockfile-create"))
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: lockfile-create "));
    // uninstall removes what install put there, and nothing else: here a
    // file someone put in place of one of our links.
    let replaced = usr.join("bin/mail-touchlock");
    fs::remove_file(&replaced).unwrap();
    fs::write(&replaced, "not ours\n").unwrap();
    make("uninstall");
    let left: Vec<_> = walk(dest.path())
        .into_iter()
        .filter(|p| !p.is_dir())
        .collect();
    assert_eq!(left, [replaced], "uninstall left");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
