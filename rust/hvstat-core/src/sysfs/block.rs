//! Block devices in sysfs: which ones are built on other block devices.

use std::path::Path;

/// Whether the block device `major:minor` is stacked on other block devices: its
/// `<sys_root>/dev/block/<major>:<minor>/slaves/` is not empty. The links in it are made by
/// `bd_link_disk_holder()` (block/holder.c), which device-mapper (LVM, dm-crypt, multipath), MD RAID
/// and bcache call for each device they are built on. A directory that cannot be read (not in
/// `sys_root`, the device gone) counts as not stacked.
pub fn has_slaves(sys_root: &Path, major: u32, minor: u32) -> bool {
    let dir = sys_root.join(format!("dev/block/{major}:{minor}/slaves"));
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}
