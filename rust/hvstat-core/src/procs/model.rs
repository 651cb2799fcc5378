//! The reported processes, users, guests and host: pure functions of the raw readings of one tick,
//! each process's previous reading, and the interval. Units are in the field names; what cannot be
//! known is null (the sample's `unavailable` says why), never 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cgroup::discover::Runtime;
use crate::procfs::pid::PidIo;
use crate::rate::{delta, percent};

/// Which kind of guest a process's cgroup puts it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessGuestKind {
    Container,
    Vm,
}

/// The guest a process belongs to, from its cgroup (cgroup::discover::classify on the nearest
/// ancestor that is a guest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attribution {
    pub kind: ProcessGuestKind,
    pub runtime: Runtime,
    pub id: String,
}

/// One process's counters at one tick, as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawProcess {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub state: char,
    /// Effective uid (status `Uid:`); `None` when status could not be read.
    pub uid: Option<u32>,
    /// Ticks after boot (stat field 22): with the pid, the process's identity.
    pub starttime_ticks: u64,
    /// utime + stime, USER_HZ ticks, all threads (live and exited) of the process.
    pub cpu_ticks: u64,
    pub threads: u64,
    /// stat's rss pages (field 24, the same count as statm's resident) × page size; 0 for a zombie
    /// or a kernel thread (they have no memory map).
    pub rss_bytes: Option<u64>,
    /// /proc/<pid>/io; `None` when not readable (needs ptrace access). When it was not read this
    /// tick (the process used no CPU), the previous reading.
    pub io: Option<PidIo>,
    /// Seconds since the io reading before this one, when io was read this tick after ticks that did
    /// not read it; `None`: the interval's (the I/O rates' time base).
    pub io_secs: Option<f64>,
    /// Shared with the process's tracked state (read once per exec or minute, not per tick).
    pub cgroup: Option<Arc<str>>,
    pub guest: Option<Arc<Attribution>>,
}

/// What a process's rates are taken against.
#[derive(Debug, Clone, Copy)]
pub enum Previous<'a> {
    /// The same process (same pid and start time) at the previous tick.
    Reading(&'a RawProcess),
    /// Started after the previous tick: every counter started at 0 within the interval (fork
    /// zeroes the child's times and I/O accounting).
    Born,
    /// No base: the first tick, or a process seen for the first time that is older than the
    /// previous tick (its files could not be read then).
    None,
}

/// What the model needs to know about the host.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// USER_HZ.
    pub hz: u64,
    /// Online CPUs.
    pub cpus: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// Boot time, unix seconds (/proc/stat btime).
    pub btime: Option<u64>,
}

/// One process as reported.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ProcessMetrics {
    pub pid: u32,
    pub ppid: u32,
    /// The command name (stat's comm, at most 15 bytes).
    pub name: String,
    /// One letter, as ps shows it: R running, S sleeping, D uninterruptible, Z zombie, T stopped, I idle.
    pub state: String,
    /// Effective uid (what ps, top and htop show); null when /proc/<pid>/status could not be read.
    pub uid: Option<u32>,
    /// The uid's name in /etc/passwd, else the uid as a string.
    pub user: Option<String>,
    /// Unix seconds: boot time + stat's starttime.
    pub started_at: Option<f64>,
    pub threads: u64,
    /// CPU over the interval in percent of one core (a busy thread reads 100; top's %CPU).
    pub cpu_percent: Option<f64>,
    /// CPU over the interval in percent of the whole host (all online CPUs = 100).
    pub cpu_host_percent: Option<f64>,
    /// utime + stime since the process started, seconds (ps's TIME).
    pub cpu_seconds_total: f64,
    /// Resident set size (stat's rss pages, the same count as statm's resident; ps's RSS, status's VmRSS).
    pub rss_bytes: Option<u64>,
    /// rss_bytes in percent of MemTotal.
    pub memory_percent: Option<f64>,
    /// Bytes the process caused to be read from storage per second (io's read_bytes).
    pub read_bytes_per_sec: Option<f64>,
    /// Bytes the process caused to be written to storage per second (io's write_bytes, counted when
    /// pages are dirtied).
    pub write_bytes_per_sec: Option<f64>,
    /// io's read_bytes since the process started; null without ptrace access to it.
    pub read_bytes_total: Option<u64>,
    /// io's write_bytes since the process started.
    pub write_bytes_total: Option<u64>,
    /// The process's cgroup (the unified line, else the cpu controller's).
    pub cgroup: Option<String>,
    /// The container it runs in (the runtime's id), from its cgroup.
    pub container: Option<String>,
    /// The VM whose scope holds it (libvirt's machine name, Proxmox's vmid), from its cgroup.
    pub vm: Option<String>,
    /// The runtime of that container or VM.
    pub runtime: Option<Runtime>,
}

/// Counter deltas of one process over the interval (for the per-user and per-guest sums).
#[derive(Debug, Clone, Copy, Default)]
pub struct Deltas {
    pub cpu_ticks: Option<u64>,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
}

fn base<'a>(prev: Previous<'a>, f: impl Fn(&'a RawProcess) -> Option<u64>) -> Option<u64> {
    match prev {
        Previous::Reading(p) => f(p),
        Previous::Born => Some(0),
        Previous::None => None,
    }
}

/// A process's rates over the interval: all the per-process work a tick does for every process
/// (the reported record is built only for the processes that are handed out).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub cpu_percent: Option<f64>,
    pub read_bytes_per_sec: Option<f64>,
    pub write_bytes_per_sec: Option<f64>,
}

/// The rates and deltas of `cur` over `dt` seconds.
pub fn rates(cur: &RawProcess, prev: Previous<'_>, dt: f64, host: &Host) -> (Rates, Deltas) {
    let hz = host.hz.max(1) as f64;
    let d = Deltas {
        cpu_ticks: base(prev, |p| Some(p.cpu_ticks)).and_then(|b| delta(Some(b), cur.cpu_ticks)),
        read_bytes: cur.io.and_then(|io| delta(base(prev, |p| p.io.map(|i| i.read_bytes)), io.read_bytes)),
        write_bytes: cur.io.and_then(|io| delta(base(prev, |p| p.io.map(|i| i.write_bytes)), io.write_bytes)),
    };
    let valid_dt = dt > 0.0 && dt.is_finite();
    let rate = |v: Option<u64>| v.filter(|_| valid_dt).map(|v| v as f64 / dt);
    let io_dt = cur.io_secs.filter(|s| *s > 0.0 && s.is_finite()).unwrap_or(dt);
    let io_rate = |v: Option<u64>| v.filter(|_| valid_dt).map(|v| v as f64 / io_dt);
    let r = Rates {
        cpu_percent: rate(d.cpu_ticks).map(|t| t / hz * 100.0),
        read_bytes_per_sec: io_rate(d.read_bytes),
        write_bytes_per_sec: io_rate(d.write_bytes),
    };
    (r, d)
}

/// The reported process from its reading and rates.
pub fn metrics(cur: &RawProcess, r: &Rates, host: &Host, user: Option<String>) -> ProcessMetrics {
    let hz = host.hz.max(1) as f64;
    ProcessMetrics {
        pid: cur.pid,
        ppid: cur.ppid,
        name: cur.comm.clone(),
        state: cur.state.to_string(),
        uid: cur.uid,
        user,
        started_at: host.btime.map(|b| b as f64 + cur.starttime_ticks as f64 / hz),
        threads: cur.threads,
        cpu_percent: r.cpu_percent,
        cpu_host_percent: r.cpu_percent.zip(host.cpus).and_then(|(c, n)| percent(c / 100.0, n as f64)),
        cpu_seconds_total: cur.cpu_ticks as f64 / hz,
        rss_bytes: cur.rss_bytes,
        memory_percent: cur.rss_bytes.zip(host.memory_total_bytes).and_then(|(r, t)| percent(r as f64, t as f64)),
        read_bytes_per_sec: r.read_bytes_per_sec,
        write_bytes_per_sec: r.write_bytes_per_sec,
        read_bytes_total: cur.io.map(|i| i.read_bytes),
        write_bytes_total: cur.io.map(|i| i.write_bytes),
        cgroup: cur.cgroup.as_deref().map(str::to_owned),
        container: cur.guest.as_ref().filter(|g| g.kind == ProcessGuestKind::Container).map(|g| g.id.clone()),
        vm: cur.guest.as_ref().filter(|g| g.kind == ProcessGuestKind::Vm).map(|g| g.id.clone()),
        runtime: cur.guest.as_ref().map(|g| g.runtime),
    }
}

/// The reported process and its deltas over `dt` seconds.
pub fn process(cur: &RawProcess, prev: Previous<'_>, dt: f64, host: &Host, user: Option<String>) -> (ProcessMetrics, Deltas) {
    let (r, d) = rates(cur, prev, dt, host);
    (metrics(cur, &r, host, user), d)
}

/// One process's part of a tick's sums (a user's, a guest's, the host's).
#[derive(Debug, Clone, Copy, Default)]
pub struct Share {
    pub threads: u64,
    pub rss_bytes: Option<u64>,
    /// Its io was read (now or at an earlier tick).
    pub io_known: bool,
    pub rates: Rates,
    pub deltas: Deltas,
}

impl Share {
    pub fn of(p: &RawProcess, rates: Rates, deltas: Deltas) -> Share {
        Share { threads: p.threads, rss_bytes: p.rss_bytes, io_known: p.io.is_some(), rates, deltas }
    }
}

/// Sums over a set of processes (a user, a guest, the host).
#[derive(Debug, Clone, Default)]
pub struct Sums {
    pub processes: u64,
    pub threads: u64,
    /// Sum of the known CPU percentages, and whether any was known.
    cpu_percent: Option<f64>,
    pub rss_bytes: u64,
    pub read_bytes_per_sec: Option<f64>,
    pub write_bytes_per_sec: Option<f64>,
    /// Processes whose io could not be read (their I/O is missing from the sums).
    pub io_unreadable: u64,
    /// CPU ticks used in the interval by these processes.
    pub cpu_ticks: u64,
}

fn add(acc: &mut Option<f64>, v: Option<f64>) {
    if let Some(v) = v {
        *acc = Some(acc.unwrap_or(0.0) + v);
    }
}

impl Sums {
    pub fn add(&mut self, s: &Share) {
        self.processes += 1;
        self.threads += s.threads;
        add(&mut self.cpu_percent, s.rates.cpu_percent);
        self.rss_bytes += s.rss_bytes.unwrap_or(0);
        add(&mut self.read_bytes_per_sec, s.rates.read_bytes_per_sec);
        add(&mut self.write_bytes_per_sec, s.rates.write_bytes_per_sec);
        if !s.io_known {
            self.io_unreadable += 1;
        }
        self.cpu_ticks += s.deltas.cpu_ticks.unwrap_or(0);
    }

    pub fn cpu_percent(&self) -> Option<f64> {
        self.cpu_percent
    }

    pub fn cpu_host_percent(&self, host: &Host) -> Option<f64> {
        self.cpu_percent.zip(host.cpus).and_then(|(c, n)| percent(c / 100.0, n as f64))
    }

    pub fn memory_percent(&self, host: &Host) -> Option<f64> {
        host.memory_total_bytes.and_then(|t| percent(self.rss_bytes as f64, t as f64))
    }
}

/// One user's processes together.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct UserMetrics {
    pub uid: u32,
    /// The name in /etc/passwd, else the uid as a string.
    pub user: String,
    pub processes: u64,
    pub threads: u64,
    /// Sum of its processes' CPU, percent of one core.
    pub cpu_percent: Option<f64>,
    /// Sum of its processes' CPU, percent of the host (all online CPUs = 100).
    pub cpu_host_percent: Option<f64>,
    /// CPU seconds its processes used since hvstat started (a counter: grows by each interval's
    /// use of the processes seen; the time of a process between its last tick and its exit is not
    /// seen).
    pub cpu_seconds_total: f64,
    /// Sum of its processes' resident sets (pages shared between them counted once per process, as
    /// ps and top do).
    pub rss_bytes: u64,
    /// rss_bytes in percent of MemTotal.
    pub memory_percent: Option<f64>,
    pub read_bytes_per_sec: Option<f64>,
    pub write_bytes_per_sec: Option<f64>,
    /// Its processes whose /proc/<pid>/io hvstat may not read (their I/O is not in the rates).
    pub io_unreadable_processes: u64,
    /// Over a threshold for `persistent_time` without a break.
    pub persistent_heavy: bool,
    /// How long it has been over a threshold without a break (null: not over one now).
    pub heavy_for_secs: Option<f64>,
    /// The thresholds that apply to this user (percent of the host's CPU and of MemTotal).
    pub cpu_threshold_percent: f64,
    pub memory_threshold_percent: f64,
}

/// One container's or VM's processes together.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GuestProcesses {
    pub kind: ProcessGuestKind,
    pub runtime: Runtime,
    pub id: String,
    pub processes: u64,
    pub threads: u64,
    pub cpu_percent: Option<f64>,
    pub cpu_host_percent: Option<f64>,
    pub rss_bytes: u64,
    pub memory_percent: Option<f64>,
    pub read_bytes_per_sec: Option<f64>,
    pub write_bytes_per_sec: Option<f64>,
}

/// Every process of the host together (system users, ignored processes and guests included).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ProcessHost {
    /// Online CPUs: what the `_host_percent` fields are a share of.
    pub cpus: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// (MemTotal - MemAvailable) / MemTotal: the memory the status rule judges.
    pub memory_used_percent: Option<f64>,
    pub processes: u64,
    pub threads: u64,
    /// Processes in state R.
    pub running: u64,
    /// Processes in state D (uninterruptible sleep, usually I/O).
    pub blocked: u64,
    /// Processes in state Z (exited, not yet reaped by their parent).
    pub zombies: u64,
    /// Processes listed in /proc whose stat could not be read (permission, hidepid=1).
    pub unreadable: u64,
    /// Sum of every process's CPU, percent of the host.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: u64,
    pub read_bytes_per_sec: Option<f64>,
    pub write_bytes_per_sec: Option<f64>,
    /// Processes whose /proc/<pid>/io hvstat may not read.
    pub io_unreadable_processes: u64,
    /// Descriptors the sampler keeps open (stat of at most `max_kept_open` processes, io of those that
    /// use CPU; at most half the soft RLIMIT_NOFILE).
    pub kept_open_fds: u64,
}

/// SysMedic's load status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoadLevel {
    Light,
    Medium,
    Heavy,
}

/// The host's load status and the rule that gave it (docs/metrics.md, "Load status").
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LoadStatus {
    pub level: LoadLevel,
    /// Which comparison decided the level, in words (`cpu_percent 91.2 >= heavy_cpu_percent 80`).
    pub rule: String,
    /// The host's CPU the rule judged: the processes' sum, percent of the host.
    pub cpu_percent: Option<f64>,
    /// The host's memory the rule judged: memory_used_percent.
    pub memory_percent: Option<f64>,
    /// Names of the persistent heavy users.
    pub persistent_users: Vec<String>,
}

/// The thresholds of the load status (percent of the host's CPU and of MemTotal).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusRule {
    pub medium_cpu_percent: f64,
    pub heavy_cpu_percent: f64,
    pub medium_memory_percent: f64,
    pub heavy_memory_percent: f64,
    /// A persistent heavy user makes the host at least medium.
    pub persistent_user_level: LoadLevel,
}

impl Default for StatusRule {
    fn default() -> Self {
        StatusRule {
            medium_cpu_percent: 50.0,
            heavy_cpu_percent: 80.0,
            medium_memory_percent: 70.0,
            heavy_memory_percent: 90.0,
            persistent_user_level: LoadLevel::Medium,
        }
    }
}

/// The load status: the highest level any comparison reaches, checked heavy first (CPU, memory,
/// then persistent users), then medium; light when none does. A CPU percentage not known yet (the
/// first tick) takes no part.
pub fn load_status(rule: &StatusRule, cpu: Option<f64>, memory: Option<f64>, persistent_users: Vec<String>) -> LoadStatus {
    let mut decided: Option<(LoadLevel, String)> = None;
    for (level, cpu_t, mem_t, name) in [
        (LoadLevel::Heavy, rule.heavy_cpu_percent, rule.heavy_memory_percent, "heavy"),
        (LoadLevel::Medium, rule.medium_cpu_percent, rule.medium_memory_percent, "medium"),
    ] {
        if let Some(c) = cpu.filter(|c| *c >= cpu_t) {
            decided = Some((level, format!("cpu_percent {c:.1} >= {name}_cpu_percent {cpu_t}")));
        } else if let Some(m) = memory.filter(|m| *m >= mem_t) {
            decided = Some((level, format!("memory_percent {m:.1} >= {name}_memory_percent {mem_t}")));
        } else if !persistent_users.is_empty() && rule.persistent_user_level == level {
            decided = Some((level, format!("persistent heavy users: {}", persistent_users.join(", "))));
        }
        if decided.is_some() {
            break;
        }
    }
    let (level, rule_text) = decided.unwrap_or_else(|| {
        let fmt = |v: Option<f64>| v.map_or("unknown".to_owned(), |v| format!("{v:.1}"));
        (
            LoadLevel::Light,
            format!(
                "cpu_percent {} < medium_cpu_percent {} and memory_percent {} < medium_memory_percent {}",
                fmt(cpu),
                rule.medium_cpu_percent,
                fmt(memory),
                rule.medium_memory_percent
            ),
        )
    });
    LoadStatus { level, rule: rule_text, cpu_percent: cpu, memory_percent: memory, persistent_users }
}

/// One tick of the process sampler.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProcessesSample {
    pub timestamp: f64,
    /// Seconds since the previous sample (null on the first: no rates).
    pub interval_secs: Option<f64>,
    pub host: ProcessHost,
    pub status: LoadStatus,
    /// Users at or above `min_uid` and not excluded, by CPU, highest first.
    pub users: Vec<UserMetrics>,
    /// Containers and VMs with processes, by CPU, highest first.
    pub guests: Vec<GuestProcesses>,
    /// Every process but the ignored ones, by CPU (then RSS), highest first; when the sampler was
    /// asked for the top N only, the first N of them (`total` says how many there are).
    pub processes: Vec<ProcessMetrics>,
    /// Processes listed but the ignored ones, before any top-N cut (`processes`' full length).
    pub total: u64,
    /// Field -> why it is null (or incomplete) in this sample.
    pub unavailable: BTreeMap<String, String>,
}

/// A filtered, sorted, limited view of the latest sample's processes (`GET /api/processes`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessQuery {
    /// `cpu` (the sample's order), `memory` (RSS, then CPU), `io` (read + write bytes/s, then CPU):
    /// highest first, ties in CPU order; `pid`: lowest first.
    pub sort: ProcessSort,
    /// At most this many (none: every match).
    pub limit: Option<usize>,
    /// This pid only.
    pub pid: Option<u32>,
    /// A uid only.
    pub uid: Option<u32>,
    /// A user name or a uid as text.
    pub user: Option<String>,
    /// The container id the cgroup gives: equal to it, or starting with it when `container_prefix`.
    pub container: Option<String>,
    pub container_prefix: bool,
    /// The VM id the cgroup gives (an unresolved VM reference).
    pub vm: Option<String>,
    /// A resolved VM: its QEMU process, or the processes in its cgroup scope (the scope or below).
    pub vm_pid: Option<u32>,
    pub vm_scope: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessSort {
    #[default]
    Cpu,
    Memory,
    Io,
    Pid,
}

/// What a [`ProcessQuery`] answers, from the latest sample.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProcessView {
    /// The sample's timestamp and interval.
    pub timestamp: f64,
    pub interval_secs: Option<f64>,
    /// Processes matching the filters, before `limit`.
    pub total: u64,
    pub processes: Vec<ProcessMetrics>,
}

/// Highest CPU first (unknown last), then the larger RSS, then the lower pid.
pub fn by_cpu(a: (Option<f64>, u64, u32), b: (Option<f64>, u64, u32)) -> std::cmp::Ordering {
    let cpu = |c: Option<f64>| c.unwrap_or(-1.0);
    cpu(b.0).total_cmp(&cpu(a.0)).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host { hz: 100, cpus: Some(4), memory_total_bytes: Some(1000 << 20), btime: Some(1_700_000_000) }
    }

    fn raw(cpu_ticks: u64, write: u64) -> RawProcess {
        RawProcess {
            pid: 42,
            comm: "x".into(),
            state: 'R',
            uid: Some(1000),
            starttime_ticks: 500,
            cpu_ticks,
            threads: 1,
            rss_bytes: Some(100 << 20),
            io: Some(PidIo { write_bytes: write, ..PidIo::default() }),
            ..RawProcess::default()
        }
    }

    #[test]
    fn rates_against_the_previous_reading() {
        let (m, d) = process(&raw(300, 4096), Previous::Reading(&raw(100, 0)), 2.0, &host(), None);
        assert_eq!(m.cpu_percent, Some(100.0), "200 ticks at 100 Hz in 2 s: one core");
        assert_eq!(m.cpu_host_percent, Some(25.0));
        assert_eq!(m.write_bytes_per_sec, Some(2048.0));
        assert_eq!(m.memory_percent, Some(10.0));
        assert_eq!(m.started_at, Some(1_700_000_005.0));
        assert_eq!(d.cpu_ticks, Some(200));
    }

    #[test]
    fn counters_that_go_back_have_no_rate_and_first_ticks_none() {
        let (m, d) = process(&raw(100, 0), Previous::Reading(&raw(300, 4096)), 2.0, &host(), None);
        assert_eq!((m.cpu_percent, m.write_bytes_per_sec, d.cpu_ticks), (None, None, None));
        let (m, _) = process(&raw(100, 0), Previous::None, 2.0, &host(), None);
        assert_eq!(m.cpu_percent, None);
        let (m, _) = process(&raw(100, 0), Previous::Born, 2.0, &host(), None);
        assert_eq!(m.cpu_percent, Some(50.0), "a process born in the interval used all its ticks in it");
        let (m, _) = process(&raw(100, 0), Previous::Born, 0.0, &host(), None);
        assert_eq!(m.cpu_percent, None, "no interval, no rate");
    }

    #[test]
    fn status_rule() {
        let r = StatusRule::default();
        let s = load_status(&r, Some(91.0), Some(10.0), vec![]);
        assert_eq!((s.level, s.rule.as_str()), (LoadLevel::Heavy, "cpu_percent 91.0 >= heavy_cpu_percent 80"));
        assert_eq!(load_status(&r, Some(10.0), Some(75.0), vec![]).level, LoadLevel::Medium);
        assert_eq!(load_status(&r, None, Some(95.0), vec![]).level, LoadLevel::Heavy);
        let s = load_status(&r, Some(1.0), Some(1.0), vec!["alice".into()]);
        assert_eq!((s.level, s.rule.as_str()), (LoadLevel::Medium, "persistent heavy users: alice"));
        let s = load_status(&r, None, Some(1.0), vec![]);
        assert_eq!(s.level, LoadLevel::Light);
        assert!(s.rule.contains("cpu_percent unknown"), "{}", s.rule);
    }
}
