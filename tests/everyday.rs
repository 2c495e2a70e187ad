//! Everyday use, as cron, Makefile, `#!/bin/sh` and flock(1) users expect:
//! `-q` hides only "busy", `-E`, flock's habits answered, filelock's
//! warning for a command left without `--`, a short `-h`, whole-line
//! messages, a caller that has exited said as such, `--status` of what is
//! no lock.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::util::bin;
use crate::util::{Scratch, stderr_lines, wait_until};

const PROGRAMS: [&str; 3] = ["dotlock", "lockdir", "filelock"];

fn run(s: &Scratch, prog: &str) -> Command {
    let mut cmd = Command::new(bin(prog));
    cmd.current_dir(s.dir.path()).stdin(Stdio::null());
    cmd
}

/// The lock name each program takes in these tests.
fn lock(prog: &str) -> &'static str {
    if prog == "lockdir" { "D" } else { "L" }
}

/// A command after the lock, as `prog` takes one.
fn with_command<'a>(prog: &str, lock: &'a str, command: &[&'a str]) -> Vec<&'a str> {
    let mut out = vec![lock];
    if prog == "filelock" {
        out.push("--");
    }
    out.extend(command);
    out
}

/// Make `prog`'s lock busy: a fresh lock of a legacy tool (a dot-lock
/// holding `0`, a bare `mkdir` lock), valid for minutes (a directory: for
/// its grace, 10 s).
fn busy(s: &Scratch, prog: &str) {
    match prog {
        "lockdir" => fs::create_dir(s.path("D")).unwrap(),
        _ => fs::write(s.path("L"), "0\n").unwrap(),
    }
}

/// The status when busy: 4, filelock's 1.
fn busy_code(prog: &str) -> i32 {
    if prog == "filelock" { 1 } else { 4 }
}

#[test]
fn q_hides_only_the_busy_line() {
    for prog in PROGRAMS {
        let s = Scratch::new();
        let missing = format!("nodir/{}", lock(prog));
        let code = if prog == "filelock" { 1 } else { 2 };
        let out = s.expect(run(&s, prog).args(["-q", &missing]), code);
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{prog}: {lines:?}");
        assert!(
            lines[0].starts_with(&format!("{prog}: ")),
            "{prog}: {lines:?}"
        );
        assert!(lines[0].contains("nodir"), "{prog}: {lines:?}");

        let args = with_command(prog, lock(prog), &["./no-such-job"]);
        let out = s.expect(run(&s, prog).arg("-q").args(&args), 127);
        assert_eq!(stderr_lines(&out).len(), 1, "{prog}: {out:?}");

        busy(&s, prog);
        let args = with_command(prog, lock(prog), &["touch", "ran"]);
        let out = s.expect(
            run(&s, prog).args(["-q", "-r", "0"]).args(&args),
            busy_code(prog),
        );
        assert!(out.stderr.is_empty(), "{prog}: {out:?}");
        assert!(!s.path("ran").exists());
        // Without -q the busy line is said.
        let out = s.expect(run(&s, prog).args(["-r", "0"]).args(&args), busy_code(prog));
        assert_eq!(stderr_lines(&out).len(), 1, "{prog}: {out:?}");
    }
}

#[test]
fn conflict_exit_code_with_a_command_and_refused_without() {
    for prog in PROGRAMS {
        let s = Scratch::new();
        let l = lock(prog);
        // Free: the command's own status.
        let args = with_command(prog, l, &["sh", "-c", "exit 3"]);
        s.expect(run(&s, prog).args(["-E", "0"]).args(&args), 3);
        busy(&s, prog);
        let args = with_command(prog, l, &["touch", "ran"]);
        for code in [0, 75] {
            let out = s.expect(
                run(&s, prog)
                    .args(["-q", "-r", "0", "-E", &code.to_string()])
                    .args(&args),
                code,
            );
            assert!(out.stderr.is_empty(), "{prog}: {out:?}");
        }
        let long = s.expect(
            run(&s, prog)
                .args(["-r", "0", "--conflict-exit-code", "9"])
                .args(&args),
            9,
        );
        assert_eq!(stderr_lines(&long).len(), 1, "the busy line: {long:?}");
        assert!(!s.path("ran").exists(), "{prog}: the command ran");
        // Without a command a busy lock's 0 would run the caller's work
        // unlocked: refused, before any attempt.
        let out = s.expect(run(&s, prog).args(["-E", "0", "-r", "0", l]), 1);
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{prog}: {lines:?}");
        assert!(lines[0].contains("goes with a COMMAND only"), "{lines:?}");
        let bad = s.expect(
            run(&s, prog).args(["-E", "256"]).args(&args),
            if prog == "filelock" { 1 } else { 5 },
        );
        assert!(stderr_lines(&bad)[0].contains("-E 256"), "{bad:?}");
    }
    let s = Scratch::new();
    let out = s.expect(run(&s, "lockdir").args(["--trap", "-E", "0", "D"]), 1);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "false\n");
    assert!(!s.path("D").exists());
}

#[test]
fn flock_habits_are_answered_in_one_line() {
    let cases: &[(&[&str], &str, bool)] = &[
        (&["-n", "L", "true"], "here: -r 0", true),
        (&["--nonblock", "L", "true"], "here: -r 0", true),
        (&["-w", "10", "L", "true"], "here: --timeout SECONDS", true),
        (&["--wait=10", "L", "true"], "here: --timeout SECONDS", true),
        (&["-x", "L", "true"], "exclusive", true),
        (&["-o", "L", "true"], "descriptor", true),
        (&["-s", "L", "true"], "--shared", false),
        (&["L", "-c", "make"], "write: PROG LOCK sh -c 'CMD'", false),
    ];
    for prog in PROGRAMS {
        for (args, want, all) in cases {
            // filelock has a -s of its own, and its command follows --.
            if prog == "filelock" && !all {
                continue;
            }
            let s = Scratch::new();
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == "L" { lock(prog) } else { a })
                .collect();
            let out = s.expect(run(&s, prog).args(&args), 1);
            let lines = stderr_lines(&out);
            let want = want.replace("PROG", prog);
            assert_eq!(lines.len(), 1, "{prog} {args:?}: {lines:?}");
            assert!(lines[0].starts_with(&format!("{prog}: ")), "{lines:?}");
            assert!(lines[0].contains(&want), "{prog} {args:?}: {lines:?}");
            assert!(s.listing().is_empty(), "{prog} {args:?}: {:?}", s.listing());
        }
    }
}

#[test]
fn filelock_warns_of_a_command_left_without_dashes() {
    let s = Scratch::new();
    let bin_dir = s.path("bin");
    fs::create_dir(&bin_dir).unwrap();
    fs::write(bin_dir.join("deploy"), "#!/bin/sh\ntouch ran\n").unwrap();
    fs::set_permissions(bin_dir.join("deploy"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let out = s.expect(
        run(&s, "filelock")
            .env("PATH", &path)
            .args(["a.lock", "deploy"]),
        0,
    );
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("filelock: deploy: taken as a lock file")
            && lines[0].contains(" -- deploy"),
        "{lines:?}"
    );
    // The seed's contract: both are taken as lock files; nothing ran.
    assert!(s.path("a.lock").is_file() && s.path("deploy").is_file());
    assert!(!s.path("ran").exists());
    s.expect(run(&s, "filelock").args(["-u", "a.lock", "deploy"]), 0);
    // With --, the command runs and nothing is said.
    let out = s.expect(
        run(&s, "filelock")
            .env("PATH", &path)
            .args(["a.lock", "--", "deploy"]),
        0,
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    assert!(s.path("ran").exists());
    // A name that is no command on PATH: no warning.
    let out = s.expect(
        run(&s, "filelock")
            .env("PATH", "/usr/bin:/bin")
            .args(["b.lock", "deploy"]),
        0,
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    s.expect(run(&s, "filelock").args(["-u", "b.lock", "deploy"]), 0);
}

#[test]
fn short_help_fits_a_screen_and_long_help_keeps_everything() {
    let s = Scratch::new();
    for prog in PROGRAMS {
        let short = s.expect(run(&s, prog).env("COLUMNS", "80").arg("-h"), 0);
        let text = String::from_utf8_lossy(&short.stdout);
        assert!(
            text.lines().count() <= 24,
            "{prog} -h: {} lines\n{text}",
            text.lines().count()
        );
        assert!(
            text.lines().all(|l| l.chars().count() <= 80),
            "{prog}:\n{text}"
        );
        assert!(text.contains("--help"), "{prog}:\n{text}");
        let wait = if prog == "filelock" {
            "about 10 s"
        } else {
            "(75 s)"
        };
        assert!(text.contains(wait), "{prog}: the default wait:\n{text}");
        for common in ["-r <RETRIES>", "--timeout", "-q", "--conflict-exit-code"] {
            assert!(text.contains(common), "{prog}: {common}:\n{text}");
        }
        // Each program's own common option, in its own words.
        let (own, words) = match prog {
            "dotlock" => ("  -p ", "Record and trust the parent's pid"),
            "lockdir" => ("--trap", "Print sh for eval"),
            _ => ("  -u ", "Unlock the lock files"),
        };
        assert!(
            text.contains(own) && text.contains(words),
            "{prog}:\n{text}"
        );
        let long = s.expect(run(&s, prog).env("COLUMNS", "80").arg("--help"), 0);
        let long = String::from_utf8_lossy(&long.stdout);
        for all in ["--stale-after", "--on-lost", "Exit status:"] {
            assert!(long.contains(all), "{prog} --help: {all}");
        }
    }
}

/// Every message is one write(2): fifty refusals written at once into one
/// pipe arrive as fifty whole lines.
#[test]
fn fifty_concurrent_refusals_arrive_as_whole_lines() {
    let s = Scratch::new();
    busy(&s, "dotlock");
    let out = s.expect(
        s.shell(r#"i=0; while [ $i -lt 50 ]; do "$DOTLOCK" -r 0 L & i=$((i+1)); done; wait"#)
            .stdout(Stdio::null()),
        0,
    );
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 50, "{lines:#?}");
    for line in &lines {
        assert!(line.starts_with("dotlock: L: busy: held by "), "{line:?}");
        assert_eq!(line.matches("dotlock").count(), 1, "{line:?}");
    }
}

fn status_json(s: &Scratch) -> Value {
    let out = s
        .dotlock()
        .args(["--status", "--json", "L"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `dotlock L` without `-p` names its caller; once the caller has exited,
/// every message says so, on its host: never "held by" a pid that is gone,
/// never "cannot be checked".
#[test]
fn a_caller_that_has_exited_is_said_as_such() {
    let s = Scratch::new();
    let mut shell = s
        .shell(r#""$DOTLOCK" L && exec sleep 600"#)
        .spawn()
        .unwrap();
    wait_until("the lock", std::time::Duration::from_secs(10), || {
        s.path("L").exists()
    });
    let live = status_json(&s);
    assert_eq!(live["pid"], shell.id());
    assert_eq!(live["alive"], true, "{live}");
    shell.kill().unwrap();
    shell.wait().unwrap();
    let pid = shell.id();

    let gone = status_json(&s);
    assert_eq!(gone["state"], "held", "{gone}");
    assert_eq!(gone["alive"], false, "{gone}");
    let text = s.expect(s.dotlock().args(["--status", "L"]), 0);
    let text = String::from_utf8_lossy(&text.stdout);
    let want = format!(
        "alive:   no: taken by pid {pid}, which has exited; without -p it is kept until it ages out at "
    );
    assert!(text.contains(&want), "{text}");
    assert!(!text.contains("cannot be checked"), "{text}");
    let refused = s.expect(s.dotlock().args(["-r", "0", "L"]), 4);
    let lines = stderr_lines(&refused);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("dotlock: L: busy: taken by pid {pid} (sh)"))
            && lines[0].contains("which has exited; without -p it is kept until it ages out at"),
        "{lines:?}"
    );
    // Still a lock, kept as liblockfile keeps it: -u by another caller is
    // refused, --force removes it.
    s.expect(s.dotlock().args(["-u", "--force", "L"]), 0);
}

/// In command mode the holder is the lock tool, and the command its
/// child: `--status` says which is which.
#[test]
fn status_in_command_mode_names_the_tool_and_the_command_apart() {
    let s = Scratch::new();
    let (holder, child) = crate::util::holding(&s, s.dotlock(), "L");
    let out = s.expect(s.dotlock().args(["--status", "L"]), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "pid:     {} (the lock tool, running the command)\n",
            holder.id()
        )),
        "{text}"
    );
    let command = text.lines().find(|l| l.starts_with("command: ")).unwrap();
    assert!(command.starts_with("command: sh -c "), "{text}");
    assert!(command.ends_with(&format!(" (pid {child})")), "{text}");
}

#[test]
fn status_of_what_is_no_lock_exits_5() {
    let s = Scratch::new();
    fs::write(s.path("F"), "data\n").unwrap();
    fs::create_dir(s.path("dir")).unwrap();
    let check = |out: Output| {
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    };
    check(s.expect(run(&s, "lockdir").args(["--status", "F"]), 5));
    check(s.expect(run(&s, "lockdir").args(["--status", "--json", "F"]), 5));
    check(s.expect(run(&s, "dotlock").args(["--status", "dir"]), 5));
    // The data is left alone.
    assert_eq!(fs::read_to_string(s.path("F")).unwrap(), "data\n");
}
