#![no_main]

use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = pid::parse_status_uids(data) {
        let text = String::from_utf8_lossy(data);
        assert!(text.contains("Uid:"));
        for v in [u.real, u.effective, u.saved, u.fs] {
            assert!(text.contains(&v.to_string()), "{v} not in {text:?}");
        }
    }
});
