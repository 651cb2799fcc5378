//! /proc/net/dev (and /proc/<pid>/net/dev, the same format seen from that process's namespace).
//! Two header lines, then `name: 8 receive counters 8 transmit counters`.

use crate::parse::{fields, lines, lossy, name_of, split_once, u64_of, ParseError, ParseResult};

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

/// Parses the whole file, one [`NetDev`] per interface in file order. The two header lines are
/// required (each has a `|`). The name is everything before the first `:` with the kernel's padding
/// removed; interface names cannot contain `:` (dev_valid_name() in net/core/dev.c). Linux 2.4 and
/// early 2.6 printed `%6s:%8lu`, so a big counter touches the colon (`eth0:1364218213`); later kernels
/// print `%6s: %7llu`. Splitting at the colon rather than at whitespace handles both. Columns after
/// the sixteenth are ignored.
pub fn parse(buf: &[u8]) -> ParseResult<Vec<NetDev>> {
    let mut out = Vec::new();
    let mut it = lines(buf);
    for want in 1..=2 {
        match it.next() {
            Some((_, l)) if l.contains(&b'|') => {}
            Some((n, l)) => return Err(ParseError::new(n, format!("expected a header line, got {:?}", lossy(l)))),
            None => return Err(ParseError::new(want, "header line missing")),
        }
    }
    for (n, line) in it {
        let Some((name, rest)) = split_once(line, b':') else {
            return Err(ParseError::new(n, format!("expected \"name: counters\", got {:?}", lossy(line))));
        };
        let name = name.trim_ascii();
        if name.is_empty() {
            return Err(ParseError::new(n, format!("empty interface name: {:?}", lossy(line))));
        }
        let mut c = [0u64; 16];
        let mut f = fields(rest);
        for (i, slot) in c.iter_mut().enumerate() {
            let v =
                f.next().ok_or_else(|| ParseError::new(n, format!("{}: {i} counters, expected 16", lossy(name))))?;
            *slot = u64_of(v).ok_or_else(|| {
                ParseError::new(n, format!("{}: counter {}: not a number: {:?}", lossy(name), i + 1, lossy(v)))
            })?;
        }
        let [rx_bytes, rx_packets, rx_errors, rx_dropped, rx_fifo, rx_frame, rx_compressed, rx_multicast, tx_bytes, tx_packets, tx_errors, tx_dropped, tx_fifo, tx_collisions, tx_carrier, tx_compressed] =
            c;
        out.push(NetDev {
            name: name_of(name),
            rx_bytes,
            rx_packets,
            rx_errors,
            rx_dropped,
            rx_fifo,
            rx_frame,
            rx_compressed,
            rx_multicast,
            tx_bytes,
            tx_packets,
            tx_errors,
            tx_dropped,
            tx_fifo,
            tx_collisions,
            tx_carrier,
            tx_compressed,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Linux 6.18.
    const LINUX_6_18: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 70213669    4594    0    0    0     0          0         0   394360    4242    0    0    0     0       0          0
";

    /// Linux 5.10 (Proxmox-style names longer than the 6-column padding, big counters).
    const LINUX_5_10: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
fwpr101p0: 1483297463 3219802    0    0    0     0          0         0 18828309317 13766347    0    0    0     0       0          0
vmbr0.20: 982374623 8172634    0 1733    0     0          0    381277 12837462 102773    0    0    0     0       0          0
enp5s0f1-x: 18446744073709551615 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
";

    /// Linux 2.4 and early 2.6: `%6s:%8lu`, no space after the colon once the counter is 8 digits wide.
    const LINUX_2_6: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  163283    1637    0    0    0     0          0         0   163283    1637    0    0    0     0       0          0
  eth0:1364218213 14235961    0    0    0     0          0     37204 1828357128 13307437    0    0    0     0       0          0
";

    #[test]
    fn linux_6_18() {
        let d = parse(LINUX_6_18.as_bytes()).unwrap();
        assert_eq!(d.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["lo", "ifb0", "eth0"]);
        let eth0 = &d[2];
        assert_eq!((eth0.rx_bytes, eth0.rx_packets, eth0.tx_bytes, eth0.tx_packets), (70213669, 4594, 394360, 4242));
    }

    #[test]
    fn long_names_with_dots_and_dashes() {
        let d = parse(LINUX_5_10.as_bytes()).unwrap();
        assert_eq!(d[0].name, "fwpr101p0");
        assert_eq!(d[0].tx_bytes, 18828309317);
        assert_eq!(d[1].name, "vmbr0.20");
        assert_eq!((d[1].rx_dropped, d[1].rx_multicast), (1733, 381277));
        let x = &d[2];
        assert_eq!(x.name, "enp5s0f1-x");
        assert_eq!(
            [
                x.rx_bytes,
                x.rx_packets,
                x.rx_errors,
                x.rx_dropped,
                x.rx_fifo,
                x.rx_frame,
                x.rx_compressed,
                x.rx_multicast
            ],
            [u64::MAX, 1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!(
            [
                x.tx_bytes,
                x.tx_packets,
                x.tx_errors,
                x.tx_dropped,
                x.tx_fifo,
                x.tx_collisions,
                x.tx_carrier,
                x.tx_compressed
            ],
            [8, 9, 10, 11, 12, 13, 14, 15]
        );
    }

    #[test]
    fn old_kernel_without_space_after_colon() {
        let d = parse(LINUX_2_6.as_bytes()).unwrap();
        assert_eq!(d[1].name, "eth0");
        assert_eq!((d[1].rx_bytes, d[1].rx_multicast, d[1].tx_bytes), (1364218213, 37204, 1828357128));
    }

    #[test]
    fn only_headers_is_no_interfaces() {
        let two: String = LINUX_6_18.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse(two.as_bytes()).unwrap(), vec![]);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::new(1, "header line missing"));
        let hdr: String = LINUX_6_18.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            parse(hdr.lines().next().unwrap().as_bytes()).unwrap_err(),
            ParseError::new(2, "header line missing")
        );
        assert_eq!(parse(b"lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").unwrap_err().line, 1);
        let e = parse(format!("{hdr}  eth0 1 2 3\n").as_bytes()).unwrap_err();
        assert_eq!(e, ParseError::new(3, "expected \"name: counters\", got \"  eth0 1 2 3\""));
        let e = parse(format!("{hdr}  eth0: 1 2 3\n").as_bytes()).unwrap_err();
        assert_eq!(e, ParseError::new(3, "eth0: 3 counters, expected 16"));
        let e = parse(format!("{hdr}  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n").as_bytes()).unwrap_err();
        assert_eq!(e, ParseError::new(3, "eth0: counter 16: not a number: \"x\""));
        let e = parse(format!("{hdr}   : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").as_bytes()).unwrap_err();
        assert_eq!(e.line, 3);
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&buf);
        }

        #[test]
        fn round_trip(devs in proptest::collection::vec(("[a-zA-Z0-9_.-]{1,15}", proptest::collection::vec(any::<u64>(), 16), any::<bool>()), 0..8)) {
            let mut text: String = LINUX_6_18.lines().take(2).map(|l| format!("{l}\n")).collect();
            for (name, c, tight) in &devs {
                let c: Vec<String> = c.iter().map(|v| v.to_string()).collect();
                // Both the modern `%6s: %7llu` layout and the old one with no space after the colon.
                let sep = if *tight { "" } else { " " };
                text += &format!("{name:>6}:{sep}{}\n", c.join(" "));
            }
            let got = parse(text.as_bytes()).unwrap();
            prop_assert_eq!(got.len(), devs.len());
            for (d, (name, c, _)) in got.iter().zip(&devs) {
                prop_assert_eq!(&d.name, name);
                prop_assert_eq!([d.rx_bytes, d.rx_multicast, d.tx_bytes, d.tx_compressed], [c[0], c[7], c[8], c[15]]);
            }
        }
    }
}
