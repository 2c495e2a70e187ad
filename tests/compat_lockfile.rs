//! The `lockfile` personality side by side with procmail's `lockfile`:
//! the same exit codes, lock contents, modes and leftovers in every
//! scenario.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::filelock::filelock_bin;
use crate::util::{Scratch, age, assert_no_differences};

/// procmail's real `lockfile`, if installed.
fn real_lockfile() -> Option<PathBuf> {
    crate::util::real_tool("lockfile", "procmail")
}

#[derive(Debug, PartialEq)]
struct Outcome {
    code: Option<i32>,
    locks: Vec<(String, Vec<u8>, u32)>,
}

struct Scenario {
    name: &'static str,
    steps: &'static [&'static [&'static str]],
    setup: fn(&Scratch),
}

fn none(_: &Scratch) {}

fn scenarios() -> Vec<Scenario> {
    let s = |name, steps, setup| Scenario { name, steps, setup };
    vec![
        s("a single file", &[&["a"]], none),
        s("several files", &[&["a", "b", "c"]], none),
        s(
            "several files, one held: all or nothing",
            &[&["a"], &["-r", "0", "d", "a", "e"]],
            none,
        ),
        s("-r 0 on a held lock", &[&["a"], &["-r", "0", "a"]], none),
        s("-r0 (joined)", &[&["a"], &["-r0", "a"]], none),
        s(
            "the same file twice",
            &[&["-r", "0", "x", "-r", "0", "x"]],
            none,
        ),
        s(
            "-! on a held lock",
            &[&["a"], &["-!", "-r", "0", "a"]],
            none,
        ),
        s("-! on a free lock", &[&["-!", "-r", "0", "n"]], none),
        s(
            "-l/-s break an old lock",
            &[&["-l", "5", "-s", "0", "-r", "0", "old"]],
            |s| {
                fs::write(s.path("old"), "0").unwrap();
                age(&s.path("old"), 60);
            },
        ),
        s(
            "-l leaves a young lock",
            &[&["-l", "100", "-s", "0", "-r", "0", "young"]],
            |s| {
                fs::write(s.path("young"), "0").unwrap();
                age(&s.path("young"), 10);
            },
        ),
        s("-nnn sleeptime", &[&["-0", "-r", "1", "a"]], none),
        s(
            "negative -r is forever (free lock)",
            &[&["-r", "-5", "a"]],
            none,
        ),
        s("missing directory", &[&["nodir/x"]], none),
        s("usage: no arguments", &[&[]], none),
        s("usage: -r x", &[&["-r", "x", "a"]], none),
        s("usage: unknown option", &[&["-z", "a"]], none),
        s("usage: lone -", &[&["-"]], none),
        s("usage: -r without a number", &[&["-r"]], none),
        s("-+nnn sleeptime", &[&["-+0", "-r", "1", "a"]], none),
        s("a directory at the lock path", &[&["-r", "0", "d"]], |s| {
            fs::create_dir(s.path("d")).unwrap()
        }),
        s(
            "a directory at the lock path, -r 1 -0",
            &[&["-r", "1", "-0", "d"]],
            |s| fs::create_dir(s.path("d")).unwrap(),
        ),
    ]
}

fn run(scenario: &Scenario, program: &Path, s: &Scratch) -> Outcome {
    (scenario.setup)(s);
    let mut code = None;
    let last = scenario.steps.len() - 1;
    for (i, args) in scenario.steps.iter().enumerate() {
        let out = Command::new(program)
            .args(*args)
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        if i < last {
            assert!(
                out.status.success(),
                "{}: setup failed {out:?}",
                scenario.name
            );
        }
        code = out.status.code();
    }
    let mut locks: Vec<(String, Vec<u8>, u32)> = fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            let content = fs::read(e.path()).unwrap_or_default();
            (
                e.file_name().to_string_lossy().into_owned(),
                content,
                meta.permissions().mode() & 0o7777,
            )
        })
        .collect();
    locks.sort();
    Outcome { code, locks }
}

#[test]
fn same_codes_content_mode_and_leftovers_as_procmails_lockfile() {
    let Some(real) = real_lockfile() else { return };
    let ours = Scratch::new().personality_link_to("lockfile", &filelock_bin());
    let mut differences = Vec::new();
    for scenario in scenarios() {
        let theirs = run(&scenario, &real, &Scratch::new());
        let mine = run(&scenario, &ours, &Scratch::new());
        if theirs != mine {
            differences.push(format!(
                "{}:\n  lockfile: {theirs:?}\n  ours:     {mine:?}",
                scenario.name
            ));
        }
    }
    assert_no_differences(&differences);
}
