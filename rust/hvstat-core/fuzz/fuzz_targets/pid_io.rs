#![no_main]

use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(io) = pid::parse_io(data) {
        assert!(String::from_utf8_lossy(data).contains(&io.cancelled_write_bytes.to_string()));
    }
});
