//! /proc/<pid>/mountinfo. proc(5): `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
//! Optional fields run up to the lone `-`. Paths escape space, tab, newline and backslash as octal
//! (`\040`); they are unescaped here.

use crate::parse::{ParseError, ParseResult};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    pub mount_id: u64,
    pub parent_id: u64,
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its filesystem.
    pub root: String,
    pub mount_point: String,
    pub mount_options: String,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

pub fn parse(buf: &[u8]) -> ParseResult<Vec<Mount>> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
