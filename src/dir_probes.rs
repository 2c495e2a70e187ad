//! `--check`'s tries of what the lock protocols need, in the directory
//! itself: an exclusive create, a hard link judged by inode, a directory
//! made twice; and the filesystem's clock against this host's. The test
//! files are `.lk` temporary names (debris by the usual rules should a
//! SIGKILL leave one) and are removed on every other path.

use std::ffi::OsString;
use std::io;
use std::time::Duration;

use crate::dir::{Dir, Meta};
use crate::finding::{Finding, Verdict, finding};
use crate::seam;

/// A clock offset up to this is no offset (timestamps' and clocks' grain).
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// The names the probes create, removed when dropped (every path but a
/// SIGKILL, which leaves `.lk` debris for the next taker).
struct Scratch<'a> {
    dir: &'a Dir,
    files: Vec<OsString>,
    dirs: Vec<OsString>,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = self.dir.unlink(f);
        }
        for d in &self.dirs {
            let _ = self.dir.rmdir(d);
        }
    }
}

/// Create, link, make a directory: what the protocols need, tried here;
/// and the filesystem's clock against ours.
pub(crate) fn probes(dir: &Dir) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut made = Scratch {
        dir,
        files: Vec::new(),
        dirs: Vec::new(),
    };
    let first = crate::fs::temp_name();
    let before = seam::local_now();
    // A fresh random name cannot be there already: "exists" is our own
    // create answered by a retransmission (a lost NFS reply), judged by
    // opening it.
    let created = match dir.create_new(&first, 0o644) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => dir.open_read(&first),
        other => other,
    };
    let file = match created {
        Ok(f) => f,
        Err(e) => {
            out.push(finding(
                "create",
                Verdict::Unsafe,
                format!("cannot create a file here: {}", crate::error::describe(&e)),
                Some("no lock can be taken here: use a directory this user can write"),
            ));
            return out;
        }
    };
    made.files.push(first.clone());
    let after = seam::local_now();
    let again = dir.create_new(&first, 0o644);
    out.push(match again {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => finding(
            "O_EXCL",
            Verdict::Ok,
            "exclusive create refuses an existing name".into(),
            None,
        ),
        _ => finding(
            "O_EXCL",
            Verdict::Unsafe,
            "exclusive create (O_EXCL) of an existing name succeeded".into(),
            Some("no lock is safe on this filesystem"),
        ),
    });
    out.push(link_test(dir, &first, &mut made.files));
    out.push(mkdir_test(dir, &mut made.dirs));
    seam::pause("CHECK_PROBES");
    if let Ok(meta) = Meta::of(&file) {
        out.push(clock(meta.mtime, before, after));
    }
    out
}

/// `link(2)` of the first test file, judged by inode as the protocol
/// judges it.
fn link_test(dir: &Dir, first: &OsString, made: &mut Vec<OsString>) -> Finding {
    let second = crate::fs::temp_name();
    let linked = match seam::link() {
        seam::Link::Unsupported => Err(io::Error::from_raw_os_error(nix::libc::EPERM)),
        _ => dir.link(first, &second),
    };
    let same = match (dir.lstat(first), dir.lstat(&second)) {
        (Ok(a), Ok(b)) => a.same_file(&b),
        _ => false,
    };
    if linked.is_ok() || same {
        made.push(second);
    }
    match (linked, same) {
        (Ok(()), true) => finding(
            "link",
            Verdict::Ok,
            "link(2) works here (checked by inode): dotlock uses it".into(),
            None,
        ),
        (Err(_), true) => finding(
            "link",
            Verdict::Warning,
            "link(2) reported failure for a link that was made (a lost reply?): dotlock judges by inode and is not fooled".into(),
            None,
        ),
        (Err(e), false) => finding(
            "link",
            Verdict::Warning,
            format!(
                "no hard links here ({}): dotlock and filelock fall back to an exclusive create (O_EXCL), which is atomic on local filesystems and NFS version 3 and later",
                crate::error::describe(&e)
            ),
            Some("on other network filesystems prefer lockdir (mkdir(2))"),
        ),
        (Ok(()), false) => finding(
            "link",
            Verdict::Unsafe,
            "link(2) reported success, but the name does not lead to the file linked".into(),
            Some("no dot-lock is safe here: use lockdir"),
        ),
    }
}

/// `mkdir(2)` twice: the second must be refused.
fn mkdir_test(dir: &Dir, made: &mut Vec<OsString>) -> Finding {
    let name = crate::fs::temp_name();
    // "Exists" for a fresh random name: our own mkdir, its reply lost.
    let made_it = match dir.mkdir(&name, 0o700) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    };
    if let Err(e) = made_it {
        return finding(
            "mkdir",
            Verdict::Unsafe,
            format!(
                "cannot make a directory here: {}",
                crate::error::describe(&e)
            ),
            Some("lockdir cannot lock here"),
        );
    }
    made.push(name.clone());
    match dir.mkdir(&name, 0o700) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => finding(
            "mkdir",
            Verdict::Ok,
            "mkdir(2) refuses an existing name: lockdir works here".into(),
            None,
        ),
        _ => finding(
            "mkdir",
            Verdict::Unsafe,
            "mkdir(2) of an existing name did not fail with EEXIST".into(),
            Some("lockdir is not safe here"),
        ),
    }
}

/// The filesystem's clock against this host's: a file made between
/// `before` and `after` has mtime `mtime`.
pub fn clock(
    mtime: std::time::SystemTime,
    before: std::time::SystemTime,
    after: std::time::SystemTime,
) -> Finding {
    let (ahead, by) = match mtime.duration_since(after) {
        Ok(d) => (true, d),
        Err(_) => (false, before.duration_since(mtime).unwrap_or_default()),
    };
    let secs = by.as_secs_f64();
    let said = match ahead {
        true => format!("the filesystem's clock is {secs:.1} s ahead of this host's"),
        false => format!("the filesystem's clock is {secs:.1} s behind this host's"),
    };
    match by <= CLOCK_SLACK {
        true => finding("clock", Verdict::Ok, format!("{said}: in step"), None),
        false => finding(
            "clock",
            Verdict::Warning,
            format!(
                "{said}. lockutils never compares the two (ages are measured on the filesystem's clock): ok for dotlock, lockdir and filelock; procmail's lockfile and scripts that compare date(1) with file times misjudge ages by that much"
            ),
            Some("run NTP on this host and the server"),
        ),
    }
}
