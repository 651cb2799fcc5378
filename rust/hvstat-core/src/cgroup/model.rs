//! The reported form of a guest's cgroup: a pure function of (current, previous) raw readings.
//! Units are in the field names; a value that cannot be known is null, with the reason in the
//! guest's `unavailable`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Serialize, Serializer};

use super::discover::{Guest, Runtime};
use super::sampler::{IoDevice, Net, RawContainer};
use super::Limit;
use crate::node::model::{pressure_of, Pressure};
use crate::rate::{per_sec, percent};

impl Serialize for Limit {
    /// A number, or the string "max" for no limit: what the kernel writes, never -1.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Max => s.serialize_str("max"),
            Limit::Value(v) => s.serialize_u64(*v),
        }
    }
}

impl JsonSchema for Limit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Limit".into()
    }

    /// What the `Serialize` impl above writes: a number, or "max".
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A limit in bytes (or pids, ...), or \"max\" for no limit, as the kernel writes it.",
            "anyOf": [
                {"type": "integer", "format": "uint64", "minimum": 0},
                {"type": "string", "const": "max"}
            ]
        })
    }
}

/// One container sample as the core produces it (all guests at once).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ContainersSample {
    pub timestamp: f64,
    #[serde(default)]
    pub interval_secs: Option<f64>,
    /// Online CPUs of the host: what `cpu_usage_percent` is a share of.
    #[serde(default)]
    pub host_cpus: Option<u64>,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
    /// Ids that were found / lost by this sample's discovery.
    #[serde(default)]
    pub appeared: Vec<String>,
    #[serde(default)]
    pub vanished: Vec<String>,
    #[serde(default)]
    pub unavailable: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "ContainerState")]
pub enum State {
    Running,
    Paused,
    /// The cgroup exists but holds no process (a stopped container whose cgroup is kept).
    Empty,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Its own network namespace: the counters below are the guest's.
    Own,
    /// The host's namespace: its traffic is counted in the node's, not here.
    Host,
    Unknown,
}

/// `GET /api/containers/{ref}/metrics`: one guest's cgroup sample. See docs/api.md.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ContainerMetrics {
    /// When this guest was read, unix seconds.
    pub timestamp: f64,
    pub id: String,
    pub name: String,
    pub runtime: Runtime,
    pub cgroup_path: String,
    pub state: State,
    /// Processes in the guest's cgroup; for guests that keep them in sub-cgroups (LXC with
    /// systemd, Proxmox's `ns`, libvirt's `emulator`), those of the sub-cgroups.
    pub processes: usize,

    /// Cores in use over the interval (a busy loop reads 1.0).
    #[serde(default)]
    pub cpu_cores: Option<f64>,
    /// Share of the whole host's CPU time (all online CPUs = 100).
    pub cpu_usage_percent: Option<f64>,
    /// quota / period of cpu.max or cfs_quota_us; null when unlimited.
    #[serde(default)]
    pub cpu_limit_cores: Option<f64>,
    /// Share of the container's own CPU limit.
    #[serde(default)]
    pub cpu_limit_percent: Option<f64>,
    #[serde(default)]
    pub cpu_usage_secs_total: Option<f64>,
    #[serde(default)]
    pub cpu_user_secs_total: Option<f64>,
    #[serde(default)]
    pub cpu_system_secs_total: Option<f64>,
    #[serde(default)]
    pub cpu_periods_total: Option<u64>,
    #[serde(default)]
    pub cpu_throttled_periods_total: Option<u64>,
    #[serde(default)]
    pub cpu_throttled_secs_total: Option<f64>,
    /// Throttled periods / elapsed periods over the interval.
    #[serde(default)]
    pub cpu_throttled_percent: Option<f64>,

    pub memory_usage_bytes: Option<u64>,
    /// Bytes, or "max" for no limit.
    pub memory_limit_bytes: Option<Limit>,
    #[serde(default)]
    pub memory_usage_percent: Option<f64>,
    /// usage - inactive_file: what the kernel cannot reclaim easily (cAdvisor's working set).
    #[serde(default)]
    pub memory_working_set_bytes: Option<u64>,
    #[serde(default)]
    pub memory_rss_bytes: Option<u64>,
    #[serde(default)]
    pub memory_cache_bytes: Option<u64>,
    #[serde(default)]
    pub memory_swap_bytes: Option<u64>,
    #[serde(default)]
    pub memory_oom_kills_total: Option<u64>,

    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
    #[serde(default)]
    pub block_read_ops: Option<u64>,
    #[serde(default)]
    pub block_write_ops: Option<u64>,
    #[serde(default)]
    pub block_read_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub block_write_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub block_read_ops_per_sec: Option<f64>,
    #[serde(default)]
    pub block_write_ops_per_sec: Option<f64>,
    #[serde(default)]
    pub block_devices: Vec<IoDevice>,

    #[serde(default)]
    pub pids_current: Option<u64>,
    #[serde(default)]
    pub pids_max: Option<Limit>,

    pub network_mode: NetworkMode,
    pub network_rx_bytes: Option<u64>,
    pub network_tx_bytes: Option<u64>,
    #[serde(default)]
    pub network_rx_packets: Option<u64>,
    #[serde(default)]
    pub network_tx_packets: Option<u64>,
    #[serde(default)]
    pub network_rx_errors: Option<u64>,
    #[serde(default)]
    pub network_tx_errors: Option<u64>,
    #[serde(default)]
    pub network_rx_dropped: Option<u64>,
    #[serde(default)]
    pub network_tx_dropped: Option<u64>,
    #[serde(default)]
    pub network_rx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub network_tx_bytes_per_sec: Option<f64>,
    #[serde(default)]
    pub network_rx_packets_per_sec: Option<f64>,
    #[serde(default)]
    pub network_tx_packets_per_sec: Option<f64>,
    /// Interfaces seen inside (loopback excluded).
    #[serde(default)]
    pub network_interfaces: Vec<String>,

    #[serde(default)]
    pub pressure_cpu: Option<Pressure>,
    #[serde(default)]
    pub pressure_memory: Option<Pressure>,
    #[serde(default)]
    pub pressure_io: Option<Pressure>,

    #[serde(default)]
    pub unavailable: BTreeMap<String, String>,
}

#[derive(Default, Clone, Copy)]
struct NetTotals {
    rx_bytes: u64,
    tx_bytes: u64,
    rx_packets: u64,
    tx_packets: u64,
    rx_errors: u64,
    tx_errors: u64,
    rx_dropped: u64,
    tx_dropped: u64,
}

fn net_totals(net: &Net) -> Option<NetTotals> {
    let Net::Own(devs) = net else { return None };
    let mut t = NetTotals::default();
    for d in devs.iter().filter(|d| d.name != "lo") {
        t.rx_bytes = t.rx_bytes.saturating_add(d.rx_bytes);
        t.tx_bytes = t.tx_bytes.saturating_add(d.tx_bytes);
        t.rx_packets = t.rx_packets.saturating_add(d.rx_packets);
        t.tx_packets = t.tx_packets.saturating_add(d.tx_packets);
        t.rx_errors = t.rx_errors.saturating_add(d.rx_errors);
        t.tx_errors = t.tx_errors.saturating_add(d.tx_errors);
        t.rx_dropped = t.rx_dropped.saturating_add(d.rx_dropped);
        t.tx_dropped = t.tx_dropped.saturating_add(d.tx_dropped);
    }
    Some(t)
}

/// Sum over the devices at the bottom of the stack, so I/O through LVM or md counts once.
fn io_totals(io: &Option<Vec<IoDevice>>) -> Option<IoDevice> {
    let add_opt = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a.saturating_add(b));
    io.as_ref().map(|devs| {
        // Only stacked devices listed (unusual): then they are all there is to count.
        let any_bottom = devs.iter().any(|d| !d.stacked);
        devs.iter().filter(|d| !d.stacked || !any_bottom).fold(
            IoDevice { read_ops: Some(0), write_ops: Some(0), ..IoDevice::default() },
            |a, d| IoDevice {
                major: 0,
                minor: 0,
                read_bytes: a.read_bytes.saturating_add(d.read_bytes),
                write_bytes: a.write_bytes.saturating_add(d.write_bytes),
                read_ops: add_opt(a.read_ops, d.read_ops),
                write_ops: add_opt(a.write_ops, d.write_ops),
                stacked: false,
            },
        )
    })
}

const FIRST: &str = "first sample of this container: a rate needs two readings";
const RESET: &str = "counter went down (container restarted or counters reset); rates resume next interval";

/// Why fields are null: field -> the first reason given.
type Why = BTreeMap<String, String>;

fn note(why: &mut Why, field: &str, reason: &str) {
    why.entry(field.to_owned()).or_insert_with(|| reason.to_owned());
}

/// Seconds between the two readings (0 without a previous one: no rate is made of it).
pub(crate) fn interval_secs(cur: &RawContainer, prev: Option<&RawContainer>) -> f64 {
    match (prev.and_then(|p| p.at), cur.at) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    }
}

/// Per-second rate of a counter of the two readings.
fn rate_of(prev: Option<&RawContainer>, cur: &RawContainer, dt: f64, f: fn(&RawContainer) -> Option<u64>) -> Option<f64> {
    per_sec(prev.and_then(f), f(cur)?, dt)
}

/// Cores in use over the interval (a busy loop reads 1.0), from the CPU time counter.
pub(crate) fn cpu_cores(cur: &RawContainer, prev: Option<&RawContainer>, dt: f64) -> Option<f64> {
    rate_of(prev, cur, dt, |r| r.cpu_usage_usec).map(|usec_per_sec| usec_per_sec / 1e6)
}

/// Share of the whole host's CPU time (all online CPUs = 100).
pub(crate) fn host_percent(cores: Option<f64>, host_cpus: Option<u64>) -> Option<f64> {
    cores.zip(host_cpus).and_then(|(c, n)| percent(c, n as f64))
}

/// The pressure files (cpu, memory, io) with their stall rates over the interval.
pub(crate) fn pressures(cur: &RawContainer, prev: Option<&RawContainer>, dt: f64) -> [Option<Pressure>; 3] {
    [0, 1, 2].map(|i| cur.pressure[i].as_ref().map(|c| pressure_of(c, prev.and_then(|p| p.pressure[i].as_ref()), dt)))
}

struct Cpu {
    cores: Option<f64>,
    limit_cores: Option<f64>,
    throttled_percent: Option<f64>,
}

fn cpu(cur: &RawContainer, prev: Option<&RawContainer>, dt: f64, why: &mut Why) -> Cpu {
    let cores = cpu_cores(cur, prev, dt);
    let limit_cores = match cur.cpu_quota {
        Some((Limit::Value(q), period)) if period > 0 => Some(q as f64 / period as f64),
        Some((Limit::Max, _)) => {
            note(why, "cpu_limit_cores", "no CPU limit (quota is max)");
            None
        }
        _ => None,
    };
    if cur.cpu_usage_usec.is_none() {
        note(why, "cpu", "no CPU accounting file for this cgroup (cpu.stat / cpuacct.usage)");
    } else if prev.and_then(|p| p.cpu_usage_usec).zip(cur.cpu_usage_usec).is_some_and(|(p, c)| c < p) {
        note(why, "cpu_cores", RESET);
    }
    let periods = rate_of(prev, cur, dt, |r| r.nr_periods);
    let throttled = rate_of(prev, cur, dt, |r| r.nr_throttled);
    if cur.nr_periods.is_none() {
        note(why, "cpu_throttled_percent", "no CPU bandwidth statistics (cpu controller's cpu.stat)");
    }
    Cpu { cores, limit_cores, throttled_percent: throttled.zip(periods).and_then(|(t, p)| percent(t, p)) }
}

/// Usage as a share of the limit, and why the memory fields that need more are null.
fn memory(cur: &RawContainer, why: &mut Why) -> Option<f64> {
    let usage_percent = match (cur.memory_usage, cur.memory_limit) {
        (Some(u), Some(Limit::Value(l))) => percent(u as f64, l as f64),
        (_, Some(Limit::Max)) => {
            note(why, "memory_usage_percent", "no memory limit");
            None
        }
        _ => None,
    };
    if cur.memory_usage.is_none() {
        note(why, "memory", "no memory controller file for this cgroup");
    }
    if cur.memory_usage.is_some() && cur.memory_inactive_file.is_none() {
        note(why, "memory_working_set_bytes", "memory.stat gave no inactive_file");
    }
    if cur.memory_usage.is_some() && cur.memory_swap.is_none() {
        note(why, "memory_swap_bytes", "swap accounting is off (no memory.swap.current / memory.memsw.usage_in_bytes)");
    }
    usage_percent
}

/// Block I/O totals (devices at the bottom of the stack) and their rates.
struct Block {
    total: Option<IoDevice>,
    read_bytes_per_sec: Option<f64>,
    write_bytes_per_sec: Option<f64>,
    read_ops_per_sec: Option<f64>,
    write_ops_per_sec: Option<f64>,
}

fn block(cur: &RawContainer, prev: Option<&RawContainer>, dt: f64, why: &mut Why) -> Block {
    let io = io_totals(&cur.io);
    let pio = prev.and_then(|p| io_totals(&p.io));
    if io.is_none() {
        // A more precise reason from the reading, if any, was added before.
        note(why, "block", "no block I/O accounting for this cgroup (io.stat / blkio.throttle.*)");
    }
    let io_rate = |f: fn(&IoDevice) -> Option<u64>| per_sec(pio.as_ref().and_then(f), io.as_ref().and_then(f)?, dt);
    Block {
        total: io,
        read_bytes_per_sec: io_rate(|d| Some(d.read_bytes)),
        write_bytes_per_sec: io_rate(|d| Some(d.write_bytes)),
        read_ops_per_sec: io_rate(|d| d.read_ops),
        write_ops_per_sec: io_rate(|d| d.write_ops),
    }
}

/// The guest's network namespace: totals over its interfaces but lo, and their rates.
struct Network {
    mode: NetworkMode,
    totals: Option<NetTotals>,
    rx_bytes_per_sec: Option<f64>,
    tx_bytes_per_sec: Option<f64>,
    rx_packets_per_sec: Option<f64>,
    tx_packets_per_sec: Option<f64>,
    interfaces: Vec<String>,
}

fn network(cur: &RawContainer, prev: Option<&RawContainer>, dt: f64, why: &mut Why) -> Network {
    let (mode, net) = match &cur.net {
        Net::Own(_) => (NetworkMode::Own, net_totals(&cur.net)),
        Net::Host => {
            note(why, "network", "the container shares the host's network namespace; its traffic is in the node's interfaces");
            (NetworkMode::Host, None)
        }
        Net::NoProcess => {
            note(why, "network", "no process in the container to read its network namespace through");
            (NetworkMode::Unknown, None)
        }
        Net::Unknown => (NetworkMode::Unknown, None),
        Net::Error(e) => {
            note(why, "network", e);
            (NetworkMode::Unknown, None)
        }
    };
    let pnet = prev.and_then(|p| net_totals(&p.net));
    let net_rate = |f: fn(&NetTotals) -> u64| per_sec(pnet.as_ref().map(f), net.as_ref().map(f)?, dt);
    Network {
        mode,
        totals: net,
        rx_bytes_per_sec: net_rate(|n| n.rx_bytes),
        tx_bytes_per_sec: net_rate(|n| n.tx_bytes),
        rx_packets_per_sec: net_rate(|n| n.rx_packets),
        tx_packets_per_sec: net_rate(|n| n.tx_packets),
        interfaces: match &cur.net {
            Net::Own(devs) => devs.iter().filter(|d| d.name != "lo").map(|d| d.name.clone()).collect(),
            _ => vec![],
        },
    }
}

fn state(cur: &RawContainer) -> State {
    match (cur.frozen, cur.procs.is_empty(), cur.populated) {
        (Some(true), _, _) => State::Paused,
        (_, true, Some(false) | None) => State::Empty,
        _ => State::Running,
    }
}

pub(crate) fn build(g: &Guest, name: &str, cur: &RawContainer, prev: Option<&RawContainer>, host_cpus: Option<u64>, timestamp: f64) -> ContainerMetrics {
    let mut why = Why::new();
    for (field, e) in &cur.errors {
        note(&mut why, field, e);
    }
    let dt = interval_secs(cur, prev);
    if prev.is_none() {
        note(&mut why, "rates", FIRST);
    }
    let cpu = cpu(cur, prev, dt, &mut why);
    let memory_usage_percent = memory(cur, &mut why);
    let block = block(cur, prev, dt, &mut why);
    let net = network(cur, prev, dt, &mut why);
    let [pressure_cpu, pressure_memory, pressure_io] = pressures(cur, prev, dt);
    if cur.pressure.iter().all(Option::is_none) {
        note(&mut why, "pressure", "no pressure files for this cgroup (cgroup v2 with PSI)");
    }
    let (io, totals) = (block.total, net.totals);

    ContainerMetrics {
        timestamp,
        id: g.id.clone(),
        name: name.to_owned(),
        runtime: g.runtime,
        cgroup_path: g.path.clone(),
        state: state(cur),
        processes: cur.procs.len(),
        cpu_cores: cpu.cores,
        cpu_usage_percent: host_percent(cpu.cores, host_cpus),
        cpu_limit_cores: cpu.limit_cores,
        cpu_limit_percent: cpu.cores.zip(cpu.limit_cores).and_then(|(c, l)| percent(c, l)),
        cpu_usage_secs_total: cur.cpu_usage_usec.map(|u| u as f64 / 1e6),
        cpu_user_secs_total: cur.cpu_user_usec.map(|u| u as f64 / 1e6),
        cpu_system_secs_total: cur.cpu_system_usec.map(|u| u as f64 / 1e6),
        cpu_periods_total: cur.nr_periods,
        cpu_throttled_periods_total: cur.nr_throttled,
        cpu_throttled_secs_total: cur.throttled_usec.map(|u| u as f64 / 1e6),
        cpu_throttled_percent: cpu.throttled_percent,
        memory_usage_bytes: cur.memory_usage,
        memory_limit_bytes: cur.memory_limit,
        memory_usage_percent,
        memory_working_set_bytes: cur.memory_usage.zip(cur.memory_inactive_file).map(|(u, i)| u.saturating_sub(i)),
        memory_rss_bytes: cur.memory_rss,
        memory_cache_bytes: cur.memory_cache,
        memory_swap_bytes: cur.memory_swap,
        memory_oom_kills_total: cur.oom_kills,
        block_read_bytes: io.map(|d| d.read_bytes),
        block_write_bytes: io.map(|d| d.write_bytes),
        block_read_ops: io.and_then(|d| d.read_ops),
        block_write_ops: io.and_then(|d| d.write_ops),
        block_read_bytes_per_sec: block.read_bytes_per_sec,
        block_write_bytes_per_sec: block.write_bytes_per_sec,
        block_read_ops_per_sec: block.read_ops_per_sec,
        block_write_ops_per_sec: block.write_ops_per_sec,
        block_devices: cur.io.clone().unwrap_or_default(),
        pids_current: cur.pids_current,
        pids_max: cur.pids_max,
        network_mode: net.mode,
        network_rx_bytes: totals.map(|n| n.rx_bytes),
        network_tx_bytes: totals.map(|n| n.tx_bytes),
        network_rx_packets: totals.map(|n| n.rx_packets),
        network_tx_packets: totals.map(|n| n.tx_packets),
        network_rx_errors: totals.map(|n| n.rx_errors),
        network_tx_errors: totals.map(|n| n.tx_errors),
        network_rx_dropped: totals.map(|n| n.rx_dropped),
        network_tx_dropped: totals.map(|n| n.tx_dropped),
        network_rx_bytes_per_sec: net.rx_bytes_per_sec,
        network_tx_bytes_per_sec: net.tx_bytes_per_sec,
        network_rx_packets_per_sec: net.rx_packets_per_sec,
        network_tx_packets_per_sec: net.tx_packets_per_sec,
        network_interfaces: net.interfaces,
        pressure_cpu,
        pressure_memory,
        pressure_io,
        unavailable: why,
    }
}
