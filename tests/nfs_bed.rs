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
use std::time::{Duration, Instant, SystemTime};

use crate::util::{run_with_timeout, skip};

fn root() -> PathBuf {
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

    /// A command on client `c`'s host: its own UTS namespace, host name
    /// `host-c`.
    fn on_host(&self, c: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\""])
            .arg(format!("host-{c}"))
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(self.mnt(c))
            .stdin(Stdio::null());
        cmd
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
    let mut broken = Vec::new();
    for fault in ["none", "lost=0.07", "eio=0.07"] {
        for kind in [
            "dotlock",
            "lockdir",
            "filelock",
            "slots",
            "dotlockfile",
            "lockfile",
        ] {
            let (line, held) = exclusion(bed, kind, fault, 100);
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

/// A holder on host A killed with SIGKILL is taken over from host B once
/// `--stale-after` has passed; a live command-mode holder on A is never
/// broken from B with a `--stale-after` just past the attribute cache time.
fn cross_host_stale(bed: &Bed, figures: &mut String) {
    // The dead holder: dotlock and its command, killed at once.
    let mut holder = bed.held_on_a("dotlock", &["L", "sleep", "1000"], "L");
    // unshare and sh exec, so the holder's pid is dotlock's; its command
    // is its child.
    let children = format!("/proc/{0}/task/{0}/children", holder.id());
    let mut command = String::new();
    crate::util::wait_until("dotlock runs its command", Duration::from_secs(10), || {
        command = fs::read_to_string(&children).unwrap_or_default();
        !command.trim().is_empty()
    });
    let killed = Instant::now();
    holder.kill().unwrap();
    for pid in command.split_whitespace() {
        let pid = nix::unistd::Pid::from_raw(pid.parse().unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    holder.wait().unwrap();
    let out = run_with_timeout(
        &mut bed.on_host(
            "b",
            "dotlock",
            &["--stale-after", "4s", "-r", "-1", "L", "true"],
        ),
        Duration::from_secs(30),
    );
    let took = since(killed);
    assert!(out.status.success(), "B never took over: {out:?}");
    // Not before the stale age (the lock was last touched when taken).
    assert!(took >= 3.5, "B broke a 4 s stale age after {took:.1} s");
    assert!(
        took < 20.0,
        "B took {took:.1} s to take over a 4 s stale lock"
    );
    writeln!(
        figures,
        "    dead holder on host A, --stale-after 4s: taken over from host B after {took:.1} s"
    )
    .unwrap();
    assert_eq!(bed.left(), Vec::<String>::new());

    // The live holder, touching its lock every third of 5 s; B tries for
    // 15 s with the same stale age, 2 s past the 3 s attribute cache.
    let mut holder = bed.held_on_a("dotlock", &["--stale-after", "5s", "L", "sleep", "18"], "L");
    let out = run_with_timeout(
        &mut bed.on_host(
            "b",
            "dotlock",
            &["--stale-after", "5s", "-r", "15", "-i", "1", "L", "true"],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "B broke a live holder's lock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = holder.wait().unwrap();
    assert!(
        status.success(),
        "the live holder lost its lock: {status:?}"
    );
    writeln!(
        figures,
        "    live holder on host A, --stale-after 5s (actimeo 3 s): never broken from host B in 15 attempts"
    )
    .unwrap();
    assert_eq!(bed.left(), Vec::<String>::new());
}

/// One hand-over from host A to a waiter on host B: A holds `lock` with
/// `holder` (a command that ends by releasing it); B starts `waiter` once
/// the lock is there. Returns B's output, how long after A's release B was
/// done, and how long B ran in all.
fn hand_over(bed: &Bed, holder: &[&str], waiter: &[&str], lock: &str) -> (Output, f64, f64) {
    let mut a = bed.held_on_a(holder[0], &holder[1..], lock);
    let started = Instant::now();
    let b = std::thread::spawn({
        let mut cmd = bed.on_host("b", waiter[0], &waiter[1..]);
        move || run_with_timeout(&mut cmd, Duration::from_secs(40))
    });
    let status = a.wait().unwrap();
    let released = Instant::now();
    assert!(status.success(), "the holder on A failed: {status:?}");
    let out = b.join().unwrap();
    (out, since(released), since(started))
}

/// Early wake across machines: a waiter on host B whose schedule says
/// 60 s takes the lock within a few seconds of its release on host A (it
/// probes; B's kernel sees nothing of A's changes), for dotlock, lockdir,
/// filelock and `--slots`; the `dotlockfile` and `lockfile` personalities
/// keep their legacy sleeps; and `-r 2` still gives up after exactly three
/// counted attempts.
fn early_wake(bed: &Bed, figures: &mut String) {
    let cases: [(&str, &[&str], &[&str], &str); 4] = [
        (
            "dotlock",
            &["dotlock", "L", "sleep", "2"],
            &["dotlock", "--verbose", "-i", "60", "-r", "1", "L", "true"],
            "L",
        ),
        (
            "lockdir",
            &["lockdir", "L", "sleep", "2"],
            &["lockdir", "--verbose", "-i", "60", "-r", "1", "L", "true"],
            "L",
        ),
        (
            "filelock",
            &["filelock", "L", "--", "sleep", "2"],
            &[
                "filelock",
                "--verbose",
                "-i",
                "60",
                "-r",
                "1",
                "L",
                "--",
                "true",
            ],
            "L",
        ),
        (
            "--slots 1",
            &["dotlock", "--slots", "1", "L", "sleep", "2"],
            &[
                "dotlock",
                "--verbose",
                "--slots",
                "1",
                "-i",
                "60",
                "-r",
                "1",
                "L",
                "true",
            ],
            "L.1",
        ),
    ];
    for (name, holder, waiter, lock) in cases {
        let (out, after, _) = hand_over(bed, holder, waiter, lock);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name}: B did not take the lock: {err}"
        );
        assert!(err.contains("waiting for"), "{name}: B never waited: {err}");
        // Its next counted attempt was 60 s away.
        assert!(
            after < 5.0,
            "{name}: B took the lock {after:.1} s after A released it"
        );
        writeln!(
            figures,
            "    early wake, {name} with -i 60 on host B: done {after:.2} s after host A released"
        )
        .unwrap();
        assert_eq!(bed.left(), Vec::<String>::new());
    }
    // The personalities: the first retry after 5 s, however soon the
    // lock is free (A holds it for about 1 s).
    for (name, waiter) in [
        ("dotlockfile", &["dotlockfile", "-r", "1", "L"][..]),
        ("lockfile", &["lockfile", "-5", "-r", "1", "L"][..]),
    ] {
        let (out, _, took) = hand_over(bed, &["dotlock", "L", "sleep", "1"], waiter, "L");
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(took >= 4.9, "{name} woke early, after {took:.1} s");
        fs::remove_file(bed.mnt("b").join("L")).unwrap();
        writeln!(
            figures,
            "    legacy timing, {name} personality on host B: took the lock {took:.1} s after it started (lock free after 1 s)"
        )
        .unwrap();
    }
    assert_eq!(bed.left(), Vec::<String>::new());

    // -r 2 against a holder that stays: three counted attempts, two full
    // sleeps, probes or not.
    let mut holder = bed.held_on_a("dotlock", &["L", "sleep", "60"], "L");
    let count = bed.dir.join("attempts");
    let _ = fs::remove_file(&count);
    let started = Instant::now();
    let out = run_with_timeout(
        bed.on_host("b", "dotlock", &["-r", "2", "-i", "2", "L", "true"])
            .env("LOCKUTILS_TEST_COUNT_ATTEMPTS", &count),
        Duration::from_secs(40),
    );
    let took = since(started);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let attempts = fs::read_to_string(&count).unwrap().lines().count();
    assert_eq!(attempts, 3, "-r 2 made {attempts} counted attempts");
    assert!(
        (3.9..20.0).contains(&took),
        "-r 2 -i 2 gave up after {took:.1} s"
    );
    let pid = nix::unistd::Pid::from_raw(holder.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    holder.wait().unwrap();
    writeln!(
        figures,
        "    -r 2 -i 2 on host B against a live holder: gave up after {attempts} counted attempts, {took:.1} s"
    )
    .unwrap();
    assert_eq!(bed.left(), Vec::<String>::new());
}

/// ganesha stopped and started again during a run: nothing overlaps, no
/// worker fails, nothing is left.
fn server_restart(bed: &Bed, figures: &mut String) -> Option<String> {
    let dir = bed.dir.clone();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        bed_ok(&dir, &["restart-server", "2"]);
    });
    let (line, held) = exclusion(bed, "dotlock", "none", 100);
    restarter.join().unwrap();
    writeln!(figures, "    server restarted 2 s into the run: {line}").unwrap();
    bed.clean();
    (!held).then_some(line)
}

/// The server an hour ahead of the client, then an hour behind: a fresh
/// lock is never stale, and a lock 310 s old on the server's clock is
/// broken on the first attempt.
fn clock_skew(bed: &Bed, figures: &mut String) {
    for skew in [3600, -3600] {
        bed.set_faults("b", &format!("skew={skew}"));
        // A fresh lock, taken from host A (no skew there).
        let out = bed.on_host("a", "dotlock", &["L"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let out = bed
            .on_host("b", "dotlock", &["--stale-after", "300s", "-r", "0", "L"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(4),
            "skew {skew}: a fresh lock was taken from a skewed client: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // 310 s old on the server's clock: set through client A, which
        // shows the server's clock as it is (the server runs on this
        // machine's clock).
        let old = SystemTime::now() - Duration::from_secs(310);
        let f = fs::File::options()
            .write(true)
            .open(bed.mnt("a").join("L"))
            .unwrap();
        f.set_modified(old).unwrap();
        drop(f);
        // Past the client's attribute cache.
        std::thread::sleep(Duration::from_secs(4));
        let out = bed
            .on_host("b", "dotlock", &["--stale-after", "300s", "-r", "0", "L"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skew {skew}: a 310 s old lock was not broken on the first attempt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = bed.on_host("b", "dotlock", &["-u", "L"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        writeln!(
            figures,
            "    server clock {skew:+} s from client B: fresh lock kept, 310 s old lock broken at once"
        )
        .unwrap();
        bed.set_faults("b", "");
        assert_eq!(bed.left(), Vec::<String>::new());
    }
}

/// How many faults of `kind` (`lost`, `eio`) the clients have played so far.
fn injected(bed: &Bed, kind: &str) -> u64 {
    ["a", "b"]
        .iter()
        .map(|c| {
            let stats = fs::read_to_string(bed.dir.join(format!("stats-{c}"))).unwrap_or_default();
            stats
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{kind}=")).map(str::to_string))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// `--shared` across machines (`tool`: dotlock or lockdir): 3 processes on each host, a random mix of
/// readers and writers, 100 cycles each: never a writer with anyone else,
/// every process finishes, nothing left on the server.
fn shared_mix(bed: &Bed, tool: &str, fault: &str, figures: &mut String) {
    let (workers, cycles) = (6, 100);
    let words = if fault == "none" { "" } else { fault };
    for c in ["a", "b"] {
        bed.set_faults(c, words);
    }
    let log = bed.dir.join("shared.log");
    let _ = fs::remove_file(&log);
    let _ = fs::remove_file(bed.dir.join("shared.log.errors"));
    let modes = crate::shared::modes(workers, cycles);
    let lost0 = injected(bed, "lost");
    let t = Instant::now();
    let running: Vec<_> = modes
        .iter()
        .enumerate()
        .map(|(id, m)| {
            let c = if id % 2 == 0 { "a" } else { "b" };
            Command::new("unshare")
                .args(["--uts", "sh", "-c", "hostname \"$0\" && exec sh -c \"$@\""])
                .arg(format!("host-{c}"))
                .arg(crate::shared::WORKER)
                .arg("worker")
                .arg(id.to_string())
                .env("MODES", m)
                .env("TOOL", bed.bin.join(tool))
                .env("WAIT", "-q -r -1 -i 1 --timeout 200")
                .env("LOG", &log)
                .current_dir(bed.mnt(c))
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in running {
        let status = crate::util::wait_with_timeout(w, Duration::from_secs(900));
        let errors = fs::read_to_string(bed.dir.join("shared.log.errors")).unwrap_or_default();
        assert!(
            status.success(),
            "a shared worker failed: {status:?} {errors}"
        );
    }
    let took = since(t);
    let lost = injected(bed, "lost") - lost0;
    for c in ["a", "b"] {
        bed.set_faults(c, "");
    }
    let text = fs::read_to_string(&log).unwrap();
    crate::shared::check_mix(&text, workers, cycles);
    let writers = modes
        .iter()
        .flat_map(|m| m.chars())
        .filter(|&c| c == 'w')
        .count();
    writeln!(
        figures,
        "    {tool} --shared, faults {fault}: {workers} processes (3 per host) x {cycles} cycles, \
         {writers} as writers, {lost} replies lost: no writer with anyone else, all done in \
         {took:.0} s"
    )
    .unwrap();
    assert_eq!(
        bed.left(),
        Vec::<String>::new(),
        "nothing left on the server"
    );
}

#[test]
#[ignore = "the NFS bed: cargo test nfs_bed -- --ignored (root, nfs-ganesha; README: The NFS test bed)"]
fn nfs_bed() {
    let Some(bed) = Bed::start() else { return };
    let started = Instant::now();
    let mut figures =
        String::from("NFS bed figures: 2 clients x 2 processes, 100 lock/unlock cycles each\n\n");
    // NFS_BED_ONLY=early_wake,skew runs those parts alone (the parts:
    // exclusion, stale, early_wake, restart, skew, shared), while working
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
    if part("early_wake") {
        early_wake(&bed, &mut figures);
    }
    if part("restart") {
        broken.extend(server_restart(&bed, &mut figures));
    }
    if part("skew") {
        clock_skew(&bed, &mut figures);
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
