//! /sys/class/thermal/thermal_zone*/{type,temp}. Documentation/driver-api/thermal/sysfs-api.rst:
//! `temp` is in millidegrees Celsius and may be negative; reading it can fail (EIO, ENODATA) for a
//! sensor that is off.

use crate::parse::{i64_of, lossy, name_of, ParseError, ParseResult};

/// `type`: one line of text, e.g. `x86_pkg_temp`. The trailing newline is removed; an empty name or a
/// second line is an error. Also serves hwmon `name` and `tempN_label`.
pub fn parse_type(buf: &[u8]) -> ParseResult<String> {
    let text = buf.strip_suffix(b"\n").unwrap_or(buf);
    if text.is_empty() {
        return Err(ParseError::new(1, "empty name"));
    }
    if text.contains(&b'\n') {
        return Err(ParseError::new(2, format!("expected one line, got {:?}", lossy(text))));
    }
    Ok(name_of(text))
}

/// `temp`: millidegrees Celsius -> degrees Celsius. Also serves hwmon `tempN_input`.
pub fn parse_temp_celsius(buf: &[u8]) -> ParseResult<f64> {
    let text = buf.strip_suffix(b"\n").unwrap_or(buf);
    let milli = i64_of(text.trim_ascii())
        .ok_or_else(|| ParseError::new(1, format!("expected millidegrees, got {:?}", lossy(text))))?;
    // Exact for any real reading (|v| < 2^53); huge nonsense values still give a finite f64.
    Ok(milli as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn types() {
        assert_eq!(parse_type(b"x86_pkg_temp\n").unwrap(), "x86_pkg_temp");
        assert_eq!(parse_type(b"acpitz\n").unwrap(), "acpitz");
        // hwmon labels can contain spaces.
        assert_eq!(parse_type(b"Package id 0\n").unwrap(), "Package id 0");
        assert_eq!(parse_type(b"iwlwifi_1").unwrap(), "iwlwifi_1");
        assert_eq!(parse_type(b"\n").unwrap_err(), ParseError::new(1, "empty name"));
        assert_eq!(parse_type(b"").unwrap_err(), ParseError::new(1, "empty name"));
        assert_eq!(parse_type(b"a\nb\n").unwrap_err().line, 2);
    }

    #[test]
    fn temperatures() {
        assert_eq!(parse_temp_celsius(b"45000\n").unwrap(), 45.0);
        assert_eq!(parse_temp_celsius(b"27800\n").unwrap(), 27.8);
        assert_eq!(parse_temp_celsius(b"-2500\n").unwrap(), -2.5);
        assert_eq!(parse_temp_celsius(b"0\n").unwrap(), 0.0);
        assert_eq!(parse_temp_celsius(b"-9223372036854775808\n").unwrap(), -9223372036854775.808);
        assert_eq!(parse_temp_celsius(b"").unwrap_err(), ParseError::new(1, "expected millidegrees, got \"\""));
        assert_eq!(parse_temp_celsius(b"45.5\n").unwrap_err().msg, "expected millidegrees, got \"45.5\"");
        assert!(parse_temp_celsius(b"+45000\n").is_err());
        assert!(parse_temp_celsius(b"45000\n1\n").is_err());
        assert!(parse_temp_celsius(b"9223372036854775808\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_type(&buf);
            if let Ok(t) = parse_temp_celsius(&buf) {
                prop_assert!(t.is_finite());
            }
        }

        #[test]
        fn round_trip(milli in any::<i64>(), name in "[ -~]{1,40}") {
            let t = parse_temp_celsius(format!("{milli}\n").as_bytes()).unwrap();
            prop_assert_eq!(t, milli as f64 / 1000.0);
            prop_assert_eq!(parse_type(format!("{name}\n").as_bytes()).unwrap(), name);
        }
    }
}
