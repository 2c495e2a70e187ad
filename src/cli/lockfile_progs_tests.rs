//! lockfile-progs' command lines, read as getopt_long reads them.

use super::*;

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

#[test]
fn getopt_long_as_lockfile_progs() {
    let p = |t, a: &[&str]| parse(t, &args(a));
    let file = |f: &str| Some(OsString::from(f));
    let ok = p(Tool::Create, &["-qp", "-r2", "f"]).unwrap();
    assert_eq!(
        ok,
        Opts {
            quiet: true,
            use_pid: true,
            retries: Some(2),
            file: file("f"),
            ..Opts::default()
        }
    );
    assert_eq!(
        p(Tool::Create, &["f", "--retry=0"]).unwrap().retries,
        Some(0)
    );
    assert_eq!(
        p(Tool::Create, &["--retry", "3", "f"]).unwrap().retries,
        Some(3)
    );
    assert_eq!(
        p(Tool::Create, &["-r", "-1", "f"]).unwrap().retries,
        Some(-1)
    );
    assert!(p(Tool::Touch, &["-o", "-l", "f"]).unwrap().oneshot);
    assert_eq!(p(Tool::Create, &["-x", "f"]), Err(Refusal::Invalid('x')));
    assert_eq!(
        p(Tool::Create, &["--help"]),
        Err(Refusal::Unrecognized("--help".into()))
    );
    assert_eq!(p(Tool::Create, &["-r", "x", "f"]), Err(Refusal::BadRetry));
    assert_eq!(p(Tool::Create, &[]), Err(Refusal::Usage));
    assert_eq!(p(Tool::Create, &["f", "g"]), Err(Refusal::Usage));
    assert_eq!(p(Tool::Remove, &["-p", "f"]), Err(Refusal::Usage));
    assert_eq!(p(Tool::Check, &["-r", "3", "f"]), Err(Refusal::Usage));
    assert_eq!(p(Tool::MailUnlock, &["f"]), Err(Refusal::Usage));
    assert!(p(Tool::MailLock, &["-r", "0"]).is_ok());
    assert_eq!(p(Tool::Create, &["--", "-f"]).unwrap().file, file("-f"));
}

#[test]
fn usage_lines_are_the_real_ones() {
    assert_eq!(
        Tool::Create.usage(),
        "usage: lockfile-create [--use-pid] [--retry retry-count] [--lock-name] file"
    );
    assert_eq!(Tool::MailUnlock.usage(), "usage: mail-unlock");
}
