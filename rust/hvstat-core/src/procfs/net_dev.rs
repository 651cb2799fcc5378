//! /proc/net/dev (and /proc/<pid>/net/dev, the same format seen from that process's namespace).
//! Two header lines, then `name: 8 receive counters 8 transmit counters`.

use crate::parse::{ParseError, ParseResult};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub rx_fifo: u64,
    pub rx_frame: u64,
    pub rx_compressed: u64,
    pub rx_multicast: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    pub tx_fifo: u64,
    pub tx_collisions: u64,
    pub tx_carrier: u64,
    pub tx_compressed: u64,
}

pub fn parse(buf: &[u8]) -> ParseResult<Vec<NetDev>> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
