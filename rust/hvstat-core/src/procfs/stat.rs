//! /proc/stat: CPU time per mode (in USER_HZ ticks), context switches, interrupts, process counts.
//! Format: Documentation/filesystems/proc.rst, "1.7 Miscellaneous kernel statistics in /proc/stat".

use crate::parse::{ParseError, ParseResult};

/// Cumulative CPU time of one CPU (or of all, for the `cpu` line), in USER_HZ ticks (100 per second on
/// every Linux architecture). `guest` and `guest_nice` are already included in `user` and `nice`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    /// Since Linux 2.5.41.
    pub iowait: Option<u64>,
    /// Since Linux 2.6.0.
    pub irq: Option<u64>,
    /// Since Linux 2.6.0.
    pub softirq: Option<u64>,
    /// Since Linux 2.6.11.
    pub steal: Option<u64>,
    /// Since Linux 2.6.24.
    pub guest: Option<u64>,
    /// Since Linux 2.6.33.
    pub guest_nice: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// The aggregate `cpu` line.
    pub total: CpuTicks,
    /// The `cpuN` lines as (N, ticks), in file order. Offline CPUs have no line.
    pub cpus: Vec<(u32, CpuTicks)>,
    /// `ctxt`: context switches since boot.
    pub context_switches: Option<u64>,
    /// First number of the `intr` line: interrupts serviced since boot.
    pub interrupts: Option<u64>,
    /// `btime`: boot time, unix seconds.
    pub boot_time_secs: Option<u64>,
    /// `processes`: forks since boot.
    pub forks: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

pub fn parse(buf: &[u8]) -> ParseResult<Stat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
