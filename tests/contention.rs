//! Mutual exclusion under real contention: separate processes, each cycle a
//! lock, a deliberately slow read–sleep–write of a shared counter, and an
//! unlock. A lost update or an overlap shows in the count or the marker.

use std::fs;

use crate::util::Scratch;

const WORKERS: usize = 8;
const CYCLES: usize = 200;

/// One worker: lock with dotlock, prove exclusivity with mkdir (fails if
/// another holder is inside), read, sleep, write, unlock.
const WORKER: &str = r#"
i=0
while [ $i -lt "$CYCLES" ]; do
  "$DOTLOCK" -r -1 -i 0.005 L || { echo "lock failed: $?" >> errors; exit 1; }
  mkdir inside 2>/dev/null || echo "overlap in cycle $i of $$" >> errors
  n=$(cat counter)
  sleep 0.001
  echo $((n + 1)) > counter
  rmdir inside
  "$DOTLOCK" -u L || { echo "unlock failed: $?" >> errors; exit 1; }
  i=$((i + 1))
done
"#;

#[test]
fn eight_processes_two_hundred_cycles_exact_count() {
    let s = Scratch::new();
    fs::write(s.path("counter"), "0\n").unwrap();
    let worker = format!(
        "CYCLES={CYCLES}
{WORKER}"
    );
    s.run_workers(WORKERS, &worker);
    assert_eq!(
        fs::read_to_string(s.path("errors")).ok(),
        None,
        "overlaps or failures"
    );
    let count: usize = fs::read_to_string(s.path("counter"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, WORKERS * CYCLES);
    assert_eq!(
        s.listing(),
        ["counter"],
        "lock, temp or break files left behind"
    );
}

#[test]
fn command_mode_under_contention() {
    let s = Scratch::new();
    fs::write(s.path("counter"), "0\n").unwrap();
    let script = r#"i=0; while [ $i -lt 50 ]; do
      "$DOTLOCK" -r -1 -i 0.005 L sh -c 'mkdir inside || echo overlap >> errors; n=$(cat counter); echo $((n + 1)) > counter; rmdir inside' || exit 1
      i=$((i + 1)); done"#;
    s.run_workers(4, script);
    assert_eq!(fs::read_to_string(s.path("errors")).ok(), None);
    assert_eq!(fs::read_to_string(s.path("counter")).unwrap().trim(), "200");
    assert_eq!(s.listing(), ["counter"]);
}
