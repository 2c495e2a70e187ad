//! The personalities side by side with the real tools at the edges: a
//! full disk, a process near its descriptor limit, a dangling symbolic
//! link at the lock path. Where ours differs on purpose (README, "Intended
//! differences"), the test says what each does.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::sys::resource::{Resource, setrlimit};

use crate::util::{Scratch, is_root, real_tool, real_tools_dir, skip};

/// A real tool and ours of the same name: (name, real, ours); None (said
/// with `skip`) where a real one is missing.
fn pairs(s: &Scratch) -> Option<Vec<(&'static str, PathBuf, PathBuf)>> {
    let filelock = crate::util::bin("filelock");
    Some(vec![
        (
            "dotlockfile",
            real_tool("dotlockfile", "liblockfile-bin")?,
            s.personality_link("dotlockfile"),
        ),
        (
            "lockfile",
            real_tool("lockfile", "procmail")?,
            s.personality_link_to("lockfile", &filelock),
        ),
        (
            "lockfile-create",
            real_tool("lockfile-create", "lockfile-progs")?,
            s.personality_link("lockfile-create"),
        ),
    ])
}

/// What a run leaves: status, stderr, and each file's (name, size, mode).
fn seen(
    out: &Output,
    dir: &Path,
    skip_name: &str,
) -> (Option<i32>, String, Vec<(String, u64, u32)>) {
    let mut files: Vec<(String, u64, u32)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != skip_name)
        .map(|e| {
            let m = fs::symlink_metadata(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.size(),
                m.mode() & 0o7777,
            )
        })
        .collect();
    files.sort();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, files)
}

/// On a full filesystem: procmail's `lockfile` takes the lock empty (exit
/// 0), `lockfile-create` fails with 3 ("cannot write"), `dotlockfile`
/// with 3 — ours the same, and ours says why where dotlockfile is silent.
#[test]
fn on_a_full_disk_as_the_ancestors() {
    let s = Scratch::new();
    let Some(pairs) = pairs(&s) else { return };
    if !is_root() {
        return skip("mounting a small tmpfs needs root");
    }
    let mnt = s.path("full");
    fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k,nr_inodes=64", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|st| st.success());
    assert!(mounted, "mount a tmpfs");
    // Fill it: data blocks gone, inodes left.
    let mut i = 0;
    while fs::write(mnt.join(format!("fill{i}")), vec![0u8; 4096]).is_ok() {
        i += 1;
    }
    let mut results = Vec::new();
    for (name, real, ours) in &pairs {
        let mut got = Vec::new();
        for bin in [real, ours] {
            let out = Command::new(bin)
                .args(["-r", "0", "L"])
                .current_dir(&mnt)
                .output()
                .unwrap();
            let mut one = seen(&out, &mnt, "");
            one.2.retain(|(n, _, _)| !n.starts_with("fill"));
            got.push(one);
            for f in ["L", "L.lock"] {
                let _ = fs::remove_file(mnt.join(f));
            }
        }
        results.push((name, got));
    }
    let _ = Command::new("umount").arg(&mnt).status();
    for (name, got) in results {
        let (real, ours) = (&got[0], &got[1]);
        assert_eq!(real.0, ours.0, "{name}: status: {got:?}");
        assert_eq!(real.2, ours.2, "{name}: files: {got:?}");
        if *name == "dotlockfile" {
            // One line where liblockfile says nothing.
            assert!(real.1.is_empty(), "{got:?}");
            assert!(
                ours.1.starts_with("dotlockfile: L: cannot write"),
                "{got:?}"
            );
        } else {
            assert_eq!(real.1, ours.1, "{name}: stderr");
        }
    }
}

/// At `ulimit -n 4` the C tools lock (they keep at most one file open);
/// ours keeps the lock's directory open for every call and catches
/// signals through a signalfd, and refuses in one line (the ancestor's
/// words for a failure), leaving nothing.
#[test]
fn at_four_descriptors_ours_refuse_cleanly_where_the_ancestors_lock() {
    let s = Scratch::new();
    let Some(pairs) = pairs(&s) else { return };
    for (name, real, ours) in &pairs {
        if *name == "dotlockfile" {
            continue;
        }
        for (which, bin) in [("real", real), ("ours", ours)] {
            let dir = Scratch::new();
            let mut cmd = Command::new(bin);
            cmd.args(["-r", "0", "L"]).current_dir(dir.dir.path());
            // SAFETY: setrlimit is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    setrlimit(Resource::RLIMIT_NOFILE, 4, 4).map_err(std::io::Error::from)
                });
            }
            let out = cmd.output().unwrap();
            match which {
                "real" => assert_eq!(out.status.code(), Some(0), "{name}: {out:?}"),
                _ => {
                    assert_ne!(out.status.code(), Some(0), "{name}: {out:?}");
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert_eq!(err.lines().count(), 1, "{name}: {err}");
                    assert_eq!(dir.listing(), Vec::<String>::new(), "{name}");
                }
            }
        }
    }
}

/// A dangling symbolic link at `F.lock`: lockfile-progs removes it and
/// locks; ours never removes what is not a lock, and gives up (4).
#[test]
fn a_dangling_symlink_at_the_lock_path_is_left_alone() {
    let s = Scratch::new();
    let Some(pairs) = pairs(&s) else { return };
    let (_, real, ours) = &pairs[2];
    for (which, bin) in [("real", real), ("ours", ours)] {
        let dir = Scratch::new();
        symlink("nowhere", dir.path("F.lock")).unwrap();
        let out = Command::new(bin)
            .args(["-r", "0", "F"])
            .current_dir(dir.dir.path())
            .output()
            .unwrap();
        let link = fs::symlink_metadata(dir.path("F.lock")).unwrap();
        match which {
            "real" => {
                assert_eq!(out.status.code(), Some(0), "{out:?}");
                assert!(link.is_file(), "lockfile-progs replaced the link");
            }
            _ => {
                assert_eq!(out.status.code(), Some(4), "{out:?}");
                assert!(link.file_type().is_symlink(), "ours left it");
            }
        }
    }
}

/// What is not a lock file at `F.lock` (a directory, a FIFO) is neither
/// touched nor removed by ours, where lockfile-progs does both.
#[test]
fn lockfile_progs_never_touch_or_remove_what_is_not_a_lock_file() {
    let s = Scratch::new();
    let Some(real) = real_tools_dir(&["lockfile-touch", "lockfile-remove"], "lockfile-progs")
    else {
        return;
    };
    let ours = s.personality_link("lockfile-touch");
    let ours = ours.parent().unwrap().to_path_buf();
    let _ = s.personality_link("lockfile-remove");
    for (tool, args, plant, theirs, mine) in [
        ("lockfile-touch", &["-o", "F"][..], "dir", 0, 255),
        ("lockfile-remove", &["F"][..], "fifo", 0, 255),
    ] {
        for (bin, want) in [(&real, theirs), (&ours, mine)] {
            let dir = Scratch::new();
            let at = dir.path("F.lock");
            match plant {
                "dir" => fs::create_dir(&at).unwrap(),
                _ => nix::unistd::mkfifo(&at, nix::sys::stat::Mode::from_bits_truncate(0o644))
                    .unwrap(),
            }
            let out = Command::new(bin.join(tool))
                .args(args)
                .current_dir(dir.dir.path())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(want), "{tool} {plant}: {out:?}");
            if bin == &ours {
                assert!(fs::symlink_metadata(&at).is_ok(), "{tool}: {plant} removed");
            }
        }
    }
}
