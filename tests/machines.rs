//! Two machines played on this one: another machine is a set of UTS, pid
//! and mount namespaces with its own host name, boot id and machine id
//! (`nfsbed/machine.sh`), sharing this host's files as NFS clients share
//! an export. What one may prove about the other: nothing from a host
//! name or a boot id alone; a lock left by this host's own previous boot
//! only by its age against our uptime; and a holder's lease is honoured
//! by every waiter.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use lockutils::Record;
use lockutils::cli::testing as host;

use crate::util::bin;
use crate::util::{Scratch, wait_until};

fn machine_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("nfsbed/machine.sh")
}

/// Another machine, up while this lives.
pub struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    /// A machine named `hostname`, with machine id `id` (`new`, `host`:
    /// this host's own, as a clone's), or `None` where it cannot be had.
    pub fn start(hostname: &str, id: &str) -> Option<Machine> {
        if !crate::util::is_root() {
            crate::util::skip("another machine needs root (namespaces, bind mounts)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("lockutils-machine")
            .tempdir()
            .unwrap();
        let out = Command::new(machine_sh())
            .args(["start".as_ref(), dir.path().as_os_str()])
            .args([hostname, id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "machine.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Machine { dir })
    }

    /// `program args` on this machine, in `cwd`. `program` is one of ours,
    /// or a personality name (run through a link of that name).
    pub fn run(&self, cwd: &Path, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(machine_sh());
        cmd.arg("run")
            .arg(self.dir.path())
            .arg("-C")
            .arg(cwd)
            .arg(program_path(program))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }
}

impl Machine {
    /// `sh -c SCRIPT` on this machine, in `cwd`, with `$DOTLOCK`,
    /// `$LOCKDIR` and `$FILELOCK` naming the programs.
    pub fn shell(&self, cwd: &Path, script: &str) -> Command {
        let mut cmd = Command::new(machine_sh());
        cmd.arg("run")
            .arg(self.dir.path())
            .arg("-C")
            .arg(cwd)
            .args(["sh", "-c", script])
            .env("DOTLOCK", bin("dotlock"))
            .env("LOCKDIR", bin("lockdir"))
            .env("FILELOCK", bin("filelock"))
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = Command::new(machine_sh())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Our binary for `program`, or a link named after the personality.
fn program_path(program: &str) -> PathBuf {
    match program {
        "dotlock" | "lockdir" | "filelock" => bin(program),
        name => {
            let target = if name == "lockfile" {
                "filelock"
            } else {
                "dotlock"
            };
            Scratch::new().personality_link_to(name, &bin(target))
        }
    }
}

/// `program args` on this host, in `cwd`.
pub fn here(cwd: &Path, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program_path(program));
    cmd.current_dir(cwd).args(args).stdin(Stdio::null());
    cmd
}

/// The lock each program takes in a scratch directory, and how it holds
/// it around `sleep SECS` / tries it once.
fn hold_args(program: &str, secs: &str) -> Vec<String> {
    let lock = lock_name(program);
    let v: Vec<&str> = match program {
        "dotlockfile" => vec!["-l", lock, "sleep", secs],
        "filelock" => vec![lock, "--", "sleep", secs],
        _ => vec![lock, "sleep", secs],
    };
    v.into_iter().map(String::from).collect()
}

fn lock_name(program: &str) -> &'static str {
    if program == "lockdir" { "L.d" } else { "L" }
}

fn try_once(cwd: &Path, program: &str, stale_after: Option<&str>) -> Command {
    let mut args = vec!["-r", "0"];
    if let Some(s) = stale_after {
        args.extend(["--stale-after", s]);
    }
    if program == "dotlockfile" {
        args.push("-l");
    }
    args.push(lock_name(program));
    here(cwd, program, &args)
}

/// Spawn `cmd` (a holder) and wait until `lock` is there.
fn holding(mut cmd: Command, lock: &Path) -> Child {
    let child = cmd.stdout(Stdio::null()).spawn().unwrap();
    wait_until("the holder holds", Duration::from_secs(10), || {
        lock.exists()
    });
    child
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_machine_identity_is_systemds_app_specific_id_and_not_the_machine_id() {
    let s = Scratch::new();
    s.expect(s.dotlock().args(["-p", "L"]), 0);
    let record = Record::parse(&fs::read(s.path("L")).unwrap());
    let ours = host::machine_identity();
    assert_eq!(record.machine_id, ours);
    if let Ok(raw) = fs::read_to_string("/etc/machine-id") {
        let raw = raw.trim();
        assert!(!fs::read_to_string(s.path("L")).unwrap().contains(raw));
        let app: String = host::APP_ID.iter().map(|b| format!("{b:02x}")).collect();
        match Command::new("systemd-id128")
            .args(["machine-id", &format!("--app-specific={app}")])
            .output()
        {
            Ok(out) if out.status.success() => {
                let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
                assert_eq!(ours.as_deref(), Some(theirs.as_str()));
            }
            _ => crate::util::skip("no systemd-id128 to check the identity against"),
        }
    }
}

/// A record of this host's name and machine, another boot, pid 4242.
fn previous_boot_record(machine: Option<String>) -> Vec<u8> {
    Record {
        pid: Some(4242),
        host: Some(host::hostname()),
        machine_id: machine,
        boot_id: Some("00000000-0000-4000-8000-000000000000".into()),
        start: Some(1),
        pidns: host::pid_namespace(),
        cmd: Some("job".into()),
        stale_after: Some(300),
        ..Record::default()
    }
    .to_bytes()
}

/// Plant `record` as `program`'s lock in `s`, last touched at `when`.
fn plant(s: &Scratch, program: &str, record: &[u8], when: SystemTime) {
    let file = match program {
        "lockdir" => {
            fs::create_dir(s.path("L.d")).unwrap();
            s.path("L.d/owner")
        }
        _ => s.path("L"),
    };
    fs::write(&file, record).unwrap();
    for path in [file.as_path(), &s.path(lock_name(program))] {
        let f = fs::File::open(path).unwrap();
        f.set_times(fs::FileTimes::new().set_modified(when).set_accessed(when))
            .unwrap();
    }
}

#[test]
fn a_lock_left_by_this_hosts_previous_boot_is_broken_by_proof_not_by_age() {
    let uptime = host::uptime().expect("CLOCK_BOOTTIME");
    let before_boot = SystemTime::now() - uptime - Duration::from_secs(3600);
    let just_now = SystemTime::now();
    let ours = host::machine_identity();
    let twin = Some("0123456789abcdef0123456789abcdef".to_string());
    // A waiter that would wait ~95 years by age: only proof can break.
    let patient = Some("3000000000");
    for program in ["dotlock", "lockdir", "filelock"] {
        // Left before this boot, by this very machine_id: proven, at once.
        let s = Scratch::new();
        plant(
            &s,
            program,
            &previous_boot_record(ours.clone()),
            before_boot,
        );
        let out = try_once(s.dir.path(), program, patient).output().unwrap();
        assert!(out.status.success(), "{program}: {}", text(&out));
        // Touched since this boot (a same-named machine, or a clone with
        // our machine id, holds it now): never.
        let s = Scratch::new();
        plant(&s, program, &previous_boot_record(ours.clone()), just_now);
        let out = try_once(s.dir.path(), program, patient).output().unwrap();
        assert!(!out.status.success(), "{program}: a fresh lock was broken");
        // Another machine with our host name, however old: never by proof.
        let s = Scratch::new();
        plant(
            &s,
            program,
            &previous_boot_record(twin.clone()),
            before_boot,
        );
        let out = try_once(s.dir.path(), program, patient).output().unwrap();
        assert!(!out.status.success(), "{program}: a twin's lock was broken");
    }
}

#[test]
fn a_same_named_machine_and_a_clone_never_break_each_others_live_locks() {
    let name = host::hostname();
    for id in ["new", "host"] {
        let Some(m) = Machine::start(&name, id) else {
            return;
        };
        for program in ["dotlock", "lockdir", "filelock", "dotlockfile"] {
            // Either way round: held there, tried here; held here, tried there.
            for held_there in [true, false] {
                let s = Scratch::new();
                let args = hold_args(program, "3");
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let holder = match held_there {
                    true => m.run(s.dir.path(), program, &args),
                    false => here(s.dir.path(), program, &args),
                };
                let holder = holding(holder, &s.path(lock_name(program)));
                let mut tries = try_once(s.dir.path(), program, None);
                let out = match held_there {
                    true => tries.output().unwrap(),
                    false => {
                        let args: Vec<_> = tries.get_args().map(|a| a.to_str().unwrap()).collect();
                        m.run(s.dir.path(), program, &args).output().unwrap()
                    }
                };
                let what = format!("{program} (machine id {id}, held there: {held_there})");
                assert!(!out.status.success(), "{what}: a live lock was broken");
                let done = holder.wait_with_output().unwrap();
                assert!(done.status.success(), "{what}: the holder: {}", text(&done));
            }
        }
    }
}

#[test]
fn the_holders_lease_outlasts_a_waiters_shorter_stale_age() {
    let Some(m) = Machine::start("elsewhere", "new") else {
        return;
    };
    for program in ["dotlock", "lockdir", "filelock"] {
        let s = Scratch::new();
        let lock = lock_name(program);
        // Touched every 2 s (a third of 6 s): between touches it is up
        // to 2 s old, past the waiter's 1 s; held 9 s, past its lease.
        let holder = m.run(
            s.dir.path(),
            program,
            &["--stale-after", "6s", lock, "--", "sleep", "9"],
        );
        let holder = holding(holder, &s.path(lock));
        // `--status` shows the lease it judges by: the holder's 6 s.
        let status = here(
            s.dir.path(),
            program,
            &["--status", "--json", "--stale-after", "1s", lock],
        )
        .output()
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(v["lease_s"], 6.0, "{program}: {v}");
        let start = Instant::now();
        let mut tries = 0;
        // Past the lease itself: a holder that did not touch would be
        // broken.
        while start.elapsed() < Duration::from_secs(7) {
            let out = try_once(s.dir.path(), program, Some("1s"))
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "{program}: broken after {:?}: {}",
                start.elapsed(),
                text(&out)
            );
            tries += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(tries >= 15, "{program}: only {tries} tries");
        let done = holder.wait_with_output().unwrap();
        assert!(
            done.status.success(),
            "{program}: the holder: {}",
            text(&done)
        );
    }
}
