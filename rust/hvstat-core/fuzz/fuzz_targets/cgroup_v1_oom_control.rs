#![no_main]

use hvstat_core::cgroup::v1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = v1::parse_oom_control(data) {
        if o.under_oom.is_some() {
            assert!(data.windows(9).any(|w| w == b"under_oom"));
        }
    }
});
