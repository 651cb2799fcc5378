//! The container sampler: discovers guests (see [`super::discover`]; a QEMU VM's scope is the VM
//! sampler's, not a guest here), keeps a [`CgroupReader`] per guest (the files the host's cgroup
//! layout has, kept open), and reads each into a [`RawContainer`] per tick, with the network
//! counters of the guest's namespace through a member's /proc/<pid>/net/dev.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::discover::{Guest, HierarchyWatch, Walker};
use super::model::{self, ContainersSample};
use super::names::{Lookup, MetadataRoots};
use super::reader::{CgroupReader, Coverage};
use super::Limit;
use crate::error::Result;
use crate::host;
use crate::procfs::{net_dev, pid, pressure};
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
    /// Its cgroup's files and previous reading.
    reader: CgroupReader,
    /// The member whose network namespace stands for the guest's, and what it showed.
    net: Option<NetMember>,
}

pub struct ContainerSampler {
    config: ContainerConfig,
    /// The hierarchies, from mountinfo read again only when the mounts changed.
    hierarchies: HierarchyWatch,
    cpus_online: FileReader,
    walker: Walker,
    names: HashMap<String, String>,
    tracked: BTreeMap<String, Tracked>,
    previous_at: Option<Instant>,
    /// Block devices stacked on others, by (major, minor); devices are rarely re-created.
    stacked: HashMap<(u32, u32), bool>,
}

impl ContainerSampler {
    pub fn new(config: ContainerConfig) -> ContainerSampler {
        ContainerSampler {
            hierarchies: HierarchyWatch::new(&config.proc_root, &config.rootfs),
            cpus_online: FileReader::new(config.sys_root.join("devices/system/cpu/online"), Shape::Whole),
            walker: Walker::default(),
            names: HashMap::new(),
            tracked: BTreeMap::new(),
            previous_at: None,
            stacked: HashMap::new(),
            config,
        }
    }

    pub fn config(&self) -> &ContainerConfig {
        &self.config
    }

    /// Every file one sample reads (after the latest discovery), for benchmarks.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.tracked.values().flat_map(|t| t.reader.paths().map(Path::to_owned)).collect();
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
        let hierarchies = self.hierarchies.last();
        let sys_root = &self.config.sys_root;
        let stacked = &mut self.stacked;
        for (key, t) in self.tracked.iter_mut().take(self.config.max_containers) {
            let mut raw = read_container(t, &proc_root, host_netns);
            if raw.cgroup_gone {
                // cgroup.procs is gone: the cgroup was removed since discovery, or removed and made
                // again (a restarted container), which leaves our fds on the old one. Start over on
                // the new directory as after a counter reset; only a missing directory is a vanish.
                let Some(h) = hierarchies.filter(|_| dir_exists(&t.files_dir)) else {
                    gone.push(key.clone());
                    continue;
                };
                t.reader.reopen(h);
                t.net = None;
                raw = read_container(t, &proc_root, host_netns);
            }
            for d in raw.io.iter_mut().flatten() {
                d.stacked = *stacked.entry((d.major, d.minor)).or_insert_with(|| has_slaves(sys_root, d.major, d.minor));
            }
            let (guest, name) = (&t.guest, &t.name);
            out.push(t.reader.build(raw, |cur, prev| model::build(guest, name, cur, prev, host_cpus, timestamp)));
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
        let h = self.hierarchies.get()?;
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
            let reader = CgroupReader::new(h, &path, Coverage::Container);
            self.tracked.insert(path.clone(), Tracked { reader, files_dir, guest, name, net: None });
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
    let net = &mut t.net;
    t.reader.read(|raw, procs_dir| {
        if raw.procs.is_empty() {
            // LXC/Incus with systemd inside, Proxmox (`/lxc/<vmid>/ns`) and libvirt LXC keep
            // their processes in sub-cgroups: look there. Only such guests pay for it.
            if let Some(dir) = procs_dir {
                raw.procs = descendant_pids(dir);
            }
        }
        raw.net = read_net(net, &raw.procs, proc_root, host_netns);
    })
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

