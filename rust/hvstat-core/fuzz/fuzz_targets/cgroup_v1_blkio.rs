#![no_main]

use hvstat_core::cgroup::v1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(devs) = v1::parse_blkio(data) {
        // Lines of one device are summed into one entry.
        for (i, d) in devs.iter().enumerate() {
            assert!(devs[..i].iter().all(|e| (e.major, e.minor) != (d.major, d.minor)));
        }
    }
});
