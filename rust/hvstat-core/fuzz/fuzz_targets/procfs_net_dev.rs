#![no_main]

use hvstat_core::procfs::net_dev;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(devs) = net_dev::parse(data) {
        for d in devs {
            assert!(!d.name.is_empty());
            assert!(!d.name.contains(':'));
            // The kernel's padding is gone.
            assert!(!d.name.starts_with(|c: char| c.is_ascii_whitespace()));
            assert!(!d.name.ends_with(|c: char| c.is_ascii_whitespace()));
        }
    }
});
