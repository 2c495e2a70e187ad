//! Out of file descriptors (`ulimit -n` 3 to 12) at every point of taking a
//! lock, for each tool and mode: either the lock is taken and the command
//! run, or one clear line says why and nothing is left behind — no empty
//! lock directory, no temporary file, no lock without its command, no gate.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use nix::sys::resource::{Resource, setrlimit};

use crate::util::{Scratch, stderr_lines};

#[test]
fn every_tool_and_mode_fails_cleanly_when_out_of_descriptors() {
    let dotlock = crate::util::dotlock_bin();
    let lockdir = crate::lockdir::lockdir_bin();
    let filelock = crate::filelock::filelock_bin();
    let modes: Vec<(&PathBuf, &[&str])> = vec![
        (&dotlock, &["L"]),
        (&dotlock, &["-p", "L"]),
        (&dotlock, &["L", "true"]),
        (&dotlock, &["--shared", "L"]),
        (&dotlock, &["--shared", "L", "true"]),
        (&dotlock, &["--slots", "2", "L", "true"]),
        (&lockdir, &["--pid", "1", "L"]),
        (&lockdir, &["L", "true"]),
        (&lockdir, &["--shared", "L", "true"]),
        (&lockdir, &["--slots", "2", "L", "true"]),
        (&lockdir, &["--trap", "L"]),
        (&filelock, &["A", "B"]),
        (&filelock, &["A", "B", "--", "true"]),
    ];
    let mut failures = 0;
    for (bin, args) in modes {
        let prog = bin.file_name().unwrap().to_string_lossy().into_owned();
        for limit in 3..=12u64 {
            let s = Scratch::new();
            let mut cmd = Command::new(bin);
            cmd.current_dir(s.dir.path()).args(args);
            // SAFETY: setrlimit is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    setrlimit(Resource::RLIMIT_NOFILE, limit, limit).map_err(std::io::Error::from)
                });
            }
            let out = cmd.output().unwrap();
            let what = format!("{prog} {args:?} at ulimit -n {limit}");
            if out.status.success() {
                // A command ran under the lock: it is gone again.
                if args.last() == Some(&"true") {
                    assert_eq!(s.listing(), Vec::<String>::new(), "{what}: left behind");
                }
                continue;
            }
            failures += 1;
            let lines = stderr_lines(&out);
            assert_eq!(lines.len(), 1, "{what}: {out:?}");
            assert!(
                lines[0].starts_with(&format!("{prog}: ")),
                "{what}: {lines:?}"
            );
            assert_eq!(s.listing(), Vec::<String>::new(), "{what}: left behind");
        }
    }
    // The low limits did fail: the test saw the failures it is about.
    assert!(failures >= 13 * 3, "only {failures} failures");
}
