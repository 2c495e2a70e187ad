//! Temporary files of killed processes are reclaimed by the next taker;
//! a live process's, another host's fresh one, and anything that is not a
//! regular `.lk*` file are kept.

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

#[test]
fn a_dead_process_temporary_file_is_removed_by_the_next_taker_and_nothing_else() {
    let s = Scratch::new();
    // A dotlock killed with SIGKILL in the middle of its attempt.
    let mut cmd = s.dotlock();
    cmd.arg("K");
    let (mut killed, _) = paused_at(&s, cmd, "IN_ATTEMPT", "gate-dead");
    let dead = temp_of(&s, killed.id());
    kill(Pid::from_raw(killed.id() as i32), Signal::SIGKILL).unwrap();
    killed.wait().unwrap();
    // A live one, paused there (another lock, so that it does not wait).
    let mut live_cmd = s.dotlock();
    live_cmd.arg("M");
    let (mut live, _) = paused_at(&s, live_cmd, "IN_ATTEMPT", "gate-live");
    let alive = temp_of(&s, live.id());
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

    s.expect(s.dotlock().args(["-r", "0", "L", "true"]), 0);

    let left = s.listing();
    for gone in [dead.as_str(), ".lk042423oldhost", ".lk04243deadbeef.aged"] {
        assert!(
            !left.iter().any(|n| n == gone),
            "{gone} is still there: {left:?}"
        );
    }
    for kept in [
        alive.as_str(),
        ".lk04242deadbeef.elsewhere",
        ".lk042427somehost",
        ".lk04244deadbeef.link",
        ".lk04245deadbeef.dir/",
        "lk04246deadbeef.x",
    ] {
        assert!(
            left.iter().any(|n| n == kept),
            "{kept} was removed: {left:?}"
        );
    }
    kill(Pid::from_raw(live.id() as i32), Signal::SIGKILL).unwrap();
    live.wait().unwrap();
}
