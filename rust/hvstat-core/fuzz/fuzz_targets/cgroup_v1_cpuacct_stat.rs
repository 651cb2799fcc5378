#![no_main]

use hvstat_core::cgroup::v1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = v1::parse_cpuacct_stat(data) {
        let text = String::from_utf8_lossy(data);
        assert!(text.contains(&s.user_ticks.to_string()) && text.contains(&s.system_ticks.to_string()));
    }
});
