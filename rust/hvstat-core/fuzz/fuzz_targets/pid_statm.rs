#![no_main]

use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = pid::parse_statm(data) {
        // Seven numbers on one line: each kept value is in the text as written.
        let text = String::from_utf8_lossy(data);
        for v in [s.size_pages, s.resident_pages, s.shared_pages, s.text_pages, s.data_pages] {
            assert!(text.contains(&v.to_string()), "{v} not in {text:?}");
        }
    }
});
