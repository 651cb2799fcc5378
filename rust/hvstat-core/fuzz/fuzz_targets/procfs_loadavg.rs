#![no_main]

use hvstat_core::procfs::loadavg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = loadavg::parse(data) {
        for v in [l.load1, l.load5, l.load15] {
            assert!(v.is_finite() && v >= 0.0);
        }
    }
});
