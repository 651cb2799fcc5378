#![no_main]

use hvstat_core::vm::process::parse_vcpu_thread_name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(index) = parse_vcpu_thread_name(data) {
        // Only `CPU <digits>/<accel>`, and the digits are the index.
        let name = data.strip_suffix(b"\n").unwrap_or(data);
        let slash = name.iter().position(|&b| b == b'/').expect("a slash");
        let digits = std::str::from_utf8(&name[4..slash]).expect("ASCII digits");
        assert!(name.starts_with(b"CPU ") && slash + 1 < name.len());
        assert_eq!(digits.parse::<u32>().ok(), Some(index));
    }
});
