//! The link(2) protocol through the binary: a link whose reply was lost, a
//! filesystem without hard links, release only if the lock is still ours.

use std::fs;

use crate::util::{Scratch, stderr_lines};

#[test]
fn link_reported_failed_but_happened_still_acquires() {
    let s = Scratch::new();
    let out = s.expect(
        s.dotlock()
            .env("LOCKUTILS_TEST_LINK", "lost-reply")
            .args(["--verbose", "L"]),
        0,
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("link(2) reported failure, but the lock has our inode"),
        "the seam did not fire: {said}"
    );
    let content = fs::read_to_string(s.path("L")).unwrap();
    assert!(content.starts_with("0\nhost="), "{content:?}");
    assert_eq!(s.listing(), ["L"], "temp file left behind");
    // And it is a real lock: others are kept out.
    s.expect(s.dotlock().args(["-r", "0", "L"]), 4);
}

#[test]
fn link_reported_failed_in_command_mode_runs_and_releases() {
    let s = Scratch::new();
    s.expect(
        s.dotlock().env("LOCKUTILS_TEST_LINK", "lost-reply").args([
            "L",
            "sh",
            "-c",
            "test -f L && ls -a > seen",
        ]),
        0,
    );
    assert_eq!(
        fs::read_to_string(s.path("seen")).unwrap(),
        ".\n..\nL\nseen\n",
        "only the lock, no temp file, while held"
    );
    assert_eq!(s.listing(), ["seen"]);
}

#[test]
fn without_hard_links_falls_back_to_exclusive_create() {
    let s = Scratch::new();
    let out = s.expect(
        s.dotlock()
            .env("LOCKUTILS_TEST_LINK", "unsupported")
            .args(["--verbose", "-p", "L"]),
        0,
    );
    assert!(
        stderr_lines(&out)
            .iter()
            .any(|l| l.contains("no hard links on this filesystem")),
        "{:?}",
        stderr_lines(&out)
    );
    assert_eq!(s.listing(), ["L"]);
    let first = fs::read_to_string(s.path("L")).unwrap();
    assert_eq!(
        first.lines().next().unwrap(),
        std::process::id().to_string()
    );
    // The fallback still excludes.
    s.expect(
        s.dotlock()
            .env("LOCKUTILS_TEST_LINK", "unsupported")
            .args(["-r", "0", "L"]),
        4,
    );
    assert_eq!(fs::read_to_string(s.path("L")).unwrap(), first);
    assert_eq!(s.listing(), ["L"]);
}

#[test]
fn native_record_names_the_holder() {
    let s = Scratch::new();
    s.expect(s.dotlock().args(["L", "sh", "-c", "cp L record"]), 0);
    let record = fs::read_to_string(s.path("record")).unwrap();
    let mut lines = record.lines();
    let pid: u32 = lines
        .next()
        .unwrap()
        .parse()
        .expect("first line is the pid");
    assert_ne!(pid, 0);
    let keys: Vec<&str> = lines.map(|l| l.split('=').next().unwrap()).collect();
    for key in ["host", "boot_id", "start", "pidns", "cmd", "created"] {
        assert!(keys.contains(&key), "{key} missing from {record:?}");
    }
    assert!(record.contains("cmd=sh\n"), "{record:?}");
}

#[test]
fn release_leaves_alone_a_lock_that_was_taken_over() {
    let s = Scratch::new();
    // The command plays a breaker that took the lock over meanwhile.
    let out = s.expect(
        s.dotlock().args(["L", "sh", "-c", "rm L; echo 4242 > L"]),
        0,
    );
    assert_eq!(fs::read_to_string(s.path("L")).unwrap(), "4242\n");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("left the new holder's lock alone"), "{said}");
}

#[test]
fn lock_mode_is_0644_under_umask() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    s.expect(s.dotlock().arg("L"), 0);
    assert_eq!(
        fs::metadata(s.path("L")).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let s = Scratch::new();
    s.expect(&mut s.shell("umask 077; exec \"$0\" L"), 0);
    assert_eq!(
        fs::metadata(s.path("L")).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
