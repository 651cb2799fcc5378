//! /sys/class/hwmon/hwmon*/{name, tempN_input, tempN_label}. Documentation/hwmon/sysfs-interface.rst:
//! temperatures are millidegrees Celsius; `tempN_label` is optional. The same one-line text and
//! millidegree formats as thermal zones, so the parsers of [`super::thermal`] serve both; this
//! module only recognises the file names.

/// `temp3_input` -> Some(3); anything else -> None. The index is decimal digits only (leading zeros
/// are fine); `temp_input`, `temp3_label`, `temp03x_input` and an index past u32 are None.
pub fn temp_input_index(file_name: &str) -> Option<u32> {
    let digits = file_name.strip_prefix("temp")?.strip_suffix("_input")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: parse() can only fail by overflowing u32.
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert_eq!(temp_input_index("temp3_input"), Some(3));
        assert_eq!(temp_input_index("temp1_input"), Some(1));
        assert_eq!(temp_input_index("temp12_input"), Some(12));
        assert_eq!(temp_input_index("temp03_input"), Some(3));
        assert_eq!(temp_input_index("temp4294967295_input"), Some(u32::MAX));
        for bad in [
            "temp_input",
            "temp3_label",
            "temp03x_input",
            "temp3_max",
            "in0_input",
            "fan1_input",
            "temp+3_input",
            "temp 3_input",
            "temp4294967296_input",
            "xtemp3_input",
            "temp3_input\n",
            "",
            "temp",
        ] {
            assert_eq!(temp_input_index(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,32}") {
            let _ = temp_input_index(&s);
        }

        #[test]
        fn round_trip(n in any::<u32>(), zeros in 0usize..3) {
            prop_assert_eq!(temp_input_index(&format!("temp{}{n}_input", "0".repeat(zeros))), Some(n));
        }
    }
}
