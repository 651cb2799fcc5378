//! Per-process files: /proc/<pid>/{stat,status,io,schedstat,cgroup}, /proc/<pid>/task/<tid>/stat,
//! cgroup.procs, and the namespace link text `net:[4026531840]`. proc(5).

use crate::parse::{ParseError, ParseResult};

/// /proc/<pid>/stat (and task/<tid>/stat). `comm` may contain spaces and parentheses, so it is
/// everything between the first `(` and the LAST `)`. Times in USER_HZ ticks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidStat {
    pub pid: u32,
    pub comm: String,
    /// One letter: R, S, D, Z, T, t, X, I, ...
    pub state: char,
    pub ppid: u32,
    pub minflt: u64,
    pub majflt: u64,
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub num_threads: u64,
    /// Ticks after boot.
    pub starttime_ticks: u64,
    pub vsize_bytes: u64,
    /// Resident pages.
    pub rss_pages: u64,
    /// Field 39, since Linux 2.2.8.
    pub processor: Option<u32>,
    /// Field 42 (ticks), since Linux 2.6.18.
    pub delayacct_blkio_ticks: Option<u64>,
    /// Field 43 (ticks), since Linux 2.6.24.
    pub guest_time_ticks: Option<u64>,
}

pub fn parse_stat(buf: &[u8]) -> ParseResult<PidStat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// The keys of /proc/<pid>/status hvstat uses; `kB` values converted to bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidStatus {
    pub name: Option<String>,
    pub tgid: Option<u32>,
    pub vm_rss_bytes: Option<u64>,
    pub vm_hwm_bytes: Option<u64>,
    pub vm_swap_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub voluntary_ctxt_switches: Option<u64>,
    pub nonvoluntary_ctxt_switches: Option<u64>,
}

pub fn parse_status(buf: &[u8]) -> ParseResult<PidStatus> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// /proc/<pid>/io (needs ptrace access; root reads all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidIo {
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub cancelled_write_bytes: u64,
}

pub fn parse_io(buf: &[u8]) -> ParseResult<PidIo> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// /proc/<pid>/schedstat and task/<tid>/schedstat: `run_ns wait_ns timeslices` (Documentation/
/// scheduler/sched-stats.rst). Wait time is the run-queue delay: for a vCPU thread, the host's view
/// of steal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedStat {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub timeslices: u64,
}

pub fn parse_schedstat(buf: &[u8]) -> ParseResult<SchedStat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// cgroup.procs / cgroup.threads / tasks: one pid per line (possibly empty).
pub fn parse_pid_list(buf: &[u8]) -> ParseResult<Vec<u32>> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// One line of /proc/<pid>/cgroup: `hierarchy-ID:controller-list:cgroup-path`. v2 is `0::/path`;
/// v1 lines list controllers (`4:memory:/docker/abc`, `1:name=systemd:/init.scope`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMembership {
    pub hierarchy_id: u32,
    /// Empty for v2.
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_cgroup(buf: &[u8]) -> ParseResult<Vec<CgroupMembership>> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// The target of a /proc/<pid>/ns/<kind> link, `net:[4026531840]` -> 4026531840 (the inode).
pub fn parse_ns_link(text: &str) -> Option<u64> {
    let _ = text;
    None
}
