//! `--shared` across machines on the bed, and a server restarted during a
//! run.

use std::fmt::Write as _;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Bed, bed_ok, exclusion, since};

/// ganesha stopped and started again during a run: nothing overlaps, no
/// worker fails, nothing is left.
pub(super) fn server_restart(bed: &Bed, figures: &mut String) -> Option<String> {
    let dir = bed.dir.clone();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        bed_ok(&dir, &["restart-server", "2"]);
    });
    let (line, held) = exclusion(bed, "dotlock", "none", 100);
    restarter.join().unwrap();
    writeln!(figures, "    server restarted 2 s into the run: {line}").unwrap();
    bed.clean();
    (!held).then_some(line)
}

/// How many faults of `kind` (`lost`, `eio`) the clients have played so far.
fn injected(bed: &Bed, kind: &str) -> u64 {
    ["a", "b"]
        .iter()
        .map(|c| {
            let stats = fs::read_to_string(bed.dir.join(format!("stats-{c}"))).unwrap_or_default();
            stats
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{kind}=")).map(str::to_string))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// `--shared` across machines (`tool`: dotlock or lockdir): 3 processes on each host, a random mix of
/// readers and writers, 100 cycles each: never a writer with anyone else,
/// every process finishes, nothing left on the server.
pub(super) fn shared_mix(bed: &Bed, tool: &str, fault: &str, figures: &mut String) {
    let (workers, cycles) = (6, 100);
    let words = if fault == "none" { "" } else { fault };
    for c in ["a", "b"] {
        bed.set_faults(c, words);
    }
    let log = bed.dir.join("shared.log");
    let _ = fs::remove_file(&log);
    let _ = fs::remove_file(bed.dir.join("shared.log.errors"));
    let modes = crate::shared::modes(workers, cycles);
    let lost0 = injected(bed, "lost");
    let t = Instant::now();
    let running: Vec<_> = modes
        .iter()
        .enumerate()
        .map(|(id, m)| {
            let c = if id % 2 == 0 { "a" } else { "b" };
            let mut cmd = match c {
                "b" => {
                    let mut cmd = Command::new(super::root().join("nfsbed/bed.sh"));
                    cmd.args(["on-b", "sh", "-c"]).env("BED_DIR", &bed.dir);
                    cmd
                }
                _ => {
                    let mut cmd = Command::new("sh");
                    cmd.arg("-c");
                    cmd
                }
            };
            cmd.arg(crate::shared::WORKER)
                .arg("worker")
                .arg(id.to_string())
                .env("MODES", m)
                .env("TOOL", bed.bin.join(tool))
                .env("WAIT", "-q -r -1 -i 1 --timeout 200")
                .env("LOG", &log)
                .current_dir(bed.mnt(c))
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in running {
        let status = crate::util::wait_with_timeout(w, Duration::from_secs(900));
        let errors = fs::read_to_string(bed.dir.join("shared.log.errors")).unwrap_or_default();
        assert!(
            status.success(),
            "a shared worker failed: {status:?} {errors}"
        );
    }
    let took = since(t);
    let lost = injected(bed, "lost") - lost0;
    for c in ["a", "b"] {
        bed.set_faults(c, "");
    }
    let text = fs::read_to_string(&log).unwrap();
    crate::shared::check_mix(&text, workers, cycles);
    let writers = modes
        .iter()
        .flat_map(|m| m.chars())
        .filter(|&c| c == 'w')
        .count();
    writeln!(
        figures,
        "    {tool} --shared, faults {fault}: {workers} processes (3 per host) x {cycles} cycles, \
         {writers} as writers, {lost} replies lost: no writer with anyone else, all done in \
         {took:.0} s"
    )
    .unwrap();
    assert_eq!(
        bed.left(),
        Vec::<String>::new(),
        "nothing left on the server"
    );
}
