//! Keepers: a lock held for a shell — `lockdir --trap`, `dotlock -p` and
//! `filelock` without a command — stays valid on every machine exactly as
//! long as the shell lives. Another machine (namespaces, `nfsbed/machine.sh`)
//! never enters while the shell runs, however short the lease, and gets
//! the lock within 2 s of the shell's end or of its `kill -9`. The races
//! of a keeper are each forced with a seam.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::machines::{Machine, here};
use crate::util::bin;
use crate::util::{Scratch, wait_until};

/// How each tool holds its lock for the shell, with `--stale-after S`
/// (`lockdir`: the code `--trap` prints).
fn hold(tool: &str, stale: &str) -> String {
    match tool {
        "lockdir" => {
            format!("lk=$(\"$LOCKDIR\" --trap --stale-after {stale} K) && eval \"$lk\" || exit 9")
        }
        "lockdir-plain" => format!("\"$LOCKDIR\" --stale-after {stale} K || exit 9"),
        "dotlock" => format!("\"$DOTLOCK\" -p --stale-after {stale} K || exit 9"),
        _ => format!("\"$FILELOCK\" --stale-after {stale} K || exit 9"),
    }
}

/// One attempt from this host, with `--stale-after S`.
fn try_here(cwd: &Path, tool: &str, stale: &str) -> bool {
    let args = ["-r", "0", "--no-keeper", "--stale-after", stale, "K"];
    let out = here(cwd, tool, &args).output().unwrap();
    if out.status.success() {
        // Ours now: released by us (the test process holds nothing).
        let mut rel = here(cwd, tool, &["-u", "--force", "K"]);
        if tool == "filelock" {
            rel = here(cwd, tool, &["-u", "K"]);
        }
        let _ = rel.output();
    }
    out.status.success()
}

/// Try from this host every 100 ms until the lock is had; panics if it is
/// had while `holder` runs, or not within `within` of its end.
fn taken_only_after(cwd: &Path, tool: &str, holder: &mut Child, within: Duration) -> Duration {
    let mut ended: Option<Instant> = None;
    loop {
        if ended.is_none() && holder.try_wait().unwrap().is_some() {
            ended = Some(Instant::now());
        }
        let got = try_here(cwd, tool, "3s");
        match (got, ended) {
            (true, None) => {
                // Taken: the holder must have ended just now.
                let end = holder.try_wait().unwrap();
                assert!(
                    end.is_some(),
                    "{tool}: taken while the shell holding it lives"
                );
                return Duration::ZERO;
            }
            (true, Some(t)) => return t.elapsed(),
            (false, Some(t)) if t.elapsed() > within => {
                panic!("{tool}: not taken {within:?} after the shell ended")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn a_shell_held_lock_lives_on_every_machine_exactly_as_long_as_the_shell() {
    let Some(m) = Machine::start("elsewhere", "new") else {
        return;
    };
    for tool in ["lockdir", "dotlock", "filelock"] {
        // Three leases of 3 s, untouched by the shell itself.
        let s = Scratch::new();
        let script = format!("{}; sleep 9", hold(tool, "3s"));
        let mut holder = m.shell(s.dir.path(), &script).spawn().unwrap();
        wait_until("the shell holds", Duration::from_secs(10), || {
            s.path("K").exists()
        });
        let after = taken_only_after(s.dir.path(), tool, &mut holder, Duration::from_secs(2));
        assert!(
            holder.wait().unwrap().success(),
            "{tool}: the script failed"
        );
        eprintln!("{tool}: taken {after:?} after the shell's exit");
    }
}

#[test]
fn a_shell_killed_with_sigkill_frees_its_lock_on_another_machine_within_2_seconds() {
    let Some(m) = Machine::start("elsewhere", "new") else {
        return;
    };
    for tool in ["lockdir", "dotlock", "filelock"] {
        let s = Scratch::new();
        // A 30 s lease: without a keeper, 30 s of waiting.
        let script = format!("echo $$ > shell.pid; {}; exec sleep 100", hold(tool, "30s"));
        let mut holder = m.shell(s.dir.path(), &script).spawn().unwrap();
        wait_until("the shell holds", Duration::from_secs(10), || {
            s.path("K").exists() && s.path("shell.pid").exists()
        });
        let pid = fs::read_to_string(s.path("shell.pid")).unwrap();
        let killed = m
            .shell(s.dir.path(), &format!("kill -KILL {}", pid.trim()))
            .status()
            .unwrap();
        assert!(killed.success());
        let t = Instant::now();
        while !try_here(s.dir.path(), tool, "30s") {
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{tool}: still held 2 s after its shell was killed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = holder.wait();
    }
}

#[test]
fn a_keeper_holds_none_of_the_callers_descriptors() {
    let s = Scratch::new();
    // cat waits for the end of lockdir's output: a keeper holding it would
    // wait for the shell, which waits for cat.
    for script in [
        "\"$LOCKDIR\" -r 0 D | cat; echo done",
        "lk=$(\"$LOCKDIR\" --trap T) && eval \"$lk\" && echo done",
        "\"$DOTLOCK\" -p L | cat; echo done",
        "x=$(\"$FILELOCK\" F); echo done",
    ] {
        let out = crate::util::run_with_timeout(&mut shell(&s, script), Duration::from_secs(10));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n", "{script}");
    }
    // Each shell is gone: its keeper released its lock.
    wait_until("the keepers released", Duration::from_secs(5), || {
        ["D", "T", "L", "F"].iter().all(|n| !s.path(n).exists())
    });
}

/// `sh -c SCRIPT` on this host in `s`, with `$DOTLOCK`, `$LOCKDIR` and
/// `$FILELOCK` naming the programs.
fn shell(s: &Scratch, script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script])
        .current_dir(s.dir.path())
        .env("DOTLOCK", bin("dotlock"))
        .env("LOCKDIR", bin("lockdir"))
        .env("FILELOCK", bin("filelock"))
        .stdin(Stdio::null());
    cmd
}

/// `tool`'s keeper for a shell in `s` holding K, paused at the seam
/// `point` (its gate `gate`); the shell runs `after` once it holds K.
fn paused_keeper(s: &Scratch, tool: &str, stale: &str, point: &str, after: &str) -> Child {
    let gate = s.path("gate");
    let script = format!("{}; {after}", hold(tool, stale));
    let child = shell(s, &script)
        .env(format!("LOCKUTILS_TEST_PAUSE_{point}"), &gate)
        .spawn()
        .unwrap();
    wait_until(point, Duration::from_secs(20), || {
        s.path("gate.reached").exists()
    });
    child
}

/// How `tool` holds for a shell that releases nothing itself (no trap).
fn plain(tool: &str) -> &str {
    if tool == "lockdir" {
        "lockdir-plain"
    } else {
        tool
    }
}

/// The keeper process, by the pid its pause recorded.
fn keeper_pid(s: &Scratch) -> u32 {
    fs::read_to_string(s.path("gate.reached"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn gone(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| st.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(true)
}

#[test]
fn a_holder_that_dies_before_its_keeper_looks_is_caught() {
    for tool in ["lockdir", "dotlock", "filelock"] {
        let s = Scratch::new();
        // The shell ends as soon as the tool returns, before the keeper
        // has looked at it.
        let mut shell = paused_keeper(&s, plain(tool), "300s", "KEEPER_START", "exit 0");
        shell.wait().unwrap();
        let keeper = keeper_pid(&s);
        assert!(s.path("K").exists());
        fs::write(s.path("gate"), "").unwrap();
        wait_until("the keeper released", Duration::from_secs(5), || {
            !s.path("K").exists() && gone(keeper)
        });
    }
}

#[test]
fn a_keeper_never_touches_a_lock_put_at_the_name_since_it_looked() {
    let s = Scratch::new();
    // Touching every 333 ms; paused at its first touch, between its look
    // and the touch.
    let mut shell = paused_keeper(&s, "dotlock", "1s", "IN_TOUCH", "exec sleep 30");
    let keeper = keeper_pid(&s);
    // Meanwhile the lock goes (not by -u, which would stop the keeper) and
    // another takes the name.
    fs::remove_file(s.path("K")).unwrap();
    fs::write(s.path("K"), "1\n").unwrap();
    crate::util::age(&s.path("K"), 100);
    fs::write(s.path("gate"), "").unwrap();
    wait_until("the keeper stopped", Duration::from_secs(5), || {
        gone(keeper)
    });
    let age = fs::metadata(s.path("K")).unwrap().modified().unwrap();
    let age = std::time::SystemTime::now().duration_since(age).unwrap();
    assert!(age >= Duration::from_secs(99), "the other lock was touched");
    assert_eq!(fs::read_to_string(s.path("K")).unwrap(), "1\n");
    let _ = shell.kill();
    let _ = shell.wait();
}

#[test]
fn a_keeper_releasing_for_a_dead_holder_never_removes_a_breakers_new_lock() {
    for tool in ["lockdir", "dotlock"] {
        let s = Scratch::new();
        // The holder dies; its keeper is paused before its release.
        let mut shell = paused_keeper(&s, plain(tool), "300s", "KEEPER_RELEASE", "sleep 0.5");
        shell.wait().unwrap();
        let keeper = keeper_pid(&s);
        // A waiter proves the holder dead and takes the lock, held by a
        // command.
        let mut taker = here(s.dir.path(), tool, &["-r", "5", "K", "sleep", "3"])
            .spawn()
            .unwrap();
        wait_until("the taker holds", Duration::from_secs(10), || {
            let owner = if tool == "lockdir" { "K/owner" } else { "K" };
            fs::read_to_string(s.path(owner)).is_ok_and(|r| r.contains("cmd=sleep"))
        });
        fs::write(s.path("gate"), "").unwrap();
        wait_until("the keeper stopped", Duration::from_secs(5), || {
            gone(keeper)
        });
        assert!(s.path("K").exists(), "{tool}: the taker's lock was removed");
        let done = taker.wait().unwrap();
        assert!(done.success(), "{tool}: the taker lost its lock");
    }
}

#[test]
fn a_holders_pid_reused_before_its_keeper_starts_is_no_holder() {
    // In a pid namespace of its own the next pid can be chosen
    // (ns_last_pid): the holder's pid given to a new process.
    let Some(m) = Machine::start("elsewhere", "new") else {
        return;
    };
    let s = Scratch::new();
    let gate = s.path("gate");
    let script = format!(
        "exec >/dev/null 2>&1
         sleep 1000 & h=$!; echo $h > holder.pid
         LOCKUTILS_TEST_PAUSE_BEFORE_KEEPER={gate} \"$LOCKDIR\" --pid $h K & l=$!
         while [ ! -e {gate}.reached ]; do sleep 0.01; done
         kill -KILL $h; wait $h 2>/dev/null
         for i in 1 2 3 4 5 6 7 8 9 10; do
           echo $((h - 1)) > /proc/sys/kernel/ns_last_pid
           sleep 1000 & p=$!
           [ $p = $h ] && break
           kill $p
         done
         echo $p > impostor.pid
         touch {gate}; wait $l",
        gate = gate.display()
    );
    let out = m.shell(s.dir.path(), &script).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let holder = fs::read_to_string(s.path("holder.pid")).unwrap();
    let impostor = fs::read_to_string(s.path("impostor.pid")).unwrap();
    assert_eq!(holder, impostor, "the pid was given again");
    // The keeper saw another process at the holder's pid: the lock is
    // released, not kept for the impostor.
    wait_until("the lock released", Duration::from_secs(5), || {
        !s.path("K").exists()
    });
}

#[test]
fn a_frozen_machine_loses_its_lock_after_the_lease_and_its_shell_is_told() {
    let Some(m) = Machine::start("elsewhere", "new") else {
        return;
    };
    let s = Scratch::new();
    let script =
        "lk=$(\"$LOCKDIR\" --trap --stale-after 3s --on-lost=term K) && eval \"$lk\" || exit 9
                  while :; do sleep 0.1; done";
    let holder = m
        .shell(s.dir.path(), script)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the shell holds", Duration::from_secs(10), || {
        s.path("K/owner").exists()
    });
    std::thread::sleep(Duration::from_millis(500));
    // Every process of that machine stopped, its keeper too (not its
    // files: they are this host's).
    assert!(
        m.shell(s.dir.path(), "kill -STOP -1")
            .status()
            .unwrap()
            .success()
    );
    let frozen = Instant::now();
    while !try_here_keeping(s.dir.path()) {
        assert!(
            frozen.elapsed() < Duration::from_secs(8),
            "never taken from the frozen machine"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = frozen.elapsed();
    // Not before its 3 s lease (touched at most 1 s before the freeze).
    assert!(after >= Duration::from_secs(2), "taken after {after:?}");
    let ours = fs::read_to_string(s.path("K/owner")).unwrap();
    // Thawed: its keeper finds the lock another's, touches nothing, tells
    // the shell (SIGTERM: its trap releases nothing of ours, exits 143).
    crate::util::age(&s.path("K/owner"), 100);
    assert!(
        m.shell(s.dir.path(), "kill -CONT -1")
            .status()
            .unwrap()
            .success()
    );
    // nsenter, outside, stopped itself when its child stopped (as a shell
    // does with a job): it goes on too.
    let nsenter = nix::unistd::Pid::from_raw(holder.id() as i32);
    let _ = nix::sys::signal::kill(nsenter, nix::sys::signal::Signal::SIGCONT);
    let status = crate::util::wait_with_timeout(holder, Duration::from_secs(10));
    assert_eq!(status.code(), Some(143), "the shell was told with SIGTERM");
    assert_eq!(
        fs::read_to_string(s.path("K/owner")).unwrap(),
        ours,
        "our lock kept"
    );
    let age = fs::metadata(s.path("K/owner")).unwrap().modified().unwrap();
    let age = std::time::SystemTime::now().duration_since(age).unwrap();
    assert!(
        age >= Duration::from_secs(99),
        "the thawed keeper touched our lock"
    );
    let left = m
        .shell(s.dir.path(), "pgrep -x lockdir-keeper")
        .output()
        .unwrap();
    assert!(!left.status.success(), "its keeper is still there");
    let _ = here(s.dir.path(), "lockdir", &["-u", "--force", "K"]).output();
}

/// One attempt from this host that keeps the lock (for this test process,
/// no keeper) when it gets it.
fn try_here_keeping(cwd: &Path) -> bool {
    let args = ["-r", "0", "--no-keeper", "--stale-after", "3s", "K"];
    here(cwd, "lockdir", &args)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn unlock_at_the_keepers_touch_stops_it_and_status_names_it() {
    let s = Scratch::new();
    let mut shell = paused_keeper(&s, "dotlock", "1s", "IN_TOUCH", "exec sleep 30");
    let keeper = keeper_pid(&s);
    // `--status` names the keeper; `ps` shows it by its name.
    let status = here(s.dir.path(), "dotlock", &["--status", "--json", "K"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["keeper"], keeper, "{v}");
    let comm = fs::read_to_string(format!("/proc/{keeper}/comm")).unwrap();
    assert_eq!(comm.trim(), "dotlock-keeper");
    // -u while the keeper is between its look and its touch: the lock
    // goes, the keeper is told and stops, nothing is made again.
    let out = here(s.dir.path(), "dotlock", &["-u", "--force", "K"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_until("the keeper stopped", Duration::from_secs(5), || {
        gone(keeper)
    });
    fs::write(s.path("gate"), "").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!s.path("K").exists());
    let _ = shell.kill();
    let _ = shell.wait();
}
