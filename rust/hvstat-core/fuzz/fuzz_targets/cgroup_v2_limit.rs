#![no_main]

use hvstat_core::cgroup::{v2, Limit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match v2::parse_limit(data) {
        Ok(Limit::Max) => assert!(data.windows(3).any(|w| w == b"max")),
        Ok(Limit::Value(v)) => assert!(String::from_utf8_lossy(data).contains(&v.to_string())),
        Err(_) => {}
    }
});
