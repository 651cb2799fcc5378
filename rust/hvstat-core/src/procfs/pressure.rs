//! /proc/pressure/{cpu,memory,io} and cgroup v2 `*.pressure` (same format).
//! Documentation/accounting/psi.rst. `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` then a `full`
//! line; /proc/pressure/cpu has no `full` line before Linux 5.13 (node_exporter issue #3051).

use crate::parse::{f64_field, fields, lines, lossy, split_once, u64_field, ParseError, ParseResult};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiLine {
    /// Percent of wall time stalled, averaged over 10, 60 and 300 seconds.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Cumulative stall time in microseconds.
    pub total_usec: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub some: PsiLine,
    /// Absent for cpu before Linux 5.13.
    pub full: Option<PsiLine>,
}

/// Parses the whole file: a `some` line is required, a `full` line optional. Lines of another kind are
/// skipped; in a `some`/`full` line all four keys are required and unknown keys are skipped.
pub fn parse(buf: &[u8]) -> ParseResult<Pressure> {
    let mut some = None;
    let mut full = None;
    for (n, line) in lines(buf) {
        let mut f = fields(line);
        let slot = match f.next() {
            Some(b"some") => &mut some,
            Some(b"full") => &mut full,
            _ => continue,
        };
        if slot.is_some() {
            return Err(ParseError::new(n, format!("repeated line: {:?}", lossy(line))));
        }
        *slot = Some(psi_line(n, f)?);
    }
    let some = some.ok_or_else(|| ParseError::new(0, "no \"some\" line"))?;
    Ok(Pressure { some, full })
}

fn psi_line<'a>(n: usize, f: impl Iterator<Item = &'a [u8]>) -> ParseResult<PsiLine> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for kv in f {
        let Some((k, v)) = split_once(kv, b'=') else {
            return Err(ParseError::new(n, format!("expected key=value, got {:?}", lossy(kv))));
        };
        match k {
            b"avg10" => avg10 = Some(f64_field(n, Some(v), "avg10")?),
            b"avg60" => avg60 = Some(f64_field(n, Some(v), "avg60")?),
            b"avg300" => avg300 = Some(f64_field(n, Some(v), "avg300")?),
            b"total" => total = Some(u64_field(n, Some(v), "total")?),
            _ => {}
        }
    }
    let missing = |what: &str| ParseError::new(n, format!("{what}=: missing"));
    Ok(PsiLine {
        avg10: avg10.ok_or_else(|| missing("avg10"))?,
        avg60: avg60.ok_or_else(|| missing("avg60"))?,
        avg300: avg300.ok_or_else(|| missing("avg300"))?,
        total_usec: total.ok_or_else(|| missing("total"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn linux_6_18() {
        // /proc/pressure/cpu: since 5.13 a full line, all zeros at the system level.
        let p = parse(
            b"some avg10=0.55 avg60=1.34 avg300=1.15 total=6742400\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert_eq!(p.some, PsiLine { avg10: 0.55, avg60: 1.34, avg300: 1.15, total_usec: 6742400 });
        assert_eq!(p.full, Some(PsiLine::default()));
        // /proc/pressure/memory.
        let p = parse(b"some avg10=0.23 avg60=0.27 avg300=0.40 total=3130539\nfull avg10=0.23 avg60=0.24 avg300=0.29 total=2456693\n").unwrap();
        assert_eq!(p.full.unwrap().total_usec, 2456693);
    }

    #[test]
    fn linux_5_10_cpu_has_no_full_line() {
        // Debian 11, 5.10.0-28-amd64, /proc/pressure/cpu (node_exporter issue #3051).
        let p = parse(b"some avg10=2.04 avg60=1.56 avg300=1.21 total=813246515\n").unwrap();
        assert_eq!(p.some.avg10, 2.04);
        assert_eq!(p.full, None);
    }

    #[test]
    fn cgroup_v2_file() {
        // /sys/fs/cgroup/machine.slice/.../io.pressure on 6.8.
        let p = parse(b"some avg10=12.50 avg60=8.02 avg300=3.33 total=98237461\nfull avg10=11.92 avg60=7.71 avg300=3.18 total=93381522\n").unwrap();
        assert_eq!(p.full.unwrap().avg10, 11.92);
        assert_eq!(p.some.avg300, 3.33);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::new(0, "no \"some\" line"));
        assert_eq!(parse(b"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap_err().line, 0);
        let e = parse(b"some avg10=0.00 avg60=0.00 total=0\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "avg300=: missing"));
        let e = parse(b"some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "total: not a number: \"-1\""));
        let e = parse(b"some avg10=0.00 avg60 avg300=0.00 total=0\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "expected key=value, got \"avg60\""));
        let l = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse(format!("{l}{l}").as_bytes()).unwrap_err().line, 2);
        // A key a future kernel might add is skipped.
        assert!(parse(b"some avg10=0.00 avg60=0.00 avg300=0.00 avg900=0.00 total=0\n").is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&buf);
        }

        #[test]
        fn round_trip(a in proptest::array::uniform6(0u32..10_000), t in proptest::array::uniform2(any::<u64>()), with_full in any::<bool>()) {
            let d = |v: u32| format!("{}.{:02}", v / 100, v % 100);
            let mut text = format!("some avg10={} avg60={} avg300={} total={}\n", d(a[0]), d(a[1]), d(a[2]), t[0]);
            if with_full {
                text += &format!("full avg10={} avg60={} avg300={} total={}\n", d(a[3]), d(a[4]), d(a[5]), t[1]);
            }
            let p = parse(text.as_bytes()).unwrap();
            prop_assert!((p.some.avg60 - a[1] as f64 / 100.0).abs() < 1e-9);
            prop_assert_eq!(p.some.total_usec, t[0]);
            prop_assert_eq!(p.full.map(|f| f.total_usec), with_full.then_some(t[1]));
        }
    }
}
