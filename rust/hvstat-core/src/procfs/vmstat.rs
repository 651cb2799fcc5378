//! /proc/vmstat: `key value` lines; only the counters hvstat reports are kept, unknown keys ignored.

use crate::parse::{ParseError, ParseResult};

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

pub fn parse(buf: &[u8]) -> ParseResult<VmStat> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
