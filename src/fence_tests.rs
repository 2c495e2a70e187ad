use std::ffi::OsStr;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

#[test]
fn token_names() {
    for (name, want) in [
        ("1", Ok(Some(1))),
        ("1796601600123", Ok(Some(1_796_601_600_123))),
        ("0012", Ok(Some(12))),
        ("18446744073709551615", Ok(Some(u64::MAX))),
        ("18446744073709551616", Err(())),
        ("99999999999999999999999999", Err(())),
        ("", Ok(None)),
        ("12a", Ok(None)),
        ("-1", Ok(None)),
        ("+1", Ok(None)),
        (" 1", Ok(None)),
        (".lk123.host", Ok(None)),
        ("1e5", Ok(None)),
    ] {
        assert_eq!(token_of(OsStr::new(name)), want, "{name:?}");
    }
}

#[test]
fn the_next_token_is_above_all_seen_and_never_below_the_floor() {
    // (highest, taken, floor) -> next
    for (highest, taken, floor, want) in [
        (None, None, 0, Some(1)),
        (None, None, 1000, Some(1000)),
        (Some(5), None, 0, Some(6)),
        (Some(5), None, 1000, Some(1000)),
        (Some(5000), None, 1000, Some(5001)),
        (Some(5000), Some(5001), 1000, Some(5002)),
        (Some(5000), Some(7), 1000, Some(5001)),
        (None, Some(1000), 1000, Some(1001)),
        (Some(u64::MAX - 1), None, 0, Some(u64::MAX)),
        (Some(u64::MAX), None, 0, None),
        (None, Some(u64::MAX), 0, None),
        (None, None, u64::MAX, Some(u64::MAX)),
    ] {
        assert_eq!(
            next(highest, taken, floor),
            want,
            "{highest:?} {taken:?} {floor}"
        );
    }
}

#[test]
fn milliseconds_of_the_filesystem_clock() {
    assert_eq!(millis(UNIX_EPOCH), 0);
    assert_eq!(millis(UNIX_EPOCH + Duration::from_micros(1_500)), 1);
    assert_eq!(
        millis(UNIX_EPOCH + Duration::from_secs(1_796_601_600)),
        1_796_601_600_000
    );
    assert_eq!(millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
}

#[test]
fn the_counter_sits_beside_the_lock() {
    let lock = LockPath::new("/var/lock/job.lock").unwrap();
    assert_eq!(
        counter_path(&lock),
        PathBuf::from("/var/lock/job.lock.fence")
    );
    let dir = LockPath::new("d/jobs").unwrap();
    assert_eq!(counter_path(&dir), PathBuf::from("d/jobs.fence"));
    // A name of the longest a lock may have still has room for `.fence`.
    let long = "x".repeat(NAME_MAX - crate::path::BREAK_SUFFIX.len());
    let lock = LockPath::new(&long).unwrap();
    assert_eq!(
        counter_path(&lock).file_name().unwrap().len(),
        NAME_MAX,
        "{SUFFIX} is as long as .break"
    );
}
