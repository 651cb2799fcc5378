#![no_main]

use hvstat_core::parse::lines;
use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = pid::parse_cgroup(data) {
        assert_eq!(entries.len(), lines(data).count());
        for e in entries {
            assert!(e.path.starts_with('/'));
            assert!(e.controllers.iter().all(|c| !c.is_empty() && !c.contains(',')));
        }
    }
});
