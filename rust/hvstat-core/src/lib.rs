//! hvstat-core: readers, parsers and rate math for what a Linux hypervisor node exposes in /proc,
//! /sys and its cgroup trees. Pure Rust, no Python: `cargo test` runs it anywhere.
//!
//! The layers, bottom up:
//! - [`parse`]: byte helpers and [`parse::ParseError`]; every parser in [`procfs`] and [`sysfs`] is a
//!   pure function `&[u8] -> ParseResult<T>` that never panics.
//! - [`read`]: [`read::FileReader`] keeps a file open and re-reads it with pread at offset 0;
//!   [`host`]: sysconf values and namespace identities, shared by the samplers.
//! - [`rate`]: counter deltas and rates from monotonic time; null on the first sample and on reset.
//! - [`node`]: the node sampler, bound to injectable roots (proc, sys, rootfs), and the node model,
//!   a pure function of (current raw sample, previous raw sample, elapsed time).
//! - [`vm`]: the VM sampler: the collectors' observations plus each QEMU process's /proc files, and
//!   the VM model, built the same way.
//! - [`procs`]: the process sampler: every /proc/<pid>, per process, per user, per guest and for the
//!   host, with persistent heavy users and the load status.
//! - [`wire`]: the JSON Schema of every type that crosses into Python (the samples, the VM
//!   observations); the Python Structs are generated from it.
//!
//! Errors are one enum, [`Error`], and every variant names its path.

pub mod cgroup;
pub mod error;
pub mod filter;
pub mod host;
pub mod node;
pub mod parse;
pub mod procfs;
pub mod procs;
pub mod rate;
pub mod read;
pub mod sysfs;
pub mod vm;
pub mod wire;

pub use error::{Error, Result};
