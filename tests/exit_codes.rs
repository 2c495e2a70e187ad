//! Every flag and every exit status of `dotlock`, pinned in one table.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::{Scratch, age, as_nobody, is_root, skip};

/// How a row's command is run.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Plain,
    /// As nobody (root-only bypasses of permissions do not apply).
    Nobody,
    /// Under `sh`, with the file size limit at 0 and SIGXFSZ ignored, so
    /// every write fails with EFBIG.
    NoWrites,
    /// As the child of the init of a new pid namespace.
    UnderInit,
}

struct Row {
    name: &'static str,
    setup: fn(&Scratch),
    args: &'static [&'static str],
    via: Via,
    code: i32,
    /// A check of the directory afterwards.
    then: fn(&Scratch) -> bool,
}

fn none(_: &Scratch) {}
fn ok(_: &Scratch) -> bool {
    true
}
fn held(s: &Scratch) {
    fs::write(s.path("L"), "0\n").unwrap();
}
fn has_lock(s: &Scratch) -> bool {
    s.path("L").exists()
}
fn no_lock(s: &Scratch) -> bool {
    !s.path("L").exists()
}

fn rows() -> Vec<Row> {
    let r = |name, setup, args, code, then| Row {
        name,
        setup,
        args,
        via: Via::Plain,
        code,
        then,
    };
    vec![
        r("-l takes a free lock", none, &["-l", "L"], 0, has_lock),
        r("locking is the default action", none, &["L"], 0, has_lock),
        r(
            "-r 0 on a held lock gives up",
            held,
            &["-r", "0", "L"],
            4,
            has_lock,
        ),
        r(
            "-r 2 -i 0 gives up after 3 quick attempts",
            held,
            &["-r", "2", "-i", "0", "L"],
            4,
            has_lock,
        ),
        r(
            "-i takes fractions",
            held,
            &["-r", "1", "-i", "0.05", "L"],
            4,
            has_lock,
        ),
        r(
            "--timeout bounds -r -1",
            held,
            &["-r", "-1", "-i", "0.05", "--timeout", "0.3", "L"],
            4,
            has_lock,
        ),
        r(
            "--timeout with a unit",
            held,
            &["-r", "-1", "--timeout", "200ms", "L"],
            4,
            has_lock,
        ),
        r("-u removes a lock", held, &["-u", "L"], 0, no_lock),
        r(
            "-u of a missing lock is success",
            none,
            &["-u", "L"],
            0,
            no_lock,
        ),
        r("-t touches a lock", held, &["-t", "L"], 0, has_lock),
        r("-t of a missing lock fails", none, &["-t", "L"], 1, no_lock),
        r("-c finds a valid lock", held, &["-c", "L"], 0, has_lock),
        r("-c finds no lock", none, &["-c", "L"], 1, no_lock),
        r(
            "-c -p: a dead pid is no valid lock",
            |s| fs::write(s.path("L"), "2147483646\n").unwrap(),
            &["-c", "-p", "L"],
            1,
            has_lock,
        ),
        r(
            "-c without -p: a bare pid is not trusted, age decides",
            |s| fs::write(s.path("L"), "2147483646\n").unwrap(),
            &["-c", "L"],
            0,
            has_lock,
        ),
        r(
            "-c: an aged lock is not valid",
            |s| {
                held(s);
                age(&s.path("L"), 310)
            },
            &["-c", "L"],
            1,
            has_lock,
        ),
        r("-p records a pid", none, &["-p", "L"], 0, has_lock),
        r(
            "-N is accepted and ignored",
            none,
            &["-N", "L"],
            0,
            has_lock,
        ),
        r(
            "-q still says a bad value, in one line",
            none,
            &["-q", "-r", "x", "L"],
            5,
            no_lock,
        ),
        r(
            "-q silences only the busy line",
            held,
            &["-q", "-r", "0", "L"],
            4,
            has_lock,
        ),
        r(
            "-q still says a missing directory, in one line",
            none,
            &["-q", "nodir/L"],
            2,
            ok,
        ),
        r(
            "--verbose on a busy lock",
            held,
            &["--verbose", "-r", "0", "L"],
            4,
            has_lock,
        ),
        r(
            "command mode passes the status through",
            none,
            &["L", "sh", "-c", "test -f L && exit 42"],
            42,
            no_lock,
        ),
        r(
            "-P is accepted (and the default)",
            none,
            &["-P", "L", "sh", "-c", "exit 3"],
            3,
            no_lock,
        ),
        r("-l with a command", none, &["-l", "L", "true"], 0, no_lock),
        r(
            "a script without #! runs under sh, as execvp does",
            |s| {
                fs::write(s.path("script"), "exit 7\n").unwrap();
                fs::set_permissions(s.path("script"), fs::Permissions::from_mode(0o755)).unwrap();
            },
            &["L", "./script"],
            7,
            no_lock,
        ),
        r(
            "command not found",
            none,
            &["L", "no-such-command-xyz"],
            127,
            no_lock,
        ),
        r(
            "command not executable",
            |s| fs::write(s.path("script"), "#!/bin/sh\n").unwrap(),
            &["L", "./script"],
            126,
            no_lock,
        ),
        r("-m locks $MAIL.lock", none, &["-m"], 0, |s| {
            s.path("mbox.lock").exists()
        }),
        r(
            "-m with a command",
            none,
            &["-m", "sh", "-c", "test -f mbox.lock"],
            0,
            |s| !s.path("mbox.lock").exists(),
        ),
        r(
            "-m and a lock name are a usage error? no: the name is the command",
            none,
            &["-m", "true"],
            0,
            ok,
        ),
        r("-r x", none, &["-r", "x", "L"], 5, no_lock),
        r("-r -5", none, &["-r", "-5", "L"], 5, no_lock),
        r(
            "-r overflow",
            none,
            &["-r", "99999999999999999999", "L"],
            5,
            no_lock,
        ),
        r("-i -1", none, &["-i", "-1", "L"], 5, no_lock),
        r("-i x", none, &["-i", "x", "L"], 5, no_lock),
        r(
            "--timeout abc",
            none,
            &["--timeout", "abc", "L"],
            5,
            no_lock,
        ),
        r("unknown option", none, &["-z", "L"], 1, no_lock),
        r(
            "unknown long option",
            none,
            &["--frobnicate", "L"],
            1,
            no_lock,
        ),
        r("no lock file", none, &[], 1, ok),
        r("-r without a value", none, &["-r"], 1, ok),
        r("-u with a command", none, &["-u", "L", "true"], 1, no_lock),
        r("-l with -u", none, &["-l", "-u", "L"], 1, no_lock),
        r("-u with -c", none, &["-u", "-c", "L"], 1, no_lock),
        r(
            "--status of a held lock",
            held,
            &["--status", "L"],
            0,
            has_lock,
        ),
        r(
            "--status of a free lock",
            none,
            &["--status", "L"],
            1,
            no_lock,
        ),
        r(
            "--stale-after breaks a lock older than it",
            |s| {
                held(s);
                age(&s.path("L"), 10)
            },
            &["-r", "0", "--stale-after", "5", "L"],
            0,
            has_lock,
        ),
        r(
            "--stale-after 0",
            none,
            &["--stale-after", "0", "L"],
            5,
            no_lock,
        ),
        r(
            "--slots takes a free slot",
            none,
            &["--slots", "2", "L"],
            0,
            |s| s.path("L.1").exists(),
        ),
        r(
            "--slots with every slot held",
            |s| {
                fs::write(s.path("L.1"), "0\n").unwrap();
                fs::write(s.path("L.2"), "0\n").unwrap()
            },
            &["--slots", "2", "-r", "0", "L"],
            4,
            ok,
        ),
        r("--slots 0", none, &["--slots", "0", "L"], 5, no_lock),
        r("--help", none, &["--help"], 0, ok),
        r("--version", none, &["--version"], 0, ok),
        r(
            "component longer than NAME_MAX",
            none,
            &[
                "-l",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ],
            1,
            ok,
        ),
        r("missing directory", none, &["nodir/L"], 2, ok),
        r(
            "parent is a file",
            |s| fs::write(s.path("file"), "x").unwrap(),
            &["file/L"],
            2,
            |s| fs::read(s.path("file")).unwrap() == b"x",
        ),
        r(
            "the lock path is a directory",
            |s| fs::create_dir(s.path("L")).unwrap(),
            &["-r", "0", "L"],
            5,
            |s| s.path("L").is_dir(),
        ),
        r(
            "the lock path is a symlink",
            |s| std::os::unix::fs::symlink("target", s.path("L")).unwrap(),
            &["-r", "0", "L"],
            5,
            |s| s.path("L").is_symlink() && !s.path("target").exists(),
        ),
        r(
            "the lock path is a FIFO",
            |s| {
                nix::unistd::mkfifo(
                    &s.path("L"),
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                )
                .unwrap()
            },
            &["-r", "0", "L"],
            5,
            ok,
        ),
        Row {
            name: "directory not writable",
            setup: |s| {
                fs::create_dir(s.path("ro")).unwrap();
                fs::set_permissions(s.path("ro"), fs::Permissions::from_mode(0o555)).unwrap()
            },
            args: &["ro/L"],
            via: Via::Nobody,
            code: 2,
            then: |s| fs::read_dir(s.path("ro")).unwrap().count() == 0,
        },
        Row {
            name: "short write of the record",
            setup: none,
            args: &["L"],
            via: Via::NoWrites,
            code: 3,
            then: |s| s.listing().is_empty(),
        },
        Row {
            name: "-p while the parent is init",
            setup: none,
            args: &["-p", "L"],
            via: Via::UnderInit,
            code: 7,
            then: no_lock,
        },
        Row {
            name: "a stale lock that cannot be removed",
            setup: |s| {
                fs::create_dir(s.path("spool")).unwrap();
                fs::set_permissions(s.path("spool"), fs::Permissions::from_mode(0o1777)).unwrap();
                fs::write(s.path("spool/L"), "0\n").unwrap();
                age(&s.path("spool/L"), 400);
            },
            args: &["-r", "0", "spool/L"],
            via: Via::Nobody,
            code: 8,
            then: |s| {
                s.path("spool/L").exists() && fs::read_dir(s.path("spool")).unwrap().count() == 1
            },
        },
    ]
}

#[test]
fn every_flag_and_every_exit_code() {
    let mut failures = Vec::new();
    let mut codes_seen = std::collections::BTreeSet::new();
    for row in rows() {
        let s = Scratch::new();
        (row.setup)(&s);
        let mut cmd = match row.via {
            Via::Plain | Via::Nobody => {
                let mut c = s.dotlock();
                c.args(row.args);
                c
            }
            Via::NoWrites => {
                let mut c = Command::new("sh");
                c.current_dir(s.dir.path())
                    .arg("-c")
                    .arg(r#"trap '' XFSZ; ulimit -f 0; exec "$@""#)
                    .arg("sh")
                    .arg(crate::util::dotlock_bin())
                    .args(row.args);
                c
            }
            Via::UnderInit => {
                let mut c = Command::new("unshare");
                c.current_dir(s.dir.path())
                    .args(["--fork", "--pid", "sh", "-c", r#""$@"; exit $?"#, "sh"])
                    .arg(crate::util::dotlock_bin())
                    .args(row.args);
                c
            }
        };
        if matches!(row.via, Via::Nobody | Via::UnderInit) && !is_root() {
            skip(&format!("{}: needs root", row.name));
            continue;
        }
        if row.via == Via::Nobody {
            as_nobody(&mut cmd);
        }
        cmd.env("MAIL", s.path("mbox"));
        let out = cmd.output().unwrap();
        let code = out.status.code();
        codes_seen.insert(code.unwrap_or(-1));
        if code != Some(row.code) || !(row.then)(&s) || !s.leftovers().is_empty() {
            failures.push(format!(
                "{}: want {}, got {:?}\n{}",
                row.name,
                row.code,
                out.status,
                s.context(&cmd, &out)
            ));
        }
        // -q silences the busy line only: every other failure says its
        // one line.
        let lines = String::from_utf8_lossy(&out.stderr).lines().count();
        let said = match row.code {
            4 => 0,
            _ => 1,
        };
        if row.args.first() == Some(&"-q") && lines != said {
            failures.push(format!(
                "{}: -q printed {:?}",
                row.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if row.name.starts_with("--verbose")
            && !String::from_utf8_lossy(&out.stderr).contains("waiting for L: held by")
        {
            failures.push(format!(
                "{}: no waiting line: {:?}",
                row.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    if is_root() {
        let want: std::collections::BTreeSet<i32> = [0, 1, 2, 3, 4, 5, 7, 8, 126, 127].into();
        assert!(
            want.is_subset(&codes_seen),
            "codes not exercised: {:?}",
            want.difference(&codes_seen).collect::<Vec<_>>()
        );
    }
}
