//! `/proc/self/mountinfo`, read for `--check`: which mount a directory is
//! on (by its device number), its filesystem type and source, and the
//! options that matter for locking there. Pure: the text is given.

/// One mount, as `--check` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub major: u64,
    pub minor: u64,
    pub mount_point: String,
    /// Per-mount options (`rw`, `noatime`, …).
    pub options: Vec<String>,
    /// `nfs4`, `ext4`, `fuse.sshfs`, …
    pub fstype: String,
    pub source: String,
    /// The filesystem's own options (NFS puts `vers=`, `local_lock=` here).
    pub super_options: Vec<String>,
}

impl Mount {
    /// The value of option `key` (`vers`, `local_lock`, …), or `Some("")`
    /// for a flag (`nolock`); from either option list.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .chain(&self.super_options)
            .find_map(|o| match o.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if o == key => Some(""),
                _ => None,
            })
    }

    /// An NFS mount (any version).
    pub fn is_nfs(&self) -> bool {
        self.fstype == "nfs" || self.fstype == "nfs4"
    }

    /// Mounted read-only.
    pub fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// The mount of device `major:minor` in `text` (the last one listed: a
/// later mount over the same device is the one seen).
pub fn find(text: &str, major: u64, minor: u64) -> Option<Mount> {
    text.lines()
        .rev()
        .filter_map(parse_line)
        .find(|m| m.major == major && m.minor == minor)
}

/// One line of mountinfo (proc(5)): `ID PARENT MAJOR:MINOR ROOT POINT
/// OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS`.
pub fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let mut rest = after.split(' ');
    let fstype = rest.next()?;
    let source = rest.next()?;
    let super_options = rest.next().unwrap_or_default();
    let list = |s: &str| {
        s.split(',')
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect()
    };
    Some(Mount {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mount_point: unescape(fields.get(4)?),
        options: list(fields.get(5)?),
        fstype: fstype.to_string(),
        source: unescape(source),
        super_options: list(super_options),
    })
}

/// Mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
40 22 0:45 / /srv/my\\040share rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2,rsize=1048576,hard,proto=tcp,timeo=600,local_lock=none,addr=10.0.0.1
41 22 0:46 / /mnt/old ro,relatime - nfs server:/old ro,vers=3,nolock,actimeo=0,nocto,lookupcache=none
";

    #[test]
    fn the_mount_of_a_device_and_its_options() {
        let root = find(TEXT, 8, 1).unwrap();
        assert_eq!(
            (root.fstype.as_str(), root.mount_point.as_str()),
            ("ext4", "/")
        );
        assert!(!root.is_nfs() && !root.read_only());
        let share = find(TEXT, 0, 45).unwrap();
        assert_eq!(share.mount_point, "/srv/my share");
        assert!(share.is_nfs());
        assert_eq!(share.option("vers"), Some("4.2"));
        assert_eq!(share.option("local_lock"), Some("none"));
        assert_eq!(share.option("nolock"), None);
        let old = find(TEXT, 0, 46).unwrap();
        assert!(old.read_only());
        assert_eq!(old.option("nolock"), Some(""));
        assert_eq!(old.option("actimeo"), Some("0"));
        assert_eq!(old.option("lookupcache"), Some("none"));
        assert_eq!(find(TEXT, 0, 47), None);
        assert_eq!(parse_line("garbage"), None);
    }
}
