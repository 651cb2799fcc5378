#![no_main]

use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The link target is text (readlink of /proc/<pid>/ns/<kind>); bytes that are not UTF-8 are not a link.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(inode) = pid::parse_ns_link(text) {
            assert!(text.ends_with(']') && text.contains(":["));
            assert!(text.contains(&inode.to_string()));
        }
    }
});
