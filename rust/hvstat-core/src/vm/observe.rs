//! The sampler's input: what the Python collectors (libvirt, QMP) saw this tick. These mirror
//! `VmObservations` and its parts in python/hvstat/models.py ("VMs") field for field; an unknown field
//! is an error, so the two sides cannot drift silently. Counters are cumulative, in the units their
//! names say; `None` (null or absent) means the collector could not read it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// libvirt's domain states (virDomainState), lower case; QMP's run states are mapped onto them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VmStatus {
    Running,
    Blocked,
    Paused,
    Shutdown,
    Shutoff,
    Crashed,
    Pmsuspended,
    Nostate,
}

impl VmStatus {
    /// Running guests, whose counters move: `running`, and `blocked` (a running domain waiting on a
    /// resource; libvirt's QEMU driver does not use it, Xen's does).
    pub fn is_active(self) -> bool {
        matches!(self, VmStatus::Running | VmStatus::Blocked)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VmStatus::Running => "running",
            VmStatus::Blocked => "blocked",
            VmStatus::Paused => "paused",
            VmStatus::Shutdown => "shutdown",
            VmStatus::Shutoff => "shutoff",
            VmStatus::Crashed => "crashed",
            VmStatus::Pmsuspended => "pmsuspended",
            VmStatus::Nostate => "nostate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VmOrigin {
    Libvirt,
    Qmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VcpuState {
    Offline,
    Running,
    Blocked,
}

/// One vCPU as a collector saw it (libvirt `vcpu.<n>.*`; QMP `query-cpus-fast`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VcpuObservation {
    pub index: u32,
    /// Host thread id of the vCPU (QMP thread-id); `None`: the sampler finds it by thread name.
    #[serde(default)]
    pub tid: Option<u32>,
    #[serde(default)]
    pub state: Option<VcpuState>,
    #[serde(default)]
    pub time_ns: Option<u64>,
    /// libvirt vcpu.<n>.wait: time the vCPU thread waited for I/O.
    #[serde(default)]
    pub wait_ns: Option<u64>,
    /// libvirt vcpu.<n>.delay: runnable but not running (the host's view of steal).
    #[serde(default)]
    pub delay_ns: Option<u64>,
    /// KVM's own counters (libvirt vcpu.<n>.exits.sum / halt_exits.sum; QMP query-stats).
    #[serde(default)]
    pub kvm_exits: Option<u64>,
    #[serde(default)]
    pub kvm_halt_exits: Option<u64>,
}

/// One disk (libvirt `block.<n>.*`; QMP `query-blockstats` for the counters and the allocation,
/// `query-block` every 60 s for the path and sizes). Cumulative counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskObservation {
    pub name: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub read_bytes: Option<u64>,
    #[serde(default)]
    pub write_bytes: Option<u64>,
    #[serde(default)]
    pub read_ops: Option<u64>,
    #[serde(default)]
    pub write_ops: Option<u64>,
    #[serde(default)]
    pub flush_ops: Option<u64>,
    #[serde(default)]
    pub read_time_ns: Option<u64>,
    #[serde(default)]
    pub write_time_ns: Option<u64>,
    #[serde(default)]
    pub flush_time_ns: Option<u64>,
    #[serde(default)]
    pub capacity_bytes: Option<u64>,
    #[serde(default)]
    pub allocation_bytes: Option<u64>,
    #[serde(default)]
    pub physical_bytes: Option<u64>,
}

/// One NIC's counters seen from the guest (libvirt `net.<n>.*` already is; a host tap's are swapped
/// by the core). `name` is the host-side interface (tap/vnet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NicObservation {
    pub name: String,
    #[serde(default)]
    pub rx_bytes: Option<u64>,
    #[serde(default)]
    pub tx_bytes: Option<u64>,
    #[serde(default)]
    pub rx_packets: Option<u64>,
    #[serde(default)]
    pub tx_packets: Option<u64>,
    #[serde(default)]
    pub rx_errors: Option<u64>,
    #[serde(default)]
    pub tx_errors: Option<u64>,
    #[serde(default)]
    pub rx_dropped: Option<u64>,
    #[serde(default)]
    pub tx_dropped: Option<u64>,
}

/// virtio-balloon: the current size always; the rest only while a guest driver reports (libvirt
/// `balloon.*` in KiB are converted to bytes by the collector; QMP `guest-stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BalloonObservation {
    #[serde(default)]
    pub current_bytes: Option<u64>,
    #[serde(default)]
    pub maximum_bytes: Option<u64>,
    #[serde(default)]
    pub available_bytes: Option<u64>,
    #[serde(default)]
    pub usable_bytes: Option<u64>,
    #[serde(default)]
    pub unused_bytes: Option<u64>,
    #[serde(default)]
    pub disk_caches_bytes: Option<u64>,
    #[serde(default)]
    pub swap_in_bytes: Option<u64>,
    #[serde(default)]
    pub swap_out_bytes: Option<u64>,
    #[serde(default)]
    pub major_faults: Option<u64>,
    #[serde(default)]
    pub minor_faults: Option<u64>,
    /// Unix seconds of the guest's last report; `None` or 0: the guest never reported.
    #[serde(default)]
    pub last_update: Option<u64>,
}

/// What a collector read about one VM this tick: the input of the core's VmSampler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmObservation {
    /// The VM's id in the API: libvirt's UUID; for QMP the socket's name without `.qmp` (Proxmox:
    /// the vmid), since a QMP VM has a socket but not always a UUID.
    pub id: String,
    pub name: String,
    /// The SMBIOS UUID (libvirt: the domain's; QMP: `query-uuid` when not all zero).
    #[serde(default)]
    pub uuid: Option<String>,
    pub origin: VmOrigin,
    pub status: VmStatus,
    #[serde(default)]
    pub status_reason: Option<String>,
    /// The QEMU process; `None` when not running or not known.
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub vcpus_current: Option<u32>,
    #[serde(default)]
    pub vcpus_max: Option<u32>,
    #[serde(default)]
    pub memory_max_bytes: Option<u64>,
    /// libvirt cpu.time / cpu.user / cpu.system: the whole QEMU process, ns.
    #[serde(default)]
    pub cpu_time_ns: Option<u64>,
    #[serde(default)]
    pub cpu_user_ns: Option<u64>,
    #[serde(default)]
    pub cpu_system_ns: Option<u64>,
    #[serde(default)]
    pub vcpus: Vec<VcpuObservation>,
    #[serde(default)]
    pub disks: Vec<DiskObservation>,
    /// `None`: the collector has no NIC counters (QMP); the sampler finds the QEMU process's taps.
    #[serde(default)]
    pub nics: Option<Vec<NicObservation>>,
    #[serde(default)]
    pub balloon: Option<BalloonObservation>,
    /// Field -> why the collector could not read it.
    #[serde(default)]
    pub unavailable: BTreeMap<String, String>,
}

impl VmObservation {
    /// An observation with only the required fields set (for tests and callers building one).
    pub fn new(id: impl Into<String>, name: impl Into<String>, origin: VmOrigin, status: VmStatus) -> Self {
        VmObservation {
            id: id.into(),
            name: name.into(),
            uuid: None,
            origin,
            status,
            status_reason: None,
            pid: None,
            vcpus_current: None,
            vcpus_max: None,
            memory_max_bytes: None,
            cpu_time_ns: None,
            cpu_user_ns: None,
            cpu_system_ns: None,
            vcpus: vec![],
            disks: vec![],
            nics: None,
            balloon: None,
            unavailable: BTreeMap::new(),
        }
    }
}

/// One tick's input to the core: every VM that the collectors know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmObservations {
    pub vms: Vec<VmObservation>,
}

impl VmObservations {
    /// Decode the JSON the Python side encodes (msgspec, `VmObservations`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_msgspec_writes() {
        // msgspec writes every field, defaults included.
        let text = r#"{"vms":[{"id":"6f1c","name":"web","origin":"libvirt","status":"running","status_reason":null,
            "pid":4242,"vcpus_current":2,"vcpus_max":4,"memory_max_bytes":134217728,"cpu_time_ns":5,"cpu_user_ns":3,
            "cpu_system_ns":2,"vcpus":[{"index":0,"tid":null,"state":"running","time_ns":1,"wait_ns":0,"delay_ns":7,
            "kvm_exits":null,"kvm_halt_exits":null}],"disks":[{"name":"vda","path":"/x.qcow2","read_bytes":1,
            "write_bytes":2,"read_ops":3,"write_ops":4,"flush_ops":5,"read_time_ns":6,"write_time_ns":7,
            "flush_time_ns":8,"capacity_bytes":9,"allocation_bytes":10,"physical_bytes":11}],
            "nics":[{"name":"vnet0","rx_bytes":1,"tx_bytes":2,"rx_packets":3,"tx_packets":4,"rx_errors":0,
            "tx_errors":0,"rx_dropped":0,"tx_dropped":0}],"balloon":{"current_bytes":1,"maximum_bytes":2,
            "available_bytes":null,"usable_bytes":null,"unused_bytes":null,"disk_caches_bytes":null,
            "swap_in_bytes":null,"swap_out_bytes":null,"major_faults":null,"minor_faults":null,"last_update":0},
            "unavailable":{"disks":"why"}}]}"#;
        let o = VmObservations::from_json(text.as_bytes()).unwrap();
        let v = &o.vms[0];
        assert_eq!((v.origin, v.status, v.pid), (VmOrigin::Libvirt, VmStatus::Running, Some(4242)));
        assert_eq!(v.vcpus[0].state, Some(VcpuState::Running));
        assert_eq!(v.disks[0].flush_time_ns, Some(8));
        assert_eq!(v.nics.as_ref().unwrap()[0].tx_packets, Some(4));
        assert_eq!(v.balloon.as_ref().unwrap().last_update, Some(0));
        assert_eq!(v.unavailable["disks"], "why");
    }

    #[test]
    fn optional_fields_default_and_nics_none_differs_from_empty() {
        let o = VmObservations::from_json(br#"{"vms":[{"id":"a","name":"a","origin":"qmp","status":"paused"}]}"#).unwrap();
        assert_eq!(o.vms[0], VmObservation::new("a", "a", VmOrigin::Qmp, VmStatus::Paused));
        let o = VmObservations::from_json(br#"{"vms":[{"id":"a","name":"a","origin":"qmp","status":"paused","nics":[]}]}"#)
            .unwrap();
        assert_eq!(o.vms[0].nics, Some(vec![]));
    }

    #[test]
    fn rejects_unknown_fields_bad_values_and_missing_keys() {
        let e = VmObservations::from_json(br#"{"vms":[{"id":"a","name":"a","origin":"qmp","status":"running","surprise":1}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `surprise`"), "{e}");
        let e = VmObservations::from_json(br#"{"vms":[{"id":"a","name":"a","origin":"qmp","status":"gone"}]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `gone`"), "{e}");
        let e = VmObservations::from_json(br#"{"vms":[{"id":"a","origin":"qmp","status":"running"}]}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `name`"), "{e}");
        let e = VmObservations::from_json(br#"{"vms":[{"id":"a","name":"a","origin":"qmp","status":"running","cpu_time_ns":-1}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("invalid value"), "{e}");
        assert!(VmObservations::from_json(b"{").is_err());
        assert!(VmObservations::from_json(b"{}").is_err());
    }
}
