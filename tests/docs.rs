//! The documentation cannot rot: generated man pages and completions match
//! the code, the pages render without warnings, bash completes our options,
//! and every README recipe runs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::util::{Scratch, dotlock_bin, skip};

#[path = "../xtask/src/complete.rs"]
mod complete;
#[path = "../xtask/src/generate.rs"]
mod generate;

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn man_pages_and_completions_match_the_code() {
    let drift: Vec<String> = generate::files()
        .into_iter()
        .filter(|(rel, bytes)| fs::read(root().join(rel)).ok().as_deref() != Some(&bytes[..]))
        .map(|(rel, _)| rel.display().to_string())
        .collect();
    assert!(
        drift.is_empty(),
        "out of date with the code: {drift:?}\nregenerate with `cargo xtask` and commit"
    );
}

#[test]
fn man_pages_render_without_warnings() {
    if !have("groff") || !have("man") {
        return skip("groff and man are not installed (apt-get install groff-base man-db)");
    }
    for page in ["dotlock", "lockdir", "filelock"] {
        let file = root().join(format!("man/{page}.1"));
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&file)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .unwrap();
        assert!(out.status.success(), "{page}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "{page}: man warned"
        );
        // Without a terminal man emboldens by overstriking: "N\bN".
        let mut text = String::new();
        for c in String::from_utf8_lossy(&out.stdout).chars() {
            if c == '\u{8}' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        for section in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "EXIT STATUS",
            "SIGNALS",
            "NFS",
            "EXAMPLES",
        ] {
            assert!(text.contains(section), "{page}: no {section} section");
        }
        let groff = Command::new("groff")
            .args(["-man", "-ww", "-Tutf8", "-z"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&groff.stderr),
            "",
            "{page}: groff warned"
        );
    }
}

#[test]
fn bash_completion_completes_dotlocks_options() {
    let script = format!(
        r#"source '{}'
COMP_WORDS=(dotlock --st); COMP_CWORD=1; COMP_LINE='dotlock --st'; COMP_POINT=${{#COMP_LINE}}
_dotlock dotlock --st dotlock
printf '%s\n' "${{COMPREPLY[@]}}""#,
        root().join("completions/dotlock.bash").display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = words.split_whitespace().collect();
    assert!(
        words.contains(&"--status") && words.contains(&"--stale-after"),
        "{words:?} {out:?}"
    );
}

/// The commands the recipes lock, stubbed: each records that it ran.
const STUBS: &[&str] = &[
    "make-report",
    "backup",
    "process-queue",
    "update-both",
    "build-all",
    "do-the-nightly-work",
    "sync-the-mirror",
    "convert-one",
    "serve-from-cache",
    "rebuild-cache",
];

/// The README's code blocks of a kind: (language, text).
fn readme_blocks() -> Vec<(String, String)> {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```").filter(|l| !l.is_empty()) {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            blocks.push((lang.to_string(), body.join("\n") + "\n"));
        }
    }
    blocks
}

#[test]
fn every_readme_recipe_runs() {
    let blocks = readme_blocks();
    let recipes: Vec<_> = blocks
        .iter()
        // Rust blocks run as doctests (`lib.rs` includes the README).
        .filter(|(lang, _)| lang != "console" && lang != "rust")
        .collect();
    assert!(
        recipes.len() >= 10,
        "recipes went missing: {}",
        recipes.len()
    );
    let mut failures = Vec::new();
    for (lang, text) in recipes {
        if let Err(why) = run_recipe(lang, text) {
            failures.push(format!("```{lang}\n{text}```\n{why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} recipes failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The EXAMPLES of each man page's hand-written sections, unescaped from
/// roff: (page, text).
fn man_examples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for page in ["dotlock", "lockdir", "filelock"] {
        let roff = fs::read_to_string(root().join(format!("xtask/src/man/{page}.roff"))).unwrap();
        let Some((_, examples)) = roff.split_once(".SH EXAMPLES\n") else {
            panic!("{page}: no EXAMPLES");
        };
        let examples = examples.split("\n.SH ").next().unwrap();
        out.extend(
            ex_blocks(examples)
                .into_iter()
                .map(|b| (page.to_string(), b)),
        );
    }
    out
}

/// The `.EX` … `.EE` blocks of `roff`, unescaped.
fn ex_blocks(roff: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = roff.lines();
    while lines.by_ref().any(|l| l == ".EX") {
        let body: Vec<String> = lines
            .by_ref()
            .take_while(|l| *l != ".EE")
            .map(|l| l.replace("\\-", "-").replace("\\e", "\\"))
            .collect();
        out.push(body.join("\n") + "\n");
    }
    out
}

/// The language of a man page example: a crontab line, a Makefile rule,
/// else sh.
fn example_language(text: &str) -> &'static str {
    let first = text.lines().next().unwrap_or_default();
    if first.split_whitespace().count() > 5
        && first
            .split_whitespace()
            .take(5)
            .all(|f| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c)))
    {
        "crontab"
    } else if first.ends_with(':') && text.lines().nth(1).is_some_and(|l| l.starts_with('\t')) {
        "make"
    } else {
        "sh"
    }
}

/// Every example of every man page runs as written (paths moved into a
/// scratch directory, the commands they lock stubbed), and none teaches the
/// one-line `eval "$(lockdir --trap …)"`, which runs the work unlocked when
/// lockdir cannot be run.
#[test]
fn every_man_page_example_runs_and_fails_closed() {
    let examples = man_examples();
    assert!(
        examples.len() >= 10,
        "examples went missing: {}",
        examples.len()
    );
    let mut failures = Vec::new();
    for (page, text) in &examples {
        if let Err(why) = run_recipe(example_language(text), text) {
            failures.push(format!("{page}(1):\n{text}{why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    for page in ["dotlock", "lockdir", "filelock"] {
        let roff = fs::read_to_string(root().join(format!("xtask/src/man/{page}.roff"))).unwrap();
        for block in ex_blocks(&roff) {
            assert!(
                !block.contains("eval \"$(lockdir"),
                "{page}(1) teaches eval \"$(lockdir …)\": {block}"
            );
        }
    }
    let unsafe_recipe = readme_blocks()
        .into_iter()
        .any(|(_, text)| text.contains("eval \"$(lockdir"));
    assert!(!unsafe_recipe, "a README recipe runs eval \"$(lockdir …)\"");
}

/// The cron recipes are one line that works from cron as written: `-q`, a
/// full path (cron's PATH lacks /usr/local/bin), and `-E 0` with a command.
#[test]
fn the_cron_recipes_work_from_cron_as_written() {
    let crontab_lines: Vec<String> = readme_blocks()
        .into_iter()
        .filter(|(lang, _)| lang == "crontab")
        .map(|(_, text)| text)
        .chain(
            man_examples()
                .into_iter()
                .filter(|(_, text)| example_language(text) == "crontab")
                .map(|(_, text)| text),
        )
        .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert!(crontab_lines.len() >= 3, "{crontab_lines:?}");
    for line in crontab_lines {
        let words: Vec<&str> = line.split_whitespace().skip(5).collect();
        assert!(words[0].starts_with('/'), "not a full path: {line}");
        assert!(words.contains(&"-q"), "no -q: {line}");
        assert!(
            words.contains(&"-E") && words.contains(&"0"),
            "no -E 0: {line}"
        );
    }
}

fn run_recipe(lang: &str, text: &str) -> Result<(), String> {
    let s = Scratch::new();
    let bin = s.path("bin");
    fs::create_dir(&bin).unwrap();
    for (name, target) in [
        ("dotlock", dotlock_bin()),
        ("lockdir", crate::lockdir::lockdir_bin()),
        ("filelock", crate::filelock::filelock_bin()),
    ] {
        std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
    }
    for stub in STUBS
        .iter()
        .map(|s| bin.join(s))
        .chain([s.path("deploy.sh")])
    {
        fs::write(&stub, "#!/bin/sh\necho \"${0##*/} $*\" >> \"$RAN\"\n").unwrap();
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for dir in ["lock", "spool", "nfs", "mail", "srv"] {
        fs::create_dir(s.path(dir)).unwrap();
    }
    let root = s.dir.path().display().to_string();
    let text = text
        .replace("/var/lock/", &format!("{root}/lock/"))
        .replace("/var/spool/", &format!("{root}/spool/"))
        .replace("/var/mail/", &format!("{root}/mail/"))
        .replace("/srv/", &format!("{root}/srv/"))
        .replace("/usr/local/bin/", &format!("{}/", bin.display()))
        .replace("/shared/nfs/", &format!("{root}/nfs/"));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // -e: a recipe line that fails fails the recipe.
    let shell = |script: &str| {
        Command::new("sh")
            .args(["-ec", script])
            .current_dir(s.dir.path())
            .env("PATH", &path)
            .env("RAN", s.path("ran"))
            .output()
            .unwrap()
    };
    let outs = match lang {
        "sh" => vec![shell(&text)],
        "crontab" => text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| shell(&l.split_whitespace().skip(5).collect::<Vec<_>>().join(" ")))
            .collect(),
        "make" => {
            fs::write(s.path("Makefile"), &text).unwrap();
            vec![shell("make -s")]
        }
        other => return Err(format!("no runner for ```{other} blocks")),
    };
    for out in &outs {
        if !out.status.success() {
            return Err(format!("failed: {out:?}"));
        }
    }
    let ran = fs::read_to_string(s.path("ran")).unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().collect();
    let wanted: Vec<&&str> = STUBS.iter().filter(|stub| words.contains(stub)).collect();
    for stub in wanted {
        if !ran.contains(*stub) {
            return Err(format!("{stub} did not run (ran: {ran:?})"));
        }
    }
    // srv/ holds what a recipe writes as its work (a resource's data), and
    // a fencing counter (`*.fence`) outlives its lock by design.
    let left: Vec<String> = ["lock", "spool", "nfs", "mail"]
        .iter()
        .flat_map(|d| {
            fs::read_dir(s.path(d))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        })
        .filter(|name| !name.ends_with(".fence"))
        .collect();
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    Ok(())
}
