//! /proc/uptime: seconds since boot and summed idle seconds of all CPUs, `350735.47 234388.90`.

use crate::parse::{ParseError, ParseResult};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Uptime {
    pub uptime_secs: f64,
    pub idle_secs: f64,
}

pub fn parse(buf: &[u8]) -> ParseResult<Uptime> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
