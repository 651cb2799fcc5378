#![no_main]

use hvstat_core::procfs::vmstat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vmstat::parse(data);
});
