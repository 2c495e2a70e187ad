//! Fencing tokens on the bed: two processes on each client (two machines),
//! 50 holds each, with lost replies on both clients. Each holder checks,
//! under the lock, that its token is above the last holder's (kept in a
//! file on the server, read with open(2): close-to-open), and logs it on
//! local disk: in the order they held the lock the tokens strictly
//! increase, and none is used twice.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Bed, root, since};

/// A worker's loop: 50 holds of `L` with `--fence`.
const WORKER: &str = r#"i=0
while [ $i -lt 50 ]; do
    "$BIN/dotlock" --fence -r -1 L sh -c '
        last=$(cat last 2>/dev/null || echo 0)
        [ "$DOTLOCK_TOKEN" -gt "$last" ] || echo "$DOTLOCK_TOKEN after $last" >> "$LOGS/bad"
        echo "$DOTLOCK_TOKEN" > last
        echo "$DOTLOCK_TOKEN" >> "$LOGS/$WORKER"
    ' || exit 1
    i=$((i + 1))
done"#;

pub(super) fn fence(bed: &Bed, figures: &mut String) {
    let logs = bed.dir.join("fence-logs");
    let _ = fs::remove_dir_all(&logs);
    fs::create_dir_all(&logs).unwrap();
    for c in ["a", "b"] {
        bed.set_faults(c, "lost=0.05");
    }
    let t = Instant::now();
    let workers: Vec<_> = ["a1", "a2", "b1", "b2"]
        .iter()
        .map(|&w| {
            let mut cmd = match &w[..1] {
                "b" => {
                    let mut cmd = Command::new(root().join("nfsbed/bed.sh"));
                    cmd.args(["on-b", "sh", "-c", WORKER]);
                    cmd
                }
                _ => {
                    let mut cmd = Command::new("sh");
                    cmd.args(["-c", WORKER]).current_dir(bed.mnt("a"));
                    cmd
                }
            };
            cmd.env("BED_DIR", &bed.dir)
                .env("BIN", &bed.bin)
                .env("LOGS", &logs)
                .env("WORKER", w)
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in workers {
        let status = crate::util::wait_with_timeout(w, Duration::from_secs(300));
        assert!(status.success(), "a worker failed");
    }
    for c in ["a", "b"] {
        bed.set_faults(c, "");
    }
    let bad = fs::read_to_string(logs.join("bad")).unwrap_or_default();
    assert!(bad.is_empty(), "tokens out of order:\n{bad}");
    let mut all: Vec<u64> = Vec::new();
    for w in ["a1", "a2", "b1", "b2"] {
        let mine: Vec<u64> = fs::read_to_string(logs.join(w))
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(mine.len(), 50, "{w}");
        assert!(mine.windows(2).all(|p| p[0] < p[1]), "{w}: {mine:?}");
        all.extend(mine);
    }
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "a token used twice");
    writeln!(
        figures,
        "    --fence, 2 clients x 2 processes x 50 holds, 5 % lost replies: {n} tokens, strictly increasing, none twice, {:.1} s",
        since(t)
    )
    .unwrap();
    let _ = fs::remove_dir_all(&logs);
    bed.clean();
    assert_eq!(bed.left(), Vec::<String>::new());
}
