#![no_main]

use hvstat_core::cgroup::{v1, Limit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match v1::parse_cfs_quota(data) {
        Ok(Limit::Max) => assert!(data.contains(&b'-')),
        Ok(Limit::Value(v)) => assert!(v <= i64::MAX as u64),
        Err(_) => {}
    }
});
