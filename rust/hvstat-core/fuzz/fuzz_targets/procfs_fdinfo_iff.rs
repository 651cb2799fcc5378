#![no_main]

use hvstat_core::procfs::fdinfo::{self, TunIff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(TunIff::Interface(name)) = fdinfo::parse_tun_iff(data) {
        assert!(!name.is_empty() && name.len() <= 15 * 3, "at most 15 bytes, each at most one U+FFFD");
        assert!(!name.contains(['/', ':', ' ', '\t', '\n']));
    }
});
