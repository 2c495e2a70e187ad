//! Man pages and shell completions, generated from the clap definitions
//! plus hand-written sections that clap cannot hold (`man/*.roff`). Used by
//! `cargo xtask` to write them and by the drift test to compare them.

use std::path::PathBuf;

use clap_complete::Shell;

/// A command's manual: its clap definition and hand-written sections.
struct Page {
    name: &'static str,
    command: fn() -> clap::Command,
    extra: &'static str,
}

fn pages() -> [Page; 3] {
    [
        Page {
            name: "dotlock",
            command: lockutils::cli::dotlock::command,
            extra: include_str!("man/dotlock.roff"),
        },
        Page {
            name: "lockdir",
            command: lockutils::cli::lockdir::command,
            extra: include_str!("man/lockdir.roff"),
        },
        Page {
            name: "filelock",
            command: lockutils::cli::filelock::command,
            extra: include_str!("man/filelock.roff"),
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
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut (page.command)(), page.name, &mut buf);
            out.push((PathBuf::from(file), buf));
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
    man.render_synopsis_section(&mut buf)
        .expect("writing to memory");
    man.render_description_section(&mut buf)
        .expect("writing to memory");
    man.render_options_section(&mut buf)
        .expect("writing to memory");
    buf.extend_from_slice(page.extra.as_bytes());
    man.render_version_section(&mut buf)
        .expect("writing to memory");
    buf
}
