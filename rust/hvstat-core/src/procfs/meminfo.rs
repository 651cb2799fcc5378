//! /proc/meminfo. Values are converted from kB to bytes at parse time; the HugePages_* lines are
//! page counts. Every key is optional: which ones exist depends on kernel version and config.

use crate::parse::{fields, lines, lossy, split_once, u64_of, ParseError, ParseResult};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total_bytes: Option<u64>,
    pub mem_free_bytes: Option<u64>,
    /// Since Linux 3.14.
    pub mem_available_bytes: Option<u64>,
    pub buffers_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
    pub swap_cached_bytes: Option<u64>,
    pub active_bytes: Option<u64>,
    pub inactive_bytes: Option<u64>,
    pub active_anon_bytes: Option<u64>,
    pub inactive_anon_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub unevictable_bytes: Option<u64>,
    pub mlocked_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub dirty_bytes: Option<u64>,
    pub writeback_bytes: Option<u64>,
    pub anon_pages_bytes: Option<u64>,
    pub mapped_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    pub slab_bytes: Option<u64>,
    pub s_reclaimable_bytes: Option<u64>,
    pub s_unreclaim_bytes: Option<u64>,
    pub kernel_stack_bytes: Option<u64>,
    pub page_tables_bytes: Option<u64>,
    pub commit_limit_bytes: Option<u64>,
    pub committed_as_bytes: Option<u64>,
    pub vmalloc_used_bytes: Option<u64>,
    pub anon_huge_pages_bytes: Option<u64>,
    pub hugepages_total: Option<u64>,
    pub hugepages_free: Option<u64>,
    pub hugepages_rsvd: Option<u64>,
    pub hugepages_surp: Option<u64>,
    pub hugepagesize_bytes: Option<u64>,
    /// Since Linux 4.16.
    pub hugetlb_bytes: Option<u64>,
}

/// Parses the whole file. Each line is `Key: N kB` (converted to bytes) or `Key: N` (taken as is: the
/// HugePages_* page counts). Keys this struct has no field for are skipped without looking at their
/// values, so whatever a kernel adds cannot break the parse; a known key with a bad value is an error.
pub fn parse(buf: &[u8]) -> ParseResult<MemInfo> {
    let mut m = MemInfo::default();
    let mut any = false;
    for (n, line) in lines(buf) {
        any = true;
        let Some((key, rest)) = split_once(line, b':') else {
            return Err(ParseError::new(n, format!("expected \"Key: value\", got {:?}", lossy(line))));
        };
        let Some(slot) = field_for(&mut m, key) else { continue };
        *slot = Some(value(n, key, rest)?);
    }
    if !any {
        return Err(ParseError::new(0, "empty file"));
    }
    Ok(m)
}

/// `N kB` -> N * 1024, `N` -> N.
fn value(n: usize, key: &[u8], rest: &[u8]) -> ParseResult<u64> {
    let mut f = fields(rest);
    let bad = || ParseError::new(n, format!("{}: expected \"N\" or \"N kB\", got {:?}", lossy(key), lossy(rest)));
    let v = f.next().and_then(u64_of).ok_or_else(bad)?;
    let v = match f.next() {
        None => v,
        Some(b"kB") => {
            v.checked_mul(1024).ok_or_else(|| ParseError::new(n, format!("{}: {v} kB overflows", lossy(key))))?
        }
        Some(_) => return Err(bad()),
    };
    if f.next().is_some() {
        return Err(bad());
    }
    Ok(v)
}

fn field_for<'a>(m: &'a mut MemInfo, key: &[u8]) -> Option<&'a mut Option<u64>> {
    Some(match key {
        b"MemTotal" => &mut m.mem_total_bytes,
        b"MemFree" => &mut m.mem_free_bytes,
        b"MemAvailable" => &mut m.mem_available_bytes,
        b"Buffers" => &mut m.buffers_bytes,
        b"Cached" => &mut m.cached_bytes,
        b"SwapCached" => &mut m.swap_cached_bytes,
        b"Active" => &mut m.active_bytes,
        b"Inactive" => &mut m.inactive_bytes,
        b"Active(anon)" => &mut m.active_anon_bytes,
        b"Inactive(anon)" => &mut m.inactive_anon_bytes,
        b"Active(file)" => &mut m.active_file_bytes,
        b"Inactive(file)" => &mut m.inactive_file_bytes,
        b"Unevictable" => &mut m.unevictable_bytes,
        b"Mlocked" => &mut m.mlocked_bytes,
        b"SwapTotal" => &mut m.swap_total_bytes,
        b"SwapFree" => &mut m.swap_free_bytes,
        b"Dirty" => &mut m.dirty_bytes,
        b"Writeback" => &mut m.writeback_bytes,
        b"AnonPages" => &mut m.anon_pages_bytes,
        b"Mapped" => &mut m.mapped_bytes,
        b"Shmem" => &mut m.shmem_bytes,
        b"Slab" => &mut m.slab_bytes,
        b"SReclaimable" => &mut m.s_reclaimable_bytes,
        b"SUnreclaim" => &mut m.s_unreclaim_bytes,
        b"KernelStack" => &mut m.kernel_stack_bytes,
        b"PageTables" => &mut m.page_tables_bytes,
        b"CommitLimit" => &mut m.commit_limit_bytes,
        b"Committed_AS" => &mut m.committed_as_bytes,
        b"VmallocUsed" => &mut m.vmalloc_used_bytes,
        b"AnonHugePages" => &mut m.anon_huge_pages_bytes,
        b"HugePages_Total" => &mut m.hugepages_total,
        b"HugePages_Free" => &mut m.hugepages_free,
        b"HugePages_Rsvd" => &mut m.hugepages_rsvd,
        b"HugePages_Surp" => &mut m.hugepages_surp,
        b"Hugepagesize" => &mut m.hugepagesize_bytes,
        b"Hugetlb" => &mut m.hugetlb_bytes,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Linux 6.18 (this repository's test VM).
    const LINUX_6_18: &str = "\
MemTotal:       24683656 kB
MemFree:        23781872 kB
MemAvailable:   24377008 kB
Buffers:            3708 kB
Cached:           784452 kB
SwapCached:            0 kB
Active:           251940 kB
Inactive:         531640 kB
Active(anon):       1512 kB
Inactive(anon):     2812 kB
Active(file):     250428 kB
Inactive(file):   528828 kB
Unevictable:        9360 kB
Mlocked:            7648 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Zswap:                 0 kB
Zswapped:              0 kB
Dirty:               348 kB
Writeback:             0 kB
AnonPages:          4792 kB
Mapped:            10008 kB
Shmem:              8896 kB
KReclaimable:      43920 kB
Slab:              64052 kB
SReclaimable:      43920 kB
SUnreclaim:        20132 kB
KernelStack:        1256 kB
PageTables:         1092 kB
SecPageTables:         0 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:    12341828 kB
Committed_AS:      45600 kB
VmallocTotal:   34359738367 kB
VmallocUsed:        5476 kB
VmallocChunk:          0 kB
Percpu:              664 kB
AnonHugePages:         0 kB
ShmemHugePages:        0 kB
ShmemPmdMapped:        0 kB
FileHugePages:      8192 kB
FilePmdMapped:         0 kB
Balloon:               0 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:               0 kB
DirectMap4k:       20480 kB
DirectMap2M:     2076672 kB
DirectMap1G:    25165824 kB
";

    /// Linux 3.10 (upstream fs/proc/meminfo.c at v3.10, x86_64): no MemAvailable (3.14), no Hugetlb
    /// (4.16); HugePages in use by a guest.
    const LINUX_3_10: &str = "\
MemTotal:       65808740 kB
MemFree:         3152044 kB
Buffers:          412984 kB
Cached:         10273528 kB
SwapCached:        10128 kB
Active:         14118828 kB
Inactive:        6081532 kB
Active(anon):    8170312 kB
Inactive(anon):  1518008 kB
Active(file):    5948516 kB
Inactive(file):  4563524 kB
Unevictable:           0 kB
Mlocked:               0 kB
SwapTotal:       8388604 kB
SwapFree:        8301820 kB
Dirty:               412 kB
Writeback:             0 kB
AnonPages:       9504132 kB
Mapped:           139856 kB
Shmem:            174064 kB
Slab:             987436 kB
SReclaimable:     810212 kB
SUnreclaim:       177224 kB
KernelStack:       10880 kB
PageTables:        38436 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:    24598860 kB
Committed_AS:   15062404 kB
VmallocTotal:   34359738367 kB
VmallocUsed:      400244 kB
VmallocChunk:   34325393404 kB
HardwareCorrupted:     0 kB
AnonHugePages:   7661568 kB
HugePages_Total:   16384
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
DirectMap4k:      204800 kB
DirectMap2M:     7100416 kB
DirectMap1G:    61865984 kB
";

    #[test]
    fn linux_6_18() {
        let m = parse(LINUX_6_18.as_bytes()).unwrap();
        assert_eq!(m.mem_total_bytes, Some(24683656 * 1024));
        assert_eq!(m.mem_available_bytes, Some(24377008 * 1024));
        assert_eq!(m.active_anon_bytes, Some(1512 * 1024));
        assert_eq!(m.inactive_file_bytes, Some(528828 * 1024));
        assert_eq!(m.committed_as_bytes, Some(45600 * 1024));
        assert_eq!(m.hugepages_total, Some(0));
        assert_eq!(m.hugepagesize_bytes, Some(2048 * 1024));
        assert_eq!(m.hugetlb_bytes, Some(0));
    }

    #[test]
    fn linux_3_10_has_no_newer_keys() {
        let m = parse(LINUX_3_10.as_bytes()).unwrap();
        assert_eq!(m.mem_available_bytes, None);
        assert_eq!(m.hugetlb_bytes, None);
        assert_eq!(m.hugepages_total, Some(16384), "a page count, not kB");
        assert_eq!(m.swap_free_bytes, Some(8301820 * 1024));
        assert_eq!(m.vmalloc_used_bytes, Some(400244 * 1024));
    }

    #[test]
    fn units() {
        let m = parse(b"MemTotal: 7\nHugePages_Free: 3 kB\n").unwrap();
        assert_eq!((m.mem_total_bytes, m.hugepages_free), (Some(7), Some(3072)));
        let e = parse(b"MemTotal: 18014398509481984 kB\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "MemTotal: 18014398509481984 kB overflows"));
        assert_eq!(parse(b"MemTotal: 18014398509481983 kB\n").unwrap().mem_total_bytes, Some(u64::MAX - 1023));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse(b"MemTotal: 1 kB\nbogus line\n").unwrap_err().line, 2);
        let e = parse(b"MemTotal: 1 MB\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "MemTotal: expected \"N\" or \"N kB\", got \" 1 MB\""));
        assert!(parse(b"MemFree:\n").is_err());
        assert!(parse(b"MemFree: -1 kB\n").is_err());
        assert!(parse(b"MemFree: 1 kB extra\n").is_err());
        // An unknown key's value is never looked at.
        assert_eq!(parse(b"NewThing: lots\nMemFree: 1 kB\n").unwrap().mem_free_bytes, Some(1024));
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&buf);
        }

        #[test]
        fn round_trip(total in 0u64..1 << 40, free in 0u64..1 << 40, huge in any::<u64>(), big in any::<u64>()) {
            let text = format!("MemTotal: {total:>15} kB\nMemFree:{free} kB\nHugePages_Total: {huge}\nCached:\t{big} kB\nShmemHugePages: 0 kB\n");
            let r = parse(text.as_bytes());
            let Some(cached) = big.checked_mul(1024) else {
                prop_assert_eq!(r.unwrap_err().line, 4);
                return Ok(());
            };
            let m = r.unwrap();
            prop_assert_eq!(m.mem_total_bytes, Some(total * 1024));
            prop_assert_eq!(m.mem_free_bytes, Some(free * 1024));
            prop_assert_eq!(m.hugepages_total, Some(huge));
            prop_assert_eq!(m.cached_bytes, Some(cached));
        }
    }
}
