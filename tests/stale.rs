//! Stale locks: proof of death, age on the filesystem's clock, race-free
//! breaking, and `--status`.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lockutils::Record;
use lockutils::cli::testing as host;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Scratch, age, wait_until};

/// A full record for `pid` on this host, with `start` as its start time.
fn record_here(pid: u32, start: Option<u64>) -> Vec<u8> {
    Record {
        pid: Some(pid),
        host: Some(host::hostname()),
        boot_id: host::boot_id(),
        start,
        pidns: host::pid_namespace(),
        cmd: Some("job".into()),
        created: Some(1),
        ..Record::default()
    }
    .to_bytes()
}

/// A process that lives until killed.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(Command::new("sleep").arg("300").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkilled_holder_is_taken_over_once_its_command_is_gone_too() {
    let s = Scratch::new();
    let mut holder = s
        .dotlock()
        .args(["-l", "L", "sh", "-c", "echo $$ > child.pid; exec sleep 600"])
        .spawn()
        .unwrap();
    wait_until("the holder's child", Duration::from_secs(10), || {
        s.path("child.pid").exists()
    });
    let child: i32 = fs::read_to_string(s.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The record names the command as well as dotlock.
    let record = Record::parse(&fs::read(s.path("L")).unwrap());
    assert_eq!(record.child, Some(child as u32), "{record:?}");
    assert!(record.child_start.is_some(), "{record:?}");
    // Only the lock tool is killed: its command still runs under the lock,
    // so nobody may take it.
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL).unwrap();
    holder.wait().unwrap();
    let out = s.expect(
        s.dotlock().args(["-r", "2", "-i", "0.1", "--verbose", "L"]),
        4,
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("removing stale lock"), "{said}");
    s.expect(s.dotlock().args(["-c", "L"]), 0);
    // Once the command is gone too, the lock is taken over at once.
    let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
    wait_until("the command to end", Duration::from_secs(10), || {
        host::liveness(child as u32) == host::Liveness::Gone
    });
    let start = Instant::now();
    let out = s.expect(s.dotlock().args(["-r", "0", "--verbose", "L"]), 0);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("removing stale lock") && said.contains("is gone"),
        "{said}"
    );
    let mine = Record::parse(&fs::read(s.path("L")).unwrap());
    assert_ne!(mine.pid, Some(holder.id()));
    assert!(s.leftovers().is_empty(), "{:?}", s.listing());
}

#[test]
fn live_pid_with_the_wrong_start_time_is_stale() {
    let live = Sleeper::start();
    let start = host::start_time(live.pid()).unwrap();
    let s = Scratch::new();
    fs::write(s.path("L"), record_here(live.pid(), Some(start + 1))).unwrap();
    s.expect(s.dotlock().args(["-c", "L"]), 1);
    let out = s.expect(s.dotlock().args(["-r", "0", "--verbose", "L"]), 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("now belongs to another process"));
    assert!(s.leftovers().is_empty());
}

#[test]
fn live_pid_with_the_right_start_time_holds_at_any_age() {
    let live = Sleeper::start();
    let start = host::start_time(live.pid()).unwrap();
    let s = Scratch::new();
    let record = record_here(live.pid(), Some(start));
    fs::write(s.path("L"), &record).unwrap();
    age(&s.path("L"), 10 * 365 * 24 * 3600);
    s.expect(s.dotlock().args(["-c", "L"]), 0);
    s.expect(s.dotlock().args(["-r", "0", "L"]), 4);
    s.expect(s.dotlock().args(["-r", "0", "--stale-after", "1", "L"]), 4);
    assert_eq!(fs::read(s.path("L")).unwrap(), record);
}

#[test]
fn aged_pidless_lock_is_broken_on_the_first_attempt() {
    // 10 s margins either side of the 300 s stale age: a slow run cannot
    // move a lock across it.
    for (secs, code) in [(310, 0), (290, 4)] {
        let s = Scratch::new();
        fs::write(s.path("L"), "0").unwrap();
        age(&s.path("L"), secs);
        s.expect(s.dotlock().args(["-r", "0", "L"]), code);
        let s2 = Scratch::new();
        fs::write(s2.path("L"), "0").unwrap();
        age(&s2.path("L"), secs);
        s2.expect(s2.as_dotlockfile().args(["-r", "0", "L"]), code);
        assert!(s.leftovers().is_empty() && s2.leftovers().is_empty());
    }
}

#[test]
fn stale_after_sets_the_age() {
    let s = Scratch::new();
    fs::write(s.path("L"), "0\n").unwrap();
    age(&s.path("L"), 10);
    s.expect(s.dotlock().args(["-r", "0", "L"]), 4);
    s.expect(s.dotlock().args(["-r", "0", "--stale-after", "5", "L"]), 0);
    for bad in ["0", "-3", "x"] {
        s.expect(s.dotlock().args(["--stale-after", bad, "M"]), 5);
    }
}

/// A waiter that has judged the stale lock in `L` and is paused (by the
/// test seam) before it breaks it; returns it and the gate that resumes it.
fn paused_breaker(s: &Scratch) -> (Child, PathBuf) {
    let gate = s.dir.path().with_extension("gate");
    let waiter = s
        .dotlock()
        .env("LOCKUTILS_TEST_PAUSE_BEFORE_BREAK", &gate)
        .args(["-r", "0", "L"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reached = gate.clone().into_os_string();
    reached.push(".reached");
    wait_until("the breaker to pause", Duration::from_secs(10), || {
        PathBuf::from(&reached).exists()
    });
    (waiter, gate)
}

fn stale_lock(s: &Scratch) {
    fs::write(s.path("L"), "0\n").unwrap();
    age(&s.path("L"), 400);
}

/// Two breakers judged the same stale lock. The first breaks it; a third
/// process takes the lock; the second, resumed, must leave that lock alone.
#[test]
fn second_breaker_never_removes_a_lock_taken_after_the_first_broke() {
    let s = Scratch::new();
    stale_lock(&s);
    let (second, gate) = paused_breaker(&s);
    // The first breaker breaks the stale lock, takes it, and lets it go.
    s.expect(s.dotlock().args(["-r", "0", "L"]), 0);
    s.expect(s.dotlock().args(["-u", "L"]), 0);
    // A third process takes the lock afresh.
    s.expect(s.dotlock().args(["-r", "0", "L"]), 0);
    let fresh = fs::read(s.path("L")).unwrap();
    fs::write(&gate, "").unwrap();
    let out = second.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(s.path("L")).unwrap(),
        fresh,
        "the fresh lock was removed"
    );
    assert!(s.leftovers().is_empty(), "{:?}", s.listing());
}

/// liblockfile's race (SPEC §9): between a waiter's judging and removing,
/// the stale lock vanished and another process took the name. The waiter
/// must not unlink the name.
#[test]
fn a_vanished_and_retaken_lock_is_never_unlinked() {
    let s = Scratch::new();
    stale_lock(&s);
    let (waiter, gate) = paused_breaker(&s);
    fs::remove_file(s.path("L")).unwrap();
    s.expect(s.dotlock().args(["-r", "0", "L"]), 0);
    let fresh = fs::read(s.path("L")).unwrap();
    fs::write(&gate, "").unwrap();
    assert_eq!(waiter.wait_with_output().unwrap().status.code(), Some(4));
    assert_eq!(fs::read(s.path("L")).unwrap(), fresh);
    assert!(s.leftovers().is_empty(), "{:?}", s.listing());
}

/// 8 processes × 200 cycles with the stale check active on every busy look
/// (`--stale-after 0.05`, far shorter than a wait), live holders proven
/// alive by their records, and dead holders' locks injected now and then
/// for the others to break. No two holders may ever be inside at once.
#[test]
fn contention_with_stale_breaking_never_overlaps() {
    const WORKER: &str = r#"
lock() { "$DOTLOCK" -p -r -1 -i 0.005 --stale-after 0.05 L; }
i=0
while [ $i -lt 200 ]; do
  if [ $((i % 40)) -eq 7 ]; then
    # A holder that dies at once: the lock names the inner shell's pid.
    sh -c '"$DOTLOCK" -p -r -1 -i 0.005 --stale-after 0.05 L; true' || exit 1
  fi
  lock || { echo "lock failed: $?" >> errors; exit 1; }
  mkdir inside 2>/dev/null || echo "overlap in cycle $i of $$" >> errors
  n=$(cat counter)
  echo $((n + 1)) > counter
  rmdir inside
  "$DOTLOCK" -u L || exit 1
  i=$((i + 1))
done
"#;
    let s = Scratch::new();
    fs::write(s.path("counter"), "0\n").unwrap();
    s.run_workers(8, WORKER);
    assert_eq!(fs::read_to_string(s.path("errors")).ok(), None);
    assert_eq!(
        fs::read_to_string(s.path("counter")).unwrap().trim(),
        "1600"
    );
    let left = s.listing();
    assert!(left == ["counter"] || left == ["L", "counter"], "{left:?}");
}

fn status(s: &Scratch, extra: &[&str]) -> (i32, Vec<String>) {
    let out = s
        .dotlock()
        .arg("--status")
        .args(extra)
        .arg("L")
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap(), lines)
}

/// Compare `--status` lines; a `*` in a wanted line matches anything.
fn assert_status(got: &[String], want: &[&str]) {
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        match w.split_once('*') {
            Some((head, tail)) => {
                assert!(g.starts_with(head) && g.ends_with(tail), "{g:?} !~ {w:?}")
            }
            None => assert_eq!(g, w),
        }
    }
}

#[test]
fn status_of_free_held_stale_and_garbage_locks() {
    let s = Scratch::new();
    let (code, lines) = status(&s, &[]);
    assert_eq!(code, 1);
    assert_status(&lines, &["lock:    L", "state:   free"]);

    let live = Sleeper::start();
    let start = host::start_time(live.pid()).unwrap();
    fs::write(s.path("L"), record_here(live.pid(), Some(start))).unwrap();
    let (code, lines) = status(&s, &[]);
    assert_eq!(code, 0);
    let pid = format!("pid:     {}", live.pid());
    let host = format!("host:    {}", host::hostname());
    let reason = format!("reason:  pid {} is alive", live.pid());
    assert_status(
        &lines,
        &[
            "lock:    L",
            "state:   held",
            &pid,
            "command: job",
            &host,
            "held:    *",
            "touched: *",
            "lease:   5m00s",
            "alive:   yes",
            &reason,
        ],
    );

    fs::write(s.path("L"), record_here(2147483646, None)).unwrap();
    let (code, lines) = status(&s, &[]);
    assert_eq!(code, 9, "stale");
    let host = format!("host:    {}", host::hostname());
    assert_status(
        &lines,
        &[
            "lock:    L",
            "state:   stale",
            "pid:     2147483646",
            "command: job",
            &host,
            "held:    *",
            "touched: *",
            "lease:   5m00s",
            "alive:   no",
            "reason:  pid 2147483646 is gone",
        ],
    );

    fs::write(s.path("L"), b"\x00garbage\xff").unwrap();
    let (code, lines) = status(&s, &[]);
    assert_eq!(code, 0);
    assert_status(
        &lines,
        &[
            "lock:    L",
            "state:   held",
            "pid:     -",
            "command: -",
            "host:    -",
            "held:    *",
            "touched: *",
            "lease:   5m00s",
            "alive:   unknown (no pid recorded)",
            "reason:  *",
        ],
    );

    age(&s.path("L"), 400);
    let (code, lines) = status(&s, &[]);
    assert_eq!(code, 9, "stale");
    assert_status(
        &lines,
        &[
            "lock:    L",
            "state:   stale",
            "pid:     -",
            "command: -",
            "host:    -",
            "held:    *",
            "touched: *",
            "lease:   5m00s",
            "alive:   unknown (no pid recorded)",
            "reason:  *past the stale age",
        ],
    );
    assert!(
        lines[6] == "touched: 6m40s ago" || lines[6] == "touched: 6m39s ago",
        "{}",
        lines[6]
    );
    assert_eq!(
        fs::read(s.path("L")).unwrap(),
        b"\x00garbage\xff",
        "--status never changes the lock"
    );
}

#[test]
fn verbose_names_the_holder_when_the_wait_starts() {
    let s = Scratch::new();
    let live = Sleeper::start();
    let start = host::start_time(live.pid()).unwrap();
    // Held for 100 s, last touched 42 s ago: the message counts from
    // the record's created=, not from the last touch.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let record = Record {
        created: Some(now - 100),
        ..Record::parse(&record_here(live.pid(), Some(start)))
    };
    fs::write(s.path("L"), record.to_bytes()).unwrap();
    age(&s.path("L"), 42);
    let out = s.expect(
        s.dotlock().args(["--verbose", "-r", "1", "-i", "0", "L"]),
        4,
    );
    let lines = crate::util::stderr_lines(&out);
    let want = format!(
        "dotlock: waiting for L: held by pid {} (job) on {} for ",
        live.pid(),
        host::hostname()
    );
    assert!(
        lines[0].starts_with(&want)
            && (lines[0].ends_with("for 1m40s") || lines[0].ends_with("for 1m41s")),
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("waiting for")).count(),
        1,
        "said once per wait"
    );
}
