//! `nfsbed-client`: one NFS client of the bed's export, playing one
//! machine. It mounts the export through FUSE at MOUNT and serves it until
//! MOUNT is unmounted (`umount MOUNT`).
//!
//! The server listens only inside a network namespace; `--netns` names it,
//! and this process enters it for its sockets before making any (the FUSE
//! mount stays in the caller's mount namespace).
//!
//! Faults and clock skew are switched while it runs through `--control
//! FILE`, read every 100 ms: words `lost=FRACTION`, `eio=FRACTION`,
//! `skew=SECONDS`, `ops=link,create,mkdir,remove,rmdir,rename` (the kinds
//! of call faults are played on; default all); or a rate per kind of call,
//! `link=FRACTION` ... `rename=FRACTION`, played as lost replies, or as
//! `EIO` with `mode=eio` (a missing file means no faults). Counts are written to
//! `--stats FILE` every 100 ms (one line of `key=value`).

mod attr;
mod fs;
mod rpc;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "One NFSv3 client of the lockutils test bed, through FUSE"
)]
struct Args {
    /// Where to mount the export.
    mount: PathBuf,
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1")]
    server: String,
    /// The server's portmapper port.
    #[arg(long, default_value_t = 111)]
    portmapper: u16,
    /// The export's path on the server (its `Path`: NFSv3 mounts by it).
    #[arg(long, default_value = "/export")]
    export: String,
    /// Seconds attributes and names are cached.
    #[arg(long, default_value_t = 3.0)]
    actimeo: f64,
    /// The network namespace the server listens in (/run/netns/NAME).
    #[arg(long)]
    netns: Option<PathBuf>,
    /// Fault settings, re-read while running.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Where the counts are written.
    #[arg(long)]
    stats: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("nfsbed-client: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(ns) = &args.netns {
        let fd = std::fs::File::open(ns)?;
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)?;
    }
    let knobs = Arc::new(rpc::Knobs::default());
    watch(knobs.clone(), args.control.clone(), args.stats.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = rpc::Server {
        host: args.server,
        portmapper: args.portmapper,
        export: args.export,
        rt,
        conn: None,
        root: None,
        knobs,
    };
    let client = fs::Client::new(server, Duration::from_secs_f64(args.actimeo));
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("nfsbed".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = fuser::SessionACL::All;
    fuser::mount(client, &args.mount, &config)?;
    Ok(())
}

/// Reads the control file and writes the counts, every 100 ms.
fn watch(knobs: Arc<rpc::Knobs>, control: Option<PathBuf>, stats: Option<PathBuf>) {
    std::thread::spawn(move || {
        loop {
            if let Some(path) = &control {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                apply(&knobs, &text);
            }
            if let Some(path) = &stats {
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, knobs.report()).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

fn apply(knobs: &rpc::Knobs, text: &str) {
    let (mut lost, mut eio, mut skew, mut ops) = (0.0, 0.0, 0, 0);
    let (mut per_op, mut per_op_eio) = (0u64, false);
    let ppm = |f: f64| (f.clamp(0.0, 1.0) * 1e6) as u64;
    for word in text.split_whitespace() {
        let kind = word
            .split_once('=')
            .and_then(|(k, v)| Some((rpc::Op::ALL.iter().position(|o| o.name() == k)?, v)));
        if let Some((i, v)) = kind {
            per_op |= 1 << i;
            knobs.per_op_ppm[i].store(ppm(v.parse().unwrap_or(0.0)), Ordering::Relaxed);
            continue;
        }
        match word.split_once('=') {
            Some(("mode", v)) => per_op_eio = v == "eio",
            Some(("lost", v)) => lost = v.parse().unwrap_or(0.0),
            Some(("eio", v)) => eio = v.parse().unwrap_or(0.0),
            Some(("skew", v)) => skew = v.parse().unwrap_or(0),
            Some(("ops", v)) => {
                for name in v.split(',') {
                    if let Some(i) = rpc::Op::ALL.iter().position(|o| o.name() == name) {
                        ops |= 1 << i;
                    }
                }
            }
            _ => {}
        }
    }
    knobs.per_op.store(per_op, Ordering::Relaxed);
    knobs.per_op_eio.store(per_op_eio, Ordering::Relaxed);
    knobs.lost_ppm.store(ppm(lost), Ordering::Relaxed);
    knobs.eio_ppm.store(ppm(eio), Ordering::Relaxed);
    knobs.skew_s.store(skew, Ordering::Relaxed);
    knobs.ops.store(ops, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_words_set_the_knobs_and_a_missing_word_clears_it() {
        let knobs = rpc::Knobs::default();
        apply(&knobs, "lost=0.25 ops=link,mkdir skew=-3600 junk");
        assert_eq!(knobs.lost_ppm.load(Ordering::Relaxed), 250_000);
        assert_eq!(knobs.eio_ppm.load(Ordering::Relaxed), 0);
        assert_eq!(knobs.skew(), -3600);
        assert_eq!(knobs.ops.load(Ordering::Relaxed), 0b101);
        apply(&knobs, "");
        assert_eq!(knobs.lost_ppm.load(Ordering::Relaxed), 0);
        assert_eq!(knobs.skew(), 0);
    }

    #[test]
    fn faults_fall_only_on_the_chosen_kinds_of_call() {
        let knobs = rpc::Knobs::default();
        apply(&knobs, "lost=1 ops=remove");
        assert_eq!(knobs.draw(rpc::Op::Link), rpc::Fault::None);
        assert_eq!(knobs.draw(rpc::Op::Remove), rpc::Fault::Lost);
        apply(&knobs, "eio=1");
        assert_eq!(knobs.draw(rpc::Op::Rename), rpc::Fault::Eio);
        assert!(knobs.report().contains("lost_remove=1 eio_remove=0"));
        assert!(knobs.report().contains(" lost=1 eio=1\n"));
    }

    #[test]
    fn calls_are_counted_by_procedure() {
        let knobs = rpc::Knobs::default();
        knobs.count("lookup");
        knobs.count("getattr");
        knobs.count("lookup");
        let report = knobs.report();
        assert!(report.starts_with("calls=3 "), "{report}");
        assert!(
            report.contains(" proc_getattr=1 proc_lookup=2 "),
            "{report}"
        );
    }

    #[test]
    fn a_rate_per_kind_of_call_replaces_the_common_one() {
        let knobs = rpc::Knobs::default();
        apply(&knobs, "link=1 remove=0 lost=1");
        assert_eq!(knobs.draw(rpc::Op::Link), rpc::Fault::Lost);
        assert_eq!(knobs.draw(rpc::Op::Remove), rpc::Fault::None);
        assert_eq!(
            knobs.draw(rpc::Op::Mkdir),
            rpc::Fault::Lost,
            "the common rate"
        );
        apply(&knobs, "link=1 mode=eio");
        assert_eq!(knobs.draw(rpc::Op::Link), rpc::Fault::Eio);
        assert_eq!(knobs.draw(rpc::Op::Mkdir), rpc::Fault::None);
        apply(&knobs, "");
        assert_eq!(knobs.draw(rpc::Op::Link), rpc::Fault::None);
    }
}
