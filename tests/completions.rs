//! The shell completions, run in the real shells: a command (and its
//! arguments) completed after the lock file, no hidden option offered, no
//! file name after a number option. Bash and fish are asked directly; zsh
//! through a pseudo-terminal (zpty), as a user pressing Tab.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{Scratch, skip};

fn completions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("completions")
}

fn have(shell: &str) -> bool {
    let found = Command::new(shell)
        .args(["-c", "exit 0"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(&format!("{shell} is not installed"));
    }
    found
}

/// What bash's completion function offers for `line` (the last word is
/// the one being completed).
fn bash(s: &Scratch, name: &str, line: &str) -> Vec<String> {
    let script = r#"
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
f=$(complete -p "$1" | sed 's/.*-F \([^ ]*\).*/\1/')
"$f" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let mut words: Vec<String> = line.split(' ').map(String::from).collect();
    if line.ends_with(' ') {
        words.pop();
        words.push(String::new());
    }
    let out = Command::new("bash")
        .current_dir(s.dir.path())
        .args(["-c", script, "bash"])
        .arg(completions().join(format!("{name}.bash")))
        .args(&words)
        .output()
        .unwrap();
    candidates(&out.stdout)
}

/// What fish offers for `line`.
fn fish(s: &Scratch, name: &str, line: &str) -> Vec<String> {
    let out = Command::new("fish")
        .current_dir(s.dir.path())
        .args([
            "--no-config",
            "-c",
            r#"source $argv[1]; complete -C $argv[2]"#,
        ])
        .arg(completions().join(format!("{name}.fish")))
        .arg(line)
        .output()
        .unwrap();
    candidates(&out.stdout)
}

/// What zsh offers when `line` is typed and Tab pressed: every candidate
/// handed to `compadd`, written to a file. The marker typed after the Tab
/// is printed only once the completion has run.
fn zsh(s: &Scratch, name: &str, line: &str) -> Vec<String> {
    let fpath = s.path("fpath");
    fs::create_dir_all(&fpath).unwrap();
    fs::copy(
        completions().join(format!("_{name}")),
        fpath.join(format!("_{name}")),
    )
    .unwrap();
    let out = s.path("zsh.out");
    let _ = fs::remove_file(&out);
    let script = r#"
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D; PROMPT='> '"
zpty -w z "compadd() { builtin compadd -O __c \"\$@\"; print -rl -- \${^__c} >> $2; builtin compadd \"\$@\" }"
zpty -w z "$3"$'\t'
zpty -w z $'\C-u print DO""NE\n'
zpty -r z __seen '*DONE*'
zpty -d z
"#;
    let status = Command::new("timeout")
        .current_dir(s.dir.path())
        .args(["20", "zsh", "-f", "-c", script, "zsh"])
        .arg(&fpath)
        .arg(&out)
        .arg(line)
        .status()
        .unwrap();
    assert!(status.success(), "zsh completion of {line:?}: {status:?}");
    candidates(&fs::read(&out).unwrap_or_default())
}

fn candidates(out: &[u8]) -> Vec<String> {
    let mut all: Vec<String> = String::from_utf8_lossy(out)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// One command's checks in one shell.
fn check(shell: &str, name: &str, ask: impl Fn(&Scratch, &str, &str) -> Vec<String>) {
    let s = Scratch::new();
    fs::write(s.path("afile"), "").unwrap();
    let mut failures = Vec::new();
    let mut expect = |line: &str, ok: bool, what: &str, got: &[String]| {
        if !ok {
            failures.push(format!("{shell}: {line:?}: {what}: {got:?}"));
        }
    };
    let numbers = ask(&s, name, &format!("{name} -r "));
    expect(
        &format!("{name} -r "),
        !numbers.iter().any(|c| c.contains("afile")),
        "no file names after a number option",
        &numbers,
    );
    let options = ask(&s, name, &format!("{name} -"));
    expect(
        &format!("{name} -"),
        options.iter().any(|c| c == "-r") && options.iter().any(|c| c == "--status"),
        "the options",
        &options,
    );
    expect(
        &format!("{name} -"),
        !options.iter().any(|c| c == "-N"),
        "no hidden option",
        &options,
    );
    let (command_line, args_line) = match name {
        "filelock" => (
            "filelock A -- slee".to_string(),
            "filelock -r 3 A B -- sleep ".to_string(),
        ),
        _ => (format!("{name} L slee"), format!("{name} -r 3 L sleep ")),
    };
    let command = ask(&s, name, &command_line);
    expect(
        &command_line,
        command.iter().any(|c| c == "sleep"),
        "a command after the lock",
        &command,
    );
    let args = ask(&s, name, &args_line);
    expect(
        &args_line,
        args.iter().any(|c| c == "afile"),
        "the command's arguments (files here)",
        &args,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bash_completes_the_command_after_the_lock_and_no_file_after_a_number() {
    if have("bash") {
        for name in ["dotlock", "lockdir", "filelock"] {
            check("bash", name, bash);
        }
    }
}

#[test]
fn fish_completes_the_command_after_the_lock_and_no_file_after_a_number() {
    if have("fish") {
        for name in ["dotlock", "lockdir", "filelock"] {
            check("fish", name, fish);
        }
    }
}

#[test]
fn zsh_completes_the_command_after_the_lock_and_no_file_after_a_number() {
    if have("zsh") {
        for name in ["dotlock", "lockdir", "filelock"] {
            check("zsh", name, zsh);
        }
    }
}
