//! The one exit status table of `dotlock`, `lockdir` and `filelock`
//! (`lockutils::cli::TABLE`): every cell run against the programs, and the
//! same table in the README and in each man page.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lockutils::Record;
use lockutils::cli::{COMMANDS, TABLE};

use crate::util::bin;
use crate::util::{Scratch, age, as_nobody, is_root, skip, wait_until};

/// How a case is run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Plain,
    /// As nobody, where root's bypass of permissions would hide the case.
    Nobody,
    /// With the file size limit at 0: every write fails.
    NoWrites,
    /// As the child of the init of a new pid namespace.
    UnderInit,
    /// Waiting (`--verbose` says so), then sent SIGTERM.
    Terminated,
}

/// One cell: what to set up, the arguments, how to run.
struct Case {
    setup: Box<dyn Fn(&Scratch)>,
    args: Vec<String>,
    via: Via,
}

/// The lock each command is given.
fn lock(cmd: &str) -> &'static str {
    if cmd == "lockdir" { "D" } else { "L" }
}

/// A lock held (fresh, by nobody that can be proven dead) at `name`.
fn held(s: &Scratch, cmd: &str, name: &str) {
    write_lock(s, cmd, name, b"0\n");
}

fn write_lock(s: &Scratch, cmd: &str, name: &str, record: &[u8]) {
    if cmd == "lockdir" {
        fs::create_dir(s.path(name)).unwrap();
        fs::write(s.path(name).join("owner"), record).unwrap();
    } else {
        fs::write(s.path(name), record).unwrap();
    }
}

fn aged(s: &Scratch, cmd: &str, name: &str) {
    if cmd == "lockdir" {
        age(&s.path(name).join("owner"), 400);
    }
    age(&s.path(name), 400);
}

/// `args` with the command's lock put where `L` stands, and filelock's
/// `--` before a command.
fn args(cmd: &str, args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = args.iter().map(|a| a.replace("L", lock(cmd))).collect();
    if cmd == "filelock"
        && let Some(i) = out.iter().position(|a| a == "--cmd")
    {
        out[i] = "--".into();
    } else {
        out.retain(|a| a != "--cmd");
    }
    out
}

fn case(id: &str, cmd: &'static str) -> Option<Case> {
    let plain = |a: &[&str]| {
        Some(Case {
            setup: Box::new(|_| {}),
            args: args(cmd, a),
            via: Via::Plain,
        })
    };
    let with = |setup: Box<dyn Fn(&Scratch)>, a: &[&str], via| {
        Some(Case {
            setup,
            args: args(cmd, a),
            via,
        })
    };
    let long = "a".repeat(250);
    match id {
        "taken" => plain(&["L"]),
        "usage" => plain(&["--no-such-option", "L"]),
        "too-long" => plain(&[&long]),
        "bad-value" => plain(&["-r", "x", "L"]),
        "busy" => with(
            Box::new(move |s| held(s, cmd, lock(cmd))),
            &["-r", "0", "L"],
            Via::Plain,
        ),
        "conflict" => with(
            Box::new(move |s| held(s, cmd, lock(cmd))),
            &["-r", "0", "-E", "75", "L", "--cmd", "true"],
            Via::Plain,
        ),
        "no-dir" => plain(&["nodir/L"]),
        "short-write" => with(Box::new(|_| {}), &["L"], Via::NoWrites),
        "not-a-lock" => with(
            Box::new(move |s| {
                if cmd == "lockdir" {
                    fs::write(s.path("D"), "data\n").unwrap();
                } else {
                    fs::create_dir(s.path("L")).unwrap();
                }
            }),
            &["-r", "0", "L"],
            Via::Plain,
        ),
        "rm-stale" => with(
            Box::new(move |s| {
                fs::create_dir(s.path("spool")).unwrap();
                fs::set_permissions(s.path("spool"), fs::Permissions::from_mode(0o1777)).unwrap();
                held(s, cmd, &format!("spool/{}", lock(cmd)));
                aged(s, cmd, &format!("spool/{}", lock(cmd)));
            }),
            &["-r", "0", "spool/L"],
            Via::Nobody,
        ),
        "orphaned" => with(Box::new(|_| {}), &["-p", "L"], Via::UnderInit),
        "check-valid" => with(
            Box::new(move |s| held(s, cmd, lock(cmd))),
            &["-c", "L"],
            Via::Plain,
        ),
        "check-none" => plain(&["-c", "L"]),
        "status-held" => with(
            Box::new(move |s| held(s, cmd, lock(cmd))),
            &["--status", "L"],
            Via::Plain,
        ),
        "status-free" => plain(&["--status", "L"]),
        "status-stale" => with(
            Box::new(move |s| {
                held(s, cmd, lock(cmd));
                aged(s, cmd, lock(cmd));
            }),
            &["--status", "L"],
            Via::Plain,
        ),
        "unlock-missing" => plain(&["-u", "L"]),
        "unlock-refused" => with(
            Box::new(move |s| {
                // A live process of this host that is not the caller nor
                // one of its ancestors: the scratch's own holder.
                let holder = Command::new("sleep").arg("600").spawn().unwrap().id();
                fs::write(s.path("holder.pid"), holder.to_string()).unwrap();
                let record = Record::for_holder(Some(holder), Some("job".into())).to_bytes();
                write_lock(s, cmd, lock(cmd), &record);
            }),
            &["-u", "L"],
            Via::Plain,
        ),
        "touch-missing" => plain(&["-t", "L"]),
        "command" => plain(&["L", "--cmd", "sh", "-c", "exit 7"]),
        "not-executable" => with(
            Box::new(|s| fs::write(s.path("noexec"), "#!/bin/sh\n").unwrap()),
            &["L", "--cmd", "./noexec"],
            Via::Plain,
        ),
        "not-found" => plain(&["L", "--cmd", "./no-such-command"]),
        "unsafe" => with(
            Box::new(|s| {
                fs::create_dir(s.path("ww")).unwrap();
                fs::set_permissions(s.path("ww"), fs::Permissions::from_mode(0o777)).unwrap();
            }),
            &["--check", "ww"],
            Via::Plain,
        ),
        "no-token" => with(
            Box::new(move |s| fs::write(s.path(format!("{}.fence", lock(cmd))), "x\n").unwrap()),
            &["--fence", "L"],
            Via::Plain,
        ),
        "signal" => with(
            Box::new(move |s| held(s, cmd, lock(cmd))),
            &["--verbose", "-r", "-1", "L"],
            Via::Terminated,
        ),
        _ => None,
    }
}

/// What a cell of the table says a run ends with.
fn want(cell: &str, id: &str) -> String {
    match (cell, id) {
        ("n", _) => "7".into(),
        ("N", _) => "75".into(),
        ("128+N", _) => "signal 15".into(),
        (code, _) => code.into(),
    }
}

fn run(case: &Case, cmd: &str, s: &Scratch) -> Result<String, String> {
    (case.setup)(s);
    let program = bin(cmd);
    let mut command = match case.via {
        Via::NoWrites => {
            let mut c = Command::new("sh");
            c.args(["-c", r#"trap '' XFSZ; ulimit -f 0; exec "$@""#, "sh"])
                .arg(&program);
            c
        }
        Via::UnderInit => {
            let mut c = Command::new("unshare");
            c.args(["--fork", "--pid", "sh", "-c", r#""$@"; exit $?"#, "sh"])
                .arg(&program);
            c
        }
        _ => Command::new(&program),
    };
    command.current_dir(s.dir.path()).args(&case.args);
    if case.via == Via::Nobody {
        as_nobody(&mut command);
    }
    let status = if case.via == Via::Terminated {
        let err = fs::File::create(s.path("err")).unwrap();
        let mut child = command.stderr(err).stdout(Stdio::null()).spawn().unwrap();
        wait_until("the wait to begin", Duration::from_secs(10), || {
            fs::read_to_string(s.path("err")).is_ok_and(|e| e.contains("waiting for"))
        });
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap()
    } else {
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    // The live holder a case started, if any, ends with it.
    if let Ok(pid) = fs::read_to_string(s.path("holder.pid")) {
        let pid = nix::unistd::Pid::from_raw(pid.parse().unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
    let got = match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => format!("{status:?}"),
    };
    if !s.leftovers().is_empty() {
        return Err(format!("left {:?}", s.leftovers()));
    }
    Ok(got)
}

#[test]
fn one_exit_status_table_for_the_three_commands() {
    let mut failures = Vec::new();
    for situation in TABLE {
        for (cmd, cell) in COMMANDS.iter().zip(situation.codes) {
            if cell == "-" {
                continue;
            }
            let Some(case) = case(situation.id, cmd) else {
                failures.push(format!("{}: no case for {cmd}", situation.id));
                continue;
            };
            if matches!(case.via, Via::Nobody | Via::UnderInit) && !is_root() {
                skip(&format!("{} of {cmd}: needs root", situation.id));
                continue;
            }
            let s = Scratch::new();
            let want = want(cell, situation.id);
            match run(&case, cmd, &s) {
                Ok(got) if got == want => {}
                Ok(got) => failures.push(format!(
                    "{} of {cmd} {:?}: the table says {want}, got {got}",
                    situation.id, case.args
                )),
                Err(e) => failures.push(format!("{} of {cmd}: {e}", situation.id)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_readme_and_every_man_page_show_the_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&lockutils::cli::table_markdown()),
        "README.md must hold lockutils::cli::table_markdown() as it is:\n{}",
        lockutils::cli::table_markdown()
    );
    for cmd in COMMANDS {
        let page = fs::read_to_string(root.join(format!("man/{cmd}.1"))).unwrap();
        assert!(
            page.contains(&lockutils::cli::table_roff()),
            "man/{cmd}.1 lacks the table"
        );
    }
}

/// Each program's `--help` ends with its column of the table, whole and
/// in order: nothing written by hand that could drift from the table.
#[test]
fn help_says_each_programs_column_of_the_table() {
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (column, cmd) in COMMANDS.iter().enumerate() {
        let out = Command::new(bin(cmd)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        let (_, section) = help
            .split_once("Exit status:")
            .unwrap_or_else(|| panic!("{cmd} --help has no exit status:\n{help}"));
        let expected: Vec<String> = TABLE
            .iter()
            .filter(|s| s.codes[column] != "-")
            .map(|s| format!("{} {}", s.codes[column], s.what.replace('`', "")))
            .collect();
        assert_eq!(words(section), words(&expected.join(" ")), "{cmd} --help");
    }
}
