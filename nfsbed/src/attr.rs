//! NFSv3 answers in the kernel's terms: attributes, times (with the
//! server's clock shown `skew` seconds off) and error numbers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};
use nfs3_client::nfs3_types::nfs3::{fattr3, ftype3, nfsstat3, nfstime3};

/// A server time as this client shows it: moved by `skew` seconds.
pub fn shown(t: nfstime3, skew: i64) -> SystemTime {
    let real = UNIX_EPOCH + Duration::new(u64::from(t.seconds), t.nseconds);
    shift(real, skew)
}

/// A time this client sends, in the server's terms: moved back by `skew`.
pub fn sent(t: SystemTime, skew: i64) -> nfstime3 {
    let real = shift(t, -skew);
    let d = real.duration_since(UNIX_EPOCH).unwrap_or_default();
    nfstime3 {
        seconds: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        nseconds: d.subsec_nanos(),
    }
}

fn shift(t: SystemTime, by: i64) -> SystemTime {
    let d = Duration::from_secs(by.unsigned_abs());
    if by >= 0 { t + d } else { t - d }
}

pub fn kind(t: ftype3) -> FileType {
    match t {
        ftype3::NF3REG => FileType::RegularFile,
        ftype3::NF3DIR => FileType::Directory,
        ftype3::NF3BLK => FileType::BlockDevice,
        ftype3::NF3CHR => FileType::CharDevice,
        ftype3::NF3LNK => FileType::Symlink,
        ftype3::NF3SOCK => FileType::Socket,
        ftype3::NF3FIFO => FileType::NamedPipe,
    }
}

/// The kernel's view of `a`, under this client's node number `ino`.
pub fn file_attr(ino: u64, a: &fattr3, skew: i64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.used.div_ceil(512),
        atime: shown(a.atime, skew),
        mtime: shown(a.mtime, skew),
        ctime: shown(a.ctime, skew),
        crtime: shown(a.ctime, skew),
        kind: kind(a.type_),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: (a.rdev.specdata1 << 8) | a.rdev.specdata2,
        blksize: 4096,
        flags: 0,
    }
}

/// The error number the Linux client gives for an NFSv3 status.
pub fn errno(s: nfsstat3) -> Errno {
    use nfsstat3::*;
    match s {
        NFS3ERR_PERM => Errno::EPERM,
        NFS3ERR_NOENT => Errno::ENOENT,
        NFS3ERR_NXIO => Errno::ENXIO,
        NFS3ERR_ACCES => Errno::EACCES,
        NFS3ERR_EXIST => Errno::EEXIST,
        NFS3ERR_XDEV => Errno::EXDEV,
        NFS3ERR_NODEV => Errno::ENODEV,
        NFS3ERR_NOTDIR => Errno::ENOTDIR,
        NFS3ERR_ISDIR => Errno::EISDIR,
        NFS3ERR_INVAL => Errno::EINVAL,
        NFS3ERR_FBIG => Errno::EFBIG,
        NFS3ERR_NOSPC => Errno::ENOSPC,
        NFS3ERR_ROFS => Errno::EROFS,
        NFS3ERR_MLINK => Errno::EMLINK,
        NFS3ERR_NAMETOOLONG => Errno::ENAMETOOLONG,
        NFS3ERR_NOTEMPTY => Errno::ENOTEMPTY,
        NFS3ERR_DQUOT => Errno::EDQUOT,
        NFS3ERR_STALE | NFS3ERR_BADHANDLE => Errno::ESTALE,
        NFS3ERR_NOTSUPP => Errno::EOPNOTSUPP,
        NFS3ERR_JUKEBOX => Errno::EAGAIN,
        _ => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skewed_time_sent_back_is_the_time_shown() {
        let t = nfstime3 {
            seconds: 1_800_000_000,
            nseconds: 5,
        };
        for skew in [-3600, 0, 3600] {
            let back = sent(shown(t, skew), skew);
            assert_eq!((back.seconds, back.nseconds), (t.seconds, t.nseconds));
        }
        let ahead = shown(t, 3600).duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(ahead.as_secs(), 1_800_003_600);
    }

    #[test]
    fn stale_handles_are_estale() {
        assert_eq!(errno(nfsstat3::NFS3ERR_STALE), Errno::ESTALE);
        assert_eq!(errno(nfsstat3::NFS3ERR_EXIST), Errno::EEXIST);
    }
}
