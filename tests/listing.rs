//! `--list DIR`: every kind of lock, member and debris in a directory,
//! live and stale, beside what is no lock; `--json`; `--stale --clean`
//! removing exactly the stale locks and debris that are ours, checked
//! file by file.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::bin;
use crate::util::{Scratch, age, wait_until};

/// `prog ARGS` in `s`, its output, expecting `code`.
fn run(s: &Scratch, prog: &str, args: &[&str], code: i32) -> std::process::Output {
    s.expect(
        Command::new(bin(prog))
            .current_dir(s.dir.path())
            .stdin(Stdio::null())
            .args(args),
        code,
    )
}

/// A record naming a process that has exited, on this host: what a
/// holder killed with SIGKILL leaves (taken with -p, no keeper).
fn dead_record(s: &Scratch) -> Vec<u8> {
    let out = s.expect(
        s.shell(r#""$DOTLOCK" -p --no-keeper dead.lock"#)
            .stderr(Stdio::null()),
        0,
    );
    assert!(out.status.success());
    fs::read(s.path("dead.lock")).unwrap()
}

/// A live process holding `lock` with `prog` in command mode.
fn live(s: &Scratch, prog: &str, args: &[&str]) -> Child {
    Command::new(bin(prog))
        .current_dir(s.dir.path())
        .args(args)
        .args(["sleep", "600"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every kind of thing `--list` tells apart, live and stale, and what is
/// no lock. Returns the live holders (killed when dropped by the test).
fn populate(s: &Scratch) -> Vec<Child> {
    let dead = dead_record(s);
    let mut holders = vec![
        live(s, "dotlock", &["held.lock"]),
        live(s, "dotlock", &["--slots", "2", "job.lock"]),
        live(s, "lockdir", &["L.d"]),
    ];
    wait_until("the live locks", Duration::from_secs(10), || {
        ["held.lock", "job.lock.1", "L.d/owner"]
            .iter()
            .all(|n| s.path(n).exists())
    });
    // Stale: a dead holder's slot, shares, want, gate, break lock.
    for name in [
        "job.lock.2",
        "held.lock.break",
        "cache.lock.r0123456789ab",
        "cache.lock.wcdef01234567",
        "cache.lock.gate",
        "we\nird.lock",
    ] {
        fs::write(s.path(name), &dead).unwrap();
    }
    fs::write(s.path(std::ffi::OsStr::from_bytes(b"\xff.lock")), &dead).unwrap();
    // Readers together, none alive: stale.
    fs::write(s.path("cache.lock"), "0\nshared=1\nhost=h\ncreated=1\n").unwrap();
    // A legacy tool's lock: fresh (held), and aged (stale by age).
    fs::write(s.path("legacy.lock"), "0\n").unwrap();
    fs::write(s.path("aged.lock"), "4242\n").unwrap();
    age(&s.path("aged.lock"), 400);
    // A lock directory whose holder is dead, without a keeper.
    let gone = {
        let mut c = Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        c.id().to_string()
    };
    run(s, "lockdir", &["--no-keeper", "--pid", &gone, "D"], 0);
    // Debris: an old temporary file; an NFS silly-rename.
    fs::write(s.path(".lk0000412345678.elsewhere"), "4\nhost=elsewhere\n").unwrap();
    age(&s.path(".lk0000412345678.elsewhere"), 400);
    fs::write(s.path(".nfs000000000001"), "x").unwrap();
    age(&s.path(".nfs000000000001"), 4000);
    // No locks: a mailbox, a data file named *.lock, a symlink, a FIFO, a
    // plain directory, a lone numbered file.
    fs::write(s.path("joe"), "From joe Mon Jan  1 00:00:00 2024\n\nhi\n").unwrap();
    fs::write(s.path("data.lock"), "not a record, somebody's data\n").unwrap();
    age(&s.path("data.lock"), 4000);
    std::os::unix::fs::symlink("dead.lock", s.path("link.lock")).unwrap();
    nix::unistd::mkfifo(&s.path("fifo.lock"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    fs::create_dir(s.path("plain")).unwrap();
    fs::write(s.path("notes.1"), "rotated log\n").unwrap();
    holders.push(Command::new("true").spawn().unwrap());
    holders
}

/// The JSON objects of `--list --json`, by path (lossy).
fn objects(s: &Scratch, extra: &[&str]) -> BTreeMap<String, Value> {
    let dir = s.dir.path().to_str().unwrap();
    let mut args = vec!["--list", "--json"];
    args.extend(extra);
    args.push(dir);
    let out = run(s, "dotlock", &args, 0);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let lock = v["lock"].as_str().unwrap();
            let name = lock.rsplit('/').next().unwrap().to_string();
            (name, v)
        })
        .collect()
}

fn kill_all(holders: Vec<Child>) {
    for mut h in holders {
        let _ = h.kill();
        let _ = h.wait();
    }
}

#[test]
fn every_kind_is_listed_as_what_it_is() {
    let s = Scratch::new();
    let holders = populate(&s);
    let found = objects(&s, &[]);
    let want: &[(&str, &str, &str)] = &[
        ("held.lock", "dot-lock", "held"),
        ("held.lock.break", "break lock", "stale"),
        ("dead.lock", "dot-lock", "stale"),
        ("job.lock.1", "slot", "held"),
        ("job.lock.2", "slot", "stale"),
        ("cache.lock", "dot-lock", "stale"),
        ("cache.lock.r0123456789ab", "share", "stale"),
        ("cache.lock.wcdef01234567", "want", "stale"),
        ("cache.lock.gate", "gate", "stale"),
        ("legacy.lock", "dot-lock", "held"),
        ("aged.lock", "dot-lock", "stale"),
        ("L.d", "lock directory", "held"),
        ("D", "lock directory", "stale"),
        (".lk0000412345678.elsewhere", "debris", "stale"),
        (".nfs000000000001", "debris", "open"),
        ("data.lock", "dot-lock", "stale"),
        ("we\nird.lock", "dot-lock", "stale"),
        ("\u{fffd}.lock", "dot-lock", "stale"),
    ];
    for (name, kind, state) in want {
        let v = found
            .get(*name)
            .unwrap_or_else(|| panic!("{name:?} not listed: {found:#?}"));
        assert_eq!(
            (v["kind"].as_str(), v["state"].as_str()),
            (Some(*kind), Some(*state)),
            "{name:?}: {v}"
        );
    }
    assert_eq!(found["job.lock.1"]["slot"], 1);
    let bytes = found["\u{fffd}.lock"]["lock_bytes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(bytes[bytes.len() - 6], Value::from(0xff), "{bytes:?}");
    for no in ["joe", "link.lock", "fifo.lock", "plain", "notes.1"] {
        assert!(!found.contains_key(no), "{no} listed: {}", found[no]);
    }
    assert_eq!(found.len(), want.len(), "{:#?}", found.keys());
    // Text: one line each, members under their lock.
    let dir = s.dir.path().to_str().unwrap();
    let text = String::from_utf8(run(&s, "lockdir", &["--list", dir], 0).stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    assert!(at("/cache.lock:") < at("/cache.lock.gate:"));
    assert!(
        lines[at("/cache.lock.gate:")].starts_with("  gate"),
        "{text}"
    );
    assert!(
        lines[at("/held.lock:")].starts_with("dot-lock       held  "),
        "{text}"
    );
    assert!(lines[at("/held.lock:")].contains("held by pid "), "{text}");
    kill_all(holders);
}

#[test]
fn stale_and_clean_remove_exactly_the_stale_locks_and_debris_that_are_ours() {
    let s = Scratch::new();
    let holders = populate(&s);
    let stale = objects(&s, &["--stale"]);
    for live in ["held.lock", "job.lock.1", "legacy.lock", "L.d"] {
        assert!(!stale.contains_key(live), "{live} shown with --stale");
    }
    assert!(stale.contains_key("dead.lock") && stale.contains_key(".nfs000000000001"));
    let dir = s.dir.path().to_str().unwrap();
    let out = run(&s, "filelock", &["--list", "--stale", "--clean", dir], 0);
    let said = String::from_utf8_lossy(&out.stdout);
    let removed = [
        "dead.lock",
        "job.lock.2",
        "held.lock.break",
        "cache.lock",
        "cache.lock.r0123456789ab",
        "cache.lock.wcdef01234567",
        "cache.lock.gate",
        "aged.lock",
        "D",
        ".lk0000412345678.elsewhere",
        "we\nird.lock",
    ];
    for name in removed {
        assert!(!s.path(name).exists(), "{name:?} left: {said}");
        assert!(
            said.contains(&format!("removed {}", s.path(name).display())),
            "{name:?}: {said}"
        );
    }
    assert!(!s.path(std::ffi::OsStr::from_bytes(b"\xff.lock")).exists());
    let kept = [
        "held.lock",
        "job.lock.1",
        "legacy.lock",
        "L.d/owner",
        ".nfs000000000001",
        "data.lock",
        "joe",
        "link.lock",
        "fifo.lock",
        "plain",
        "notes.1",
    ];
    for name in kept {
        assert!(
            s.path(name).symlink_metadata().is_ok(),
            "{name} removed: {said}"
        );
    }
    assert_eq!(
        fs::read_to_string(s.path("data.lock")).unwrap(),
        "not a record, somebody's data\n"
    );
    assert!(
        said.contains("data.lock: its content is no lock record"),
        "{said}"
    );
    assert!(
        said.contains(".nfs000000000001: another NFS client has it open"),
        "{said}"
    );
    kill_all(holders);
}

#[test]
fn a_missing_directory_and_bad_combinations() {
    let s = Scratch::new();
    let out = run(&s, "dotlock", &["--list", "nodir"], 2);
    assert_eq!(crate::util::stderr_lines(&out).len(), 1);
    run(&s, "dotlock", &["--list", "-u", "."], 1);
    run(&s, "dotlock", &["--clean", "."], 1);
    run(&s, "dotlock", &["--list", ".", "x"], 1);
    run(&s, "lockdir", &["--json", "D"], 1);
    // An empty directory lists nothing, successfully.
    assert!(run(&s, "dotlock", &["--list", "."], 0).stdout.is_empty());
}
