//! Man pages and shell completions, generated from the clap definitions
//! plus hand-written sections that clap cannot hold (`man/*.roff`). Used by
//! `cargo xtask` to write them and by the drift test to compare them.

use std::path::PathBuf;

use clap_complete::Shell;

use super::complete::{self, Operands};

/// A command's manual: its clap definition and hand-written sections.
struct Page {
    name: &'static str,
    command: fn() -> clap::Command,
    extra: &'static str,
    operands: Operands,
}

fn pages() -> [Page; 3] {
    [
        Page {
            name: "dotlock",
            command: lockutils::cli::dotlock::command,
            extra: include_str!("man/dotlock.roff"),
            operands: Operands::LockThenCommand,
        },
        Page {
            name: "lockdir",
            command: lockutils::cli::lockdir::command,
            extra: include_str!("man/lockdir.roff"),
            operands: Operands::LockThenCommand,
        },
        Page {
            name: "filelock",
            command: lockutils::cli::filelock::command,
            extra: include_str!("man/filelock.roff"),
            operands: Operands::AfterDashes,
        },
    ]
}

/// Every generated file, as a path relative to the repository and its bytes.
pub fn files() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for page in pages() {
        out.push((PathBuf::from(format!("man/{}.1", page.name)), man(&page)));
        for (shell, file) in [
            (Shell::Bash, format!("completions/{}.bash", page.name)),
            (Shell::Zsh, format!("completions/_{}", page.name)),
            (Shell::Fish, format!("completions/{}.fish", page.name)),
        ] {
            let script = complete::completion((page.command)(), page.name, page.operands, shell);
            out.push((PathBuf::from(file), script));
        }
    }
    out
}

/// NAME, SYNOPSIS, DESCRIPTION and OPTIONS from clap; then the hand-written
/// sections; then VERSION.
fn man(page: &Page) -> Vec<u8> {
    let man = clap_mangen::Man::new((page.command)())
        .title(page.name.to_uppercase())
        .section("1")
        .source(format!("lockutils {}", lockutils::VERSION))
        .manual("User Commands")
        .date("");
    let mut buf = Vec::new();
    man.render_title(&mut buf).expect("writing to memory");
    man.render_name_section(&mut buf)
        .expect("writing to memory");
    let mut built = (page.command)();
    built.build();
    buf.extend_from_slice(synopsis(&built).as_bytes());
    man.render_description_section(&mut buf)
        .expect("writing to memory");
    man.render_options_section(&mut buf)
        .expect("writing to memory");
    buf.extend_from_slice(lockutils::cli::table_roff().as_bytes());
    buf.extend_from_slice(page.extra.as_bytes());
    man.render_version_section(&mut buf)
        .expect("writing to memory");
    buf
}

/// The SYNOPSIS: every option that is shown, with its value's name
/// (`[-r RETRIES]`, `[--timeout DURATION]`), then the operands. (clap_mangen
/// writes `[-l ]` and drops value names.)
fn synopsis(cmd: &clap::Command) -> String {
    let bold = |s: &str| format!("\\fB{}\\fR", s.replace('-', "\\-"));
    let italic = |s: &str| format!("\\fI{}\\fR", s.replace('-', "\\-"));
    let mut words = vec![bold(cmd.get_name())];
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || arg.is_positional() {
            continue;
        }
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(s), _) => format!("-{s}"),
            (None, Some(l)) => format!("--{l}"),
            (None, None) => continue,
        };
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .filter(|_| takes_value);
        let shown = match (flag.as_str(), value) {
            ("-h", _) => "[\\fB\\-h\\fR|\\fB\\-\\-help\\fR]".to_string(),
            ("-V", _) => "[\\fB\\-V\\fR|\\fB\\-\\-version\\fR]".to_string(),
            (f, Some(v)) => format!("[{} {}]", bold(f), italic(&v)),
            (f, None) => format!("[{}]", bold(f)),
        };
        words.push(shown);
    }
    for arg in cmd.get_positionals() {
        let names: Vec<String> = arg
            .get_value_names()
            .map(|v| v.iter().map(|n| n.to_string()).collect())
            .unwrap_or_else(|| vec![arg.get_id().to_string().to_uppercase()]);
        let name = names.join(" ");
        let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        let dots = if many && !name.contains("...") {
            "..."
        } else {
            ""
        };
        let text = format!("{}{dots}", italic(&name));
        words.push(match (arg.is_required_set(), arg.is_last_set()) {
            (_, true) => format!("[\\fB\\-\\-\\fR {text}]"),
            (true, false) => text,
            (false, false) => format!("[{text}]"),
        });
    }
    format!(".SH SYNOPSIS\n.nh\n{}\n.hy\n", words.join(" "))
}
