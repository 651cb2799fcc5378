//! /proc/diskstats. Documentation/admin-guide/iostats.rst. Lines have 14 fields (major, minor, name and
//! 11 counters), 18 (plus 4 discard counters, since Linux 4.18) or 20 (plus 2 flush counters, since
//! Linux 5.5). Sectors are always 512 bytes here, whatever the device's sector size.

use crate::parse::{ParseError, ParseResult};

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

pub fn parse(buf: &[u8]) -> ParseResult<Vec<DiskStat>> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
