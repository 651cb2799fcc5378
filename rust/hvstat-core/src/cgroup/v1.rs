//! cgroup v1 files. Documentation/admin-guide/cgroup-v1/{cpuacct,memory,blkio-controller,pids}.rst
//! and Documentation/scheduler/sched-bwc.rst for cfs quota and cpu.stat.

use super::Limit;
use crate::parse::{
    dev_field, fields, flat_keyed, i64_of, keyed_lines, lines, lossy, single_field, store_once, u64_field, ParseError,
    ParseResult,
};

/// cpuacct.stat: `user N` and `system N` in USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuacctStat {
    pub user_ticks: u64,
    pub system_ticks: u64,
}

/// Parses cpuacct.stat: both keys are required, others are skipped.
pub fn parse_cpuacct_stat(buf: &[u8]) -> ParseResult<CpuacctStat> {
    let mut v = [None; 2];
    flat_keyed(buf, &mut v, |v, key| match key {
        b"user" => v.get_mut(0),
        b"system" => v.get_mut(1),
        _ => None,
    })?;
    let [user, system] = v;
    Ok(CpuacctStat {
        user_ticks: user.ok_or_else(|| ParseError::new(0, "user: missing"))?,
        system_ticks: system.ok_or_else(|| ParseError::new(0, "system: missing"))?,
    })
}

/// cpu.stat of the v1 cpu controller: `nr_periods`, `nr_throttled`, `throttled_time` (ns), and
/// since Linux 5.14 `nr_bursts`, `burst_time` (ns). Unknown keys ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_time_ns: Option<u64>,
}

/// Parses the v1 cpu.stat: `key value` lines, keys other than the struct's skipped (`nr_bursts`,
/// `burst_time`, and `wait_sum` with schedstats on).
pub fn parse_cpu_stat(buf: &[u8]) -> ParseResult<CpuStat> {
    let mut s = CpuStat::default();
    flat_keyed(buf, &mut s, cpu_stat_key)?;
    Ok(s)
}

fn cpu_stat_key<'a>(s: &'a mut CpuStat, key: &[u8]) -> Option<&'a mut Option<u64>> {
    Some(match key {
        b"nr_periods" => &mut s.nr_periods,
        b"nr_throttled" => &mut s.nr_throttled,
        b"throttled_time" => &mut s.throttled_time_ns,
        _ => return None,
    })
}

/// cpu.cfs_quota_us: a signed number of microseconds; -1 means no limit (`Limit::Max`).
/// Any other negative value is an error: the kernel stores a negative quota as "no limit" and reads
/// it back as -1 (tg_get_cfs_quota() in kernel/sched/core.c).
pub fn parse_cfs_quota(buf: &[u8]) -> ParseResult<Limit> {
    let v = single_field(buf)?;
    match i64_of(v) {
        Some(-1) => Ok(Limit::Max),
        Some(q) => match u64::try_from(q) {
            Ok(q) => Ok(Limit::Value(q)),
            Err(_) => Err(ParseError::new(1, format!("quota: negative and not -1: {:?}", lossy(v)))),
        },
        None => Err(ParseError::new(1, format!("quota: not a number: {:?}", lossy(v)))),
    }
}

/// memory.limit_in_bytes / memory.memsw.limit_in_bytes: a byte count where "no limit" is written
/// as PAGE_COUNTER_MAX × page size (9223372036854771712 with 4 KiB pages; larger pages give other
/// values). Any value >= 2^62 is taken as `Limit::Max`: no machine has 4 EiB of memory.
pub fn parse_memory_limit(buf: &[u8]) -> ParseResult<Limit> {
    let v = u64_field(1, Some(single_field(buf)?), "limit")?;
    Ok(if v >= NO_MEMORY_LIMIT { Limit::Max } else { Limit::Value(v) })
}

/// 2^62 bytes: anything at or above it is "no limit" (see [`parse_memory_limit`]).
const NO_MEMORY_LIMIT: u64 = 1 << 62;

/// memory.stat (v1). The `total_*` keys include descendants; hvstat prefers them and falls back to
/// the local ones. Bytes unless noted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    pub cache: Option<u64>,
    pub rss: Option<u64>,
    pub rss_huge: Option<u64>,
    pub shmem: Option<u64>,
    pub mapped_file: Option<u64>,
    pub dirty: Option<u64>,
    pub writeback: Option<u64>,
    pub swap: Option<u64>,
    pub active_anon: Option<u64>,
    pub inactive_anon: Option<u64>,
    pub active_file: Option<u64>,
    pub inactive_file: Option<u64>,
    pub unevictable: Option<u64>,
    /// Counts.
    pub pgfault: Option<u64>,
    pub pgmajfault: Option<u64>,
    pub total_cache: Option<u64>,
    pub total_rss: Option<u64>,
    pub total_shmem: Option<u64>,
    pub total_mapped_file: Option<u64>,
    pub total_swap: Option<u64>,
    pub total_active_file: Option<u64>,
    pub total_inactive_file: Option<u64>,
    pub total_pgfault: Option<u64>,
    pub total_pgmajfault: Option<u64>,
}

/// Parses the v1 memory.stat: `key value` lines; keys the struct has no field for (such as
/// `hierarchical_memory_limit`, `workingset_*`, `pgpgin`) are skipped unread.
pub fn parse_memory_stat(buf: &[u8]) -> ParseResult<MemoryStat> {
    let mut s = MemoryStat::default();
    flat_keyed(buf, &mut s, memory_stat_key)?;
    Ok(s)
}

fn memory_stat_key<'a>(s: &'a mut MemoryStat, key: &[u8]) -> Option<&'a mut Option<u64>> {
    Some(match key {
        b"cache" => &mut s.cache,
        b"rss" => &mut s.rss,
        b"rss_huge" => &mut s.rss_huge,
        b"shmem" => &mut s.shmem,
        b"mapped_file" => &mut s.mapped_file,
        b"dirty" => &mut s.dirty,
        b"writeback" => &mut s.writeback,
        b"swap" => &mut s.swap,
        b"active_anon" => &mut s.active_anon,
        b"inactive_anon" => &mut s.inactive_anon,
        b"active_file" => &mut s.active_file,
        b"inactive_file" => &mut s.inactive_file,
        b"unevictable" => &mut s.unevictable,
        b"pgfault" => &mut s.pgfault,
        b"pgmajfault" => &mut s.pgmajfault,
        b"total_cache" => &mut s.total_cache,
        b"total_rss" => &mut s.total_rss,
        b"total_shmem" => &mut s.total_shmem,
        b"total_mapped_file" => &mut s.total_mapped_file,
        b"total_swap" => &mut s.total_swap,
        b"total_active_file" => &mut s.total_active_file,
        b"total_inactive_file" => &mut s.total_inactive_file,
        b"total_pgfault" => &mut s.total_pgfault,
        b"total_pgmajfault" => &mut s.total_pgmajfault,
        _ => return None,
    })
}

/// memory.oom_control: `oom_kill_disable 0`, `under_oom 0`, and since Linux 4.13 `oom_kill N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomControl {
    pub under_oom: Option<bool>,
    pub oom_kill: Option<u64>,
}

/// Parses memory.oom_control: `under_oom` must be 0 or 1; `oom_kill_disable` and unknown keys are
/// skipped.
pub fn parse_oom_control(buf: &[u8]) -> ParseResult<OomControl> {
    let (mut under_oom, mut oom_kill) = (None, None);
    let mut any = false;
    for item in keyed_lines(buf) {
        let (n, key, rest) = item?;
        any = true;
        match key {
            b"under_oom" => {
                if under_oom.is_some() {
                    return Err(ParseError::new(n, "repeated key \"under_oom\""));
                }
                let mut v = None;
                store_once(n, key, rest, &mut v)?;
                under_oom = match v {
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    _ => {
                        return Err(ParseError::new(
                            n,
                            format!("under_oom: expected 0 or 1, got {:?}", lossy(rest.trim_ascii())),
                        ))
                    }
                };
            }
            b"oom_kill" => store_once(n, key, rest, &mut oom_kill)?,
            _ => {}
        }
    }
    if !any {
        return Err(ParseError::new(0, "empty file"));
    }
    Ok(OomControl { under_oom, oom_kill })
}

/// Per device totals from blkio.throttle.io_service_bytes / io_serviced (or the CFQ/BFQ
/// `blkio.io_service_bytes_recursive` files, same format): lines `MAJ:MIN Read|Write|Sync|Async|
/// Discard|Total N`, and a last line `Total N` for all devices. Discard lines since Linux 4.19.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkioDevice {
    pub major: u32,
    pub minor: u32,
    pub read: u64,
    pub write: u64,
    pub discard: Option<u64>,
}

/// Parses one of those files: per device (in order of first appearance) the sum of its Read, Write
/// and Discard lines; the Sync, Async and Total lines of a device and the last `Total N` line are
/// checked for form but not used, and a device line with an op this parser does not know is skipped.
/// `discard` is `Some` when the device has a Discard line. A file with no device lines (only `Total
/// 0`: nothing charged yet, or blk-throttle not active on any device) is an empty list.
pub fn parse_blkio(buf: &[u8]) -> ParseResult<Vec<BlkioDevice>> {
    let mut out: Vec<BlkioDevice> = Vec::new();
    for (n, line) in lines(buf) {
        let mut f = fields(line);
        let Some(first) = f.next() else {
            return Err(ParseError::new(n, "empty line"));
        };
        if first == b"Total" {
            u64_field(n, f.next(), "Total")?;
            if let Some(extra) = f.next() {
                return Err(ParseError::new(n, format!("Total: unexpected {:?} after the value", lossy(extra))));
            }
            continue;
        }
        let (major, minor) = dev_field(n, first)?;
        let Some(op) = f.next() else {
            return Err(ParseError::new(n, format!("{}: op missing", lossy(first))));
        };
        let what = match op {
            b"Read" => "Read",
            b"Write" => "Write",
            b"Discard" => "Discard",
            b"Sync" => "Sync",
            b"Async" => "Async",
            b"Total" => "Total",
            _ => continue,
        };
        let v = u64_field(n, f.next(), what)?;
        if let Some(extra) = f.next() {
            return Err(ParseError::new(n, format!("{what}: unexpected {:?} after the value", lossy(extra))));
        }
        let d = match out.iter().position(|d| d.major == major && d.minor == minor) {
            Some(i) => out.get_mut(i),
            None if matches!(what, "Read" | "Write" | "Discard") => {
                out.push(BlkioDevice { major, minor, ..Default::default() });
                out.last_mut()
            }
            None => continue,
        };
        let Some(d) = d else { continue };
        let overflow = || ParseError::new(n, format!("{major}:{minor} {what}: the sum overflows"));
        match what {
            "Read" => d.read = d.read.checked_add(v).ok_or_else(overflow)?,
            "Write" => d.write = d.write.checked_add(v).ok_or_else(overflow)?,
            "Discard" => d.discard = Some(d.discard.unwrap_or(0).checked_add(v).ok_or_else(overflow)?),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The 6.18 texts are from the test VM (recorded in tests/fixtures/hosts/cgroup-hybrid-6.18-runc, a
    // runc-style /docker/<id> cgroup with a 128 MiB memory limit and a 50% CPU quota).

    #[test]
    fn cpuacct_stat() {
        // The format has not changed since 2.6.x; the cgroup and the root of the 6.18 VM.
        assert_eq!(parse_cpuacct_stat(b"user 124\nsystem 4\n"), Ok(CpuacctStat { user_ticks: 124, system_ticks: 4 }));
        assert_eq!(
            parse_cpuacct_stat(b"user 152816\nsystem 36565\n"),
            Ok(CpuacctStat { user_ticks: 152816, system_ticks: 36565 })
        );
        assert_eq!(parse_cpuacct_stat(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse_cpuacct_stat(b"user 1\n").unwrap_err(), ParseError::new(0, "system: missing"));
        assert_eq!(
            parse_cpuacct_stat(b"user 1\nsystem -1\n").unwrap_err(),
            ParseError::new(2, "system: not a number: \"-1\"")
        );
        assert_eq!(
            parse_cpuacct_stat(b"user 1\nuser 1\nsystem 1\n").unwrap_err(),
            ParseError::new(2, "repeated key \"user\"")
        );
        assert_eq!(parse_cpuacct_stat(b"user 1\nguest 5\nsystem 2\n").unwrap().system_ticks, 2, "unknown keys skipped");
    }

    #[test]
    fn cpu_stat() {
        // Linux 6.18: burst keys (5.14) after the throttling ones.
        let s =
            parse_cpu_stat(b"nr_periods 25\nnr_throttled 24\nthrottled_time 1149216097\nnr_bursts 0\nburst_time 0\n")
                .unwrap();
        assert_eq!(s, CpuStat { nr_periods: Some(25), nr_throttled: Some(24), throttled_time_ns: Some(1149216097) });
        // Linux 3.10 (CentOS 7), kernel/sched/core.c cpu_stats_show(): three keys.
        let s = parse_cpu_stat(b"nr_periods 1803\nnr_throttled 29\nthrottled_time 4317209544\n").unwrap();
        assert_eq!(s.throttled_time_ns, Some(4317209544));
        // With schedstats on, 5.x+ add wait_sum.
        let s =
            parse_cpu_stat(b"nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\nwait_sum 0\n")
                .unwrap();
        assert_eq!(s.nr_periods, Some(0));
        assert_eq!(parse_cpu_stat(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(
            parse_cpu_stat(b"nr_periods 1 2\n").unwrap_err(),
            ParseError::new(1, "nr_periods: unexpected \"2\" after the value")
        );
    }

    #[test]
    fn cfs_quota() {
        assert_eq!(parse_cfs_quota(b"-1\n"), Ok(Limit::Max));
        assert_eq!(parse_cfs_quota(b"50000\n"), Ok(Limit::Value(50000)));
        assert_eq!(parse_cfs_quota(b"-2\n").unwrap_err(), ParseError::new(1, "quota: negative and not -1: \"-2\""));
        assert_eq!(
            parse_cfs_quota(b"-9223372036854775808\n").unwrap_err(),
            ParseError::new(1, "quota: negative and not -1: \"-9223372036854775808\"")
        );
        assert_eq!(parse_cfs_quota(b"max\n").unwrap_err(), ParseError::new(1, "quota: not a number: \"max\""));
        assert_eq!(parse_cfs_quota(b"9223372036854775808\n").unwrap_err().line, 1, "beyond a signed 64-bit value");
        assert_eq!(parse_cfs_quota(b"").unwrap_err(), ParseError::new(0, "empty file"));
    }

    #[test]
    fn memory_limit() {
        // Unlimited with 4 KiB pages (x86_64, the 6.18 VM) and with 64 KiB pages (arm64/ppc64le
        // kernels built with 64K pages: PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE pages).
        assert_eq!(parse_memory_limit(b"9223372036854771712\n"), Ok(Limit::Max));
        assert_eq!(parse_memory_limit(b"9223372036854710272\n"), Ok(Limit::Max));
        // Before 3.19 (res_counter, e.g. CentOS 7's 3.10) "unlimited" was LLONG_MAX.
        assert_eq!(parse_memory_limit(b"9223372036854775807\n"), Ok(Limit::Max));
        assert_eq!(parse_memory_limit(b"4611686018427387904\n"), Ok(Limit::Max), "2^62 is no limit");
        assert_eq!(parse_memory_limit(b"4611686018427387903\n"), Ok(Limit::Value((1 << 62) - 1)));
        assert_eq!(parse_memory_limit(b"134217728\n"), Ok(Limit::Value(134217728)));
        assert_eq!(parse_memory_limit(b"-1\n").unwrap_err(), ParseError::new(1, "limit: not a number: \"-1\""));
        assert_eq!(parse_memory_limit(b"1\n2\n").unwrap_err().line, 2);
    }

    /// Linux 6.18, the docker cgroup of the fixture (64 MiB touched anon memory, O_DIRECT I/O).
    const MEMORY_STAT_6_18: &str = "cache 9592832
rss 69992448
rss_huge 0
shmem 1048576
mapped_file 4616192
dirty 53248
writeback 0
workingset_refault_anon 0
workingset_refault_file 261
swap 0
swapcached 0
pgpgin 19694
pgpgout 264
pgfault 17733
pgmajfault 5
inactive_anon 70930432
active_anon 4096
inactive_file 7180288
active_file 1359872
unevictable 0
hierarchical_memory_limit 134217728
hierarchical_memsw_limit 9223372036854771712
total_cache 9592832
total_rss 69992448
total_rss_huge 0
total_shmem 1048576
total_mapped_file 4616192
total_dirty 53248
total_writeback 0
total_workingset_refault_anon 0
total_workingset_refault_file 261
total_swap 0
total_swapcached 0
total_pgpgin 19694
total_pgpgout 264
total_pgfault 17733
total_pgmajfault 5
total_inactive_anon 70930432
total_active_anon 4096
total_inactive_file 7180288
total_active_file 1359872
total_unevictable 0
";

    /// Linux 3.10 (CentOS 7 style), hand-written in the order of mem_cgroup_stat_names[],
    /// mem_cgroup_events_names[] and mem_cgroup_lru_names[] of mm/memcontrol.c at v3.10: no shmem,
    /// dirty or writeback yet (4.x), no workingset keys; swap with swap accounting on.
    const MEMORY_STAT_3_10: &str = "cache 1103429632
rss 3379994624
rss_huge 2621440000
mapped_file 31735808
swap 0
pgpgin 9781205
pgpgout 8686702
pgfault 14331090
pgmajfault 1251
inactive_anon 0
active_anon 3379994624
inactive_file 788299776
active_file 315129856
unevictable 0
hierarchical_memory_limit 8589934592
hierarchical_memsw_limit 9223372036854775807
total_cache 1103429632
total_rss 3379994624
total_rss_huge 2621440000
total_mapped_file 31735808
total_swap 0
total_pgpgin 9781205
total_pgpgout 8686702
total_pgfault 14331090
total_pgmajfault 1251
total_inactive_anon 0
total_active_anon 3379994624
total_inactive_file 788299776
total_active_file 315129856
total_unevictable 0
";

    #[test]
    fn memory_stat() {
        let s = parse_memory_stat(MEMORY_STAT_6_18.as_bytes()).unwrap();
        assert_eq!(
            s,
            MemoryStat {
                cache: Some(9592832),
                rss: Some(69992448),
                rss_huge: Some(0),
                shmem: Some(1048576),
                mapped_file: Some(4616192),
                dirty: Some(53248),
                writeback: Some(0),
                swap: Some(0),
                active_anon: Some(4096),
                inactive_anon: Some(70930432),
                active_file: Some(1359872),
                inactive_file: Some(7180288),
                unevictable: Some(0),
                pgfault: Some(17733),
                pgmajfault: Some(5),
                total_cache: Some(9592832),
                total_rss: Some(69992448),
                total_shmem: Some(1048576),
                total_mapped_file: Some(4616192),
                total_swap: Some(0),
                total_active_file: Some(1359872),
                total_inactive_file: Some(7180288),
                total_pgfault: Some(17733),
                total_pgmajfault: Some(5),
            }
        );
        let s = parse_memory_stat(MEMORY_STAT_3_10.as_bytes()).unwrap();
        assert_eq!((s.shmem, s.dirty, s.writeback, s.total_shmem), (None, None, None, None));
        assert_eq!(s.total_rss, Some(3379994624));
        assert_eq!(s.total_inactive_file, Some(788299776));
        assert_eq!(s.rss_huge, Some(2621440000));
        assert_eq!(parse_memory_stat(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse_memory_stat(b"cache 1\nrss\n").unwrap_err(), ParseError::new(2, "rss: missing"));
    }

    #[test]
    fn oom_control() {
        // Linux 6.18.
        assert_eq!(
            parse_oom_control(b"oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
            Ok(OomControl { under_oom: Some(false), oom_kill: Some(0) })
        );
        // Before 4.13: no oom_kill. A cgroup in OOM with the killer disabled.
        assert_eq!(
            parse_oom_control(b"oom_kill_disable 1\nunder_oom 1\n"),
            Ok(OomControl { under_oom: Some(true), oom_kill: None })
        );
        assert_eq!(parse_oom_control(b"").unwrap_err(), ParseError::new(0, "empty file"));
        let e = parse_oom_control(b"oom_kill_disable 0\nunder_oom 2\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "under_oom: expected 0 or 1, got \"2\""));
        let e = parse_oom_control(b"under_oom 0\nunder_oom 0\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "repeated key \"under_oom\""));
        assert_eq!(
            parse_oom_control(b"under_oom 0\noom_kill x\n").unwrap_err(),
            ParseError::new(2, "oom_kill: not a number: \"x\"")
        );
        assert_eq!(parse_oom_control(b"under_oom 0\n\n").unwrap_err(), ParseError::new(2, "empty line"));
    }

    #[test]
    fn blkio_6_18() {
        // blkio.throttle.io_service_bytes of the fixture: Discard lines since 4.19.
        let text = "254:0 Read 25305088\n254:0 Write 16797696\n254:0 Sync 58880000\n254:0 Async 0\n254:0 Discard 16777216\n254:0 Total 58880000\nTotal 58880000\n";
        assert_eq!(
            parse_blkio(text.as_bytes()),
            Ok(vec![BlkioDevice { major: 254, minor: 0, read: 25305088, write: 16797696, discard: Some(16777216) }])
        );
        // blkio.throttle.io_serviced of the same cgroup.
        let text = "254:0 Read 382\n254:0 Write 22\n254:0 Sync 406\n254:0 Async 0\n254:0 Discard 2\n254:0 Total 406\nTotal 406\n";
        assert_eq!(parse_blkio(text.as_bytes()).unwrap()[0].discard, Some(2));
        // Nothing charged (or blk-throttle not active on any device yet): only the total.
        assert_eq!(parse_blkio(b"Total 0\n"), Ok(vec![]));
    }

    #[test]
    fn blkio_3_10() {
        // CentOS 7 (3.10, CFQ), blkio.io_service_bytes_recursive with two disks: no Discard lines.
        let text = "8:16 Read 2207744
8:16 Write 0
8:16 Sync 2207744
8:16 Async 0
8:16 Total 2207744
8:0 Read 78577664
8:0 Write 1429504
8:0 Sync 1130496
8:0 Async 78876672
8:0 Total 80007168
Total 82214912
";
        assert_eq!(
            parse_blkio(text.as_bytes()),
            Ok(vec![
                BlkioDevice { major: 8, minor: 16, read: 2207744, write: 0, discard: None },
                BlkioDevice { major: 8, minor: 0, read: 78577664, write: 1429504, discard: None },
            ])
        );
    }

    #[test]
    fn blkio_sums_and_skips() {
        // A device listed twice is summed; an unknown op is skipped (even with an odd value).
        let text = "8:0 Read 1\n8:0 Write 2\n8:0 Copy x\n8:0 Read 10\n8:0 Discard 3\n8:0 Discard 4\nTotal 20\n";
        assert_eq!(
            parse_blkio(text.as_bytes()),
            Ok(vec![BlkioDevice { major: 8, minor: 0, read: 11, write: 2, discard: Some(7) }])
        );
        // Sync/Async/Total alone do not make a device.
        assert_eq!(parse_blkio(b"8:0 Sync 5\n8:0 Total 5\nTotal 5\n"), Ok(vec![]));
        assert_eq!(parse_blkio(b""), Ok(vec![]));
    }

    #[test]
    fn blkio_errors() {
        assert_eq!(parse_blkio(b"8:0 Read -1\n").unwrap_err(), ParseError::new(1, "Read: not a number: \"-1\""));
        assert_eq!(parse_blkio(b"8:0 Read 1\n8:0 Sync\n").unwrap_err(), ParseError::new(2, "Sync: missing"));
        assert_eq!(parse_blkio(b"8:0\n").unwrap_err(), ParseError::new(1, "8:0: op missing"));
        assert_eq!(parse_blkio(b"sda Read 1\n").unwrap_err(), ParseError::new(1, "expected major:minor, got \"sda\""));
        assert_eq!(parse_blkio(b"Total x\n").unwrap_err(), ParseError::new(1, "Total: not a number: \"x\""));
        assert_eq!(
            parse_blkio(b"Total 1 2\n").unwrap_err(),
            ParseError::new(1, "Total: unexpected \"2\" after the value")
        );
        assert_eq!(
            parse_blkio(b"8:0 Write 1 kB\n").unwrap_err(),
            ParseError::new(1, "Write: unexpected \"kB\" after the value")
        );
        assert_eq!(parse_blkio(b"8:0 Read 1\n\nTotal 1\n").unwrap_err(), ParseError::new(2, "empty line"));
        let e = parse_blkio(b"8:0 Read 18446744073709551615\n8:0 Read 1\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "8:0 Read: the sum overflows"));
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_cpuacct_stat(&buf);
            let _ = parse_cpu_stat(&buf);
            let _ = parse_cfs_quota(&buf);
            let _ = parse_memory_limit(&buf);
            let _ = parse_memory_stat(&buf);
            let _ = parse_oom_control(&buf);
            let _ = parse_blkio(&buf);
        }

        #[test]
        fn never_panics_on_plausible_lines(lines in proptest::collection::vec(proptest::collection::vec(prop::sample::select(vec!["8:0", "Read", "Write", "Discard", "Total", "1", "-1", "18446744073709551615", "under_oom", "user", "system", "cache"]), 0..5), 0..8)) {
            let text: String = lines.iter().map(|l| format!("{}\n", l.join(" "))).collect();
            let b = text.as_bytes();
            let _ = (parse_cpuacct_stat(b), parse_cpu_stat(b), parse_cfs_quota(b), parse_memory_limit(b), parse_memory_stat(b), parse_oom_control(b), parse_blkio(b));
        }

        #[test]
        fn cpu_round_trip(user in any::<u64>(), system in any::<u64>(), t in proptest::array::uniform3(any::<u64>()), bursts in any::<bool>()) {
            prop_assert_eq!(parse_cpuacct_stat(format!("user {user}\nsystem {system}\n").as_bytes()), Ok(CpuacctStat { user_ticks: user, system_ticks: system }));
            let mut text = format!("nr_periods {}\nnr_throttled {}\nthrottled_time {}\n", t[0], t[1], t[2]);
            if bursts {
                text += "nr_bursts 0\nburst_time 0\n";
            }
            prop_assert_eq!(parse_cpu_stat(text.as_bytes()), Ok(CpuStat { nr_periods: Some(t[0]), nr_throttled: Some(t[1]), throttled_time_ns: Some(t[2]) }));
        }

        #[test]
        fn quota_and_limit_round_trip(q in any::<i64>(), l in any::<u64>()) {
            let got = parse_cfs_quota(format!("{q}\n").as_bytes());
            match q {
                -1 => prop_assert_eq!(got, Ok(Limit::Max)),
                q if q < 0 => prop_assert!(got.is_err()),
                q => prop_assert_eq!(got, Ok(Limit::Value(q as u64))),
            }
            let want = if l >= 1 << 62 { Limit::Max } else { Limit::Value(l) };
            prop_assert_eq!(parse_memory_limit(format!("{l}\n").as_bytes()), Ok(want));
        }

        #[test]
        fn memory_round_trip(v in proptest::array::uniform4(any::<u64>()), under in any::<bool>(), kill in proptest::option::of(any::<u64>())) {
            let text = format!("cache {}\nhierarchical_memory_limit 1\ntotal_rss {}\ntotal_inactive_file {}\nswap {}\n", v[0], v[1], v[2], v[3]);
            let s = parse_memory_stat(text.as_bytes()).unwrap();
            prop_assert_eq!((s.cache, s.total_rss, s.total_inactive_file, s.swap), (Some(v[0]), Some(v[1]), Some(v[2]), Some(v[3])));
            let mut text = format!("oom_kill_disable 0\nunder_oom {}\n", under as u8);
            if let Some(k) = kill {
                text += &format!("oom_kill {k}\n");
            }
            prop_assert_eq!(parse_oom_control(text.as_bytes()), Ok(OomControl { under_oom: Some(under), oom_kill: kill }));
        }

        /// Random device lines (ops in any order, devices repeated) against a straightforward model.
        #[test]
        fn blkio_sums(lines in proptest::collection::vec((0u32..3, 0u32..3, prop::sample::select(vec!["Read", "Write", "Discard", "Sync", "Async", "Total", "Flush"]), 0u64..1 << 40), 0..20)) {
            let mut text: String = lines.iter().map(|(ma, mi, op, v)| format!("{ma}:{mi} {op} {v}\n")).collect();
            text += "Total 0\n";
            let mut want: Vec<BlkioDevice> = Vec::new();
            for (ma, mi, op, v) in &lines {
                if !matches!(*op, "Read" | "Write" | "Discard") {
                    continue;
                }
                let i = match want.iter().position(|d| (d.major, d.minor) == (*ma, *mi)) {
                    Some(i) => i,
                    None => {
                        want.push(BlkioDevice { major: *ma, minor: *mi, ..Default::default() });
                        want.len() - 1
                    }
                };
                match *op {
                    "Read" => want[i].read += v,
                    "Write" => want[i].write += v,
                    _ => want[i].discard = Some(want[i].discard.unwrap_or(0) + v),
                }
            }
            prop_assert_eq!(parse_blkio(text.as_bytes()), Ok(want));
        }
    }
}
