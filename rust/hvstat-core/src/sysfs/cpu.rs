//! /sys/devices/system/cpu/online: a CPU list such as `0-3,8,10-11` (Documentation/admin-guide/
//! cputopology.rst). Used to express a guest's CPU time as a share of the host.

use crate::parse::{lossy, only_line, u64_of, ParseError, ParseResult};

/// The number of CPUs in a list like `0-3,8`.
pub fn parse_cpu_count(buf: &[u8]) -> ParseResult<u64> {
    let line = only_line(buf)?;
    let mut n: u64 = 0;
    for part in line.split(|&b| b == b',') {
        let bad = || ParseError::new(1, format!("bad CPU list item {:?}", lossy(part)));
        let (lo, hi) = match part.iter().position(|&b| b == b'-') {
            Some(i) => (u64_of(&part[..i]).ok_or_else(bad)?, u64_of(&part[i + 1..]).ok_or_else(bad)?),
            None => {
                let v = u64_of(part).ok_or_else(bad)?;
                (v, v)
            }
        };
        if hi < lo {
            return Err(bad());
        }
        n = (hi - lo).checked_add(1).and_then(|k| n.checked_add(k)).ok_or_else(bad)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lists() {
        assert_eq!(parse_cpu_count(b"0-1\n"), Ok(2));
        assert_eq!(parse_cpu_count(b"0\n"), Ok(1));
        assert_eq!(parse_cpu_count(b"0-3,8,10-11\n"), Ok(7));
        assert!(parse_cpu_count(b"3-1\n").is_err());
        assert!(parse_cpu_count(b"\n").is_err());
        assert!(parse_cpu_count(b"0-18446744073709551615,0\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_cpu_count(&b);
        }
    }
}
