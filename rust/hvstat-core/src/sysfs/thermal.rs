//! /sys/class/thermal/thermal_zone*/{type,temp}. Documentation/driver-api/thermal/sysfs-api.rst:
//! `temp` is in millidegrees Celsius and may be negative; reading it can fail (EIO, ENODATA) for a
//! sensor that is off.

use crate::parse::{ParseError, ParseResult};

/// `type`: one line of text, e.g. `x86_pkg_temp`.
pub fn parse_type(buf: &[u8]) -> ParseResult<String> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}

/// `temp`: millidegrees Celsius -> degrees Celsius.
pub fn parse_temp_celsius(buf: &[u8]) -> ParseResult<f64> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
