//! On the NFS bed (`nfsbed/`): a real NFS server (nfs-ganesha, NFSv3, in a
//! loopback-only network namespace) and two user-space clients of its
//! export through FUSE, each with its own attribute and name caches,
//! playing two machines. Lost replies, `EIO` and a skewed server clock are
//! switched on the clients while they run.
//!
//! They run only when asked for, `cargo test nfs_bed -- --ignored` (as
//! `.ci/run` does); they need root, `/dev/fuse` and `apt-get install
//! nfs-ganesha nfs-ganesha-vfs rpcbind`. One test runs every configuration in turn on one bed (they
//! share its server and its clients' fault settings), and writes the
//! figures to `target/nfsbed-figures.md` (see BENCHMARKS.md).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{run_with_timeout, skip};

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bed, up for as long as this lives; stopped (only what it started)
/// when dropped, also when a check fails.
struct Bed {
    dir: PathBuf,
    bin: PathBuf,
}

/// `nfsbed/bed.sh ARGS` for the bed in `dir`.
fn bed_sh(dir: &Path, args: &[&str]) -> Output {
    Command::new(root().join("nfsbed/bed.sh"))
        .args(args)
        .env("BED_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run nfsbed/bed.sh")
}

/// [`bed_sh`], which must succeed.
fn bed_ok(dir: &Path, args: &[&str]) {
    let out = bed_sh(dir, args);
    assert!(
        out.status.success(),
        "bed.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Bed {
    fn script(&self, args: &[&str]) {
        bed_ok(&self.dir, args);
    }

    fn start() -> Option<Bed> {
        if !crate::util::is_root() {
            skip("the NFS bed needs root");
            return None;
        }
        let dir = root().join("target/nfsbed-test");
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        for (name, exe) in [
            ("dotlock", env!("CARGO_BIN_EXE_dotlock")),
            ("lockdir", env!("CARGO_BIN_EXE_lockdir")),
            ("filelock", env!("CARGO_BIN_EXE_filelock")),
            ("dotlockfile", env!("CARGO_BIN_EXE_dotlock")),
            ("lockfile", env!("CARGO_BIN_EXE_filelock")),
        ] {
            let link = bin.join(name);
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(exe, &link).unwrap();
        }
        let bed = Bed { dir, bin };
        bed.script(&["stop"]);
        bed.script(&["start"]);
        bed.clean();
        Some(bed)
    }

    /// Client `c`'s view of the export ("a" or "b").
    fn mnt(&self, c: &str) -> PathBuf {
        self.dir.join(c)
    }

    /// What the server holds, as it holds it.
    fn left(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.join("export"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Remove what is left, through a client: behind the server's back its
    /// caches would not know.
    fn clean(&self) {
        for name in self.left() {
            let p = self.mnt("a").join(&name);
            let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
        }
    }

    fn set_faults(&self, c: &str, words: &str) {
        fs::write(self.dir.join(format!("control-{c}")), words).unwrap();
        // The clients read their control file every 100 ms.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// A command on client `c`'s host, in its mount: host A is this
    /// host, host B the bed's machine B (`bed.sh on-b`).
    fn on_host(&self, c: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = match c {
            "b" => {
                let mut cmd = Command::new(root().join("nfsbed/bed.sh"));
                cmd.arg("on-b")
                    .arg(self.bin.join(program))
                    .env("BED_DIR", &self.dir);
                cmd
            }
            _ => Command::new(self.bin.join(program)),
        };
        cmd.args(args).current_dir(self.mnt(c)).stdin(Stdio::null());
        cmd
    }

    /// Machine B as `identity` (`bed.sh identity-b`): `distinct`,
    /// `same-name` or `clone`.
    fn identity_b(&self, identity: &str) {
        self.script(&["identity-b", identity]);
    }
}

impl Bed {
    /// `program args` on host A, once it holds `lock` (as the server sees
    /// it).
    fn held_on_a(&self, program: &str, args: &[&str], lock: &str) -> std::process::Child {
        let holder = self.on_host("a", program, args).spawn().unwrap();
        let there = self.dir.join("export").join(lock);
        crate::util::wait_until("A holds the lock", Duration::from_secs(10), || {
            there.exists()
        });
        holder
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for c in ["a", "b"] {
            let _ = fs::write(self.dir.join(format!("control-{c}")), "");
        }
        let _ = bed_sh(&self.dir, &["stop"]);
    }
}

/// One exclusion run (nfsbed/exclusion.sh): its line of figures, and
/// whether it held (no overlap, no failed worker, nothing left).
fn exclusion(bed: &Bed, kind: &str, fault: &str, cycles: u32) -> (String, bool) {
    let out = run_with_timeout(
        Command::new(root().join("nfsbed/exclusion.sh"))
            .args([bed.bin.to_str().unwrap(), kind, fault, &cycles.to_string()])
            .env("BED_DIR", &bed.dir),
        Duration::from_secs(240),
    );
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let held = out.status.success();
    if !held {
        eprintln!("{line}\n{errors}");
    }
    (line, held)
}

/// The exclusion matrix: every tool and personality, with no faults, with
/// 7 % lost replies on each kind of changing call, and in `eio` mode.
fn exclusion_matrix(bed: &Bed, figures: &mut String) -> Vec<String> {
    every_kind(bed, &["none", "lost=0.07", "eio=0.07"], 100, figures)
}

/// Exclusion runs of every tool and personality under each of `faults`,
/// `cycles` each: their figures, and the lines of those that broke.
fn every_kind(bed: &Bed, faults: &[&str], cycles: u32, figures: &mut String) -> Vec<String> {
    let mut broken = Vec::new();
    for &fault in faults {
        for kind in [
            "dotlock",
            "lockdir",
            "filelock",
            "slots",
            "dotlockfile",
            "lockfile",
        ] {
            let (line, held) = exclusion(bed, kind, fault, cycles);
            writeln!(figures, "    {line}").unwrap();
            if !held {
                broken.push(line);
            }
            bed.clean();
        }
    }
    broken
}

/// Seconds since `t`.
fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

mod fence;
mod keepers;
mod machines;
mod shared_mix;
mod stale;
mod survey;
mod wake;

use fence::fence;
use keepers::keepers;
use machines::{chosen_faults, lease, two_machines_of_one_name};
use shared_mix::{server_restart, shared_mix};
use stale::{clock_skew, cross_host_stale};
use survey::survey;
use wake::early_wake;

#[test]
#[ignore = "the NFS bed: cargo test nfs_bed -- --ignored (root, nfs-ganesha; README: The NFS test bed)"]
fn nfs_bed() {
    let Some(bed) = Bed::start() else { return };
    let started = Instant::now();
    let mut figures =
        String::from("NFS bed figures: 2 clients x 2 processes, 100 lock/unlock cycles each\n\n");
    // NFS_BED_ONLY=early_wake,skew runs those parts alone (the parts:
    // exclusion, stale, machines, faults, keepers, early_wake, restart,
    // skew, survey, fence, shared), while working
    // on them; the figures are then only theirs.
    let only = std::env::var("NFS_BED_ONLY").ok();
    let part = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == name))
    };
    let mut broken = Vec::new();
    if part("exclusion") {
        broken = exclusion_matrix(&bed, &mut figures);
    }
    if part("stale") {
        cross_host_stale(&bed, &mut figures);
    }
    if part("machines") {
        broken.extend(two_machines_of_one_name(&bed, &mut figures));
        lease(&bed, &mut figures);
    }
    if part("faults") {
        broken.extend(chosen_faults(&bed, &mut figures));
    }
    if part("keepers") {
        keepers(&bed, &mut figures);
    }
    if part("early_wake") {
        early_wake(&bed, &mut figures);
    }
    if part("restart") {
        broken.extend(server_restart(&bed, &mut figures));
    }
    if part("skew") {
        clock_skew(&bed, &mut figures);
    }
    if part("survey") {
        survey(&bed, &mut figures);
    }
    if part("fence") {
        fence(&bed, &mut figures);
    }
    if part("shared") {
        for (tool, fault) in [
            ("dotlock", "none"),
            ("dotlock", "lost=0.07"),
            ("lockdir", "none"),
            ("lockdir", "lost=0.07"),
        ] {
            shared_mix(&bed, tool, fault, &mut figures);
        }
    }
    writeln!(figures, "\n    whole run: {:.0} s", since(started)).unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nfsbed-figures.md");
    fs::write(&out, &figures).unwrap();
    eprintln!("{figures}");
    assert!(
        broken.is_empty(),
        "exclusion broken on the bed:\n{broken:#?}"
    );
}
