//! The reported node metrics: a pure function of (current raw reading, previous raw reading).
//! Field names carry their unit. A value that cannot be known is `None` (JSON null) and, where the
//! reason is not obvious from the field, `unavailable` maps the field's path to the reason.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::Serialize;

use super::config::{Filters, NodeConfig};
use super::{DiskClass, RawNode, PRESSURE_KINDS};
use crate::error::Error;
use crate::host;
use crate::procfs::{diskstats::DiskStat, net_dev::NetDev, pressure::PsiLine, stat::CpuTicks};
use crate::rate::{self, cpu_percent, per_sec, per_sec_opt, percent, CpuPercent};
use crate::read::FsStat;

pub(crate) struct Context<'a> {
    pub config: &'a NodeConfig,
    pub filters: &'a Filters,
    pub disk_class: &'a HashMap<String, DiskClass>,
    pub net_has_device: &'a HashMap<String, Option<bool>>,
}

/// `GET /api/monitoring/node/metrics`: one node sample. See docs/api.md.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NodeMetrics {
    /// Wall-clock time of the reading, unix seconds.
    pub timestamp: f64,
    /// Percent of all CPU time that was busy (not idle, not iowait) over the interval.
    pub cpu_usage: Option<f64>,
    /// (MemTotal - MemAvailable) / MemTotal, percent.
    pub memory_usage: Option<f64>,
    /// Used percent of the root filesystem, as `df` shows it.
    pub disk_usage: Option<f64>,
    pub load_average_1m: Option<f64>,
    pub load_average_5m: Option<f64>,
    pub load_average_15m: Option<f64>,
    /// Monotonic seconds since the previous reading: the interval every rate is over.
    #[serde(default)]
    pub interval_secs: Option<f64>,
    #[serde(default)]
    pub uptime_secs: Option<f64>,
    #[serde(default)]
    pub boot_time: Option<u64>,
    #[serde(default)]
    pub cpu: Option<Cpu>,
    #[serde(default)]
    pub memory: Option<Memory>,
    #[serde(default)]
    pub swap: Option<Swap>,
    #[serde(default)]
    pub hugepages: Option<HugePages>,
    #[serde(default)]
    pub ksm: Option<Ksm>,
    #[serde(default)]
    pub vm: Option<VmActivity>,
    #[serde(default)]
    pub pressure: Option<PressureAll>,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub disk_total: Option<DiskTotal>,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub network: Option<NetworkTotal>,
    #[serde(default)]
    pub filesystems: Vec<Filesystem>,
    #[serde(default)]
    pub temperatures: Vec<TemperatureReading>,
    /// Field path -> why it is null or missing (first sample, file absent, parse error, reset).
    #[serde(default)]
    pub unavailable: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Cpu {
    /// Online CPUs (the cpuN lines of /proc/stat).
    pub count: usize,
    pub total: CpuPercent,
    pub per_cpu: Vec<PerCpu>,
    /// Cumulative CPU seconds per mode of all CPUs (counters, for Prometheus).
    pub seconds_total: CpuSeconds,
    #[serde(default)]
    pub context_switches_per_sec: Option<f64>,
    #[serde(default)]
    pub interrupts_per_sec: Option<f64>,
    #[serde(default)]
    pub forks_per_sec: Option<f64>,
    #[serde(default)]
    pub procs_running: Option<u64>,
    #[serde(default)]
    pub procs_blocked: Option<u64>,
    #[serde(default)]
    pub context_switches_total: Option<u64>,
    #[serde(default)]
    pub interrupts_total: Option<u64>,
    #[serde(default)]
    pub forks_total: Option<u64>,
}

/// One CPU (`cpuN` of /proc/stat): its percentages per mode over the interval and its cumulative
/// seconds.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PerCpu {
    #[serde(flatten)]
    pub percent: CpuPercent,
    /// The N of `cpuN`.
    pub cpu: u32,
    pub seconds_total: CpuSeconds,
}

/// Cumulative seconds per mode (ticks / USER_HZ). `guest` and `guest_nice` are included in `user`
/// and `nice`.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct CpuSeconds {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    #[serde(default)]
    pub iowait: Option<f64>,
    #[serde(default)]
    pub irq: Option<f64>,
    #[serde(default)]
    pub softirq: Option<f64>,
    #[serde(default)]
    pub steal: Option<f64>,
    #[serde(default)]
    pub guest: Option<f64>,
    #[serde(default)]
    pub guest_nice: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Memory {
    pub total_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    /// total - available: memory that cannot be had without swapping.
    pub used_bytes: Option<u64>,
    pub used_percent: Option<f64>,
    pub free_bytes: Option<u64>,
    pub buffers_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    pub slab_bytes: Option<u64>,
    pub slab_reclaimable_bytes: Option<u64>,
    pub anon_bytes: Option<u64>,
    pub mapped_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub dirty_bytes: Option<u64>,
    pub writeback_bytes: Option<u64>,
    pub page_tables_bytes: Option<u64>,
    pub kernel_stack_bytes: Option<u64>,
    pub committed_bytes: Option<u64>,
    pub commit_limit_bytes: Option<u64>,
    pub anon_huge_pages_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Swap {
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    /// Null when there is no swap (0 of 0 is not 0%).
    pub used_percent: Option<f64>,
    pub cached_bytes: Option<u64>,
    pub swap_in_pages_per_sec: Option<f64>,
    pub swap_out_pages_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct HugePages {
    pub total: Option<u64>,
    pub free: Option<u64>,
    pub reserved: Option<u64>,
    pub surplus: Option<u64>,
    pub page_size_bytes: Option<u64>,
    /// All huge pages of all sizes (Hugetlb:, since Linux 4.16).
    pub hugetlb_bytes: Option<u64>,
    pub used_percent: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Ksm {
    /// 0 stopped, 1 running, 2 unmerging.
    pub run: Option<u64>,
    pub pages_shared: Option<u64>,
    pub pages_sharing: Option<u64>,
    pub pages_unshared: Option<u64>,
    pub pages_volatile: Option<u64>,
    pub full_scans: Option<u64>,
    /// pages_sharing * page size: memory KSM is saving.
    pub saved_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct VmActivity {
    pub page_faults_per_sec: Option<f64>,
    pub major_page_faults_per_sec: Option<f64>,
    pub page_in_bytes_per_sec: Option<f64>,
    pub page_out_bytes_per_sec: Option<f64>,
    pub oom_kills_total: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct PressureAll {
    pub cpu: Option<Pressure>,
    pub memory: Option<Pressure>,
    pub io: Option<Pressure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Pressure {
    pub some: PressureLine,
    /// Null for cpu before Linux 5.13.
    #[serde(default)]
    pub full: Option<PressureLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PressureLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total_usec: u64,
    /// Share of the last interval stalled, percent (from the total's delta).
    #[serde(default)]
    pub stall_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Disk {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Built on other block devices (device-mapper, MD, bcache; a ZFS zvol): its I/O is also
    /// counted on the devices beneath, so it is left out of `disk_total`.
    pub stacked: bool,
    #[serde(default)]
    pub read_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub write_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub reads_per_sec: Option<f64>,
    #[serde(default)]
    pub writes_per_sec: Option<f64>,
    #[serde(default)]
    pub discard_bytes_per_sec: Option<f64>,
    /// Share of the interval with I/O in flight (io_time delta / interval), percent.
    #[serde(default)]
    pub busy_percent: Option<f64>,
    /// Mean time per completed read / write over the interval; null when none completed.
    #[serde(default)]
    pub read_latency_ms: Option<f64>,
    #[serde(default)]
    pub write_latency_ms: Option<f64>,
    pub in_progress: u64,
    pub read_bytes_total: u64,
    pub write_bytes_total: u64,
    pub reads_total: u64,
    pub writes_total: u64,
    pub read_time_secs_total: f64,
    pub write_time_secs_total: f64,
    pub io_time_secs_total: f64,
    #[serde(default)]
    pub discarded_bytes_total: Option<u64>,
    #[serde(default)]
    pub flushes_total: Option<u64>,
}

/// Sum over the disks that are not stacked on others, so that I/O through LVM or MD counts once.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DiskTotal {
    pub disks: Vec<String>,
    #[serde(default)]
    pub read_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub write_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub reads_per_sec: Option<f64>,
    #[serde(default)]
    pub writes_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceKind {
    Loopback,
    Physical,
    Virtual,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Interface {
    pub name: String,
    pub kind: InterfaceKind,
    #[serde(default)]
    pub rx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub tx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub rx_packets_per_sec: Option<f64>,
    #[serde(default)]
    pub tx_packets_per_sec: Option<f64>,
    #[serde(default)]
    pub rx_errors_per_sec: Option<f64>,
    #[serde(default)]
    pub tx_errors_per_sec: Option<f64>,
    #[serde(default)]
    pub rx_dropped_per_sec: Option<f64>,
    #[serde(default)]
    pub tx_dropped_per_sec: Option<f64>,
    pub rx_bytes_total: u64,
    pub tx_bytes_total: u64,
    pub rx_packets_total: u64,
    pub tx_packets_total: u64,
    pub rx_errors_total: u64,
    pub tx_errors_total: u64,
    pub rx_dropped_total: u64,
    pub tx_dropped_total: u64,
}

/// Sum over physical interfaces only (not loopback, taps, bridges, veths, bonds, VLANs).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NetworkTotal {
    pub interfaces: Vec<String>,
    #[serde(default)]
    pub rx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub tx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub rx_packets_per_sec: Option<f64>,
    #[serde(default)]
    pub tx_packets_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Filesystem {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub used_bytes: Option<u64>,
    #[serde(default)]
    pub avail_bytes: Option<u64>,
    #[serde(default)]
    pub used_percent: Option<f64>,
    #[serde(default)]
    pub inodes_total: Option<u64>,
    #[serde(default)]
    pub inodes_used: Option<u64>,
    #[serde(default)]
    pub inodes_free: Option<u64>,
    /// Null on filesystems without a fixed inode count (btrfs, some network filesystems).
    #[serde(default)]
    pub inodes_used_percent: Option<f64>,
    /// Read-only: the `ro` mount option in mountinfo, or statvfs's ST_RDONLY (which also catches a
    /// superblock that went read-only, such as ext4 after errors=remount-ro).
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TemperatureReading {
    pub sensor: String,
    pub kind: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub celsius: Option<f64>,
}

/// Reasons for nulls, keyed by field path.
struct Reasons(BTreeMap<String, String>);

impl Reasons {
    fn add(&mut self, key: &str, reason: impl Into<String>) {
        self.0.entry(key.to_owned()).or_insert_with(|| reason.into());
    }
    fn error(&mut self, key: &str, e: &Error) {
        let why = if e.is_gone() {
            format!("{} does not exist on this system", e.path().display())
        } else {
            e.to_string()
        };
        self.add(key, why);
    }
}

const FIRST: &str = "first sample: a rate needs two readings";
const RESET: &str = "counter went down (reset or wrap); rates resume next interval";

pub(crate) fn build(cur: &RawNode, prev: Option<&RawNode>, ctx: &Context) -> NodeMetrics {
    let mut why = Reasons(BTreeMap::new());
    let elapsed = prev.map(|p| cur.monotonic.saturating_duration_since(p.monotonic).as_secs_f64());
    let dt = elapsed.unwrap_or(0.0);
    if prev.is_none() {
        why.add("rates", FIRST);
    }

    let cpu = build_cpu(cur, prev, dt, &mut why);
    if cpu.as_ref().is_some_and(|c| c.total.usage.is_none()) {
        match prev.map(|p| &p.stat) {
            None => {}
            Some(Err(e)) => why.add("cpu_usage", format!("the previous reading failed: {e}")),
            Some(Ok(_)) => why.add("cpu_usage", "no CPU time elapsed between the two readings, or a CPU counter went down"),
        }
    }
    let (memory, swap, hugepages) = build_memory(cur, prev, dt, &mut why);
    let load = cur.loadavg.as_ref().ok();
    if let Err(e) = &cur.loadavg {
        for k in ["load_average_1m", "load_average_5m", "load_average_15m"] {
            why.error(k, e);
        }
    }
    let uptime = cur.uptime.as_ref().map_err(|e| why.error("uptime_secs", e)).ok();
    if cur.temperatures.is_empty() {
        why.add("temperatures", "no thermal zones or hwmon temperature sensors exposed by the kernel (usual in VMs)");
    }
    let disk_usage = match &cur.root_fs {
        Ok(fs) => used_percent(fs),
        Err(e) => {
            why.error("disk_usage", e);
            None
        }
    };

    NodeMetrics {
        timestamp: cur.unix_secs,
        interval_secs: elapsed,
        cpu_usage: cpu.as_ref().and_then(|c| c.total.usage),
        memory_usage: memory.as_ref().and_then(|m| m.used_percent),
        disk_usage,
        load_average_1m: load.map(|l| l.load1),
        load_average_5m: load.map(|l| l.load5),
        load_average_15m: load.map(|l| l.load15),
        uptime_secs: uptime.map(|u| u.uptime_secs),
        boot_time: cur.stat.as_ref().ok().and_then(|s| s.boot_time_secs),
        cpu,
        memory,
        swap,
        hugepages,
        ksm: build_ksm(cur, &mut why),
        vm: build_vm(cur, prev, dt, &mut why),
        pressure: build_pressure(cur, prev, dt, &mut why),
        disks: build_disks(cur, prev, dt, ctx, &mut why),
        disk_total: build_disk_total(cur, prev, dt, ctx, &mut why),
        interfaces: build_interfaces(cur, prev, dt, ctx, &mut why),
        network: build_network_total(cur, prev, dt, ctx, &mut why),
        filesystems: build_filesystems(cur, &mut why),
        temperatures: cur
            .temperatures
            .iter()
            .map(|t| TemperatureReading {
                sensor: t.sensor.clone(),
                kind: t.kind.clone(),
                label: t.label.clone(),
                celsius: t.celsius.as_ref().map_err(|e| why.error(&format!("temperatures.{}", t.sensor), e)).ok().copied(),
            })
            .collect(),
        unavailable: why.0,
    }
}

fn build_disk_total(cur: &RawNode, prev: Option<&RawNode>, dt: f64, ctx: &Context, why: &mut Reasons) -> Option<DiskTotal> {
    let disks = cur.diskstats.as_ref().ok()?;
    // As for the network total: every disk that passes the filters and is not stacked counts, also
    // those beyond the cardinality cap, so the cap never changes the total.
    let summed: Vec<&DiskStat> = disks
        .iter()
        .filter(|d| {
            let class = ctx.disk_class.get(&d.name);
            class.is_none_or(|c| c.whole && !c.stacked) && ctx.filters.disks.allows(&d.name)
        })
        .collect();
    let prev_map = prev.and_then(|p| p.diskstats.as_ref().ok()).map(|v| by_name(v.iter().map(|d| (d.name.as_str(), d))));
    // Each disk's rate exactly as `build_disks` computes it, so the total is the sum of the listed
    // disks' values to the last bit.
    let sum_rate = |f: fn(&DiskStat) -> u64, scale: f64| -> Option<f64> {
        let prev_map = prev_map.as_ref()?;
        summed.iter().map(|d| per_sec(prev_map.get(d.name.as_str()).map(|p| f(p)), f(d), dt).map(|r| r * scale)).sum()
    };
    let total = DiskTotal {
        disks: summed.iter().map(|d| d.name.clone()).collect(),
        read_bytes_per_sec: sum_rate(|d| d.sectors_read, 512.0),
        write_bytes_per_sec: sum_rate(|d| d.sectors_written, 512.0),
        reads_per_sec: sum_rate(|d| d.reads_completed, 1.0),
        writes_per_sec: sum_rate(|d| d.writes_completed, 1.0),
    };
    let rates = [total.read_bytes_per_sec, total.write_bytes_per_sec, total.reads_per_sec, total.writes_per_sec];
    if prev_map.is_some() && rates.iter().any(Option::is_none) {
        why.add("disk_total", "a disk appeared or its counters went down; totals resume next interval");
    }
    Some(total)
}

fn build_network_total(cur: &RawNode, prev: Option<&RawNode>, dt: f64, ctx: &Context, why: &mut Reasons) -> Option<NetworkTotal> {
    let ifaces = cur.net_dev.as_ref().ok()?;
    // Every physical interface that passes the filters counts, also those beyond the cardinality
    // cap, so the cap never changes the total.
    let physical: Vec<&NetDev> = ifaces
        .iter()
        .filter(|d| ctx.filters.interfaces.allows(&d.name) && interface_kind(&d.name, ctx) == InterfaceKind::Physical)
        .collect();
    let prev_map = prev.and_then(|p| p.net_dev.as_ref().ok()).map(|v| by_name(v.iter().map(|d| (d.name.as_str(), d))));
    let sum_rate = |f: fn(&NetDev) -> u64| -> Option<f64> {
        let prev_map = prev_map.as_ref()?;
        physical.iter().map(|d| per_sec(prev_map.get(d.name.as_str()).map(|p| f(p)), f(d), dt)).sum()
    };
    let total = NetworkTotal {
        interfaces: physical.iter().map(|d| d.name.clone()).collect(),
        rx_bytes_per_sec: sum_rate(|d| d.rx_bytes),
        tx_bytes_per_sec: sum_rate(|d| d.tx_bytes),
        rx_packets_per_sec: sum_rate(|d| d.rx_packets),
        tx_packets_per_sec: sum_rate(|d| d.tx_packets),
    };
    let rates = [total.rx_bytes_per_sec, total.tx_bytes_per_sec, total.rx_packets_per_sec, total.tx_packets_per_sec];
    if prev_map.is_some() && rates.iter().any(Option::is_none) {
        why.add("network", "a physical interface appeared or its counters went down; totals resume next interval");
    }
    Some(total)
}

/// Any counter of an interface that `build_interfaces` turns into a rate went down.
fn went_down(p: &NetDev, d: &NetDev) -> bool {
    let counters: [fn(&NetDev) -> u64; 8] = [
        |d| d.rx_bytes,
        |d| d.tx_bytes,
        |d| d.rx_packets,
        |d| d.tx_packets,
        |d| d.rx_errors,
        |d| d.tx_errors,
        |d| d.rx_dropped,
        |d| d.tx_dropped,
    ];
    counters.iter().any(|f| f(d) < f(p))
}

fn by_name<'a, T>(it: impl Iterator<Item = (&'a str, T)>) -> HashMap<&'a str, T> {
    it.collect()
}

fn used_percent(fs: &FsStat) -> Option<f64> {
    // df: Use% = used / (used + avail), where used = size - free; root's reserve is not "available".
    let used = fs.size_bytes.saturating_sub(fs.free_bytes);
    percent(used as f64, (used + fs.avail_bytes) as f64)
}

fn seconds(t: &CpuTicks, hz: f64) -> CpuSeconds {
    let s = |v: u64| v as f64 / hz;
    CpuSeconds {
        user: s(t.user),
        nice: s(t.nice),
        system: s(t.system),
        idle: s(t.idle),
        iowait: t.iowait.map(s),
        irq: t.irq.map(s),
        softirq: t.softirq.map(s),
        steal: t.steal.map(s),
        guest: t.guest.map(s),
        guest_nice: t.guest_nice.map(s),
    }
}

fn build_cpu(cur: &RawNode, prev: Option<&RawNode>, dt: f64, why: &mut Reasons) -> Option<Cpu> {
    let stat = match &cur.stat {
        Ok(s) => s,
        Err(e) => {
            why.error("cpu", e);
            return None;
        }
    };
    let hz = host::user_hz() as f64;
    let pstat = prev.and_then(|p| p.stat.as_ref().ok());
    let total = pstat.map(|p| cpu_percent(&p.total, &stat.total)).unwrap_or_default();
    let prev_cpus: HashMap<u32, &CpuTicks> = pstat.map(|p| p.cpus.iter().map(|(i, t)| (*i, t)).collect()).unwrap_or_default();
    let per_cpu = stat
        .cpus
        .iter()
        .map(|(i, t)| PerCpu {
            cpu: *i,
            percent: prev_cpus.get(i).map(|p| cpu_percent(p, t)).unwrap_or_default(),
            seconds_total: seconds(t, hz),
        })
        .collect();
    let rate = |f: fn(&crate::procfs::stat::Stat) -> Option<u64>| per_sec_opt(pstat.and_then(f), f(stat), dt);
    Some(Cpu {
        count: stat.cpus.len(),
        total,
        per_cpu,
        seconds_total: seconds(&stat.total, hz),
        context_switches_per_sec: rate(|s| s.context_switches),
        interrupts_per_sec: rate(|s| s.interrupts),
        forks_per_sec: rate(|s| s.forks),
        procs_running: stat.procs_running,
        procs_blocked: stat.procs_blocked,
        context_switches_total: stat.context_switches,
        interrupts_total: stat.interrupts,
        forks_total: stat.forks,
    })
}

fn build_memory(cur: &RawNode, prev: Option<&RawNode>, dt: f64, why: &mut Reasons) -> (Option<Memory>, Option<Swap>, Option<HugePages>) {
    let m = match &cur.meminfo {
        Ok(m) => m,
        Err(e) => {
            why.error("memory", e);
            return (None, None, None);
        }
    };
    let used = m.mem_total_bytes.zip(m.mem_available_bytes).map(|(t, a)| t.saturating_sub(a));
    if m.mem_available_bytes.is_none() {
        let r = "MemAvailable is not in /proc/meminfo (kernel before 3.14)";
        for k in ["memory_usage", "memory.available_bytes", "memory.used_bytes", "memory.used_percent"] {
            why.add(k, r);
        }
    }
    let memory = Memory {
        total_bytes: m.mem_total_bytes,
        available_bytes: m.mem_available_bytes,
        used_bytes: used,
        used_percent: used.zip(m.mem_total_bytes).and_then(|(u, t)| percent(u as f64, t as f64)),
        free_bytes: m.mem_free_bytes,
        buffers_bytes: m.buffers_bytes,
        cached_bytes: m.cached_bytes,
        shmem_bytes: m.shmem_bytes,
        slab_bytes: m.slab_bytes,
        slab_reclaimable_bytes: m.s_reclaimable_bytes,
        anon_bytes: m.anon_pages_bytes,
        mapped_bytes: m.mapped_bytes,
        active_file_bytes: m.active_file_bytes,
        inactive_file_bytes: m.inactive_file_bytes,
        dirty_bytes: m.dirty_bytes,
        writeback_bytes: m.writeback_bytes,
        page_tables_bytes: m.page_tables_bytes,
        kernel_stack_bytes: m.kernel_stack_bytes,
        committed_bytes: m.committed_as_bytes,
        commit_limit_bytes: m.commit_limit_bytes,
        anon_huge_pages_bytes: m.anon_huge_pages_bytes,
    };
    let vm = cur.vmstat.as_ref().ok();
    let pvm = prev.and_then(|p| p.vmstat.as_ref().ok());
    let swap_used = m.swap_total_bytes.zip(m.swap_free_bytes).map(|(t, f)| t.saturating_sub(f));
    let swap = Swap {
        total_bytes: m.swap_total_bytes,
        free_bytes: m.swap_free_bytes,
        used_bytes: swap_used,
        used_percent: swap_used.zip(m.swap_total_bytes).and_then(|(u, t)| percent(u as f64, t as f64)),
        cached_bytes: m.swap_cached_bytes,
        swap_in_pages_per_sec: per_sec_opt(pvm.and_then(|p| p.pswpin), vm.and_then(|v| v.pswpin), dt),
        swap_out_pages_per_sec: per_sec_opt(pvm.and_then(|p| p.pswpout), vm.and_then(|v| v.pswpout), dt),
    };
    if m.swap_total_bytes == Some(0) {
        why.add("swap.used_percent", "no swap configured");
    }
    if m.hugepages_total == Some(0) {
        why.add("hugepages.used_percent", "no huge pages configured");
    }
    if m.hugetlb_bytes.is_none() {
        why.add("hugepages.hugetlb_bytes", "Hugetlb is not in /proc/meminfo (kernel before 4.16)");
    }
    let huge = HugePages {
        total: m.hugepages_total,
        free: m.hugepages_free,
        reserved: m.hugepages_rsvd,
        surplus: m.hugepages_surp,
        page_size_bytes: m.hugepagesize_bytes,
        hugetlb_bytes: m.hugetlb_bytes,
        used_percent: m
            .hugepages_total
            .zip(m.hugepages_free)
            .and_then(|(t, f)| percent(t.saturating_sub(f) as f64, t as f64)),
    };
    (Some(memory), Some(swap), Some(huge))
}

fn build_ksm(cur: &RawNode, why: &mut Reasons) -> Option<Ksm> {
    match &cur.ksm {
        Ok(k) => Some(Ksm {
            run: k.run,
            pages_shared: k.pages_shared,
            pages_sharing: k.pages_sharing,
            pages_unshared: k.pages_unshared,
            pages_volatile: k.pages_volatile,
            full_scans: k.full_scans,
            saved_bytes: k.pages_sharing.and_then(|p| p.checked_mul(host::page_size())),
        }),
        Err(e) if e.is_gone() => {
            why.add("ksm", "KSM is not available (kernel built without CONFIG_KSM)");
            None
        }
        Err(e) => {
            why.error("ksm", e);
            None
        }
    }
}

fn build_vm(cur: &RawNode, prev: Option<&RawNode>, dt: f64, why: &mut Reasons) -> Option<VmActivity> {
    let v = match &cur.vmstat {
        Ok(v) => v,
        Err(e) => {
            why.error("vm", e);
            return None;
        }
    };
    let p = prev.and_then(|p| p.vmstat.as_ref().ok());
    if v.oom_kill.is_none() {
        why.add("vm.oom_kills_total", "oom_kill is not in /proc/vmstat (kernel before 4.13)");
    }
    // pgpgin/pgpgout count KiB, not pages (mm/vmstat.c, and the block layer's accounting).
    let kib = |r: Option<f64>| r.map(|x| x * 1024.0);
    Some(VmActivity {
        page_faults_per_sec: per_sec_opt(p.and_then(|p| p.pgfault), v.pgfault, dt),
        major_page_faults_per_sec: per_sec_opt(p.and_then(|p| p.pgmajfault), v.pgmajfault, dt),
        page_in_bytes_per_sec: kib(per_sec_opt(p.and_then(|p| p.pgpgin), v.pgpgin, dt)),
        page_out_bytes_per_sec: kib(per_sec_opt(p.and_then(|p| p.pgpgout), v.pgpgout, dt)),
        oom_kills_total: v.oom_kill,
    })
}

/// One pressure file's reported form, with the stall share of the interval from the totals' delta.
/// Shared by the node and by cgroups (same file format).
pub(crate) fn pressure_of(c: &crate::procfs::pressure::Pressure, p: Option<&crate::procfs::pressure::Pressure>, dt: f64) -> Pressure {
    let line = |c: &PsiLine, p: Option<&PsiLine>| PressureLine {
        avg10: c.avg10,
        avg60: c.avg60,
        avg300: c.avg300,
        total_usec: c.total_usec,
        // usec stalled per second of wall time -> percent: / 1e6 * 100.
        stall_percent: per_sec(p.map(|p| p.total_usec), c.total_usec, dt).map(|r| (r / 1e4).min(100.0)),
    };
    Pressure { some: line(&c.some, p.map(|p| &p.some)), full: c.full.as_ref().map(|f| line(f, p.and_then(|p| p.full.as_ref()))) }
}

fn build_pressure(cur: &RawNode, prev: Option<&RawNode>, dt: f64, why: &mut Reasons) -> Option<PressureAll> {
    let mut out: [Option<Pressure>; 3] = [None, None, None];
    let mut all_gone = true;
    for (i, kind) in PRESSURE_KINDS.iter().enumerate() {
        match &cur.pressure[i] {
            Ok(c) => {
                all_gone = false;
                let p = prev.and_then(|p| p.pressure[i].as_ref().ok());
                out[i] = Some(pressure_of(c, p, dt));
                if c.full.is_none() {
                    why.add(&format!("pressure.{kind}.full"), "the kernel reports no 'full' line here (cpu before Linux 5.13)");
                }
            }
            Err(e) if e.is_gone() => {}
            Err(e) => {
                all_gone = false;
                why.error(&format!("pressure.{kind}"), e);
            }
        }
    }
    if all_gone {
        why.add("pressure", "PSI is not available: kernel before 4.20, built without CONFIG_PSI, or booted with psi=0");
        return None;
    }
    let [cpu, memory, io] = out;
    Some(PressureAll { cpu, memory, io })
}

fn build_disks(cur: &RawNode, prev: Option<&RawNode>, dt: f64, ctx: &Context, why: &mut Reasons) -> Vec<Disk> {
    let disks = match &cur.diskstats {
        Ok(d) => d,
        Err(e) => {
            why.error("disks", e);
            return vec![];
        }
    };
    let prev_map = prev.and_then(|p| p.diskstats.as_ref().ok()).map(|v| by_name(v.iter().map(|d| (d.name.as_str(), d))));
    let selected: Vec<&DiskStat> = disks
        .iter()
        .filter(|d| ctx.disk_class.get(&d.name).is_none_or(|c| c.whole) && ctx.filters.disks.allows(&d.name))
        .collect();
    if selected.len() > ctx.config.max_disks {
        why.add("disks", format!("{} disks match; only the first {} (node.max_disks) are reported", selected.len(), ctx.config.max_disks));
    }
    selected
        .into_iter()
        .take(ctx.config.max_disks)
        .map(|d| {
            let p = prev_map.as_ref().and_then(|m| m.get(d.name.as_str()).copied());
            let r = |f: fn(&DiskStat) -> u64| per_sec(p.map(f), f(d), dt);
            let counters: [fn(&DiskStat) -> u64; 5] =
                [|d| d.reads_completed, |d| d.writes_completed, |d| d.sectors_read, |d| d.sectors_written, |d| d.io_time_ms];
            if p.is_some_and(|p| counters.iter().any(|f| f(d) < f(p))) {
                why.add(&format!("disks.{}", d.name), RESET);
            }
            if d.discards_completed.is_none() {
                for f in ["discard_bytes_per_sec", "discarded_bytes_total"] {
                    why.add(&format!("disks.{}.{f}", d.name), "no discard columns in /proc/diskstats (kernel before 4.18)");
                }
            }
            if d.flushes_completed.is_none() {
                why.add(&format!("disks.{}.flushes_total", d.name), "no flush columns in /proc/diskstats (kernel before 5.5)");
            }
            let latency = |t: fn(&DiskStat) -> u64, n: fn(&DiskStat) -> u64| {
                let p = p?;
                let ops = rate::delta(Some(n(p)), n(d))?;
                let ms = rate::delta(Some(t(p)), t(d))?;
                (ops > 0).then(|| ms as f64 / ops as f64)
            };
            Disk {
                name: d.name.clone(),
                major: d.major,
                minor: d.minor,
                stacked: ctx.disk_class.get(&d.name).is_some_and(|c| c.stacked),
                read_bytes_per_sec: r(|d| d.sectors_read).map(|x| x * 512.0),
                write_bytes_per_sec: r(|d| d.sectors_written).map(|x| x * 512.0),
                reads_per_sec: r(|d| d.reads_completed),
                writes_per_sec: r(|d| d.writes_completed),
                discard_bytes_per_sec: per_sec_opt(p.and_then(|p| p.sectors_discarded), d.sectors_discarded, dt).map(|x| x * 512.0),
                // io_time is in ms: ms per s / 10 = percent.
                busy_percent: r(|d| d.io_time_ms).map(|x| (x / 10.0).min(100.0)),
                read_latency_ms: latency(|d| d.read_time_ms, |d| d.reads_completed),
                write_latency_ms: latency(|d| d.write_time_ms, |d| d.writes_completed),
                in_progress: d.ios_in_progress,
                read_bytes_total: d.sectors_read.saturating_mul(512),
                write_bytes_total: d.sectors_written.saturating_mul(512),
                reads_total: d.reads_completed,
                writes_total: d.writes_completed,
                read_time_secs_total: d.read_time_ms as f64 / 1000.0,
                write_time_secs_total: d.write_time_ms as f64 / 1000.0,
                io_time_secs_total: d.io_time_ms as f64 / 1000.0,
                discarded_bytes_total: d.sectors_discarded.map(|s| s.saturating_mul(512)),
                flushes_total: d.flushes_completed,
            }
        })
        .collect()
}

fn interface_kind(name: &str, ctx: &Context) -> InterfaceKind {
    if name == "lo" {
        InterfaceKind::Loopback
    } else if ctx.filters.virtual_interfaces.any_include_matches(name) {
        InterfaceKind::Virtual
    } else {
        // In sysfs, only interfaces backed by a device have a `device` link; bridges, bonds, VLANs
        // and tunnels do not. Without sysfs (a fixture, a container) trust the name patterns.
        match ctx.net_has_device.get(name).copied().flatten() {
            Some(false) => InterfaceKind::Virtual,
            _ => InterfaceKind::Physical,
        }
    }
}

fn build_interfaces(cur: &RawNode, prev: Option<&RawNode>, dt: f64, ctx: &Context, why: &mut Reasons) -> Vec<Interface> {
    let ifaces = match &cur.net_dev {
        Ok(d) => d,
        Err(e) => {
            why.error("interfaces", e);
            return vec![];
        }
    };
    let prev_map = prev.and_then(|p| p.net_dev.as_ref().ok()).map(|v| by_name(v.iter().map(|d| (d.name.as_str(), d))));
    let selected: Vec<&NetDev> = ifaces.iter().filter(|d| ctx.filters.interfaces.allows(&d.name)).collect();
    if selected.len() > ctx.config.max_interfaces {
        why.add(
            "interfaces",
            format!("{} interfaces match; only the first {} (node.max_interfaces) are reported", selected.len(), ctx.config.max_interfaces),
        );
    }
    selected
        .into_iter()
        .take(ctx.config.max_interfaces)
        .map(|d| {
            let p = prev_map.as_ref().and_then(|m| m.get(d.name.as_str()).copied());
            let r = |f: fn(&NetDev) -> u64| per_sec(p.map(f), f(d), dt);
            if p.is_some_and(|p| went_down(p, d)) {
                why.add(&format!("interfaces.{}", d.name), RESET);
            }
            Interface {
                name: d.name.clone(),
                kind: interface_kind(&d.name, ctx),
                rx_bytes_per_sec: r(|d| d.rx_bytes),
                tx_bytes_per_sec: r(|d| d.tx_bytes),
                rx_packets_per_sec: r(|d| d.rx_packets),
                tx_packets_per_sec: r(|d| d.tx_packets),
                rx_errors_per_sec: r(|d| d.rx_errors),
                tx_errors_per_sec: r(|d| d.tx_errors),
                rx_dropped_per_sec: r(|d| d.rx_dropped),
                tx_dropped_per_sec: r(|d| d.tx_dropped),
                rx_bytes_total: d.rx_bytes,
                tx_bytes_total: d.tx_bytes,
                rx_packets_total: d.rx_packets,
                tx_packets_total: d.tx_packets,
                rx_errors_total: d.rx_errors,
                tx_errors_total: d.tx_errors,
                rx_dropped_total: d.rx_dropped,
                tx_dropped_total: d.tx_dropped,
            }
        })
        .collect()
}

fn build_filesystems(cur: &RawNode, why: &mut Reasons) -> Vec<Filesystem> {
    let mounts = match &cur.filesystems {
        Ok(m) => m,
        Err(e) => {
            why.error("filesystems", e);
            return vec![];
        }
    };
    if cur.filesystems_over_cap > 0 {
        why.add(
            "filesystems",
            format!("{} more filesystems match; only the first {} (node.max_filesystems) are reported", cur.filesystems_over_cap, mounts.len()),
        );
    }
    mounts
        .iter()
        .map(|(m, st)| {
            let st = st.as_ref().map_err(|e| why.error(&format!("filesystems.{}", m.mount_point), e)).ok();
            let inodes_used = st.map(|s| s.inodes.saturating_sub(s.inodes_free));
            Filesystem {
                mount_point: m.mount_point.clone(),
                device: m.source.clone(),
                fs_type: m.fs_type.clone(),
                size_bytes: st.map(|s| s.size_bytes),
                used_bytes: st.map(|s| s.size_bytes.saturating_sub(s.free_bytes)),
                avail_bytes: st.map(|s| s.avail_bytes),
                used_percent: st.and_then(used_percent),
                inodes_total: st.map(|s| s.inodes).filter(|&n| n > 0),
                inodes_used: inodes_used.filter(|_| st.is_some_and(|s| s.inodes > 0)),
                inodes_free: st.filter(|s| s.inodes > 0).map(|s| s.inodes_free),
                inodes_used_percent: st.zip(inodes_used).and_then(|(s, u)| percent(u as f64, s.inodes as f64)),
                read_only: m.mount_options.split(',').any(|o| o == "ro") || st.is_some_and(|s| s.read_only),
            }
        })
        .collect()
}
