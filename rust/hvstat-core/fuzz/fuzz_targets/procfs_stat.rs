#![no_main]

use hvstat_core::procfs::stat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = stat::parse(data) {
        // Optional columns come in kernel order: a later one present implies every earlier one.
        for t in std::iter::once(&s.total).chain(s.cpus.iter().map(|(_, t)| t)) {
            let cols = [t.iowait, t.irq, t.softirq, t.steal, t.guest, t.guest_nice];
            let present = cols.iter().take_while(|c| c.is_some()).count();
            assert!(cols[present..].iter().all(Option::is_none));
        }
    }
});
