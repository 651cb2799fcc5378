//! /proc/diskstats. Documentation/admin-guide/iostats.rst. Lines have 14 fields (major, minor, name and
//! 11 counters), 18 (plus 4 discard counters, since Linux 4.18) or 20 (plus 2 flush counters, since
//! Linux 5.5). Sectors are always 512 bytes here, whatever the device's sector size.

use crate::parse::{fields, lines, lossy, name_of, u32_field, u64_of, ParseError, ParseResult};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    pub major: u32,
    pub minor: u32,
    pub name: String,
    pub reads_completed: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_time_ms: u64,
    pub writes_completed: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_time_ms: u64,
    /// A gauge, not a counter.
    pub ios_in_progress: u64,
    pub io_time_ms: u64,
    pub weighted_io_time_ms: u64,
    /// Since Linux 4.18.
    pub discards_completed: Option<u64>,
    pub discards_merged: Option<u64>,
    pub sectors_discarded: Option<u64>,
    pub discard_time_ms: Option<u64>,
    /// Since Linux 5.5.
    pub flushes_completed: Option<u64>,
    pub flush_time_ms: Option<u64>,
}

/// Parses the whole file, one [`DiskStat`] per line in file order. Lines with 14, 18 or 20 fields are
/// devices; more than 20 fields are read as 20 (a future kernel's extra columns are ignored). Lines with
/// 7 fields are partitions in the format of Linux 2.6.0 to 2.6.24 (reads, sectors read, writes,
/// sectors written): they are skipped, because they lack the counters of a [`DiskStat`] and hvstat
/// reports whole devices only. Any other field count is an error. An empty file (no block devices, as
/// in some containers) is an empty list.
pub fn parse(buf: &[u8]) -> ParseResult<Vec<DiskStat>> {
    let mut out = Vec::new();
    for (n, line) in lines(buf) {
        // 20 used columns plus one to tell "more than 20" apart.
        let mut cols: [&[u8]; 21] = [&[]; 21];
        let mut count = 0usize;
        for (slot, f) in cols.iter_mut().zip(fields(line)) {
            *slot = f;
            count += 1;
        }
        match count {
            7 => continue,
            14 | 18 | 20 | 21 => {}
            _ => {
                return Err(ParseError::new(n, format!("expected 14, 18 or 20 fields, got {count}: {:?}", lossy(line))))
            }
        }
        let used = count.min(20);
        let [maj, min, name, c @ ..] = cols;
        // Counter i is field i + 4 (1-based), as numbered in Documentation/admin-guide/iostats.rst.
        let num = |i: usize| -> ParseResult<u64> {
            let f = c.get(i).copied().unwrap_or_default();
            u64_of(f).ok_or_else(|| {
                ParseError::new(n, format!("{}: field {}: not a number: {:?}", lossy(name), i + 4, lossy(f)))
            })
        };
        let opt = |i: usize| -> ParseResult<Option<u64>> {
            if i + 3 < used {
                num(i).map(Some)
            } else {
                Ok(None)
            }
        };
        out.push(DiskStat {
            major: u32_field(n, Some(maj), "major")?,
            minor: u32_field(n, Some(min), "minor")?,
            name: name_of(name),
            reads_completed: num(0)?,
            reads_merged: num(1)?,
            sectors_read: num(2)?,
            read_time_ms: num(3)?,
            writes_completed: num(4)?,
            writes_merged: num(5)?,
            sectors_written: num(6)?,
            write_time_ms: num(7)?,
            ios_in_progress: num(8)?,
            io_time_ms: num(9)?,
            weighted_io_time_ms: num(10)?,
            discards_completed: opt(11)?,
            discards_merged: opt(12)?,
            sectors_discarded: opt(13)?,
            discard_time_ms: opt(14)?,
            flushes_completed: opt(15)?,
            flush_time_ms: opt(16)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Linux 6.18 (virtio disk, zram, loop devices): 20 fields.
    const LINUX_6_18: &str = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   7       1 loop1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 15132 6190 2660818 9607 2002 12088 988944 3145 0 4560 13309 851 0 47160 531 55 25
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    /// Linux 4.19 (Debian 10): 18 fields, with partitions and device-mapper.
    const LINUX_4_19: &str = "   8       0 sda 1833479 219378 118474466 2189252 11537702 8104451 501733282 29340240 0 6892108 23880360 81213 0 52355216 3712
   8       1 sda1 1832915 219378 118456346 2189076 11537700 8104451 501733280 29340236 0 6892072 23878872 81213 0 52355216 3712
   8       2 sda2 2 0 4 0 0 0 0 0 0 16 0 0 0 0 0
 253       0 dm-0 1718310 0 107851386 2361044 18651349 0 489364288 67549588 0 6963224 69910632 81213 0 52355216 3744
";

    /// Linux 3.10 (CentOS 7): 14 fields.
    const LINUX_3_10: &str =
        "   8       0 sda 8932452 91277 1193728130 61543921 69827401 8429318 2104592906 339164612 0 55281907 400682018
   8       1 sda1 2217 0 75178 1087 2052 0 4200 389 0 1229 1476
 253       0 dm-0 8885021 0 1190577994 63093876 78252739 0 2100482122 376002766 2 55346181 439116434
";

    #[test]
    fn linux_6_18_has_flush_columns() {
        let d = parse(LINUX_6_18.as_bytes()).unwrap();
        assert_eq!(d.len(), 4);
        let vda = &d[2];
        assert_eq!((vda.major, vda.minor, vda.name.as_str()), (254, 0, "vda"));
        assert_eq!(vda.reads_completed, 15132);
        assert_eq!(vda.sectors_read, 2660818);
        assert_eq!(vda.sectors_written, 988944);
        assert_eq!(vda.ios_in_progress, 0);
        assert_eq!(vda.weighted_io_time_ms, 13309);
        assert_eq!(vda.discards_completed, Some(851));
        assert_eq!(vda.sectors_discarded, Some(47160));
        assert_eq!(vda.discard_time_ms, Some(531));
        assert_eq!(vda.flushes_completed, Some(55));
        assert_eq!(vda.flush_time_ms, Some(25));
    }

    #[test]
    fn linux_4_19_has_discard_but_no_flush() {
        let d = parse(LINUX_4_19.as_bytes()).unwrap();
        assert_eq!(d.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["sda", "sda1", "sda2", "dm-0"]);
        assert_eq!(d[0].discards_completed, Some(81213));
        assert_eq!(d[0].discard_time_ms, Some(3712));
        assert_eq!(d[0].flushes_completed, None);
        assert_eq!(d[0].flush_time_ms, None);
    }

    #[test]
    fn linux_3_10_has_neither() {
        let d = parse(LINUX_3_10.as_bytes()).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[2].ios_in_progress, 2);
        assert_eq!(d[2].weighted_io_time_ms, 439116434);
        assert_eq!((d[2].discards_completed, d[2].flushes_completed), (None, None));
    }

    #[test]
    fn old_partition_lines_are_skipped() {
        // Linux 2.6.18 (RHEL 5): whole disks have 14 fields, partitions 7.
        let d = parse(b"   8    0 sda 219348 13417 7001594 1285765 346563 1009420 10849376 7405224 0 1133934 8690949\n   8    1 sda1 1084 2168 89 178\n").unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name, "sda");
    }

    #[test]
    fn extra_columns_are_ignored() {
        let line = format!("{} 7 8\n", LINUX_6_18.lines().nth(2).unwrap());
        let d = parse(line.as_bytes()).unwrap();
        assert_eq!(d[0].flush_time_ms, Some(25));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap(), vec![]);
        let e = parse(b" 8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12\n").unwrap_err();
        assert_eq!(
            e,
            ParseError::new(1, "expected 14, 18 or 20 fields, got 15: \" 8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12\"")
        );
        let e = parse(b" 8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n 8 16 sdb 1 2 3 4 5 6 7 8 9 10 x\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "sdb: field 14: not a number: \"x\""));
        let e = parse(b" 8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 -15\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "sda: field 18: not a number: \"-15\""));
        assert_eq!(parse(b" 4294967296 0 sda 1 2 3 4 5 6 7 8 9 10 11\n").unwrap_err().line, 1);
        assert_eq!(parse(b" 8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n\n").unwrap_err().line, 2);
    }

    fn render(major: u32, minor: u32, name: &str, c: &[u64]) -> String {
        let c: Vec<String> = c.iter().map(|v| v.to_string()).collect();
        format!("{major:4} {minor:7} {name} {}\n", c.join(" "))
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&buf);
        }

        #[test]
        fn never_panics_on_plausible_lines(lines in proptest::collection::vec(proptest::collection::vec(prop::sample::select(vec!["0", "7", "sda", "18446744073709551615", "18446744073709551616", "x", "-1"]), 0..24), 0..6)) {
            let text: String = lines.iter().map(|l| format!("{}\n", l.join(" "))).collect();
            let _ = parse(text.as_bytes());
        }

        #[test]
        fn round_trip(devs in proptest::collection::vec((any::<u32>(), any::<u32>(), "[a-z][a-z0-9-]{0,15}", prop::sample::select(vec![11usize, 15, 17]), proptest::collection::vec(any::<u64>(), 17)), 0..8)) {
            let text: String = devs.iter().map(|(ma, mi, name, k, c)| render(*ma, *mi, name, &c[..*k])).collect();
            let got = parse(text.as_bytes()).unwrap();
            prop_assert_eq!(got.len(), devs.len());
            for (d, (ma, mi, name, k, c)) in got.iter().zip(&devs) {
                prop_assert_eq!((d.major, d.minor, &d.name), (*ma, *mi, name));
                prop_assert_eq!(d.reads_completed, c[0]);
                prop_assert_eq!(d.weighted_io_time_ms, c[10]);
                prop_assert_eq!(d.discards_completed, (*k >= 15).then_some(c[11]));
                prop_assert_eq!(d.discard_time_ms, (*k >= 15).then_some(c[14]));
                prop_assert_eq!(d.flush_time_ms, (*k >= 17).then_some(c[16]));
            }
        }
    }
}
