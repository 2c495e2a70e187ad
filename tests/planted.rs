//! Names planted where a shared lock's shares and wants go (`LOCK.r` or
//! `LOCK.w` and twelve hex digits) that are not regular files — a
//! directory, a symbolic link, a FIFO, a socket — are not members: they
//! count for nothing, block neither readers nor writers, and are never
//! removed or followed.

use std::fs;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{Scratch, stderr_lines};

/// What can be planted, by a name for messages.
const KINDS: [&str; 5] = ["directory", "symlink", "dangling symlink", "fifo", "socket"];

fn plant(kind: &str, at: &Path) {
    match kind {
        "directory" => fs::create_dir(at).unwrap(),
        "symlink" => {
            // Points at a file that looks like a live share.
            let target = at.with_file_name("bait");
            fs::write(&target, format!("{}\n", std::process::id())).unwrap();
            symlink(&target, at).unwrap();
        }
        "dangling symlink" => symlink("/nonexistent/share", at).unwrap(),
        "fifo" => nix::unistd::mkfifo(at, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap(),
        "socket" => drop(std::os::unix::net::UnixListener::bind(at).unwrap()),
        _ => unreachable!(),
    }
}

fn still_there(kind: &str, at: &Path) -> bool {
    let Ok(m) = fs::symlink_metadata(at) else {
        return false;
    };
    let t = m.file_type();
    match kind {
        "directory" => t.is_dir(),
        "symlink" | "dangling symlink" => t.is_symlink(),
        "fifo" => t.is_fifo(),
        "socket" => t.is_socket(),
        _ => false,
    }
}

fn run(s: &Scratch, bin: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .current_dir(s.dir.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_non_file_at_a_share_or_want_name_jams_nothing_and_is_left_alone() {
    let tools = [crate::util::dotlock_bin(), crate::lockdir::lockdir_bin()];
    for bin in &tools {
        for tag in ["r", "w"] {
            for kind in KINDS {
                let s = Scratch::new();
                let name = format!("L.{tag}0123456789ab");
                let at = s.path(&name);
                plant(kind, &at);
                let what = format!("{} {kind} at {name}", bin.display());
                // A reader alone, then a writer alone.
                let out = run(&s, bin, &["--shared", "-r", "0", "L", "true"]);
                assert_eq!(out.status.code(), Some(0), "{what}: reader: {out:?}");
                assert!(stderr_lines(&out).is_empty(), "{what}: reader: {out:?}");
                let out = run(&s, bin, &["-r", "0", "L", "true"]);
                assert_eq!(out.status.code(), Some(0), "{what}: writer: {out:?}");
                // A reader holding: a writer is kept out (by the reader,
                // not the planted name), and --status names the planted
                // name once.
                let inside = r#""$TOOL" -r 0 L true 2> w.err; echo $? > w; "$TOOL" --status L >/dev/null 2> status.err"#;
                let out = Command::new(bin)
                    .current_dir(s.dir.path())
                    .env("TOOL", bin)
                    .args(["--shared", "-r", "0", "L", "sh", "-c", inside])
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(0), "{what}: {out:?}");
                assert_eq!(fs::read_to_string(s.path("w")).unwrap(), "4\n", "{what}");
                // The writer's give-up line names the planted name once.
                let gave_up = fs::read_to_string(s.path("w.err")).unwrap();
                assert_eq!(gave_up.lines().count(), 1, "{what}: {gave_up}");
                assert!(
                    gave_up.contains("busy: held shared by 1 reader")
                        && gave_up.contains(&format!("{name} not a regular file, not counted")),
                    "{what}: {gave_up}"
                );
                let said = fs::read_to_string(s.path("status.err")).unwrap();
                assert_eq!(said.lines().count(), 1, "{what}: {said}");
                assert!(
                    said.contains(&name) && said.contains("not a reader, left alone"),
                    "{what}: {said}"
                );
                assert!(
                    still_there(kind, &at),
                    "{what}: the planted name was touched"
                );
                let left: Vec<String> = s
                    .listing()
                    .into_iter()
                    .filter(|n| {
                        ![name.as_str(), "bait", "w", "w.err", "status.err"]
                            .contains(&n.trim_end_matches('/'))
                    })
                    .collect();
                assert!(left.is_empty(), "{what}: left behind: {left:?}");
            }
        }
    }
}
