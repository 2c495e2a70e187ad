//! flock(1)'s habits, answered: an option of flock's that is not ours, or
//! flock's `-c 'CMD'` written where our command goes, is a usage error
//! whose one line gives our spelling — never a lock file or a command
//! named `-c`.

use std::ffi::OsStr;

/// flock's options, by every name flock takes, and what to write here.
const HABITS: &[(&[&str], &str)] = &[
    (
        &["-n", "--nb", "--nonblock"],
        "-r 0 (one attempt, no waiting)",
    ),
    (
        &["-w", "--wait", "--timeout"],
        "--timeout SECONDS (e.g. --timeout 10)",
    ),
    (
        &["-x", "-e", "--exclusive"],
        "nothing: a lock is exclusive unless --shared",
    ),
    (
        &["-s", "--shared"],
        "--shared with dotlock or lockdir (a reader's share)",
    ),
    (
        &["-o", "--close"],
        "nothing: the command never holds a descriptor of the lock",
    ),
    (
        &["-F", "--no-fork"],
        "nothing: the command runs as a child, its signals forwarded and its status kept",
    ),
    (
        &["-c", "--command"],
        "the command after the lock, through a shell if it needs one: LOCK sh -c 'CMD'",
    ),
];

/// Our spelling of flock's option `arg` (as clap names an unknown one:
/// `-n`, `--wait`; a value after `=` is ignored), if it is flock's.
pub fn option(arg: &str) -> Option<&'static str> {
    let name = arg.split('=').next().unwrap_or(arg);
    HABITS
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|&(_, ours)| ours)
}

/// The line for a command whose first word is one of flock's options
/// (`dotlock L -c 'make'`): nothing by that name is a command, and a
/// lock tool must not run one as if it were.
pub fn command(prog: &str, first: Option<&OsStr>) -> Option<String> {
    let first = first?.to_str()?;
    let ours = option(first)?;
    Some(match first {
        "-c" | "--command" => format!(
            "{first} after the lock is no command; for flock(1)'s {first} 'CMD' write: {prog} LOCK sh -c 'CMD'"
        ),
        _ => format!("{first} after the lock is no command; flock(1)'s {first} is, here: {ours}"),
    })
}

/// The usage line for flock's option `arg`, which is not ours.
pub fn unknown_option(arg: &str) -> Option<String> {
    let ours = option(arg)?;
    Some(format!("{arg} is flock(1)'s option; here: {ours}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flock_option_has_our_spelling() {
        assert_eq!(option("-n"), Some("-r 0 (one attempt, no waiting)"));
        assert_eq!(option("--nonblock"), option("-n"));
        assert_eq!(option("--wait=10"), option("-w"));
        assert!(option("-w").unwrap().contains("--timeout"));
        assert!(option("-x").unwrap().contains("exclusive"));
        assert!(option("-s").unwrap().contains("--shared"));
        assert!(option("-o").unwrap().starts_with("nothing"));
        assert!(option("-c").unwrap().contains("sh -c"));
        assert_eq!(option("-q"), None);
        assert_eq!(option("--verbos"), None);
    }

    #[test]
    fn a_command_named_like_a_flock_option_is_answered() {
        let line = command("dotlock", Some(OsStr::new("-c"))).unwrap();
        assert_eq!(
            line,
            "-c after the lock is no command; for flock(1)'s -c 'CMD' write: dotlock LOCK sh -c 'CMD'"
        );
        let line = command("lockdir", Some(OsStr::new("-n"))).unwrap();
        assert!(
            line.ends_with("here: -r 0 (one attempt, no waiting)"),
            "{line}"
        );
        assert_eq!(command("dotlock", Some(OsStr::new("make"))), None);
        assert_eq!(command("dotlock", None), None);
        let unknown = unknown_option("-n").unwrap();
        assert_eq!(
            unknown,
            "-n is flock(1)'s option; here: -r 0 (one attempt, no waiting)"
        );
    }
}
