#![no_main]

use hvstat_core::cgroup::v2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = v2::parse_memory_events(data) {
        if e.oom_kill.is_some() {
            assert!(data.windows(8).any(|w| w == b"oom_kill"));
        }
    }
});
