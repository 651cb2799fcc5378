#![no_main]

use hvstat_core::cgroup::v2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = v2::parse_events(data) {
        // A value comes only from its own key's line.
        if e.populated.is_some() {
            assert!(data.windows(9).any(|w| w == b"populated"));
        }
        if e.frozen.is_some() {
            assert!(data.windows(6).any(|w| w == b"frozen"));
        }
    }
});
