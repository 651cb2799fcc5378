//! /sys/class/hwmon/hwmon*/{name, tempN_input, tempN_label}. Documentation/hwmon/sysfs-interface.rst:
//! temperatures are millidegrees Celsius; `tempN_label` is optional. The same one-line text and
//! millidegree formats as thermal zones, so the parsers of [`super::thermal`] serve both; this
//! module only recognises the file names.

/// `temp3_input` -> Some(3); anything else -> None.
pub fn temp_input_index(file_name: &str) -> Option<u32> {
    let _ = file_name;
    None
}
