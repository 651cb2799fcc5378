#![no_main]

use hvstat_core::sysfs::hwmon;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(i) = hwmon::temp_input_index(name) {
            assert!(name.starts_with("temp") && name.ends_with("_input"));
            assert!(name.contains(&i.to_string()));
        }
    }
});
