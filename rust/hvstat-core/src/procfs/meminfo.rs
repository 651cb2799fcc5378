//! /proc/meminfo. Values are converted from kB to bytes at parse time; the HugePages_* lines are
//! page counts. Every key is optional: which ones exist depends on kernel version and config.

use crate::parse::{ParseError, ParseResult};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total_bytes: Option<u64>,
    pub mem_free_bytes: Option<u64>,
    /// Since Linux 3.14.
    pub mem_available_bytes: Option<u64>,
    pub buffers_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
    pub swap_cached_bytes: Option<u64>,
    pub active_bytes: Option<u64>,
    pub inactive_bytes: Option<u64>,
    pub active_anon_bytes: Option<u64>,
    pub inactive_anon_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub unevictable_bytes: Option<u64>,
    pub mlocked_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub dirty_bytes: Option<u64>,
    pub writeback_bytes: Option<u64>,
    pub anon_pages_bytes: Option<u64>,
    pub mapped_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    pub slab_bytes: Option<u64>,
    pub s_reclaimable_bytes: Option<u64>,
    pub s_unreclaim_bytes: Option<u64>,
    pub kernel_stack_bytes: Option<u64>,
    pub page_tables_bytes: Option<u64>,
    pub commit_limit_bytes: Option<u64>,
    pub committed_as_bytes: Option<u64>,
    pub vmalloc_used_bytes: Option<u64>,
    pub anon_huge_pages_bytes: Option<u64>,
    pub hugepages_total: Option<u64>,
    pub hugepages_free: Option<u64>,
    pub hugepages_rsvd: Option<u64>,
    pub hugepages_surp: Option<u64>,
    pub hugepagesize_bytes: Option<u64>,
    /// Since Linux 4.16.
    pub hugetlb_bytes: Option<u64>,
}

pub fn parse(buf: &[u8]) -> ParseResult<MemInfo> {
    let _ = buf;
    Err(ParseError::new(0, "not implemented"))
}
