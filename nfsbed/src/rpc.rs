//! The connection to the server, as a hard mount keeps it: a call that gets
//! no answer (server gone, connection reset, no reply in time) is sent
//! again on a fresh connection until it is answered. Every call that
//! reaches the wire is counted.
//!
//! Faults are played here too, on the calls that change a directory
//! (LINK, CREATE, MKDIR, REMOVE, RMDIR, RENAME): a *lost reply* sends the
//! call, drops its answer and sends it again, so the caller sees the second
//! answer (the server did it the first time; a new transaction id misses the
//! duplicate-request cache, so the answer is `EEXIST` or `ENOENT`); *eio*
//! sends the call and answers `EIO`, as a soft mount that timed out after the
//! server did the work.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use nfs3_client::nfs3_types::nfs3::nfs_fh3;
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder};
use tokio::net::TcpStream;

/// How long one call may go unanswered before it is sent again.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two attempts to reach a server that is not there.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// The calls a fault can be played on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Link,
    Create,
    Mkdir,
    Remove,
    Rmdir,
    Rename,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Link,
        Op::Create,
        Op::Mkdir,
        Op::Remove,
        Op::Rmdir,
        Op::Rename,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Link => "link",
            Op::Create => "create",
            Op::Mkdir => "mkdir",
            Op::Remove => "remove",
            Op::Rmdir => "rmdir",
            Op::Rename => "rename",
        }
    }
}

/// What happens to one changing call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Sent twice; the caller sees the second answer.
    Lost,
    /// Sent once; the caller sees `EIO`.
    Eio,
}

/// The fault settings, changed while the client runs (see `control`), and
/// the counts, read by the tests (see `stats`).
#[derive(Default)]
pub struct Knobs {
    /// Fraction of changing calls whose reply is lost, in millionths.
    pub lost_ppm: AtomicU64,
    /// Fraction of changing calls answered `EIO`, in millionths.
    pub eio_ppm: AtomicU64,
    /// Seconds the server's clock is shown ahead of its real time.
    pub skew_s: AtomicI64,
    /// The kinds of call faults are played on, one bit each (`Op::ALL`'s
    /// order); 0 means every kind.
    pub ops: AtomicU64,
    /// Per kind of call (`Op::ALL`'s order): the fraction of its calls
    /// faulted, in millionths, where set (`link=0.08`); it replaces
    /// `lost` and `eio` for that kind.
    pub per_op_ppm: [AtomicU64; 6],
    /// Which kinds have a rate of their own, one bit each.
    pub per_op: AtomicU64,
    /// Rates of their own are played as `EIO` (`mode=eio`), else as lost
    /// replies.
    pub per_op_eio: std::sync::atomic::AtomicBool,
    /// Every call sent to the NFS server.
    pub calls: AtomicU64,
    /// The calls sent, by procedure (`lookup`, `getattr`, ...).
    pub procedures: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Reconnections after a call went unanswered.
    pub reconnects: AtomicU64,
    pub lost: [AtomicU64; 6],
    pub eio: [AtomicU64; 6],
}

impl Knobs {
    /// The fault to play on one call of kind `op`.
    pub fn draw(&self, op: Op) -> Fault {
        let i = Op::ALL.iter().position(|o| *o == op).unwrap_or(0);
        if self.per_op.load(Ordering::Relaxed) & (1 << i) != 0 {
            let rate = self.per_op_ppm[i].load(Ordering::Relaxed) as f64 / 1e6;
            if rand::random::<f64>() >= rate {
                return Fault::None;
            }
            return match self.per_op_eio.load(Ordering::Relaxed) {
                true => {
                    self.eio[i].fetch_add(1, Ordering::Relaxed);
                    Fault::Eio
                }
                false => {
                    self.lost[i].fetch_add(1, Ordering::Relaxed);
                    Fault::Lost
                }
            };
        }
        let ops = self.ops.load(Ordering::Relaxed);
        if ops != 0 && ops & (1 << i) == 0 {
            return Fault::None;
        }
        let p = |ppm: &AtomicU64| ppm.load(Ordering::Relaxed) as f64 / 1e6;
        let roll: f64 = rand::random();
        let (lost, eio) = (p(&self.lost_ppm), p(&self.eio_ppm));
        if roll < lost {
            self.lost[i].fetch_add(1, Ordering::Relaxed);
            Fault::Lost
        } else if roll < lost + eio {
            self.eio[i].fetch_add(1, Ordering::Relaxed);
            Fault::Eio
        } else {
            Fault::None
        }
    }

    pub fn skew(&self) -> i64 {
        self.skew_s.load(Ordering::Relaxed)
    }

    /// Count one call of `procedure`.
    pub fn count(&self, procedure: &'static str) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut counts) = self.procedures.lock() {
            *counts.entry(procedure).or_default() += 1;
        }
    }

    /// One line of `key=value` counts: `proc_NAME=N` per procedure.
    pub fn report(&self) -> String {
        let mut out = format!(
            "calls={} reconnects={}",
            self.calls.load(Ordering::Relaxed),
            self.reconnects.load(Ordering::Relaxed)
        );
        let (mut lost, mut eio) = (0, 0);
        for (i, op) in Op::ALL.iter().enumerate() {
            let l = self.lost[i].load(Ordering::Relaxed);
            let e = self.eio[i].load(Ordering::Relaxed);
            lost += l;
            eio += e;
            out += &format!(" lost_{}={l} eio_{}={e}", op.name(), op.name());
        }
        if let Ok(counts) = self.procedures.lock() {
            for (name, n) in counts.iter() {
                out += &format!(" proc_{name}={n}");
            }
        }
        out + &format!(" lost={lost} eio={eio}\n")
    }
}

pub type Conn = Nfs3Connection<TokioIo<TcpStream>>;

/// Where the export is and how to reach it.
pub struct Server {
    pub host: String,
    pub portmapper: u16,
    pub export: String,
    pub rt: tokio::runtime::Runtime,
    pub conn: Option<Conn>,
    pub root: Option<nfs_fh3>,
    pub knobs: Arc<Knobs>,
}

impl Server {
    /// The connection, made (again) until the server answers.
    pub fn connection(&mut self) -> &mut Conn {
        while self.conn.is_none() {
            let credential = opaque_auth::auth_unix(&auth_unix {
                stamp: std::process::id(),
                machinename: Opaque::owned(b"nfsbed".to_vec()),
                uid: 0,
                gid: 0,
                gids: vec![],
            });
            let builder =
                Nfs3ConnectionBuilder::new(TokioConnector, self.host.clone(), self.export.clone())
                    .portmapper_port(self.portmapper)
                    .credential(credential);
            let made = self
                .rt
                .block_on(async { tokio::time::timeout(CALL_TIMEOUT, builder.mount()).await });
            match made {
                Ok(Ok(conn)) => {
                    let root = conn.root_nfs_fh3();
                    if let Some(old) = &self.root
                        && old.data.as_ref() != root.data.as_ref()
                    {
                        eprintln!("nfsbed: the export's root handle changed");
                    }
                    self.root = Some(root);
                    self.conn = Some(conn);
                }
                Ok(Err(e)) => {
                    eprintln!("nfsbed: cannot mount {}: {e}", self.export);
                    std::thread::sleep(RECONNECT_PAUSE);
                }
                Err(_) => {
                    eprintln!("nfsbed: mount of {} timed out", self.export);
                    std::thread::sleep(RECONNECT_PAUSE);
                }
            }
        }
        self.conn.as_mut().expect("connected above")
    }

    pub fn root(&mut self) -> nfs_fh3 {
        self.connection();
        self.root.clone().expect("set on connect")
    }

    /// The connection failed under a call: drop it, so the next call makes a
    /// new one and the call is sent again.
    pub fn lost_connection(&mut self, why: &str) {
        eprintln!("nfsbed: no answer ({why}); reconnecting");
        self.knobs.reconnects.fetch_add(1, Ordering::Relaxed);
        self.conn = None;
        std::thread::sleep(RECONNECT_PAUSE);
    }
}

/// Send one call until it is answered: `call!(server, method, args)`.
#[macro_export]
macro_rules! call {
    ($server:expr, $method:ident, $args:expr) => {{
        let args = $args;
        loop {
            let server: &mut $crate::rpc::Server = $server;
            server.knobs.count(stringify!($method));
            server.connection();
            // Only the runtime's own block_on drives a current-thread
            // runtime's sockets and timers.
            let (rt, conn) = (&server.rt, server.conn.as_mut().expect("connected"));
            let answer = rt.block_on(async {
                tokio::time::timeout($crate::rpc::CALL_TIMEOUT, conn.$method(args)).await
            });
            match answer {
                Ok(Ok(res)) => break res,
                Ok(Err(e)) => server.lost_connection(&e.to_string()),
                Err(_) => server.lost_connection("timed out"),
            }
        }
    }};
}

/// A changing call with its fault played: `changing!(server, op, method,
/// args)` gives `Ok(answer)`, or `Err(EIO)` in eio mode.
#[macro_export]
macro_rules! changing {
    ($server:expr, $op:expr, $method:ident, $args:expr) => {{
        let server: &mut $crate::rpc::Server = $server;
        let args = $args;
        match server.knobs.draw($op) {
            $crate::rpc::Fault::None => Ok($crate::call!(server, $method, args)),
            $crate::rpc::Fault::Lost => {
                let _first = $crate::call!(server, $method, args);
                Ok($crate::call!(server, $method, args))
            }
            $crate::rpc::Fault::Eio => {
                let _done = $crate::call!(server, $method, args);
                Err(fuser::Errno::EIO)
            }
        }
    }};
}
