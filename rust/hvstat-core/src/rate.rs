//! Counter deltas and rates. A rate needs two samples: the first sample has none (`None`), and an
//! interval in which a counter went down (a wrap, a reset, a restarted container, a hot-unplugged
//! CPU) has none either; the new value simply becomes the base for the next interval. A rate is
//! never negative and never invented.

use schemars::JsonSchema;
use serde::Serialize;

use crate::procfs::stat::CpuTicks;

/// `cur - prev`, or `None` when there is no previous value or the counter went down.
pub fn delta(prev: Option<u64>, cur: u64) -> Option<u64> {
    cur.checked_sub(prev?)
}

/// Per-second rate of a counter over `elapsed_secs` of monotonic time.
pub fn per_sec(prev: Option<u64>, cur: u64, elapsed_secs: f64) -> Option<f64> {
    if elapsed_secs.is_nan() || elapsed_secs <= 0.0 || elapsed_secs.is_infinite() {
        return None;
    }
    Some(delta(prev, cur)? as f64 / elapsed_secs)
}

/// As [`per_sec`] for a counter that may itself be absent (an optional kernel column).
pub fn per_sec_opt(prev: Option<u64>, cur: Option<u64>, elapsed_secs: f64) -> Option<f64> {
    per_sec(prev, cur?, elapsed_secs)
}

/// `part / whole * 100`, `None` when `whole` is 0 (nothing elapsed, nothing to divide).
pub fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| part / whole * 100.0)
}

/// Share of CPU time per mode over one interval, in percent of that CPU's (or all CPUs') time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct CpuPercent {
    /// Everything but idle and iowait: what `top` and psutil call busy.
    pub usage: Option<f64>,
    pub user: Option<f64>,
    pub nice: Option<f64>,
    pub system: Option<f64>,
    pub idle: Option<f64>,
    pub iowait: Option<f64>,
    pub irq: Option<f64>,
    pub softirq: Option<f64>,
    pub steal: Option<f64>,
    /// Time spent running guests; already part of `user`, shown on its own for hypervisor hosts.
    pub guest: Option<f64>,
    /// Niced guest time; already part of `nice`.
    pub guest_nice: Option<f64>,
}

/// CPU percentages between two readings of one CPU line.
///
/// The total is the sum of the non-guest modes (guest time is counted inside user and nice, see
/// kernel/sched/cputime.c). Idle and iowait are taken together for the total and for `usage`: the
/// kernel moves time between them after the fact, so iowait alone can go down (Documentation/
/// filesystems/proc.rst: iowait "is not reliable") while their sum still moves forward. A mode
/// whose own counter went down gets `None`; when a busy mode or idle+iowait went down (a CPU went
/// offline and back), the total is unknown and every percentage of that interval is `None`.
pub fn cpu_percent(prev: &CpuTicks, cur: &CpuTicks) -> CpuPercent {
    // An optional column the kernel does not write at all (old kernels) adds nothing; one that was
    // written and went down is unknown.
    let opt = |p: Option<u64>, c: Option<u64>| match (p, c) {
        (None, None) => Some(0),
        _ => delta(p, c?),
    };
    let user = delta(Some(prev.user), cur.user);
    let nice = delta(Some(prev.nice), cur.nice);
    let system = delta(Some(prev.system), cur.system);
    let idle = delta(Some(prev.idle), cur.idle);
    let iowait = opt(prev.iowait, cur.iowait);
    let irq = opt(prev.irq, cur.irq);
    let softirq = opt(prev.softirq, cur.softirq);
    let steal = opt(prev.steal, cur.steal);
    let guest = opt(prev.guest, cur.guest);
    let guest_nice = opt(prev.guest_nice, cur.guest_nice);

    let idle_all = delta(
        Some(prev.idle.saturating_add(prev.iowait.unwrap_or(0))),
        cur.idle.saturating_add(cur.iowait.unwrap_or(0)),
    );
    let busy = [user, nice, system, irq, softirq, steal].iter().try_fold(0u64, |acc, v| v.map(|v| acc.saturating_add(v)));
    let total = busy.zip(idle_all).map(|(b, i)| b.saturating_add(i) as f64);
    let pct = |v: Option<u64>, cur_has: bool| {
        if !cur_has {
            return None;
        }
        v.zip(total).and_then(|(v, t)| percent(v as f64, t)).map(|p| p.min(100.0))
    };

    CpuPercent {
        usage: busy.zip(total).and_then(|(b, t)| percent(b as f64, t)),
        user: pct(user, true),
        nice: pct(nice, true),
        system: pct(system, true),
        idle: pct(idle, true),
        iowait: pct(iowait, cur.iowait.is_some()),
        irq: pct(irq, cur.irq.is_some()),
        softirq: pct(softirq, cur.softirq.is_some()),
        steal: pct(steal, cur.steal.is_some()),
        guest: pct(guest, cur.guest.is_some()),
        guest_nice: pct(guest_nice, cur.guest_nice.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ticks(v: [u64; 10]) -> CpuTicks {
        CpuTicks {
            user: v[0],
            nice: v[1],
            system: v[2],
            idle: v[3],
            iowait: Some(v[4]),
            irq: Some(v[5]),
            softirq: Some(v[6]),
            steal: Some(v[7]),
            guest: Some(v[8]),
            guest_nice: Some(v[9]),
        }
    }

    #[test]
    fn first_sample_and_reset_have_no_rate() {
        assert_eq!(per_sec(None, 10, 1.0), None);
        assert_eq!(per_sec(Some(10), 5, 1.0), None);
        assert_eq!(per_sec(Some(10), 30, 2.0), Some(10.0));
        assert_eq!(per_sec(Some(10), 10, 2.0), Some(0.0));
        assert_eq!(per_sec(Some(10), 30, 0.0), None);
        assert_eq!(per_sec(Some(10), 30, f64::NAN), None);
        assert_eq!(per_sec(Some(u64::MAX - 1), 3, 1.0), None, "a wrap is a reset, not a huge rate");
    }

    #[test]
    fn cpu_split() {
        let a = ticks([100, 0, 50, 800, 10, 0, 0, 0, 0, 0]);
        let b = ticks([160, 0, 70, 810, 10, 0, 0, 10, 30, 0]);
        let p = cpu_percent(&a, &b);
        // deltas: user 60, system 20, idle 10, steal 10 -> total 100
        assert_eq!(p.user, Some(60.0));
        assert_eq!(p.system, Some(20.0));
        assert_eq!(p.idle, Some(10.0));
        assert_eq!(p.steal, Some(10.0));
        assert_eq!(p.guest, Some(30.0));
        assert_eq!(p.usage, Some(90.0));
    }

    #[test]
    fn iowait_going_down_nulls_only_iowait() {
        // iowait -10 moved to idle: idle+iowait moved +40, user +60 -> total 100.
        let a = ticks([100, 0, 0, 100, 50, 0, 0, 0, 0, 0]);
        let b = ticks([160, 0, 0, 150, 40, 0, 0, 0, 0, 0]);
        let p = cpu_percent(&a, &b);
        assert_eq!(p.iowait, None);
        assert_eq!(p.usage, Some(60.0));
        assert_eq!(p.idle, Some(50.0));
    }

    #[test]
    fn idle_going_down_makes_the_interval_unknown() {
        // A CPU that went offline and came back restarts its counters: nothing is known.
        let a = ticks([100, 0, 0, 5000, 0, 0, 0, 0, 0, 0]);
        let b = ticks([110, 0, 0, 4000, 0, 0, 0, 0, 0, 0]);
        let p = cpu_percent(&a, &b);
        assert_eq!(p.usage, None);
        assert_eq!(p.user, None);
        let b = ticks([90, 0, 0, 5100, 0, 0, 0, 0, 0, 0]);
        assert_eq!(cpu_percent(&a, &b).usage, None, "a busy mode went down");
    }

    #[test]
    fn nothing_elapsed_is_unknown_not_zero() {
        let a = ticks([1; 10]);
        let p = cpu_percent(&a, &a);
        assert_eq!(p.usage, None);
        assert_eq!(p.idle, None);
    }

    #[test]
    fn old_kernel_without_optional_columns() {
        let a = CpuTicks { user: 10, nice: 0, system: 10, idle: 80, ..Default::default() };
        let b = CpuTicks { user: 20, nice: 0, system: 20, idle: 160, ..Default::default() };
        let p = cpu_percent(&a, &b);
        assert_eq!(p.usage, Some(20.0));
        assert_eq!(p.iowait, None);
    }

    proptest! {
        #[test]
        fn rates_are_never_negative(prev in proptest::option::of(any::<u64>()), cur in any::<u64>(), dt in -10.0f64..10.0) {
            if let Some(r) = per_sec(prev, cur, dt) {
                prop_assert!(r >= 0.0 && r.is_finite());
            }
        }

        #[test]
        fn cpu_percentages_stay_in_range(a in proptest::array::uniform10(0u64..1u64 << 40), b in proptest::array::uniform10(0u64..1u64 << 40)) {
            let p = cpu_percent(&ticks(a), &ticks(b));
            for v in [p.usage, p.user, p.nice, p.system, p.idle, p.iowait, p.irq, p.softirq, p.steal].into_iter().flatten() {
                prop_assert!((0.0..=100.0).contains(&v), "{v}");
            }
        }
    }
}
