#![no_main]

use hvstat_core::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = parse::single_u64(data) {
        assert!(String::from_utf8_lossy(data).contains(&v.to_string()));
    }
});
