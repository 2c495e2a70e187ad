//! This machine's identity as a lock record shows it: never
//! `/etc/machine-id` itself, which machine-id(5) asks to keep confidential
//! (records are world-readable), but an application-specific id derived
//! from it as systemd's `sd_id128_get_machine_app_specific` derives one:
//! HMAC-SHA256 keyed with the machine id's 16 bytes over [`APP_ID`], its
//! first 16 bytes made a version-4 UUID, in 32 lowercase hex digits
//! (`systemd-id128 machine-id --app-specific=APP_ID` prints the same).
//!
//! Two machines that share a host name (cloned VMs, containers started
//! with one `--hostname`) tell each other apart by it; a clone that kept
//! its template's machine id does not, and is told apart by nothing but
//! its boot id, which proves nothing alone (see [`crate::judge`]).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Our application id: the key under which machine ids are hashed.
pub const APP_ID: [u8; 16] = [
    0xa8, 0xdf, 0x69, 0x2d, 0x21, 0x17, 0x43, 0xa9, 0x88, 0x2b, 0xab, 0xe1, 0x63, 0x36, 0x11, 0xe0,
];

/// Where the machine id is read.
const MACHINE_ID: &str = "/etc/machine-id";

/// This machine's identity, read once per process; `None` if it has no
/// machine id (no file, empty, `uninitialized`, not 32 hex digits).
pub fn identity() -> Option<String> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let text = crate::host::read_small(MACHINE_ID).ok()?;
        parse_machine_id(&text).map(|id| app_specific(&id))
    })
    .clone()
}

/// The 16 bytes of a machine-id file: 32 hex digits and a newline.
/// Empty, `uninitialized` (systemd's first boot) and anything else are no
/// id at all.
pub fn parse_machine_id(text: &[u8]) -> Option<[u8; 16]> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    if text.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, pair) in text.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        id[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    // An all-zero id is "not set" to systemd too.
    (id != [0; 16]).then_some(id)
}

/// The application-specific id of machine id `id`, in 32 lowercase hex
/// digits.
pub fn app_specific(id: &[u8; 16]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(id).expect("HMAC takes any key");
    mac.update(&APP_ID);
    let digest = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out[6] = (out[6] & 0x0f) | 0x40;
    out[8] = (out[8] & 0x3f) | 0x80;
    out.iter().map(|b| format!("{b:02x}")).collect()
}

/// A machine identity as a record may hold it: 32 lowercase hex digits.
/// Anything else is no identity (and proves nothing).
pub fn is_identity(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &[u8] = b"3d1219c7c4c5404aaa1f6d2a48adfda4\n";

    #[test]
    fn a_machine_id_is_32_hex_digits_and_nothing_else() {
        assert!(parse_machine_id(ID).is_some());
        assert!(parse_machine_id(&ID[..32]).is_some());
        for bad in [
            &b""[..],
            b"\n",
            b"uninitialized\n",
            b"00000000000000000000000000000000\n",
            b"3d1219c7c4c5404aaa1f6d2a48adfda\n",
            b"3d1219c7c4c5404aaa1f6d2a48adfda40\n",
            b"3d1219c7-4c5404aaa1f6d2a48adfda4\n",
            b"+d1219c7c4c5404aaa1f6d2a48adfda4\n",
        ] {
            assert_eq!(parse_machine_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_identity_is_a_keyed_hash_not_the_machine_id() {
        let id = parse_machine_id(ID).unwrap();
        let shown = app_specific(&id);
        assert!(is_identity(&shown), "{shown}");
        assert!(!shown.contains("3d1219c7"), "{shown}");
        // Version 4, variant 1, as systemd makes it.
        assert_eq!(&shown[12..13], "4");
        assert!(matches!(&shown[16..17], "8" | "9" | "a" | "b"), "{shown}");
        // One machine id, one identity; another, another.
        assert_eq!(app_specific(&id), shown);
        let mut other = id;
        other[15] ^= 1;
        assert_ne!(app_specific(&other), shown);
    }

    #[test]
    fn the_identity_is_what_systemd_id128_prints() {
        // `systemd-id128 machine-id --app-specific=a8df692d211743a9882babe1633611e0`
        // on a machine whose /etc/machine-id is ID.
        let id = parse_machine_id(ID).unwrap();
        assert_eq!(app_specific(&id), "8c59c04023c7440099d4efac81aa21c1");
        let zeros_but_one = parse_machine_id(b"00000000000000000000000000000001").unwrap();
        assert_eq!(app_specific(&zeros_but_one).len(), 32);
    }

    #[test]
    fn this_machines_identity_is_read_from_etc_machine_id() {
        let expected = std::fs::read(MACHINE_ID)
            .ok()
            .and_then(|text| parse_machine_id(&text))
            .map(|id| app_specific(&id));
        assert_eq!(identity(), expected);
    }

    #[test]
    fn only_32_lowercase_hex_digits_are_an_identity() {
        assert!(is_identity("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef 123456789abcdef",
            "-123456789abcdef0123456789abcdef",
        ] {
            assert!(!is_identity(bad), "{bad}");
        }
    }
}
