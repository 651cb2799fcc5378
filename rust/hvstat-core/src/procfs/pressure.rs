//! /proc/pressure/{cpu,memory,io} and cgroup v2 `*.pressure` (same format).
//! Documentation/accounting/psi.rst. `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` then a `full`
//! line; /proc/pressure/cpu has no `full` line before Linux 5.13 (node_exporter issue #3051).

use crate::parse::{ParseError, ParseResult};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiLine {
    /// Percent of wall time stalled, averaged over 10, 60 and 300 seconds.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Cumulative stall time in microseconds.
    pub total_usec: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub some: PsiLine,
    /// Absent for cpu before Linux 5.13.
    pub full: Option<PsiLine>,
}

pub fn parse(buf: &[u8]) -> ParseResult<Pressure> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
