//! The setgid mailbox rules, for real: a copy of dotlock installed setgid to
//! a test group, a spool only that group may write, and an unprivileged test
//! user. Needs root (to create the users and the setgid copy); CI is root.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::unistd::{Group, User};

use crate::util::{dotlock_bin, is_root, skip};

const GROUP: &str = "lkutmail";
const USER: &str = "lkutuser";
const OTHER: &str = "lkutother";

/// Create the test group and users if they are missing.
fn ensure_accounts() -> Result<(Group, User, User), String> {
    let run = |cmd: &mut Command| cmd.output().map_err(|e| e.to_string()).map(|_| ());
    if Group::from_name(GROUP).ok().flatten().is_none() {
        run(Command::new("groupadd").args(["--system", GROUP]))?;
    }
    for user in [USER, OTHER] {
        if User::from_name(user).ok().flatten().is_none() {
            run(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--shell",
                "/bin/sh",
                user,
            ]))?;
        }
    }
    let group = Group::from_name(GROUP)
        .ok()
        .flatten()
        .ok_or("groupadd failed")?;
    let user = User::from_name(USER)
        .ok()
        .flatten()
        .ok_or("useradd failed")?;
    let other = User::from_name(OTHER)
        .ok()
        .flatten()
        .ok_or("useradd failed")?;
    Ok((group, user, other))
}

struct Spool {
    _root: tempfile::TempDir,
    spool: PathBuf,
    setgid_bin: PathBuf,
    plain_bin: PathBuf,
    out: PathBuf,
    user: User,
}

fn setup() -> Option<Spool> {
    if !is_root() {
        skip("the setgid tests need root to create users and a setgid program");
        return None;
    }
    let (group, user, other) = match ensure_accounts() {
        Ok(a) => a,
        Err(why) => {
            skip(&format!("cannot create test users: {why}"));
            return None;
        }
    };
    let root = tempfile::Builder::new()
        .prefix("lockutils-mail")
        .tempdir()
        .unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let spool = root.path().join("spool");
    fs::create_dir(&spool).unwrap();
    chown(&spool, Some(0), Some(group.gid.as_raw())).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o775)).unwrap();
    let mailbox = |name: &str, owner: &User| {
        let p = spool.join(name);
        fs::write(&p, "").unwrap();
        chown(&p, Some(owner.uid.as_raw()), Some(owner.gid.as_raw())).unwrap();
    };
    mailbox(USER, &user);
    mailbox(OTHER, &other);
    let elsewhere = root.path().join("elsewhere");
    fs::write(&elsewhere, "").unwrap();
    chown(&elsewhere, Some(user.uid.as_raw()), None).unwrap();
    std::os::unix::fs::symlink(&elsewhere, spool.join("linked")).unwrap();
    let setgid_bin = root.path().join("dotlock-setgid");
    let plain_bin = root.path().join("dotlock-plain");
    for bin in [&setgid_bin, &plain_bin] {
        fs::copy(dotlock_bin(), bin).unwrap();
        chown(bin, Some(0), Some(group.gid.as_raw())).unwrap();
    }
    fs::set_permissions(&setgid_bin, fs::Permissions::from_mode(0o2755)).unwrap();
    fs::set_permissions(&plain_bin, fs::Permissions::from_mode(0o755)).unwrap();
    let out = root.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    Some(Spool {
        _root: root,
        spool,
        setgid_bin,
        plain_bin,
        out,
        user,
    })
}

impl Spool {
    /// Run `bin ARGS` as the test user, in the spool.
    fn run(&self, bin: &Path, args: &[&str], mail: Option<&str>) -> Output {
        let (uid, gid) = (self.user.uid, self.user.gid);
        let mut cmd = Command::new(bin);
        cmd.args(args).current_dir(&self.spool).env_remove("MAIL");
        if let Some(m) = mail {
            cmd.env("MAIL", self.spool.join(m));
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setgroups(&[])?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
                Ok(())
            });
        }
        cmd.output().unwrap()
    }
}

#[test]
fn setgid_mailbox_rules() {
    let Some(s) = setup() else { return };
    let own = format!("{USER}.lock");
    // Without the setgid bit the spool is closed to the user: the
    // privilege is what makes the next step work.
    let out = s.run(&s.plain_bin, &["-m", "-r", "0"], Some(USER));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The user's own mailbox: locked, and unlocked.
    let out = s.run(&s.setgid_bin, &["-m", "-r", "0"], Some(USER));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(s.spool.join(&own).exists());
    let out = s.run(&s.setgid_bin, &["-u", &own], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!s.spool.join(&own).exists());
    // Refused: another user's mailbox, a symlinked one, a name without
    // .lock, a mailbox that does not exist.
    for (what, lock) in [
        ("another user's mailbox", format!("{OTHER}.lock")),
        ("a symlinked mailbox", "linked.lock".to_string()),
        ("a name without .lock", format!("{USER}.lck")),
        ("a missing mailbox", "nobody-here.lock".to_string()),
    ] {
        let out = s.run(&s.setgid_bin, &["-r", "0", &lock], None);
        assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
        assert!(!s.spool.join(&lock).exists(), "{what}: lock created");
    }
    let leftovers: Vec<_> = fs::read_dir(&s.spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lk"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A command run under dotlock -m has the real gid, in every slot.
    let report = s.out.join("gids");
    let script = format!(
        "grep '^Gid:' /proc/self/status > '{}'; id -G >> '{}'",
        report.display(),
        report.display()
    );
    let out = s.run(&s.setgid_bin, &["-m", "sh", "-c", &script], Some(USER));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let gids = fs::read_to_string(&report).unwrap();
    let mut lines = gids.lines();
    let status: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|g| g.parse().unwrap())
        .collect();
    let user_gid = s.user.gid.as_raw();
    assert_eq!(
        status, [user_gid; 4],
        "real, effective, saved and fs gid: {gids}"
    );
    assert_eq!(
        lines.next().unwrap().trim(),
        user_gid.to_string(),
        "no supplementary mail group: {gids}"
    );
    assert!(!s.spool.join(&own).exists(), "released after the command");
}
