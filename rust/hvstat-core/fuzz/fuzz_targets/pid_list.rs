#![no_main]

use hvstat_core::parse::lines;
use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pids) = pid::parse_pid_list(data) {
        assert_eq!(pids.len(), lines(data).count());
    }
});
