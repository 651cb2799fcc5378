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
        // The sampler's one-pass parse agrees wherever the full parse succeeds.
        let h = pid::parse_stat_head(data).expect("parse_stat_head fails where parse_stat succeeds");
        assert_eq!(String::from_utf8_lossy(h.comm), s.comm);
        assert_eq!((h.pid, char::from(h.state), h.ppid, h.utime_ticks, h.stime_ticks), (s.pid, s.state, s.ppid, s.utime_ticks, s.stime_ticks));
        assert_eq!((h.num_threads, h.starttime_ticks, h.rss_pages), (s.num_threads, s.starttime_ticks, s.rss_pages));
    } else {
        // Whatever bytes: no panic.
        let _ = pid::parse_stat_head(data);
    }
});
