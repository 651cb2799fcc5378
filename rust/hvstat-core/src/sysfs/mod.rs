//! Parsers for files under /sys that the node sample reads: KSM, thermal zones, hwmon sensors; and
//! the block devices' `slaves/` directories, which say whether a device is stacked on others.

pub mod block;
pub mod cpu;
pub mod hwmon;
pub mod ksm;
pub mod thermal;
