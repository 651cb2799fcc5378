#![no_main]

use hvstat_core::procfs::diskstats;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(disks) = diskstats::parse(data) {
        for d in disks {
            assert!(!d.name.is_empty());
            // The discard group (4.18) comes whole, and the flush group (5.5) only after it.
            let discard = [d.discards_completed, d.discards_merged, d.sectors_discarded, d.discard_time_ms];
            assert!(discard.iter().all(Option::is_some) || discard.iter().all(Option::is_none));
            assert_eq!(d.flushes_completed.is_some(), d.flush_time_ms.is_some());
            assert!(d.flushes_completed.is_none() || d.discards_completed.is_some());
        }
    }
});
