//! Parsers for files under /proc. One module per kernel file; each exposes `parse(&[u8])`.
//! Optional columns that only newer kernels write are `Option`, documented with the kernel version.

pub mod diskstats;
pub mod fdinfo;
pub mod loadavg;
pub mod meminfo;
pub mod mountinfo;
pub mod net_dev;
pub mod pid;
pub mod pressure;
pub mod stat;
pub mod uptime;
pub mod vmstat;
