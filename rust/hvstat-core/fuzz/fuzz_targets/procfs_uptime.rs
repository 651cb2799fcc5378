#![no_main]

use hvstat_core::procfs::uptime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = uptime::parse(data) {
        assert!(u.uptime_secs.is_finite() && u.uptime_secs >= 0.0);
        assert!(u.idle_secs.is_finite() && u.idle_secs >= 0.0);
    }
});
