//! /proc/uptime: seconds since boot and summed idle seconds of all CPUs, `350735.47 234388.90`.

use crate::parse::{f64_field, fields, only_line, ParseResult};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Uptime {
    pub uptime_secs: f64,
    pub idle_secs: f64,
}

/// Parses the one line; columns after the second are ignored.
pub fn parse(buf: &[u8]) -> ParseResult<Uptime> {
    let mut f = fields(only_line(buf)?);
    let uptime_secs = f64_field(1, f.next(), "uptime")?;
    let idle_secs = f64_field(1, f.next(), "idle")?;
    Ok(Uptime { uptime_secs, idle_secs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::ParseError;
    use proptest::prelude::*;

    #[test]
    fn real_files() {
        // Linux 6.18: idle is summed over CPUs, so on an idle 2-vCPU VM it exceeds uptime.
        assert_eq!(parse(b"338.71 574.83\n").unwrap(), Uptime { uptime_secs: 338.71, idle_secs: 574.83 });
        // Linux 3.10, 211 days up.
        assert_eq!(parse(b"18284417.05 834291845.12\n").unwrap().uptime_secs, 18284417.05);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse(b"338.71\n").unwrap_err(), ParseError::new(1, "idle: missing"));
        assert_eq!(parse(b"1e3 2\n").unwrap_err(), ParseError::new(1, "uptime: not a decimal: \"1e3\""));
        assert_eq!(parse(b"1 2\n3 4\n").unwrap_err().line, 2);
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse(&buf);
        }

        #[test]
        fn round_trip(up in 0u64..1 << 40, idle in 0u64..1 << 44) {
            let text = format!("{}.{:02} {}.{:02}\n", up / 100, up % 100, idle / 100, idle % 100);
            let got = parse(text.as_bytes()).unwrap();
            prop_assert!((got.uptime_secs * 100.0 - up as f64).abs() < 1e-3 * (1.0 + up as f64 / 1e9));
            prop_assert!((got.idle_secs * 100.0 - idle as f64).abs() < 1e-3 * (1.0 + idle as f64 / 1e9));
        }
    }
}
