//! Temporary files of killed processes are reclaimed by the next waiter
//! that finds the lock busy, and by the breaker of a stale lock; a live
//! process's, another host's fresh one, and anything that is not a regular
//! `.lk*` file are kept.

use std::fs;
use std::os::unix::fs::symlink;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Scratch, age, paused_at};

/// The `.lk*` temporary file a paused attempt made.
fn temp_of(s: &Scratch, pid: u32) -> String {
    let prefix = format!(".lk{pid:05}");
    s.listing()
        .into_iter()
        .find(|n| n.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no temporary file of {pid}: {:?}", s.listing()))
}

/// Debris of every kind beside `L`; returns the names that must go and
/// the names that must stay, and the paused live process.
fn plant(s: &Scratch) -> (Vec<String>, Vec<String>, std::process::Child) {
    // A dotlock killed with SIGKILL in the middle of its attempt.
    let mut cmd = s.dotlock();
    cmd.arg("K");
    let (mut killed, _) = paused_at(s, cmd, "IN_ATTEMPT", "gate-dead");
    let dead = temp_of(s, killed.id());
    kill(Pid::from_raw(killed.id() as i32), Signal::SIGKILL).unwrap();
    killed.wait().unwrap();
    // A live one, paused there (another lock, so that it does not wait).
    let mut live_cmd = s.dotlock();
    live_cmd.arg("M");
    let (live, _) = paused_at(s, live_cmd, "IN_ATTEMPT", "gate-live");
    let alive = temp_of(s, live.id());
    // Another host's, fresh; liblockfile's, fresh and old; things that
    // are not regular files; other names.
    let record = |h: &str| format!("4242\nhost={h}\nboot_id=x\npidns=1\n");
    fs::write(s.path(".lk04242deadbeef.elsewhere"), record("elsewhere")).unwrap();
    fs::write(s.path(".lk042427somehost"), "4242\n").unwrap();
    fs::write(s.path(".lk042423oldhost"), "4242\n").unwrap();
    age(&s.path(".lk042423oldhost"), 400);
    fs::write(s.path(".lk04243deadbeef.aged"), record("aged")).unwrap();
    age(&s.path(".lk04243deadbeef.aged"), 400);
    symlink(s.path(".lk042423oldhost"), s.path(".lk04244deadbeef.link")).unwrap();
    fs::create_dir(s.path(".lk04245deadbeef.dir")).unwrap();
    fs::write(s.path("lk04246deadbeef.x"), "").unwrap();
    age(&s.path("lk04246deadbeef.x"), 400);

    let gone = vec![
        dead,
        ".lk042423oldhost".to_string(),
        ".lk04243deadbeef.aged".to_string(),
    ];
    let kept = [
        alive.as_str(),
        ".lk04242deadbeef.elsewhere",
        ".lk042427somehost",
        ".lk04244deadbeef.link",
        ".lk04245deadbeef.dir/",
        "lk04246deadbeef.x",
    ]
    .map(String::from)
    .to_vec();
    (gone, kept, live)
}

fn check(s: &Scratch, gone: &[String], kept: &[String], live: std::process::Child) {
    let left = s.listing();
    for name in gone {
        assert!(!left.contains(name), "{name} is still there: {left:?}");
    }
    for name in kept {
        assert!(left.contains(name), "{name} was removed: {left:?}");
    }
    let mut live = live;
    kill(Pid::from_raw(live.id() as i32), Signal::SIGKILL).unwrap();
    live.wait().unwrap();
}

#[test]
fn a_waiter_that_finds_the_lock_busy_after_a_sleep_sweeps_the_debris_and_nothing_else() {
    let s = Scratch::new();
    let (holder, _) = crate::util::holding(&s, s.dotlock(), "L");
    let (gone, kept, live) = plant(&s);
    // An uncontended take elsewhere reads no directory and removes nothing.
    s.expect(s.dotlock().args(["-r", "0", "F", "true"]), 0);
    assert!(gone.iter().all(|n| s.listing().contains(n)));
    // One busy attempt only: no sweep before the wait has slept.
    s.expect(s.dotlock().args(["-r", "0", "L", "true"]), 4);
    assert!(gone.iter().all(|n| s.listing().contains(n)));
    s.expect(s.dotlock().args(["-r", "1", "-i", "0", "L", "true"]), 4);
    check(&s, &gone, &kept, live);
    drop(holder);
}

#[test]
fn the_breaker_of_a_stale_lock_sweeps_the_debris_and_nothing_else() {
    let s = Scratch::new();
    let (gone, kept, live) = plant(&s);
    // A lock whose holder on this host is proven dead.
    let dead = lockutils::Record::for_holder(Some(2_147_483_646), None).to_bytes();
    fs::write(s.path("L"), dead).unwrap();
    s.expect(s.dotlock().args(["-r", "0", "L", "true"]), 0);
    check(&s, &gone, &kept, live);
}
