//! The command-line layer: clap definitions and `main` for each program
//! and personality, over one lock pipeline (`pipeline.rs`). Every program
//! ends in an `Outcome`, turned into its status in one place
//! (`exit.rs`). `main` in `src/bin/` only calls into here, so man
//! pages, completions and tests all use the same definitions.

mod args;
mod check;
mod command_name;
pub mod dotlock;
mod dotlockfile;
pub mod filelock;
mod flock_habits;
mod legacy_numbers;
mod list;
mod live;
pub mod lockdir;
mod lockfile;
mod lockfile_progs;
mod pipeline;
mod report;
mod short_help;
pub mod status;
mod trap;

use std::ffi::{OsStr, OsString};
use std::path::Path;

pub use crate::exit::{Exit, Outcome, Program};
/// What the tests use of the library's insides (not its API).
pub mod testing {
    pub use crate::accounts::{Entry, group_by_name, user_by_name};
    pub use crate::host::{
        Liveness, boot_id, hostname, liveness, pid_namespace, start_time, uptime,
    };
    pub use crate::machine::{APP_ID, identity as machine_identity};
}

/// The one exit status table of the three commands (for docs and tests).
pub use crate::exit_table::{COMMANDS, Situation, TABLE, help_lines, table_markdown, table_roff};
pub use report::{Reporter, say};

/// The programs' entry: drop the setgid group before anything else, run
/// the personality that `argv[0]` names — else `native`, the program's
/// own `main` — and end the process as it says.
pub fn enter(native: fn(Vec<OsString>) -> Exit) -> ! {
    crate::mailbox::drop_privileges();
    finish(run_as(native, std::env::args_os().collect()))
}

/// Run the personality `argv[0]` names, else `native`: the one place a
/// personality is chosen.
pub fn run_as(native: fn(Vec<OsString>) -> Exit, argv: Vec<OsString>) -> Exit {
    match Personality::from_argv0(argv.first().map(OsString::as_os_str)) {
        Personality::Native => native(argv),
        Personality::Dotlockfile => dotlockfile::main(argv),
        Personality::Lockfile => lockfile::main(&argv[1..]),
        Personality::LockfileProgs(tool) => lockfile_progs::main(tool, &argv[0], &argv[1..]),
    }
}

/// Define a program's C `main`, which calls [`enter`] with `$main`. The
/// program must say `#![no_main]`.
///
/// The programs enter at the C `main`: the Rust runtime's own start-up
/// (reading `/proc/self/maps` for a stack guard, an alternate signal stack,
/// SIGPIPE ignored) is about twenty system calls that a tool started once
/// per lock does not need, and SIGPIPE stays as the caller left it.
#[macro_export]
macro_rules! c_main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn main(
            _argc: ::std::ffi::c_int,
            _argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            $crate::cli::enter($main)
        }
    };
}

/// End the process with `exit`.
pub fn finish(exit: Exit) -> ! {
    match exit {
        Exit::Status(code) => std::process::exit(i32::from(code)),
        Exit::Signal(sig) => crate::signals::die_by(sig),
    }
}

/// Which tool we are: chosen by the name we were invoked as (`argv[0]`),
/// so that `dotlockfile`, `lockfile` and lockfile-progs symlinks behave as
/// the old tools — whichever of the three programs they point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// Our own commands: `dotlock`, `lockdir`, `filelock`.
    Native,
    /// liblockfile 1.17's `dotlockfile`, without its known bugs.
    Dotlockfile,
    /// procmail's `lockfile`, without its known bugs.
    Lockfile,
    /// One of Debian's lockfile-progs, without their known bugs.
    LockfileProgs(lockfile_progs::Tool),
}

impl Personality {
    /// The personality for a program invoked as `argv0`.
    pub fn from_argv0(argv0: Option<&OsStr>) -> Personality {
        match argv0.map(Path::new).and_then(Path::file_name) {
            Some(name) if name == "dotlockfile" => Personality::Dotlockfile,
            Some(name) if name == "lockfile" => Personality::Lockfile,
            Some(name) if lockfile_progs::Tool::from_name(name).is_some() => {
                Personality::LockfileProgs(
                    lockfile_progs::Tool::from_name(name).expect("just seen"),
                )
            }
            _ => Personality::Native,
        }
    }
}

/// Parse `argv` with `cmd` into `A`, or the outcome of help, version or a
/// usage error (said in one line on stderr).
pub fn parse<A: clap::FromArgMatches>(
    cmd: clap::Command,
    prog: &str,
    argv: Vec<OsString>,
) -> Result<A, Outcome> {
    parse_matches(cmd, prog, argv).map(|(args, _)| args)
}

/// As [`parse`], with the matches (to pass options on as they were given).
pub fn parse_matches<A: clap::FromArgMatches>(
    cmd: clap::Command,
    prog: &str,
    argv: Vec<OsString>,
) -> Result<(A, clap::ArgMatches), Outcome> {
    // A program without --help (dotlockfile) has none to point at.
    let has_help = !cmd.is_disable_help_flag_set();
    let cmd = with_exit_status(cmd, &argv);
    cmd.try_get_matches_from(argv)
        .and_then(|m| Ok((A::from_arg_matches(&m)?, m)))
        .map_err(|e| clap_failure(prog, &e, has_help))
}

/// With `-h` or `--help` among the arguments, `cmd` with its short help
/// for `-h` and its program's exit status lines after the long help
/// ([`help_lines`], from the exit table). They are built only then: a
/// lock taken or released never pays for formatting them.
pub fn with_exit_status(cmd: clap::Command, argv: &[OsString]) -> clap::Command {
    match COMMANDS.iter().find(|c| **c == cmd.get_name()) {
        Some(name) if asks_help(argv) && !cmd.is_disable_help_flag_set() => {
            short_help::with_short_help(cmd, help_lines(name))
        }
        _ => cmd,
    }
}

/// Do the arguments ask for help (`-h`, `--help`)? Help's words are built
/// only then.
pub fn asks_help(argv: &[OsString]) -> bool {
    argv.iter().skip(1).any(|a| a == "-h" || a == "--help")
}

/// A failed parse: help and version go to stdout; errors are one line on
/// stderr.
fn clap_failure(prog: &str, e: &clap::Error, has_help: bool) -> Outcome {
    use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
    if matches!(e.kind(), DisplayHelp | DisplayVersion) {
        let _ = e.print();
        return Outcome::Shown;
    }
    if !has_help {
        say(prog, clap_one_line(e));
    } else if let Some(line) = flock_habit(e) {
        say(prog, format_args!("{line}; try '{prog} --help'"));
    } else {
        say(
            prog,
            format_args!("{}; try '{prog} --help'", clap_one_line(e)),
        );
    }
    Outcome::Usage
}

/// An unknown option that is flock(1)'s, answered with our spelling.
fn flock_habit(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    match e.get(ContextKind::InvalidArg)? {
        ContextValue::String(arg) => flock_habits::unknown_option(arg),
        _ => None,
    }
}

/// A command whose first word is one of flock(1)'s options (`dotlock L
/// -c 'make'`): a usage error that gives our spelling.
pub fn flock_command(out: &Reporter, command: &[OsString]) -> Result<(), Outcome> {
    match flock_habits::command(out.prog, command.first().map(OsString::as_os_str)) {
        Some(line) => Err(out.usage_error(line)),
        None => Ok(()),
    }
}

/// A clap error in one line, without its `error: ` prefix: what follows
/// the first line before the usage (the names of missing arguments, a
/// "did you mean") is folded into it.
pub fn clap_one_line(err: &clap::Error) -> String {
    one_line(&err.render().to_string())
}

fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let mut out = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if out.ends_with(':') {
        out.pop();
    }
    let mut details = Vec::new();
    let mut tipped = false;
    for line in lines
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
    {
        match line.strip_prefix("tip: ") {
            // The "did you mean" is worth the room; the rest is noise.
            Some(tip) if !tipped && tip.contains("similar") => {
                out.push_str(&format!(" ({tip})"));
                tipped = true;
            }
            Some(_) => {}
            None if !line.is_empty() => details.push(line),
            None => {}
        }
    }
    if !details.is_empty() {
        out.push_str(&format!(": {}", details.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_fold_into_one_line() {
        let missing = "error: the following required arguments were not provided:\n  <LOCKFILE>...\n\nUsage: filelock [OPTIONS] <LOCKFILE>...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(missing),
            "the following required arguments were not provided: <LOCKFILE>..."
        );
        let typo = "error: unexpected argument '--verbos' found\n\n  tip: a similar argument exists: '--verbose'\n\nUsage: dotlock [OPTIONS]\n";
        assert_eq!(
            one_line(typo),
            "unexpected argument '--verbos' found (a similar argument exists: '--verbose')"
        );
        assert_eq!(one_line("error: plain\n"), "plain");
    }

    #[test]
    fn personality_from_name() {
        let p = |s: &str| Personality::from_argv0(Some(OsStr::new(s)));
        assert_eq!(p("dotlock"), Personality::Native);
        assert_eq!(p("/usr/bin/dotlockfile"), Personality::Dotlockfile);
        assert_eq!(p("dotlockfile"), Personality::Dotlockfile);
        assert_eq!(p("/usr/local/bin/lockfile"), Personality::Lockfile);
        assert_eq!(p("filelock"), Personality::Native);
        assert_eq!(Personality::from_argv0(None), Personality::Native);
    }
}
