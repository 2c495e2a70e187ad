//! `lockdir --trap`: the POSIX sh that takes a lock directory in the
//! calling shell and releases it when the script exits or is killed.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::cli::{Outcome, Reporter};

/// `--trap`: print POSIX sh that takes the lock in the calling shell (its
/// `$$` recorded as holder) and, on success, defines `lockdir_release` and
/// sets EXIT, HUP, INT and TERM traps that call it; on failure the code
/// returns non-zero. The idiom that fails closed even when `lockdir`
/// cannot be run at all is
/// `lk=$(lockdir --trap DIR) || exit 1; eval "$lk" || exit 1`.
///
/// zsh (in its own mode, not as sh) runs an EXIT trap set in a function
/// when the function returns, so a lock taken in a function is released
/// from `zshexit_functions`, which runs when the shell exits: the lock
/// outlives the function. zsh skips those hooks when `set -e` ends the
/// shell; the lock is then left with a dead holder (the shell), which the
/// next `lockdir` proves and takes over at once. bash says when it
/// replaces an EXIT trap the script had set.
pub fn trap(
    out: &Reporter,
    passed: &[OsString],
    (slotted, fenced): (bool, bool),
    dir: &OsStr,
    command: &[OsString],
) -> Outcome {
    if !command.is_empty() {
        return out.usage_error("--trap takes a lock directory and no command");
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            out.error(format_args!(
                "cannot find my own program: {}",
                crate::error::describe(&e)
            ));
            return Outcome::BadValue;
        }
    };
    let dir = match std::path::absolute(Path::new(dir)) {
        Ok(p) => p,
        Err(_) => PathBuf::from(dir),
    };
    let mut code = b"__lockdir_bin=".to_vec();
    code.extend(sh_quote(exe.as_os_str().as_encoded_bytes()));
    code.extend(b"\n__lockdir_dir=");
    code.extend(sh_quote(dir.as_os_str().as_encoded_bytes()));
    code.extend(b"\n__lockdir_pid=$$\n");
    code.extend(
        b"lockdir_release() { \"$__lockdir_bin\" -u -q --pid \"$__lockdir_pid\" -- \"$__lockdir_dir\"; }\n",
    );
    // With --slots the slot taken is printed: the lock is DIR.N.
    // What the lock taken prints (the slot, the token: "SLOT TOKEN") is
    // read into __lockdir_out.
    let printing = slotted || fenced;
    code.extend(if printing {
        &b"if __lockdir_out=$(\"$__lockdir_bin\" --pid \"$__lockdir_pid\""[..]
    } else {
        &b"if \"$__lockdir_bin\" --pid \"$__lockdir_pid\""[..]
    });
    for t in passed {
        code.push(b' ');
        code.extend(sh_quote(t.as_encoded_bytes()));
    }
    code.extend(match (slotted, fenced) {
        (true, true) => &b" -- \"$__lockdir_dir\"); then\n\t__lockdir_dir=\"$__lockdir_dir.${__lockdir_out%% *}\"\n\tDOTLOCK_TOKEN=${__lockdir_out#* }; export DOTLOCK_TOKEN\n"[..],
        (true, false) => &b" -- \"$__lockdir_dir\"); then\n\t__lockdir_dir=\"$__lockdir_dir.$__lockdir_out\"\n"[..],
        (false, true) => &b" -- \"$__lockdir_dir\"); then\n\tDOTLOCK_TOKEN=$__lockdir_out; export DOTLOCK_TOKEN\n"[..],
        (false, false) => &b" -- \"$__lockdir_dir\"; then\n"[..],
    });
    code.extend(
        b"\
          \tif [ -n \"${ZSH_VERSION-}\" ] && [ \"$(emulate)\" = zsh ] && eval '[ ${#funcstack} -gt 0 ]'; then\n\
          \t\teval 'zshexit_functions+=(lockdir_release)'\n\
          \telse\n\
          \t\tif [ -n \"${BASH_VERSION-}\" ] && [ -n \"$(trap -p EXIT)\" ]; then\n\
          \t\t\techo \"lockdir: replacing the script's EXIT trap; call lockdir_release from your own\" >&2\n\
          \t\tfi\n\
          \t\ttrap 'lockdir_release' EXIT\n\
          \tfi\n\
          \ttrap 'lockdir_release; trap - EXIT; exit 129' HUP\n\
          \ttrap 'lockdir_release; trap - EXIT; exit 130' INT\n\
          \ttrap 'lockdir_release; trap - EXIT; exit 143' TERM\n\
          else\n\
          \tfalse\n\
          fi\n",
    );
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(&code);
    Outcome::Success
}

/// Single-quote for POSIX sh, byte for byte: every byte literal, `'` as
/// `'\''`. Spaces, `$`, backslashes, newlines and non-UTF-8 bytes survive.
pub fn sh_quote(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in bytes {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote(b"plain"), b"'plain'");
        assert_eq!(sh_quote(b"it's"), b"'it'\\''s'");
        assert_eq!(sh_quote(b"'"), b"''\\'''");
        assert_eq!(sh_quote(b"a b $(x) \\ \n"), b"'a b $(x) \\ \n'");
        assert_eq!(sh_quote(b"\xff"), b"'\xff'");
        assert_eq!(sh_quote(b""), b"''");
    }
}
