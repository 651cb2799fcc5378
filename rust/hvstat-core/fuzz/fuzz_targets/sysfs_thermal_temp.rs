#![no_main]

use hvstat_core::sysfs::thermal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = thermal::parse_temp_celsius(data) {
        assert!(t.is_finite());
    }
});
