//! /sys/kernel/mm/ksm: one number per file. Documentation/admin-guide/mm/ksm.rst.
//! The sampler reads each file with `parse::single_u64`; this module names the files and the result.

/// Files read, in the order of the fields of [`Ksm`].
pub const FILES: [&str; 6] =
    ["run", "pages_shared", "pages_sharing", "pages_unshared", "pages_volatile", "full_scans"];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ksm {
    /// 0 stopped, 1 running, 2 unmerging.
    pub run: Option<u64>,
    /// Shared pages in use (each backs many guest pages).
    pub pages_shared: Option<u64>,
    /// Sites sharing them: how much memory is saved, in pages.
    pub pages_sharing: Option<u64>,
    pub pages_unshared: Option<u64>,
    pub pages_volatile: Option<u64>,
    pub full_scans: Option<u64>,
}
