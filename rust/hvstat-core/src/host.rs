//! What the running kernel says of itself, for the samplers: sysconf values, and which namespace a
//! process is in. One place, so that the node, container and VM samplers agree.

use std::path::Path;

use crate::procfs::pid;

/// USER_HZ, the unit of the times in /proc/stat and /proc/<pid>/stat (sysconf(_SC_CLK_TCK); 100
/// when it fails).
pub fn user_hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

/// The page size, the unit of /proc/<pid>/statm and of KSM's page counts (sysconf(_SC_PAGESIZE);
/// 4096 when it fails).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// The inode of the namespace a /proc/<pid>/ns/<kind> link names: its target reads
/// `<kind>:[<inode>]` (namespaces(7)). None when the link cannot be read (the process is gone, or
/// reading it needs ptrace access we lack).
pub fn ns_inode(link: &Path) -> Option<u64> {
    pid::parse_ns_link(&std::fs::read_link(link).ok()?.to_string_lossy())
}
