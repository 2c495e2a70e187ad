//! Unit tests of `record`.

use super::*;

#[test]
fn legacy_records_are_liblockfiles_bytes() {
    assert_eq!(Record::legacy(None).to_bytes(), b"0\n");
    assert_eq!(Record::legacy(Some(1234)).to_bytes(), b"1234\n");
}

#[test]
fn full_record_round_trips() {
    let r = Record {
        pid: Some(77),
        host: Some("mail".into()),
        machine_id: Some("0123456789abcdef0123456789abcdef".into()),
        boot_id: Some("b-1".into()),
        start: Some(123),
        pidns: Some(4026531836),
        stale_after: Some(6),
        cmd: Some("fetchmail".into()),
        args: Some("-d\\ 60 x".into()),
        created: Some(1_700_000_000),
        child: Some(78),
        child_start: Some(124),
        break_lock: true,
        shared: true,
        caller: Some(79),
        caller_start: Some(125),
        keeper: Some(80),
        keeper_start: Some(126),
        token: Some(1_796_601_600_123),
    };
    let bytes = r.to_bytes();
    assert!(
        bytes.ends_with(b"\ntoken=1796601600123\n"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        bytes.starts_with(
            b"77\nhost=mail\nmachine_id=0123456789abcdef0123456789abcdef\nboot_id=b-1\n"
        )
    );
    assert_eq!(Record::parse(&bytes), r);
}

#[test]
fn arguments_round_trip_through_one_line() {
    use std::os::unix::ffi::OsStrExt;
    let cases: &[&[&[u8]]] = &[
        &[b"backup.sh", b"--full"],
        &[b"-c", b"echo 'hi there'\n\tdone \\ ", b""],
        &[b"caf\xc3\xa9", b"\xff\xfe", b"\xc2\x85"],
        &[b"a=b", b"x\\.", b"''"],
    ];
    for &args in cases {
        let os: Vec<&OsStr> = args.iter().map(|a| OsStr::from_bytes(a)).collect();
        let line = escape_args(&os);
        assert!(
            !line.contains('\n') && !line.chars().any(char::is_control),
            "{line:?}"
        );
        let record = Record {
            args: Some(line.clone()),
            ..Record::default()
        };
        let parsed = Record::parse(&record.to_bytes());
        assert_eq!(parsed.args.as_deref(), Some(line.as_str()));
        let want: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(split_args(&line), (want, false), "{line:?}");
    }
}

#[test]
fn long_arguments_are_cut_after_a_whole_escape_and_say_so() {
    for n in 0..12 {
        let long = format!("{}{}", "x".repeat(150 + n), " \\\u{e9}".repeat(4));
        let args = [OsStr::new("-v"), OsStr::new(&long), OsStr::new("tail")];
        let line = escape_args(&args);
        assert!(line.len() <= MAX_ARGS, "{} bytes", line.len());
        assert!(line.ends_with(" \\..."), "{line:?}");
        let (split, cut) = split_args(&line);
        assert!(cut);
        assert_eq!(split[0], "-v");
        assert!(long.starts_with(&split[1]), "{:?}", split[1]);
    }
    let (split, cut) = split_args(&escape_args(&["a"; 10]));
    assert_eq!((split.len(), cut), (10, false));
}

#[test]
fn held_for_counts_from_created() {
    let r = Record {
        created: Some(1_000),
        ..Record::default()
    };
    let at = |s| UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(r.held_for(at(1_065)), Some(Duration::from_secs(65)));
    assert_eq!(r.held_for(at(900)), Some(Duration::ZERO));
    assert_eq!(Record::default().held_for(at(5)), None);
    let negative = Record {
        created: Some(-5),
        ..Record::default()
    };
    assert_eq!(negative.held_for(at(5)), None);
}

#[test]
fn tolerant_parsing() {
    let cases: &[(&[u8], Option<u32>)] = &[
        (b"", None),
        (b"0", None),
        (b"0\n", None),
        (b"42", Some(42)),
        (b"42\n", Some(42)),
        (b"  42  \n", Some(42)),
        (b"42abc\n", None),
        (b"+42\n", None),
        (b"-5\n", None),
        (b"99999999999999999999\n", None),
        (b"\xff\xfe\x00\x01binary", None),
        (b"garbage\nhost=x\n", None),
    ];
    for (bytes, pid) in cases {
        assert_eq!(Record::parse(bytes).pid, *pid, "{bytes:?}");
    }
    let r = Record::parse(b"garbage\nhost=x\nstart=notanumber\n=\nnoequals\n");
    assert_eq!(r.host.as_deref(), Some("x"));
    assert_eq!(r.start, None);
}

#[test]
fn a_holders_record_names_it() {
    let me = std::process::id();
    let r = Record::for_holder(Some(me), Some("job".into()));
    assert_eq!(r.pid, Some(me));
    assert_eq!(r.start, host::start_time(me));
    assert!(r.start.is_some());
    assert_eq!(r.pidns, host::pid_namespace());
    assert_eq!(r.cmd.as_deref(), Some("job"));
    let now = crate::seam::local_now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(r.created.is_some_and(|c| (now - 5..=now).contains(&c)));
    // No pid, no process facts.
    let none = Record::for_holder(None, None);
    assert_eq!((none.pid, none.start, none.pidns), (None, None, None));
}

#[test]
fn the_commands_lines_name_it() {
    let me = std::process::id();
    let mut bytes = b"1\n".to_vec();
    bytes.extend(Record::child_lines(me));
    let r = Record::parse(&bytes);
    assert_eq!(r.child, Some(me));
    assert_eq!(r.child_start, host::start_time(me));
    assert!(r.child_start.is_some());
}

#[test]
fn a_half_written_line_is_not_read() {
    let r = Record::parse(b"7\nhost=h\nchild=12\nchild_start=99");
    assert_eq!(r.child, Some(12));
    assert_eq!(r.child_start, None);
    let r = Record::parse(b"7\nhost=h\nchild=1");
    assert_eq!((r.host.as_deref(), r.child), (Some("h"), None));
    assert!(Record::parse(b"7\nbreak=1\n").break_lock);
    assert!(!Record::parse(b"7\nbreak=0\n").break_lock);
}

#[test]
fn huge_content_is_cut_at_512_bytes() {
    let mut big = b"12\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10_000));
    big.extend(b"\nhost=late\n");
    let r = Record::parse(&big);
    assert_eq!(r.pid, Some(12));
    assert_eq!(r.host, None);
}

#[test]
fn values_cannot_break_lines() {
    let r = Record {
        pid: Some(1),
        cmd: Some("evil\nhost=forged".into()),
        ..Record::default()
    };
    let parsed = Record::parse(&r.to_bytes());
    assert_eq!(parsed.host, None);
    assert_eq!(parsed.cmd.as_deref(), Some("evil?host=forged"));
}

#[test]
fn describe_names_what_is_known() {
    assert_eq!(Record::legacy(None).describe(), "an unknown process");
    let r = Record {
        pid: Some(9),
        cmd: Some("make".into()),
        host: Some("h".into()),
        ..Record::default()
    };
    assert_eq!(r.describe(), "pid 9 (make) on h");
}

#[test]
fn a_lease_is_declared_in_whole_seconds_rounded_up() {
    let lease = |d: Duration| Record::default().with_lease(d).stale_after;
    assert_eq!(lease(Duration::from_secs(6)), Some(6));
    assert_eq!(lease(Duration::from_millis(1500)), Some(2));
    assert_eq!(lease(Duration::from_millis(300)), Some(1));
    assert_eq!(lease(Duration::from_nanos(1)), Some(1));
    assert_eq!(lease(Duration::ZERO), Some(1));
    assert_eq!(lease(Duration::from_secs(300)), Some(300));
    let bytes = Record::legacy(Some(7))
        .with_lease(Duration::from_secs(6))
        .to_bytes();
    assert_eq!(bytes, b"7\nstale_after=6\n");
}

#[test]
fn a_holders_record_names_this_machine_and_its_caller() {
    let me = std::process::id();
    let r = Record::for_holder(Some(me), None);
    assert_eq!(r.machine_id, crate::machine::identity());
    let taken = Record::legacy(None).with_caller(me);
    assert_eq!(taken.caller, Some(me));
    assert_eq!(taken.caller_start, host::start_time(me));
    assert_eq!(taken.pidns, host::pid_namespace());
    assert_eq!(Record::legacy(None).with_caller(0).caller, None);
    let with = Record::default().with_args(&["a b", "c"]);
    assert_eq!(with.args.as_deref(), Some("a\\ b c"));
    assert_eq!(Record::default().with_args::<&str>(&[]).args, None);
}
