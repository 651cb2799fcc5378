#![no_main]

use hvstat_core::procfs::pressure;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = pressure::parse(data) {
        for l in std::iter::once(p.some).chain(p.full) {
            for v in [l.avg10, l.avg60, l.avg300] {
                assert!(v.is_finite() && v >= 0.0);
            }
        }
    }
});
