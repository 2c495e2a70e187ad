//! The numbers the personalities take, read exactly as their C ancestors
//! read them: `atoi(3)` (`(int)strtol(s, NULL, 10)`: leading blanks and a
//! sign, as many digits as there are, the rest ignored, clamped to `long`
//! and then cut to `int`) and `sscanf("%d")`. So `3x` is 3, `+5` is 5,
//! `1e30` is 1, and `4294967295` is -1 — what scripts written against the
//! old tools rely on, and what they get.

/// `strtol(s, NULL, 10)`: `None` when no digit was read.
fn strtol(s: &str) -> Option<i64> {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let mut value: i64 = 0;
    for b in rest.bytes().take(digits) {
        let d = i64::from(b - b'0');
        value = match value.checked_mul(10).and_then(|v| match negative {
            true => v.checked_sub(d),
            false => v.checked_add(d),
        }) {
            Some(v) => v,
            None if negative => return Some(i64::MIN),
            None => return Some(i64::MAX),
        };
    }
    Some(value)
}

/// `atoi(s)`: 0 where no digit was read.
pub fn atoi(s: &str) -> i32 {
    // The C cast from long to int keeps the low 32 bits.
    strtol(s).unwrap_or(0) as i32
}

/// `sscanf(s, "%d")`: `None` when it matches nothing.
pub fn scan_int(s: &str) -> Option<i32> {
    strtol(s).map(|v| v as i32)
}

/// How many attempts liblockfile makes for `retries`: `retries + 1` in
/// `int` arithmetic, so `-r 2147483647` makes none at all.
pub fn attempts(retries: i32) -> i32 {
    retries.wrapping_add(1)
}

/// What liblockfile 1.17's `dotlockfile -r` makes of its argument: the
/// retries (-1: forever), or `None` for "invalid argument" (below -1, or
/// 0 from anything but "0").
pub fn dotlockfile_retries(s: &str) -> Option<i32> {
    match atoi(s) {
        0 if s != "0" => None,
        n if n < -1 => None,
        n => Some(n),
    }
}

/// What `dotlockfile -i` makes of its argument: seconds, or `None` for
/// "-i needs argument >= 0".
pub fn dotlockfile_interval(s: &str) -> Option<u32> {
    match atoi(s) {
        0 if s != "0" => None,
        n => u32::try_from(n).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_reads_as_c_does() {
        assert_eq!(atoi("3x"), 3);
        assert_eq!(atoi("+5"), 5);
        assert_eq!(atoi("1e30"), 1);
        assert_eq!(atoi(" \t7"), 7);
        assert_eq!(atoi("-12"), -12);
        assert_eq!(atoi("x"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("-"), 0);
        assert_eq!(atoi("0x10"), 0);
        assert_eq!(atoi("2147483647"), i32::MAX);
        assert_eq!(atoi("2147483648"), i32::MIN);
        assert_eq!(atoi("4294967295"), -1);
        assert_eq!(atoi("4294967296"), 0);
        assert_eq!(atoi("4294967297"), 1);
        // Clamped to LONG_MAX / LONG_MIN first, then cut.
        assert_eq!(atoi("99999999999999999999"), -1);
        assert_eq!(atoi("-99999999999999999999"), 0);
        assert_eq!(atoi("9223372036854775807"), -1);
        assert_eq!(atoi("9223372036854775806"), -2);
    }

    #[test]
    fn scan_int_needs_a_digit() {
        assert_eq!(scan_int("3x"), Some(3));
        assert_eq!(scan_int(" -1"), Some(-1));
        assert_eq!(scan_int("x"), None);
        assert_eq!(scan_int(""), None);
        assert_eq!(scan_int("+"), None);
        assert_eq!(scan_int("0x10"), Some(0));
        assert_eq!(scan_int("4294967296"), Some(0));
    }

    #[test]
    fn dotlockfile_retries_as_liblockfile() {
        for (arg, want) in [
            ("0", Some(0)),
            ("5", Some(5)),
            ("-1", Some(-1)),
            ("3x", Some(3)),
            ("+1", Some(1)),
            ("1e30", Some(1)),
            (" 5", Some(5)),
            ("4294967295", Some(-1)),
            ("4294967297", Some(1)),
            ("99999999999999999999", Some(-1)),
            ("2147483647", Some(i32::MAX)),
            ("x", None),
            ("", None),
            ("-2", None),
            ("00", None),
            ("0 ", None),
            ("-0", None),
            ("0x10", None),
            ("4294967296", None),
            ("2147483648", None),
        ] {
            assert_eq!(dotlockfile_retries(arg), want, "-r {arg:?}");
        }
        assert_eq!(attempts(5), 6);
        assert_eq!(attempts(0), 1);
        assert!(attempts(i32::MAX) <= 0);
    }

    #[test]
    fn dotlockfile_interval_as_liblockfile() {
        for (arg, want) in [
            ("0", Some(0)),
            ("3", Some(3)),
            ("3x", Some(3)),
            ("+2", Some(2)),
            (" 3", Some(3)),
            ("1e30", Some(1)),
            ("4294967297", Some(1)),
            ("x", None),
            ("-1", None),
            ("-0", None),
            ("00", None),
            ("0x10", None),
            ("4294967296", None),
            ("2147483648", None),
        ] {
            assert_eq!(dotlockfile_interval(arg), want, "-i {arg:?}");
        }
    }
}
