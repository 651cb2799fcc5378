//! Processes and users: who is loading the host.
//!
//! - [`sampler`]: [`sampler::ProcessSampler`] reads every /proc/<pid> each tick (stat, and io when it may have moved
//!   through kept-open fds within a bounded budget; the uid and cgroup once per process and after an
//!   exec) and aggregates per user, per container or VM, and for the host; persistent heavy users and
//!   the load status.
//! - [`model`]: the reported form, a pure function of the raw readings and the previous ones.
//! - [`passwd`]: /etc/passwd for uid -> user name.

pub mod model;
pub mod passwd;
pub mod sampler;

pub use model::ProcessesSample;
pub use sampler::{ProcessConfig, ProcessSampler};
