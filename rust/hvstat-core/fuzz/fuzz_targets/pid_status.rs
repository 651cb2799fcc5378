#![no_main]

use hvstat_core::procfs::pid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = pid::parse_status(data) {
        for v in
            [s.vm_rss_bytes, s.vm_hwm_bytes, s.vm_swap_bytes, s.rss_anon_bytes, s.rss_file_bytes, s.rss_shmem_bytes]
                .into_iter()
                .flatten()
        {
            assert_eq!(v % 1024, 0, "kB values are converted to bytes");
        }
    }
});
