//! `--shared`: readers together, one writer alone, never both; a waiting
//! writer keeps new readers out; a killed reader's share is reclaimed; the
//! legacy tools see one lock. Checked from the times and the order the
//! holders themselves wrote down.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{Scratch, paused_at, real_dotlockfile, wait_until, wait_with_timeout};

/// The command each holder runs: `WHO start T`, a pause, `WHO end T`, in
/// `log` (appended: the file's order is the order of the writes), with T
/// the wall clock in seconds.
const HOLD: &str =
    r#"echo "$1 start $(date +%s.%N)" >> log; sleep "$2"; echo "$1 end $(date +%s.%N)" >> log"#;

/// `dotlock` or `lockdir`, in the scratch directory.
pub(crate) fn tool(s: &Scratch, prog: &Path) -> Command {
    let mut cmd = Command::new(prog);
    cmd.current_dir(s.dir.path()).stdin(Stdio::null());
    cmd
}

pub(crate) fn dotlock() -> PathBuf {
    crate::util::dotlock_bin()
}

pub(crate) fn lockdir() -> PathBuf {
    crate::lockdir::lockdir_bin()
}

/// `PROG [flags] L` running [`HOLD`] as `who` for `secs`.
fn holder_of(s: &Scratch, prog: &Path, flags: &[&str], who: &str, secs: &str) -> Child {
    tool(s, prog)
        .args(flags)
        .args(["L", "sh", "-c", HOLD, "hold", who, secs])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Each line of the log: (who, what, time).
fn log(s: &Scratch) -> Vec<(String, String, f64)> {
    fs::read_to_string(s.path("log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

fn time_of(log: &[(String, String, f64)], who: &str, what: &str) -> f64 {
    log.iter()
        .find(|(w, x, _)| w == who && x == what)
        .unwrap_or_else(|| panic!("no `{who} {what}` in {log:?}"))
        .2
}

pub(crate) fn lines(s: &Scratch, what: &str) -> usize {
    log(s).iter().filter(|(_, x, _)| x == what).count()
}

/// The members beside `L`: shares, wants, the gate.
pub(crate) fn members(s: &Scratch) -> Vec<String> {
    s.listing()
        .into_iter()
        .filter(|n| n.starts_with("L."))
        .collect()
}

pub(crate) fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dotlock [flags] L` running [`HOLD`] as `who` for `secs`.
pub(crate) fn holder(s: &Scratch, flags: &[&str], who: &str, secs: &str) -> Child {
    holder_of(s, &dotlock(), flags, who, secs)
}

#[test]
fn readers_overlap_the_writer_comes_after_them_all_and_a_later_reader_after_the_writer() {
    readers_then_writer_then_reader(&dotlock());
}

#[test]
fn lockdir_readers_overlap_the_writer_comes_after_them_all_and_a_later_reader_after_the_writer() {
    readers_then_writer_then_reader(&lockdir());
}

fn readers_then_writer_then_reader(prog: &Path) {
    let holder =
        |s: &Scratch, flags: &[&str], who: &str, secs: &str| holder_of(s, prog, flags, who, secs);
    let s = Scratch::new();
    let readers: Vec<Child> = (1..=3)
        .map(|i| holder(&s, &["--shared"], &format!("R{i}"), "2"))
        .collect();
    wait_until("three readers in", Duration::from_secs(20), || {
        lines(&s, "start") == 3
    });
    // The writer says when its first attempt has failed.
    let writer = tool(&s, prog)
        .args(["--verbose", "L", "sh", "-c", HOLD, "hold", "W", "1"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(s.path("w.err")).unwrap())
        .spawn()
        .unwrap();
    wait_until("the writer waiting", Duration::from_secs(20), || {
        fs::read_to_string(s.path("w.err")).is_ok_and(|e| e.contains("waiting for L"))
    });
    // R4 arrives while the writer waits (the readers still hold): it is
    // written down before it starts.
    let arrived = s
        .shell(r#"echo "R4 arrive $(date +%s.%N)" >> log"#)
        .status()
        .unwrap();
    assert!(arrived.success());
    let late = holder(&s, &["--shared"], "R4", "0.2");
    for r in readers {
        finish(r);
    }
    assert!(wait_with_timeout(writer, Duration::from_secs(30)).success());
    finish(late);
    fs::remove_file(s.path("w.err")).unwrap();

    let log = log(&s);
    let r: Vec<(f64, f64)> = (1..=3)
        .map(|i| {
            let who = format!("R{i}");
            (time_of(&log, &who, "start"), time_of(&log, &who, "end"))
        })
        .collect();
    let last_start = r.iter().map(|x| x.0).fold(f64::MIN, f64::max);
    let first_end = r.iter().map(|x| x.1).fold(f64::MAX, f64::min);
    let last_end = r.iter().map(|x| x.1).fold(f64::MIN, f64::max);
    assert!(last_start < first_end, "the readers overlap: {log:?}");
    let (w0, w1) = (time_of(&log, "W", "start"), time_of(&log, "W", "end"));
    assert!(
        w0 >= last_end,
        "the writer started after every reader: {log:?}"
    );
    let arrive = time_of(&log, "R4", "arrive");
    assert!(arrive < w0, "R4 arrived while the writer waited: {log:?}");
    assert!(arrive < last_end, "... and the readers still held: {log:?}");
    assert!(
        time_of(&log, "R4", "start") >= w1,
        "R4 ran only after the writer: {log:?}"
    );
    assert_eq!(members(&s), Vec::<String>::new(), "nothing left behind");
    assert!(!s.path("L").exists());
}

#[test]
fn a_reader_killed_with_sigkill_is_reclaimed_at_once_and_nothing_is_left() {
    killed_reader_reclaimed(&dotlock());
}

#[test]
fn lockdir_a_reader_killed_with_sigkill_is_reclaimed_at_once_and_nothing_is_left() {
    killed_reader_reclaimed(&lockdir());
}

fn killed_reader_reclaimed(prog: &Path) {
    let s = Scratch::new();
    let mut reading = tool(&s, prog);
    reading.arg("--shared");
    let (mut reader, child) = crate::util::holding(&s, reading, "L");
    assert_eq!(members(&s).len(), 1, "one share: {:?}", s.listing());
    // A second reader joins and leaves: the share of the first keeps L.
    s.expect(tool(&s, prog).args(["--shared", "-r", "0", "L", "true"]), 0);
    assert!(s.path("L").exists(), "L is held while a reader holds");
    // A writer cannot come in while the reader lives.
    s.expect(tool(&s, prog).args(["-r", "0", "L", "true"]), 4);

    for pid in [reader.id() as i32, child] {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    reader.wait().unwrap();
    wait_until("the command gone", Duration::from_secs(10), || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), None).is_err()
    });
    // One attempt, no wait: the dead reader's share is proven dead, and L,
    // held by no live reader, is broken.
    let out = s.expect(
        tool(&s, prog).args(["-r", "0", "--verbose", "L", "sh", "-c", "ls > seen"]),
        0,
    );
    let seen = fs::read_to_string(s.path("seen")).unwrap();
    assert!(
        !seen.contains("L.r"),
        "the share was removed before the writer ran: {seen}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(members(&s), Vec::<String>::new());
    assert!(!s.path("L").exists());
}

pub(crate) fn shared(s: &Scratch) -> Command {
    let mut cmd = s.dotlock();
    cmd.arg("--shared");
    cmd
}

#[test]
fn a_dotlockfile_lock_keeps_readers_out_and_readers_keep_dotlockfile_out() {
    let Some(real) = real_dotlockfile() else {
        return;
    };
    let s = Scratch::new();
    let legacy = |args: &[&str]| {
        let mut cmd = Command::new(&real);
        cmd.current_dir(s.dir.path()).args(args);
        cmd
    };
    s.expect(&mut legacy(&["-l", "L"]), 0);
    s.expect(shared(&s).args(["-r", "0", "L", "true"]), 4);
    assert_eq!(members(&s), Vec::<String>::new(), "no share was left");
    s.expect(&mut legacy(&["-u", "L"]), 0);

    s.expect(shared(&s).arg("L"), 0);
    s.expect(shared(&s).arg("L"), 0);
    assert_eq!(members(&s).len(), 2, "{:?}", s.listing());
    let out = legacy(&["-l", "-r", "0", "L"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0), "dotlockfile sees a live lock");
    assert_eq!(
        fs::read_to_string(s.path("L")).unwrap().lines().next(),
        Some("0")
    );
    // Both shares are this shell's: one -u --shared leaves with both.
    s.expect(shared(&s).args(["-u", "L"]), 0);
    assert_eq!(s.listing(), Vec::<String>::new(), "nothing left behind");
}

#[test]
fn a_plain_unlock_refuses_a_lock_held_by_readers_and_status_lists_each_reader() {
    let s = Scratch::new();
    s.expect(shared(&s).arg("L"), 0);
    let (mut second, _) = crate::util::holding(&s, shared(&s), "L");
    let out = s.expect(s.dotlock().args(["-u", "L"]), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("dotlock: L: held by readers (held shared by 2 readers"),
        "{err}"
    );

    let out = s.expect(s.dotlock().args(["--status", "--json", "L"]), 0);
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert_eq!(objects[0]["lock"], "L");
    assert_eq!(objects[0]["state"], "held");
    assert_eq!(objects[0]["readers"], 2);
    assert_eq!(objects[0]["reason"], serde_json::Value::Null);
    for reader in &objects[1..] {
        assert_eq!(reader["reader_of"], "L");
        assert_eq!(reader["state"], "held");
        assert!(reader["lock"].as_str().unwrap().starts_with("L.r"));
    }
    let commands: Vec<&str> = objects[1..]
        .iter()
        .map(|o| o["command"].as_str().unwrap())
        .collect();
    assert!(commands.contains(&"sh"), "{commands:?}");

    // -t --shared touches the caller's share and L; -u --shared leaves
    // with the caller's share only.
    crate::util::age(&s.path("L"), 100);
    s.expect(shared(&s).args(["-t", "L"]), 0);
    let age = fs::metadata(s.path("L"))
        .unwrap()
        .modified()
        .unwrap()
        .elapsed()
        .unwrap();
    assert!(age < Duration::from_secs(50), "L was touched: {age:?}");
    s.expect(shared(&s).args(["-u", "L"]), 0);
    assert_eq!(members(&s).len(), 1, "the other reader's share stays");
    assert!(s.path("L").exists(), "L stays while a reader holds");
    let out = s.expect(shared(&s).args(["-u", "L"]), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("other readers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = second.kill();
    second.wait().unwrap();
    // The killed reader's command lives on: its share is valid until it
    // ends. --force leaves for every reader.
    s.expect(shared(&s).args(["-u", "--force", "L"]), 0);
    assert_eq!(members(&s), Vec::<String>::new());
    assert!(!s.path("L").exists());
}

#[test]
fn the_last_reader_leaving_waits_for_a_reader_joining_in_the_gate() {
    let s = Scratch::new();
    // R1 holds; R2 is stopped inside the gate, about to look at L.
    let first = holder(&s, &["--shared"], "R1", "0.5");
    wait_until("R1 in", Duration::from_secs(20), || lines(&s, "start") == 1);
    let mut joining = shared(&s);
    joining.args(["L", "sh", "-c", HOLD, "hold", "R2", "1"]);
    let (second, gate) = paused_at(&s, joining, "IN_GATE", "gate");
    // R1 ends and leaves: it must wait for the gate, so it cannot remove
    // L from under R2.
    wait_until("R1 done", Duration::from_secs(20), || lines(&s, "end") == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.path("L").exists(), "R1 waits for the gate to leave");
    fs::write(&gate, "").unwrap();
    wait_until("R2 in", Duration::from_secs(20), || lines(&s, "start") == 2);
    // R2 holds: a writer cannot have the lock.
    s.expect(s.dotlock().args(["-r", "0", "L", "true"]), 4);
    finish(first);
    assert_eq!(
        wait_with_timeout(second, Duration::from_secs(20)).code(),
        Some(0)
    );
    let log = log(&s);
    assert!(time_of(&log, "R2", "start") > time_of(&log, "R1", "end"));
    assert_eq!(members(&s), Vec::<String>::new());
    assert!(!s.path("L").exists());
}

#[test]
fn a_writer_that_links_first_keeps_a_reader_in_the_gate_out() {
    let s = Scratch::new();
    // The reader is stopped inside the gate with L free; the writer links
    // L meanwhile (writers need no gate).
    let mut joining = shared(&s);
    joining.args(["L", "sh", "-c", HOLD, "hold", "R", "0.1"]);
    let (reader, gate) = paused_at(&s, joining, "IN_GATE", "gate");
    let writer = holder(&s, &[], "W", "1");
    wait_until("W in", Duration::from_secs(20), || lines(&s, "start") == 1);
    fs::write(&gate, "").unwrap();
    finish(writer);
    assert_eq!(
        wait_with_timeout(reader, Duration::from_secs(30)).code(),
        Some(0)
    );
    let log = log(&s);
    assert!(
        time_of(&log, "R", "start") >= time_of(&log, "W", "end"),
        "the reader ran after the writer: {log:?}"
    );
    assert_eq!(members(&s), Vec::<String>::new());
}

/// One worker of a contention run (also on the NFS bed): `MODES` says,
/// cycle by cycle, reader (`r`) or writer (`w`); `$TOOL $WAIT` takes the
/// lock `L`; each cycle is written down in `$LOG` (appended: its order is
/// the order of the writes), failures in `$LOG.errors`.
pub const WORKER: &str = r#"
id=$1
modes=$MODES
while [ -n "$modes" ]; do
  m=${modes%"${modes#?}"}
  modes=${modes#?}
  case $m in r) flag=--shared ;; *) flag= ;; esac
  "$TOOL" $flag $WAIT L sh -c 'echo "S $1 $2" >> "$LOG"; sleep 0.01; echo "E $1 $2" >> "$LOG"' x "$m" "$id" \
    || { echo "worker $id: exit $?" >> "$LOG.errors"; exit 1; }
done
"#;

/// Check a contention log: never a writer with anyone else; every cycle
/// of every worker in it.
pub fn check_mix(log: &str, workers: usize, cycles: usize) {
    let (mut readers, mut writer) = (0usize, false);
    let mut starts = 0;
    for (n, line) in log.lines().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        match (f[0], f[1]) {
            ("S", "w") => {
                assert!(
                    !writer && readers == 0,
                    "line {n}: a writer with {readers} readers and writer={writer}"
                );
                writer = true;
                starts += 1;
            }
            ("S", _) => {
                assert!(!writer, "line {n}: a reader with a writer");
                readers += 1;
                starts += 1;
            }
            ("E", "w") => writer = false,
            _ => readers -= 1,
        }
    }
    assert_eq!(starts, workers * cycles, "every cycle ran");
    assert!(!writer && readers == 0);
}

/// Random modes for `workers` workers of `cycles` cycles each.
pub fn modes(workers: usize, cycles: usize) -> Vec<String> {
    (0..workers)
        .map(|_| {
            (0..cycles)
                .map(|_| if rand::random::<bool>() { 'r' } else { 'w' })
                .collect()
        })
        .collect()
}

#[test]
fn six_processes_a_random_mix_of_readers_and_writers_a_hundred_cycles_each() {
    mix(&dotlock());
}

#[test]
fn lockdir_six_processes_a_random_mix_of_readers_and_writers_a_hundred_cycles_each() {
    mix(&lockdir());
}

fn mix(prog: &Path) {
    let s = Scratch::new();
    let modes = modes(6, 100);
    let workers: Vec<Child> = modes
        .iter()
        .enumerate()
        .map(|(id, m)| {
            s.shell(WORKER)
                .env("MODES", m)
                .env("TOOL", prog)
                .env("WAIT", "-r -1 --timeout 120")
                .env("LOG", "log")
                .arg(id.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in workers {
        let status = wait_with_timeout(w, Duration::from_secs(240));
        let errors = fs::read_to_string(s.path("log.errors")).unwrap_or_default();
        assert!(status.success(), "{status:?}: {errors}");
    }
    check_mix(&fs::read_to_string(s.path("log")).unwrap(), 6, 100);
    assert_eq!(s.listing(), ["log"], "nothing left behind");
}
