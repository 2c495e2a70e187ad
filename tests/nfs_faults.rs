//! What an NFS client can answer, played on chosen calls of a real process
//! (`LOCKUTILS_TEST_FAULTS`, debug builds): `ESTALE` when another client
//! changed a file between two calls, and lost replies, where the call was
//! done but the retransmission answers `EEXIST` or `ENOENT` (or a soft
//! mount `EIO`). No tool may die of `ESTALE`, and none may report failure
//! for a lock it took or released. Each test is the regression test of a
//! failure these faults showed.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use lockutils::Record;

use crate::util::Scratch;

fn lockdir_bin() -> PathBuf {
    crate::util::bin("lockdir")
}

fn filelock_bin() -> PathBuf {
    crate::util::bin("filelock")
}

/// `program` in `s`, with `faults`.
fn with_faults(s: &Scratch, program: PathBuf, faults: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(s.dir.path())
        .env("LOCKUTILS_TEST_FAULTS", faults);
    cmd
}

fn dotlock(s: &Scratch, faults: &str) -> Command {
    with_faults(s, crate::util::dotlock_bin(), faults)
}

/// The record of a holder on this host that is proven dead.
fn dead_record() -> Vec<u8> {
    Record::for_holder(Some(i32::MAX as u32 - 1), Some("crashed".into())).to_bytes()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn estale_on_read_of_a_lock_looks_again() {
    // Before: the record read as unreadable, so a dead holder's lock could
    // not be proven dead and `-r 0` gave up.
    let s = Scratch::new();
    fs::write(s.path("L"), dead_record()).unwrap();
    let out = s.expect(dotlock(&s, "read=estale@1@2").args(["-r", "0", "L"]), 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(fs::read_to_string(s.path("L")).unwrap().contains("caller="));
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[test]
fn estale_on_stat_never_kills_a_tool() {
    // Before: `dotlock: L: Stale file handle`, exit 5.
    for (prog, args) in [
        (crate::util::dotlock_bin(), vec!["-r", "0", "L"]),
        (filelock_bin(), vec!["-r", "0", "L"]),
        (lockdir_bin(), vec!["-r", "0", "--pid", "1", "L"]),
    ] {
        for faults in [
            "lstat=estale@1",
            "lstat=estale@1@2@3",
            "fstat=estale@1",
            "open=estale@1",
        ] {
            let s = Scratch::new();
            if prog == lockdir_bin() {
                fs::create_dir(s.path("L")).unwrap();
                fs::write(s.path("L/owner"), dead_record()).unwrap();
            } else {
                fs::write(s.path("L"), dead_record()).unwrap();
            }
            let out = s.expect(with_faults(&s, prog.clone(), faults).args(&args), 0);
            assert!(
                stderr(&out).is_empty(),
                "{prog:?} {faults}: {}",
                stderr(&out)
            );
            assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
        }
    }
}

#[test]
fn estale_on_unlink_still_removes_the_temporary_file_and_the_lock() {
    // Before: the temporary file was left behind, and the release failed.
    let s = Scratch::new();
    let out = s.expect(dotlock(&s, "unlink=estale@1@2").args(["L", "true"]), 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), Vec::<String>::new());
    s.expect(s.dotlock().arg("L"), 0);
    let out = s.expect(dotlock(&s, "unlink=estale@1").args(["-u", "L"]), 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), Vec::<String>::new());
}

#[test]
fn a_lost_link_reply_is_decided_by_looking() {
    for faults in ["link=lost@1", "link=eio@1"] {
        let s = Scratch::new();
        let out = s.expect(dotlock(&s, faults).args(["-r", "0", "L"]), 0);
        assert!(stderr(&out).is_empty(), "{faults}: {}", stderr(&out));
        assert!(fs::read_to_string(s.path("L")).unwrap().contains("caller="));
        assert_eq!(s.listing(), ["L"]);
        let s = Scratch::new();
        let out = s.expect(
            with_faults(&s, filelock_bin(), faults).args(["-r", "0", "A", "B"]),
            0,
        );
        assert!(stderr(&out).is_empty(), "{faults}: {}", stderr(&out));
        assert_eq!(s.listing(), ["A", "B"]);
    }
}

#[test]
fn a_lost_remove_reply_is_a_release_that_happened() {
    // Before: `filelock: A: not locked`, exit 1, for an unlock that happened.
    let s = Scratch::new();
    s.expect(
        Command::new(filelock_bin())
            .current_dir(s.dir.path())
            .arg("A"),
        0,
    );
    let out = s.expect(
        with_faults(&s, filelock_bin(), "unlink=lost@1@2@3@4@5@6").args(["-u", "A"]),
        0,
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), Vec::<String>::new());
    // In command mode: no "the lock was broken" for our own release.
    // (Every unlink's reply is lost: the temporary files' ones too.)
    let out = s.expect(
        dotlock(&s, "unlink=lost@1@2@3@4@5@6").args(["L", "true"]),
        0,
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), Vec::<String>::new());
    // lockdir: a lost RMDIR reply.
    let mut take = Command::new(lockdir_bin());
    take.current_dir(s.dir.path()).arg("D");
    s.expect(&mut take, 0);
    let out = s.expect(
        with_faults(&s, lockdir_bin(), "rmdir=lost@1@2").args(["-u", "D"]),
        0,
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), Vec::<String>::new());
}

#[test]
fn a_lost_create_reply_leaves_no_temporary_file() {
    let s = Scratch::new();
    let out = s.expect(dotlock(&s, "create=lost@1").args(["-r", "0", "L"]), 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), ["L"]);
}

/// A lost MKDIR reply: the directory is ours, the retransmission says it
/// exists. Before: nobody's owner record in it, so this process (and every
/// other) waited out the 10 s grace; with `-r 0`, gave up at once.
#[test]
fn a_lost_mkdir_reply_does_not_stall_for_the_grace_period() {
    let s = Scratch::new();
    let out = s.expect(
        with_faults(&s, lockdir_bin(), "mkdir=lost@1").args(["-r", "0", "--pid", "1", "D"]),
        0,
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let owner = Record::parse(&fs::read(s.path("D/owner")).unwrap());
    assert_eq!(owner.pid, Some(1));
    assert_eq!(s.listing(), ["D/", "D/owner"]);
    // A directory that was there before the attempt is somebody else's,
    // owner or not: busy until the grace period says otherwise.
    let s = Scratch::new();
    fs::create_dir(s.path("D")).unwrap();
    s.expect(
        with_faults(&s, lockdir_bin(), "").args(["-r", "0", "--pid", "1", "D"]),
        4,
    );
    assert_eq!(s.listing(), ["D/"]);
}

/// A lost RENAME reply when filelock hands each member of a set over to
/// the shell (a temporary file renamed over the lock): the retransmission
/// finds the temporary name gone. Before: `filelock: A: No such file or
/// directory`, exit 1, with the lock taken and left behind (found on the
/// NFS bed).
#[test]
fn a_lost_rename_reply_is_a_rename_that_happened() {
    let s = Scratch::new();
    let out = s.expect(
        with_faults(&s, filelock_bin(), "rename=lost@1").args(["-r", "0", "A", "B"]),
        0,
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), ["A", "B"]);
    s.expect(
        Command::new(filelock_bin())
            .current_dir(s.dir.path())
            .args(["-u", "A", "B"]),
        0,
    );
    assert_eq!(s.listing(), Vec::<String>::new());
}

/// `EIO` after the server did the call (a soft mount timing out), on each
/// kind of changing call: the call is made again and the tool carries on.
/// Before: `dotlock: L: Input/output error` and the like, exit 1, on the
/// NFS bed's eio mode.
#[test]
fn eio_after_the_call_was_done_never_fails_a_tool() {
    for faults in ["create=eio@1", "link=eio@1", "unlink=eio@2"] {
        let s = Scratch::new();
        let out = s.expect(dotlock(&s, faults).args(["-r", "0", "L", "true"]), 0);
        assert!(stderr(&out).is_empty(), "{faults}: {}", stderr(&out));
        assert_eq!(s.listing(), Vec::<String>::new(), "{faults}");
    }
    let s = Scratch::new();
    let out = s.expect(
        with_faults(&s, filelock_bin(), "rename=eio@1").args(["-r", "0", "A", "B"]),
        0,
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), ["A", "B"]);
    // The dotlockfile personality's -u removes whoever's lock it finds:
    // only the one it looked at, and EIO after doing it is success.
    let s = Scratch::new();
    s.expect(s.as_dotlockfile().arg("L"), 0);
    let out = s.expect(
        s.as_dotlockfile()
            .env("LOCKUTILS_TEST_FAULTS", "unlink=eio@1")
            .args(["-u", "L"]),
        0,
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.listing(), Vec::<String>::new());
    for faults in ["mkdir=eio@1", "rmdir=eio@1"] {
        let s = Scratch::new();
        let out = s.expect(
            with_faults(&s, lockdir_bin(), faults).args(["-r", "0", "D", "true"]),
            0,
        );
        assert!(stderr(&out).is_empty(), "{faults}: {}", stderr(&out));
        assert_eq!(s.listing(), Vec::<String>::new(), "{faults}");
    }
}

#[test]
fn a_look_that_fails_at_a_touch_is_not_a_lost_lock() {
    // Before: a keep-alive look that met a lasting EIO read as "not ours":
    // the command was sent SIGTERM (--on-lost=term) and, the release's look
    // failing too, the lock was left. A failed look proves nothing: the
    // next touch looks again.
    let s = Scratch::new();
    // Every lstat from the 3rd to the 20th fails (each look past its two
    // retries): the looks of the first six touches, after the lock is
    // taken and seconds before the release.
    let calls: Vec<String> = (3..21).map(|n| n.to_string()).collect();
    let faults = format!("lstat=eio@{}", calls.join("@"));
    let out = s.expect(
        dotlock(&s, &faults).args([
            "--stale-after",
            "0.3",
            "--on-lost=term",
            "-l",
            "L",
            "sh",
            "-c",
            "sleep 3; echo done",
        ]),
        0,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    assert!(!stderr(&out).contains("lost"), "{}", stderr(&out));
    assert!(!s.path("L").exists(), "released");
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

#[test]
fn a_temporary_file_swept_before_its_link_is_no_missing_directory() {
    // On NFS an exclusive create leaves the server's verifier in the new
    // file's mtime until its times are set: another taker's debris sweep
    // can judge it old and remove it before its link(2), which then
    // answers ENOENT. Before: `dotlockfile: .: no such directory`, exit 1,
    // for a bare lock name in a directory that is there.
    let dotlock = crate::util::dotlock_bin();
    for (name, target, args, lock) in [
        ("dotlock", dotlock.clone(), vec!["-r", "0", "L"], "L"),
        ("dotlockfile", dotlock.clone(), vec!["-r", "0", "L"], "L"),
        (
            "lockfile-create",
            dotlock.clone(),
            vec!["--retry", "0", "L"],
            "L.lock",
        ),
        ("lockfile", filelock_bin(), vec!["-r", "0", "L"], "L"),
        ("filelock", filelock_bin(), vec!["-r", "0", "L"], "L"),
    ] {
        let s = Scratch::new();
        let mut cmd = Command::new(s.personality_link_to(name, &target));
        cmd.current_dir(s.dir.path()).args(&args);
        let (child, gate) = crate::util::paused_at(&s, cmd, "IN_ATTEMPT", "gate");
        // The sweep, at the instant between the create and the link.
        let temps: Vec<_> = fs::read_dir(s.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".lk"))
            .collect();
        assert_eq!(temps.len(), 1, "{name}: {temps:?}");
        fs::remove_file(s.path(&temps[0])).unwrap();
        fs::write(&gate, "").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{name}: {}", stderr(&out));
        assert!(s.path(lock).is_file(), "{name}: the lock is taken");
        let temps: Vec<_> = s
            .leftovers()
            .into_iter()
            .filter(|n| n.starts_with(".lk"))
            .collect();
        assert!(temps.is_empty(), "{name}: {temps:?}");
    }
}
