//! Bad input (SPEC §8): one line on stderr naming the path, the documented
//! exit code, and nothing that is not ours removed or followed.

use std::fs;
use std::time::{Duration, Instant};

use crate::util::{Scratch, as_nobody, is_root, os, read_only_dir, skip, stderr_lines};

/// Run dotlock with `args`; expect `code` and exactly one stderr line
/// that starts with `dotlock: ` and contains `mentions`.
fn one_line(s: &Scratch, args: &[&str], code: i32, mentions: &str) -> String {
    let mut cmd = s.dotlock();
    cmd.args(args);
    let out = s.expect(&mut cmd, code);
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "want one line\n{}", s.context(&cmd, &out));
    assert!(
        lines[0].starts_with("dotlock: ") && lines[0].contains(mentions),
        "{:?} should mention {mentions:?}",
        lines[0]
    );
    lines[0].clone()
}

#[test]
fn missing_directory() {
    let s = Scratch::new();
    one_line(&s, &["nodir/L"], 2, "nodir: no such directory");
    one_line(&s, &["-u", "nodir/L"], 2, "nodir");
    assert!(s.listing().is_empty());
}

#[test]
fn parent_is_not_a_directory() {
    let s = Scratch::new();
    fs::write(s.path("file"), "data").unwrap();
    one_line(&s, &["file/L"], 2, "file: not a directory");
    assert_eq!(fs::read(s.path("file")).unwrap(), b"data");
}

#[test]
fn directory_not_writable() {
    if !is_root() {
        return skip("acting as nobody needs root");
    }
    let s = Scratch::new();
    read_only_dir(&s, "ro");
    let mut cmd = s.dotlock();
    let out = s.expect(as_nobody(cmd.arg("ro/L")), 2);
    let lines = stderr_lines(&out);
    assert_eq!(
        lines,
        ["dotlock: ro/L: cannot create a file in the lock's directory: Permission denied"]
    );
    assert_eq!(s.listing(), ["ro/"]);
}

#[test]
fn read_only_filesystem() {
    if !is_root() {
        return skip("mounting needs root");
    }
    let s = Scratch::new();
    fs::create_dir(s.path("mnt")).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(s.path("mnt"))
        .status()
        .map(|st| st.success())
        .unwrap_or(false);
    if !mounted {
        return skip("cannot mount a read-only tmpfs here");
    }
    let line = one_line(&s, &["mnt/L"], 2, "mnt/L: cannot create a file");
    let _ = std::process::Command::new("umount")
        .arg(s.path("mnt"))
        .status();
    assert!(line.contains("Read-only file system"), "{line}");
}

#[test]
fn lock_path_is_a_directory() {
    let s = Scratch::new();
    fs::create_dir(s.path("L")).unwrap();
    fs::write(s.path("L/inside"), "keep").unwrap();
    one_line(
        &s,
        &["-r", "0", "L"],
        5,
        "L: is a directory, not a lock file",
    );
    one_line(&s, &["-u", "L"], 1, "is a directory");
    one_line(&s, &["-t", "L"], 1, "is a directory");
    one_line(&s, &["-c", "L"], 1, "is a directory");
    one_line(&s, &["L", "true"], 5, "is a directory");
    one_line(&s, &["-r", "0", "L/"], 5, "is a directory");
    assert_eq!(s.listing(), ["L/", "L/inside"]);
}

#[test]
fn lock_path_is_a_symlink_never_followed() {
    let s = Scratch::new();
    fs::write(s.path("target"), "precious").unwrap();
    std::os::unix::fs::symlink("target", s.path("L")).unwrap();
    std::os::unix::fs::symlink("nowhere", s.path("D")).unwrap();
    one_line(
        &s,
        &["-r", "0", "L"],
        5,
        "L: is a symbolic link (not followed)",
    );
    // A dangling link is not a stale lock either (dotlockfile removes it).
    one_line(&s, &["-r", "0", "D"], 5, "D: is a symbolic link");
    one_line(&s, &["-t", "L"], 1, "symbolic link");
    one_line(&s, &["-c", "L"], 1, "symbolic link");
    assert_eq!(fs::read(s.path("target")).unwrap(), b"precious");
    assert!(!s.path("nowhere").exists());
    // -u removes the link itself, never its target.
    s.expect(s.dotlock().args(["-u", "L"]), 0);
    assert!(!s.path("L").is_symlink());
    assert_eq!(fs::read(s.path("target")).unwrap(), b"precious");
}

#[test]
fn lock_path_is_a_fifo_and_nothing_hangs() {
    let s = Scratch::new();
    nix::unistd::mkfifo(
        &s.path("L"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let start = Instant::now();
    one_line(&s, &["-r", "0", "L"], 5, "L: is not a regular file");
    one_line(&s, &["-c", "L"], 1, "is not a regular file");
    one_line(&s, &["-u", "L"], 1, "is not a regular file");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(s.listing(), ["L"]);
}

#[test]
fn names_too_long() {
    let s = Scratch::new();
    let long = "n".repeat(256);
    one_line(&s, &[&long], 1, "name too long");
    let deep = format!("{}L", "d/".repeat(2100));
    one_line(&s, &[&deep], 1, "name too long");
    // The break lock `NAME.break` must fit too: 249 is the longest name;
    // a longer one is refused, never cut short (it would share its break
    // lock with another).
    one_line(&s, &[&"n".repeat(250)], 1, "name too long");
    s.expect(s.dotlock().arg("n".repeat(249)), 0);
    // A slot needs room for `.N` and its own `.break`.
    one_line(&s, &["--slots", "2", &"m".repeat(248)], 1, "name too long");
    s.expect(s.dotlock().args(["--slots", "2", &"m".repeat(247)]), 0);
}

#[test]
fn bad_numbers_name_the_value() {
    let s = Scratch::new();
    one_line(&s, &["-r", "-5", "L"], 5, "-r -5: invalid argument");
    one_line(&s, &["-r", "x", "L"], 5, "-r x");
    one_line(&s, &["-r", "4294967296", "L"], 5, "-r 4294967296");
    one_line(&s, &["-i", "-1", "L"], 5, "-i -1");
    one_line(&s, &["-i", "1e999", "L"], 5, "-i 1e999");
    one_line(&s, &["--timeout", "abc", "L"], 5, "--timeout abc");
    one_line(&s, &["--timeout", "-2", "L"], 5, "--timeout -2");
    assert!(s.listing().is_empty());
}

#[test]
fn usage_errors_are_one_line() {
    let s = Scratch::new();
    one_line(&s, &["-z", "L"], 1, "'-z'");
    one_line(&s, &[], 1, "no lock file given");
    one_line(&s, &[""], 1, "empty");
    one_line(&s, &["-u", "-t", "L"], 1, "cannot be combined");
}

#[test]
fn odd_lock_content_is_a_lock_not_proof_of_death() {
    let big = vec![b'7'; 1 << 20];
    let contents: [(&str, &[u8]); 5] = [
        ("garbage", b"not a pid\n"),
        ("empty", b""),
        ("binary", b"\x00\xff\xfe\x01\x02"),
        ("procmail", b"0"),
        ("huge", &big),
    ];
    for (name, content) in contents {
        let s = Scratch::new();
        fs::write(s.path("L"), content).unwrap();
        let out = s.expect(s.dotlock().args(["-p", "-r", "0", "L"]), 4);
        assert_eq!(
            crate::util::stderr_lines(&out),
            ["dotlock: L: busy: held by an unknown process for 0s"],
            "{name}"
        );
        s.expect(s.dotlock().args(["-p", "-c", "L"]), 0);
        assert_eq!(
            fs::read(s.path("L")).unwrap(),
            content,
            "{name}: content changed"
        );
        assert_eq!(s.listing(), ["L"], "{name}");
    }
}

#[test]
fn command_not_found_or_not_executable() {
    let s = Scratch::new();
    one_line(
        &s,
        &["L", "no-such-command-xyz"],
        127,
        "no-such-command-xyz: No such file or directory",
    );
    fs::write(s.path("plain"), "#!/bin/sh\n").unwrap();
    one_line(&s, &["L", "./plain"], 126, "./plain: Permission denied");
    assert_eq!(s.listing(), ["plain"], "the lock must be released");
}

#[test]
fn non_utf8_paths_work_like_any_other() {
    let s = Scratch::new();
    let name = os(b"\xff\xfe-lock");
    s.expect(s.dotlock().arg(name), 0);
    s.expect(s.dotlock().args([os(b"-r"), os(b"0"), name]), 4);
    s.expect(s.dotlock().args([os(b"-c"), name]), 0);
    s.expect(s.dotlock().args([os(b"-u"), name]), 0);
    assert!(s.listing().is_empty());
    let out = s.expect(s.dotlock().arg(os(b"\xffdir/L")), 2);
    assert!(out.stderr.starts_with(b"dotlock: "), "{:?}", out.stderr);
}
