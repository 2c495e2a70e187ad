//! Fencing tokens (`--fence`): every holder's token is larger than every
//! earlier holder's — over concurrent processes, after the counter is
//! deleted, with garbage in its place, and for a holder paused at each
//! step of its claim while another machine breaks its lock and takes it.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::machines::Machine;
use crate::util::{Scratch, bin, has_seams, paused_at, wait_with_timeout};

/// `program --fence ARGS` in `s`, its stdout (the token) on success.
fn fenced(s: &Scratch, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin(program))
        .arg("--fence")
        .args(args)
        .current_dir(s.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The token printed by a `--fence` without a command.
fn token(s: &Scratch, program: &str, lock: &str) -> u64 {
    let out = fenced(s, program, &[lock]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn release(s: &Scratch, program: &str, lock: &str) {
    let out = Command::new(bin(program))
        .args(["-u", lock])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn strictly_increasing(tokens: &[u64]) -> bool {
    tokens.windows(2).all(|w| w[0] < w[1])
}

/// The README's `fenced_write` function, as written there.
fn fenced_write_recipe() -> String {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("fenced_write() {")
        .expect("the recipe in README.md");
    let end = start + readme[start..].find("\n}\n").unwrap() + 3;
    readme[start..end].to_string()
}

#[test]
fn four_processes_of_a_hundred_holders_see_strictly_increasing_tokens() {
    let s = Scratch::new();
    // Each holder appends its token to one log, under the lock: the log's
    // order is the order in which they held it.
    let script = r#"i=0; while [ $i -lt 100 ]; do
        "$DOTLOCK" --fence -r -1 L sh -c 'echo "$DOTLOCK_TOKEN" >> log' || exit 1
        i=$((i + 1))
    done"#;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            Command::new("sh")
                .args(["-c", script])
                .env("DOTLOCK", bin("dotlock"))
                .current_dir(s.dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in workers {
        assert!(wait_with_timeout(w, Duration::from_secs(240)).success());
    }
    let tokens: Vec<u64> = fs::read_to_string(s.path("log"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(tokens.len(), 400);
    assert!(strictly_increasing(&tokens), "{tokens:?}");
    // One token file is left: the highest.
    let left: Vec<_> = fs::read_dir(s.path("L.fence")).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn every_kind_of_lock_gives_and_records_its_token() {
    let s = Scratch::new();
    // A command gets it as $DOTLOCK_TOKEN, and the record names it.
    for (program, args) in [
        (
            "dotlock",
            &["L", "sh", "-c", "echo $DOTLOCK_TOKEN; cat L"][..],
        ),
        (
            "lockdir",
            &["D", "sh", "-c", "echo $DOTLOCK_TOKEN; cat D/owner"],
        ),
        (
            "filelock",
            &["F", "--", "sh", "-c", "echo $DOTLOCK_TOKEN; cat F"],
        ),
    ] {
        let out = fenced(&s, program, args);
        assert!(out.status.success(), "{program}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let token = text.lines().next().unwrap();
        assert!(token.parse::<u64>().is_ok(), "{program}: {text}");
        assert!(
            text.contains(&format!("\ntoken={token}\n")),
            "{program}: {text}"
        );
    }
    // Slots: each its own counter; "SLOT TOKEN" printed, both exported.
    let out = fenced(&s, "dotlock", &["--slots", "2", "S"]);
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (slot, first) = line.split_once(' ').unwrap();
    assert_eq!(slot, "1", "{line}");
    let out = fenced(
        &s,
        "dotlock",
        &[
            "--slots",
            "2",
            "S",
            "sh",
            "-c",
            "echo $DOTLOCK_SLOT $DOTLOCK_TOKEN",
        ],
    );
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (slot, second) = line.split_once(' ').unwrap();
    assert_eq!(slot, "2", "{line}");
    assert!(s.path("S.1.fence").is_dir() && s.path("S.2.fence").is_dir());
    assert_ne!(first, second);
    // --status names it; JSON has "token" (null without --fence).
    let json = |lock: &str| -> Value {
        let out = Command::new(bin("dotlock"))
            .args(["--status", "--json", lock])
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(json("S.1")["token"], first.parse::<u64>().unwrap());
    let plain = Command::new(bin("dotlock"))
        .args(["P", "true"])
        .current_dir(s.dir.path())
        .status()
        .unwrap();
    assert!(plain.success());
    assert!(json("P").get("token").unwrap().is_null());
    // Without --fence, no counter.
    assert!(!s.path("P.fence").exists());
}

#[test]
fn a_trap_shell_gets_its_token() {
    let s = Scratch::new();
    let script = r#"code=$("$LOCKDIR" --trap --fence D) || exit 1
eval "$code" || exit 1
echo "$DOTLOCK_TOKEN"; sh -c 'echo "$DOTLOCK_TOKEN"'; cat D/owner"#;
    let out = Command::new("sh")
        .args(["-c", script])
        .env("LOCKDIR", bin("lockdir"))
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].parse::<u64>().is_ok(), "{text}");
    assert_eq!(lines[0], lines[1], "exported: {text}");
    assert!(text.contains(&format!("\ntoken={}\n", lines[0])), "{text}");
    assert!(!s.path("D").exists(), "released at the shell's exit");
}

#[test]
fn a_deleted_counter_restarts_above_every_earlier_token() {
    let s = Scratch::new();
    let mut seen = vec![token(&s, "dotlock", "L")];
    release(&s, "dotlock", "L");
    // Its files deleted, then the whole counter.
    for f in fs::read_dir(s.path("L.fence")).unwrap() {
        fs::remove_file(f.unwrap().path()).unwrap();
    }
    seen.push(token(&s, "dotlock", "L"));
    release(&s, "dotlock", "L");
    fs::remove_dir_all(s.path("L.fence")).unwrap();
    seen.push(token(&s, "dotlock", "L"));
    release(&s, "dotlock", "L");
    assert!(strictly_increasing(&seen), "{seen:?}");
}

#[test]
fn what_stands_in_the_counters_place_is_never_followed_nor_a_lower_token() {
    let s = Scratch::new();
    let first = token(&s, "dotlock", "L");
    release(&s, "dotlock", "L");
    // In a token's place: garbage, empty and huge files, a symbolic link
    // and a directory, each named by a number above the last token.
    let counter = s.path("L.fence");
    let elsewhere = s.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let mut last = first;
    for plant in ["garbage", "empty", "huge", "symlink", "directory"].iter() {
        let planted = last + 1_000_000;
        let at = counter.join(planted.to_string());
        match *plant {
            "garbage" => fs::write(&at, b"\xff\x00not a number\n").unwrap(),
            "empty" => fs::write(&at, b"").unwrap(),
            "huge" => fs::write(&at, vec![b'9'; 1 << 20]).unwrap(),
            "symlink" => std::os::unix::fs::symlink(&elsewhere, &at).unwrap(),
            _ => fs::create_dir(&at).unwrap(),
        }
        let t = token(&s, "dotlock", "L");
        release(&s, "dotlock", "L");
        assert!(t > planted, "{plant}: {t}");
        last = t;
        // What is not a regular file there is not ours: left alone.
        if matches!(*plant, "symlink" | "directory") {
            assert!(fs::symlink_metadata(&at).is_ok(), "{plant} removed");
        }
    }
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "followed");
    // A number beyond the largest token: a refusal, never a wrap.
    fs::write(counter.join("99999999999999999999999"), "").unwrap();
    let out = fenced(&s, "dotlock", &["L", "true"]);
    assert_eq!(out.status.code(), Some(11), "{out:?}");
    assert!(!s.path("L").exists(), "the lock is released");
    fs::remove_dir_all(&counter).unwrap();
    // In the counter's own place: a file (garbage, empty, huge) or a
    // symbolic link to a directory of tokens: refused, left as it was.
    for plant in ["garbage", "empty", "huge", "symlink"] {
        match plant {
            "garbage" => fs::write(&counter, b"\xff garbage").unwrap(),
            "empty" => fs::write(&counter, b"").unwrap(),
            "huge" => fs::write(&counter, vec![b'7'; 1 << 20]).unwrap(),
            _ => std::os::unix::fs::symlink(&elsewhere, &counter).unwrap(),
        }
        let before = fs::symlink_metadata(&counter).unwrap();
        let out = fenced(&s, "dotlock", &["L", "sh", "-c", "echo ran"]);
        assert_eq!(out.status.code(), Some(11), "{plant}: {out:?}");
        assert!(out.stdout.is_empty(), "{plant}: the command ran");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("dotlock: L: no fencing token: ") && err.lines().count() == 1,
            "{plant}: {err}"
        );
        let after = fs::symlink_metadata(&counter).unwrap();
        assert_eq!(
            (before.len(), before.file_type()),
            (after.len(), after.file_type())
        );
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "followed");
        assert!(!s.path("L").exists(), "{plant}: the lock is released");
        fs::remove_file(&counter).unwrap();
    }
}

#[test]
fn fence_goes_with_taking_a_lock_only() {
    let s = Scratch::new();
    for (program, args) in [
        ("dotlock", &["-u", "L"][..]),
        ("dotlock", &["--status", "L"]),
        ("dotlock", &["--shared", "L", "true"]),
        ("lockdir", &["-c", "D"]),
        ("filelock", &["A", "B", "--", "true"]),
    ] {
        let out = fenced(&s, program, args);
        assert_eq!(out.status.code(), Some(1), "{program} {args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--fence"),
            "{out:?}"
        );
    }
    assert_eq!(s.listing(), Vec::<String>::new());
}

#[test]
fn list_shows_a_counter_with_its_lock_and_clean_keeps_it() {
    let s = Scratch::new();
    let t = token(&s, "dotlock", "job.lock");
    let out = Command::new(bin("dotlock"))
        .args(["--list", "--json", "."])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counter = listed
        .iter()
        .find(|v| v["kind"] == "fence counter")
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(counter["token"], t);
    assert_eq!(counter["state"], "kept");
    release(&s, "dotlock", "job.lock");
    let out = Command::new(bin("dotlock"))
        .args(["--list", "--clean", "."])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(s.path("job.lock.fence").is_dir());
}

/// A holder paused at each step of its claim while another machine
/// breaks its lock (stale by age: 2 s) and takes it with `--fence`: the
/// two never use one token, the paused one never uses a token above its
/// successor's, and where it uses one (recorded before the break), the
/// README's recipe refuses its late write. (With a command, a holder that
/// lost its lock before the command was recorded does not run it at all.)
#[test]
fn a_holder_paused_while_claiming_never_outranks_its_successor() {
    if !has_seams() {
        return;
    }
    let Some(m) = Machine::start("elsewhere", "new") else {
        return;
    };
    let recipe = fenced_write_recipe();
    let path = format!(
        "{}:{}",
        bin("dotlock").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for point in ["FENCE", "FENCE_LISTED", "FENCE_CLAIMED", "FENCE_RECORDED"] {
        let s = Scratch::new();
        fs::write(s.path("recipe.sh"), &recipe).unwrap();
        // Each takes the lock for the shell, gets the token printed, and
        // writes with it through the recipe.
        let write = |who: &str, wait: &str| {
            format!(
                "t=$(dotlock --fence --stale-after 2 {wait} L) || exit $?; echo $t > used.{who}; . ./recipe.sh; echo {who} | fenced_write $t out"
            )
        };
        let mut a = Command::new("sh");
        a.args(["-c", &write("a", "-r 0")])
            .current_dir(s.dir.path())
            .env("PATH", &path);
        let (a, gate) = paused_at(&s, a, point, "gate");
        let b = m
            .shell(s.dir.path(), &write("b", "-r -1"))
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(b.status.success(), "{point}: B: {b:?}");
        fs::write(&gate, "").unwrap();
        let a = a.wait_with_output().unwrap();
        let read = |who: &str| -> Option<u64> {
            fs::read_to_string(s.path(format!("used.{who}")))
                .ok()
                .map(|t| t.trim().parse().unwrap())
        };
        let (used_a, used_b) = (read("a"), read("b").expect("B used its token"));
        let written = fs::read_to_string(s.path("out")).unwrap();
        assert_eq!(written, "b\n", "{point}: only B's write: {a:?}");
        match point {
            // Claimed, but not recorded while the lock was A's: never used.
            "FENCE" | "FENCE_LISTED" | "FENCE_CLAIMED" => {
                assert_eq!(a.status.code(), Some(11), "{point}: {a:?}");
                assert_eq!(used_a, None, "{point}");
            }
            // Recorded before the break: used, below B's, and refused.
            _ => {
                let used_a = used_a.expect("A ran");
                assert!(used_a < used_b, "{point}: {used_a} >= {used_b}");
                assert_eq!(a.status.code(), Some(1), "{point}: {a:?}");
                assert!(
                    String::from_utf8_lossy(&a.stderr).contains("refused: token"),
                    "{point}: {a:?}"
                );
            }
        }
        assert_ne!(used_a, Some(used_b), "{point}");
    }
}
