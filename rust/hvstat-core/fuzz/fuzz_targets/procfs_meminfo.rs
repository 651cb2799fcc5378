#![no_main]

use hvstat_core::procfs::meminfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = meminfo::parse(data);
});
