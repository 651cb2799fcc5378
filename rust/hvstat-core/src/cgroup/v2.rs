//! cgroup v2 files. Documentation/admin-guide/cgroup-v2.rst. Flat-keyed files (`key value` lines)
//! keep only the keys hvstat reports; unknown keys are ignored, every kept key is an `Option`.
//! `*.pressure` files use [`crate::procfs::pressure::parse`].

use super::Limit;
use crate::parse::{
    dev_field, fields, flat_keyed, lines, lossy, only_line, single_field, split_once, u64_field, u64_of, ParseError,
    ParseResult,
};

/// cgroup.events: whether the cgroup (or a descendant) holds a process, and whether it is frozen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Events {
    pub populated: Option<bool>,
    /// Since Linux 5.2 (the v2 freezer).
    pub frozen: Option<bool>,
}

/// Parses cgroup.events: `populated 0|1` and, since Linux 5.2, `frozen 0|1`; a value other than 0
/// counts as set. Other keys are skipped; a kept key without a number is an error on its line.
pub fn parse_events(buf: &[u8]) -> ParseResult<Events> {
    let mut e = Events::default();
    for (n, line) in lines(buf) {
        let mut f = fields(line);
        let slot = match f.next() {
            Some(b"populated") => &mut e.populated,
            Some(b"frozen") => &mut e.frozen,
            _ => continue,
        };
        *slot = Some(f.next().and_then(u64_of).ok_or_else(|| ParseError::new(n, "expected a number"))? != 0);
    }
    Ok(e)
}

/// cpu.stat. The first three exist without the cpu controller (and on the test machines' hybrid
/// tree); the rest need it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub usage_usec: Option<u64>,
    pub user_usec: Option<u64>,
    pub system_usec: Option<u64>,
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_usec: Option<u64>,
    /// Since Linux 5.14.
    pub nr_bursts: Option<u64>,
    pub burst_usec: Option<u64>,
}

/// Parses cpu.stat: `key value` lines; keys other than the struct's (`core_sched.force_idle_usec`,
/// `nice_usec` on recent kernels, ...) are skipped.
pub fn parse_cpu_stat(buf: &[u8]) -> ParseResult<CpuStat> {
    let mut s = CpuStat::default();
    flat_keyed(buf, &mut s, cpu_stat_key)?;
    Ok(s)
}

fn cpu_stat_key<'a>(s: &'a mut CpuStat, key: &[u8]) -> Option<&'a mut Option<u64>> {
    Some(match key {
        b"usage_usec" => &mut s.usage_usec,
        b"user_usec" => &mut s.user_usec,
        b"system_usec" => &mut s.system_usec,
        b"nr_periods" => &mut s.nr_periods,
        b"nr_throttled" => &mut s.nr_throttled,
        b"throttled_usec" => &mut s.throttled_usec,
        b"nr_bursts" => &mut s.nr_bursts,
        b"burst_usec" => &mut s.burst_usec,
        _ => return None,
    })
}

/// cpu.max: `$MAX $PERIOD`, MAX may be `max`. `quota_usec` is `Limit::Max` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    pub quota_usec: Limit,
    pub period_usec: u64,
}

/// Parses cpu.max, one line of exactly two fields. A period of 0 is refused: the kernel never writes
/// one (it takes 1 ms to 1 s, kernel/sched/core.c), and callers divide by it.
pub fn parse_cpu_max(buf: &[u8]) -> ParseResult<CpuMax> {
    let line = only_line(buf)?;
    let mut f = fields(line);
    let quota_usec = match f.next() {
        Some(b"max") => Limit::Max,
        Some(q) => Limit::Value(u64_field(1, Some(q), "quota")?),
        None => return Err(ParseError::new(1, "empty line")),
    };
    let period_usec = u64_field(1, f.next(), "period")?;
    if period_usec == 0 {
        return Err(ParseError::new(1, "period: 0"));
    }
    if let Some(extra) = f.next() {
        return Err(ParseError::new(1, format!("unexpected {:?} after the period", lossy(extra))));
    }
    Ok(CpuMax { quota_usec, period_usec })
}

/// memory.max, memory.high, memory.swap.max, pids.max: one number or `max`.
pub fn parse_limit(buf: &[u8]) -> ParseResult<Limit> {
    match single_field(buf)? {
        b"max" => Ok(Limit::Max),
        v => Ok(Limit::Value(u64_field(1, Some(v), "limit")?)),
    }
}

/// memory.stat (bytes unless noted).
///
/// Which keys exist depends on the kernel: the file came with the v2 memory controller (Linux 4.5) and
/// has grown in most releases since; `kernel` (all kernel memory) arrived in Linux 5.18. See
/// cgroup-v2.rst, "memory.stat", and memory_stats[] in mm/memcontrol.c for the kernel at hand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    pub anon: Option<u64>,
    pub file: Option<u64>,
    /// Since Linux 5.18.
    pub kernel: Option<u64>,
    pub kernel_stack: Option<u64>,
    pub sock: Option<u64>,
    pub shmem: Option<u64>,
    pub file_mapped: Option<u64>,
    pub file_dirty: Option<u64>,
    pub file_writeback: Option<u64>,
    pub anon_thp: Option<u64>,
    pub active_anon: Option<u64>,
    pub inactive_anon: Option<u64>,
    pub active_file: Option<u64>,
    pub inactive_file: Option<u64>,
    pub unevictable: Option<u64>,
    pub slab: Option<u64>,
    /// Counts, not bytes.
    pub pgfault: Option<u64>,
    pub pgmajfault: Option<u64>,
}

/// Parses memory.stat: `key value` lines (about 60 on 6.x kernels); keys the struct has no field for
/// are skipped unread.
pub fn parse_memory_stat(buf: &[u8]) -> ParseResult<MemoryStat> {
    let mut s = MemoryStat::default();
    flat_keyed(buf, &mut s, memory_stat_key)?;
    Ok(s)
}

fn memory_stat_key<'a>(s: &'a mut MemoryStat, key: &[u8]) -> Option<&'a mut Option<u64>> {
    Some(match key {
        b"anon" => &mut s.anon,
        b"file" => &mut s.file,
        b"kernel" => &mut s.kernel,
        b"kernel_stack" => &mut s.kernel_stack,
        b"sock" => &mut s.sock,
        b"shmem" => &mut s.shmem,
        b"file_mapped" => &mut s.file_mapped,
        b"file_dirty" => &mut s.file_dirty,
        b"file_writeback" => &mut s.file_writeback,
        b"anon_thp" => &mut s.anon_thp,
        b"active_anon" => &mut s.active_anon,
        b"inactive_anon" => &mut s.inactive_anon,
        b"active_file" => &mut s.active_file,
        b"inactive_file" => &mut s.inactive_file,
        b"unevictable" => &mut s.unevictable,
        b"slab" => &mut s.slab,
        b"pgfault" => &mut s.pgfault,
        b"pgmajfault" => &mut s.pgmajfault,
        _ => return None,
    })
}

/// memory.events (counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    pub low: Option<u64>,
    pub high: Option<u64>,
    pub max: Option<u64>,
    pub oom: Option<u64>,
    /// Since Linux 4.13.
    pub oom_kill: Option<u64>,
}

/// Parses memory.events (or memory.events.local, same keys): `key value` lines; later keys
/// (`oom_group_kill` since 5.17, `sock_throttled`) are skipped.
pub fn parse_memory_events(buf: &[u8]) -> ParseResult<MemoryEvents> {
    let mut e = MemoryEvents::default();
    flat_keyed(buf, &mut e, memory_events_key)?;
    Ok(e)
}

fn memory_events_key<'a>(e: &'a mut MemoryEvents, key: &[u8]) -> Option<&'a mut Option<u64>> {
    Some(match key {
        b"low" => &mut e.low,
        b"high" => &mut e.high,
        b"max" => &mut e.max,
        b"oom" => &mut e.oom,
        b"oom_kill" => &mut e.oom_kill,
        _ => return None,
    })
}

/// One line of io.stat: `8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0`.
/// Keys may come in any order, new ones are ignored; dbytes/dios since Linux 5.0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStat {
    pub major: u32,
    pub minor: u32,
    pub rbytes: u64,
    pub wbytes: u64,
    pub rios: u64,
    pub wios: u64,
    pub dbytes: Option<u64>,
    pub dios: Option<u64>,
}

/// Parses io.stat, one [`IoStat`] per line in file order. An empty file (no I/O charged yet) is an
/// empty list. Each line is the device and `key=value` pairs: rbytes, wbytes, rios and wios are
/// required, dbytes and dios optional, and any other key is skipped unread (blk-iocost adds
/// `cost.vrate=100.00` style keys, blk-iolatency `use_delay=0 delay_nsec=0`).
pub fn parse_io_stat(buf: &[u8]) -> ParseResult<Vec<IoStat>> {
    let mut out = Vec::new();
    for (n, line) in lines(buf) {
        let mut f = fields(line);
        let Some(dev) = f.next() else {
            return Err(ParseError::new(n, "empty line"));
        };
        let (major, minor) = dev_field(n, dev)?;
        let mut v: [Option<u64>; 6] = [None; 6];
        for kv in f {
            let Some((k, val)) = split_once(kv, b'=') else {
                return Err(ParseError::new(n, format!("expected key=value, got {:?}", lossy(kv))));
            };
            let Some(i) = IO_KEYS.iter().position(|&known| known == k) else { continue };
            let Some(slot) = v.get_mut(i) else { continue };
            if slot.is_some() {
                return Err(ParseError::new(n, format!("repeated key {:?}", lossy(k))));
            }
            *slot = Some(u64_field(n, Some(val), IO_NAMES.get(i).copied().unwrap_or("value"))?);
        }
        let required = |i: usize| {
            v.get(i).copied().flatten().ok_or_else(|| {
                let name = IO_NAMES.get(i).copied().unwrap_or("value");
                ParseError::new(n, format!("{}: {name}=: missing", lossy(dev)))
            })
        };
        let [_, _, _, _, dbytes, dios] = v;
        out.push(IoStat {
            major,
            minor,
            rbytes: required(0)?,
            wbytes: required(1)?,
            rios: required(2)?,
            wios: required(3)?,
            dbytes,
            dios,
        });
    }
    Ok(out)
}

const IO_KEYS: [&[u8]; 6] = [b"rbytes", b"wbytes", b"rios", b"wios", b"dbytes", b"dios"];
const IO_NAMES: [&str; 6] = ["rbytes", "wbytes", "rios", "wios", "dbytes", "dios"];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// cpu.stat of a cgroup in the controller-less v2 tree of the test VM (Linux 6.18, recorded in
    /// tests/fixtures/hosts/cgroup-hybrid-6.18-runc): only the usage lines, plus nice_usec.
    const CPU_STAT_6_18_NO_CONTROLLER: &str = "usage_usec 1463681\nuser_usec 1415722\nsystem_usec 47958\nnice_usec 0\n";

    /// cpu.stat with the cpu controller on a 6.x kernel, from alumet-dev/alumet
    /// (util-cgroups/benches/parse.rs): core scheduling (5.14) and burst (5.14) keys, no quota set.
    const CPU_STAT_6_X: &str = "usage_usec 12849502000
user_usec 10191064000
system_usec 2658438000
core_sched.force_idle_usec 0
nr_periods 0
nr_throttled 0
throttled_usec 0
nr_bursts 0
burst_usec 0
";

    /// Linux 5.4 (Ubuntu 20.04) with the cpu controller and a quota, hand-written in the format of
    /// cpu_extra_stat_show() in kernel/sched/core.c at v5.4: no burst keys yet.
    const CPU_STAT_5_4: &str = "usage_usec 2184912\nuser_usec 1544271\nsystem_usec 640641\nnr_periods 41\nnr_throttled 7\nthrottled_usec 281635\n";

    #[test]
    fn cpu_stat() {
        let s = parse_cpu_stat(CPU_STAT_6_18_NO_CONTROLLER.as_bytes()).unwrap();
        assert_eq!(
            s,
            CpuStat {
                usage_usec: Some(1463681),
                user_usec: Some(1415722),
                system_usec: Some(47958),
                ..Default::default()
            }
        );
        let s = parse_cpu_stat(CPU_STAT_6_X.as_bytes()).unwrap();
        assert_eq!(s.usage_usec, Some(12849502000));
        assert_eq!(s.usage_usec, Some(s.user_usec.unwrap() + s.system_usec.unwrap()));
        assert_eq!((s.nr_periods, s.nr_throttled, s.throttled_usec), (Some(0), Some(0), Some(0)));
        assert_eq!((s.nr_bursts, s.burst_usec), (Some(0), Some(0)));
        let s = parse_cpu_stat(CPU_STAT_5_4.as_bytes()).unwrap();
        assert_eq!((s.nr_periods, s.nr_throttled, s.throttled_usec), (Some(41), Some(7), Some(281635)));
        assert_eq!((s.nr_bursts, s.burst_usec), (None, None), "burst keys arrived in 5.14");
    }

    #[test]
    fn cpu_stat_errors() {
        assert_eq!(parse_cpu_stat(b"").unwrap_err(), ParseError::new(0, "empty file"));
        let e = parse_cpu_stat(b"usage_usec 1\nuser_usec -3\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "user_usec: not a number: \"-3\""));
        let e = parse_cpu_stat(b"usage_usec 1\nusage_usec 2\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "repeated key \"usage_usec\""));
        assert_eq!(parse_cpu_stat(b"usage_usec 1\n\n").unwrap_err(), ParseError::new(2, "empty line"));
        assert_eq!(parse_cpu_stat(b"usage_usec\n").unwrap_err(), ParseError::new(1, "usage_usec: missing"));
        // A key a later kernel adds, with whatever value, is skipped.
        assert_eq!(parse_cpu_stat(b"usage_usec 5\nfuture_key 1.5 x\n").unwrap().usage_usec, Some(5));
    }

    #[test]
    fn cpu_max() {
        // cgroup-v2.rst: "max 100000" is the default; runc writes "$QUOTA $PERIOD" for a limit.
        assert_eq!(parse_cpu_max(b"max 100000\n"), Ok(CpuMax { quota_usec: Limit::Max, period_usec: 100000 }));
        assert_eq!(
            parse_cpu_max(b"50000 100000\n"),
            Ok(CpuMax { quota_usec: Limit::Value(50000), period_usec: 100000 })
        );
        assert_eq!(parse_cpu_max(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse_cpu_max(b"max\n").unwrap_err(), ParseError::new(1, "period: missing"));
        assert_eq!(parse_cpu_max(b"-1 100000\n").unwrap_err(), ParseError::new(1, "quota: not a number: \"-1\""));
        assert_eq!(parse_cpu_max(b"max 0\n").unwrap_err(), ParseError::new(1, "period: 0"));
        assert_eq!(
            parse_cpu_max(b"max 100000 7\n").unwrap_err(),
            ParseError::new(1, "unexpected \"7\" after the period")
        );
        assert_eq!(parse_cpu_max(b"max 100000\nmax 100000\n").unwrap_err().line, 2);
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(b"max\n"), Ok(Limit::Max));
        assert_eq!(parse_limit(b"536870912\n"), Ok(Limit::Value(536870912)));
        assert_eq!(parse_limit(b"0\n"), Ok(Limit::Value(0)));
        assert_eq!(parse_limit(b"18446744073709551615\n"), Ok(Limit::Value(u64::MAX)));
        assert_eq!(parse_limit(b"-1\n").unwrap_err(), ParseError::new(1, "limit: not a number: \"-1\""));
        assert_eq!(parse_limit(b"Max\n").unwrap_err(), ParseError::new(1, "limit: not a number: \"Max\""));
        assert_eq!(parse_limit(b"1 2\n").unwrap_err(), ParseError::new(1, "expected one value, got \"1 2\""));
        assert_eq!(parse_limit(b"").unwrap_err().line, 0);
    }

    /// memory.stat on 6.8 or later (zswpwb is new in 6.8): alumet-dev/alumet,
    /// util-cgroups/benches/parse.rs.
    const MEMORY_STAT_6_8: &str = "anon 9202163712
file 5392793600
kernel 446648320
kernel_stack 25067520
pagetables 91107328
sec_pagetables 0
percpu 2989240
sock 8192
vmalloc 2240512
shmem 1537892352
zswap 0
zswapped 0
file_mapped 1073401856
file_dirty 40960
file_writeback 0
swapcached 344064
anon_thp 0
file_thp 0
shmem_thp 0
inactive_anon 3904520192
active_anon 6295154688
inactive_file 2995503104
active_file 859398144
unevictable 540581888
slab_reclaimable 255575264
slab_unreclaimable 67153928
slab 322729192
workingset_refault_anon 0
workingset_refault_file 21412
workingset_activate_anon 0
workingset_activate_file 19239
workingset_restore_anon 0
workingset_restore_file 721
workingset_nodereclaim 512
pgscan 410384
pgsteal 388427
pgscan_kswapd 396436
pgscan_direct 13948
pgscan_khugepaged 0
pgsteal_kswapd 374618
pgsteal_direct 13809
pgsteal_khugepaged 0
pgfault 113489463
pgmajfault 20903
pgrefill 264470
pgactivate 1914
pgdeactivate 0
pglazyfree 0
pglazyfreed 0
zswpin 0
zswpout 0
zswpwb 0
thp_fault_alloc 0
thp_collapse_alloc 0
thp_swpout 0
thp_swpout_fallback 0
";

    /// memory.stat of Linux 5.4 (Ubuntu 20.04), in the order of memory_stat_format() in
    /// mm/memcontrol.c at v5.4: no `kernel` (5.18), no percpu, no `*_thp` but anon_thp, workingset
    /// keys without the _anon/_file split (5.9). Hand-written in that format.
    const MEMORY_STAT_5_4: &str = "anon 218234880
file 407986176
kernel_stack 1327104
slab 43913216
sock 237568
shmem 1363968
file_mapped 93450240
file_dirty 270336
file_writeback 0
anon_thp 92274688
inactive_anon 0
active_anon 219598848
inactive_file 231591936
active_file 175030272
unevictable 0
slab_reclaimable 36835328
slab_unreclaimable 7077888
pgfault 1089242
pgmajfault 2871
workingset_refault 0
workingset_activate 0
workingset_nodereclaim 0
pgrefill 0
pgscan 0
pgsteal 0
pgactivate 44781
pgdeactivate 0
pglazyfree 0
pglazyfreed 0
thp_fault_alloc 31
thp_collapse_alloc 14
";

    #[test]
    fn memory_stat() {
        let s = parse_memory_stat(MEMORY_STAT_6_8.as_bytes()).unwrap();
        assert_eq!(s.anon, Some(9202163712));
        assert_eq!(s.file, Some(5392793600));
        assert_eq!(s.kernel, Some(446648320));
        assert_eq!(s.kernel_stack, Some(25067520));
        assert_eq!(s.sock, Some(8192));
        assert_eq!(s.shmem, Some(1537892352));
        assert_eq!(s.file_mapped, Some(1073401856));
        assert_eq!(s.file_dirty, Some(40960));
        assert_eq!(s.file_writeback, Some(0));
        assert_eq!(s.anon_thp, Some(0));
        assert_eq!(s.inactive_anon, Some(3904520192));
        assert_eq!(s.active_anon, Some(6295154688));
        assert_eq!(s.inactive_file, Some(2995503104));
        assert_eq!(s.active_file, Some(859398144));
        assert_eq!(s.unevictable, Some(540581888));
        assert_eq!(s.slab, Some(322729192));
        assert_eq!(s.pgfault, Some(113489463));
        assert_eq!(s.pgmajfault, Some(20903));

        let s = parse_memory_stat(MEMORY_STAT_5_4.as_bytes()).unwrap();
        assert_eq!(s.kernel, None, "kernel arrived in 5.18");
        assert_eq!(s.anon_thp, Some(92274688));
        assert_eq!(s.slab, Some(43913216));
        assert_eq!(s.pgmajfault, Some(2871));
    }

    #[test]
    fn memory_stat_opencontainers_runc() {
        // opencontainers/runc libcontainer/cgroups/fs2/memory_test.go (a 6.x kernel: sec_pagetables,
        // zswap), the head of the file.
        let text = "anon 6121017344\nfile 26672709632\nkernel 1461346304\nkernel_stack 25952256\npagetables 82386944\nsec_pagetables 0\npercpu 294409248\nsock 16384\nvmalloc 2097152\nshmem 6836224\n";
        let s = parse_memory_stat(text.as_bytes()).unwrap();
        assert_eq!(
            (s.anon, s.file, s.kernel, s.sock),
            (Some(6121017344), Some(26672709632), Some(1461346304), Some(16384))
        );
        assert_eq!(s.inactive_file, None, "not in this excerpt");
    }

    #[test]
    fn memory_stat_errors() {
        assert_eq!(parse_memory_stat(b"").unwrap_err(), ParseError::new(0, "empty file"));
        let e = parse_memory_stat(b"anon 1\nfile 2 kB\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "file: unexpected \"kB\" after the value"));
        let e = parse_memory_stat(b"anon 1\nfile 18446744073709551616\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "file: not a number: \"18446744073709551616\""));
    }

    #[test]
    fn events() {
        // Linux 6.8 and 6.18, every cgroup.events of tests/fixtures/hosts (a running guest).
        assert_eq!(parse_events(b"populated 1\nfrozen 0\n"), Ok(Events { populated: Some(true), frozen: Some(false) }));
        // A paused container (`podman pause`, the v2 freezer) that still holds its processes.
        assert_eq!(parse_events(b"populated 1\nfrozen 1\n"), Ok(Events { populated: Some(true), frozen: Some(true) }));
        // Linux 4.19: no v2 freezer, so no frozen line; an emptied cgroup kept by its runtime.
        assert_eq!(parse_events(b"populated 0\n"), Ok(Events { populated: Some(false), frozen: None }));
        // Keys a later kernel might add are skipped; an empty file knows nothing.
        assert_eq!(parse_events(b"populated 1\nfuture 7 x\n").unwrap().populated, Some(true));
        assert_eq!(parse_events(b""), Ok(Events::default()));
        assert_eq!(parse_events(b"populated 1\nfrozen\n"), Err(ParseError::new(2, "expected a number")));
        assert_eq!(parse_events(b"populated yes\n"), Err(ParseError::new(1, "expected a number")));
    }

    #[test]
    fn memory_events() {
        // Linux 6.x: oom_group_kill (5.17) is skipped.
        let e = parse_memory_events(b"low 0\nhigh 12\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n").unwrap();
        assert_eq!(e, MemoryEvents { low: Some(0), high: Some(12), max: Some(3), oom: Some(2), oom_kill: Some(1) });
        // Linux 4.9: no oom_kill (4.13).
        let e = parse_memory_events(b"low 0\nhigh 0\nmax 0\noom 0\n").unwrap();
        assert_eq!(e.oom_kill, None);
        assert_eq!(e.max, Some(0));
        assert_eq!(parse_memory_events(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse_memory_events(b"low 0\nmax x\n").unwrap_err(), ParseError::new(2, "max: not a number: \"x\""));
    }

    #[test]
    fn io_stat() {
        // opencontainers/runc libcontainer/cgroups/fs2/io_test.go (Linux 5.x: dbytes and dios).
        let text = "254:1 rbytes=6901432320 wbytes=14245535744 rios=263278 wios=248603 dbytes=0 dios=0
254:0 rbytes=2702336 wbytes=0 rios=97 wios=0 dbytes=0 dios=0
259:0 rbytes=6911345664 wbytes=14245536256 rios=264538 wios=244914 dbytes=530485248 dios=2";
        let s = parse_io_stat(text.as_bytes()).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[2],
            IoStat {
                major: 259,
                minor: 0,
                rbytes: 6911345664,
                wbytes: 14245536256,
                rios: 264538,
                wios: 244914,
                dbytes: Some(530485248),
                dios: Some(2)
            }
        );
        assert_eq!((s[1].major, s[1].minor, s[1].rbytes, s[1].wios), (254, 0, 2702336, 0));

        // Linux 4.19 (the example in cgroup-v2.rst of that release): no discard keys yet.
        let s = parse_io_stat(b"8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353\n8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252\n").unwrap();
        assert_eq!(
            s[0],
            IoStat {
                major: 8,
                minor: 16,
                rbytes: 1459200,
                wbytes: 314773504,
                rios: 192,
                wios: 353,
                dbytes: None,
                dios: None
            }
        );
        assert_eq!(s[1].rios, 8950);

        // With blk-iocost: cost.* keys, some with a fraction (facebookincubator/below cgroupfs test).
        let s = parse_io_stat(b"13:0 rbytes=135 wbytes=162379 rios=61 wios=81 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=25 cost.wait=38 cost.indebt=64 cost.indelay=0\n").unwrap();
        assert_eq!((s[0].rbytes, s[0].dios), (135, Some(0)));
        // Keys in another order.
        let s = parse_io_stat(b"8:0 wios=4 rios=3 wbytes=2 rbytes=1\n").unwrap();
        assert_eq!((s[0].rbytes, s[0].wbytes, s[0].rios, s[0].wios), (1, 2, 3, 4));
        assert_eq!(parse_io_stat(b"").unwrap(), vec![], "no I/O charged yet");
    }

    #[test]
    fn io_stat_errors() {
        let e = parse_io_stat(b"8:0 rbytes=1 wbytes=2 rios=3\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "8:0: wios=: missing"));
        let e =
            parse_io_stat(b"8:0 rbytes=1 wbytes=2 rios=3 wios=4\n8:16 rbytes=1 wbytes=x rios=3 wios=4\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "wbytes: not a number: \"x\""));
        let e = parse_io_stat(b"sda rbytes=1 wbytes=2 rios=3 wios=4\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "expected major:minor, got \"sda\""));
        let e = parse_io_stat(b"8:0 rbytes=1 wbytes=2 rios 3 wios=4\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "expected key=value, got \"rios\""));
        let e = parse_io_stat(b"8:0 rbytes=1 rbytes=1 wbytes=2 rios=3 wios=4\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "repeated key \"rbytes\""));
        assert_eq!(
            parse_io_stat(b"8:0 rbytes=1 wbytes=2 rios=3 wios=4\n\n").unwrap_err(),
            ParseError::new(2, "empty line")
        );
    }

    fn limit_text(l: Limit) -> String {
        match l {
            Limit::Max => "max".into(),
            Limit::Value(v) => v.to_string(),
        }
    }

    fn any_limit() -> impl Strategy<Value = Limit> {
        prop_oneof![Just(Limit::Max), any::<u64>().prop_map(Limit::Value)]
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_cpu_stat(&buf);
            let _ = parse_cpu_max(&buf);
            let _ = parse_limit(&buf);
            let _ = parse_memory_stat(&buf);
            let _ = parse_memory_events(&buf);
            let _ = parse_io_stat(&buf);
            let _ = parse_events(&buf);
        }

        #[test]
        fn never_panics_on_plausible_lines(lines in proptest::collection::vec(proptest::collection::vec(prop::sample::select(vec!["8:0", "rbytes=1", "wios=", "=", "max", "100000", "usage_usec", "18446744073709551616", "dbytes=18446744073709551615", ":", "-1"]), 0..8), 0..6)) {
            let text: String = lines.iter().map(|l| format!("{}\n", l.join(" "))).collect();
            let b = text.as_bytes();
            let (_, _, _, _, _, _) = (parse_cpu_stat(b), parse_cpu_max(b), parse_limit(b), parse_memory_stat(b), parse_memory_events(b), parse_io_stat(b));
        }

        #[test]
        fn cpu_stat_round_trip(v in proptest::array::uniform8(proptest::option::of(any::<u64>())), extra in proptest::collection::vec(("[a-z_.]{1,20}", "[ -~]{0,12}"), 0..4)) {
            let keys = ["usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec", "nr_bursts", "burst_usec"];
            let mut text = String::new();
            for (k, x) in keys.iter().zip(v) {
                if let Some(x) = x {
                    text += &format!("{k} {x}\n");
                }
            }
            for (k, val) in &extra {
                if !keys.contains(&k.as_str()) {
                    text += &format!("{k} {val}\n");
                }
            }
            prop_assume!(!text.is_empty());
            let s = parse_cpu_stat(text.as_bytes()).unwrap();
            prop_assert_eq!([s.usage_usec, s.user_usec, s.system_usec, s.nr_periods, s.nr_throttled, s.throttled_usec, s.nr_bursts, s.burst_usec], v);
        }

        #[test]
        fn cpu_max_round_trip(quota in any_limit(), period in 1u64..) {
            let s = parse_cpu_max(format!("{} {period}\n", limit_text(quota)).as_bytes()).unwrap();
            prop_assert_eq!(s, CpuMax { quota_usec: quota, period_usec: period });
        }

        #[test]
        fn limit_round_trip(l in any_limit()) {
            prop_assert_eq!(parse_limit(format!("{}\n", limit_text(l)).as_bytes()), Ok(l));
        }

        #[test]
        fn memory_round_trip(anon in any::<u64>(), inactive_file in any::<u64>(), oom_kill in proptest::option::of(any::<u64>()), max in any::<u64>()) {
            let s = parse_memory_stat(format!("anon {anon}\nfile_thp 0\ninactive_file {inactive_file}\n").as_bytes()).unwrap();
            prop_assert_eq!(s, MemoryStat { anon: Some(anon), inactive_file: Some(inactive_file), ..Default::default() });
            let mut text = format!("low 0\nhigh 0\nmax {max}\noom 0\n");
            if let Some(k) = oom_kill {
                text += &format!("oom_kill {k}\noom_group_kill 0\n");
            }
            let e = parse_memory_events(text.as_bytes()).unwrap();
            prop_assert_eq!((e.max, e.oom_kill), (Some(max), oom_kill));
        }

        #[test]
        fn io_stat_round_trip(devs in proptest::collection::vec((any::<u32>(), any::<u32>(), proptest::array::uniform4(any::<u64>()), proptest::option::of((any::<u64>(), any::<u64>()))), 0..6)) {
            let text: String = devs.iter().map(|(ma, mi, [rb, wb, ri, wi], d)| {
                let disc = d.map(|(db, di)| format!(" dbytes={db} dios={di}")).unwrap_or_default();
                format!("{ma}:{mi} rbytes={rb} wbytes={wb} rios={ri} wios={wi}{disc}\n")
            }).collect();
            let got = parse_io_stat(text.as_bytes()).unwrap();
            prop_assert_eq!(got.len(), devs.len());
            for (s, (ma, mi, [rb, wb, ri, wi], d)) in got.iter().zip(&devs) {
                prop_assert_eq!(*s, IoStat { major: *ma, minor: *mi, rbytes: *rb, wbytes: *wb, rios: *ri, wios: *wi, dbytes: d.map(|d| d.0), dios: d.map(|d| d.1) });
            }
        }
    }
}
