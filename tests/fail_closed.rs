//! Fail closed, say why: the trap idiom never runs unlocked work, `-u` never
//! frees a live holder's lock, a wait that gives up says who holds it, and a
//! lock lost while its command runs is noticed at once.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::filelock::filelock_bin;
use crate::lockdir::lockdir_bin;
use crate::util::{Scratch, TRAP_SHELLS, have_shell as have, skip, stderr_lines, wait_until};

/// The shells the trap idiom is documented for, and zsh in its own mode.
fn shells() -> Vec<(&'static str, &'static [&'static str])> {
    let mut all = TRAP_SHELLS.to_vec();
    all.push(("zsh", &["zsh", "-c"]));
    all
}

/// Run `body` in `shell`, with `$LK` the lock directory and `PATH` as
/// given (so that `lockdir` may be there or not).
fn sh(s: &Scratch, shell: &[&str], path: &str, body: &str) -> Output {
    Command::new(shell[0])
        .args(&shell[1..])
        .arg(body)
        .current_dir(s.dir.path())
        .env("PATH", path)
        .env("LK", s.path("t.d"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A `PATH` with `lockdir` in it, and the system's tools.
fn path_with_lockdir(s: &Scratch) -> String {
    let bin = s.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let _ = std::os::unix::fs::symlink(lockdir_bin(), bin.join("lockdir"));
    format!("{}:/usr/bin:/bin", bin.display())
}

/// The README's idiom.
const IDIOM: &str = r#"lk=$(lockdir --trap OPTS "$LK") || exit 1
eval "$lk" || exit 1
echo WORK > work
"#;

#[test]
fn the_readme_idiom_runs_no_work_unlocked_in_any_shell() {
    let mut failures = Vec::new();
    for (name, shell) in shells() {
        if !have(shell) {
            skip(&format!(
                "{name} is not installed (apt-get install dash busybox mksh zsh)"
            ));
            continue;
        }
        let s = Scratch::new();
        let path = path_with_lockdir(&s);
        let no_lockdir = "/usr/bin:/bin";
        let cases = [
            (
                "wrong options",
                path.as_str(),
                IDIOM.replace("OPTS", "-r 0 --tiemout 3"),
            ),
            (
                "lockdir not on PATH",
                no_lockdir,
                IDIOM.replace("OPTS", "-r 0"),
            ),
            ("busy", path.as_str(), {
                fs::create_dir_all(s.path("t.d")).unwrap();
                IDIOM.replace("OPTS", "-r 0")
            }),
        ];
        for (case, path, body) in cases {
            let _ = fs::remove_file(s.path("work"));
            let out = sh(&s, shell, path, &body);
            if out.status.code() != Some(1) || s.path("work").exists() {
                failures.push(format!(
                    "{name}: {case}: ran unlocked or did not fail: {out:?}"
                ));
            }
        }
        // The one-line eval fails closed too on a usage error and when busy.
        let one_line =
            r#"eval "$(lockdir --trap -r 0 --tiemout 3 "$LK")" || exit 1; echo WORK > work"#;
        let out = sh(&s, shell, &path, one_line);
        if out.status.success() || s.path("work").exists() {
            failures.push(format!(
                "{name}: one-line eval with a usage error ran: {out:?}"
            ));
        }
        fs::remove_dir_all(s.path("t.d")).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_lock_taken_in_a_function_outlives_the_function() {
    let body = r#"take() { lk=$(lockdir --trap -r 0 "$LK") || return 1; eval "$lk" || return 1; }
take || exit 1
test -d "$LK" || exit 2
lockdir -c "$LK" || exit 3
echo held-after-return > seen
"#;
    let mut failures = Vec::new();
    for (name, shell) in shells() {
        if !have(shell) {
            skip(&format!("{name} is not installed"));
            continue;
        }
        let s = Scratch::new();
        let out = sh(&s, shell, &path_with_lockdir(&s), body);
        if !out.status.success() || !s.path("seen").exists() {
            failures.push(format!(
                "{name}: lock gone when the function returned: {out:?}"
            ));
        }
        if s.path("t.d").exists() {
            failures.push(format!("{name}: lock left after the script ended"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bash_says_when_it_replaces_the_scripts_exit_trap() {
    if !have(&["bash", "-c"]) {
        return skip("bash is not installed");
    }
    let s = Scratch::new();
    let body = r#"trap 'echo mine' EXIT
lk=$(lockdir --trap "$LK") || exit 1
eval "$lk" || exit 1
"#;
    let out = sh(&s, &["bash", "-c"], &path_with_lockdir(&s), body);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replacing the script's EXIT trap"),
        "{out:?}"
    );
    assert!(!s.path("t.d").exists());
}

/// A live holder's lock, taken by `dotlock L sleep` (command mode).
fn held_by_a_command(s: &Scratch) -> crate::util::Holder {
    crate::util::holding(s, s.dotlock(), "L").0
}

#[test]
fn dotlock_u_frees_only_the_callers_lock() {
    let s = Scratch::new();
    let mut holder = held_by_a_command(&s);
    let before = fs::read(s.path("L")).unwrap();
    let out = s.expect(s.dotlock().args(["-u", "L"]), 1);
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("dotlock: L: held by pid ") && lines[0].contains("--force"),
        "{lines:?}"
    );
    assert_eq!(fs::read(s.path("L")).unwrap(), before, "lock intact");
    // Another host's lock is not ours either.
    fs::write(s.path("M"), "4242\nhost=elsewhere\n").unwrap();
    s.expect(s.dotlock().args(["-u", "M"]), 1);
    assert!(s.path("M").exists());
    // --force removes either.
    s.expect(s.dotlock().args(["-u", "--force", "M"]), 0);
    s.expect(s.dotlock().args(["-u", "--force", "L"]), 0);
    assert!(!s.path("L").exists() && !s.path("M").exists());
    let _ = holder.kill();
    let _ = holder.wait();
    // The caller's own: taken and released by the same shell, with and
    // without -p, from the shell and from a subshell.
    for take in ["\"$0\" L", "\"$0\" -p L"] {
        let script = format!("{take} || exit 1; ( \"$0\" -u L ) || exit 2; test ! -e L");
        let out = s.shell(&script).output().unwrap();
        assert!(out.status.success(), "{take}: {out:?}");
    }
    // A lock that names nobody (a legacy tool's) may be removed.
    fs::write(s.path("L"), "0").unwrap();
    s.expect(s.dotlock().args(["-u", "L"]), 0);
    // The dotlockfile personality removes unconditionally, as liblockfile.
    let mut holder = held_by_a_command(&s);
    s.expect(s.as_dotlockfile().args(["-u", "L"]), 0);
    assert!(!s.path("L").exists());
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn filelock_u_frees_only_the_callers_locks() {
    let s = Scratch::new();
    let fl = |args: &[&str]| {
        let mut cmd = Command::new(filelock_bin());
        cmd.current_dir(s.dir.path()).args(args);
        cmd
    };
    // Taken by another, live shell.
    let mut other = Command::new("sh")
        .args(["-c", r#""$FL" A && echo > taken; exec sleep 60"#])
        .current_dir(s.dir.path())
        .env("FL", filelock_bin())
        .spawn()
        .unwrap();
    wait_until("the other shell's lock", Duration::from_secs(10), || {
        s.path("taken").exists()
    });
    let out = s.expect(&mut fl(&["-u", "A"]), 1);
    assert!(stderr_lines(&out)[0].contains("--force"), "{out:?}");
    assert!(s.path("A").exists());
    s.expect(&mut fl(&["-u", "--force", "A"]), 0);
    assert!(!s.path("A").exists());
    let _ = other.kill();
    let _ = other.wait();
    // The calling shell's own.
    let out = s
        .shell(&format!(
            r#""{0}" A B || exit 1; "{0}" -u A B || exit 2; test ! -e A && test ! -e B"#,
            filelock_bin().display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_wait_that_gives_up_says_who_holds_the_lock() {
    let s = Scratch::new();
    let mut holder = held_by_a_command(&s);
    let pid = holder.id();
    let want = format!("L: busy: held by pid {pid} (sh) on ");
    let out = s.expect(s.dotlock().args(["-r", "0", "L"]), 4);
    let lines = stderr_lines(&out);
    assert!(
        lines.len() == 1 && lines[0].starts_with(&format!("dotlock: {want}")),
        "{lines:?}"
    );
    let out = s.expect(s.dotlock().args(["-q", "-r", "0", "L"]), 4);
    assert!(out.stderr.is_empty(), "{out:?}");
    let _ = holder.kill();
    let _ = holder.wait();
    // lockdir, the same words.
    let ld = |args: &[&str]| {
        let mut cmd = Command::new(lockdir_bin());
        cmd.current_dir(s.dir.path()).args(args);
        cmd
    };
    s.expect(&mut ld(&["--pid", &std::process::id().to_string(), "D"]), 0);
    let out = s.expect(&mut ld(&["-r", "0", "D"]), 4);
    let lines = stderr_lines(&out);
    let me = std::process::id();
    assert!(
        lines.len() == 1 && lines[0].starts_with(&format!("lockdir: D: busy: held by pid {me} (")),
        "{lines:?}"
    );
    let out = s.expect(&mut ld(&["-q", "-r", "0", "D"]), 4);
    assert!(out.stderr.is_empty(), "{out:?}");
    // filelock: the seed's words, and the holder.
    fs::write(s.path("F"), format!("{me}\n")).unwrap();
    let out = s.expect(
        Command::new(filelock_bin())
            .current_dir(s.dir.path())
            .args(["-r", "0", "F"]),
        1,
    );
    let want = format!(
        "filelock: Failed: couldn't create {} in time: held by pid {me} for ",
        s.path("F").display()
    );
    assert!(stderr_lines(&out)[0].starts_with(&want), "{out:?}");
}

#[test]
fn timeout_bounds_the_wait_with_and_without_retries() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    // Without -r the timeout alone decides: the default 5 retries of
    // 0.5 s would have given up after 2.5 s.
    let start = Instant::now();
    s.expect(s.dotlock().args(["-i", "0.5", "--timeout", "4", "L"]), 4);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(3800),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    // With -r, whichever comes first: here the retries.
    let start = Instant::now();
    s.expect(
        s.dotlock()
            .args(["-r", "1", "-i", "0.2", "--timeout", "30", "L"]),
        4,
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_lock_lost_while_the_command_runs_is_said_at_once_and_can_end_it() {
    let s = Scratch::new();
    let said = || fs::read_to_string(s.path("err")).unwrap_or_default();
    for (on_lost, ends) in [("--on-lost=warn", false), ("--on-lost=term", true)] {
        let _ = fs::remove_file(s.path("child.pid"));
        // --stale-after 0.9: the holder touches (and checks) every 0.3 s.
        // stderr goes to a file: the command's orphaned sleep keeps a pipe
        // open.
        let mut child = s
            .dotlock()
            .args(["--stale-after", "0.9", on_lost, "L", "sh", "-c"])
            .arg("echo $$ > child.pid; sleep 30")
            .stderr(fs::File::create(s.path("err")).unwrap())
            .spawn()
            .unwrap();
        wait_until("the command", Duration::from_secs(10), || {
            s.path("child.pid").exists() && s.path("L").exists()
        });
        let lost = Instant::now();
        fs::remove_file(s.path("L")).unwrap();
        wait_until("the warning", Duration::from_secs(10), || {
            said().contains("L: the lock was lost while the command runs")
        });
        let took = lost.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{on_lost}: warned after {took:?}"
        );
        let command: i32 = fs::read_to_string(s.path("child.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if ends {
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(libc_sigterm()), "{status:?}");
            assert!(lost.elapsed() < Duration::from_secs(5));
            assert!(said().contains("sending the command SIGTERM"), "{}", said());
        } else {
            std::thread::sleep(Duration::from_millis(500));
            assert!(
                child.try_wait().unwrap().is_none(),
                "the command still runs"
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(command),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(!Path::new(&s.path("L")).exists());
}

fn libc_sigterm() -> i32 {
    nix::sys::signal::Signal::SIGTERM as i32
}

#[test]
fn rough_edges() {
    let s = Scratch::new();
    // The names of missing arguments are kept.
    let out = s.expect(Command::new(filelock_bin()).current_dir(s.dir.path()), 1);
    assert_eq!(
        stderr_lines(&out),
        [
            "filelock: the following required arguments were not provided: <LOCKFILE>...; try 'filelock --help'"
        ]
    );
    // Did you mean.
    let out = s.expect(s.dotlock().args(["--verbos", "L"]), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("'--verbose'"),
        "{out:?}"
    );
    // dotlockfile -h is liblockfile's usage, not dotlock's help.
    let out = s.expect(s.as_dotlockfile().arg("-h"), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Usage:  dotlockfile -l") && !err.contains("dotlock "),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // `--` after the lock file is no command.
    let out = s.expect(s.dotlock().args(["q.lock", "--", "echo", "x"]), 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\n");
}
