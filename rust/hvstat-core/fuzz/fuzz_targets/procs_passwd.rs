#![no_main]

use hvstat_core::procs::passwd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = passwd::parse(data) {
        // Every entry's uid is written in the text, and never more entries than lines.
        let text = String::from_utf8_lossy(data);
        assert!(entries.len() <= data.iter().filter(|&&b| b == b'\n').count() + 1);
        for e in entries {
            assert!(!e.name.is_empty());
            assert!(text.contains(&e.uid.to_string()), "{} not in {text:?}", e.uid);
        }
    }
});
