#![no_main]

use hvstat_core::cgroup::v1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = v1::parse_memory_stat(data) {
        if s.total_rss.is_some() {
            assert!(data.windows(9).any(|w| w == b"total_rss"));
        }
    }
});
