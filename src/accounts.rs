//! Users and groups by name or id, without loading NSS modules.
//!
//! The programs are linked statically against glibc (see
//! `.cargo/config.toml`). For `getpwuid(3)` and its kin, a static glibc
//! loads NSS modules (`systemd`, `sss`, `ldap`, ...) into itself, and they
//! only work with the very glibc it was linked with (on Debian 12, a uid
//! missing from `/etc/passwd` sent it into `systemd`'s module, and it
//! crashed). So nothing here calls
//! `getpw*` or `getgr*`. An entry is read from `/etc/passwd` or
//! `/etc/group` when `files` (or `compat`) is the first source of that
//! database in `/etc/nsswitch.conf`. Otherwise, or when the file has no
//! such entry, `getent(1)` looks it up in a process of its own, through
//! every configured source.

use std::path::Path;
use std::process::{Command, Stdio};

/// One entry of `passwd` or `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The user or group name.
    pub name: String,
    /// The uid of a user, the gid of a group.
    pub id: u32,
    /// The primary gid of a user; the gid of a group.
    pub gid: u32,
}

/// A user by uid.
pub fn user_by_id(uid: u32) -> Option<Entry> {
    lookup(Database::Passwd, Key::Id(uid))
}

/// A user by name.
pub fn user_by_name(name: &str) -> Option<Entry> {
    lookup(Database::Passwd, Key::Name(name))
}

/// A group by gid.
pub fn group_by_id(gid: u32) -> Option<Entry> {
    lookup(Database::Group, Key::Id(gid))
}

/// A group by name.
pub fn group_by_name(name: &str) -> Option<Entry> {
    lookup(Database::Group, Key::Name(name))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Database {
    Passwd,
    Group,
}

impl Database {
    fn name(self) -> &'static str {
        match self {
            Database::Passwd => "passwd",
            Database::Group => "group",
        }
    }

    fn file(self) -> &'static Path {
        Path::new(match self {
            Database::Passwd => "/etc/passwd",
            Database::Group => "/etc/group",
        })
    }

    /// `name:password:id:...`, and for passwd the primary gid next.
    fn parse(self, line: &str) -> Option<Entry> {
        let mut fields = line.split(':');
        let name = fields.next()?;
        // `compat` inclusions and exclusions are not entries.
        if name.is_empty() || name.starts_with(['+', '-', '#']) {
            return None;
        }
        let id = fields.nth(1)?.parse().ok()?;
        let gid = match self {
            Database::Passwd => fields.next()?.parse().ok()?,
            Database::Group => id,
        };
        Some(Entry {
            name: name.to_string(),
            id,
            gid,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Id(u32),
    Name(&'a str),
}

impl Key<'_> {
    fn matches(self, entry: &Entry) -> bool {
        match self {
            Key::Id(id) => entry.id == id,
            Key::Name(name) => entry.name == name,
        }
    }
}

fn lookup(db: Database, key: Key) -> Option<Entry> {
    let nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    lookup_with(db, key, db.file(), &nsswitch)
}

fn lookup_with(db: Database, key: Key, file: &Path, nsswitch: &str) -> Option<Entry> {
    if let Key::Name(name) = key {
        // Nothing getent could take for an option, nothing that cannot be
        // a name.
        if name.is_empty() || name.starts_with('-') || name.contains([':', '\n']) {
            return None;
        }
    }
    if files_first(nsswitch, db.name()) {
        let found = std::fs::read_to_string(file).ok().and_then(|text| {
            text.lines()
                .filter_map(|line| db.parse(line))
                .find(|e| key.matches(e))
        });
        if found.is_some() {
            return found;
        }
    }
    getent(db, key)
}

/// Whether `files` (or `compat`, which reads the same file) is the first
/// source for `db`; glibc reads the files when the line is missing.
fn files_first(nsswitch: &str, db: &str) -> bool {
    let line = nsswitch.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        line.strip_prefix(db)?.trim_start().strip_prefix(':')
    });
    match line.and_then(|sources| sources.split_whitespace().next()) {
        Some(first) => first == "files" || first == "compat",
        None => true,
    }
}

/// Ask `getent(1)`, which runs every NSS source in a process of its own.
fn getent(db: Database, key: Key) -> Option<Entry> {
    let program = ["/usr/bin/getent", "/bin/getent"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let key_arg = match key {
        Key::Id(id) => id.to_string(),
        Key::Name(name) => name.to_string(),
    };
    let out = Command::new(program)
        .arg(db.name())
        .arg(key_arg)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| db.parse(line))
        .find(|e| key.matches(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_and_group_lines() {
        let root = Database::Passwd.parse("root:x:0:0:root:/root:/bin/bash");
        let want = Entry {
            name: "root".into(),
            id: 0,
            gid: 0,
        };
        assert_eq!(root, Some(want));
        let mail = Database::Group.parse("mail:x:8:");
        assert_eq!(mail.map(|e| (e.id, e.gid)), Some((8, 8)));
        for bad in [
            "",
            "# comment",
            "+@netgroup::::::",
            "-baduser",
            "nouid:x:",
            "neg:x:-1:0:::",
            "big:x:4294967296:0:::",
            "nogid:x:1000",
        ] {
            assert_eq!(Database::Passwd.parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn files_first_reads_the_first_source() {
        let conf = "# passwd: ldap\npasswd:   files systemd\ngroup: sss files # x\n";
        assert!(files_first(conf, "passwd"));
        assert!(!files_first(conf, "group"));
        assert!(files_first("passwd: compat\n", "passwd"));
        assert!(files_first("", "passwd"));
        assert!(!files_first(
            "passwd:ldap [NOTFOUND=return] files\n",
            "passwd"
        ));
        // `passwdx:` is another database.
        assert!(files_first("passwdx: ldap\n", "passwd"));
    }

    #[test]
    fn finds_root_by_id_and_name() {
        let root = user_by_id(0).expect("uid 0 has an entry");
        assert_eq!(user_by_name(&root.name), Some(root));
        assert_eq!(user_by_id(3_999_999_999), None);
        assert_eq!(user_by_name("-r"), None);
        assert_eq!(user_by_name("a:b"), None);
    }

    #[test]
    fn falls_back_to_getent_when_the_file_lacks_the_entry() {
        if !Path::new("/usr/bin/getent").exists() && !Path::new("/bin/getent").exists() {
            return;
        }
        let empty = tempfile::NamedTempFile::new().unwrap();
        let root = lookup_with(Database::Passwd, Key::Id(0), empty.path(), "");
        assert_eq!(root.map(|e| e.id), Some(0));
        let from_file = user_by_id(0).unwrap();
        // And when files are not the first source, getent is asked first.
        let conf = "passwd: ldap files\n";
        let root = lookup_with(Database::Passwd, Key::Id(0), empty.path(), conf);
        assert_eq!(root, Some(from_file));
    }
}
