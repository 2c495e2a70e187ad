//! Helpers shared by the integration tests.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use crate::programs::{
    bin, dotlock_bin, has_seams, real_dotlockfile, real_tool, real_tools_dir, testing_installed,
};

/// Are we root (needed to act as another user, or to make a pid namespace)?
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Say, visibly, that a test could not run here. In CI (`CI` set) a missing
/// prerequisite is a failure: `.ci/run` installs everything and runs as root.
pub fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("required in CI, but: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A scratch directory, readable by everyone so tests can act as nobody.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("lockutils-test")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `dotlock` command running in this directory.
    pub fn dotlock(&self) -> Command {
        let mut cmd = Command::new(dotlock_bin());
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// `dotlock` invoked as `dotlockfile` (through a symlink), in this directory.
    pub fn as_dotlockfile(&self) -> Command {
        let link = self.personality_link("dotlockfile");
        let mut cmd = Command::new(link);
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// A symlink to dotlock named `name`, kept outside the scratch directory
    /// so that listings stay clean.
    pub fn personality_link(&self, name: &str) -> PathBuf {
        self.personality_link_to(name, &dotlock_bin())
    }

    /// A symlink named `name` to `target`, outside the scratch directory.
    /// The directory is named by our pid, which an earlier run may have
    /// had: a link found there pointing anywhere else (a build since
    /// removed) is replaced, atomically, as other tests may be using it.
    pub fn personality_link_to(&self, name: &str, target: &Path) -> PathBuf {
        let pid = std::process::id();
        let bin = std::env::temp_dir().join(format!("lockutils-bin-{pid}"));
        fs::create_dir_all(&bin).unwrap();
        let link = bin.join(name);
        if fs::read_link(&link).ok().as_deref() != Some(target) {
            let temp = bin.join(format!(".{name}.{:08x}", rand::random::<u32>()));
            std::os::unix::fs::symlink(target, &temp).unwrap();
            fs::rename(&temp, &link).unwrap();
        }
        link
    }

    /// `sh -c SCRIPT` in this directory, with `$0` and `$DOTLOCK` naming
    /// the dotlock binary.
    pub fn shell(&self, script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.current_dir(self.dir.path())
            .args(["-c", script])
            .arg(dotlock_bin())
            .env("DOTLOCK", dotlock_bin())
            .stdin(Stdio::null());
        cmd
    }

    /// Run `n` copies of `script` at once; every one must succeed.
    pub fn run_workers(&self, n: usize, script: &str) {
        let workers: Vec<_> = (0..n)
            .map(|_| self.shell(script).spawn().unwrap())
            .collect();
        for mut w in workers {
            let status = w.wait().unwrap();
            let errors = fs::read_to_string(self.path("errors")).ok();
            assert!(
                status.success(),
                "a worker failed ({status:?}); errors: {errors:?}"
            );
        }
    }

    /// Every name below the directory, sorted, directories with a `/`.
    pub fn listing(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let meta = fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(base, &p, out);
                } else {
                    out.push(rel);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out.sort();
        out
    }

    /// Temporary files and break locks left behind (there must be none).
    pub fn leftovers(&self) -> Vec<String> {
        self.listing()
            .into_iter()
            .filter(|n| {
                let base = n.rsplit('/').next().unwrap_or(n);
                base.starts_with(".lk") || n.ends_with(".break")
            })
            .collect()
    }

    /// Run `cmd`, and on an unexpected exit code panic with the command, the
    /// directory, its listing and the output.
    pub fn expect(&self, cmd: &mut Command, code: i32) -> Output {
        let out = cmd.output().expect("spawn");
        if out.status.code() != Some(code) {
            panic!(
                "expected exit {code}, got {:?}\n{}",
                out.status,
                self.context(cmd, &out)
            );
        }
        out
    }

    pub fn context(&self, cmd: &Command, out: &Output) -> String {
        format!(
            "command: {cmd:?}\ncwd: {}\nlisting: {:?}\nstdout: {}\nstderr: {}",
            self.dir.path().display(),
            self.listing(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Make `cmd` run as nobody (uid/gid 65534, no supplementary groups).
pub fn as_nobody(cmd: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let nobody = nix::unistd::Gid::from_raw(65534);
            nix::unistd::setgroups(&[])?;
            nix::unistd::setgid(nobody)?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(65534))?;
            Ok(())
        })
    }
}

/// A directory inside `scratch` that nobody may write to (and root may).
pub fn read_only_dir(scratch: &Scratch, name: &str) -> PathBuf {
    let dir = scratch.path(name);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    dir
}

/// Set a file's mtime `secs` seconds into the past.
pub fn age(path: &Path, secs: u64) {
    let when = std::time::SystemTime::now() - Duration::from_secs(secs);
    let f = fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| fs::File::open(path))
        .unwrap();
    f.set_times(fs::FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
}

/// The mtime of `path`, in whole seconds ago.
pub fn secs_ago(path: &Path) -> u64 {
    let m = fs::metadata(path).unwrap().modified().unwrap();
    std::time::SystemTime::now()
        .duration_since(m)
        .unwrap_or_default()
        .as_secs()
}

/// Poll until `cond` holds, or panic after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines a command wrote on stderr.
pub fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// An `OsStr` from raw bytes, for non-UTF-8 names.
pub fn os(bytes: &[u8]) -> &OsStr {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(bytes)
}

/// Run `cmd`, killing it if it takes longer than `limit` (then panic).
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < limit {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            true
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        !watchdog.join().unwrap(),
        "{cmd:?} took longer than {limit:?}"
    );
    out
}

/// Wait for `child`, killing it (and failing) if it takes longer than `limit`.
pub fn wait_with_timeout(
    mut child: std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}: deadlocked?");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fail with every scenario in which ours and the real tool differed.
pub fn assert_no_differences(differences: &[String]) {
    assert!(
        differences.is_empty(),
        "{} scenarios differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// The shells `lockdir --trap` must work in, as argv prefixes for `-c`.
pub const TRAP_SHELLS: &[(&str, &[&str])] = &[
    ("dash", &["dash", "-c"]),
    ("bash", &["bash", "-c"]),
    ("busybox ash", &["busybox", "ash", "-c"]),
    ("mksh", &["mksh", "-c"]),
    ("zsh (sh mode)", &["zsh", "--emulate", "sh", "-c"]),
];

/// Can `shell` (an argv prefix for `-c`) run here?
pub fn have_shell(shell: &[&str]) -> bool {
    Command::new(shell[0])
        .args(&shell[1..])
        .arg("exit 0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Start `cmd` paused at the seam `point` (`LOCKUTILS_TEST_PAUSE_<point>`,
/// with the gate `gate` in `s`); returns it once it is there, and the
/// gate that lets it go on.
pub fn paused_at(
    s: &Scratch,
    mut cmd: Command,
    point: &str,
    gate: &str,
) -> (std::process::Child, PathBuf) {
    let gate = s.path(gate);
    assert!(
        !testing_installed(),
        "a pause needs the test seams, which release builds have not: check has_seams() first"
    );
    let child = cmd
        .env(format!("LOCKUTILS_TEST_PAUSE_{point}"), &gate)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = PathBuf::from(format!("{}.reached", gate.display()));
    wait_until(point, Duration::from_secs(20), || reached.exists());
    (child, gate)
}

/// The programs of lockfile-progs, whose names dotlock answers to.
pub const LOCKFILE_PROGS: [&str; 7] = [
    "lockfile-create",
    "lockfile-remove",
    "lockfile-touch",
    "lockfile-check",
    "mail-lock",
    "mail-unlock",
    "mail-touchlock",
];

/// Run `prog LOCK sh -c '...; exec sleep 600'` (a lock tool in command
/// mode, e.g. `s.dotlock()`) and return it, with its command's pid, once
/// the command runs and `lock` exists. When the returned [`Holder`] is
/// dropped, the command is killed too (if it is still that process), so
/// that no `sleep 600` outlives the test whose holder it killed.
pub fn holding(s: &Scratch, mut prog: Command, lock: &str) -> (Holder, i32) {
    let _ = fs::remove_file(s.path("child.pid"));
    let holder = prog
        .args([lock, "sh", "-c", "echo $$ > child.pid; exec sleep 600"])
        .spawn()
        .unwrap();
    wait_until(
        "the command under the lock",
        Duration::from_secs(10),
        || {
            fs::read_to_string(s.path("child.pid")).is_ok_and(|c| c.ends_with('\n'))
                && s.path(lock).exists()
        },
    );
    let child: i32 = fs::read_to_string(s.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let started = lockutils::cli::testing::start_time(child as u32);
    (
        Holder {
            process: holder,
            command: (child, started),
        },
        child,
    )
}

/// A lock tool holding a lock in command mode ([`holding`]): the process,
/// and its command (pid, start time), killed when this is dropped.
pub struct Holder {
    process: std::process::Child,
    command: (i32, Option<u64>),
}

impl std::ops::Deref for Holder {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.process
    }
}

impl std::ops::DerefMut for Holder {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.process
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let (pid, started) = self.command;
        // Only that very process: its pid may be another's by now.
        if started.is_some() && lockutils::cli::testing::start_time(pid as u32) == started {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The pids of `pid`'s children, as the kernel lists them.
pub fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A personality link left by an earlier run with our pid, pointing at a
/// build since removed, is replaced.
#[test]
fn a_stale_personality_link_from_an_earlier_run_is_replaced() {
    let s = Scratch::new();
    let bin = std::env::temp_dir().join(format!("lockutils-bin-{}", std::process::id()));
    fs::create_dir_all(&bin).unwrap();
    let stale = bin.join("stale-personality");
    let _ = fs::remove_file(&stale);
    std::os::unix::fs::symlink("/nonexistent/dotlock", &stale).unwrap();
    let link = s.personality_link("stale-personality");
    assert_eq!(fs::read_link(&link).unwrap(), dotlock_bin());
    fs::remove_file(link).unwrap();
}
