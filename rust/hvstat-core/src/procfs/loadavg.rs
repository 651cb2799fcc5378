//! /proc/loadavg: `0.20 0.18 0.12 1/80 11206`.

use crate::parse::{f64_field, fields, lossy, only_line, split_once, u64_field, ParseError, ParseResult};

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

/// Parses the one line; columns after the fifth are ignored.
pub fn parse(buf: &[u8]) -> ParseResult<LoadAvg> {
    let line = only_line(buf)?;
    let mut f = fields(line);
    let load1 = f64_field(1, f.next(), "load1")?;
    let load5 = f64_field(1, f.next(), "load5")?;
    let load15 = f64_field(1, f.next(), "load15")?;
    let tasks = f.next().ok_or_else(|| ParseError::new(1, "runnable/threads: missing"))?;
    let (runnable, threads) = match split_once(tasks, b'/') {
        Some((r, t)) => (u64_field(1, Some(r), "runnable")?, u64_field(1, Some(t), "threads")?),
        None => return Err(ParseError::new(1, format!("runnable/threads: expected N/M, got {:?}", lossy(tasks)))),
    };
    let last_pid = u64_field(1, f.next(), "last pid")?;
    Ok(LoadAvg { load1, load5, load15, runnable, threads, last_pid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn real_files() {
        // Linux 6.18, idle 2-vCPU VM.
        let l = parse(b"0.25 0.23 0.10 1/79 5073\n").unwrap();
        assert_eq!(l, LoadAvg { load1: 0.25, load5: 0.23, load15: 0.10, runnable: 1, threads: 79, last_pid: 5073 });
        // Linux 3.10 (CentOS 7), a busy 48-thread host.
        let l = parse(b"31.84 29.70 27.95 36/2119 18346\n").unwrap();
        assert_eq!((l.load1, l.runnable, l.threads, l.last_pid), (31.84, 36, 2119, 18346));
        // Linux 5.10, pid_max raised to 4194304.
        let l = parse(b"0.00 0.01 0.05 2/1251 3988730\n").unwrap();
        assert_eq!(l.last_pid, 3988730);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse(b"0.1 0.2\n").unwrap_err(), ParseError::new(1, "load15: missing"));
        assert_eq!(parse(b"0.1 0.2 nan 1/2 3\n").unwrap_err(), ParseError::new(1, "load15: not a decimal: \"nan\""));
        assert_eq!(
            parse(b"0.1 0.2 0.3 12 3\n").unwrap_err(),
            ParseError::new(1, "runnable/threads: expected N/M, got \"12\"")
        );
        assert_eq!(parse(b"0.1 0.2 0.3\n").unwrap_err(), ParseError::new(1, "runnable/threads: missing"));
        assert_eq!(parse(b"0.1 0.2 0.3 1/x 3\n").unwrap_err(), ParseError::new(1, "threads: not a number: \"x\""));
        assert_eq!(parse(b"0.1 0.2 0.3 1/2\n").unwrap_err(), ParseError::new(1, "last pid: missing"));
        assert_eq!(parse(b"0.1 0.2 0.3 1/2 3\n4\n").unwrap_err().line, 2);
        assert!(parse(b"-0.1 0.2 0.3 1/2 3\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse(&buf);
        }

        #[test]
        fn round_trip(l in proptest::array::uniform3(0u32..100_000), r in any::<u64>(), t in any::<u64>(), p in any::<u64>()) {
            // The kernel prints loads with two decimals (LOAD_INT/LOAD_FRAC in fs/proc/loadavg.c).
            let text = format!("{}.{:02} {}.{:02} {}.{:02} {r}/{t} {p}\n", l[0] / 100, l[0] % 100, l[1] / 100, l[1] % 100, l[2] / 100, l[2] % 100);
            let got = parse(text.as_bytes()).unwrap();
            prop_assert!((got.load1 - l[0] as f64 / 100.0).abs() < 1e-9);
            prop_assert!((got.load15 - l[2] as f64 / 100.0).abs() < 1e-9);
            prop_assert_eq!((got.runnable, got.threads, got.last_pid), (r, t, p));
        }
    }
}
