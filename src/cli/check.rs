//! `--check DIR`'s output: one line per finding — its verdict (`ok`,
//! `warning`, `unsafe`), what was found and what to do — or one JSON
//! object per finding; exit 10 when anything is unsafe.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::cli::pipeline;
use crate::cli::{Outcome, Reporter};
use crate::diagnose::{self, Verdict};

/// Diagnose `dir` and say what was found. Fatal signals wait until the
/// test files are removed, then end the process as they would have.
pub fn run(out: &Reporter, dir: &Path, json: bool) -> Outcome {
    let signals = match pipeline::catch(false) {
        Ok(s) => s,
        Err(e) => return out.failed(e),
    };
    let found = diagnose::diagnose(dir);
    if let Some(sig) = signals.take() {
        return Outcome::Signal(sig);
    }
    let found = match found {
        Ok(found) => found,
        Err(e) => return out.failed(e),
    };
    let mut stdout = std::io::stdout().lock();
    for f in &found {
        let line = match json {
            true => json!({
                "dir": dir.to_string_lossy(),
                "topic": f.topic,
                "verdict": f.verdict.word(),
                "finding": f.text,
                "todo": f.todo,
            })
            .to_string(),
            false => {
                let todo = f
                    .todo
                    .as_ref()
                    .map(|t| format!(" — {t}"))
                    .unwrap_or_default();
                format!("{:<7} {}: {}{todo}", f.verdict.word(), f.topic, f.text)
            }
        };
        let _ = writeln!(stdout, "{line}");
    }
    match found.iter().any(|f| f.verdict == Verdict::Unsafe) {
        true => Outcome::Unsafe,
        false => Outcome::Success,
    }
}
