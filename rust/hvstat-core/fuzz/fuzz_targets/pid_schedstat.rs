#![no_main]

use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = pid::parse_schedstat(data) {
        let text = String::from_utf8_lossy(data);
        assert!(text.contains(&s.run_ns.to_string()) && text.contains(&s.timeslices.to_string()));
    }
});
