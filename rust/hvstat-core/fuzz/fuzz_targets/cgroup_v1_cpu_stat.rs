#![no_main]

use hvstat_core::cgroup::v1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = v1::parse_cpu_stat(data) {
        if s.throttled_time_ns.is_some() {
            assert!(data.windows(14).any(|w| w == b"throttled_time"));
        }
    }
});
