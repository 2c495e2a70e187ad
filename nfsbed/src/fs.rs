//! The export, through FUSE, with the Linux NFS client's caching where
//! locking cares about it.
//!
//! - **Attribute cache.** Attributes are kept for `actimeo`; a `stat(2)`
//!   inside that time is answered from the cache, so it does not see what
//!   another client did meanwhile.
//! - **Name cache.** A name found by LOOKUP is kept for `actimeo`; using it
//!   after another client removed or replaced the file gives `ESTALE` (the
//!   server no longer knows the handle), and the name is dropped. Names not
//!   found are not cached (the Linux client may cache them too; this client
//!   is the stricter case for a locker that must see a lock appear).
//! - **Close-to-open.** `open(2)` fetches the attributes from the server.
//! - **O_EXCL** is an EXCLUSIVE CREATE with a verifier, and the mode and
//!   times are set afterwards (the server keeps the verifier in them).
//! - **LINK** applies the post-op attributes the server sends (the link
//!   count a locker checks).
//!
//! The kernel is told to cache nothing (TTL 0, direct I/O), so every
//! look reaches this client and these rules are the ones that apply.
//! Node numbers are this client's own, one per file handle and never
//! reused: the server reuses inode numbers with a new generation.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use nfs3_client::nfs3_types::nfs3::{self, fattr3, nfs_fh3, post_op_attr, post_op_fh3};
use nfs3_client::nfs3_types::xdr_codec::Opaque;

use crate::attr::{self, errno};
use crate::rpc::{Op, Server};
use crate::{call, changing};

const NO_TTL: Duration = Duration::ZERO;

struct Node {
    fh: nfs_fh3,
    attr: Option<(fattr3, Instant)>,
}

struct Inner {
    server: Server,
    actimeo: Duration,
    nodes: HashMap<u64, Node>,
    by_fh: HashMap<Vec<u8>, u64>,
    names: HashMap<(u64, Vec<u8>), (u64, Instant)>,
    next: u64,
}

pub struct Client {
    inner: Mutex<Inner>,
}

type Res<T> = Result<T, Errno>;

impl Client {
    pub fn new(mut server: Server, actimeo: Duration) -> Client {
        let root = server.root();
        let mut inner = Inner {
            server,
            actimeo,
            nodes: HashMap::new(),
            by_fh: HashMap::new(),
            names: HashMap::new(),
            next: 2,
        };
        inner.by_fh.insert(root.data.to_vec(), 1);
        inner.nodes.insert(
            1,
            Node {
                fh: root,
                attr: None,
            },
        );
        Client {
            inner: Mutex::new(inner),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> Res<T>) -> Res<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner)
    }

    /// Close-to-open: an open asks the server for the attributes, past
    /// the cache, and fails as the server answers.
    fn close_to_open(&self, ino: INodeNo, flags: FopenFlags, reply: ReplyOpen) {
        match self.with(|c| c.attrs(ino.0, true)) {
            Ok(_) => reply.opened(FileHandle(0), flags),
            Err(e) => reply.error(e),
        }
    }
}

fn name_of(name: &OsStr) -> nfs3::filename3<'static> {
    nfs3::filename3(Opaque::owned(name.as_bytes().to_vec()))
}

impl Inner {
    fn fh(&self, ino: u64) -> Res<nfs_fh3> {
        self.nodes
            .get(&ino)
            .map(|n| n.fh.clone())
            .ok_or(Errno::ESTALE)
    }

    fn ino_for(&mut self, fh: &nfs_fh3) -> u64 {
        if let Some(ino) = self.by_fh.get(fh.data.as_ref()) {
            return *ino;
        }
        let ino = self.next;
        self.next += 1;
        self.by_fh.insert(fh.data.to_vec(), ino);
        self.nodes.insert(
            ino,
            Node {
                fh: fh.clone(),
                attr: None,
            },
        );
        ino
    }

    fn keep(&mut self, ino: u64, a: &post_op_attr) {
        if let nfs3::Nfs3Option::Some(a) = a {
            self.keep_attr(ino, a.clone());
        }
    }

    fn keep_attr(&mut self, ino: u64, a: fattr3) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.attr = Some((a, Instant::now()));
        }
    }

    fn forget_attr(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.attr = None;
        }
    }

    fn skew(&self) -> i64 {
        self.server.knobs.skew()
    }

    fn shown(&self, ino: u64, a: &fattr3) -> FileAttr {
        attr::file_attr(ino, a, self.skew())
    }

    /// The server no longer knows `ino`'s handle: forget every name that
    /// leads to it.
    fn stale(&mut self, ino: u64) -> Errno {
        self.names.retain(|_, (i, _)| *i != ino);
        self.forget_attr(ino);
        Errno::ESTALE
    }

    /// `ino`'s attributes: from the cache while younger than `actimeo`,
    /// unless `fresh` (close-to-open) asks the server.
    fn attrs(&mut self, ino: u64, fresh: bool) -> Res<fattr3> {
        let node = self.nodes.get(&ino).ok_or(Errno::ESTALE)?;
        if let (false, Some((a, at))) = (fresh, &node.attr)
            && at.elapsed() < self.actimeo
        {
            return Ok(a.clone());
        }
        let object = node.fh.clone();
        match call!(&mut self.server, getattr, &nfs3::GETATTR3args { object }) {
            nfs3::Nfs3Result::Ok(ok) => {
                if ok.obj_attributes.nlink == 0 {
                    // Removed, and still served while open on the server:
                    // no name leads here any more.
                    self.names.retain(|_, (i, _)| *i != ino);
                }
                self.keep_attr(ino, ok.obj_attributes.clone());
                Ok(ok.obj_attributes)
            }
            nfs3::Nfs3Result::Err((s, _)) if errno(s) == Errno::ESTALE => Err(self.stale(ino)),
            // nfs-ganesha 4.3 answers NFS3ERR_IO ("Not enough memory in
            // nfs3_FhandleToCache", in its log) for some handles of removed
            // files: the caller sees EIO, and no cached name keeps leading
            // to that handle.
            nfs3::Nfs3Result::Err((nfs3::nfsstat3::NFS3ERR_IO, _)) => {
                self.stale(ino);
                Err(Errno::EIO)
            }
            nfs3::Nfs3Result::Err((s, _)) => Err(errno(s)),
        }
    }

    fn lookup(&mut self, parent: u64, name: &OsStr) -> Res<(u64, fattr3)> {
        let key = (parent, name.as_bytes().to_vec());
        if let Some((ino, at)) = self.names.get(&key).copied() {
            if at.elapsed() < self.actimeo {
                // The name cache answers; the handle may be stale by now.
                return self.attrs(ino, false).map(|a| (ino, a));
            }
            self.names.remove(&key);
        }
        let dir = self.fh(parent)?;
        let what = nfs3::diropargs3 {
            dir,
            name: name_of(name),
        };
        match call!(&mut self.server, lookup, &nfs3::LOOKUP3args { what }) {
            nfs3::Nfs3Result::Ok(ok) => {
                let ino = self.ino_for(&ok.object);
                self.keep(parent, &ok.dir_attributes);
                self.names.insert(key, (ino, Instant::now()));
                match ok.obj_attributes {
                    nfs3::Nfs3Option::Some(a) => {
                        self.keep_attr(ino, a.clone());
                        Ok((ino, a))
                    }
                    nfs3::Nfs3Option::None => self.attrs(ino, true).map(|a| (ino, a)),
                }
            }
            nfs3::Nfs3Result::Err((s, _)) if errno(s) == Errno::ESTALE => Err(self.stale(parent)),
            nfs3::Nfs3Result::Err((s, _)) => Err(errno(s)),
        }
    }

    /// A new object's node and attributes, from a CREATE/MKDIR answer.
    fn made(
        &mut self,
        parent: u64,
        name: &OsStr,
        fh: post_op_fh3,
        a: post_op_attr,
    ) -> Res<(u64, fattr3)> {
        self.names.remove(&(parent, name.as_bytes().to_vec()));
        let nfs3::Nfs3Option::Some(fh) = fh else {
            return self.lookup(parent, name);
        };
        let ino = self.ino_for(&fh);
        self.names
            .insert((parent, name.as_bytes().to_vec()), (ino, Instant::now()));
        match a {
            nfs3::Nfs3Option::Some(a) => {
                self.keep_attr(ino, a.clone());
                Ok((ino, a))
            }
            nfs3::Nfs3Option::None => self.attrs(ino, true).map(|a| (ino, a)),
        }
    }

    fn setattr(&mut self, ino: u64, new_attributes: nfs3::sattr3) -> Res<fattr3> {
        let object = self.fh(ino)?;
        let args = nfs3::SETATTR3args {
            object,
            new_attributes,
            guard: nfs3::Nfs3Option::None,
        };
        match call!(&mut self.server, setattr, &args) {
            nfs3::Nfs3Result::Ok(ok) => match ok.obj_wcc.after {
                nfs3::Nfs3Option::Some(a) => {
                    self.keep_attr(ino, a.clone());
                    Ok(a)
                }
                nfs3::Nfs3Option::None => self.attrs(ino, true),
            },
            nfs3::Nfs3Result::Err((s, _)) if errno(s) == Errno::ESTALE => Err(self.stale(ino)),
            nfs3::Nfs3Result::Err((s, _)) => Err(errno(s)),
        }
    }

    /// A time to set, in the server's terms (`UTIME_NOW` is the server's).
    fn time(&self, t: Option<TimeOrNow>) -> nfs3::set_mtime {
        match t {
            None => nfs3::set_mtime::DONT_CHANGE,
            Some(TimeOrNow::Now) => nfs3::set_mtime::SET_TO_SERVER_TIME,
            Some(TimeOrNow::SpecificTime(t)) => {
                nfs3::set_mtime::SET_TO_CLIENT_TIME(attr::sent(t, self.skew()))
            }
        }
    }

    fn create(&mut self, parent: u64, name: &OsStr, mode: u32, flags: i32) -> Res<(u64, fattr3)> {
        let dir = self.fh(parent)?;
        let exclusive = flags & libc_o_excl() != 0;
        let how = if exclusive {
            nfs3::createhow3::EXCLUSIVE(nfs3::createverf3(rand::random()))
        } else {
            nfs3::createhow3::UNCHECKED(nfs3::sattr3 {
                mode: nfs3::Nfs3Option::Some(mode & 0o7777),
                ..Default::default()
            })
        };
        let args = nfs3::CREATE3args {
            where_: nfs3::diropargs3 {
                dir,
                name: name_of(name),
            },
            how,
        };
        let res = changing!(&mut self.server, Op::Create, create, &args)?;
        let (ino, a) = match res {
            nfs3::Nfs3Result::Ok(ok) => {
                self.keep(parent, &ok.dir_wcc.after);
                self.made(parent, name, ok.obj, ok.obj_attributes)?
            }
            nfs3::Nfs3Result::Err((s, _)) => return Err(errno(s)),
        };
        if !exclusive {
            return Ok((ino, a));
        }
        // The verifier was kept in the times: set them, and the mode.
        let a = self.setattr(
            ino,
            nfs3::sattr3 {
                mode: nfs3::Nfs3Option::Some(mode & 0o7777),
                atime: nfs3::set_atime::SET_TO_SERVER_TIME,
                mtime: nfs3::set_mtime::SET_TO_SERVER_TIME,
                ..Default::default()
            },
        )?;
        Ok((ino, a))
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Res<()> {
        let object = nfs3::diropargs3 {
            dir: self.fh(parent)?,
            name: name_of(name),
        };
        if let Some((ino, _)) = self.names.remove(&(parent, name.as_bytes().to_vec())) {
            self.forget_attr(ino);
        }
        self.forget_attr(parent);
        let status = if dir {
            let args = nfs3::RMDIR3args { object };
            match changing!(&mut self.server, Op::Rmdir, rmdir, &args)? {
                nfs3::Nfs3Result::Ok(_) => None,
                nfs3::Nfs3Result::Err((s, _)) => Some(s),
            }
        } else {
            let args = nfs3::REMOVE3args { object };
            match changing!(&mut self.server, Op::Remove, remove, &args)? {
                nfs3::Nfs3Result::Ok(_) => None,
                nfs3::Nfs3Result::Err((s, _)) => Some(s),
            }
        };
        status.map_or(Ok(()), |s| Err(errno(s)))
    }

    fn link(&mut self, ino: u64, parent: u64, name: &OsStr) -> Res<fattr3> {
        let args = nfs3::LINK3args {
            file: self.fh(ino)?,
            link: nfs3::diropargs3 {
                dir: self.fh(parent)?,
                name: name_of(name),
            },
        };
        self.forget_attr(parent);
        match changing!(&mut self.server, Op::Link, link, &args)? {
            nfs3::Nfs3Result::Ok(ok) => {
                self.names
                    .insert((parent, name.as_bytes().to_vec()), (ino, Instant::now()));
                self.keep(ino, &ok.file_attributes);
                self.attrs(ino, false)
            }
            nfs3::Nfs3Result::Err((s, fail)) => {
                // The post-op attributes come with a failure too.
                self.keep(ino, &fail.file_attributes);
                if errno(s) == Errno::ESTALE {
                    return Err(self.stale(ino));
                }
                Err(errno(s))
            }
        }
    }

    fn rename(&mut self, from: (u64, &OsStr), to: (u64, &OsStr)) -> Res<()> {
        let args = nfs3::RENAME3args {
            from: nfs3::diropargs3 {
                dir: self.fh(from.0)?,
                name: name_of(from.1),
            },
            to: nfs3::diropargs3 {
                dir: self.fh(to.0)?,
                name: name_of(to.1),
            },
        };
        for (dir, name) in [from, to] {
            if let Some((ino, _)) = self.names.remove(&(dir, name.as_bytes().to_vec())) {
                self.forget_attr(ino);
            }
            self.forget_attr(dir);
        }
        match changing!(&mut self.server, Op::Rename, rename, &args)? {
            nfs3::Nfs3Result::Ok(_) => Ok(()),
            nfs3::Nfs3Result::Err((s, _)) => Err(errno(s)),
        }
    }

    fn read(&mut self, ino: u64, offset: u64, count: u32) -> Res<Vec<u8>> {
        let file = self.fh(ino)?;
        let args = nfs3::READ3args {
            file,
            offset,
            count,
        };
        match call!(&mut self.server, read, &args) {
            nfs3::Nfs3Result::Ok(ok) => {
                self.keep(ino, &ok.file_attributes);
                Ok(ok.data.to_vec())
            }
            nfs3::Nfs3Result::Err((s, _)) if errno(s) == Errno::ESTALE => Err(self.stale(ino)),
            nfs3::Nfs3Result::Err((s, _)) => Err(errno(s)),
        }
    }

    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Res<u32> {
        let file = self.fh(ino)?;
        let args = nfs3::WRITE3args {
            file,
            offset,
            count: data.len() as u32,
            stable: nfs3::stable_how::FILE_SYNC,
            data: Opaque::borrowed(data),
        };
        match call!(&mut self.server, write, &args) {
            nfs3::Nfs3Result::Ok(ok) => {
                self.keep(ino, &ok.file_wcc.after);
                Ok(ok.count)
            }
            nfs3::Nfs3Result::Err((s, _)) if errno(s) == Errno::ESTALE => Err(self.stale(ino)),
            nfs3::Nfs3Result::Err((s, _)) => Err(errno(s)),
        }
    }

    /// Every entry of directory `ino`, with node numbers and kinds.
    fn list(&mut self, ino: u64) -> Res<Vec<(u64, FileType, Vec<u8>)>> {
        let dir = self.fh(ino)?;
        let mut out = Vec::new();
        let (mut cookie, mut cookieverf) = (0, nfs3::cookieverf3::default());
        loop {
            let args = nfs3::READDIRPLUS3args {
                dir: dir.clone(),
                cookie,
                cookieverf,
                dircount: 8192,
                maxcount: 65536,
            };
            let ok = match call!(&mut self.server, readdirplus, &args) {
                nfs3::Nfs3Result::Ok(ok) => ok,
                nfs3::Nfs3Result::Err((s, _)) if errno(s) == Errno::ESTALE => {
                    return Err(self.stale(ino));
                }
                nfs3::Nfs3Result::Err((s, _)) => return Err(errno(s)),
            };
            cookieverf = ok.cookieverf;
            for e in ok.reply.entries.0 {
                cookie = e.cookie;
                let name = e.name.0.to_vec();
                if name == b"." || name == b".." {
                    continue;
                }
                let (child, kind) = match (e.name_handle, e.name_attributes) {
                    (nfs3::Nfs3Option::Some(fh), nfs3::Nfs3Option::Some(a)) => {
                        let child = self.ino_for(&fh);
                        (child, attr::kind(a.type_))
                    }
                    _ => match self.lookup(ino, OsStr::from_bytes(&name)) {
                        Ok((child, a)) => (child, attr::kind(a.type_)),
                        Err(_) => continue,
                    },
                };
                out.push((child, kind, name));
            }
            if ok.reply.eof {
                return Ok(out);
            }
        }
    }
}

/// With `NFSBED_TRACE` set, one line per unlink and rename: who asked,
/// which name, what it answered.
fn trace<T>(req: &Request, op: &str, name: &OsStr, r: &Res<T>) {
    if std::env::var_os("NFSBED_TRACE").is_some() {
        let pid = req.pid();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let r = r.as_ref().map(|_| ()).map_err(|e| *e);
        eprintln!("{op} {name:?} by {pid} ({}): {r:?}", cmd.trim());
    }
}

fn libc_o_excl() -> i32 {
    nix::fcntl::OFlag::O_EXCL.bits()
}

fn entry(reply: ReplyEntry, res: Res<(FileAttr, u64)>) {
    match res {
        Ok((a, _)) => reply.entry(&NO_TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, res: Res<()>) {
    match res {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for Client {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let res = self.with(|c| {
            let (ino, a) = c.lookup(parent.0, name)?;
            Ok((c.shown(ino, &a), ino))
        });
        entry(reply, res);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|c| c.attrs(ino.0, false).map(|a| c.shown(ino.0, &a))) {
            Ok(a) => reply.attr(&NO_TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let opt = |v: Option<u32>| v.map_or(nfs3::Nfs3Option::None, nfs3::Nfs3Option::Some);
        let res = self.with(|c| {
            let atime = match c.time(atime) {
                nfs3::set_mtime::DONT_CHANGE => nfs3::set_atime::DONT_CHANGE,
                nfs3::set_mtime::SET_TO_SERVER_TIME => nfs3::set_atime::SET_TO_SERVER_TIME,
                nfs3::set_mtime::SET_TO_CLIENT_TIME(t) => nfs3::set_atime::SET_TO_CLIENT_TIME(t),
            };
            let sattr = nfs3::sattr3 {
                mode: opt(mode.map(|m| m & 0o7777)),
                uid: opt(uid),
                gid: opt(gid),
                size: size.map_or(nfs3::Nfs3Option::None, nfs3::Nfs3Option::Some),
                atime,
                mtime: c.time(mtime),
            };
            c.setattr(ino.0, sattr).map(|a| c.shown(ino.0, &a))
        });
        match res {
            Ok(a) => reply.attr(&NO_TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let res = self.with(|c| {
            let args = nfs3::MKDIR3args {
                where_: nfs3::diropargs3 {
                    dir: c.fh(parent.0)?,
                    name: name_of(name),
                },
                attributes: nfs3::sattr3 {
                    mode: nfs3::Nfs3Option::Some(mode & !umask & 0o7777),
                    ..Default::default()
                },
            };
            c.forget_attr(parent.0);
            match changing!(&mut c.server, Op::Mkdir, mkdir, &args)? {
                nfs3::Nfs3Result::Ok(ok) => {
                    let (ino, a) = c.made(parent.0, name, ok.obj, ok.obj_attributes)?;
                    Ok((c.shown(ino, &a), ino))
                }
                nfs3::Nfs3Result::Err((s, _)) => Err(errno(s)),
            }
        });
        entry(reply, res);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self.with(|c| c.remove(parent.0, name, false));
        trace(req, "unlink", name, &r);
        empty(reply, r);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.with(|c| c.remove(parent.0, name, true)));
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            // NFSv3 has no RENAME_NOREPLACE or RENAME_EXCHANGE.
            return reply.error(Errno::EINVAL);
        }
        let r = self.with(|c| c.rename((parent.0, name), (newparent.0, newname)));
        trace(req, "rename", newname, &r);
        empty(reply, r);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let res = self.with(|c| {
            let a = c.link(ino.0, newparent.0, newname)?;
            Ok((c.shown(ino.0, &a), ino.0))
        });
        entry(reply, res);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.close_to_open(ino, FopenFlags::FOPEN_DIRECT_IO, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Linux revalidates a directory's inode on open as a file's.
        self.close_to_open(ino, FopenFlags::empty(), reply);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|c| c.read(ino.0, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|c| c.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Every WRITE is FILE_SYNC.
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let res = self.with(|c| {
            let (ino, a) = c.create(parent.0, name, mode & !umask, flags)?;
            Ok(c.shown(ino, &a))
        });
        match res {
            Ok(a) => reply.created(
                &NO_TTL,
                &a,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.with(|c| c.list(ino.0)) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let dots = [
            (ino.0, FileType::Directory, b".".to_vec()),
            (ino.0, FileType::Directory, b"..".to_vec()),
        ];
        let all = dots.into_iter().chain(entries);
        for (i, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, OsStr::from_bytes(&name)) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 20, 1 << 19, 1 << 19, 1 << 20, 1 << 19, 4096, 255, 4096);
    }
}
