//! Who holds it, for how long: `--status --json` of dotlock, lockdir and
//! filelock, and the live wait line on a terminal (never on a pipe).

use std::fs;
use std::process::Command;
use std::time::Duration;

use lockutils::cli::status::KEYS;
use lockutils::cli::testing as host;
use serde_json::Value;

use crate::util::{Scratch, holding, wait_until};

fn lockdir_bin() -> std::path::PathBuf {
    crate::util::bin("lockdir")
}

fn filelock_bin() -> std::path::PathBuf {
    crate::util::bin("filelock")
}

/// Run `cmd` (a `--status --json`) and parse each line of its output.
fn objects(s: &Scratch, cmd: &mut Command, code: i32) -> Vec<Value> {
    let out = s.expect(cmd, code);
    String::from_utf8(out.stdout)
        .expect("JSON is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

fn one(s: &Scratch, cmd: &mut Command, code: i32) -> Value {
    let mut all = objects(s, cmd, code);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn assert_keys(v: &Value) {
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, KEYS, "the documented keys, in order");
}

#[test]
fn json_of_a_free_a_held_a_stale_and_a_garbage_lock() {
    let s = Scratch::new();
    let status = |s: &Scratch| {
        let mut c = s.dotlock();
        c.args(["--status", "--json", "L"]);
        c
    };
    let free = one(&s, &mut status(&s), 1);
    assert_keys(&free);
    assert_eq!(free["lock"], "L");
    assert_eq!(free["state"], "free");
    assert!(free["pid"].is_null() && free["held_for_s"].is_null());

    // Held by a command: its name and arguments, alive.
    let (mut holder, _) = holding(&s, s.dotlock(), "L");
    let held = one(&s, &mut status(&s), 0);
    assert_keys(&held);
    assert_eq!(held["state"], "held");
    assert_eq!(held["pid"], holder.id());
    assert_eq!(held["host"], host::hostname());
    assert_eq!(held["command"], "sh");
    assert_eq!(
        held["args"],
        serde_json::json!(["-c", "echo $$ > child.pid; exec sleep 600"])
    );
    assert_eq!(held["alive"], true);
    assert!(held["reason"].is_null());
    assert!(held["slot"].is_null());
    assert!(held["held_for_s"].as_f64().unwrap() < 60.0);
    holder.kill().unwrap();
    holder.wait().unwrap();

    // Its holder killed with SIGKILL: stale, proven dead. The command
    // (sleep) still runs until killed too.
    let child: i32 = fs::read_to_string(s.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the command gone", Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{child}")).exists()
            || fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| s.contains(") Z"))
    });
    let stale = one(&s, &mut status(&s), 9);
    assert_keys(&stale);
    assert_eq!(stale["state"], "stale");
    assert_eq!(stale["alive"], false);
    assert!(
        stale["reason"].as_str().unwrap().contains("is gone"),
        "{stale}"
    );

    // Garbage: held (nothing proves it dead), nothing known of it.
    fs::write(s.path("L"), b"\x00\xff garbage").unwrap();
    let garbage = one(&s, &mut status(&s), 0);
    assert_keys(&garbage);
    assert_eq!(garbage["state"], "held");
    assert!(garbage["pid"].is_null() && garbage["alive"].is_null());
    assert!(garbage["command"].is_null() && garbage["args"].is_null());
    assert!(garbage["touched_s_ago"].as_f64().is_some());
    assert_eq!(fs::read(s.path("L")).unwrap(), b"\x00\xff garbage");
}

#[test]
fn json_of_slots_lists_each_slot_and_the_status_is_held_if_any_is() {
    let s = Scratch::new();
    let mut holder = s
        .dotlock()
        .args(["--slots", "3", "L", "sleep", "600"])
        .spawn()
        .unwrap();
    wait_until("slot 1 taken", Duration::from_secs(10), || {
        fs::read_to_string(s.path("L.1")).is_ok_and(|r| r.contains("child="))
    });
    let all = objects(
        &s,
        s.dotlock()
            .args(["--status", "--json", "--slots", "3", "L"]),
        0,
    );
    let states: Vec<(&str, u64)> = all
        .iter()
        .map(|v| (v["state"].as_str().unwrap(), v["slot"].as_u64().unwrap()))
        .collect();
    assert_eq!(states, [("held", 1), ("free", 2), ("free", 3)]);
    assert_eq!(all[0]["lock"], "L.1");
    // The holder and its command: no `sleep 600` outlives the test.
    let child = lockutils::Record::parse(&fs::read(s.path("L.1")).unwrap()).child;
    holder.kill().unwrap();
    holder.wait().unwrap();
    if let Some(child) = child {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    // Only free and stale slots: 9.
    fs::write(s.path("L.2"), "0\n").unwrap();
    crate::util::age(&s.path("L.2"), 400);
    fs::remove_file(s.path("L.1")).unwrap();
    let all = objects(
        &s,
        s.dotlock()
            .args(["--status", "--json", "--slots", "3", "L"]),
        9,
    );
    assert_eq!(all[1]["state"], "stale");
    assert!(
        all[1]["reason"]
            .as_str()
            .unwrap()
            .contains("past the stale age")
    );
    // None held: 1.
    fs::remove_file(s.path("L.2")).unwrap();
    objects(
        &s,
        s.dotlock()
            .args(["--status", "--json", "--slots", "3", "L"]),
        1,
    );
}

/// A lock held 5 s by a command that touches it every second
/// (`--stale-after 3`): held_for_s counts from the record's created=,
/// not from the last touch.
#[test]
fn held_for_counts_across_keep_alive_touches() {
    let s = Scratch::new();
    let mut dotlock = s.dotlock();
    dotlock.args(["--stale-after", "3"]);
    let (mut holder, _) = holding(&s, dotlock, "L");
    std::thread::sleep(Duration::from_secs(5));
    let v = one(&s, s.dotlock().args(["--status", "--json", "L"]), 0);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let held = v["held_for_s"].as_f64().unwrap();
    let touched = v["touched_s_ago"].as_f64().unwrap();
    assert!(held >= 4.5, "held for {held} s: {v}");
    assert!(touched < 2.5, "touched {touched} s ago: {v}");
}

#[test]
fn lockdir_and_filelock_speak_the_same_json() {
    let s = Scratch::new();
    let mut lockdir = Command::new(lockdir_bin());
    lockdir.current_dir(s.dir.path());
    let (mut holder, _) = holding(&s, lockdir, "D");
    let mut cmd = Command::new(lockdir_bin());
    cmd.current_dir(s.dir.path())
        .args(["--status", "--json", "D"]);
    let v = one(&s, &mut cmd, 0);
    assert_keys(&v);
    assert_eq!(
        (v["state"].as_str(), v["alive"].as_bool()),
        (Some("held"), Some(true))
    );
    assert_eq!(v["command"], "sh");
    holder.kill().unwrap();
    holder.wait().unwrap();

    fs::write(s.path("A"), "0\n").unwrap();
    let mut cmd = Command::new(filelock_bin());
    cmd.current_dir(s.dir.path())
        .args(["--status", "--json", "A", "B"]);
    let all = objects(&s, &mut cmd, 0);
    let states: Vec<&str> = all.iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["held", "free"]);
    assert_keys(&all[0]);
    assert!(all[0]["slot"].is_null());
}

#[test]
fn a_non_utf8_lock_path_round_trips_through_lock_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new();
    let name: &[u8] = b"caf\xe9.lock";
    fs::write(s.path(crate::util::os(name)), "0\n").unwrap();
    let mut cmd = s.dotlock();
    cmd.args(["--status", "--json"]).arg(crate::util::os(name));
    let v = one(&s, &mut cmd, 0);
    assert_eq!(v["lock"], "caf\u{fffd}.lock");
    let bytes: Vec<u8> = v["lock_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
        .collect();
    assert_eq!(bytes, name);
    assert_eq!(
        std::ffi::OsStr::from_bytes(&bytes),
        crate::util::os(name),
        "the path comes back byte for byte"
    );
}

/// A script run as `sh backup.sh` shows as such, not as `sh`.
#[test]
fn the_record_names_the_calling_script_with_its_arguments() {
    let s = Scratch::new();
    fs::write(s.path("backup.sh"), "\"$DOTLOCK\" L\n").unwrap();
    let mut sh = Command::new("sh");
    sh.current_dir(s.dir.path())
        .env("DOTLOCK", crate::util::dotlock_bin())
        .args(["backup.sh", "--full", "two words"]);
    s.expect(&mut sh, 0);
    let v = one(&s, s.dotlock().args(["--status", "--json", "L"]), 0);
    assert_eq!(v["command"], "sh");
    assert_eq!(
        v["args"],
        serde_json::json!(["backup.sh", "--full", "two words"])
    );
    let out = s.expect(s.dotlock().args(["--status", "L"]), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\ncommand: sh backup.sh --full two\\ words\n"),
        "{text}"
    );
}

/// `script(1)` runs `command` under a pseudo-terminal; its output is what
/// the terminal was sent.
fn under_pty(s: &Scratch, command: &str) -> String {
    let mut script = Command::new("script");
    script
        .current_dir(s.dir.path())
        .env("DOTLOCK", crate::util::dotlock_bin())
        .args(["-qfec", command, "/dev/null"]);
    let out = script.output().expect("script(1) (util-linux) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A live holder (never stale) of `L` in `s`, for as long as the result lives.
fn live_holder(s: &Scratch) -> crate::util::Holder {
    let (holder, _) = holding(s, s.dotlock(), "L");
    holder
}

#[test]
fn on_a_terminal_the_wait_line_is_drawn_in_place_and_cleared() {
    let s = Scratch::new();
    let mut holder = live_holder(&s);
    let tty = under_pty(
        &s,
        r#"stty cols 200; "$DOTLOCK" -r 1 -i 1.5 L true; echo "rc=$?""#,
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let clear = "\r\x1b[K";
    let line = format!("{clear}dotlock: held by pid {} (", holder.id());
    assert!(tty.contains(&line), "{tty:?}");
    assert!(
        tty.contains("; waiting for L, attempt 1 of 2 failed, next in 2s"),
        "{tty:?}"
    );
    // Redrawn as the next attempt comes closer.
    assert!(
        tty.contains(", attempt 1 of 2 failed, next in 1s"),
        "{tty:?}"
    );
    // Cleared when the wait ends: after the last drawing, the line is
    // wiped before the message that the wait gave up.
    let last = tty.rfind("waiting for L").unwrap();
    let after = &tty[last..];
    let cleared = after.find(clear).expect("the line is cleared");
    assert!(
        after[cleared + clear.len()..].starts_with("dotlock: L: busy: held by pid"),
        "{after:?}"
    );
    assert!(tty.contains("rc=4"), "{tty:?}");
}

/// At 80 columns, with a long lock path, the line is cut at the edge and
/// still names the holder: the holder comes first, the count last.
#[test]
fn at_80_columns_the_wait_line_keeps_the_holder() {
    let s = Scratch::new();
    let deep = "a-directory-name-long-enough-to-fill-the-line/and-then-some";
    fs::create_dir_all(s.path(deep)).unwrap();
    let lock = format!("{deep}/L");
    let (mut holder, _) = holding(&s, s.dotlock(), &lock);
    let tty = under_pty(
        &s,
        &format!(r#"stty cols 80; "$DOTLOCK" -r 1 -i 1.2 {lock} true; echo "rc=$?""#),
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let drawn: Vec<&str> = tty
        .split("\r\x1b[K")
        .filter(|l| l.contains("waiting for"))
        .collect();
    assert!(!drawn.is_empty(), "{tty:?}");
    for line in drawn {
        let line = line.lines().next().unwrap();
        assert!(line.chars().count() <= 79, "{line:?}");
        assert!(
            line.starts_with(&format!("dotlock: held by pid {} (", holder.id())),
            "{line:?}"
        );
    }
    assert!(tty.contains("rc=4"), "{tty:?}");
}

#[test]
fn the_wait_line_never_reaches_a_pipe_and_q_silences_it() {
    let s = Scratch::new();
    let mut holder = live_holder(&s);
    let piped = s.expect(s.dotlock().args(["-r", "1", "-i", "1.2", "L"]), 4);
    let quiet = under_pty(&s, r#""$DOTLOCK" -q -r 1 -i 1.2 L; echo "rc=$?""#);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert!(!err.contains("attempt"), "{err:?}");
    assert_eq!(
        crate::util::stderr_lines(&piped).len(),
        1,
        "only the line that it gave up: {err:?}"
    );
    assert!(
        !quiet.contains("waiting") && !quiet.contains('\x1b'),
        "{quiet:?}"
    );
    assert!(quiet.contains("rc=4"), "{quiet:?}");
}

/// The one key rule (README, SPEC §12): the documented keys are in every
/// object, in order; `args_cut`, `readers`, `reader_of` and `lock_bytes`
/// only where they apply. Each kind of object's full key set, pinned.
#[test]
fn every_kind_of_object_has_its_full_key_set() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new();
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let with = |extra: &[&str]| -> Vec<String> {
        KEYS.iter().chain(extra).map(|k| k.to_string()).collect()
    };
    let status = |args: &[&str], code| {
        objects(
            &s,
            s.dotlock().args(["--status", "--json"]).args(args),
            code,
        )
    };

    // Free, for each program.
    assert_eq!(keys(&status(&["L"], 1)[0]), with(&[]), "dotlock, free");
    for (bin, name) in [(lockdir_bin(), "D"), (filelock_bin(), "F")] {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(s.dir.path())
            .args(["--status", "--json", name]);
        assert_eq!(
            keys(&objects(&s, &mut cmd, 1)[0]),
            with(&[]),
            "{bin:?}, free"
        );
    }

    // Held, and a slot.
    let me = Some(std::process::id());
    fs::write(
        s.path("L"),
        lockutils::Record::for_holder(me, None).to_bytes(),
    )
    .unwrap();
    assert_eq!(keys(&status(&["L"], 0)[0]), with(&[]), "held");
    let slots = status(&["--slots", "2", "L"], 1);
    assert_eq!(slots.len(), 2);
    assert!(slots.iter().all(|o| keys(o) == with(&[])), "slots");

    // Arguments cut when the lock was taken.
    let long = vec!["x".repeat(100); 3];
    let cut = lockutils::Record::for_holder(me, Some("sh".into())).with_args(&long);
    fs::write(s.path("C"), cut.to_bytes()).unwrap();
    assert_eq!(keys(&status(&["C"], 0)[0]), with(&["args_cut"]), "args cut");

    // A path that is not UTF-8.
    let raw = std::ffi::OsStr::from_bytes(b"caf\xe9.lock");
    let out = s.expect(s.dotlock().args(["--status", "--json"]).arg(raw), 1);
    let v: Value = serde_json::from_slice(out.stdout.trim_ascii_end()).unwrap();
    assert_eq!(keys(&v), with(&["lock_bytes"]), "non-UTF-8 path");

    // Held by readers: the lock's object, then each reader's.
    let together = lockutils::Record {
        shared: true,
        ..lockutils::Record::for_holder(None, None)
    };
    fs::write(s.path("R"), together.to_bytes()).unwrap();
    fs::write(
        s.path("R.r0123456789ab"),
        lockutils::Record::for_holder(me, None).to_bytes(),
    )
    .unwrap();
    let shared = status(&["R"], 0);
    assert_eq!(shared.len(), 2, "{shared:?}");
    assert_eq!(keys(&shared[0]), with(&["readers"]), "held by readers");
    assert_eq!(keys(&shared[1]), with(&["reader_of"]), "a reader's share");
}
