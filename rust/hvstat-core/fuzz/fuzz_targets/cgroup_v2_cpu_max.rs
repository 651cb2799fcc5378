#![no_main]

use hvstat_core::cgroup::{v2, Limit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = v2::parse_cpu_max(data) {
        assert!(m.period_usec > 0, "callers divide by the period");
        if m.quota_usec == Limit::Max {
            assert!(data.windows(3).any(|w| w == b"max"));
        }
    }
});
