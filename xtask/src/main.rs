//! `cargo xtask [gen]` writes `man/` and `completions/` from the code;
//! `cargo xtask --check` fails if the committed files have drifted.

mod complete;
mod generate;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository");
    let check = match std::env::args().nth(1).as_deref() {
        None | Some("gen") => false,
        Some("--check" | "check") => true,
        Some(other) => {
            eprintln!(
                "xtask: unknown task {other:?}; use `cargo xtask [gen]` or `cargo xtask --check`"
            );
            return ExitCode::from(2);
        }
    };
    let mut drift = Vec::new();
    for (rel, bytes) in generate::files() {
        let path = root.join(&rel);
        if check {
            if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                drift.push(rel.display().to_string());
            }
        } else {
            std::fs::create_dir_all(path.parent().expect("files sit in folders"))
                .expect("create folder");
            std::fs::write(&path, bytes).expect("write generated file");
            println!("wrote {}", rel.display());
        }
    }
    if drift.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "xtask: out of date: {}; run `cargo xtask` and commit",
            drift.join(", ")
        );
        ExitCode::FAILURE
    }
}
