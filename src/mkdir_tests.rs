//! Unit tests of `mkdir`: attempts, owner placement, removal.

use super::*;
use std::fs;
use std::path::Path;

fn dirlock(dir: &Path) -> LockPath {
    LockPath::new(dir.join("L.d")).unwrap()
}

#[test]
fn take_busy_release() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = dirlock(tmp.path());
    let Try::Acquired(held) = try_lock(&lock, b"1\n").unwrap() else {
        panic!()
    };
    assert_eq!(fs::read(lock.path().join(OWNER)).unwrap(), b"1\n");
    assert_eq!(
        fs::read_dir(lock.path()).unwrap().count(),
        1,
        "only the owner file"
    );
    let Try::Busy(seen) = try_lock(&lock, b"2\n").unwrap() else {
        panic!()
    };
    assert_eq!(seen.record().pid, Some(1));
    assert!(held.release().unwrap());
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn release_refuses_a_directory_something_was_put_in() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = dirlock(tmp.path());
    let Try::Acquired(held) = try_lock(&lock, b"1\n").unwrap() else {
        panic!()
    };
    fs::write(lock.path().join("scratch"), "x").unwrap();
    let err = held.release().unwrap_err();
    assert!(matches!(err, Error::NotALock { .. }), "{err:?}");
    assert_eq!(fs::read(lock.path().join("scratch")).unwrap(), b"x");
    assert!(lock.path().join(OWNER).exists());
}

/// A release leaves another lockdir's temporary owner alone: that
/// process found the directory being emptied without an owner and is
/// placing its own (NFS: it made the directory, its MKDIR reply lost).
/// The release is done; the directory is the other's lock now.
#[test]
fn release_leaves_another_lockdirs_owner_placement_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = dirlock(tmp.path());
    let Try::Acquired(held) = try_lock(&lock, b"1\n").unwrap() else {
        panic!()
    };
    let theirs = lock.path().join(".owner.4194304.0badcafe");
    fs::write(&theirs, "2\n").unwrap();
    assert!(held.release().unwrap());
    assert_eq!(fs::read(&theirs).unwrap(), b"2\n");
    assert!(!lock.path().join(OWNER).exists());
    // A stale directory's removal sweeps a dead process's names too.
    assert!(remove_dir(&lock.open_dir().unwrap(), &lock, None, Sweep::All).unwrap());
    assert!(!lock.path().exists());
}

#[test]
fn a_directory_with_anything_else_in_it_is_not_a_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = dirlock(tmp.path());
    fs::create_dir(lock.path()).unwrap();
    fs::write(lock.path().join("data.txt"), "important").unwrap();
    for r in [
        try_lock(&lock, b"1\n").map(|_| ()),
        observe(lock.path()).map(|_| ()),
        remove_dir(&lock.open_dir().unwrap(), &lock, None, Sweep::All).map(|_| ()),
    ] {
        assert!(matches!(r, Err(Error::NotALock { .. })), "{r:?}");
    }
    assert_eq!(
        fs::read(lock.path().join("data.txt")).unwrap(),
        b"important"
    );
}
