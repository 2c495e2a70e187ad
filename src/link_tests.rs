use super::*;
use std::fs;
use std::time::Duration;

#[test]
fn lock_then_busy_then_release() {
    let dir = tempfile::tempdir().unwrap();
    let lock = LockPath::new(dir.path().join("x.lock")).unwrap();
    let held = match try_lock(&lock, b"1\n", 0o644).unwrap() {
        Attempt::Acquired(h) => h,
        other => panic!("{other:?}"),
    };
    match try_lock(&lock, b"2\n", 0o644).unwrap() {
        Attempt::Busy(seen) => {
            assert_eq!(seen.content.as_deref(), Some(&b"1\n"[..]));
            assert!(seen.age().unwrap() < Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    assert!(held.release().unwrap());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn release_leaves_a_lock_that_is_no_longer_ours() {
    let dir = tempfile::tempdir().unwrap();
    let lock = LockPath::new(dir.path().join("x.lock")).unwrap();
    let Attempt::Acquired(held) = try_lock(&lock, b"1\n", 0o644).unwrap() else {
        panic!()
    };
    // Broken and taken over by someone else.
    fs::remove_file(lock.path()).unwrap();
    fs::write(lock.path(), b"2\n").unwrap();
    assert!(!held.release().unwrap());
    assert_eq!(fs::read(lock.path()).unwrap(), b"2\n");
}

/// A freed inode number is soon another file's: a successor's lock at the
/// same device and inode (played here by rewriting the file in place) is
/// neither given our lines nor touched.
#[test]
fn our_inode_number_with_another_record_is_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let lock = LockPath::new(dir.path().join("x.lock")).unwrap();
    let Attempt::Acquired(mut held) = try_lock(&lock, b"1\n", 0o644).unwrap() else {
        panic!()
    };
    assert!(held.append(b"child=5\n").unwrap());
    assert_eq!(fs::read(lock.path()).unwrap(), b"1\nchild=5\n");
    fs::write(lock.path(), b"2\nhost=successor\n").unwrap();
    assert!(!held.append(b"token=9\n").unwrap());
    assert!(!held.touch().unwrap());
    assert_eq!(fs::read(lock.path()).unwrap(), b"2\nhost=successor\n");
    held.keep();
}
