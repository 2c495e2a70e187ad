//! `--shared` at its edges: what it refuses (one line, nothing made), and
//! a writer or reader ended while waiting, which leaves nothing behind and
//! keeps nobody out.

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use crate::shared::{finish, holder, lines, lockdir, members, shared, tool};
use crate::util::{Scratch, wait_until, wait_with_timeout};

#[test]
fn shared_refuses_what_it_cannot_do_with_one_line_and_creates_nothing() {
    let s = Scratch::new();
    let long = "a".repeat(236);
    for (args, code, line) in [
        (
            vec!["--shared", long.as_str()],
            1,
            format!("dotlock: {long}: name too long"),
        ),
        (
            vec!["--shared", "--slots", "2", "L"],
            1,
            "dotlock: --shared does not go with -m or --slots; try 'dotlock --help'".into(),
        ),
        (
            vec!["--shared", "-c", "L"],
            1,
            "dotlock: --shared goes with locking, -u and -t; -c and --status see readers anyway; \
             try 'dotlock --help'"
                .into(),
        ),
    ] {
        let out = s.expect(s.dotlock().args(&args), code);
        assert_eq!(crate::util::stderr_lines(&out), [line], "{args:?}");
    }
    // 235 bytes still fit.
    let fits = "a".repeat(235);
    s.expect(shared(&s).arg(&fits), 0);
    s.expect(shared(&s).args(["-u", &fits]), 0);
    let out = s.expect(tool(&s, &lockdir()).args(["--shared", "--trap", "D"]), 1);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "false\n");
    assert_eq!(s.listing(), Vec::<String>::new(), "nothing was created");
}

#[test]
fn a_writer_killed_while_waiting_keeps_no_reader_out() {
    let s = Scratch::new();
    let reader = holder(&s, &["--shared"], "R1", "3");
    wait_until("R1 in", Duration::from_secs(20), || lines(&s, "start") == 1);
    let mut writer = s
        .dotlock()
        .args(["-r", "-1", "L", "true"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the writer's want", Duration::from_secs(20), || {
        members(&s).iter().any(|n| n.starts_with("L.w"))
    });
    // A reader arriving now is kept out by the want...
    s.expect(shared(&s).args(["-r", "0", "L", "true"]), 4);
    writer.kill().unwrap();
    writer.wait().unwrap();
    // ... and once the writer is killed, its want is proven dead at once.
    s.expect(shared(&s).args(["-r", "0", "L", "true"]), 0);
    finish(reader);
    assert_eq!(members(&s), Vec::<String>::new(), "the want was removed");
}

#[test]
fn a_reader_ended_by_a_signal_while_waiting_leaves_nothing() {
    let s = Scratch::new();
    let writer = holder(&s, &[], "W", "2");
    wait_until("W in", Duration::from_secs(20), || lines(&s, "start") == 1);
    let reader = s
        .dotlock()
        .args(["--shared", "-r", "-1", "--verbose", "L", "true"])
        .stderr(fs::File::create(s.path("r.err")).unwrap())
        .spawn()
        .unwrap();
    wait_until("the reader waiting", Duration::from_secs(20), || {
        fs::read_to_string(s.path("r.err")).is_ok_and(|e| e.contains("waiting for L"))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(reader.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_with_timeout(reader, Duration::from_secs(10));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "it dies by the signal");
    assert_eq!(members(&s), Vec::<String>::new(), "no share, no gate");
    finish(writer);
    fs::remove_file(s.path("r.err")).unwrap();
    assert_eq!(s.listing(), ["log"]);
}
