//! The builder and its guard through their whole life, for each kind of
//! lock: taken, contended, kept fresh, lost, released.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::*;

/// Poll `what` for up to 20 s: a margin, not a sleep that decides.
fn until(what: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !what() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    what()
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::symlink_metadata(path).unwrap().modified().unwrap()
}

fn set_mtime(path: &Path, t: SystemTime) {
    let f = std::fs::File::open(path).unwrap();
    f.set_modified(t).unwrap();
}

const LONG_AGO: Duration = Duration::from_secs(1_000_000_000);

#[test]
fn each_kind_is_taken_contended_and_released() {
    let dir = tempfile::tempdir().unwrap();
    for (lock, what) in [
        (Lock::dot(dir.path().join("F")), "a dot-lock"),
        (Lock::dir(dir.path().join("D")), "a lock directory"),
    ] {
        let guard = lock.acquire().unwrap();
        assert!(guard.path().exists(), "{what}");
        assert_eq!(guard.slot(), None);
        assert!(lock.try_acquire().unwrap().is_none(), "{what}: busy");
        let busy = lock.clone().retries(1).interval(Duration::ZERO).acquire();
        assert!(matches!(busy, Err(Error::Busy { .. })), "{what}: {busy:?}");
        let timed = lock.clone().timeout(Duration::from_millis(50)).acquire();
        assert!(
            matches!(timed, Err(Error::TimedOut { .. })),
            "{what}: {timed:?}"
        );
        let holder = status(guard.path()).unwrap().expect("held");
        assert_eq!(holder.record.pid, Some(std::process::id()), "{what}");
        guard.release().unwrap();
        assert!(!lock.path.exists(), "{what}: released");
        assert!(status(&lock.path).unwrap().is_none(), "{what}: free");
        drop(lock.acquire().unwrap());
        assert!(!lock.path.exists(), "{what}: released by drop");
    }
}

#[test]
fn readers_share_and_a_writer_waits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("R");
    let reader = Lock::dot(&path).shared();
    let first = reader.acquire().unwrap();
    let second = reader.try_acquire().unwrap().expect("readers together");
    assert!(
        Lock::dot(&path).try_acquire().unwrap().is_none(),
        "no writer"
    );
    let holder = status(&path).unwrap().expect("held by readers");
    assert_eq!(holder.readers.len(), 2);
    first.release().unwrap();
    assert!(path.exists(), "one reader left");
    drop(second);
    assert!(!path.exists(), "the last reader takes the lock away");
    drop(
        Lock::dot(&path)
            .try_acquire()
            .unwrap()
            .expect("a writer now"),
    );
}

#[test]
fn a_slot_is_any_free_one_of_n() {
    let dir = tempfile::tempdir().unwrap();
    let lock = Lock::dot(dir.path().join("S")).slots(2);
    let one = lock.acquire().unwrap();
    let two = lock.acquire().unwrap();
    assert_eq!((one.slot(), two.slot()), (Some(1), Some(2)));
    assert!(two.path().ends_with("S.2"));
    assert!(lock.try_acquire().unwrap().is_none(), "both taken");
    drop(one);
    assert_eq!(lock.acquire().unwrap().slot(), Some(1));
    assert!(Lock::dot(dir.path().join("S")).slots(0).acquire().is_err());
    assert!(
        Lock::dot(dir.path().join("S"))
            .slots(2)
            .shared()
            .acquire()
            .is_err()
    );
}

#[test]
fn a_held_lock_is_kept_fresh_until_it_is_found_lost() {
    let dir = tempfile::tempdir().unwrap();
    for lock in [
        Lock::dot(dir.path().join("F")),
        Lock::dir(dir.path().join("D")),
    ] {
        let guard = lock
            .stale_after(Duration::from_millis(300))
            .acquire()
            .unwrap();
        let long_ago = SystemTime::UNIX_EPOCH + LONG_AGO;
        let path = guard.path().to_path_buf();
        // A lock directory's age is its owner record's.
        let aged = match path.is_dir() {
            true => path.join("owner"),
            false => path.clone(),
        };
        set_mtime(&aged, long_ago);
        assert!(until(|| mtime(&aged) > long_ago), "touched");
        assert!(!guard.is_lost());
        // Somebody else's lock at the name now.
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, "0\n").unwrap();
        }
        let theirs = mtime(&path);
        assert!(until(|| guard.is_lost()), "seen lost at the next turn");
        set_mtime(&path, long_ago);
        let released = guard.release();
        assert!(
            matches!(released, Err(Error::LockLost { .. })),
            "{released:?}"
        );
        assert!(path.exists(), "the other's lock is left alone");
        assert_eq!(mtime(&path), long_ago, "nor touched (was {theirs:?})");
    }
}

#[test]
fn release_says_when_the_lock_was_taken_away_before_any_touch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("L");
    let guard = Lock::dot(&path).keep_fresh(false).acquire().unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "0\n").unwrap();
    assert!(
        !guard.is_lost(),
        "nothing looks without a keep-alive thread"
    );
    assert!(matches!(guard.release(), Err(Error::LockLost { .. })));
    assert!(path.exists());
}

#[test]
fn a_readers_share_is_kept_fresh_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("R");
    let guard = Lock::dot(&path)
        .shared()
        .stale_after(Duration::from_millis(300))
        .acquire()
        .unwrap();
    let share = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("R.r"))
        .expect("the reader's share");
    let long_ago = SystemTime::UNIX_EPOCH + LONG_AGO;
    set_mtime(&share, long_ago);
    assert!(until(|| mtime(&share) > long_ago), "the share touched");
    assert!(!guard.is_lost());
    guard.release().unwrap();
    assert!(!share.exists() && !path.exists());
}
