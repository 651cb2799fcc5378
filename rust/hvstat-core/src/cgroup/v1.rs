//! cgroup v1 files. Documentation/admin-guide/cgroup-v1/{cpuacct,memory,blkio-controller,pids}.rst
//! and Documentation/scheduler/sched-bwc.rst for cfs quota and cpu.stat.

use super::Limit;
use crate::parse::{ParseError, ParseResult};

/// cpuacct.stat: `user N` and `system N` in USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuacctStat {
    pub user_ticks: u64,
    pub system_ticks: u64,
}

pub fn parse_cpuacct_stat(buf: &[u8]) -> ParseResult<CpuacctStat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// cpu.stat of the v1 cpu controller: `nr_periods`, `nr_throttled`, `throttled_time` (ns), and
/// since Linux 5.14 `nr_bursts`, `burst_time` (ns). Unknown keys ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_time_ns: Option<u64>,
}

pub fn parse_cpu_stat(buf: &[u8]) -> ParseResult<CpuStat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// cpu.cfs_quota_us: a signed number of microseconds; -1 means no limit (`Limit::Max`).
pub fn parse_cfs_quota(buf: &[u8]) -> ParseResult<Limit> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// memory.limit_in_bytes / memory.memsw.limit_in_bytes: a byte count where "no limit" is written
/// as PAGE_COUNTER_MAX × page size (9223372036854771712 with 4 KiB pages; larger pages give other
/// values). Any value >= 2^62 is taken as `Limit::Max`: no machine has 4 EiB of memory.
pub fn parse_memory_limit(buf: &[u8]) -> ParseResult<Limit> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

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

pub fn parse_memory_stat(buf: &[u8]) -> ParseResult<MemoryStat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// memory.oom_control: `oom_kill_disable 0`, `under_oom 0`, and since Linux 4.13 `oom_kill N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomControl {
    pub under_oom: Option<bool>,
    pub oom_kill: Option<u64>,
}

pub fn parse_oom_control(buf: &[u8]) -> ParseResult<OomControl> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
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

pub fn parse_blkio(buf: &[u8]) -> ParseResult<Vec<BlkioDevice>> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
