//! `lockdir`: the trap helper as scripts run it under five shells, proof of
//! death, the grace period of owner-less directories, contention, refusing
//! to release another's lock, and bad input.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Scratch, age, as_nobody, is_root, secs_ago, skip, stderr_lines, wait_until};

pub fn lockdir_bin() -> PathBuf {
    crate::util::bin("lockdir")
}

fn lockdir(s: &Scratch) -> Command {
    let mut cmd = Command::new(lockdir_bin());
    cmd.current_dir(s.dir.path());
    cmd
}

use crate::util::{TRAP_SHELLS as SHELLS, have_shell as have};

/// A script run by `shell` in `s`, with `$LOCKDIR` and `$D` (the lock
/// directory, which may hold any characters) in its environment.
fn script(s: &Scratch, shell: &[&str], dir: &Path, body: &str) -> Command {
    let mut cmd = Command::new(shell[0]);
    cmd.args(&shell[1..])
        .arg(body)
        .current_dir(s.dir.path())
        .env("LOCKDIR", lockdir_bin())
        .env("D", dir)
        .stdin(Stdio::null());
    cmd
}

/// The top of every script: take the lock through the trap helper.
const TAKE: &str = r#"eval "$("$LOCKDIR" --trap -r 0 "$D")" || exit 99
test -d "$D" || exit 98
"#;

/// The script's `sleep` runs in the background and is waited for, so that
/// the shell runs its traps at once when a signal comes.
const WAIT: &str = r#"echo $$ > pid
sleep 30 & echo $! > sleeper
wait $!
"#;

fn kill_sleeper(s: &Scratch) {
    if let Ok(pid) = fs::read_to_string(s.path("sleeper")) {
        let _ = kill(Pid::from_raw(pid.trim().parse().unwrap()), Signal::SIGKILL);
    }
}

fn run_out(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

#[test]
fn trap_helper_in_five_shells() {
    let mut failures = Vec::new();
    for (name, shell) in SHELLS {
        if !have(shell) {
            skip(&format!(
                "{name} is not installed (apt-get install dash busybox mksh zsh)"
            ));
            continue;
        }
        for (case, check) in trap_cases() {
            if let Err(why) = check(shell) {
                failures.push(format!("{name}: {case}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

type Case = fn(&[&str]) -> Result<(), String>;

fn trap_cases() -> Vec<(&'static str, Case)> {
    vec![
        ("held while the script runs, released at its end", |sh| {
            let s = Scratch::new();
            let d = s.path("L.d");
            let body = format!("{TAKE}\"$LOCKDIR\" -c \"$D\" || exit 97\necho done > out\n");
            let out = run_out(&mut script(&s, sh, &d, &body));
            expect_released(&s, &d, &out, Some(0))?;
            (fs::read_to_string(s.path("out")).ok().as_deref() == Some("done\n"))
                .then_some(())
                .ok_or("script did not run to its end".into())
        }),
        (
            "a script's own EXIT trap chains through lockdir_release",
            |sh| {
                let s = Scratch::new();
                let d = s.path("L.d");
                let body =
                    format!("{TAKE}trap 'echo cleaned > cleanup; lockdir_release' EXIT\nexit 4\n");
                let out = run_out(&mut script(&s, sh, &d, &body));
                expect_released(&s, &d, &out, Some(4))?;
                s.path("cleanup")
                    .exists()
                    .then_some(())
                    .ok_or("own cleanup did not run".into())
            },
        ),
        ("released on exit 3", |sh| {
            let s = Scratch::new();
            let d = s.path("L.d");
            let out = run_out(&mut script(&s, sh, &d, &format!("{TAKE}exit 3\n")));
            expect_released(&s, &d, &out, Some(3))
        }),
        ("released when set -e stops the script", |sh| {
            let s = Scratch::new();
            let d = s.path("L.d");
            let body = format!("set -e\n{TAKE}false\necho not reached > out\n");
            let out = run_out(&mut script(&s, sh, &d, &body));
            expect_released(&s, &d, &out, Some(1))?;
            (!s.path("out").exists())
                .then_some(())
                .ok_or("set -e did not stop it".into())
        }),
        ("released on SIGTERM, exit 143", |sh| {
            signalled(sh, Signal::SIGTERM, 143)
        }),
        ("released on SIGINT, exit 130", |sh| {
            signalled(sh, Signal::SIGINT, 130)
        }),
        ("released on SIGHUP, exit 129", |sh| {
            signalled(sh, Signal::SIGHUP, 129)
        }),
        ("a second script is told busy and fails", |sh| {
            let s = Scratch::new();
            let d = s.path("L.d");
            let mut first = script(&s, sh, &d, &format!("{TAKE}{WAIT}"))
                .spawn()
                .unwrap();
            wait_until("the first script", Duration::from_secs(10), || {
                s.path("sleeper").exists()
            });
            let second = run_out(&mut script(
                &s,
                sh,
                &d,
                &format!("{TAKE}echo ran > second\n"),
            ));
            let said = String::from_utf8_lossy(&second.stderr).to_string();
            send(&first, Signal::SIGTERM);
            let _ = first.wait();
            kill_sleeper(&s);
            if second.status.code() != Some(99) || s.path("second").exists() {
                return Err(format!(
                    "second script: {:?}, stderr {said:?}",
                    second.status
                ));
            }
            if !said.contains("busy: held by pid") {
                return Err(format!("holder not named: {said:?}"));
            }
            (!d.exists())
                .then_some(())
                .ok_or("lock left after the first script".into())
        }),
        (
            "a path with a space, a quote, $(...), a backslash and a newline",
            |sh| {
                let s = Scratch::new();
                let d = s.path("it's a $(touch pwned) \\ dir\nL");
                let body = format!("{TAKE}ls -d \"$D\" > /dev/null || exit 96\nexit 0\n");
                let out = run_out(&mut script(&s, sh, &d, &body));
                expect_released(&s, &d, &out, Some(0))?;
                (!s.path("pwned").exists())
                    .then_some(())
                    .ok_or("the path was executed".into())
            },
        ),
    ]
}

fn send(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

fn signalled(sh: &[&str], sig: Signal, want: i32) -> Result<(), String> {
    let s = Scratch::new();
    let d = s.path("L.d");
    let mut child = script(&s, sh, &d, &format!("{TAKE}{WAIT}echo not reached > out\n"))
        .spawn()
        .unwrap();
    wait_until("the script to start", Duration::from_secs(10), || {
        s.path("sleeper").exists()
    });
    let held = d.is_dir();
    send(&child, sig);
    let status = child.wait().unwrap();
    kill_sleeper(&s);
    if !held {
        return Err("lock not held while the script runs".into());
    }
    if status.code() != Some(want) {
        return Err(format!("status {status:?}, want {want}"));
    }
    if d.exists() || s.path("out").exists() {
        return Err(format!("lock left or script went on: {:?}", s.listing()));
    }
    Ok(())
}

fn expect_released(s: &Scratch, d: &Path, out: &Output, code: Option<i32>) -> Result<(), String> {
    if out.status.code() != code {
        return Err(format!(
            "status {:?}, want {code:?}; stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if d.exists() {
        return Err("lock not released".into());
    }
    let stray: Vec<String> = s
        .listing()
        .into_iter()
        .filter(|n| n.starts_with(".lk") || n.contains(".break"))
        .collect();
    stray
        .is_empty()
        .then_some(())
        .ok_or(format!("left behind: {stray:?}"))
}

#[test]
fn sigkilled_holder_script_is_taken_over_at_once() {
    // Without a keeper (it would release the lock itself, see keepers.rs):
    // the directory stays, and the next lockdir proves its holder dead.
    let s = Scratch::new();
    let d = s.path("L.d");
    let take = TAKE.replace("--trap -r 0", "--trap --no-keeper -r 0");
    let mut holder = script(&s, &["sh", "-c"], &d, &format!("{take}{WAIT}"))
        .spawn()
        .unwrap();
    wait_until("the holder", Duration::from_secs(10), || {
        s.path("sleeper").exists()
    });
    send(&holder, Signal::SIGKILL);
    holder.wait().unwrap();
    kill_sleeper(&s);
    assert!(d.is_dir(), "SIGKILL cannot clean up");
    let start = Instant::now();
    s.expect(lockdir(&s).args(["-r", "0", "L.d"]), 0);
    assert!(start.elapsed() < Duration::from_secs(3));
    let owner = fs::read_to_string(d.join("owner")).unwrap();
    let holder_pid = fs::read_to_string(s.path("pid")).unwrap();
    assert_ne!(owner.lines().next(), Some(holder_pid.trim()));
}

#[test]
fn ownerless_directory_is_reclaimed_only_after_the_grace_period() {
    let s = Scratch::new();
    fs::create_dir(s.path("L.d")).unwrap();
    age(&s.path("L.d"), 5);
    let out = s.expect(lockdir(&s).args(["-r", "0", "L.d"]), 4);
    assert!(
        stderr_lines(&out)[0].contains("busy: held by an unknown process"),
        "{out:?}"
    );
    assert!(!s.path("L.d/owner").exists());
    age(&s.path("L.d"), 11);
    s.expect(lockdir(&s).args(["-r", "0", "L.d"]), 0);
    assert!(s.path("L.d/owner").exists());
    // --grace changes it.
    let s = Scratch::new();
    fs::create_dir(s.path("L.d")).unwrap();
    age(&s.path("L.d"), 5);
    s.expect(lockdir(&s).args(["-r", "0", "--grace", "3", "L.d"]), 0);
}

#[test]
fn eight_processes_hundred_cycles_exact_count() {
    const WORKER: &str = r#"
i=0
while [ $i -lt 100 ]; do
  "$LOCKDIR" -r -1 -i 0.005 L.d || { echo "lock failed: $?" >> errors; exit 1; }
  mkdir inside 2>/dev/null || echo "overlap in cycle $i of $$" >> errors
  n=$(cat counter)
  sleep 0.001
  echo $((n + 1)) > counter
  rmdir inside
  "$LOCKDIR" -u L.d || { echo "unlock failed: $?" >> errors; exit 1; }
  i=$((i + 1))
done
"#;
    let s = Scratch::new();
    fs::write(s.path("counter"), "0\n").unwrap();
    let workers: Vec<Child> = (0..8)
        .map(|_| {
            Command::new("sh")
                .args(["-c", WORKER])
                .current_dir(s.dir.path())
                .env("LOCKDIR", lockdir_bin())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in workers {
        assert!(
            w.wait().unwrap().success(),
            "{:?}",
            fs::read_to_string(s.path("errors"))
        );
    }
    assert_eq!(fs::read_to_string(s.path("errors")).ok(), None);
    assert_eq!(fs::read_to_string(s.path("counter")).unwrap().trim(), "800");
    assert_eq!(s.listing(), ["counter"]);
}

#[test]
fn unlock_refuses_another_live_holder_and_removes_nothing() {
    let s = Scratch::new();
    let mut live = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = live.id().to_string();
    // spawn() returns once exec has begun; the kernel renames the task a
    // moment later, and the record names whatever the task is called then.
    wait_until(
        "the child to be called sleep",
        Duration::from_secs(5),
        || fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n"),
    );
    s.expect(lockdir(&s).args(["--pid", &pid, "L.d"]), 0);
    let owner = fs::read(s.path("L.d/owner")).unwrap();
    let out = s.expect(lockdir(&s).args(["-u", "L.d"]), 1);
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("held by pid {pid} (sleep)")) && lines[0].contains("--force"),
        "{lines:?}"
    );
    assert_eq!(fs::read(s.path("L.d/owner")).unwrap(), owner);
    // Its own pid may release it; --force anyone.
    s.expect(lockdir(&s).args(["-u", "--pid", &pid, "L.d"]), 0);
    s.expect(lockdir(&s).args(["--pid", &pid, "L.d"]), 0);
    s.expect(lockdir(&s).args(["-u", "--force", "L.d"]), 0);
    assert!(s.listing().is_empty());
    // Once its owner is dead, anyone may release it.
    s.expect(lockdir(&s).args(["--pid", &pid, "L.d"]), 0);
    live.kill().unwrap();
    live.wait().unwrap();
    s.expect(lockdir(&s).args(["-u", "L.d"]), 0);
    assert!(s.listing().is_empty());
}

#[test]
fn unlock_from_a_subshell_of_the_holder() {
    let s = Scratch::new();
    let body = r#""$LOCKDIR" L.d || exit 1; ( "$LOCKDIR" -u L.d ) || exit 2; test ! -e L.d"#;
    let out = Command::new("sh")
        .args(["-c", body])
        .current_dir(s.dir.path())
        .env("LOCKDIR", lockdir_bin())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn command_mode_runs_under_the_lock() {
    let s = Scratch::new();
    fs::create_dir(s.path("work")).unwrap();
    s.expect(
        lockdir(&s).args(["L.d", "sh", "-c", "test -f L.d/owner && exit 5"]),
        5,
    );
    assert_eq!(s.listing(), ["work/"], "the lock is gone");
    // What a command puts inside the lock directory makes it no lock: it
    // is left, with a line that says so, and the command's status passed.
    let out = s.expect(
        lockdir(&s).args(["L.d", "sh", "-c", "echo data > L.d/tmp; exit 3"]),
        3,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a lock directory, left alone"),
        "{out:?}"
    );
    assert_eq!(fs::read(s.path("L.d/tmp")).unwrap(), b"data\n");
    fs::remove_dir_all(s.path("L.d")).unwrap();
    let out = lockdir(&s)
        .args(["L.d", "sh", "-c", "kill -TERM $$"])
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(Signal::SIGTERM as i32));
    assert_eq!(s.listing(), ["work/"]);
}

#[test]
fn bad_input() {
    let s = Scratch::new();
    let one_line = |args: &[&str], code: i32, mentions: &str| {
        let mut cmd = lockdir(&s);
        cmd.args(args);
        let out = s.expect(&mut cmd, code);
        let lines = stderr_lines(&out);
        assert!(
            lines.len() == 1 && lines[0].starts_with("lockdir: ") && lines[0].contains(mentions),
            "{args:?}: {lines:?}"
        );
    };
    one_line(&["nodir/L.d"], 2, "nodir: no such directory");
    fs::write(s.path("file"), "data").unwrap();
    one_line(
        &["file"],
        5,
        "file: is not a directory, not a lock directory",
    );
    one_line(&["-u", "file"], 5, "not a lock directory");
    one_line(&["file/L.d"], 2, "file: not a directory");
    std::os::unix::fs::symlink("file", s.path("link")).unwrap();
    one_line(&["link"], 5, "link: is a symbolic link");
    one_line(&["-u", "link"], 5, "symbolic link");
    one_line(&[&"n".repeat(256)], 1, "name too long");
    one_line(&["-r", "x", "L.d"], 5, "-r x");
    one_line(&["--grace", "soon", "L.d"], 5, "--grace soon");
    one_line(&["-z", "L.d"], 1, "'-z'");
    one_line(&[], 1, "no lock directory given");
    one_line(&["--force", "L.d"], 1, "--force goes with -u");
    assert_eq!(fs::read(s.path("file")).unwrap(), b"data");
    assert_eq!(fs::read_link(s.path("link")).unwrap(), Path::new("file"));
    assert_eq!(s.listing(), ["file", "link"]);
    if !is_root() {
        return skip("acting as nobody needs root");
    }
    fs::create_dir(s.path("ro")).unwrap();
    fs::set_permissions(s.path("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = lockdir(&s);
    let out = s.expect(as_nobody(cmd.arg("ro/L.d")), 2);
    assert_eq!(
        stderr_lines(&out),
        ["lockdir: ro/L.d: cannot create a file in the lock's directory: Permission denied"]
    );
}

#[test]
fn touch_refreshes_the_owner_else_the_directory_and_nothing_that_is_no_lock() {
    let s = Scratch::new();
    // Held (for this test's process): the owner file is what ages.
    s.expect(
        lockdir(&s).args(["--pid", &std::process::id().to_string(), "D"]),
        0,
    );
    age(&s.path("D/owner"), 200);
    assert!(secs_ago(&s.path("D/owner")) >= 199);
    s.expect(lockdir(&s).args(["-t", "D"]), 0);
    assert!(secs_ago(&s.path("D/owner")) < 5, "the owner was touched");
    // Without an owner (a legacy mkdir lock): the directory.
    fs::create_dir(s.path("M")).unwrap();
    age(&s.path("M"), 200);
    s.expect(lockdir(&s).args(["-t", "M"]), 0);
    assert!(secs_ago(&s.path("M")) < 5, "the directory was touched");
    // None there: 1, and nothing made.
    s.expect(lockdir(&s).args(["-t", "N"]), 1);
    assert!(!s.path("N").exists());
    // Not a lock directory: refused in one line (an action that failed,
    // 1, as dotlock -t says it), left as it was.
    fs::create_dir(s.path("X")).unwrap();
    fs::write(s.path("X/data"), "keep").unwrap();
    age(&s.path("X/data"), 200);
    age(&s.path("X"), 200);
    let out = s.expect(lockdir(&s).args(["-t", "X"]), 1);
    assert!(secs_ago(&s.path("X/data")) >= 199 && secs_ago(&s.path("X")) >= 199);
    assert_eq!(stderr_lines(&out).len(), 1, "{out:?}");
    assert!(
        stderr_lines(&out)[0].contains("not a lock directory"),
        "{out:?}"
    );
    fs::write(s.path("F"), "").unwrap();
    let out = s.expect(lockdir(&s).args(["-t", "F"]), 1);
    assert_eq!(stderr_lines(&out).len(), 1, "{out:?}");
    // -t takes a directory and nothing else: a usage error.
    for args in [
        &["-t", "D", "true"][..],
        &["-t", "-u", "D"],
        &["-t", "-l", "D"],
    ] {
        let out = s.expect(lockdir(&s).args(args), 1);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("-t"),
            "{args:?}: {out:?}"
        );
    }
    assert!(s.path("D/owner").exists(), "the lock is still there");
}
