//! Keepers across machines on the bed: a shell on host A holding a lock
//! with a 3 s lease for 9 s is never entered from host B, which gets the
//! lock within 5 s of the shell's end; after a `kill -9` of a shell whose
//! lease is 30 s, within 5 s too — for `lockdir --trap`, `dotlock -p` and
//! `filelock` without a command.

use std::fmt::Write as _;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Bed;

/// How each tool holds `K` for the shell, with `--stale-after S`.
fn hold(bed: &Bed, tool: &str, stale: &str) -> String {
    let bin = bed.bin.join(tool);
    let bin = bin.display();
    match tool {
        "lockdir" => {
            format!("lk=$('{bin}' --trap --stale-after {stale} K) && eval \"$lk\" || exit 9")
        }
        "dotlock" => format!("'{bin}' -p --stale-after {stale} K || exit 9"),
        _ => format!("'{bin}' --stale-after {stale} K || exit 9"),
    }
}

/// A shell on host A running `script` in its mount.
fn shell_on_a(bed: &Bed, script: &str) -> Child {
    Command::new("sh")
        .args(["-c", script])
        .current_dir(bed.mnt("a"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// One attempt from host B, releasing what it gets.
fn taken_from_b(bed: &Bed, tool: &str, stale: &str) -> bool {
    let out = bed
        .on_host(
            "b",
            tool,
            &["-r", "0", "--no-keeper", "--stale-after", stale, "K"],
        )
        .output()
        .unwrap();
    if out.status.success() {
        let args: &[&str] = match tool {
            "filelock" => &["-u", "K"],
            _ => &["-u", "--force", "K"],
        };
        let _ = bed.on_host("b", tool, args).output();
    }
    out.status.success()
}

pub(super) fn keepers(bed: &Bed, figures: &mut String) {
    let there = bed.dir.join("export").join("K");
    for tool in ["lockdir", "dotlock", "filelock"] {
        // Three leases of 3 s: never entered while the shell lives.
        let mut shell = shell_on_a(bed, &format!("{}; sleep 9", hold(bed, tool, "3s")));
        crate::util::wait_until("the shell holds", Duration::from_secs(10), || {
            there.exists()
        });
        let mut ended: Option<Instant> = None;
        let after = loop {
            if ended.is_none() && shell.try_wait().unwrap().is_some() {
                ended = Some(Instant::now());
            }
            let got = taken_from_b(bed, tool, "3s");
            match (got, ended) {
                (true, None) => {
                    assert!(
                        shell.try_wait().unwrap().is_some(),
                        "{tool}: host B entered while the shell on host A lives"
                    );
                    break 0.0;
                }
                (true, Some(t)) => break t.elapsed().as_secs_f64(),
                (false, Some(t)) => assert!(
                    t.elapsed() < Duration::from_secs(5),
                    "{tool}: not had from host B 5 s after the shell's end"
                ),
                (false, None) => {}
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let _ = shell.wait();
        assert_eq!(bed.left(), Vec::<String>::new());
        // A 30 s lease, and the shell killed with SIGKILL.
        let pidfile = bed.dir.join("shell.pid");
        let _ = fs::remove_file(&pidfile);
        let script = format!(
            "echo $$ > '{}'; {}; exec sleep 100",
            pidfile.display(),
            hold(bed, tool, "30s")
        );
        let mut shell = shell_on_a(bed, &script);
        crate::util::wait_until("the shell holds", Duration::from_secs(10), || {
            there.exists()
        });
        let pid: i32 = fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let killed = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = shell.wait();
        while !taken_from_b(bed, tool, "30s") {
            assert!(
                killed.elapsed() < Duration::from_secs(5),
                "{tool}: not had from host B 5 s after the shell was killed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let took = killed.elapsed().as_secs_f64();
        assert_eq!(bed.left(), Vec::<String>::new());
        writeln!(
            figures,
            "    {tool} for a shell on host A: never entered from host B in 3 leases, had {after:.1} s after its end, {took:.1} s after its kill -9 (lease 30 s)"
        )
        .unwrap();
    }
}
