//! `--check DIR`: each verdict on a directory made to earn it — a local
//! directory, a world-writable one without the sticky bit, a read-only
//! mount, a full filesystem, no hard links, a skewed clock, NFS mount
//! options from mountinfo fixtures — and nothing left behind, a signal
//! included.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::util::{Scratch, is_root, skip, wait_until};

fn check(
    s: &Scratch,
    dir: &Path,
    env: &[(&str, &str)],
    code: i32,
) -> Vec<(String, String, String)> {
    let mut cmd = s.dotlock();
    cmd.arg("--check").arg(dir).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = s.expect(&mut cmd, code);
    assert!(out.stderr.is_empty(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|l| {
            let (verdict, rest) = l.split_once(' ').unwrap();
            let (topic, what) = rest.trim_start().split_once(": ").unwrap();
            (verdict.to_string(), topic.to_string(), what.to_string())
        })
        .collect()
}

/// The verdict of the first finding on `topic` whose text contains `text`.
fn verdict(found: &[(String, String, String)], topic: &str, text: &str) -> String {
    found
        .iter()
        .find(|(_, t, w)| t == topic && w.contains(text))
        .map(|(v, _, _)| v.clone())
        .unwrap_or_else(|| panic!("no {topic} finding with {text:?}: {found:#?}"))
}

fn empty(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn a_local_directory_is_ok_and_left_as_it_was() {
    let s = Scratch::new();
    let dir = s.path("d");
    fs::create_dir(&dir).unwrap();
    let found = check(&s, &dir, &[], 0);
    assert_eq!(verdict(&found, "filesystem", "local"), "ok");
    assert_eq!(verdict(&found, "link", "works here"), "ok");
    assert_eq!(verdict(&found, "mkdir", "refuses"), "ok");
    assert_eq!(verdict(&found, "O_EXCL", "refuses"), "ok");
    assert_eq!(verdict(&found, "clock", "in step"), "ok");
    assert_eq!(verdict(&found, "permissions", "mode 0755"), "ok");
    assert_eq!(verdict(&found, "space", "free"), "ok");
    assert!(found.iter().all(|(v, _, _)| v != "unsafe"), "{found:#?}");
    assert!(empty(&dir), "left behind");
    // --json: one object per finding.
    let out = s.expect(s.dotlock().args(["--check", "--json"]).arg(&dir), 0);
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            ["ok", "warning", "unsafe"].contains(&v["verdict"].as_str().unwrap()),
            "{v}"
        );
        assert!(v["topic"].is_string() && v["finding"].is_string(), "{v}");
    }
    // A missing directory: the usual 2.
    s.expect(s.dotlock().args(["--check", "nodir"]), 2);
}

#[test]
fn world_writable_without_the_sticky_bit_is_unsafe() {
    let s = Scratch::new();
    let dir = s.path("spool");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let found = check(&s, &dir, &[], 10);
    assert_eq!(
        verdict(
            &found,
            "permissions",
            "world-writable without the sticky bit"
        ),
        "unsafe"
    );
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let found = check(&s, &dir, &[], 0);
    assert_eq!(verdict(&found, "permissions", "mode 1777"), "ok");
    // lockdir says the same.
    let out = s.expect(
        Command::new(crate::util::bin("lockdir"))
            .args(["--check"])
            .arg(&dir),
        0,
    );
    assert!(!out.stdout.is_empty());
}

#[test]
fn no_hard_links_warns_of_the_fallback() {
    let s = Scratch::new();
    let found = check(
        &s,
        s.dir.path(),
        &[("LOCKUTILS_TEST_LINK", "unsupported")],
        0,
    );
    assert_eq!(verdict(&found, "link", "no hard links here"), "warning");
    assert!(empty(s.dir.path()));
}

#[test]
fn a_clock_an_hour_off_warns_naming_procmail_and_scripts_and_exits_0() {
    let s = Scratch::new();
    let found = check(
        &s,
        s.dir.path(),
        &[("LOCKUTILS_TEST_CLOCK_SKEW", "-3600")],
        0,
    );
    let (v, _, what) = found.iter().find(|(_, t, _)| t == "clock").unwrap();
    assert_eq!(v, "warning");
    assert!(what.contains("ahead of this host's"), "{what}");
    assert!(what.contains("procmail's lockfile and scripts"), "{what}");
}

/// NFS mount options, from a mountinfo fixture naming this directory's
/// device (there is no kernel NFS client here to mount with them).
#[test]
fn nfs_options_from_mountinfo() {
    let s = Scratch::new();
    let dev = fs::metadata(s.dir.path()).unwrap().dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let fixture = s.dir.path().with_extension("mountinfo");
    fs::write(
        &fixture,
        format!(
            "22 1 8:99 / / rw - ext4 /dev/sdz rw\n\
             40 22 {major}:{minor} / /shared rw,relatime - nfs4 server:/export rw,vers=4.2,hard,local_lock=all,nolock,lookupcache=none,actimeo=0,nocto,addr=10.0.0.1\n"
        ),
    )
    .unwrap();
    let found = check(
        &s,
        s.dir.path(),
        &[("LOCKUTILS_TEST_MOUNTINFO", fixture.to_str().unwrap())],
        0,
    );
    let _ = fs::remove_file(&fixture);
    assert_eq!(
        verdict(&found, "filesystem", "remote (NFS version 4.2)"),
        "ok"
    );
    assert_eq!(
        verdict(&found, "nfs options", "local_lock=all: flock(1)"),
        "warning"
    );
    assert_eq!(
        verdict(&found, "nfs options", "nolock: no lock manager"),
        "warning"
    );
    assert_eq!(verdict(&found, "nfs options", "nocto:"), "warning");
    assert_eq!(verdict(&found, "nfs options", "lookupcache=none"), "ok");
    assert_eq!(verdict(&found, "nfs options", "actimeo=0"), "ok");
}

/// A small tmpfs of our own, mounted with `options`; unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(at: &'a Path, options: &str) -> Tmpfs<'a> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "mount a tmpfs at {at:?}");
        Tmpfs(at)
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_read_only_mount_and_a_full_filesystem_are_unsafe() {
    if !is_root() {
        return skip("mounting a tmpfs needs root");
    }
    let s = Scratch::new();
    let ro = s.path("ro");
    let _ro = Tmpfs::mount(&ro, "ro,size=64k");
    let found = check(&s, &ro, &[], 10);
    assert_eq!(verdict(&found, "filesystem", "mounted read-only"), "unsafe");
    assert_eq!(
        verdict(&found, "create", "cannot create a file here"),
        "unsafe"
    );

    let full = s.path("full");
    let _full = Tmpfs::mount(&full, "size=16k,nr_inodes=64");
    let mut i = 0;
    while fs::write(full.join(format!("fill{i}")), vec![0u8; 4096]).is_ok() {
        i += 1;
    }
    let found = check(&s, &full, &[], 10);
    assert_eq!(
        verdict(&found, "space", "a full filesystem cannot take a lock"),
        "unsafe"
    );
    let left: Vec<_> = fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("fill"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// SIGTERM while the test files exist: they are removed, then the
/// process dies by the signal.
#[test]
fn a_signal_during_the_probes_leaves_nothing() {
    let s = Scratch::new();
    let dir = s.path("d");
    fs::create_dir(&dir).unwrap();
    let gate = s.path("gate");
    let child = s
        .dotlock()
        .arg("--check")
        .arg(&dir)
        .env("LOCKUTILS_TEST_PAUSE_CHECK_PROBES", &gate)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the probes", Duration::from_secs(10), || {
        s.path("gate.reached").exists()
    });
    assert!(!empty(&dir), "the probes' files exist at the pause");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    fs::write(&gate, "").unwrap();
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(15), "{out:?}");
    assert!(
        empty(&dir),
        "left behind: {:?}",
        fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
    );
}
