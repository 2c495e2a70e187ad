//! `--check DIR`: is this directory safe to lock in? One finding per
//! question — the filesystem and its mount options, whether `link(2)`,
//! `mkdir(2)` and `O_EXCL` really work here, the clock offset between this
//! host and the filesystem, this host's identity, who may create and
//! remove here, free space — each with a verdict and what to do (the
//! tries in the directory itself: [`crate::dir_probes`]).

use std::path::Path;

use crate::dir::{Dir, Meta};
use crate::error::{Error, Result};
use crate::finding::finding;
pub use crate::finding::{Finding, Verdict};
use crate::mountinfo::{self, Mount};
use crate::seam;

/// Diagnose `dir`.
pub fn diagnose(dir: &Path) -> Result<Vec<Finding>> {
    let opened = Dir::open(dir).map_err(|e| match e.raw_os_error() {
        Some(nix::libc::ENOENT) => Error::NoDirectory { dir: dir.into() },
        Some(nix::libc::ENOTDIR) => Error::NotADirectory { dir: dir.into() },
        _ => Error::io(dir, e),
    })?;
    let meta = opened.meta().map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    let mount =
        seam::mountinfo().and_then(|text| mountinfo::find(&text, major(meta.dev), minor(meta.dev)));
    out.extend(filesystem(dir, mount.as_ref()));
    if let Some(m) = mount.as_ref().filter(|m| m.is_nfs()) {
        out.extend(nfs_options(m));
    }
    out.extend(crate::dir_probes::probes(&opened));
    out.extend(identity(dir));
    out.extend(permissions(dir, &meta));
    out.extend(space(dir));
    Ok(out)
}

fn major(dev: u64) -> u64 {
    nix::sys::stat::major(dev)
}

fn minor(dev: u64) -> u64 {
    nix::sys::stat::minor(dev)
}

/// Filesystem types that another machine (or a user-space server) serves.
fn remote_kind(fstype: &str) -> Option<&'static str> {
    match fstype {
        "nfs" | "nfs4" => Some("NFS"),
        "cifs" | "smb3" | "smbfs" => Some("SMB"),
        "ceph" | "glusterfs" | "lustre" | "gpfs" | "afs" | "9p" | "virtiofs" => Some("network"),
        t if t == "fuse" || t.starts_with("fuse.") || t == "fuseblk" => Some("FUSE"),
        _ => None,
    }
}

/// The filesystem: its type, local or remote, read-only.
fn filesystem(dir: &Path, mount: Option<&Mount>) -> Vec<Finding> {
    let fstype = mount
        .map(|m| m.fstype.clone())
        .or_else(|| statfs_name(dir))
        .unwrap_or_else(|| "unknown".into());
    let at = mount
        .map(|m| format!(" mounted at {} from {}", m.mount_point, m.source))
        .unwrap_or_default();
    let mut out = vec![match remote_kind(&fstype) {
        None => finding(
            "filesystem",
            Verdict::Ok,
            format!("{fstype}{at}, local: the kernel sees every change; waiters wake at once"),
            None,
        ),
        Some("FUSE") => finding(
            "filesystem",
            Verdict::Warning,
            format!(
                "{fstype}{at}: FUSE{}, served in user space: whether link(2) and O_EXCL are atomic is up to its server",
                fstype
                    .strip_prefix("fuse.")
                    .map(|s| format!(" (subtype {s})"))
                    .unwrap_or_default()
            ),
            Some("rely on it only as far as the link test below shows"),
        ),
        Some("NFS") => finding(
            "filesystem",
            Verdict::Ok,
            format!(
                "{fstype}{at}, remote (NFS{}): dot-locks and lock directories exclude across clients; waiters probe the server for a release",
                mount
                    .and_then(|m| m.option("vers"))
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default()
            ),
            None,
        ),
        Some(kind) => finding(
            "filesystem",
            Verdict::Warning,
            format!(
                "{fstype}{at}, remote ({kind}): hard links and exclusive create depend on the server"
            ),
            Some("rely on it only as far as the link test below shows"),
        ),
    }];
    if mount.is_some_and(Mount::read_only) {
        out.push(finding(
            "filesystem",
            Verdict::Unsafe,
            "mounted read-only: no lock can be taken here".into(),
            Some("put the locks on a writable filesystem"),
        ));
    }
    out
}

/// The name of `dir`'s filesystem type from statfs(2), where mountinfo
/// does not say.
fn statfs_name(dir: &Path) -> Option<String> {
    use nix::sys::statfs::*;
    let t = statfs(dir).ok()?.filesystem_type();
    let names = [
        (EXT4_SUPER_MAGIC, "ext2/ext3/ext4"),
        (TMPFS_MAGIC, "tmpfs"),
        (NFS_SUPER_MAGIC, "nfs"),
        (BTRFS_SUPER_MAGIC, "btrfs"),
        (XFS_SUPER_MAGIC, "xfs"),
        (FUSE_SUPER_MAGIC, "fuse"),
        (OVERLAYFS_SUPER_MAGIC, "overlay"),
    ];
    names
        .iter()
        .find(|(m, _)| *m == t)
        .map(|(_, n)| n.to_string())
}

/// What an NFS mount's options mean for flock(1) and for dot-locks.
pub fn nfs_options(m: &Mount) -> Vec<Finding> {
    let mut out = Vec::new();
    match m.option("local_lock") {
        Some(v @ ("all" | "flock")) => out.push(finding(
            "nfs options",
            Verdict::Warning,
            format!("local_lock={v}: flock(1) locks stay on this client and exclude nothing across clients; dot-locks and lock directories are unaffected"),
            Some("use dotlock or lockdir here, not flock(1)"),
        )),
        Some(v @ "posix") => out.push(finding(
            "nfs options",
            Verdict::Warning,
            format!("local_lock={v}: fcntl(2) locks stay on this client; dot-locks and lock directories are unaffected"),
            Some("use dotlock or lockdir here, not fcntl(2) locks"),
        )),
        _ => {}
    }
    if m.option("nolock").is_some() {
        out.push(finding(
            "nfs options",
            Verdict::Warning,
            "nolock: no lock manager, so flock(1) and fcntl(2) locks are local to this client; dot-locks and lock directories are unaffected".into(),
            Some("use dotlock or lockdir here, not flock(1)"),
        ));
    }
    if m.option("nocto").is_some() {
        out.push(finding(
            "nfs options",
            Verdict::Warning,
            "nocto: no close-to-open consistency, so a record another client wrote may be read stale, and its holder misjudged".into(),
            Some("remount without nocto"),
        ));
    }
    for (key, what) in [
        ("actimeo", "attribute cache"),
        ("acregmax", "file attribute cache"),
        ("acdirmax", "directory attribute cache"),
        ("lookupcache", "lookup cache"),
    ] {
        if let Some(v) = m.option(key) {
            out.push(finding(
                "nfs options",
                Verdict::Ok,
                format!("{key}={v} ({what}): dot-locks stay correct (every look opens the file, which revalidates); shorter caches cost more calls"),
                None,
            ));
        }
    }
    if m.option("noac").is_some() {
        out.push(finding(
            "nfs options",
            Verdict::Ok,
            "noac: no attribute cache; correct, at the cost of more calls".into(),
            None,
        ));
    }
    out
}

/// This host's name and machine identity, and records in `dir` that name
/// this host's name with another machine's identity.
fn identity(dir: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let name = crate::host::hostname();
    let default = [
        "",
        "localhost",
        "localhost.localdomain",
        "(none)",
        "debian",
        "ubuntu",
    ];
    out.push(match default.contains(&name.as_str()) {
        true => finding(
            "identity",
            Verdict::Warning,
            format!("host name {name:?} is a default: other machines may share it, and legacy tools cannot tell them apart"),
            Some("give this host its own name (hostnamectl set-hostname)"),
        ),
        false => finding("identity", Verdict::Ok, format!("host name {name}"), None),
    });
    let id = crate::machine::identity();
    out.push(match &id {
        Some(_) => finding(
            "identity",
            Verdict::Ok,
            "machine identity present (/etc/machine-id): same-named machines are told apart".into(),
            None,
        ),
        None => finding(
            "identity",
            Verdict::Warning,
            "no machine identity (/etc/machine-id): machines that share a host name cannot be told apart".into(),
            Some("systemd-machine-id-setup, or dbus-uuidgen --ensure=/etc/machine-id"),
        ),
    });
    let policy = crate::judge::Policy {
        stale_after: crate::judge::DEFAULT_STALE_AFTER,
        trust_bare_pid: false,
    };
    let twins = crate::survey::survey(dir, &policy, crate::lockdir::DEFAULT_GRACE)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| f.holder)
        .filter(|h| {
            h.record.host.as_deref() == Some(name.as_str())
                && h.record.machine_id.is_some()
                && id.is_some()
                && h.record.machine_id != id
        })
        .count();
    if twins > 0 {
        out.push(finding(
            "identity",
            Verdict::Warning,
            format!("{twins} lock(s) here name this host's name with another machine's identity: two machines share the name {name}"),
            Some("give each machine its own host name"),
        ));
    }
    out
}

/// Who may create and remove here.
fn permissions(dir: &Path, meta: &Meta) -> Vec<Finding> {
    use nix::unistd::{AccessFlags, access};
    let mode = meta.mode & 0o7777;
    let group = crate::accounts::group_by_id(meta.gid)
        .map(|g| g.name)
        .unwrap_or_else(|| meta.gid.to_string());
    let owner = crate::accounts::user_by_id(meta.uid)
        .map(|u| u.name)
        .unwrap_or_else(|| meta.uid.to_string());
    let mut out = Vec::new();
    let said = format!("owner {owner}, group {group}, mode {mode:04o}");
    let world = mode & 0o002 != 0;
    let sticky = mode & 0o1000 != 0;
    out.push(match (world, sticky) {
        (true, false) => finding(
            "permissions",
            Verdict::Unsafe,
            format!(
                "{said}: world-writable without the sticky bit: anyone can remove anyone's lock"
            ),
            Some("chmod +t on the directory"),
        ),
        _ => finding(
            "permissions",
            Verdict::Ok,
            format!("{said}: only the owner of a lock (and the directory's owner) can remove it"),
            None,
        ),
    });
    if access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_err() {
        out.push(finding(
            "permissions",
            Verdict::Unsafe,
            "this user cannot create files here: no lock can be taken".into(),
            Some("run as a user who can write here, or lock elsewhere"),
        ));
    }
    if group == "mail" {
        let setgid = std::env::current_exe()
            .ok()
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.mode() & 0o2000 != 0 && m.gid() == meta.gid
            });
        out.push(match setgid {
            true => finding("permissions", Verdict::Ok, "a mail spool; this program is setgid mail for it".into(), None),
            false => finding(
                "permissions",
                Verdict::Warning,
                "a mail spool (group mail); this program is not setgid mail: mailbox locks by users who cannot write here fail".into(),
                Some("install dotlock root:mail mode 2755, as liblockfile installs dotlockfile"),
            ),
        });
    }
    out
}

/// Free space and inodes: a full filesystem cannot take a lock.
fn space(dir: &Path) -> Vec<Finding> {
    let Ok(st) = nix::sys::statvfs::statvfs(dir) else {
        return Vec::new();
    };
    let bytes = st.blocks_available() * st.fragment_size();
    let inodes = st.files_available();
    let said = format!("{} MiB and {inodes} inodes free", bytes / (1024 * 1024));
    vec![match (bytes, inodes) {
        (0, _) | (_, 0) => finding(
            "space",
            Verdict::Unsafe,
            format!(
                "{said}: a full filesystem cannot take a lock (the owner record cannot be written)"
            ),
            Some("free space on it"),
        ),
        _ => finding("space", Verdict::Ok, said, None),
    }]
}

#[cfg(test)]
#[path = "diagnose_tests.rs"]
mod tests;
