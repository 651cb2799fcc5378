#![no_main]

use hvstat_core::procfs::mountinfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mounts) = mountinfo::parse(data) {
        // One mount per line.
        assert!(mounts.len() <= data.iter().filter(|&&b| b == b'\n').count() + 1);
    }
});
