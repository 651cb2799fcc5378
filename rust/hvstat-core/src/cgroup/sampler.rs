//! The container sampler: discovers guests (see [`super::discover`]), keeps a set of open readers
//! per guest chosen by the host's cgroup layout, and reads them into a [`RawContainer`] per tick.
//!
//! Layouts: pure v2 reads everything from the unified tree. v1 and hybrid read the controllers'
//! files from their v1 hierarchies and, where a v2 tree exists too, cpu.stat (microsecond CPU
//! time), the pressure files and cgroup.events from it, since those work without v2 controllers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::discover::{Guest, Hierarchies, Walker};
use super::model::{self, ContainersSample};
use super::names::{Lookup, MetadataRoots};
use super::{v1, v2, Limit};
use crate::error::Result;
use crate::host;
use crate::parse::{fields, lines, single_u64, u64_of, ParseError, ParseResult};
use crate::procfs::{mountinfo, net_dev, pid, pressure};
use crate::read::{FileReader, Shape};
use crate::sysfs::block::has_slaves;
use crate::sysfs::cpu::parse_cpu_count;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerConfig {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    /// The root that mount points in mountinfo are relative to (the cgroup mounts).
    pub rootfs: PathBuf,
    /// Also report systemd services (`system.slice/*.service`) as guests.
    pub include_services: bool,
    /// Guests past this many are not sampled (and `unavailable` says how many were left out).
    pub max_containers: usize,
    #[serde(flatten)]
    pub metadata: MetadataRoots,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            rootfs: "/".into(),
            include_services: false,
            max_containers: 2000,
            metadata: MetadataRoots::default(),
        }
    }
}

/// Cumulative and level readings of one guest at one moment.
#[derive(Debug, Default)]
pub struct RawContainer {
    pub at: Option<Instant>,
    pub procs: Vec<u32>,
    pub populated: Option<bool>,
    pub frozen: Option<bool>,
    pub cpu_usage_usec: Option<u64>,
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_usec: Option<u64>,
    /// (quota, period) in microseconds.
    pub cpu_quota: Option<(Limit, u64)>,
    pub memory_usage: Option<u64>,
    pub memory_limit: Option<Limit>,
    pub memory_inactive_file: Option<u64>,
    pub memory_rss: Option<u64>,
    pub memory_cache: Option<u64>,
    pub memory_swap: Option<u64>,
    pub oom_kills: Option<u64>,
    pub io: Option<Vec<IoDevice>>,
    pub pids_current: Option<u64>,
    pub pids_max: Option<Limit>,
    pub pressure: [Option<pressure::Pressure>; 3],
    pub net: Net,
    /// Field -> why it could not be read (beyond "this layout does not have it").
    pub errors: Vec<(&'static str, String)>,
    /// cgroup.procs could not be read because the cgroup went away.
    pub cgroup_gone: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct IoDevice {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    /// Null on v1 when blkio.throttle.io_serviced cannot be read.
    #[serde(default)]
    pub read_ops: Option<u64>,
    #[serde(default)]
    pub write_ops: Option<u64>,
    /// Stacked on other devices (device-mapper, md: /sys/dev/block/M:m/slaves is not empty). The
    /// kernel charges the cgroup at every layer, so such a device's I/O is also on the devices
    /// below it and is left out of the totals.
    pub stacked: bool,
}

#[derive(Debug, Default)]
pub enum Net {
    /// Not determined (no member process could be inspected).
    #[default]
    Unknown,
    NoProcess,
    /// The guest uses the host's network namespace: its traffic is the host's.
    Host,
    Own(Vec<net_dev::NetDev>),
    Error(String),
}

/// An optional reader: `None` where the layout has no such file.
type Slot = Option<FileReader>;

#[derive(Default)]
struct Files {
    procs: Slot,
    events: Slot,
    freezer_state: Slot,
    cpu_stat_v2: Slot,
    cpu_max: Slot,
    memory_current: Slot,
    memory_max: Slot,
    memory_stat_v2: Slot,
    memory_events: Slot,
    swap_current: Slot,
    io_stat: Slot,
    pids_current: Slot,
    pids_max: Slot,
    pressure: [Slot; 3],
    cpuacct_usage: Slot,
    cpuacct_stat: Slot,
    cpu_stat_v1: Slot,
    cfs_quota: Slot,
    cfs_period: Slot,
    memory_usage_v1: Slot,
    memory_limit_v1: Slot,
    memory_stat_v1: Slot,
    memsw_usage: Slot,
    oom_control: Slot,
    blkio_bytes: Slot,
    blkio_ios: Slot,
}

impl Files {
    fn new(h: &Hierarchies, path: &str) -> Files {
        let at = |dir: Option<PathBuf>, file: &str| dir.map(|d| FileReader::new(d.join(file), Shape::Whole));
        let v1 = |c: &str| h.v1.get(c).and_then(|x| x.dir_of(path));
        let v2 = h.unified.as_ref().and_then(|x| x.dir_of(path));
        // What a controller-less v2 tree still has (the hybrid case), and pure v2's controllers.
        let mut f = Files {
            events: at(v2.clone(), "cgroup.events"),
            cpu_stat_v2: at(v2.clone(), "cpu.stat"),
            pressure: ["cpu.pressure", "memory.pressure", "io.pressure"].map(|p| at(v2.clone(), p)),
            ..Default::default()
        };
        if h.is_unified_only() {
            f.procs = at(v2.clone(), "cgroup.procs");
            f.cpu_max = at(v2.clone(), "cpu.max");
            f.memory_current = at(v2.clone(), "memory.current");
            f.memory_max = at(v2.clone(), "memory.max");
            f.memory_stat_v2 = at(v2.clone(), "memory.stat");
            f.memory_events = at(v2.clone(), "memory.events");
            f.swap_current = at(v2.clone(), "memory.swap.current");
            f.io_stat = at(v2.clone(), "io.stat");
            f.pids_current = at(v2.clone(), "pids.current");
            f.pids_max = at(v2, "pids.max");
            return f;
        }
        // The v2 tree's cgroup.procs is built on every read; v1's is cached per open file, so
        // prefer the v2 tree where the guest is in it too (hybrid), else re-open v1's each time.
        f.procs = match v2.clone().filter(|d| d.is_dir()) {
            Some(d) => at(Some(d), "cgroup.procs"),
            None => at(h.primary().and_then(|x| x.dir_of(path)), "cgroup.procs").map(FileReader::reopened_each_read),
        };
        f.freezer_state = at(v1("freezer"), "freezer.state");
        f.cpuacct_usage = at(v1("cpuacct"), "cpuacct.usage");
        f.cpuacct_stat = at(v1("cpuacct"), "cpuacct.stat");
        f.cpu_stat_v1 = at(v1("cpu"), "cpu.stat");
        f.cfs_quota = at(v1("cpu"), "cpu.cfs_quota_us");
        f.cfs_period = at(v1("cpu"), "cpu.cfs_period_us");
        f.memory_usage_v1 = at(v1("memory"), "memory.usage_in_bytes");
        f.memory_limit_v1 = at(v1("memory"), "memory.limit_in_bytes");
        f.memory_stat_v1 = at(v1("memory"), "memory.stat");
        f.memsw_usage = at(v1("memory"), "memory.memsw.usage_in_bytes");
        f.oom_control = at(v1("memory"), "memory.oom_control");
        // The _recursive files include sub-cgroups (systemd inside an LXC guest); the plain ones
        // only the cgroup's own tasks. Older kernels have only the plain ones.
        let blkio = v1("blkio");
        let pick = |recursive: &str, plain: &str| {
            let d = blkio.clone()?;
            Some(FileReader::new(if d.join(recursive).exists() { d.join(recursive) } else { d.join(plain) }, Shape::Whole))
        };
        f.blkio_bytes = pick("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes");
        f.blkio_ios = pick("blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced");
        f.pids_current = at(v1("pids"), "pids.current");
        f.pids_max = at(v1("pids"), "pids.max");
        f
    }

    fn all(&self) -> impl Iterator<Item = &FileReader> {
        [
            &self.procs, &self.events, &self.freezer_state, &self.cpu_stat_v2, &self.cpu_max, &self.memory_current,
            &self.memory_max, &self.memory_stat_v2, &self.memory_events, &self.swap_current, &self.io_stat,
            &self.pids_current, &self.pids_max, &self.pressure[0], &self.pressure[1], &self.pressure[2],
            &self.cpuacct_usage, &self.cpuacct_stat, &self.cpu_stat_v1, &self.cfs_quota, &self.cfs_period,
            &self.memory_usage_v1, &self.memory_limit_v1, &self.memory_stat_v1, &self.memsw_usage, &self.oom_control,
            &self.blkio_bytes, &self.blkio_ios,
        ]
        .into_iter()
        .flatten()
    }
}

/// Read a slot: `None` when the layout has no such file or the file is absent (a controller or
/// accounting option not enabled); a read or parse error is recorded under `field`.
fn get<T>(slot: &mut Slot, parser: impl FnOnce(&[u8]) -> ParseResult<T>, field: &'static str, errors: &mut Vec<(&'static str, String)>) -> Option<T> {
    let r = slot.as_mut()?;
    match r.parse(parser) {
        Ok(v) => Some(v),
        Err(e) if e.is_gone() && !r.has_read() => {
            // Never there (for example memory.memsw.* without swap accounting): stop asking.
            *slot = None;
            None
        }
        Err(e) if e.is_gone() => {
            // It was there: the cgroup was removed, or removed and made again (the reader opens
            // the new file next time). A guest whose directory is gone is dropped via cgroup.procs.
            errors.push((field, format!("{} went away since the last read", r.path().display())));
            None
        }
        Err(e) => {
            errors.push((field, e.to_string()));
            None
        }
    }
}

/// cgroup.events (v2): `populated 0|1` and, since Linux 5.2, `frozen 0|1`.
fn parse_events(buf: &[u8]) -> ParseResult<(Option<bool>, Option<bool>)> {
    let (mut populated, mut frozen) = (None, None);
    for (n, line) in lines(buf) {
        let mut f = fields(line);
        let slot = match f.next() {
            Some(b"populated") => &mut populated,
            Some(b"frozen") => &mut frozen,
            _ => continue,
        };
        *slot = Some(f.next().and_then(u64_of).ok_or_else(|| ParseError::new(n, "expected a number"))? != 0);
    }
    Ok((populated, frozen))
}

enum NetMember {
    /// In the host's namespace: nothing to read while it stays a member.
    Host(u32),
    /// Its own namespace, read through this member's /proc/<pid>/net/dev.
    Own(u32, FileReader),
}

struct Tracked {
    guest: Guest,
    name: String,
    /// The guest's directory in the walked hierarchy.
    files_dir: PathBuf,
    files: Files,
    /// The member whose network namespace stands for the guest's, and what it showed.
    net: Option<NetMember>,
    previous: Option<RawContainer>,
}

pub struct ContainerSampler {
    config: ContainerConfig,
    mountinfo: FileReader,
    cpus_online: FileReader,
    walker: Walker,
    names: HashMap<String, String>,
    tracked: BTreeMap<String, Tracked>,
    previous_at: Option<Instant>,
    /// Block devices stacked on others, by (major, minor); devices are rarely re-created.
    stacked: HashMap<(u32, u32), bool>,
    /// The hierarchies as of the latest discovery.
    hierarchies: Option<Hierarchies>,
}

impl ContainerSampler {
    pub fn new(config: ContainerConfig) -> ContainerSampler {
        let p = |rel: &str| config.proc_root.join(rel);
        ContainerSampler {
            mountinfo: FileReader::first_of(vec![p("1/mountinfo"), p("self/mountinfo")], Shape::Records),
            cpus_online: FileReader::new(config.sys_root.join("devices/system/cpu/online"), Shape::Whole),
            walker: Walker::default(),
            names: HashMap::new(),
            tracked: BTreeMap::new(),
            previous_at: None,
            stacked: HashMap::new(),
            hierarchies: None,
            config,
        }
    }

    pub fn config(&self) -> &ContainerConfig {
        &self.config
    }

    /// Every file one sample reads (after the latest discovery), for benchmarks.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.tracked.values().flat_map(|t| t.files.all().map(|r| r.path().to_owned())).collect();
        v.extend(self.tracked.values().filter_map(|t| match &t.net {
            Some(NetMember::Own(_, r)) => Some(r.path().to_owned()),
            _ => None,
        }));
        v
    }

    pub fn sample(&mut self) -> ContainersSample {
        let mut notes: BTreeMap<String, String> = BTreeMap::new();
        let (appeared, vanished) = match self.discover() {
            Ok(d) => d,
            Err(e) => {
                notes.insert("containers".into(), format!("discovery failed: {e}"));
                (vec![], vec![])
            }
        };
        let over = self.tracked.len().saturating_sub(self.config.max_containers);
        if over > 0 {
            let note = format!("{over} more guests found; only the first {} (containers.max_containers) are sampled", self.config.max_containers);
            notes.entry("containers".into()).and_modify(|n| *n = format!("{n}; {note}")).or_insert(note);
        }
        // The local CPU count stands in only when reading this machine's own /sys.
        let host_cpus = match self.cpus_online.parse(parse_cpu_count) {
            Ok(n) => Some(n),
            Err(_) if self.config.sys_root == Path::new("/sys") => sysconf_cpus(),
            Err(_) => None,
        };
        let host_netns = self.host_netns();
        let now = Instant::now();
        let timestamp = unix_now();
        let elapsed = self.previous_at.map(|p| now.saturating_duration_since(p).as_secs_f64());
        self.previous_at = Some(now);

        let mut out = Vec::with_capacity(self.tracked.len().min(self.config.max_containers));
        let mut gone = Vec::new();
        let proc_root = self.config.proc_root.clone();
        let hierarchies = self.hierarchies.clone();
        let sys_root = &self.config.sys_root;
        let stacked = &mut self.stacked;
        for (key, t) in self.tracked.iter_mut().take(self.config.max_containers) {
            let mut raw = read_container(t, &proc_root, host_netns);
            if raw.cgroup_gone {
                // cgroup.procs is gone: the cgroup was removed since discovery, or removed and made
                // again (a restarted container), which leaves our fds on the old one. Start over on
                // the new directory as after a counter reset; only a missing directory is a vanish.
                let Some(h) = hierarchies.as_ref().filter(|_| dir_exists(&t.files_dir)) else {
                    gone.push(key.clone());
                    continue;
                };
                t.files = Files::new(h, key);
                t.net = None;
                t.previous = None;
                raw = read_container(t, &proc_root, host_netns);
            }
            for d in raw.io.iter_mut().flatten() {
                d.stacked = *stacked.entry((d.major, d.minor)).or_insert_with(|| has_slaves(sys_root, d.major, d.minor));
            }
            out.push(model::build(&t.guest, &t.name, &raw, t.previous.as_ref(), host_cpus, timestamp));
            t.previous = Some(raw);
        }
        let mut vanished = vanished;
        for key in gone {
            if let Some(t) = self.tracked.remove(&key) {
                vanished.push(t.guest.id);
            }
        }
        if host_cpus.is_none() {
            notes.insert("host_cpus".into(), "the number of online CPUs is unknown; cpu_usage_percent is null".into());
        }
        ContainersSample {
            timestamp,
            interval_secs: elapsed,
            host_cpus,
            containers: out,
            appeared,
            vanished,
            unavailable: notes,
        }
    }

    /// Walk the tree; start tracking new guests, stop tracking vanished ones.
    fn discover(&mut self) -> Result<(Vec<String>, Vec<String>)> {
        // mountinfo changes rarely and costs tens of µs: re-read it only when poll() says so.
        let h = match self.hierarchies.take().filter(|_| self.mountinfo.mounts_unchanged()) {
            Some(h) => h,
            None => Hierarchies::from_mounts(&self.mountinfo.parse(mountinfo::parse)?, &self.config.rootfs),
        };
        self.hierarchies = Some(h.clone());
        let Some(primary) = h.primary().cloned() else { return Ok((vec![], vec![])) };
        let found = self.walker.walk(&primary, self.config.include_services);
        let mut lookup = Lookup::default();
        let mut appeared = Vec::new();
        let mut present: BTreeMap<String, Guest> = found.into_iter().map(|g| (g.path.clone(), g)).collect();
        let vanished: Vec<String> = self
            .tracked
            .keys()
            .filter(|k| !present.contains_key(*k))
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|k| self.tracked.remove(&k).map(|t| t.guest.id))
            .collect();
        for (path, guest) in std::mem::take(&mut present) {
            if self.tracked.contains_key(&path) {
                continue;
            }
            let name = self.names.entry(path.clone()).or_insert_with(|| lookup.name(&guest, &self.config.metadata)).clone();
            appeared.push(guest.id.clone());
            let files_dir = primary.dir_of(&path).unwrap_or_default();
            self.tracked.insert(path.clone(), Tracked { files: Files::new(&h, &path), files_dir, guest, name, net: None, previous: None });
        }
        let tracked = &self.tracked;
        self.names.retain(|p, _| tracked.contains_key(p));
        Ok((appeared, vanished))
    }

    fn host_netns(&self) -> Option<u64> {
        ["1/ns/net", "self/ns/net"].iter().find_map(|p| host::ns_inode(&self.config.proc_root.join(p)))
    }
}

/// Wall-clock now, unix seconds (negative for a clock set before 1970, not a made-up 0).
fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_else(|e| -e.duration().as_secs_f64())
}

fn dir_exists(dir: &Path) -> bool {
    !dir.as_os_str().is_empty() && dir.is_dir()
}

fn sysconf_cpus() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (n > 0).then_some(n as u64)
}

fn read_container(t: &mut Tracked, proc_root: &Path, host_netns: Option<u64>) -> RawContainer {
    let f = &mut t.files;
    let mut errors = Vec::new();
    let e = &mut errors;
    let mut procs = match f.procs.as_mut().map(|r| r.parse(pid::parse_pid_list)) {
        Some(Ok(p)) => p,
        // The cgroup is gone (or was made again): the caller decides which, from its directory.
        Some(Err(err)) if err.is_gone() => return RawContainer { cgroup_gone: true, ..Default::default() },
        Some(Err(err)) => {
            e.push(("processes", err.to_string()));
            vec![]
        }
        None => vec![],
    };
    if procs.is_empty() {
        // LXC/Incus with systemd inside, Proxmox (`/lxc/<vmid>/ns`) and libvirt (`emulator/`,
        // `vcpuN/`) keep their processes in sub-cgroups: look there. Only such guests pay for it.
        if let Some(dir) = f.procs.as_ref().and_then(|r| r.path().parent()) {
            procs = descendant_pids(dir);
        }
    }
    // Counters first and together, then the clock.
    let cpu_v2 = get(&mut f.cpu_stat_v2, v2::parse_cpu_stat, "cpu", e);
    let cpuacct_usage = get(&mut f.cpuacct_usage, single_u64, "cpu", e);
    let cpuacct_stat = get(&mut f.cpuacct_stat, v1::parse_cpuacct_stat, "cpu", e);
    let cpu_v1 = get(&mut f.cpu_stat_v1, v1::parse_cpu_stat, "cpu_throttled_percent", e);
    let io = read_io(f, e);
    let pressure = [0, 1, 2].map(|i| get(&mut f.pressure[i], pressure::parse, "pressure", e));
    let net = read_net(&mut t.net, &procs, proc_root, host_netns);
    let at = Instant::now();

    let hz = host::user_hz();
    let ticks_usec = |t: u64| t.saturating_mul(1_000_000) / hz;
    // Prefer v2 cpu.stat (microseconds, also on hybrid hosts) over v1 cpuacct (ns / ticks).
    let cpu_usage_usec = cpu_v2.and_then(|c| c.usage_usec).or(cpuacct_usage.map(|ns| ns / 1000));
    let cpu_user_usec = cpu_v2.and_then(|c| c.user_usec).or(cpuacct_stat.map(|s| ticks_usec(s.user_ticks)));
    let cpu_system_usec = cpu_v2.and_then(|c| c.system_usec).or(cpuacct_stat.map(|s| ticks_usec(s.system_ticks)));
    let (nr_periods, nr_throttled, throttled_usec) = match (cpu_v1, cpu_v2) {
        (Some(c), _) => (c.nr_periods, c.nr_throttled, c.throttled_time_ns.map(|ns| ns / 1000)),
        (None, Some(c)) => (c.nr_periods, c.nr_throttled, c.throttled_usec),
        _ => (None, None, None),
    };
    let cpu_quota = match (get(&mut f.cpu_max, v2::parse_cpu_max, "cpu_limit", e), get(&mut f.cfs_quota, v1::parse_cfs_quota, "cpu_limit", e)) {
        (Some(m), _) => Some((m.quota_usec, m.period_usec)),
        (None, Some(q)) => get(&mut f.cfs_period, single_u64, "cpu_limit", e).map(|p| (q, p)),
        _ => None,
    };

    let mut raw = RawContainer { at: Some(at), procs, pressure, net, io, cpu_usage_usec, cpu_user_usec, cpu_system_usec, nr_periods, nr_throttled, throttled_usec, cpu_quota, ..Default::default() };
    if let Some((populated, frozen)) = get(&mut f.events, parse_events, "state", e) {
        raw.populated = populated;
        raw.frozen = frozen;
    }
    // On a hybrid host the v2 tree's `frozen` is always 0: runc pauses through the v1 freezer.
    if raw.frozen != Some(true) && f.freezer_state.is_some() {
        raw.frozen = get(&mut f.freezer_state, |b| Ok(b.starts_with(b"FROZEN") || b.starts_with(b"FREEZING")), "state", e);
    }

    // Memory: v2 files, else v1 (preferring the hierarchical total_* keys of memory.stat).
    if let Some(cur) = get(&mut f.memory_current, single_u64, "memory", e) {
        raw.memory_usage = Some(cur);
        raw.memory_limit = get(&mut f.memory_max, v2::parse_limit, "memory_limit", e);
        if let Some(s) = get(&mut f.memory_stat_v2, v2::parse_memory_stat, "memory", e) {
            raw.memory_inactive_file = s.inactive_file;
            raw.memory_rss = s.anon;
            raw.memory_cache = s.file;
        }
        raw.memory_swap = get(&mut f.swap_current, single_u64, "memory_swap", e);
        raw.oom_kills = get(&mut f.memory_events, v2::parse_memory_events, "memory", e).and_then(|m| m.oom_kill);
    } else if let Some(usage) = get(&mut f.memory_usage_v1, single_u64, "memory", e) {
        raw.memory_usage = Some(usage);
        raw.memory_limit = get(&mut f.memory_limit_v1, v1::parse_memory_limit, "memory_limit", e);
        if let Some(s) = get(&mut f.memory_stat_v1, v1::parse_memory_stat, "memory", e) {
            raw.memory_inactive_file = s.total_inactive_file.or(s.inactive_file);
            raw.memory_rss = s.total_rss.or(s.rss);
            raw.memory_cache = s.total_cache.or(s.cache);
        }
        // memsw counts memory + swap (only with swap accounting on).
        raw.memory_swap = get(&mut f.memsw_usage, single_u64, "memory_swap", e).map(|sw| sw.saturating_sub(usage));
        raw.oom_kills = get(&mut f.oom_control, v1::parse_oom_control, "memory", e).and_then(|o| o.oom_kill);
    }
    raw.pids_current = get(&mut f.pids_current, single_u64, "pids", e);
    raw.pids_max = get(&mut f.pids_max, v2::parse_limit, "pids", e);
    raw.errors = errors;
    raw
}

/// Processes in the cgroups below `dir` (not `dir` itself), depth first, bounded in depth.
fn descendant_pids(dir: &Path) -> Vec<u32> {
    const MAX_DEPTH: usize = 8;
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for entry in rd.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let child = entry.path();
            if let Ok(pids) = std::fs::read(child.join("cgroup.procs")).map_err(drop).and_then(|b| pid::parse_pid_list(&b).map_err(drop)) {
                out.extend(pids);
            }
            if depth + 1 < MAX_DEPTH {
                stack.push((child, depth + 1));
            }
        }
    }
    out.sort_unstable();
    out
}

fn read_io(f: &mut Files, e: &mut Vec<(&'static str, String)>) -> Option<Vec<IoDevice>> {
    if let Some(stats) = get(&mut f.io_stat, v2::parse_io_stat, "block", e) {
        return Some(
            stats
                .into_iter()
                .map(|s| IoDevice {
                    major: s.major,
                    minor: s.minor,
                    read_bytes: s.rbytes,
                    write_bytes: s.wbytes,
                    read_ops: Some(s.rios),
                    write_ops: Some(s.wios),
                    stacked: false,
                })
                .collect(),
        );
    }
    let bytes = get(&mut f.blkio_bytes, v1::parse_blkio, "block", e)?;
    if bytes.is_empty() {
        // v1 lists a device once the cgroup did I/O on it, but since blk-throttle became lazy
        // (Linux 5.x) it counts nothing until some throttle rule exists on the device. An empty
        // file is therefore "no I/O, or not counted": unknown, not 0.
        e.push(("block", "the v1 blkio.throttle file lists no device: no I/O yet, or the kernel is not counting (v1 blk-throttle counts only once a throttle rule exists on the device)".into()));
        return None;
    }
    let ops = get(&mut f.blkio_ios, v1::parse_blkio, "block_ops", e);
    let mut by_dev: BTreeMap<(u32, u32), IoDevice> = BTreeMap::new();
    for b in bytes {
        let d = by_dev.entry((b.major, b.minor)).or_insert(IoDevice { major: b.major, minor: b.minor, ..Default::default() });
        d.read_bytes = b.read;
        d.write_bytes = b.write;
    }
    if let Some(ops) = ops {
        // A device with bytes but no ops line did no counted operation.
        for d in by_dev.values_mut() {
            d.read_ops = Some(0);
            d.write_ops = Some(0);
        }
        for o in ops {
            let d = by_dev.entry((o.major, o.minor)).or_insert(IoDevice { major: o.major, minor: o.minor, ..Default::default() });
            d.read_ops = Some(o.read);
            d.write_ops = Some(o.write);
        }
    }
    Some(by_dev.into_values().collect())
}

/// The guest's own network counters, from a member process's view of /proc/<pid>/net/dev. The
/// verdict for a member (host namespace, or its reader) is kept while it stays a member.
fn read_net(slot: &mut Option<NetMember>, procs: &[u32], proc_root: &Path, host_netns: Option<u64>) -> Net {
    match slot.as_mut() {
        Some(NetMember::Host(pid)) if procs.contains(pid) => return Net::Host,
        Some(NetMember::Own(pid, reader)) if procs.contains(pid) => {
            if let Ok(devs) = reader.parse(net_dev::parse) {
                return Net::Own(devs);
            }
        }
        _ => {}
    }
    *slot = None;
    let Some(&pid) = procs.first() else { return Net::NoProcess };
    let ns = host::ns_inode(&proc_root.join(pid.to_string()).join("ns/net"));
    match (ns, host_netns) {
        (Some(a), Some(b)) if a == b => {
            *slot = Some(NetMember::Host(pid));
            return Net::Host;
        }
        (None, _) => return Net::Error(format!("cannot read {}/{pid}/ns/net", proc_root.display())),
        // Without the host's namespace to compare with, the guest's interfaces could be the host's.
        (_, None) => return Net::Error(format!("cannot read the host's network namespace ({0}/1/ns/net, {0}/self/ns/net)", proc_root.display())),
        _ => {}
    }
    let mut reader = FileReader::new(proc_root.join(pid.to_string()).join("net/dev"), Shape::Records);
    match reader.parse(net_dev::parse) {
        Ok(devs) => {
            *slot = Some(NetMember::Own(pid, reader));
            Net::Own(devs)
        }
        Err(e) => Net::Error(e.to_string()),
    }
}

