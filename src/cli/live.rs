//! The live wait line: while a native command waits and stderr is a
//! terminal (and `-q` is not given), one line kept up to date in place —
//! who holds the lock, for how long, attempt k of N, when the next is due —
//! and cleared when the wait ends. Never where stderr is not a terminal
//! (cron, pipes, CI logs): there the wait says nothing unless asked.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::acquire::Event;
use crate::cli::Reporter;
use crate::cli::report::{Quiet, held_by, human};
use crate::inspect::held_for;

/// How often the line is redrawn while the waiter sleeps.
pub const TICK: Duration = Duration::from_secs(1);

/// The line on stderr; cleared when dropped.
pub struct LiveLine {
    prog: &'static str,
    path: PathBuf,
    shown: bool,
    /// When it was last drawn: attempts that follow each other fast
    /// (`-i 0`) redraw it at most four times a tick.
    drawn: Option<Instant>,
}

impl LiveLine {
    /// A live line for `out`'s program waiting for `path`, if stderr is a
    /// terminal and `-q` was not given.
    pub fn on_stderr(out: &Reporter, path: &Path) -> Option<LiveLine> {
        (out.quiet == Quiet::No && std::io::stderr().is_terminal()).then(|| LiveLine {
            prog: out.prog,
            path: path.to_path_buf(),
            shown: false,
            drawn: None,
        })
    }

    /// Follow the wait: redraw at each pause; make room for any other line.
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::Pausing {
                holder,
                seen_ago,
                attempt,
                attempts,
                next_in,
            } => {
                let now = Instant::now();
                if self
                    .drawn
                    .is_some_and(|at| now.duration_since(at) < TICK / 4)
                {
                    return;
                }
                self.drawn = Some(now);
                let who = match holder {
                    Some((record, age)) => {
                        let age = age.map(|a| a + *seen_ago);
                        held_by(record, held_for(record, age))
                    }
                    None => "busy".to_string(),
                };
                let of = attempts.map(|n| format!(" of {n}")).unwrap_or_default();
                // Round up: "next in 0s" only when it is due.
                let next = Duration::from_secs(next_in.as_millis().div_ceil(1000) as u64);
                // The holder first, the count last: a narrow terminal
                // (80 columns) cuts the count, not who holds the lock.
                let text = format!(
                    "{}: {who}; waiting for {}, attempt {attempt}{of} failed, next in {}",
                    self.prog,
                    self.path.display(),
                    human(next)
                );
                self.draw(&text);
            }
            _ => {
                self.clear();
                self.drawn = None;
            }
        }
    }

    fn draw(&mut self, text: &str) {
        let stderr = std::io::stderr();
        let columns = crate::sys::terminal_columns(stderr.as_fd()).unwrap_or(80);
        // One column short of the edge, so the terminal never wraps.
        let text: String = text.chars().take(columns.saturating_sub(1)).collect();
        crate::cli::report::to_stderr(&format!("\r\x1b[K{text}"));
        self.shown = true;
    }

    /// Remove the line, if shown.
    pub fn clear(&mut self) {
        if std::mem::take(&mut self.shown) {
            crate::cli::report::to_stderr("\r\x1b[K");
        }
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        self.clear();
    }
}
