#![no_main]

use hvstat_core::sysfs::thermal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = thermal::parse_type(data) {
        assert!(!name.is_empty() && !name.contains('\n'));
    }
});
