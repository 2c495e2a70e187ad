//! The setgid mailbox rules, for real: a copy of dotlock installed setgid to
//! a test group, a spool only that group may write, and an unprivileged test
//! user. Needs root (to create the users and the setgid copy); CI is root.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lockutils::cli::testing::{self as accounts, Entry};
use nix::unistd::{Gid, Uid};

use crate::util::{dotlock_bin, is_root, real_tools_dir, skip, testing_installed};

const GROUP: &str = "lkutmail";
const USER: &str = "lkutuser";
const OTHER: &str = "lkutother";

/// Create the test group and users if they are missing.
fn ensure_accounts() -> Result<(Entry, Entry, Entry), String> {
    let run = |cmd: &mut Command| cmd.output().map_err(|e| e.to_string()).map(|_| ());
    if accounts::group_by_name(GROUP).is_none() {
        run(Command::new("groupadd").args(["--system", GROUP]))?;
    }
    for user in [USER, OTHER] {
        if accounts::user_by_name(user).is_none() {
            run(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--shell",
                "/bin/sh",
                user,
            ]))?;
        }
    }
    let group = accounts::group_by_name(GROUP).ok_or("groupadd failed")?;
    let user = accounts::user_by_name(USER).ok_or("useradd failed")?;
    let other = accounts::user_by_name(OTHER).ok_or("useradd failed")?;
    Ok((group, user, other))
}

struct Spool {
    _root: tempfile::TempDir,
    spool: PathBuf,
    setgid_bin: PathBuf,
    plain_bin: PathBuf,
    out: PathBuf,
    user: Entry,
    other: Entry,
    group: Entry,
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
    // Against the installed package, the spool is the group mail's and
    // the setgid program is the installed dotlock (root:mail 2755).
    let group = if testing_installed() {
        accounts::group_by_name("mail").expect("the group mail")
    } else {
        group
    };
    let root = tempfile::Builder::new()
        .prefix("lockutils-mail")
        .tempdir()
        .unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let spool = root.path().join("spool");
    fs::create_dir(&spool).unwrap();
    chown(&spool, Some(0), Some(group.id)).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o775)).unwrap();
    let mailbox = |name: &str, owner: &Entry| {
        let p = spool.join(name);
        fs::write(&p, "").unwrap();
        chown(&p, Some(owner.id), Some(owner.gid)).unwrap();
    };
    mailbox(USER, &user);
    mailbox(OTHER, &other);
    let elsewhere = root.path().join("elsewhere");
    fs::write(&elsewhere, "").unwrap();
    chown(&elsewhere, Some(user.id), None).unwrap();
    std::os::unix::fs::symlink(&elsewhere, spool.join("linked")).unwrap();
    let plain_bin = root.path().join("dotlock-plain");
    let setgid_bin = if testing_installed() {
        let installed = dotlock_bin();
        let meta = fs::metadata(&installed).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (0o2755, 0, group.id),
            "{} is not root:mail 2755",
            installed.display()
        );
        installed
    } else {
        root.path().join("dotlock-setgid")
    };
    for bin in [&setgid_bin, &plain_bin] {
        if !testing_installed() || bin == &plain_bin {
            fs::copy(dotlock_bin(), bin).unwrap();
            chown(bin, Some(0), Some(group.id)).unwrap();
        }
    }
    if !testing_installed() {
        fs::set_permissions(&setgid_bin, fs::Permissions::from_mode(0o2755)).unwrap();
    }
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
        other,
        group,
    })
}

impl Spool {
    /// Run `bin ARGS` as the test user, in the spool.
    fn run(&self, bin: &Path, args: &[&str], mail: Option<&str>) -> Output {
        let mut cmd = Command::new(bin);
        cmd.args(args).current_dir(&self.spool).env_remove("MAIL");
        if let Some(m) = mail {
            cmd.env("MAIL", self.spool.join(m));
        }
        run_as(cmd, self.user.id, self.user.gid)
    }
}

/// Start `cmd` with only the given uid and gid.
fn spawn_as(mut cmd: Command, uid: u32, gid: u32) -> std::process::Child {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setgroups(&[])?;
            nix::unistd::setgid(gid)?;
            nix::unistd::setuid(uid)?;
            Ok(())
        });
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A user who owns a mailbox named like another user's, in a second
/// spool of the mail group, points a symbolic link at it and flips the
/// link to the real spool between the rule check and the privileged
/// calls (a seam pauses dotlock exactly there): nothing is created or
/// removed in the real spool, and no temporary file is left there.
#[test]
fn a_flipped_directory_link_cannot_redirect_the_privileged_calls() {
    if !crate::util::has_seams() {
        return;
    }
    let Some(s) = setup() else { return };
    let root = s.spool.parent().unwrap();
    let decoy = root.join("decoy");
    fs::create_dir(&decoy).unwrap();
    chown(&decoy, Some(0), Some(s.group.id)).unwrap();
    fs::set_permissions(&decoy, fs::Permissions::from_mode(0o775)).unwrap();
    let decoy_box = decoy.join(OTHER);
    fs::write(&decoy_box, "").unwrap();
    chown(&decoy_box, Some(s.user.id), Some(s.user.gid)).unwrap();
    let link = s.out.join("sw");
    let lock = format!("sw/{OTHER}.lock");
    let victim = s.spool.join(format!("{OTHER}.lock"));
    let spool_temps = || -> Vec<String> {
        fs::read_dir(&s.spool)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".lk"))
            .collect()
    };
    for (round, args) in [["-u", "-q"], ["-r", "0"]].iter().enumerate() {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&decoy, &link).unwrap();
        let decoy_lock = decoy.join(format!("{OTHER}.lock"));
        let _ = fs::remove_file(&decoy_lock);
        // The other user's lock is held in the first round, absent in the
        // second. In the first, the user removes a lock of nobody's in the
        // decoy spool: the flip aims that removal at the other's lock.
        let held = round == 0;
        if held {
            fs::write(&victim, "4242\n").unwrap();
            chown(&victim, Some(s.other.id), Some(s.other.gid)).unwrap();
            fs::write(&decoy_lock, "0\n").unwrap();
            chown(&decoy_lock, Some(s.user.id), Some(s.user.gid)).unwrap();
        }
        let gate = s.out.join(format!("gate{round}"));
        let mut cmd = Command::new(&s.setgid_bin);
        cmd.args(*args)
            .arg(&lock)
            .current_dir(&s.out)
            .env_remove("MAIL")
            .env("LOCKUTILS_TEST_PAUSE_PRIVILEGED", &gate);
        let child = spawn_as(cmd, s.user.id, s.user.gid);
        let reached = s.out.join(format!("gate{round}.reached"));
        crate::util::wait_until(
            "the privileged pause",
            std::time::Duration::from_secs(20),
            || reached.exists(),
        );
        // Flip the link to the real spool, atomically.
        let flipped = s.out.join("sw.new");
        let _ = fs::remove_file(&flipped);
        std::os::unix::fs::symlink(&s.spool, &flipped).unwrap();
        fs::rename(&flipped, &link).unwrap();
        fs::write(&gate, "").unwrap();
        let out = child.wait_with_output().unwrap();
        if held {
            assert_eq!(
                fs::read(&victim).ok().as_deref(),
                Some(&b"4242\n"[..]),
                "removed: {out:?}"
            );
            fs::remove_file(&victim).unwrap();
        } else {
            assert!(
                !victim.exists(),
                "created in the other user's spool: {out:?}"
            );
            assert_eq!(out.status.code(), Some(0), "{out:?}");
            assert!(decoy.join(format!("{OTHER}.lock")).exists(), "{out:?}");
        }
        assert!(spool_temps().is_empty(), "{:?}", spool_temps());
    }
}

/// Run `cmd` with only the given uid and gid.
fn run_as(cmd: Command, uid: u32, gid: u32) -> Output {
    spawn_as(cmd, uid, gid).wait_with_output().unwrap()
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
    let user_gid = s.user.gid;
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

/// Without `$MAIL`, the mailbox is named from the passwd entry of the
/// caller's uid, looked up without NSS modules in the process (the
/// programs are linked statically): a name from `/etc/passwd`, and a clear
/// error for a uid that no source knows.
#[test]
fn mailbox_named_from_the_passwd_entry() {
    let Some(s) = setup() else { return };
    let no_mail = |bin: &Path, args: &[&str], logname: &str| {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(&s.out)
            .env_remove("MAIL")
            .env("LOGNAME", logname);
        cmd
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();
    // /var/mail is closed to the test user, so the attempt fails, naming
    // the lock it tried.
    let own = format!("/var/mail/{USER}.lock");
    let out = run_as(
        no_mail(&s.plain_bin, &["-m", "-r", "0"], USER),
        s.user.id,
        s.user.gid,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains(&own), "{out:?}");
    // procmail's -ml takes $LOGNAME only if it names the caller's uid.
    let lockfile = s.out.join("lockfile");
    std::os::unix::fs::symlink(crate::filelock::filelock_bin(), &lockfile).unwrap();
    for logname in [USER, OTHER, "no-such-user-here"] {
        let out = run_as(
            no_mail(&lockfile, &["-r", "0", "-ml"], logname),
            s.user.id,
            s.user.gid,
        );
        assert_ne!(out.status.code(), Some(0), "{out:?}");
        assert!(stderr(&out).contains(&own), "LOGNAME={logname}: {out:?}");
    }
    // A uid without an entry anywhere.
    let out = run_as(no_mail(&s.plain_bin, &["-m"], USER), 3_999_999, 3_999_999);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let message = stderr(&out);
    assert!(
        message.contains("uid 3999999 has no passwd entry") && message.lines().count() == 1,
        "{out:?}"
    );
    assert!(!Path::new(&own).exists());
}

/// lockfile-progs' `mail-lock` and `mail-unlock`, side by side: the real
/// setgid-mail programs and a setgid-mail copy of dotlock under those
/// names, run as the test user on `/var/spool/mail/USER.lock`.
#[test]
fn mail_lock_and_unlock_as_lockfile_progs() {
    if !is_root() {
        return skip("the mail-lock test needs root for a setgid copy and a test user");
    }
    let Some(real) = real_tools_dir(&["mail-lock", "mail-unlock"], "lockfile-progs") else {
        return;
    };
    let Some(mail) = accounts::group_by_name("mail") else {
        return skip("no group mail");
    };
    let (_, user, _) = ensure_accounts().expect("test accounts");
    let spool = Path::new("/var/spool/mail");
    let mailbox = spool.join(USER);
    let made_mailbox = !mailbox.exists();
    if made_mailbox {
        fs::write(&mailbox, "").unwrap();
        chown(&mailbox, Some(user.id), Some(mail.id)).unwrap();
    }
    let lock = spool.join(format!("{USER}.lock"));
    let _ = fs::remove_file(&lock);
    let root = tempfile::Builder::new()
        .prefix("lockutils-mail-lock")
        .tempdir()
        .unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // Ours: the installed names (lockutils-compat's links to the setgid
    // dotlock), or setgid-mail copies of dotlock under those names.
    let installed = dotlock_bin().parent().unwrap().to_path_buf();
    let linked = |name: &str| {
        fs::canonicalize(installed.join(name)).ok() == fs::canonicalize(dotlock_bin()).ok()
    };
    let ours = if testing_installed() && linked("mail-lock") && linked("mail-unlock") {
        installed
    } else {
        let ours = root.path().join("bin");
        fs::create_dir(&ours).unwrap();
        fs::set_permissions(&ours, fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["mail-lock", "mail-unlock"] {
            let bin = ours.join(name);
            fs::copy(dotlock_bin(), &bin).unwrap();
            chown(&bin, Some(0), Some(mail.id)).unwrap();
            fs::set_permissions(&bin, fs::Permissions::from_mode(0o2755)).unwrap();
        }
        ours
    };
    let seen = |bin: &Path| {
        let run = |name: &str, args: &[&str]| {
            let mut cmd = Command::new(bin.join(name));
            cmd.args(args).current_dir(root.path());
            run_as(cmd, user.id, user.gid).status.code()
        };
        let locked = run("mail-lock", &["-r", "0"]);
        let content = fs::read(&lock).ok();
        let owner = fs::metadata(&lock)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        let again = run("mail-lock", &["-r", "0"]);
        let unlocked = run("mail-unlock", &[]);
        let gone = !lock.exists();
        (locked, content, owner, again, unlocked, gone)
    };
    let theirs = seen(&real);
    let mine = seen(&ours);
    let _ = fs::remove_file(&lock);
    if made_mailbox {
        let _ = fs::remove_file(&mailbox);
    }
    assert_eq!(theirs.0, Some(0), "the real mail-lock locks: {theirs:?}");
    assert_eq!(mine, theirs);
}
