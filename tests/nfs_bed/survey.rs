//! `--list` and `--check` on the bed: client B lists client A's locks;
//! `--check` on a client's mount reports a remote (FUSE) filesystem and the
//! clock offset measured against the server — `ok` in step, a `warning`
//! naming procmail and scripts (exit 0) with the server's clock an hour
//! off.

use std::fmt::Write as _;

use serde_json::Value;

use super::Bed;

pub(super) fn survey(bed: &Bed, figures: &mut String) {
    let mut holder = bed.held_on_a("dotlock", &["L", "sleep", "600"], "L");
    let out = bed
        .on_host("b", "dotlock", &["--list", "--json", "."])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let l = listed
        .iter()
        .find(|v| v["lock"].as_str().is_some_and(|p| p.ends_with("L")))
        .unwrap_or_else(|| panic!("A's lock not listed from B: {listed:?}"));
    assert_eq!(l["kind"], "dot-lock", "{l}");
    assert_eq!(l["state"], "held", "{l}");
    assert_eq!(l["pid"], holder.id(), "{l}");
    let _ = holder.kill();
    let _ = holder.wait();
    bed.clean();

    for skew in [0, 3600] {
        let words = match skew {
            0 => String::new(),
            _ => format!("skew={skew}"),
        };
        bed.set_faults("b", &words);
        let out = bed
            .on_host("b", "dotlock", &["--check", "."])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "skew {skew}: {text}");
        let line = |topic: &str| {
            text.lines()
                .find(|l| {
                    l.split_once(' ')
                        .is_some_and(|(_, r)| r.trim_start().starts_with(topic))
                })
                .unwrap_or_else(|| panic!("no {topic} finding: {text}"))
                .to_string()
        };
        let fs_line = line("filesystem:");
        assert!(
            fs_line.contains("FUSE") && fs_line.contains("user space"),
            "{fs_line}"
        );
        let clock = line("clock:");
        match skew {
            0 => assert!(
                clock.starts_with("ok ") && clock.contains("in step"),
                "{clock}"
            ),
            _ => assert!(
                clock.starts_with("warning ")
                    && clock.contains("3600")
                    && clock.contains("procmail's lockfile and scripts"),
                "{clock}"
            ),
        }
        writeln!(
            figures,
            "    --check from client B, server clock {skew:+} s: {clock}"
        )
        .unwrap();
        assert_eq!(
            bed.left(),
            Vec::<String>::new(),
            "--check left its test files"
        );
    }
    bed.set_faults("b", "");
}
