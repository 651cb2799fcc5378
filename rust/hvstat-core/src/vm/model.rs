//! The reported form of a VM: [`build`] is a pure function of (current reading, previous reading,
//! seconds between them). Field names mirror `VmMetrics` and its parts in python/hvstat/models.py;
//! units are in the names; a value that cannot be known is null, with the reason in the VM's
//! `unavailable`, and a rate is never negative (a counter that went down gives no rate that tick).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::observe::{BalloonObservation, DiskObservation, VcpuState, VmObservation, VmOrigin, VmStatus};
use super::process::{ProcessReading, ProcessState, Tap};
use crate::rate::{delta, per_sec, percent};
use crate::cgroup::Limit;
use crate::node::model::Pressure;

/// One VM sample as the core produces it (every VM at once).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VmsSample {
    pub timestamp: f64,
    /// Monotonic seconds since the previous sample() call.
    #[serde(default)]
    pub interval_secs: Option<f64>,
    /// Online CPUs of the host: what `cpu_usage_percent` is a share of.
    #[serde(default)]
    pub host_cpus: Option<u64>,
    #[serde(default)]
    pub vms: Vec<VmMetrics>,
    /// Ids new / gone since the previous sample() call.
    #[serde(default)]
    pub appeared: Vec<String>,
    #[serde(default)]
    pub vanished: Vec<String>,
    #[serde(default)]
    pub unavailable: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VcpuOrigin {
    /// libvirt's vcpu.<n>.time (and delay, wait).
    Libvirt,
    /// The vCPU thread's /proc/<pid>/task/<tid>/stat and schedstat.
    Thread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NicOrigin {
    /// libvirt's net.<n>.*: already the guest's view.
    Libvirt,
    /// The QEMU process's host tap, rx and tx swapped into the guest's view.
    Tap,
}

/// One vCPU of a VM: its time and steal over the interval and cumulative.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VcpuMetrics {
    pub index: u32,
    /// Host thread id of the vCPU.
    #[serde(default)]
    pub tid: Option<u32>,
    #[serde(default)]
    pub state: Option<VcpuState>,
    /// Time this vCPU ran over the interval, percent of one core.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    #[serde(default)]
    pub cpu_secs_total: Option<f64>,
    /// Runnable but waiting for a host CPU: the guest's steal, percent of the interval.
    #[serde(default)]
    pub steal_percent: Option<f64>,
    #[serde(default)]
    pub steal_secs_total: Option<f64>,
    /// libvirt vcpu.<n>.wait.
    #[serde(default)]
    pub wait_secs_total: Option<f64>,
    /// KVM guests only: VM exits and halt exits per second (from the observation's `kvm_*`
    /// counters).
    #[serde(default)]
    pub kvm_exits_per_sec: Option<f64>,
    #[serde(default)]
    pub kvm_halt_exits_per_sec: Option<f64>,
    /// Null when nothing tells this vCPU's time (no libvirt time, no thread found).
    #[serde(default)]
    pub origin: Option<VcpuOrigin>,
}

/// One disk of a VM, as libvirt or QMP count it, with rates over the interval.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VmDisk {
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
    pub read_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub write_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub read_ops_per_sec: Option<f64>,
    #[serde(default)]
    pub write_ops_per_sec: Option<f64>,
    /// Mean time per request over the interval; null when no request completed.
    #[serde(default)]
    pub read_latency_ms: Option<f64>,
    #[serde(default)]
    pub write_latency_ms: Option<f64>,
    #[serde(default)]
    pub flush_latency_ms: Option<f64>,
    #[serde(default)]
    pub capacity_bytes: Option<u64>,
    #[serde(default)]
    pub allocation_bytes: Option<u64>,
    #[serde(default)]
    pub physical_bytes: Option<u64>,
}

/// One NIC of a VM, counted as the guest sees it (rx: received by the guest).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VmNic {
    /// The host-side interface; rx and tx are the guest's.
    pub name: String,
    pub origin: NicOrigin,
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
    #[serde(default)]
    pub rx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub tx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub rx_packets_per_sec: Option<f64>,
    #[serde(default)]
    pub tx_packets_per_sec: Option<f64>,
}

/// The QEMU process from /proc/<pid>: the host's side of the VM.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VmProcess {
    pub pid: u32,
    #[serde(default)]
    pub threads: Option<u64>,
    /// Unix seconds.
    #[serde(default)]
    pub started_at: Option<f64>,
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    #[serde(default)]
    pub cpu_secs_total: Option<f64>,
    /// /proc/<pid>/io: bytes the process caused to be read from / written to storage.
    #[serde(default)]
    pub read_bytes: Option<u64>,
    #[serde(default)]
    pub write_bytes: Option<u64>,
    #[serde(default)]
    pub read_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub write_bytes_per_sec: Option<f64>,
    /// The process's cgroup (the unified line, else the v1 cpu/cpuacct line).
    #[serde(default)]
    pub cgroup_path: Option<String>,
}

/// The VM's cgroup: the VM scope holding its QEMU process (libvirt's machine, Proxmox's
/// `qemu.slice/<vmid>.scope`), read by the VM sampler in the same tick as the rest of the VM.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VmCgroup {
    pub cgroup_path: String,
    /// When the cgroup was read, unix seconds.
    pub timestamp: f64,
    #[serde(default)]
    pub cpu_usage_percent: Option<f64>,
    #[serde(default)]
    pub memory_usage_bytes: Option<u64>,
    #[serde(default)]
    pub memory_limit_bytes: Option<Limit>,
    #[serde(default)]
    pub pressure_cpu: Option<Pressure>,
    #[serde(default)]
    pub pressure_memory: Option<Pressure>,
    #[serde(default)]
    pub pressure_io: Option<Pressure>,
}

/// `GET /api/vms/{ref}/metrics`: one VM. See docs/api.md and docs/metrics.md.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VmMetrics {
    /// When this VM was read, unix seconds.
    pub timestamp: f64,
    /// The VM's id in the API: libvirt's UUID; for QMP the socket's name without `.qmp` (Proxmox:
    /// the vmid).
    pub id: String,
    pub name: String,
    /// The SMBIOS UUID (for libvirt the same as `id`); `GET /api/vms/{ref}` finds a VM by it too.
    #[serde(default)]
    pub uuid: Option<String>,
    pub origin: VmOrigin,
    pub status: VmStatus,
    #[serde(default)]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub vcpus: Option<u32>,
    #[serde(default)]
    pub vcpus_max: Option<u32>,
    /// Share of the host (all online CPUs = 100) of the whole QEMU process's CPU time.
    pub cpu_usage_percent: Option<f64>,
    /// Cores in use by the whole QEMU process over the interval.
    #[serde(default)]
    pub cpu_cores: Option<f64>,
    /// Share of the VM's own vCPUs: a fully busy 4-vCPU guest reads 100.
    #[serde(default)]
    pub cpu_vcpu_percent: Option<f64>,
    #[serde(default)]
    pub cpu_secs_total: Option<f64>,
    #[serde(default)]
    pub cpu_user_secs_total: Option<f64>,
    #[serde(default)]
    pub cpu_system_secs_total: Option<f64>,
    #[serde(default)]
    pub vcpu: Vec<VcpuMetrics>,
    #[serde(default)]
    pub memory_max_bytes: Option<u64>,
    /// The balloon's current size: the memory the guest has now.
    #[serde(default)]
    pub memory_balloon_bytes: Option<u64>,
    /// The guest's own view (balloon driver stats): `memory_usage_percent` = (available - usable) /
    /// available; null when the guest does not report.
    #[serde(default)]
    pub memory_available_bytes: Option<u64>,
    #[serde(default)]
    pub memory_usable_bytes: Option<u64>,
    #[serde(default)]
    pub memory_unused_bytes: Option<u64>,
    /// (available - usable) / available, from the guest's balloon driver.
    pub memory_usage_percent: Option<f64>,
    /// The host's view: the QEMU process's resident set (/proc/<pid>/statm, what status shows as VmRSS).
    #[serde(default)]
    pub memory_rss_bytes: Option<u64>,
    #[serde(default)]
    pub memory_swap_in_bytes: Option<u64>,
    #[serde(default)]
    pub memory_swap_out_bytes: Option<u64>,
    #[serde(default)]
    pub memory_major_faults: Option<u64>,
    pub disk_read_bytes: Option<u64>,
    pub disk_write_bytes: Option<u64>,
    #[serde(default)]
    pub disk_read_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub disk_write_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub disk_read_ops_per_sec: Option<f64>,
    #[serde(default)]
    pub disk_write_ops_per_sec: Option<f64>,
    #[serde(default)]
    pub disks: Vec<VmDisk>,
    pub network_rx_bytes: Option<u64>,
    pub network_tx_bytes: Option<u64>,
    #[serde(default)]
    pub network_rx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub network_tx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub nics: Vec<VmNic>,
    #[serde(default)]
    pub process: Option<VmProcess>,
    #[serde(default)]
    pub cgroup: Option<VmCgroup>,
    #[serde(default)]
    pub unavailable: BTreeMap<String, String>,
}

/// One vCPU's cumulative counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VcpuReading {
    pub index: u32,
    pub tid: Option<u32>,
    pub state: Option<VcpuState>,
    pub origin: Option<VcpuOrigin>,
    pub cpu_ns: Option<u64>,
    pub steal_ns: Option<u64>,
    /// libvirt's vcpu.<n>.wait (I/O wait); the thread origin has none.
    pub wait_ns: Option<u64>,
    pub kvm_exits: Option<u64>,
    pub kvm_halt_exits: Option<u64>,
}

impl VcpuReading {
    /// A vCPU as the collector gave it, timed by libvirt when it gave `time_ns`; else the caller
    /// fills in the thread's counters.
    pub fn from_observation(v: &super::observe::VcpuObservation) -> Self {
        let libvirt = v.time_ns.is_some();
        VcpuReading {
            index: v.index,
            tid: v.tid,
            state: v.state,
            origin: libvirt.then_some(VcpuOrigin::Libvirt),
            cpu_ns: v.time_ns,
            steal_ns: if libvirt { v.delay_ns } else { None },
            wait_ns: if libvirt { v.wait_ns } else { None },
            kvm_exits: v.kvm_exits,
            kvm_halt_exits: v.kvm_halt_exits,
        }
    }
}

/// The process's taps, when the sampler looked for them (the observation had no NIC counters).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Taps {
    /// Not looked for: the collector gave NIC counters, or there is no process to look in.
    #[default]
    NotRead,
    Read(Vec<Tap>),
    Error(String),
}

/// Everything known about one VM at one moment: the collector's observation and what the sampler
/// read from /proc.
#[derive(Debug, Clone, PartialEq)]
pub struct RawVm {
    pub obs: VmObservation,
    pub process: ProcessState,
    pub vcpus: Vec<VcpuReading>,
    pub taps: Taps,
    pub cgroup: CgroupReading,
    /// (field, reason) for what the sampler could not read.
    pub errors: Vec<(String, String)>,
}

/// The VM's cgroup as the sampler read it this tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum CgroupReading {
    /// Not read: there is no QEMU process reading to find it from (its reason stands).
    #[default]
    NotRead,
    /// Why it could not be found or read (the QEMU process is in no VM scope, ...).
    Unavailable(String),
    /// The numbers, with (field, reason) for those that are null.
    Read(Box<VmCgroup>, Vec<(String, String)>),
}

impl RawVm {
    pub fn new(obs: VmObservation) -> Self {
        RawVm { obs, process: ProcessState::NoPid, vcpus: vec![], taps: Taps::NotRead, cgroup: CgroupReading::NotRead, errors: vec![] }
    }

    /// The whole process's CPU time: the collector's (libvirt cpu.time) when it has one, else
    /// utime + stime of /proc/<pid>/stat.
    fn cpu_time(&self) -> Option<CpuTime> {
        if let Some(total_ns) = self.obs.cpu_time_ns {
            return Some(CpuTime { total_ns, user_ns: self.obs.cpu_user_ns, system_ns: self.obs.cpu_system_ns, from_collector: true });
        }
        let p = self.process.reading()?;
        Some(CpuTime { total_ns: p.user_ns.saturating_add(p.system_ns), user_ns: Some(p.user_ns), system_ns: Some(p.system_ns), from_collector: false })
    }
}

#[derive(Debug, Clone, Copy)]
struct CpuTime {
    total_ns: u64,
    user_ns: Option<u64>,
    system_ns: Option<u64>,
    /// From the collector (libvirt), not from /proc: two clocks that are not one counter.
    from_collector: bool,
}

const FIRST: &str = "first sample of this VM: a rate needs two readings";
const RESTARTED: &str = "the VM's QEMU process changed (the VM was started or restarted): its counters started over; rates resume next interval";
const RESET: &str = "counter went down (counters reset); rates resume next interval";
const NO_BALLOON_STATS: &str = "the guest's balloon driver has not reported statistics";
const NO_TAP: &str = "no tap interface: QEMU user-mode networking has no counters on the host";

/// Record why `field` is null, unless a reason (the collector's, or a more precise one found
/// earlier) is there already.
fn note(why: &mut BTreeMap<String, String>, field: &str, reason: &str) {
    why.entry(field.to_owned()).or_insert_with(|| reason.to_owned());
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Sum of the values that are known; `None` when none is.
fn sum_u64(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.flatten().fold(None, |acc: Option<u64>, v| Some(acc.unwrap_or(0).saturating_add(v)))
}

/// As [`sum_u64`], for rates.
fn sum_f64(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().fold(None, |acc: Option<f64>, v| Some(acc.unwrap_or(0.0) + v))
}

/// Whether the two readings are of different QEMU processes (another pid, or the same pid with
/// another start time): the counters of the VM started over in between.
fn restarted(prev: &RawVm, cur: &RawVm) -> bool {
    let start = |r: &RawVm| r.process.reading().map(|p| p.starttime_ticks);
    prev.obs.pid != cur.obs.pid || matches!((start(prev), start(cur)), (Some(a), Some(b)) if a != b)
}

/// The previous reading and the seconds since it, when rates can be made of them.
type Base<'a> = Option<(&'a RawVm, f64)>;

/// A per-second rate over the base's interval (null without a base).
fn rate(base: Base, p: Option<u64>, c: Option<u64>) -> Option<f64> {
    base.and_then(|(_, dt)| per_sec(p, c?, dt))
}

/// Why no rates can be made this tick: the VM is not running, or there is no previous reading of
/// the same running process, or no time passed. `None`: rates are possible.
fn rates_why(cur: &RawVm, prev: Base) -> Option<String> {
    let status = cur.obs.status;
    if !status.is_active() {
        return Some(format!("the VM is {}: rates are reported only while it runs", status.as_str()));
    }
    match prev {
        None => Some(FIRST.into()),
        Some((p, _)) if restarted(p, cur) => Some(RESTARTED.into()),
        Some((_, dt)) if !(dt > 0.0 && dt.is_finite()) => Some("no time elapsed since the previous sample".into()),
        Some(_) => None,
    }
}

/// Why there is no reading of the QEMU process this tick (`None`: there is one).
fn process_why(cur: &RawVm) -> Option<String> {
    let status = cur.obs.status;
    match &cur.process {
        ProcessState::Read(_) => None,
        ProcessState::NoPid if status.is_active() => Some("the collector did not report the QEMU process id".into()),
        ProcessState::NoPid => Some(format!("no QEMU process: the VM is {}", status.as_str())),
        ProcessState::Gone(pid) => Some(format!("the QEMU process {pid} is gone")),
        ProcessState::Error(_, e) => Some(e.clone()),
    }
}

/// The CPU of the whole VM (its QEMU process).
struct Cpu {
    time: Option<CpuTime>,
    /// CPU time over the interval.
    delta_ns: Option<u64>,
    cores: Option<f64>,
    usage_percent: Option<f64>,
}

fn cpu(cur: &RawVm, base: Base, host_cpus: Option<u64>, process_why: Option<&str>, rates_why: Option<&str>, why: &mut BTreeMap<String, String>) -> Cpu {
    let time = cur.cpu_time();
    let prev_time = base.and_then(|(p, _)| p.cpu_time());
    let delta_ns = match (prev_time, time) {
        (Some(p), Some(c)) if p.from_collector == c.from_collector => {
            let d = delta(Some(p.total_ns), c.total_ns);
            if d.is_none() {
                note(why, "cpu_usage_percent", RESET);
            }
            d
        }
        (Some(_), Some(_)) => {
            note(why, "cpu_usage_percent", "the CPU time's source changed between the collector and /proc; rates resume next interval");
            None
        }
        _ => None,
    };
    let cores = delta_ns.zip(base).map(|(d, (_, dt))| secs(d) / dt);
    let usage_percent = cores.zip(host_cpus).and_then(|(c, n)| percent(c, n as f64));
    if usage_percent.is_none() {
        let r = if time.is_none() {
            process_why.map(|p| format!("no CPU time: the collector gave none and {p}")).unwrap_or_else(|| "no CPU time".into())
        } else if let Some(r) = rates_why {
            r.to_owned()
        } else if host_cpus.is_none() {
            "the number of online CPUs of the host is unknown".into()
        } else {
            // A reset or a change of source was named above (the first reason stays).
            "the previous sample had no CPU time; rates resume next interval".into()
        };
        note(why, "cpu_usage_percent", &r);
    }
    Cpu { time, delta_ns, cores, usage_percent }
}

/// The vCPUs, their count, and the VM's CPU as a share of them.
struct Vcpus {
    list: Vec<VcpuMetrics>,
    count: Option<u32>,
    vcpu_percent: Option<f64>,
}

fn vcpus(cur: &RawVm, base: Base, cpu_delta_ns: Option<u64>, rates_why: Option<&str>, why: &mut BTreeMap<String, String>) -> Vcpus {
    let dt = base.map(|(_, dt)| dt);
    let prev_vcpus = base.map(|(p, _)| p.vcpus.as_slice()).unwrap_or_default();
    let mut deltas: Vec<Option<u64>> = Vec::with_capacity(cur.vcpus.len());
    let list: Vec<VcpuMetrics> = cur
        .vcpus
        .iter()
        .map(|v| {
            // The same vCPU read the same way (a re-created thread is a new counter).
            let pv = prev_vcpus.iter().find(|p| p.index == v.index && p.origin == v.origin && p.tid == v.tid && v.origin.is_some());
            let d = pv.and_then(|p| delta(p.cpu_ns, v.cpu_ns?));
            deltas.push(d);
            let pct = |p: Option<u64>, c: Option<u64>| delta(p, c?).zip(dt).and_then(|(d, dt)| percent(secs(d), dt));
            VcpuMetrics {
                index: v.index,
                tid: v.tid,
                state: v.state,
                cpu_percent: d.zip(dt).and_then(|(d, dt)| percent(secs(d), dt)),
                cpu_secs_total: v.cpu_ns.map(secs),
                steal_percent: pct(pv.and_then(|p| p.steal_ns), v.steal_ns),
                steal_secs_total: v.steal_ns.map(secs),
                wait_secs_total: v.wait_ns.map(secs),
                kvm_exits_per_sec: rate(base, pv.and_then(|p| p.kvm_exits), v.kvm_exits),
                kvm_halt_exits_per_sec: rate(base, pv.and_then(|p| p.kvm_halt_exits), v.kvm_halt_exits),
                origin: v.origin,
            }
        })
        .collect();
    let count = cur.obs.vcpus_current.or_else(|| u32::try_from(cur.vcpus.len()).ok().filter(|&n| n > 0));
    let all_timed = !deltas.is_empty() && deltas.iter().all(Option::is_some);
    let busy_ns = if all_timed { deltas.iter().flatten().copied().reduce(u64::saturating_add) } else { cpu_delta_ns };
    let vcpu_percent = busy_ns.zip(dt).zip(count).and_then(|((d, dt), n)| percent(secs(d) / dt, f64::from(n)));
    if vcpu_percent.is_none() {
        let r = if count.is_none() {
            "the number of vCPUs is unknown".to_owned()
        } else if count == Some(0) {
            "the collector reports 0 vCPUs".to_owned()
        } else {
            why.get("cpu_usage_percent").cloned().or(rates_why.map(str::to_owned)).unwrap_or_else(|| "no CPU time".into())
        };
        note(why, "cpu_vcpu_percent", &r);
    }
    Vcpus { list, count, vcpu_percent }
}

/// The guest's memory from its balloon driver, when it reported.
struct GuestMemory {
    available: Option<u64>,
    usable: Option<u64>,
    usage_percent: Option<f64>,
}

/// The balloon's statistics, only once the guest reported them (last_update > 0).
fn balloon_stats(o: &VmObservation) -> Option<&BalloonObservation> {
    o.balloon.as_ref().filter(|b| b.last_update.is_some_and(|t| t > 0))
}

fn guest_memory(cur: &RawVm, process_why: Option<&str>, why: &mut BTreeMap<String, String>) -> GuestMemory {
    let stats = balloon_stats(&cur.obs);
    let (available, usable) = (stats.and_then(|b| b.available_bytes), stats.and_then(|b| b.usable_bytes));
    let usage_percent = match (available, usable) {
        (Some(a), Some(u)) if u <= a => percent((a - u) as f64, a as f64),
        (Some(_), Some(_)) => {
            note(why, "memory_usage_percent", "the guest reported more usable than available memory");
            None
        }
        _ => None,
    };
    if usage_percent.is_none() {
        let r = match (&cur.obs.balloon, stats) {
            (None, _) => why.get("balloon").cloned().unwrap_or_else(|| "the VM has no balloon device".into()),
            (Some(_), None) => NO_BALLOON_STATS.into(),
            (Some(_), Some(_)) => "the guest's balloon statistics lack available or usable memory".into(),
        };
        note(why, "memory_usage_percent", &r);
    }
    if let (None, Some(r)) = (cur.process.reading(), process_why) {
        note(why, "memory_rss_bytes", r);
    }
    GuestMemory { available, usable, usage_percent }
}

/// The disks with their rates and latencies.
fn disks(cur: &RawVm, base: Base) -> Vec<VmDisk> {
    let prev_disks = base.map(|(p, _)| p.obs.disks.as_slice()).unwrap_or_default();
    cur.obs.disks.iter().map(|d| disk(d, prev_disks.iter().find(|p| p.name == d.name), base)).collect()
}

fn disk(d: &DiskObservation, pd: Option<&DiskObservation>, base: Base) -> VmDisk {
    let r = |f: fn(&DiskObservation) -> Option<u64>| rate(base, pd.and_then(f), f(d));
    let latency = |time: fn(&DiskObservation) -> Option<u64>, ops: fn(&DiskObservation) -> Option<u64>| {
        let p = pd.filter(|_| base.is_some())?;
        let n = delta(ops(p), ops(d)?).filter(|&n| n > 0)?;
        Some(delta(time(p), time(d)?)? as f64 / n as f64 / 1e6)
    };
    VmDisk {
        name: d.name.clone(),
        path: d.path.clone(),
        read_bytes: d.read_bytes,
        write_bytes: d.write_bytes,
        read_ops: d.read_ops,
        write_ops: d.write_ops,
        flush_ops: d.flush_ops,
        read_bytes_per_sec: r(|d| d.read_bytes),
        write_bytes_per_sec: r(|d| d.write_bytes),
        read_ops_per_sec: r(|d| d.read_ops),
        write_ops_per_sec: r(|d| d.write_ops),
        read_latency_ms: latency(|d| d.read_time_ns, |d| d.read_ops),
        write_latency_ms: latency(|d| d.write_time_ns, |d| d.write_ops),
        flush_latency_ms: latency(|d| d.flush_time_ns, |d| d.flush_ops),
        capacity_bytes: d.capacity_bytes,
        allocation_bytes: d.allocation_bytes,
        physical_bytes: d.physical_bytes,
    }
}

/// Total bytes read and written over the disks, and why a total is null.
fn disk_totals(disks: &[VmDisk], why: &mut BTreeMap<String, String>) -> (Option<u64>, Option<u64>) {
    let read = sum_u64(disks.iter().map(|d| d.read_bytes));
    let write = sum_u64(disks.iter().map(|d| d.write_bytes));
    for (field, value, what) in [("disk_read_bytes", read, "read"), ("disk_write_bytes", write, "written")] {
        if value.is_none() {
            let r = why.get("disks").cloned().unwrap_or_else(|| {
                if disks.is_empty() { "the VM has no disks".to_owned() } else { format!("no disk reports bytes {what}") }
            });
            note(why, field, &r);
        }
    }
    (read, write)
}

/// The NICs with their rates, and the VM's rx and tx byte totals (null with a reason when
/// nothing reports them).
fn nics(cur: &RawVm, base: Base, why: &mut BTreeMap<String, String>) -> (Vec<VmNic>, Option<u64>, Option<u64>) {
    let (nics, nics_why) = nics_of(cur, why);
    let prev_nics = base.map(|(p, _)| nics_of(p, &mut BTreeMap::new()).0).unwrap_or_default();
    let nics: Vec<VmNic> = nics
        .into_iter()
        .map(|mut n| {
            let pn = prev_nics.iter().find(|p| p.name == n.name && p.origin == n.origin);
            n.rx_bytes_per_sec = rate(base, pn.and_then(|p| p.rx_bytes), n.rx_bytes);
            n.tx_bytes_per_sec = rate(base, pn.and_then(|p| p.tx_bytes), n.tx_bytes);
            n.rx_packets_per_sec = rate(base, pn.and_then(|p| p.rx_packets), n.rx_packets);
            n.tx_packets_per_sec = rate(base, pn.and_then(|p| p.tx_packets), n.tx_packets);
            n
        })
        .collect();
    let rx = sum_u64(nics.iter().map(|n| n.rx_bytes));
    let tx = sum_u64(nics.iter().map(|n| n.tx_bytes));
    for (field, value) in [("network_rx_bytes", rx), ("network_tx_bytes", tx)] {
        if value.is_none() {
            let r = nics_why.clone().unwrap_or_else(|| "no NIC reports this counter".into());
            note(why, field, &r);
        }
    }
    (nics, rx, tx)
}

/// The VM's cgroup numbers, and why they are null (under `cgroup`, or `cgroup.<field>`).
fn cgroup(cur: &RawVm, process_why: Option<&str>, why: &mut BTreeMap<String, String>) -> Option<VmCgroup> {
    match &cur.cgroup {
        CgroupReading::NotRead => {
            note(why, "cgroup", process_why.unwrap_or("the QEMU process's cgroup was not read"));
            None
        }
        CgroupReading::Unavailable(r) => {
            note(why, "cgroup", r);
            None
        }
        CgroupReading::Read(c, reasons) => {
            for (field, r) in reasons {
                note(why, &format!("cgroup.{field}"), r);
            }
            Some(VmCgroup::clone(c))
        }
    }
}

/// The reported VM from its current reading and, when rates are possible, the previous reading and
/// the seconds between the two.
pub fn build(cur: &RawVm, prev: Option<(&RawVm, f64)>, host_cpus: Option<u64>, timestamp: f64) -> VmMetrics {
    let o = &cur.obs;
    let mut why: BTreeMap<String, String> = o.unavailable.clone();
    for (field, e) in &cur.errors {
        note(&mut why, field, e);
    }
    // Rates need a previous reading of the same running process.
    let rates_why = rates_why(cur, prev);
    let base: Base = if rates_why.is_none() { prev } else { None };
    if let Some(r) = &rates_why {
        note(&mut why, "rates", r);
    }
    let process_why = process_why(cur);
    if let Some(r) = &process_why {
        note(&mut why, "process", r);
    }
    let prev_p = base.and_then(|(p, _)| p.process.reading());
    let process = cur.process.reading().map(|p| process_metrics(p, prev_p, &|p, c| rate(base, p, c)));
    let cpu = cpu(cur, base, host_cpus, process_why.as_deref(), rates_why.as_deref(), &mut why);
    let vcpus = vcpus(cur, base, cpu.delta_ns, rates_why.as_deref(), &mut why);
    let memory = guest_memory(cur, process_why.as_deref(), &mut why);
    let disks = disks(cur, base);
    let (disk_read_bytes, disk_write_bytes) = disk_totals(&disks, &mut why);
    let (nics, network_rx_bytes, network_tx_bytes) = nics(cur, base, &mut why);
    let cgroup = cgroup(cur, process_why.as_deref(), &mut why);
    let guest = |f: fn(&BalloonObservation) -> Option<u64>| balloon_stats(o).and_then(f);

    VmMetrics {
        timestamp,
        id: o.id.clone(),
        name: o.name.clone(),
        uuid: o.uuid.clone(),
        origin: o.origin,
        status: o.status,
        status_reason: o.status_reason.clone(),
        vcpus: vcpus.count,
        vcpus_max: o.vcpus_max,
        cpu_usage_percent: cpu.usage_percent,
        cpu_cores: cpu.cores,
        cpu_vcpu_percent: vcpus.vcpu_percent,
        cpu_secs_total: cpu.time.map(|c| secs(c.total_ns)),
        cpu_user_secs_total: cpu.time.and_then(|c| c.user_ns).map(secs),
        cpu_system_secs_total: cpu.time.and_then(|c| c.system_ns).map(secs),
        vcpu: vcpus.list,
        memory_max_bytes: o.memory_max_bytes,
        memory_balloon_bytes: o.balloon.as_ref().and_then(|b| b.current_bytes),
        memory_available_bytes: memory.available,
        memory_usable_bytes: memory.usable,
        memory_unused_bytes: guest(|b| b.unused_bytes),
        memory_usage_percent: memory.usage_percent,
        memory_rss_bytes: cur.process.reading().and_then(|p| p.rss_bytes),
        memory_swap_in_bytes: guest(|b| b.swap_in_bytes),
        memory_swap_out_bytes: guest(|b| b.swap_out_bytes),
        memory_major_faults: guest(|b| b.major_faults),
        disk_read_bytes,
        disk_write_bytes,
        disk_read_bytes_per_sec: sum_f64(disks.iter().map(|d| d.read_bytes_per_sec)),
        disk_write_bytes_per_sec: sum_f64(disks.iter().map(|d| d.write_bytes_per_sec)),
        disk_read_ops_per_sec: sum_f64(disks.iter().map(|d| d.read_ops_per_sec)),
        disk_write_ops_per_sec: sum_f64(disks.iter().map(|d| d.write_ops_per_sec)),
        disks,
        network_rx_bytes,
        network_tx_bytes,
        network_rx_bytes_per_sec: sum_f64(nics.iter().map(|n| n.rx_bytes_per_sec)),
        network_tx_bytes_per_sec: sum_f64(nics.iter().map(|n| n.tx_bytes_per_sec)),
        nics,
        process,
        cgroup,
        unavailable: why,
    }
}

fn process_metrics(p: &ProcessReading, prev: Option<&ProcessReading>, rate: &dyn Fn(Option<u64>, Option<u64>) -> Option<f64>) -> VmProcess {
    let io = |f: fn(&crate::procfs::pid::PidIo) -> u64, r: Option<&ProcessReading>| r.and_then(|r| r.io.as_ref()).map(f);
    VmProcess {
        pid: p.pid,
        threads: Some(p.threads),
        started_at: p.started_at,
        rss_bytes: p.rss_bytes,
        cpu_secs_total: Some(secs(p.user_ns.saturating_add(p.system_ns))),
        read_bytes: io(|i| i.read_bytes, Some(p)),
        write_bytes: io(|i| i.write_bytes, Some(p)),
        read_bytes_per_sec: rate(io(|i| i.read_bytes, prev), io(|i| i.read_bytes, Some(p))),
        write_bytes_per_sec: rate(io(|i| i.write_bytes, prev), io(|i| i.write_bytes, Some(p))),
        cgroup_path: p.cgroup_path.clone(),
    }
}

/// The NICs of a reading in the guest's view (rates not filled in), and why the network totals are
/// unknown when there is nothing to sum. Reasons for single NICs go to `why`.
fn nics_of(r: &RawVm, why: &mut BTreeMap<String, String>) -> (Vec<VmNic>, Option<String>) {
    let nic = |name: &str, origin| VmNic {
        name: name.to_owned(),
        origin,
        rx_bytes: None,
        tx_bytes: None,
        rx_packets: None,
        tx_packets: None,
        rx_errors: None,
        tx_errors: None,
        rx_dropped: None,
        tx_dropped: None,
        rx_bytes_per_sec: None,
        tx_bytes_per_sec: None,
        rx_packets_per_sec: None,
        tx_packets_per_sec: None,
    };
    match (&r.obs.nics, &r.taps) {
        (Some(list), _) => {
            let nics: Vec<VmNic> = list
                .iter()
                .map(|n| VmNic {
                    rx_bytes: n.rx_bytes,
                    tx_bytes: n.tx_bytes,
                    rx_packets: n.rx_packets,
                    tx_packets: n.tx_packets,
                    rx_errors: n.rx_errors,
                    tx_errors: n.tx_errors,
                    rx_dropped: n.rx_dropped,
                    tx_dropped: n.tx_dropped,
                    ..nic(&n.name, NicOrigin::Libvirt)
                })
                .collect();
            let none = r.obs.unavailable.get("nics").cloned().unwrap_or_else(|| {
                if list.is_empty() { "the collector reports no NIC counters (no NIC, or none backed by a host tap)".into() } else { "no NIC reports this counter".into() }
            });
            (nics, Some(none))
        }
        (None, Taps::Read(taps)) => {
            let nics: Vec<VmNic> = taps
                .iter()
                .map(|t| match &t.dev {
                    // The host's transmit is the guest's receive.
                    Some(d) => VmNic {
                        rx_bytes: Some(d.tx_bytes),
                        tx_bytes: Some(d.rx_bytes),
                        rx_packets: Some(d.tx_packets),
                        tx_packets: Some(d.rx_packets),
                        rx_errors: Some(d.tx_errors),
                        tx_errors: Some(d.rx_errors),
                        rx_dropped: Some(d.tx_dropped),
                        tx_dropped: Some(d.rx_dropped),
                        ..nic(&t.name, NicOrigin::Tap)
                    },
                    None => {
                        let r = format!("tap {} is not in the QEMU process's /proc/<pid>/net/dev (another network namespace)", t.name);
                        note(why, &format!("nics.{}", t.name), &r);
                        nic(&t.name, NicOrigin::Tap)
                    }
                })
                .collect();
            let none = if taps.is_empty() { NO_TAP.to_owned() } else { "no tap's counters could be read".to_owned() };
            if taps.is_empty() {
                note(why, "nics", NO_TAP);
            }
            (nics, Some(none))
        }
        (None, Taps::Error(e)) => {
            note(why, "nics", e);
            (vec![], Some(e.clone()))
        }
        (None, Taps::NotRead) => {
            let r = "no NIC counters: the collector has none and there is no QEMU process to find taps in".to_owned();
            note(why, "nics", &r);
            (vec![], Some(r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::net_dev::NetDev;
    use crate::procfs::pid::PidIo;
    use crate::vm::observe::{BalloonObservation, DiskObservation, NicObservation, VcpuObservation};
    use proptest::prelude::*;

    fn obs(status: VmStatus) -> VmObservation {
        VmObservation::new("6f1c2e", "web", VmOrigin::Libvirt, status)
    }

    fn libvirt(cpu_ns: u64, vcpu_ns: [u64; 2]) -> RawVm {
        let mut o = obs(VmStatus::Running);
        o.pid = Some(4242);
        o.cpu_time_ns = Some(cpu_ns);
        o.vcpus_current = Some(2);
        o.vcpus = (0..2).map(|i| VcpuObservation { index: i, time_ns: Some(vcpu_ns[i as usize]), ..Default::default() }).collect();
        let mut r = RawVm::new(o);
        r.vcpus = r.obs.vcpus.iter().map(VcpuReading::from_observation).collect();
        r.process = ProcessState::Read(ProcessReading { pid: 4242, starttime_ticks: 100, threads: 6, ..Default::default() });
        r
    }

    #[test]
    fn first_sample_has_no_rates_but_totals() {
        let cur = libvirt(5_000_000_000, [1, 2]);
        let m = build(&cur, None, Some(4), 1.0);
        assert_eq!(m.cpu_usage_percent, None);
        assert_eq!(m.cpu_cores, None);
        assert_eq!(m.cpu_secs_total, Some(5.0));
        assert_eq!(m.unavailable["rates"], FIRST);
        assert_eq!(m.unavailable["cpu_usage_percent"], FIRST);
        assert_eq!(m.unavailable["cpu_vcpu_percent"], FIRST);
        assert!(m.vcpu.iter().all(|v| v.cpu_percent.is_none() && v.origin == Some(VcpuOrigin::Libvirt)));
    }

    #[test]
    fn busy_vcpus_read_100_percent_of_the_vm_and_a_share_of_the_host() {
        let prev = libvirt(10_000_000_000, [3_000_000_000, 4_000_000_000]);
        // 2 s: both vCPUs ran the whole time (2 x 2 s), the process 4.5 s in all (I/O threads too).
        let cur = libvirt(14_500_000_000, [5_000_000_000, 6_000_000_000]);
        let m = build(&cur, Some((&prev, 2.0)), Some(8), 1.0);
        assert_eq!(m.cpu_cores, Some(2.25));
        assert_eq!(m.cpu_usage_percent, Some(2.25 / 8.0 * 100.0));
        assert_eq!(m.cpu_vcpu_percent, Some(100.0), "a fully busy 2-vCPU guest");
        assert_eq!(m.vcpu[0].cpu_percent, Some(100.0));
        assert_eq!(m.vcpu[1].cpu_secs_total, Some(6.0));
        assert!(!m.unavailable.contains_key("rates"));
        assert!(!m.unavailable.contains_key("cpu_usage_percent"));

        // One vCPU without a time: the whole process stands in, over both vCPUs.
        let mut cur2 = cur.clone();
        cur2.vcpus[1].cpu_ns = None;
        let m = build(&cur2, Some((&prev, 2.0)), Some(8), 1.0);
        assert_eq!(m.cpu_vcpu_percent, Some(112.5));
        assert_eq!(m.vcpu[1].cpu_percent, None);
    }

    #[test]
    fn counters_that_went_down_and_restarts_give_no_rates() {
        let prev = libvirt(10_000_000_000, [3, 4]);
        let cur = libvirt(1_000_000_000, [5, 6]);
        let m = build(&cur, Some((&prev, 1.0)), Some(4), 1.0);
        assert_eq!(m.cpu_usage_percent, None);
        assert_eq!(m.unavailable["cpu_usage_percent"], RESET);
        assert_eq!(m.cpu_secs_total, Some(1.0));

        // Another pid: a restarted VM, even though its counters grew.
        let mut cur = libvirt(20_000_000_000, [5, 6]);
        cur.obs.pid = Some(5000);
        let m = build(&cur, Some((&prev, 1.0)), Some(4), 1.0);
        assert_eq!((m.cpu_usage_percent, m.vcpu[0].cpu_percent), (None, None));
        assert_eq!(m.unavailable["rates"], RESTARTED);
        // The same pid with another start time: the pid was reused.
        let mut cur = libvirt(20_000_000_000, [5, 6]);
        cur.process = ProcessState::Read(ProcessReading { pid: 4242, starttime_ticks: 999, ..Default::default() });
        assert_eq!(build(&cur, Some((&prev, 1.0)), Some(4), 1.0).unavailable["rates"], RESTARTED);
    }

    #[test]
    fn not_running_has_no_rates_and_shutoff_no_process() {
        let prev = libvirt(10_000_000_000, [3, 4]);
        let mut cur = libvirt(11_000_000_000, [5, 6]);
        cur.obs.status = VmStatus::Paused;
        let m = build(&cur, Some((&prev, 1.0)), Some(4), 1.0);
        assert_eq!(m.cpu_usage_percent, None);
        assert!(m.unavailable["cpu_usage_percent"].contains("paused"));
        assert_eq!(m.process.as_ref().map(|p| p.pid), Some(4242), "a paused VM keeps its process");

        let mut off = RawVm::new(obs(VmStatus::Shutoff));
        off.obs.memory_max_bytes = Some(1 << 30);
        let m = build(&off, Some((&prev, 1.0)), Some(4), 1.0);
        assert_eq!(m.process, None);
        assert_eq!(m.unavailable["process"], "no QEMU process: the VM is shutoff");
        assert_eq!(m.memory_max_bytes, Some(1 << 30));
        for k in ["cpu_usage_percent", "memory_usage_percent", "disk_read_bytes", "disk_write_bytes", "network_rx_bytes", "network_tx_bytes"] {
            assert!(m.unavailable.contains_key(k), "{k}: {:?}", m.unavailable);
        }
        let mut gone = RawVm::new(obs(VmStatus::Running));
        gone.obs.pid = Some(77);
        gone.process = ProcessState::Gone(77);
        assert_eq!(build(&gone, None, Some(4), 1.0).unavailable["process"], "the QEMU process 77 is gone");
    }

    #[test]
    fn process_cpu_when_the_collector_has_none_and_thread_vcpus() {
        let raw = |user: u64, sys: u64, read: u64, vcpu0: u64, steal0: u64| {
            let mut o = VmObservation::new("q", "q", VmOrigin::Qmp, VmStatus::Running);
            o.pid = Some(10);
            let mut r = RawVm::new(o);
            r.process = ProcessState::Read(ProcessReading {
                pid: 10,
                starttime_ticks: 5,
                user_ns: user,
                system_ns: sys,
                io: Some(PidIo { read_bytes: read, ..Default::default() }),
                ..Default::default()
            });
            r.vcpus = vec![VcpuReading { index: 0, tid: Some(11), origin: Some(VcpuOrigin::Thread), cpu_ns: Some(vcpu0), steal_ns: Some(steal0), ..Default::default() }];
            r
        };
        let prev = raw(1_000_000_000, 0, 4096, 0, 0);
        let cur = raw(1_500_000_000, 500_000_000, 4096 * 5, 1_000_000_000, 250_000_000);
        let m = build(&cur, Some((&prev, 1.0)), Some(2), 1.0);
        assert_eq!(m.cpu_cores, Some(1.0));
        assert_eq!(m.cpu_usage_percent, Some(50.0));
        assert_eq!(m.cpu_user_secs_total, Some(1.5));
        assert_eq!(m.vcpus, Some(1), "no vcpus_current: the vCPUs found");
        assert_eq!(m.cpu_vcpu_percent, Some(100.0));
        assert_eq!(m.vcpu[0].steal_percent, Some(25.0));
        assert_eq!(m.vcpu[0].steal_secs_total, Some(0.25));
        assert_eq!(m.vcpu[0].wait_secs_total, None);
        let p = m.process.unwrap();
        assert_eq!((p.read_bytes, p.read_bytes_per_sec, p.cpu_secs_total), (Some(4096 * 5), Some(4096.0 * 4.0), Some(2.0)));
        // A vCPU now on another thread is another counter.
        let mut moved = cur.clone();
        moved.vcpus[0].tid = Some(12);
        assert_eq!(build(&moved, Some((&prev, 1.0)), Some(2), 1.0).vcpu[0].cpu_percent, None);
    }

    fn disk(name: &str, read: u64, ops: u64, time_ns: u64) -> DiskObservation {
        DiskObservation { name: name.into(), read_bytes: Some(read), read_ops: Some(ops), read_time_ns: Some(time_ns), write_ops: Some(0), write_time_ns: Some(0), ..Default::default() }
    }

    #[test]
    fn disks_latency_and_totals() {
        let mut prev = libvirt(0, [0, 0]);
        prev.obs.disks = vec![disk("vda", 1000, 10, 5_000_000), disk("vdb", 0, 0, 0)];
        let mut cur = libvirt(0, [0, 0]);
        cur.obs.disks = vec![disk("vda", 5000, 20, 25_000_000), disk("vdb", 100, 0, 0)];
        let m = build(&cur, Some((&prev, 2.0)), Some(4), 1.0);
        assert_eq!(m.disks[0].read_bytes_per_sec, Some(2000.0));
        assert_eq!(m.disks[0].read_ops_per_sec, Some(5.0));
        assert_eq!(m.disks[0].read_latency_ms, Some(2.0), "20 ms over 10 requests");
        assert_eq!(m.disks[0].write_latency_ms, None, "no request completed");
        assert_eq!(m.disks[1].read_latency_ms, None);
        assert_eq!(m.disk_read_bytes, Some(5100));
        assert_eq!(m.disk_read_bytes_per_sec, Some(2050.0));
        assert_eq!(m.disk_write_bytes, None, "no disk reports it");
        assert_eq!(m.unavailable["disk_write_bytes"], "no disk reports bytes written");

        // A disk that was hot-unplugged: the total goes down, its rate is not negative.
        let mut fewer = cur.clone();
        fewer.obs.disks.truncate(1);
        let m = build(&fewer, Some((&cur, 1.0)), Some(4), 1.0);
        assert_eq!(m.disk_read_bytes_per_sec, Some(0.0));

        let mut none = libvirt(0, [0, 0]);
        let m = build(&none, None, Some(4), 1.0);
        assert_eq!(m.unavailable["disk_read_bytes"], "the VM has no disks");
        none.obs.unavailable.insert("disks".into(), "query-blockstats: timeout".into());
        assert_eq!(build(&none, None, Some(4), 1.0).unavailable["disk_read_bytes"], "query-blockstats: timeout");
    }

    fn tap(name: &str, rx: u64, tx: u64) -> Tap {
        Tap { name: name.into(), dev: Some(NetDev { name: name.into(), rx_bytes: rx, tx_bytes: tx, rx_packets: 1, tx_packets: 2, tx_dropped: 3, ..Default::default() }) }
    }

    #[test]
    fn taps_are_swapped_into_the_guests_view() {
        let mut prev = libvirt(0, [0, 0]);
        prev.taps = Taps::Read(vec![tap("tap0", 100, 900)]);
        let mut cur = libvirt(0, [0, 0]);
        cur.taps = Taps::Read(vec![tap("tap0", 300, 1900), Tap { name: "tap1".into(), dev: None }]);
        let m = build(&cur, Some((&prev, 2.0)), Some(4), 1.0);
        let n = &m.nics[0];
        assert_eq!((n.origin, n.rx_bytes, n.tx_bytes), (NicOrigin::Tap, Some(1900), Some(300)));
        assert_eq!((n.rx_packets, n.tx_packets, n.rx_dropped, n.tx_dropped), (Some(2), Some(1), Some(3), Some(0)));
        assert_eq!((n.rx_bytes_per_sec, n.tx_bytes_per_sec), (Some(500.0), Some(100.0)));
        assert_eq!(m.nics[1].rx_bytes, None);
        assert!(m.unavailable["nics.tap1"].contains("another network namespace"));
        assert_eq!((m.network_rx_bytes, m.network_tx_bytes), (Some(1900), Some(300)));
        assert_eq!(m.network_rx_bytes_per_sec, Some(500.0));

        cur.taps = Taps::Read(vec![]);
        let m = build(&cur, Some((&prev, 2.0)), Some(4), 1.0);
        assert_eq!((m.network_rx_bytes, m.nics.len()), (None, 0));
        assert_eq!(m.unavailable["network_rx_bytes"], NO_TAP);
        assert_eq!(m.unavailable["nics"], NO_TAP);
    }

    #[test]
    fn libvirt_nics_are_taken_as_given() {
        let nic = |rx: u64| NicObservation { name: "vnet0".into(), rx_bytes: Some(rx), tx_bytes: Some(7), ..Default::default() };
        let mut prev = libvirt(0, [0, 0]);
        prev.obs.nics = Some(vec![nic(100)]);
        let mut cur = libvirt(0, [0, 0]);
        cur.obs.nics = Some(vec![nic(400)]);
        // Taps read by mistake are ignored when the collector has NIC counters.
        cur.taps = Taps::Read(vec![tap("tap9", 1, 1)]);
        let m = build(&cur, Some((&prev, 3.0)), Some(4), 1.0);
        assert_eq!(m.nics.len(), 1);
        assert_eq!((m.nics[0].origin, m.nics[0].rx_bytes, m.nics[0].rx_bytes_per_sec), (NicOrigin::Libvirt, Some(400), Some(100.0)));
        assert_eq!(m.network_tx_bytes_per_sec, Some(0.0));
        cur.obs.nics = Some(vec![]);
        assert!(build(&cur, None, Some(4), 1.0).unavailable["network_rx_bytes"].contains("no NIC counters"));
    }

    #[test]
    fn memory_from_the_balloon_only_when_the_guest_reported() {
        let mut cur = libvirt(0, [0, 0]);
        let b = BalloonObservation {
            current_bytes: Some(128 << 20),
            available_bytes: Some(100 << 20),
            usable_bytes: Some(75 << 20),
            unused_bytes: Some(60 << 20),
            swap_in_bytes: Some(1),
            major_faults: Some(2),
            last_update: Some(0),
            ..Default::default()
        };
        cur.obs.balloon = Some(b.clone());
        let m = build(&cur, None, Some(4), 1.0);
        assert_eq!(m.memory_balloon_bytes, Some(128 << 20));
        assert_eq!((m.memory_available_bytes, m.memory_usage_percent, m.memory_major_faults), (None, None, None));
        assert_eq!(m.unavailable["memory_usage_percent"], NO_BALLOON_STATS);
        cur.obs.balloon = Some(BalloonObservation { last_update: Some(1795313182), ..b });
        let m = build(&cur, None, Some(4), 1.0);
        assert_eq!(m.memory_usage_percent, Some(25.0));
        assert_eq!((m.memory_unused_bytes, m.memory_swap_in_bytes, m.memory_major_faults), (Some(60 << 20), Some(1), Some(2)));
        assert!(!m.unavailable.contains_key("memory_usage_percent"));
        cur.obs.balloon = None;
        assert_eq!(build(&cur, None, Some(4), 1.0).unavailable["memory_usage_percent"], "the VM has no balloon device");
    }

    #[test]
    fn the_cgroup_reading_and_its_reasons() {
        let mut cur = libvirt(1, [1, 1]);
        cur.process = ProcessState::Gone(4242);
        assert_eq!(build(&cur, None, Some(4), 1.0).unavailable["cgroup"], "the QEMU process 4242 is gone", "the process's reason");
        cur.cgroup = CgroupReading::Unavailable("not in a VM scope".into());
        assert_eq!(build(&cur, None, Some(4), 1.0).unavailable["cgroup"], "not in a VM scope");
        let c = VmCgroup {
            cgroup_path: "/machine/qemu-1-web.libvirt-qemu".into(),
            timestamp: 2.0,
            cpu_usage_percent: None,
            memory_usage_bytes: Some(1 << 30),
            memory_limit_bytes: Some(crate::cgroup::Limit::Max),
            pressure_cpu: None,
            pressure_memory: None,
            pressure_io: None,
        };
        cur.cgroup = CgroupReading::Read(Box::new(c.clone()), vec![("cpu_usage_percent".into(), "first reading".into())]);
        let m = build(&cur, None, Some(4), 1.0);
        assert_eq!(m.cgroup, Some(c));
        assert!(!m.unavailable.contains_key("cgroup"));
        assert_eq!(m.unavailable["cgroup.cpu_usage_percent"], "first reading");
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["cgroup"]["memory_limit_bytes"], "max");
        assert!(v["cgroup"].get("container_id").is_none(), "it points at no container any more");
    }

    #[test]
    fn wire_shape() {
        let m = build(&libvirt(1, [1, 1]), None, None, 1.0);
        let v = serde_json::to_value(&m).unwrap();
        assert!(v["cgroup"].is_null());
        assert_eq!(m.unavailable["cgroup"], "the QEMU process's cgroup was not read");
        assert_eq!(v["status"], "running");
        assert_eq!(v["origin"], "libvirt");
        assert_eq!(v["vcpu"][0]["origin"], "libvirt");
        assert!(v["unavailable"]["cpu_usage_percent"].is_string());
    }

    fn arb_raw() -> impl Strategy<Value = RawVm> {
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(0u32..3),
            proptest::collection::vec((proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>())), 0..3),
            proptest::collection::vec(proptest::option::of(any::<u64>()), 0..4),
            (any::<u64>(), any::<u64>(), any::<u64>()),
            prop::sample::select(vec![VmStatus::Running, VmStatus::Paused, VmStatus::Shutoff]),
        )
            .prop_map(|(cpu, pid, vcpus, disk, (rx, u, s), status)| {
                let mut o = VmObservation::new("x", "x", VmOrigin::Qmp, status);
                o.cpu_time_ns = cpu;
                o.pid = pid;
                o.vcpus_current = Some(vcpus.len() as u32);
                o.vcpus = vcpus.iter().enumerate().map(|(i, (t, d))| VcpuObservation { index: i as u32, time_ns: *t, delay_ns: *d, kvm_exits: *d, ..Default::default() }).collect();
                o.disks = disk.iter().map(|b| DiskObservation { name: "vda".into(), read_bytes: *b, read_ops: *b, read_time_ns: *b, ..Default::default() }).collect();
                let mut r = RawVm::new(o);
                r.vcpus = r.obs.vcpus.iter().map(VcpuReading::from_observation).collect();
                if let Some(pid) = pid {
                    r.process = ProcessState::Read(ProcessReading { pid, user_ns: u, system_ns: s, ..Default::default() });
                    r.taps = Taps::Read(vec![tap("tap0", rx, u)]);
                }
                r
            })
    }

    proptest! {
        #[test]
        fn never_panics_and_never_negative(prev in arb_raw(), cur in arb_raw(), dt in -1.0f64..10.0, cpus in proptest::option::of(0u64..64)) {
            let m = build(&cur, Some((&prev, dt)), cpus, 1.0);
            let v = serde_json::to_value(&m).unwrap();
            fn walk(v: &serde_json::Value, path: &str) -> Result<(), TestCaseError> {
                match v {
                    serde_json::Value::Number(n) => prop_assert!(n.as_f64().is_some_and(|f| f >= 0.0 && f.is_finite()), "{path}: {n}"),
                    serde_json::Value::Array(a) => for (i, x) in a.iter().enumerate() { walk(x, &format!("{path}[{i}]"))? },
                    serde_json::Value::Object(o) => for (k, x) in o { walk(x, &format!("{path}.{k}"))? },
                    _ => {}
                }
                Ok(())
            }
            walk(&v, "$")?;
            for k in ["cpu_usage_percent", "memory_usage_percent", "disk_read_bytes", "disk_write_bytes", "network_rx_bytes", "network_tx_bytes"] {
                prop_assert!(!v[k].is_null() || m.unavailable.contains_key(k), "{k} is null without a reason");
            }
            let _ = build(&cur, None, cpus, 1.0);
        }
    }
}
