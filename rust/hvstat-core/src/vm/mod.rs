//! VMs: the collectors in Python (libvirt's bulk stats, QMP) observe each VM once per tick and hand
//! the observations over as JSON ([`observe`], mirroring `VmObservations` in
//! python/hvstat/models.py); [`sampler::VmSampler`] adds what the kernel says about each VM's QEMU
//! process ([`process`]: /proc/<pid>/{stat,statm,io,cgroup,net/dev}, the vCPU threads'
//! task/<tid>/{stat,schedstat}, the tap interfaces behind its /dev/net/tun fds) and does the counter
//! math in [`model`], a pure function of (current reading, previous reading, elapsed seconds).
//!
//! Per VM, keyed by its id: CPU of the whole QEMU process (libvirt's cpu.time, else utime + stime)
//! as a share of the host and of the VM's own vCPUs; per-vCPU time and steal (libvirt's vcpu.<n>.*,
//! else the thread named `CPU <n>/<accel>`); memory from the balloon (the guest's view) and the
//! QEMU process's resident set (the host's); disks with rates and latency; NICs from libvirt, or
//! from the QEMU process's taps with rx and tx swapped into the guest's view. A restarted QEMU
//! (another pid, or the same pid with another start time) is a counter reset: no rates for that
//! tick. The `cgroup` field is the Python service's to fill; the core always writes null.

pub mod model;
pub mod observe;
pub mod process;
pub mod sampler;

pub use model::{VmMetrics, VmsSample};
pub use observe::{VmObservation, VmObservations};
pub use sampler::{VmConfig, VmSampler};
