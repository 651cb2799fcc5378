//! cgroup v2 files. Documentation/admin-guide/cgroup-v2.rst. Flat-keyed files (`key value` lines)
//! keep only the keys hvstat reports; unknown keys are ignored, every kept key is an `Option`.
//! `*.pressure` files use [`crate::procfs::pressure::parse`].

use super::Limit;
use crate::parse::{ParseError, ParseResult};

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

pub fn parse_cpu_stat(buf: &[u8]) -> ParseResult<CpuStat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// cpu.max: `$MAX $PERIOD`, MAX may be `max`. `quota_usec` is `Limit::Max` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    pub quota_usec: Limit,
    pub period_usec: u64,
}

pub fn parse_cpu_max(buf: &[u8]) -> ParseResult<CpuMax> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// memory.max, memory.high, memory.swap.max, pids.max: one number or `max`.
pub fn parse_limit(buf: &[u8]) -> ParseResult<Limit> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// memory.stat (bytes unless noted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    pub anon: Option<u64>,
    pub file: Option<u64>,
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

pub fn parse_memory_stat(buf: &[u8]) -> ParseResult<MemoryStat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
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

pub fn parse_memory_events(buf: &[u8]) -> ParseResult<MemoryEvents> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
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

pub fn parse_io_stat(buf: &[u8]) -> ParseResult<Vec<IoStat>> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
