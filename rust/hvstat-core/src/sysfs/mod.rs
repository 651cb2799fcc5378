//! Parsers for files under /sys that the node sample reads: KSM, thermal zones, hwmon sensors.

pub mod cpu;
pub mod hwmon;
pub mod ksm;
pub mod thermal;
