//! /proc/<pid>/fdinfo/<fd>: `key:\tvalue` lines about one open file (proc(5)). Every file has `pos`,
//! `flags`, `mnt_id` and, on recent kernels, `ino`; its driver may add lines of its own. A tun/tap fd
//! (an open /dev/net/tun) adds `iff:\t<interface name>` (tun_chr_show_fdinfo() in
//! drivers/net/tun.c, since Linux 3.14), which is how a QEMU process's tap interfaces are found.

use crate::parse::{lines, lossy, name_of, split_once, ParseError, ParseResult};

/// What a tun fd's fdinfo says about its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunIff {
    /// Attached to this interface.
    Interface(String),
    /// `iff:` with an empty name: the fd is not attached (before TUNSETIFF, or a detached queue of a
    /// multiqueue tap): the kernel zeroes the name and prints it anyway.
    Detached,
    /// No `iff:` line: not a tun fd, or a kernel older than the line.
    Absent,
}

/// Interface names are at most IFNAMSIZ - 1 bytes (include/uapi/linux/if.h).
const IFNAMSIZ: usize = 16;

/// Parses the whole file. Every line must be `key:` and a value (which may be empty); `iff` may appear
/// once, and its value, after the kernel's tab, must be a valid interface name (dev_valid_name() in
/// net/core/dev.c: at most 15 bytes, no `/`, `:` or whitespace) or empty.
pub fn parse_tun_iff(buf: &[u8]) -> ParseResult<TunIff> {
    let mut iff = TunIff::Absent;
    let mut seen = false;
    let mut any = false;
    for (n, line) in lines(buf) {
        any = true;
        let Some((key, value)) = split_once(line, b':') else {
            return Err(ParseError::new(n, format!("expected \"key: value\", got {:?}", lossy(line))));
        };
        if key != b"iff" {
            continue;
        }
        if seen {
            return Err(ParseError::new(n, "repeated key \"iff\""));
        }
        seen = true;
        let name = value.strip_prefix(b"\t").unwrap_or(value);
        iff = if name.is_empty() {
            TunIff::Detached
        } else if name.len() < IFNAMSIZ
            && name != b"."
            && name != b".."
            && !name.iter().any(|&b| b == b'/' || b == b':' || b.is_ascii_whitespace())
        {
            TunIff::Interface(name_of(name))
        } else {
            return Err(ParseError::new(n, format!("iff: not an interface name: {:?}", lossy(name))));
        };
    }
    if !any {
        return Err(ParseError::new(0, "empty file"));
    }
    Ok(iff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Linux 6.18 (the test machine): an open /dev/net/tun before and after TUNSETIFF.
    const DETACHED_6_18: &[u8] = b"pos:\t0\nflags:\t02100002\nmnt_id:\t24\nino:\t105\niff:\t\n";
    const TAP_6_18: &[u8] = b"pos:\t0\nflags:\t02100002\nmnt_id:\t24\nino:\t105\niff:\thvfz0\n";

    #[test]
    fn tun_fd() {
        assert_eq!(parse_tun_iff(TAP_6_18), Ok(TunIff::Interface("hvfz0".into())));
        assert_eq!(parse_tun_iff(DETACHED_6_18), Ok(TunIff::Detached));
        // Proxmox's and libvirt's names, at the 15-byte limit.
        assert_eq!(parse_tun_iff(b"pos:\t0\niff:\ttap101i0\n"), Ok(TunIff::Interface("tap101i0".into())));
        assert_eq!(parse_tun_iff(b"pos:\t0\niff:\tvnet-abcdefghij\n"), Ok(TunIff::Interface("vnet-abcdefghij".into())));
    }

    #[test]
    fn other_files_have_no_iff() {
        // A regular file on Linux 3.10 (no ino line yet), and an eventfd on 6.18.
        assert_eq!(parse_tun_iff(b"pos:\t0\nflags:\t0100002\n"), Ok(TunIff::Absent));
        assert_eq!(
            parse_tun_iff(b"pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\neventfd-count:                0\neventfd-id: 3\n"),
            Ok(TunIff::Absent)
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse_tun_iff(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(
            parse_tun_iff(b"pos:\t0\nno colon\n").unwrap_err(),
            ParseError::new(2, "expected \"key: value\", got \"no colon\"")
        );
        assert_eq!(parse_tun_iff(b"iff:\ta\niff:\tb\n").unwrap_err(), ParseError::new(2, "repeated key \"iff\""));
        for bad in ["iff:\tsixteen-bytes-xy\n", "iff:\ta/b\n", "iff:\ta b\n", "iff:\ta:b\n", "iff:\t..\n"] {
            assert_eq!(parse_tun_iff(bad.as_bytes()).unwrap_err().line, 1, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_tun_iff(&buf);
        }

        #[test]
        fn round_trip(name in "[a-zA-Z0-9_.-]{1,15}", pos in any::<u64>(), flags in 0u32..0o7777777) {
            prop_assume!(name != "." && name != "..");
            let text = format!("pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t24\nino:\t105\niff:\t{name}\n");
            prop_assert_eq!(parse_tun_iff(text.as_bytes()), Ok(TunIff::Interface(name)));
        }
    }
}
