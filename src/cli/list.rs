//! `--list DIR` (every lock in a directory, with `--stale` and `--clean`)
//! and `--check DIR` (is it safe to lock in), for `dotlock`, `lockdir` and
//! `filelock` alike: each program hands its action flags here first.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::cli::args::{ActionArgs, WaitArgs};
use crate::cli::report::held_by_holder;
use crate::cli::status;
use crate::cli::{Outcome, Reporter};
use crate::survey::{self, Cleaned, Found, Kind};

/// With `--list` or `--check` among `action`'s flags, run it on `dir`
/// (the program's lock operand) and its outcome; else `None`, and the
/// program goes on. `grace`: lockdir's, for ownerless directories.
pub fn maybe(
    prog: &'static str,
    action: &ActionArgs,
    wait: &WaitArgs,
    operands: &[OsString],
    grace: Duration,
) -> Option<Outcome> {
    let out = &Reporter {
        prog,
        quiet: crate::cli::report::Quiet::native(wait.quiet),
        verbose: wait.verbose,
    };
    let surveys = action.list || action.diagnose;
    if action.json && !(action.status || surveys) {
        return Some(out.usage_error("--json goes with --status, --list or --check"));
    }
    if (action.stale || action.clean) && !action.list {
        return Some(out.usage_error("--stale and --clean go with --list"));
    }
    if !surveys {
        return None;
    }
    let others = action.lock || action.unlock || action.check || action.status || action.force;
    if others || (action.list && action.diagnose) {
        return Some(out.usage_error("--list and --check take a directory and no other action"));
    }
    let [dir] = operands else {
        return Some(out.usage_error("--list and --check take one directory"));
    };
    let policy = match wait.parse() {
        Ok((_, stale_after)) => WaitArgs::policy(stale_after, false),
        Err(msg) => return Some(out.bad_value(msg)),
    };
    let dir = Path::new(dir);
    Some(match action.diagnose {
        true => crate::cli::check::run(out, dir, action.json),
        false => list(out, dir, action, &policy, grace),
    })
}

/// `--list`: one line (or JSON object) per lock, member and debris.
fn list(
    out: &Reporter,
    dir: &Path,
    action: &ActionArgs,
    policy: &crate::judge::Policy,
    grace: Duration,
) -> Outcome {
    let found = match survey::survey(dir, policy, grace) {
        Ok(found) => found,
        Err(e) => return out.failed(e),
    };
    let shown = found
        .iter()
        .filter(|f| !action.stale || f.stale || f.kind.is_debris());
    // --clean works in the directory as opened once, not by path each time.
    let opened = match action.clean {
        true => match crate::fs::Dir::open(dir) {
            Ok(d) => Some(d),
            Err(e) => return out.failed(crate::Error::io(dir, e)),
        },
        false => None,
    };
    let mut stdout = std::io::stdout().lock();
    for f in shown {
        let line = match action.json {
            true => object(f).to_string(),
            false => line(f),
        };
        let _ = writeln!(stdout, "{line}");
        let cleaning = opened.as_ref().filter(|_| f.stale || f.kind.is_debris());
        if let Some(opened) = cleaning {
            let said = match survey::clean(opened, f, policy, grace) {
                Ok(Cleaned::Removed) => format!("removed {}", f.path.display()),
                Ok(Cleaned::Changed) => format!("left {}: changed since judged", f.path.display()),
                Ok(Cleaned::Kept(why)) => format!("left {}: {why}", f.path.display()),
                Err(e) => {
                    out.error(&e);
                    continue;
                }
            };
            let _ = writeln!(stdout, "{said}");
        }
    }
    Outcome::Success
}

/// The state of `f` in one word.
fn state(f: &Found) -> &'static str {
    match (f.kind, f.stale, &f.holder) {
        (Kind::NfsSilly, _, _) => "open",
        (Kind::Counter, _, _) => "kept",
        (_, true, _) => "stale",
        (Kind::Temp, false, _) => "live",
        (_, false, Some(_)) => "held",
        (_, false, None) => "gone",
    }
}

/// `--list`'s line for `f`: kind, state, path, and who holds it or why
/// it is stale; a member indented under its lock.
fn line(f: &Found) -> String {
    let what = match (&f.holder, &f.note, f.kind) {
        (_, Some(note), _) => note.clone(),
        (Some(h), None, _) if h.verdict.is_stale() => {
            format!("{} ({})", h.record.describe(), h.verdict)
        }
        (Some(h), None, _) => held_by_holder(h),
        (None, None, Kind::Counter) => match f.token {
            Some(t) => format!("fencing tokens, the last {t}; never removed"),
            None => "fencing tokens, none yet; never removed".into(),
        },
        (None, None, Kind::NfsSilly) => {
            "renamed by an NFS client that still has it open; never removed".into()
        }
        (None, None, _) if f.stale => "left by an attempt that cannot finish".into(),
        (None, None, _) => "an attempt's temporary file, its maker still at work".into(),
    };
    let indent = if f.of.is_some() { "  " } else { "" };
    format!(
        "{indent}{:<14} {:<5} {}: {what}",
        f.kind.word(),
        state(f),
        f.path.display()
    )
}

/// `--list --json`'s object for `f`: `--status --json`'s keys, and `kind`.
fn object(f: &Found) -> serde_json::Value {
    let slot = match f.kind {
        Kind::Slot(n) => Some(n),
        _ => None,
    };
    let mut o = status::json(&f.path, slot, f.holder.as_ref());
    if f.holder.is_none() {
        o["state"] = json!(state(f));
    }
    o["kind"] = json!(f.kind.word());
    if f.kind == Kind::Counter {
        o["token"] = json!(f.token);
    }
    o
}
