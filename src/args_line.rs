//! A command's arguments on one line of an owner record (`args=`),
//! reversibly: [`escape_args`] writes it, [`split_args`] reads it back.

use std::ffi::OsStr;

/// At most this many bytes of a record's `args=` value.
pub const MAX_ARGS: usize = 160;

/// Marks an `args=` value cut short at [`MAX_ARGS`] (never written
/// otherwise: `\.` is no escape of [`escape_args`]).
const CUT: &str = " \\...";

/// A command's arguments on one line, reversibly ([`split_args`]): the
/// arguments are separated by spaces; in each, a backslash is written
/// `\\`, a space `\ `, a quote `\'`, a byte that is a control character
/// or not part of UTF-8 `\xHH`; an empty argument is `''`. Longer than
/// [`MAX_ARGS`] bytes, the line is cut after a whole escape and ends with
/// ` \...`.
pub fn escape_args<A: AsRef<OsStr>>(args: &[A]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    let mut cut = false;
    'args: for (i, arg) in args.iter().enumerate() {
        let mut token = String::new();
        let bytes = arg.as_ref().as_bytes();
        if bytes.is_empty() {
            token.push_str("''");
        }
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => token.push_str("\\\\"),
                    ' ' => token.push_str("\\ "),
                    '\'' => token.push_str("\\'"),
                    c if c.is_control() => {
                        for b in c.encode_utf8(&mut [0; 4]).bytes() {
                            token.push_str(&format!("\\x{b:02x}"));
                        }
                    }
                    c => token.push(c),
                }
            }
            for b in chunk.invalid() {
                token.push_str(&format!("\\x{b:02x}"));
            }
        }
        let sep = usize::from(i > 0);
        if out.len() + sep + token.len() <= MAX_ARGS {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&token);
            continue;
        }
        // Too long: keep what fits of this argument, whole escapes only.
        let room = MAX_ARGS.saturating_sub(out.len() + sep + CUT.len());
        let mut part = String::new();
        let mut rest = token.as_str();
        while let Some(c) = rest.chars().next() {
            let len = if c == '\\' {
                if rest[1..].starts_with('x') {
                    4
                } else {
                    1 + rest[1..].chars().next().map_or(0, char::len_utf8)
                }
            } else {
                c.len_utf8()
            };
            if part.len() + len > room {
                break;
            }
            part.push_str(&rest[..len]);
            rest = &rest[len..];
        }
        if !part.is_empty() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&part);
        }
        cut = true;
        break 'args;
    }
    if cut {
        while out.len() + CUT.len() > MAX_ARGS {
            out.pop();
        }
        out.push_str(CUT);
    }
    out
}

/// The arguments [`escape_args`] wrote, and whether they were cut short.
/// Bytes that were not UTF-8 come back as U+FFFD.
pub fn split_args(line: &str) -> (Vec<String>, bool) {
    let (line, cut) = match line.strip_suffix(CUT.trim_start()) {
        Some(rest) => (rest.strip_suffix(' ').unwrap_or(rest), true),
        None => (line, false),
    };
    let mut args = Vec::new();
    let mut bytes = Vec::new();
    let mut any = false;
    let mut chars = line.chars();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if any {
                    args.push(String::from_utf8_lossy(&bytes).into_owned());
                }
                bytes.clear();
                any = false;
            }
            '\\' => {
                any = true;
                match chars.next() {
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).collect();
                        if let Ok(b) = u8::from_str_radix(&hex, 16) {
                            bytes.push(b);
                        }
                    }
                    Some(c) => bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
                    None => {}
                }
            }
            '\'' if chars.as_str().starts_with('\'') => {
                chars.next();
                any = true;
            }
            c => {
                any = true;
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    if any {
        args.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    (args, cut)
}
