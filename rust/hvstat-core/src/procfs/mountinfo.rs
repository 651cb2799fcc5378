//! /proc/<pid>/mountinfo. proc(5): `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
//! Optional fields run up to the lone `-`. Paths escape space, tab, newline and backslash as octal
//! (`\040`); they are unescaped here.

use crate::parse::{lines, lossy, name_of, split_once, u32_field, u64_field, ParseError, ParseResult};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    pub mount_id: u64,
    pub parent_id: u64,
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its filesystem.
    pub root: String,
    pub mount_point: String,
    pub mount_options: String,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

/// Parses the whole file, one [`Mount`] per line in file order.
///
/// Fields are split at single spaces, not at runs of them: the kernel writes exactly one space between
/// fields and escapes spaces inside paths, but a mount whose source is the empty string (`mount -t
/// tmpfs "" /mnt`) has an empty source field, i.e. two spaces in a row, and collapsing them would shift
/// the super options into the source.
pub fn parse(buf: &[u8]) -> ParseResult<Vec<Mount>> {
    let mut out = Vec::new();
    for (n, line) in lines(buf) {
        out.push(mount(n, line)?);
    }
    Ok(out)
}

fn mount(n: usize, line: &[u8]) -> ParseResult<Mount> {
    let short = || ParseError::new(n, format!("too few fields: {:?}", lossy(line)));
    let mut f = line.split(|&b| b == b' ');
    let mount_id = u64_field(n, f.next(), "mount id")?;
    let parent_id = u64_field(n, f.next(), "parent id")?;
    let dev = f.next().ok_or_else(short)?;
    let Some((major, minor)) = split_once(dev, b':') else {
        return Err(ParseError::new(n, format!("expected major:minor, got {:?}", lossy(dev))));
    };
    let major = u32_field(n, Some(major), "major")?;
    let minor = u32_field(n, Some(minor), "minor")?;
    let root = f.next().ok_or_else(short)?;
    let mount_point = f.next().ok_or_else(short)?;
    let mount_options = f.next().ok_or_else(short)?;
    // Zero or more optional fields (shared:N, master:N, propagate_from:N, unbindable), then a lone "-".
    loop {
        match f.next() {
            Some(b"-") => break,
            Some(_) => {}
            None => return Err(ParseError::new(n, format!("no \"-\" separator: {:?}", lossy(line)))),
        }
    }
    let fs_type = f.next().ok_or_else(short)?;
    let source = f.next().ok_or_else(short)?;
    let super_options = f.next().ok_or_else(short)?;
    if let Some(extra) = f.next() {
        return Err(ParseError::new(n, format!("unexpected field after the super options: {:?}", lossy(extra))));
    }
    Ok(Mount {
        mount_id,
        parent_id,
        major,
        minor,
        root: name_of(&unescape(root)),
        mount_point: name_of(&unescape(mount_point)),
        mount_options: name_of(mount_options),
        fs_type: name_of(fs_type),
        source: name_of(&unescape(source)),
        super_options: name_of(super_options),
    })
}

/// Undoes the kernel's `mangle()`/`seq_escape()` in fs/proc_namespace.c: `\` followed by three octal
/// digits is that byte (`\040` space, `\011` tab, `\012` newline, `\134` backslash). Anything else,
/// including an escape past `\377`, is kept as written.
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'\\' {
            if let Some(v) = s.get(i + 1..i + 4).and_then(octal3) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn octal3(d: &[u8]) -> Option<u8> {
    let mut v: u32 = 0;
    for &c in d {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        v = v * 8 + u32::from(c - b'0');
    }
    u8::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Linux 6.18, this repository's test VM (cgroup v1 controllers beside a v2 mount).
    const LINUX_6_18: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334464k,nr_inodes=3083616,mode=755
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// Linux 3.10 (CentOS 7, systemd): shared peer groups, a bind mount with a non-/ root, a space.
    const LINUX_3_10: &str = "\
18 40 0:17 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw,seclabel
40 1 253:0 / / rw,relatime shared:1 - xfs /dev/mapper/centos-root rw,seclabel,attr2,inode64,noquota
24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,seclabel,mode=755
64 40 8:1 / /boot rw,relatime shared:26 - xfs /dev/sda1 rw,seclabel,attr2,inode64,noquota
133 40 253:2 /images /var/lib/libvirt/images rw,relatime shared:26 master:3 - xfs /dev/mapper/vg\\040data-images rw
141 40 8:33 / /run/media/admin/My\\040Passport rw,nosuid,nodev,relatime shared:90 - exfat /dev/sdc1 rw
";

    #[test]
    fn linux_6_18() {
        let m = parse(LINUX_6_18.as_bytes()).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(
            m[2],
            Mount {
                mount_id: 27,
                parent_id: 1,
                major: 254,
                minor: 0,
                root: "/".into(),
                mount_point: "/".into(),
                mount_options: "rw,relatime".into(),
                fs_type: "ext4".into(),
                source: "/dev/vda".into(),
                super_options: "rw,discard,resv_strict,resuid=65534,resgid=65534".into(),
            }
        );
        assert_eq!(m[4].fs_type, "cgroup2");
    }

    #[test]
    fn linux_3_10_optional_fields_and_escapes() {
        let m = parse(LINUX_3_10.as_bytes()).unwrap();
        assert_eq!(m[0].fs_type, "sysfs");
        assert_eq!(m[1].source, "/dev/mapper/centos-root");
        let bind = &m[4];
        assert_eq!((bind.root.as_str(), bind.mount_point.as_str()), ("/images", "/var/lib/libvirt/images"));
        assert_eq!(bind.source, "/dev/mapper/vg data-images");
        assert_eq!((bind.major, bind.minor), (253, 2));
        assert_eq!(m[5].mount_point, "/run/media/admin/My Passport");
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape(br"a\040b\011c\012d\134e"), b"a b\tc\nd\\e");
        assert_eq!(unescape(br"\1"), br"\1");
        assert_eq!(unescape(br"x\08"), br"x\08");
        assert_eq!(unescape(br"\777\"), br"\777\");
        assert_eq!(unescape(br"\\040"), br"\ ");
    }

    #[test]
    fn empty_source_and_nsfs_root() {
        // `mount -t tmpfs "" /mnt/scratch`: the source is printed as nothing, between two spaces.
        let m = parse(b"112 25 0:45 / /mnt/scratch rw,relatime shared:60 - tmpfs  rw,size=1024k\n").unwrap();
        assert_eq!(
            (m[0].fs_type.as_str(), m[0].source.as_str(), m[0].super_options.as_str()),
            ("tmpfs", "", "rw,size=1024k")
        );
        let m = parse(b"613 28 0:4 net:[4026532601] /run/netns/ns1 rw - nsfs nsfs rw\n").unwrap();
        assert_eq!(m[0].root, "net:[4026532601]");
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap(), vec![]);
        let e = parse(b"22 27 0:21 / /proc rw,relatime proc proc rw\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "no \"-\" separator: \"22 27 0:21 / /proc rw,relatime proc proc rw\""));
        let e = parse(b"22 27 0:21 / /proc rw,relatime - proc proc\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.msg.starts_with("too few fields"));
        let e = parse(b"22 27 0-21 / /proc rw,relatime - proc proc rw\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "expected major:minor, got \"0-21\""));
        assert_eq!(parse(b"x 27 0:21 / /proc rw - proc proc rw\n").unwrap_err().msg, "mount id: not a number: \"x\"");
        assert!(parse(b"22 27 0:21 / /proc rw - proc proc rw extra\n").is_err());
        assert!(parse(b"22 27 0:4294967296 / /proc rw - proc proc rw\n").is_err());
        assert!(parse(b"22 27\n").is_err());
    }

    fn escape(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b' ' | b'\t' | b'\n' | b'\\' => format!("\\{b:03o}"),
                _ => (b as char).to_string(),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&buf);
        }

        #[test]
        fn round_trip(
            ids in proptest::array::uniform2(any::<u64>()),
            dev in proptest::array::uniform2(any::<u32>()),
            root in "/[a-z \t\n\\\\]{0,12}",
            point in "/[a-z0-9 \t\n\\\\_.-]{0,20}",
            source in "[a-z/ \\\\]{0,12}",
            optional in proptest::collection::vec("(shared|master|propagate_from):[0-9]{1,4}|unbindable", 0..4),
        ) {
            let opt: String = optional.iter().map(|o| format!("{o} ")).collect();
            let text = format!("{} {} {}:{} {} {} rw,relatime {opt}- ext4 {} rw,data=ordered\n", ids[0], ids[1], dev[0], dev[1], escape(&root), escape(&point), escape(&source));
            let m = parse(text.as_bytes()).unwrap();
            prop_assert_eq!(m.len(), 1);
            let m = &m[0];
            prop_assert_eq!((m.mount_id, m.parent_id, m.major, m.minor), (ids[0], ids[1], dev[0], dev[1]));
            prop_assert_eq!((&m.root, &m.mount_point, &m.source), (&root, &point, &source));
            prop_assert_eq!((m.fs_type.as_str(), m.super_options.as_str()), ("ext4", "rw,data=ordered"));
        }
    }
}
