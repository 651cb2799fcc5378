#![no_main]

use hvstat_core::cgroup::{v1, Limit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Limit::Value(v)) = v1::parse_memory_limit(data) {
        // "No limit" (>= 2^62, PAGE_COUNTER_MAX pages) is never reported as a number.
        assert!(v < 1 << 62);
    }
});
