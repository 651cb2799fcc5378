#![no_main]

use hvstat_core::cgroup::v2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = v2::parse_cpu_stat(data) {
        // A kept key came from a line of its own, so the input names it.
        if s.usage_usec.is_some() {
            assert!(data.windows(10).any(|w| w == b"usage_usec"));
        }
    }
});
