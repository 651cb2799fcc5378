#![no_main]

use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = pid::parse_stat(data) {
        // The name is the text between the first "(" and the last ")".
        let text = String::from_utf8_lossy(data);
        assert!(text.contains(&format!("({})", s.comm)));
        assert!(s.state.is_ascii_alphabetic());
        assert!(s.guest_time_ticks.is_none() || s.delayacct_blkio_ticks.is_some());
        assert!(s.delayacct_blkio_ticks.is_none() || s.processor.is_some());
    }
});
