//! /proc/loadavg: `0.20 0.18 0.12 1/80 11206`.

use crate::parse::{ParseError, ParseResult};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAvg {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Currently runnable scheduling entities (the number before the slash).
    pub runnable: u64,
    /// Scheduling entities (threads) that exist (the number after the slash).
    pub threads: u64,
    pub last_pid: u64,
}

pub fn parse(buf: &[u8]) -> ParseResult<LoadAvg> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
