use super::*;

fn class(name: &str, is_dir: bool, names: &[&str]) -> Option<(Kind, Option<String>)> {
    let set: HashSet<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    classify(name.as_bytes(), is_dir, &set)
        .map(|(k, of)| (k, of.map(|b| String::from_utf8_lossy(b).into_owned())))
}

#[test]
fn names_tell_the_kind_and_the_lock_they_belong_to() {
    let names = [
        "q.lock", "q.lock.1", "q.lock.2", "s.3", "s.4", "lone.7", "v1.2",
    ];
    let of = |s: &str| Some(s.to_string());
    assert_eq!(class("q.lock", false, &names), Some((Kind::DotLock, None)));
    assert_eq!(
        class("q.lock.1", false, &names),
        Some((Kind::Slot(1), of("q.lock")))
    );
    // Slots whose base is missing, if another slot of it is there.
    assert_eq!(class("s.3", false, &names), Some((Kind::Slot(3), of("s"))));
    // A fencing counter is a directory beside its lock; a file so named
    // is no counter of ours.
    assert_eq!(
        class("q.lock.fence", true, &names),
        Some((Kind::Counter, of("q.lock")))
    );
    assert_eq!(class("q.lock.fence", false, &names), None);
    assert_eq!(class(".fence", true, &names), Some((Kind::LockDir, None)));
    // A lone number after a dot is no slot: a version, a log rotation.
    assert_eq!(class("lone.7", false, &names), None);
    assert_eq!(class("v1.2", false, &names), None);
    assert_eq!(
        class("q.lock.r0123456789ab", false, &names),
        Some((Kind::Share, of("q.lock")))
    );
    assert_eq!(
        class("q.lock.wcdef01234567", false, &names),
        Some((Kind::Want, of("q.lock")))
    );
    assert_eq!(
        class("q.lock.r0123456789a", false, &names),
        None,
        "11 digits"
    );
    assert_eq!(
        class("q.lock.r0123456789AB", false, &names),
        None,
        "upper case"
    );
    assert_eq!(
        class("q.lock.gate", false, &names),
        Some((Kind::Gate, of("q.lock")))
    );
    assert_eq!(
        class("q.lock.break", false, &names),
        Some((Kind::Break, of("q.lock")))
    );
    assert_eq!(
        class(".lk12345abcdef01.host", false, &names),
        Some((Kind::Temp, None))
    );
    assert_eq!(
        class(".nfs000000000001", false, &names),
        Some((Kind::NfsSilly, None))
    );
    assert_eq!(class("D", true, &names), Some((Kind::LockDir, None)));
    assert_eq!(class("notes.txt", false, &names), None);
    assert_eq!(class(".break", false, &names), None, "no lock before it");
    assert_eq!(class("x.0", false, &["x", "x.0"]), None, "slots start at 1");
    assert_eq!(
        class("x.01", false, &["x", "x.01"]),
        None,
        "no leading zero"
    );
    assert_eq!(
        class("x.10001", false, &["x", "x.10001"]),
        None,
        "at most 10000"
    );
    assert_eq!(
        class("x.10000", false, &["x", "x.10000"]),
        Some((Kind::Slot(10_000), of("x")))
    );
}

#[test]
fn records_ours_and_the_legacy_tools() {
    assert!(is_lockutils_record(b"42\nhost=a\ncreated=1700000000\n"));
    assert!(!is_lockutils_record(b"42\nhost=a\n"), "no created=");
    assert!(
        !is_lockutils_record(b"From joe\nhost=a\ncreated=1\n"),
        "not a pid line"
    );
    assert!(!is_lockutils_record(b"\nhost=a\ncreated=1\n"));
    assert!(is_legacy_pid_line(b"4242\n"));
    assert!(is_legacy_pid_line(b"0"));
    assert!(is_legacy_pid_line(b""), "procmail's empty lock");
    assert!(!is_legacy_pid_line(b"42\n43\n"));
    assert!(!is_legacy_pid_line(b"From joe\n"));
    assert!(!is_legacy_pid_line(b"42 \n"));
}

#[test]
fn words_of_each_kind() {
    assert_eq!(Kind::Slot(3).word(), "slot");
    assert_eq!(Kind::Break.word(), "break lock");
    assert!(Kind::Temp.is_debris() && Kind::NfsSilly.is_debris());
    assert!(!Kind::Gate.is_debris());
}
