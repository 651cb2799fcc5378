#![no_main]

use hvstat_core::cgroup::v2;
use hvstat_core::parse::lines;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(devs) = v2::parse_io_stat(data) {
        // Exactly one entry per line: a line is a device or an error.
        assert_eq!(devs.len(), lines(data).count());
    }
});
