//! cgroup v1 and v2: file parsers ([`v1`], [`v2`]), tree discovery and path classification
//! ([`discover`]), runtime metadata for names ([`names`]), the reader of one cgroup's files
//! ([`reader`], used by the container sampler and the VM sampler) and the per-container sampler.

pub mod discover;
pub mod model;
pub mod names;
pub mod reader;
pub mod sampler;
pub mod v1;
pub mod v2;

/// A limit that can be "max" (no limit). Never encoded as -1 or as a huge number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Max,
    Value(u64),
}
