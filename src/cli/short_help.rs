//! `-h`: a help that fits a 24-line screen — the usage, the options most
//! calls need, each in a few words, the default wait, and a pointer to
//! `--help`, which keeps every option's full text and the exit statuses.
//! The options themselves stay defined once (`args.rs` and each
//! program's `Args`); here are only their few words.

use clap::Command;

/// The options `-h` shows, by clap id, each in the few words it shows
/// them with, for each program; every other option only in `--help`.
fn few_words(program: &str) -> &'static [(&'static str, &'static str)] {
    match program {
        "dotlock" => &[
            ("unlock", "Unlock (only the caller's lock, unless --force)"),
            ("check", "Check: exit 0 if validly held, else 1"),
            ("status", "Who holds the lock (--json for a program)"),
            ("pid", "Record and trust the parent's pid"),
            ("retries", "Retries after the first attempt; -1: forever"),
            ("timeout", "Give up after DURATION (5, 0.5, 200ms, 2m)"),
            ("conflict_exit_code", "With a COMMAND: exit N when busy"),
            ("quiet", "No \"busy\" line (other errors still said)"),
            ("verbose", "Say whom it waits for"),
        ],
        "lockdir" => &[
            ("unlock", "Release the lock (only if it is ours)"),
            ("check", "Check: exit 0 if validly held, else 1"),
            ("status", "Who holds the lock (--json for a program)"),
            ("trap", "Print sh for eval: take, and release on exit"),
            ("retries", "Retries after the first attempt; -1: forever"),
            ("timeout", "Give up after DURATION (5, 0.5, 200ms, 2m)"),
            ("conflict_exit_code", "With a COMMAND: exit N when busy"),
            ("quiet", "No \"busy\" line (other errors still said)"),
            ("verbose", "Say whom it waits for"),
        ],
        _ => &[
            ("unlock", "Unlock the lock files"),
            ("check", "Check: exit 0 if all are validly held, else 1"),
            ("status", "Who holds each lock (--json for a program)"),
            ("retries", "Retries for each lock; -1: forever"),
            ("timeout", "Give up after DURATION (5, 0.5, 200ms, 2m)"),
            ("conflict_exit_code", "With a COMMAND: exit N when busy"),
            ("quiet", "No \"busy\" line (other errors still said)"),
            ("verbose", "Say whom it waits for"),
        ],
    }
}

/// What `-h` says after the options: the default wait, and where the rest
/// is.
fn default_wait(program: &str) -> &'static str {
    match program {
        "filelock" => {
            "By default each lock is tried 11 times, 1 s apart (about 10 s), then exit 1.\n\
             --help: every option, and the exit statuses."
        }
        _ => {
            "By default: 6 attempts, 5+10+15+20+25 s apart (75 s), then exit 4 (busy).\n\
             --help: every option, and the exit statuses."
        }
    }
}

/// `cmd` with its short help (`-h`) cut to the common options, in few
/// words, and its long help (`--help`) unchanged but for `exit_status`
/// after it.
pub fn with_short_help(cmd: Command, exit_status: String) -> Command {
    let program = cmd.get_name().to_string();
    let words = few_words(&program);
    cmd.after_help(default_wait(&program))
        .after_long_help(exit_status)
        .mut_args(|a| {
            let id = a.get_id().as_str();
            match words.iter().find(|(w, _)| *w == id) {
                Some(&(_, short)) => {
                    // --help keeps the full text.
                    match a.get_long_help().or(a.get_help()).cloned() {
                        Some(full) => a.long_help(full).help(short),
                        None => a.help(short),
                    }
                }
                None => a.hide_short_help(true),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_few_words_name_an_option_of_the_program() {
        for (name, cmd) in [
            ("dotlock", crate::cli::dotlock::command()),
            ("lockdir", crate::cli::lockdir::command()),
            ("filelock", crate::cli::filelock::command()),
        ] {
            let ids: Vec<_> = cmd
                .get_arguments()
                .map(|a| a.get_id().to_string())
                .collect();
            for (id, _) in few_words(name) {
                assert!(ids.iter().any(|i| i == id), "{name}: no option {id}");
            }
        }
    }
}
