//! /proc/stat: CPU time per mode (in USER_HZ ticks), context switches, interrupts, process counts.
//! Format: Documentation/filesystems/proc.rst, "1.7 Miscellaneous kernel statistics in /proc/stat".

use crate::parse::{fields, lines, lossy, u32_field, u64_field, u64_of, ParseError, ParseResult};

/// Cumulative CPU time of one CPU (or of all, for the `cpu` line), in USER_HZ ticks (100 per second on
/// every Linux architecture). `guest` and `guest_nice` are already included in `user` and `nice`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    /// Since Linux 2.5.41.
    pub iowait: Option<u64>,
    /// Since Linux 2.6.0.
    pub irq: Option<u64>,
    /// Since Linux 2.6.0.
    pub softirq: Option<u64>,
    /// Since Linux 2.6.11.
    pub steal: Option<u64>,
    /// Since Linux 2.6.24.
    pub guest: Option<u64>,
    /// Since Linux 2.6.33.
    pub guest_nice: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// The aggregate `cpu` line.
    pub total: CpuTicks,
    /// The `cpuN` lines as (N, ticks), in file order. Offline CPUs have no line.
    pub cpus: Vec<(u32, CpuTicks)>,
    /// `ctxt`: context switches since boot.
    pub context_switches: Option<u64>,
    /// First number of the `intr` line: interrupts serviced since boot.
    pub interrupts: Option<u64>,
    /// `btime`: boot time, unix seconds.
    pub boot_time_secs: Option<u64>,
    /// `processes`: forks since boot.
    pub forks: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

/// Parses the whole file. The aggregate `cpu` line is required; every other line is optional, and
/// lines this parser does not know (`softirq`, anything a future kernel adds) are skipped.
pub fn parse(buf: &[u8]) -> ParseResult<Stat> {
    let mut total: Option<CpuTicks> = None;
    let mut stat = Stat::default();
    for (n, line) in lines(buf) {
        let mut f = fields(line);
        let Some(key) = f.next() else {
            return Err(ParseError::new(n, "empty line"));
        };
        match key {
            b"cpu" => {
                if total.is_some() {
                    return Err(ParseError::new(n, "second aggregate cpu line"));
                }
                total = Some(cpu_ticks(n, f)?);
            }
            b"ctxt" => stat.context_switches = Some(u64_field(n, f.next(), "ctxt")?),
            // The intr line has one column per interrupt number (thousands on big machines); only the
            // total in front is kept, and the rest of the line is never split.
            b"intr" => stat.interrupts = Some(u64_field(n, f.next(), "intr")?),
            b"btime" => stat.boot_time_secs = Some(u64_field(n, f.next(), "btime")?),
            b"processes" => stat.forks = Some(u64_field(n, f.next(), "processes")?),
            b"procs_running" => stat.procs_running = Some(u64_field(n, f.next(), "procs_running")?),
            b"procs_blocked" => stat.procs_blocked = Some(u64_field(n, f.next(), "procs_blocked")?),
            _ => {
                // `cpuN`; a key that merely starts with "cpu" and has no digits after it is unknown.
                if let Some(idx) =
                    key.strip_prefix(b"cpu").filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
                {
                    let cpu = u32_field(n, Some(idx), "cpu index")?;
                    stat.cpus.push((cpu, cpu_ticks(n, f)?));
                }
            }
        }
    }
    stat.total = total.ok_or_else(|| ParseError::new(0, "no aggregate cpu line"))?;
    Ok(stat)
}

/// The columns of a `cpu`/`cpuN` line after the key: four required, six more optional (older kernels
/// write fewer), and anything after the tenth ignored (a future kernel may add columns).
fn cpu_ticks<'a>(n: usize, mut f: impl Iterator<Item = &'a [u8]>) -> ParseResult<CpuTicks> {
    let mut cols = [None; 10];
    for slot in cols.iter_mut() {
        match f.next() {
            Some(v) => {
                *slot = Some(
                    u64_of(v).ok_or_else(|| ParseError::new(n, format!("cpu time: not a number: {:?}", lossy(v))))?,
                )
            }
            None => break,
        }
    }
    let [Some(user), Some(nice), Some(system), Some(idle), iowait, irq, softirq, steal, guest, guest_nice] = cols
    else {
        let got = cols.iter().flatten().count();
        return Err(ParseError::new(n, format!("cpu line has {got} time columns, expected at least 4")));
    };
    Ok(CpuTicks { user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Linux 6.18 (Debian 12 userland, 2 vCPUs under QEMU TCG): 10 columns, a long intr line.
    const LINUX_6_18: &str = "\
cpu  7968 0 1690 57483 341 0 50 28 0 0
cpu0 3811 0 731 29133 63 0 21 14 0 0
cpu1 4156 0 959 28349 277 0 29 14 0 0
intr 100017 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 9 0 0 0 0 67 29 0 18 1 13307 0 3983 3601 0 1361 2554 1 0 0
ctxt 109537
btime 1795313989
processes 5073
procs_running 3
procs_blocked 0
softirq 66816 0 9055 4 7477 13307 0 223 18113 0 18637
";

    /// Linux 3.10 (CentOS 7, 3.10.0-1160): also 10 columns; here cpu2 of 4 is offline.
    const LINUX_3_10_CPU2_OFFLINE: &str = "\
cpu  79242362 11325 12845011 1913488447 1210447 0 401259 0 51374610 0
cpu0 20551062 2948 3376113 477276880 368412 0 219874 0 13361005 0
cpu1 19632419 2811 3174411 478853330 278745 0 62651 0 12756288 0
cpu3 19403880 2757 3083232 479127651 285104 0 60322 0 12591307 0
intr 5738947016 40 10 0 0 0 0 0 0 1 0 0 0 156 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
ctxt 12230163470
btime 1690884210
processes 30489015
procs_running 2
procs_blocked 0
softirq 3126458834 2 1232717447 95651 297618437 2617497 0 5418 868120180 0 720284202
";

    #[test]
    fn linux_6_18() {
        let s = parse(LINUX_6_18.as_bytes()).unwrap();
        assert_eq!(
            s.total,
            CpuTicks {
                user: 7968,
                nice: 0,
                system: 1690,
                idle: 57483,
                iowait: Some(341),
                irq: Some(0),
                softirq: Some(50),
                steal: Some(28),
                guest: Some(0),
                guest_nice: Some(0),
            }
        );
        assert_eq!(s.cpus.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(s.cpus[1].1.system, 959);
        assert_eq!(s.context_switches, Some(109537));
        assert_eq!(s.interrupts, Some(100017));
        assert_eq!(s.boot_time_secs, Some(1795313989));
        assert_eq!(s.forks, Some(5073));
        assert_eq!(s.procs_running, Some(3));
        assert_eq!(s.procs_blocked, Some(0));
    }

    #[test]
    fn offline_cpu_leaves_a_gap() {
        let s = parse(LINUX_3_10_CPU2_OFFLINE.as_bytes()).unwrap();
        assert_eq!(s.cpus.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(s.total.guest, Some(51374610));
        assert_eq!(s.interrupts, Some(5738947016));
    }

    #[test]
    fn older_kernels_write_fewer_columns() {
        // 2.4: four columns and no ctxt-style extras beyond what is asked.
        let s = parse(b"cpu  1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(s.total, CpuTicks { user: 1, nice: 2, system: 3, idle: 4, ..Default::default() });
        // 2.6.0: seven (iowait, irq, softirq).
        let s = parse(b"cpu  1 2 3 4 5 6 7\n").unwrap();
        assert_eq!((s.total.iowait, s.total.softirq, s.total.steal), (Some(5), Some(7), None));
        // 2.6.11: eight (steal). 2.6.24: nine (guest).
        let s = parse(b"cpu  1 2 3 4 5 6 7 8\n").unwrap();
        assert_eq!((s.total.steal, s.total.guest), (Some(8), None));
        let s = parse(b"cpu  1 2 3 4 5 6 7 8 9\n").unwrap();
        assert_eq!((s.total.guest, s.total.guest_nice), (Some(9), None));
        assert_eq!(s.context_switches, None);
    }

    #[test]
    fn extra_columns_are_ignored() {
        let s = parse(b"cpu  1 2 3 4 5 6 7 8 9 10 11 whatever\n").unwrap();
        assert_eq!(s.total.guest_nice, Some(10));
    }

    #[test]
    fn unknown_lines_are_skipped() {
        let s = parse(b"cpu  1 2 3 4\ncpufreq 12\nnew_counter 7 8\n").unwrap();
        assert!(s.cpus.is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse(b"ctxt 1\n").unwrap_err(), ParseError::new(0, "no aggregate cpu line"));
        assert_eq!(parse(b"").unwrap_err().line, 0);
        let e = parse(b"cpu  1 2 3 4\ncpu0 1 2 x 4\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "cpu time: not a number: \"x\""));
        let e = parse(b"cpu  1 2 3\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "cpu line has 3 time columns, expected at least 4"));
        assert_eq!(parse(b"cpu  1 2 3 4\nctxt\n").unwrap_err(), ParseError::new(2, "ctxt: missing"));
        assert_eq!(parse(b"cpu  1 2 3 4\nbtime -1\n").unwrap_err().line, 2);
        assert_eq!(parse(b"cpu  1 2 3 4\ncpu99999999999 1 2 3 4\n").unwrap_err().line, 2);
        assert_eq!(parse(b"cpu  1 2 3 4\n\nctxt 1\n").unwrap_err(), ParseError::new(2, "empty line"));
        assert_eq!(parse(b"cpu  1 2 3 4\ncpu  1 2 3 4\n").unwrap_err().line, 2);
        assert!(parse(b"cpu  1 2 3 18446744073709551616\n").is_err());
    }

    fn render(t: &[u64]) -> String {
        t.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" ")
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&buf);
        }

        #[test]
        fn never_panics_on_plausible_lines(
            lines in proptest::collection::vec(
                (prop::sample::select(vec!["cpu", "cpu0", "cpu17", "ctxt", "intr", "btime", "processes", "procs_running", "softirq", "cpux", ""]),
                 proptest::collection::vec(prop::sample::select(vec!["0", "1", "18446744073709551615", "18446744073709551616", "-1", "x", ""]), 0..12)),
                0..8)
        ) {
            let text: String = lines.iter().map(|(k, v)| format!("{k} {}\n", v.join(" "))).collect();
            let _ = parse(text.as_bytes());
        }

        #[test]
        fn round_trip(
            total in proptest::collection::vec(any::<u64>(), 4..=10),
            cpus in proptest::collection::btree_map(any::<u32>(), proptest::collection::vec(any::<u64>(), 10), 0..6),
            ctxt in any::<u64>(), intr in any::<u64>(), btime in any::<u64>(),
        ) {
            let mut text = format!("cpu  {}\n", render(&total));
            for (i, t) in &cpus {
                text += &format!("cpu{i} {}\n", render(t));
            }
            text += &format!("intr {intr} 0 0 17 0\nctxt {ctxt}\nbtime {btime}\nprocesses 9\nprocs_running 1\nprocs_blocked 0\n");
            let s = parse(text.as_bytes()).unwrap();
            let opt = |i: usize| total.get(i).copied();
            prop_assert_eq!(s.total, CpuTicks {
                user: total[0], nice: total[1], system: total[2], idle: total[3],
                iowait: opt(4), irq: opt(5), softirq: opt(6), steal: opt(7), guest: opt(8), guest_nice: opt(9),
            });
            prop_assert_eq!(s.cpus.iter().map(|c| c.0).collect::<Vec<_>>(), cpus.keys().copied().collect::<Vec<_>>());
            prop_assert_eq!((s.context_switches, s.interrupts, s.boot_time_secs), (Some(ctxt), Some(intr), Some(btime)));
        }
    }
}
