use super::*;
use crate::dir_probes::clock;
use std::time::{Duration, UNIX_EPOCH};

fn nfs(options: &str) -> Mount {
    mountinfo::parse_line(&format!(
        "40 22 0:45 / /srv rw,relatime - nfs4 server:/export rw,vers=4.2,{options}"
    ))
    .unwrap()
}

fn verdicts(found: &[Finding]) -> Vec<(Verdict, String)> {
    found.iter().map(|f| (f.verdict, f.text.clone())).collect()
}

#[test]
fn nfs_options_that_matter_and_whom_they_affect() {
    let all = nfs_options(&nfs("local_lock=all"));
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].verdict, Verdict::Warning);
    assert!(
        all[0].text.starts_with("local_lock=all: flock(1)"),
        "{all:?}"
    );
    assert!(
        all[0]
            .text
            .contains("dot-locks and lock directories are unaffected")
    );
    assert_eq!(
        nfs_options(&nfs("local_lock=flock"))[0].verdict,
        Verdict::Warning
    );
    assert!(nfs_options(&nfs("local_lock=none")).is_empty());
    let nolock = nfs_options(&nfs("nolock"));
    assert_eq!(nolock[0].verdict, Verdict::Warning);
    assert!(nolock[0].text.starts_with("nolock:"), "{nolock:?}");
    let nocto = nfs_options(&nfs("nocto"));
    assert_eq!(nocto[0].verdict, Verdict::Warning);
    assert!(nocto[0].text.starts_with("nocto:"));
    for ok in ["actimeo=0", "lookupcache=none", "noac", "acregmax=60"] {
        let found = nfs_options(&nfs(ok));
        assert_eq!(found.len(), 1, "{ok}: {found:?}");
        assert_eq!(found[0].verdict, Verdict::Ok, "{ok}");
    }
    assert!(nfs_options(&nfs("hard,proto=tcp")).is_empty());
}

#[test]
fn a_clock_in_step_is_ok_and_an_offset_warns_naming_who_it_hurts() {
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
    let in_step = clock(at(1), at(0), at(1));
    assert_eq!(in_step.verdict, Verdict::Ok, "{in_step:?}");
    let slightly = clock(at(3), at(0), at(1));
    assert_eq!(slightly.verdict, Verdict::Ok, "2 s of grain: {slightly:?}");
    let ahead = clock(at(3601), at(0), at(1));
    assert_eq!(ahead.verdict, Verdict::Warning);
    assert!(
        ahead
            .text
            .starts_with("the filesystem's clock is 3600.0 s ahead"),
        "{ahead:?}"
    );
    assert!(ahead.text.contains("procmail's lockfile") && ahead.text.contains("ok for dotlock"));
    let behind = clock(at(0), at(3600), at(3601));
    assert!(
        behind
            .text
            .starts_with("the filesystem's clock is 3600.0 s behind"),
        "{behind:?}"
    );
    assert_eq!(behind.verdict, Verdict::Warning);
}

#[test]
fn remote_kinds() {
    assert_eq!(remote_kind("nfs4"), Some("NFS"));
    assert_eq!(remote_kind("fuse.sshfs"), Some("FUSE"));
    assert_eq!(remote_kind("cifs"), Some("SMB"));
    assert_eq!(remote_kind("ext4"), None);
    assert_eq!(remote_kind("tmpfs"), None);
    let fuse = filesystem(
        Path::new("/x"),
        mountinfo::parse_line("50 22 0:60 / /mnt rw - fuse.sshfs me@host:/ rw").as_ref(),
    );
    assert_eq!(verdicts(&fuse)[0].0, Verdict::Warning);
    assert!(fuse[0].text.contains("FUSE (subtype sshfs)"), "{fuse:?}");
    let ro = filesystem(
        Path::new("/x"),
        mountinfo::parse_line("50 22 8:1 / /mnt ro - ext4 /dev/sda1 rw").as_ref(),
    );
    assert_eq!(ro.last().unwrap().verdict, Verdict::Unsafe, "{ro:?}");
}
