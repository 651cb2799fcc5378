//! /proc/vmstat: `key value` lines; only the counters hvstat reports are kept, unknown keys ignored.

use crate::parse::{fields, lines, lossy, u64_field, ParseError, ParseResult};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmStat {
    /// Page faults (minor and major).
    pub pgfault: Option<u64>,
    pub pgmajfault: Option<u64>,
    /// Pages read from / written to disk (in 1 KiB units despite the name; see mm/vmstat.c).
    pub pgpgin: Option<u64>,
    pub pgpgout: Option<u64>,
    /// Pages swapped in / out.
    pub pswpin: Option<u64>,
    pub pswpout: Option<u64>,
    /// OOM killer invocations. Since Linux 4.13.
    pub oom_kill: Option<u64>,
}

/// Parses the whole file. Lines of keys this struct does not keep are skipped unread (vmstat has ~200
/// keys and they change with every kernel); a kept key must have exactly one number after it.
pub fn parse(buf: &[u8]) -> ParseResult<VmStat> {
    let mut v = VmStat::default();
    let mut any = false;
    for (n, line) in lines(buf) {
        any = true;
        // The file has ~190 lines and 7 are kept, all starting with 'p' or 'o': skip the rest
        // without splitting them (this parser runs every tick).
        if !matches!(line.first(), Some(b'p' | b'o' | b' ' | b'\t') | None) {
            continue;
        }
        let mut f = fields(line);
        let Some(key) = f.next() else {
            return Err(ParseError::new(n, "empty line"));
        };
        let slot = match key {
            b"pgfault" => &mut v.pgfault,
            b"pgmajfault" => &mut v.pgmajfault,
            b"pgpgin" => &mut v.pgpgin,
            b"pgpgout" => &mut v.pgpgout,
            b"pswpin" => &mut v.pswpin,
            b"pswpout" => &mut v.pswpout,
            b"oom_kill" => &mut v.oom_kill,
            _ => continue,
        };
        let what = std::str::from_utf8(key).unwrap_or("key");
        *slot = Some(u64_field(n, f.next(), what)?);
        if let Some(extra) = f.next() {
            return Err(ParseError::new(n, format!("{what}: unexpected {:?} after the value", lossy(extra))));
        }
    }
    if !any {
        return Err(ParseError::new(0, "empty file"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Linux 6.18, the lines around the kept keys (the file has 192 lines).
    const LINUX_6_18: &str = "\
nr_free_pages 5945468
nr_zone_inactive_anon 703
nr_zone_active_anon 378
pgpgin 1330425
pgpgout 494476
pswpin 0
pswpout 0
pgalloc_dma 0
pgalloc_dma32 287340
pgfree 6419720
pgactivate 61887
pgfault 3356557
pgmajfault 745
pglazyfreed 0
oom_kill 0
numa_pte_updates 0
balloon_inflate 0
swap_ra 0
";

    /// Linux 3.10 (CentOS 7): no oom_kill (added in 4.13).
    const LINUX_3_10: &str = "\
nr_free_pages 788011
nr_inactive_anon 379502
nr_dirty_threshold 1168519
nr_dirty_background_threshold 389506
pgpgin 1297634716
pgpgout 9187433320
pswpin 2114
pswpout 23882
pgalloc_dma 0
pgfree 45118922370
pgfault 73215694410
pgmajfault 236291
pgrefill_dma 0
thp_zero_page_alloc_failed 0
";

    #[test]
    fn linux_6_18() {
        let v = parse(LINUX_6_18.as_bytes()).unwrap();
        assert_eq!(
            v,
            VmStat {
                pgfault: Some(3356557),
                pgmajfault: Some(745),
                pgpgin: Some(1330425),
                pgpgout: Some(494476),
                pswpin: Some(0),
                pswpout: Some(0),
                oom_kill: Some(0),
            }
        );
    }

    #[test]
    fn linux_3_10_has_no_oom_kill() {
        let v = parse(LINUX_3_10.as_bytes()).unwrap();
        assert_eq!(v.oom_kill, None);
        assert_eq!(v.pgfault, Some(73215694410));
        assert_eq!(v.pswpout, Some(23882));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse(b"pgfault 1\npgmajfault\n").unwrap_err(), ParseError::new(2, "pgmajfault: missing"));
        assert_eq!(parse(b"pgfault x\n").unwrap_err(), ParseError::new(1, "pgfault: not a number: \"x\""));
        assert_eq!(parse(b"oom_kill 1 2\n").unwrap_err().line, 1);
        assert_eq!(parse(b"pgfault 1\n\n").unwrap_err(), ParseError::new(2, "empty line"));
        // Unknown keys are not even split into their values.
        assert_eq!(parse(b"nr_whatever lots of words\npgfault 5\n").unwrap().pgfault, Some(5));
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&buf);
        }

        #[test]
        fn round_trip(vals in proptest::array::uniform7(any::<u64>()), noise in proptest::collection::vec("[a-z_]{1,20} [0-9]{1,20}", 0..20)) {
            let keys = ["pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout", "oom_kill"];
            let mut text: String = noise.iter().map(|l| format!("{l}\n")).filter(|l| !keys.iter().any(|k| l.starts_with(&format!("{k} ")))).collect();
            for (k, v) in keys.iter().zip(vals) {
                text += &format!("{k} {v}\n");
            }
            let v = parse(text.as_bytes()).unwrap();
            prop_assert_eq!([v.pgfault, v.pgmajfault, v.pgpgin, v.pgpgout, v.pswpin, v.pswpout, v.oom_kill], vals.map(Some));
        }
    }
}
