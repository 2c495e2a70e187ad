//! The `dotlockfile` personality's own rules, where liblockfile 1.17's
//! `dotlockfile` differs from native `dotlock`: its numbers, which of
//! `-c`, `-t` and `-u` wins, its usage text, and no `--` of its own.

use std::ffi::OsString;

use crate::cli::Outcome;
use crate::cli::args::WaitArgs;
use crate::cli::legacy_numbers::{attempts, dotlockfile_interval, dotlockfile_retries};

/// liblockfile 1.17's usage text.
pub const USAGE: &str = "\
Usage:  dotlockfile -l [-r retries] [-i interval] [-p] [-q] <-m|lockfile>
        dotlockfile -l [-r retries] [-i interval] [-p] [-q] <-m|lockfile> [-P] command args...
        dotlockfile -u|-t
";

/// Print the usage text; a usage error (exit 1).
pub fn usage() -> Outcome {
    eprint!("{USAGE}");
    Outcome::Usage
}

/// Read `-r` and `-i` as liblockfile does (`atoi`: `3x` is 3, `4294967295`
/// is -1, forever) and put them back in the form the shared parser takes.
/// `Ok(false)`: the retries make liblockfile try no attempt at all
/// (`-r 2147483647`: `retries + 1` overflows), and it gives up at once.
pub fn read_numbers(wait: &mut WaitArgs) -> Result<bool, Outcome> {
    if let Some(r) = wait.retries.take() {
        let Some(n) = dotlockfile_retries(&r) else {
            if !wait.quiet {
                eprintln!("dotlockfile: -r {r}: invalid argument");
            }
            return Err(Outcome::BadValue);
        };
        wait.retries = Some(n.to_string());
        if n != -1 && attempts(n) <= 0 {
            return Ok(false);
        }
    }
    if let Some(i) = wait.interval.take() {
        let Some(n) = dotlockfile_interval(&i) else {
            eprintln!("dotlockfile: -i needs argument >= 0");
            return Err(Outcome::BadValue);
        };
        wait.interval = Some(n.to_string());
    }
    Ok(true)
}

/// The action flags liblockfile looks at.
pub struct Flags {
    pub lock: bool,
    pub unlock: bool,
    pub touch: bool,
    pub check: bool,
}

/// What `dotlockfile` is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    Lock,
    Unlock,
    Touch,
    Check,
}

/// Which action: `-c` before `-t` before `-u` (liblockfile looks in that
/// order and ignores the rest); any of them with `-l` or a command is a
/// usage error.
pub fn action(flags: &Flags, command: &[OsString]) -> Result<Chosen, Outcome> {
    let chosen = match (flags.check, flags.touch, flags.unlock) {
        (true, _, _) => Chosen::Check,
        (false, true, _) => Chosen::Touch,
        (false, false, true) => Chosen::Unlock,
        (false, false, false) => return Ok(Chosen::Lock),
    };
    if flags.lock || !command.is_empty() {
        return Err(usage());
    }
    Ok(chosen)
}
