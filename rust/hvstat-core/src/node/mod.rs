//! The node sampler: reads every node file once per tick into a [`RawNode`] of cumulative counters,
//! then derives the reported [`model::NodeMetrics`] from (current, previous, elapsed).
//!
//! What can be missing is decided here, in one place per source, not in the parsers: /proc/pressure
//! does not exist on kernels before 4.20 or booted with psi=0, /sys/kernel/mm/ksm without
//! CONFIG_KSM, thermal zones and hwmon on most VMs. Each becomes a null with a reason.

pub mod config;
pub mod model;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use config::NodeConfig;
use config::Filters;
pub use model::NodeMetrics;

use crate::error::Result;
use crate::procfs::{diskstats, loadavg, meminfo, mountinfo, net_dev, pressure, stat, uptime, vmstat};
use crate::read::{statvfs, FileReader, FsStat, Shape};
use crate::sysfs::{block, hwmon, ksm, thermal};

/// One tick's cumulative readings. Each source is a `Result` so the model can say why it is null.
#[derive(Debug)]
pub struct RawNode {
    pub monotonic: Instant,
    pub unix_secs: f64,
    pub stat: Result<stat::Stat>,
    pub meminfo: Result<meminfo::MemInfo>,
    pub loadavg: Result<loadavg::LoadAvg>,
    pub uptime: Result<uptime::Uptime>,
    pub vmstat: Result<vmstat::VmStat>,
    pub diskstats: Result<Vec<diskstats::DiskStat>>,
    pub net_dev: Result<Vec<net_dev::NetDev>>,
    /// cpu, memory, io.
    pub pressure: [Result<pressure::Pressure>; 3],
    pub ksm: Result<ksm::Ksm>,
    /// Root filesystem (statvfs of `rootfs`), the source of `disk_usage`.
    pub root_fs: Result<FsStat>,
    pub filesystems: Result<Vec<MountStat>>,
    /// Filesystems that passed the filters but were left out by `max_filesystems`.
    pub filesystems_over_cap: usize,
    pub temperatures: Vec<Temperature>,
}

/// A mount and the statvfs of its mount point.
pub type MountStat = (mountinfo::Mount, Result<FsStat>);

#[derive(Debug)]
pub struct Temperature {
    /// `thermal_zone0` or `hwmon1/temp2`.
    pub sensor: String,
    /// Zone type or hwmon chip name.
    pub kind: String,
    pub label: Option<String>,
    pub celsius: Result<f64>,
}

struct TempReader {
    sensor: String,
    kind: String,
    label: Option<String>,
    temp: FileReader,
}

/// Reads the node's files with kept-open readers. Not thread-safe by design: one sampler per
/// source, called from one worker thread at a time.
pub struct NodeSampler {
    config: NodeConfig,
    filters: Filters,
    stat: FileReader,
    meminfo: FileReader,
    loadavg: FileReader,
    uptime: FileReader,
    vmstat: FileReader,
    diskstats: FileReader,
    net_dev: FileReader,
    pressure: [FileReader; 3],
    ksm: Vec<FileReader>,
    mountinfo: FileReader,
    temps: Vec<TempReader>,
    /// Whole disk or partition, stacked or not, per device name.
    disk_class: HashMap<String, DiskClass>,
    /// Backed by a device (has /sys/class/net/<name>/device), per interface name.
    net_has_device: HashMap<String, Option<bool>>,
    previous: Option<RawNode>,
    /// Readings taken, for the periodic re-discovery of temperature sensors.
    readings: u64,
    /// The visible, filtered mounts and how many were over the cap, from the last mountinfo read;
    /// re-derived only when the mount table changed.
    mounts: Option<(Vec<mountinfo::Mount>, usize)>,
}

/// Sensors come and go rarely (a module loaded, a device hot-plugged): look again every this many
/// readings, and whenever one of them vanished.
const REDISCOVER_SENSORS_EVERY: u64 = 60;

pub const PRESSURE_KINDS: [&str; 3] = ["cpu", "memory", "io"];

impl NodeSampler {
    /// Opens nothing yet but validates the config; the first [`Self::sample`] opens the files.
    pub fn new(config: NodeConfig) -> std::result::Result<Self, String> {
        let filters = config.filters()?;
        let p = |rel: &str| config.proc_root.join(rel);
        let s = |rel: &str| config.sys_root.join(rel);
        let ksm_dir = s("kernel/mm/ksm");
        Ok(NodeSampler {
            stat: FileReader::new(p("stat"), Shape::Whole),
            meminfo: FileReader::new(p("meminfo"), Shape::Whole),
            loadavg: FileReader::new(p("loadavg"), Shape::Whole),
            uptime: FileReader::new(p("uptime"), Shape::Whole),
            vmstat: FileReader::new(p("vmstat"), Shape::Records),
            diskstats: FileReader::new(p("diskstats"), Shape::Records),
            // pid 1's view first: from a container with the host's /proc mounted, and from a
            // systemd sandbox, our own namespaces are not the host's. hidepid hides pid 1.
            net_dev: FileReader::first_of(vec![p("1/net/dev"), p("net/dev")], Shape::Records),
            pressure: PRESSURE_KINDS.map(|k| FileReader::new(p(&format!("pressure/{k}")), Shape::Whole)),
            ksm: ksm::FILES.iter().map(|f| FileReader::new(ksm_dir.join(f), Shape::Whole)).collect(),
            mountinfo: FileReader::first_of(vec![p("1/mountinfo"), p("self/mountinfo")], Shape::Records),
            temps: discover_temperatures(&config.sys_root),
            disk_class: HashMap::new(),
            net_has_device: HashMap::new(),
            previous: None,
            readings: 0,
            mounts: None,
            filters,
            config,
        })
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Every file a sample reads, for benchmarks that compare against bare reads of the same files.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = [&self.stat, &self.meminfo, &self.loadavg, &self.uptime, &self.vmstat]
            .iter()
            .chain([&self.diskstats, &self.net_dev, &self.mountinfo].iter())
            .map(|r| r.path().to_owned())
            .collect();
        v.extend(self.pressure.iter().map(|r| r.path().to_owned()));
        v.extend(self.ksm.iter().map(|r| r.path().to_owned()));
        v.extend(self.temps.iter().map(|t| t.temp.path().to_owned()));
        v
    }

    /// Read everything once, derive the model against the previous reading, keep this one as the
    /// next base. The first call has no previous reading, so its rates are null.
    pub fn sample(&mut self) -> NodeMetrics {
        let raw = self.read_raw();
        let ctx = model::Context {
            config: &self.config,
            filters: &self.filters,
            disk_class: &self.disk_class,
            net_has_device: &self.net_has_device,
        };
        let metrics = model::build(&raw, self.previous.as_ref(), &ctx);
        self.previous = Some(raw);
        metrics
    }

    /// Take a first reading so that the next [`Self::sample`] has rates.
    pub fn prime(&mut self) {
        let raw = self.read_raw();
        self.previous = Some(raw);
    }

    pub fn read_raw(&mut self) -> RawNode {
        // The counters that rates are taken of are read first and back to back, then the clock:
        // slower reads (mountinfo, statvfs of every mount) must not stretch the rate interval.
        let stat = self.stat.parse(stat::parse);
        let diskstats = self.diskstats.parse(diskstats::parse);
        let net_dev = self.net_dev.parse(net_dev::parse);
        let vmstat = self.vmstat.parse(vmstat::parse);
        let pressure = [0, 1, 2].map(|i| self.pressure[i].parse(pressure::parse));
        let monotonic = Instant::now();
        let unix_secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            // A clock set before 1970 is reported as it is, not as 0.
            Err(e) => -e.duration().as_secs_f64(),
        };

        if let Ok(disks) = &diskstats {
            learn(&mut self.disk_class, disks, |d| &d.name, |d| DiskClass::of(&self.config.sys_root, d));
        }
        if let Ok(ifaces) = &net_dev {
            learn(&mut self.net_has_device, ifaces, |i| &i.name, |i| {
                let dir = self.config.sys_root.join("class/net").join(&i.name);
                dir.is_dir().then(|| dir.join("device").exists())
            });
        }
        let (filesystems, filesystems_over_cap) = match self.read_filesystems() {
            Ok((fs, over)) => (Ok(fs), over),
            Err(e) => (Err(e), 0),
        };
        self.readings += 1;
        if self.readings % REDISCOVER_SENSORS_EVERY == 0 {
            self.temps = discover_temperatures(&self.config.sys_root);
        }
        let temperatures = self.read_temperatures();
        if temperatures.iter().any(|t| t.celsius.as_ref().is_err_and(|e| e.is_gone())) {
            self.temps = discover_temperatures(&self.config.sys_root);
        }
        RawNode {
            monotonic,
            unix_secs,
            stat,
            meminfo: self.meminfo.parse(meminfo::parse),
            loadavg: self.loadavg.parse(loadavg::parse),
            uptime: self.uptime.parse(uptime::parse),
            vmstat,
            diskstats,
            net_dev,
            pressure,
            ksm: self.read_ksm(),
            // The root filesystem is usually one of the reported ones: do not statvfs it twice.
            root_fs: match filesystems.as_ref().ok().and_then(|f| f.iter().find(|(m, _)| m.mount_point == "/")) {
                Some((_, Ok(st))) => Ok(*st),
                _ => statvfs(&self.config.rootfs),
            },
            filesystems,
            filesystems_over_cap,
            temperatures,
        }
    }

    fn read_ksm(&mut self) -> Result<ksm::Ksm> {
        let mut vals = [None; ksm::FILES.len()];
        for (slot, r) in vals.iter_mut().zip(self.ksm.iter_mut()) {
            match r.parse(crate::parse::single_u64) {
                Ok(v) => *slot = Some(v),
                // A kernel without KSM has no directory at all: report that, not six errors.
                Err(e) if e.is_gone() && slot_is_run(r.path()) => return Err(e),
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e),
            }
        }
        let [run, pages_shared, pages_sharing, pages_unshared, pages_volatile, full_scans] = vals;
        Ok(ksm::Ksm { run, pages_shared, pages_sharing, pages_unshared, pages_volatile, full_scans })
    }

    /// The visible mount on each mount point that passes the filters, with its statvfs, and how
    /// many more passed but were over `max_filesystems`.
    fn read_filesystems(&mut self) -> Result<(Vec<MountStat>, usize)> {
        // mountinfo is the costliest file of the node (tens of µs for a few dozen mounts) and
        // changes rarely: parse it again only when the kernel says the mount table changed.
        let cached = self.mounts.take().filter(|_| self.mountinfo.mounts_unchanged());
        let (mounts, over) = match cached {
            Some(m) => m,
            None => self.visible_mounts()?,
        };
        let rootfs = &self.config.rootfs;
        let stats = mounts.iter().map(|m| (m.clone(), statvfs(&under_root(rootfs, &m.mount_point)))).collect();
        self.mounts = Some((mounts, over));
        Ok((stats, over))
    }

    fn visible_mounts(&mut self) -> Result<(Vec<mountinfo::Mount>, usize)> {
        let mounts = self.mountinfo.parse(mountinfo::parse)?;
        // The last mount on a mount point hides the earlier ones, so pick it before filtering:
        // a tmpfs over /srv must hide the xfs beneath, not let it through with tmpfs numbers.
        let mut visible: Vec<mountinfo::Mount> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for m in mounts {
            match index.get(&m.mount_point) {
                Some(&i) => visible[i] = m,
                None => {
                    index.insert(m.mount_point.clone(), visible.len());
                    visible.push(m);
                }
            }
        }
        visible.retain(|m| self.filters.fs_types.allows(&m.fs_type) && self.filters.mount_points.allows(&m.mount_point));
        let over = visible.len().saturating_sub(self.config.max_filesystems);
        visible.truncate(self.config.max_filesystems);
        Ok((visible, over))
    }

    fn read_temperatures(&mut self) -> Vec<Temperature> {
        self.temps
            .iter_mut()
            .map(|t| Temperature {
                sensor: t.sensor.clone(),
                kind: t.kind.clone(),
                label: t.label.clone(),
                celsius: t.temp.parse(thermal::parse_temp_celsius),
            })
            .collect()
    }

}

/// Remember `classify(item)` under every current item's name and forget names that are gone, so the
/// cache stays as big as the device list and a reused name is classified afresh.
fn learn<T, V>(cache: &mut HashMap<String, V>, items: &[T], name: impl Fn(&T) -> &str, classify: impl Fn(&T) -> V) {
    let current: std::collections::HashSet<&str> = items.iter().map(&name).collect();
    cache.retain(|k, _| current.contains(k.as_str()));
    for item in items {
        if !cache.contains_key(name(item)) {
            cache.insert(name(item).to_owned(), classify(item));
        }
    }
}

/// What a device of /proc/diskstats is, looked up once per device name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DiskClass {
    /// A whole device, not a partition (whose I/O is already counted in its disk).
    pub whole: bool,
    /// Built on other block devices, whose own lines count its I/O again: left out of `disk_total`.
    pub stacked: bool,
}

impl DiskClass {
    fn of(sys_root: &Path, d: &diskstats::DiskStat) -> DiskClass {
        let whole = is_whole_disk(sys_root, &d.name);
        // Partitions are never reported: no need to look at their (always empty) slaves.
        DiskClass { whole, stacked: whole && is_stacked(sys_root, &d.name, d.major, d.minor) }
    }
}

/// /sys/block/<name> exists only for whole disks (sysfs writes a '/' in a device name as '!').
/// Without /sys/block (a fixture, some containers), fall back to the partition naming schemes.
fn is_whole_disk(sys_root: &Path, name: &str) -> bool {
    let block = sys_root.join("block");
    if block.is_dir() {
        block.join(name.replace('/', "!")).exists()
    } else {
        !looks_like_partition(name)
    }
}

/// sysfs lists what a device is built on in /sys/dev/block/<major>:<minor>/slaves. Without
/// /sys/dev/block (a fixture that records only /sys/block, some containers), judge by the name.
fn is_stacked(sys_root: &Path, name: &str, major: u32, minor: u32) -> bool {
    // A ZFS zvol's I/O lands again on its pool's disks, but zvols list no slaves: always stacked.
    if is_zvol(name) {
        return true;
    }
    if sys_root.join("dev/block").is_dir() {
        block::has_slaves(sys_root, major, minor)
    } else {
        looks_stacked(name)
    }
}

/// `zd0`, `zd16`: the names ZFS gives zvols (whose partitions are `zd0p1`).
fn is_zvol(name: &str) -> bool {
    name.strip_prefix("zd").is_some_and(|n| n.bytes().next().is_some_and(|c| c.is_ascii_digit()))
}

/// For trees without /sys/dev/block: the drivers that build devices on other block devices.
/// device-mapper (`dm-0`), MD RAID (`md0`, `md127`, `md_d0`), bcache (`bcache0`), DRBD (`drbd0`).
/// rbd, nbd and loop devices are backed by the network or a file, not by block devices.
fn looks_stacked(name: &str) -> bool {
    let numbered = |prefix: &str| name.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    name.starts_with("dm-") || numbered("md") || name.starts_with("md_d") || numbered("bcache") || numbered("drbd")
}

fn slot_is_run(path: &Path) -> bool {
    path.file_name().is_some_and(|f| f == "run")
}

/// `rootfs` joined with an absolute mount point from mountinfo.
fn under_root(rootfs: &Path, mount_point: &str) -> PathBuf {
    rootfs.join(mount_point.trim_start_matches('/'))
}

/// For fixture trees and containers without /sys/block: the partition naming schemes of sd, vd,
/// xvd, hd (a trailing number), nvme and mmcblk (a `p` and a number).
fn looks_like_partition(name: &str) -> bool {
    let b = name.as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits == b.len() {
        return false;
    }
    let stem = &name[..name.len() - digits];
    if ["sd", "vd", "xvd", "hd"].iter().any(|p| stem.starts_with(p) && stem[p.len()..].bytes().all(|c| c.is_ascii_lowercase()) && stem.len() > p.len()) {
        return true;
    }
    (stem.starts_with("nvme") || stem.starts_with("mmcblk")) && stem.ends_with('p')
}

fn discover_temperatures(sys: &Path) -> Vec<TempReader> {
    let mut out = Vec::new();
    let read_text = |p: PathBuf| std::fs::read(&p).ok().and_then(|b| thermal::parse_type(&b).ok());
    for zone in sorted_entries(&sys.join("class/thermal"), "thermal_zone") {
        let name = zone.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        out.push(TempReader {
            kind: read_text(zone.join("type")).unwrap_or_else(|| name.clone()),
            sensor: name,
            label: None,
            temp: FileReader::new(zone.join("temp"), Shape::Whole),
        });
    }
    for chip in sorted_entries(&sys.join("class/hwmon"), "hwmon") {
        // The thermal core registers an hwmon chip for each zone it already exposes (its device
        // is the zone); reading both would report one sensor twice.
        let mirrors_zone = std::fs::read_link(chip.join("device"))
            .is_ok_and(|t| t.file_name().is_some_and(|n| n.to_string_lossy().starts_with("thermal_zone")));
        if mirrors_zone {
            continue;
        }
        let chip_name = chip.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let kind = read_text(chip.join("name")).unwrap_or_else(|| chip_name.clone());
        let mut inputs: Vec<(u32, String)> = std::fs::read_dir(&chip)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                hwmon::temp_input_index(&f).map(|i| (i, f))
            })
            .collect();
        inputs.sort();
        for (i, file) in inputs {
            out.push(TempReader {
                sensor: format!("{chip_name}/temp{i}"),
                kind: kind.clone(),
                // temp03_input goes with temp03_label: derive the name, do not rebuild it from i.
                label: read_text(chip.join(file.replace("_input", "_label"))),
                temp: FileReader::new(chip.join(file), Shape::Whole),
            });
        }
    }
    out
}

/// Entries of `dir` whose name starts with `prefix`, in natural order (zone2 before zone10).
fn sorted_entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(prefix)?.parse::<u64>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        for p in ["sda1", "vdb12", "xvda2", "nvme0n1p3", "mmcblk0p1", "hda5"] {
            assert!(looks_like_partition(p), "{p}");
        }
        for d in ["sda", "nvme0n1", "mmcblk0", "dm-0", "md127", "loop0", "sr0", "vda", "123"] {
            assert!(!looks_like_partition(d), "{d}");
        }
    }

    #[test]
    fn stacked_names() {
        for d in ["dm-0", "dm-12", "md0", "md127", "md_d0", "bcache0", "drbd1"] {
            assert!(looks_stacked(d), "{d}");
        }
        for d in ["sda", "vda", "nvme0n1", "rbd0", "nbd3", "loop0", "sr0", "mdx", "md", "bcache", "drbd"] {
            assert!(!looks_stacked(d), "{d}");
        }
        for z in ["zd0", "zd16", "zd0p1"] {
            assert!(is_zvol(z), "{z}");
        }
        for d in ["zd", "zram0", "zdx"] {
            assert!(!is_zvol(d), "{d}");
        }
    }

    #[test]
    fn stacked_from_sysfs_when_it_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        std::fs::create_dir_all(sys.join("dev/block/252:0/slaves/nvme0n1p2")).unwrap();
        std::fs::create_dir_all(sys.join("dev/block/252:1/slaves")).unwrap();
        std::fs::create_dir_all(sys.join("dev/block/230:0/slaves")).unwrap();
        assert!(is_stacked(sys, "dm-0", 252, 0));
        // sysfs says: built on nothing (a dm device with no table yet), whatever the name.
        assert!(!is_stacked(sys, "dm-1", 252, 1));
        // A zvol has an empty slaves directory but is stacked all the same.
        assert!(is_stacked(sys, "zd0", 230, 0));
        assert!(!is_stacked(sys, "sda", 8, 0), "no directory: not stacked");
        let bare = tempfile::tempdir().unwrap();
        assert!(is_stacked(bare.path(), "dm-1", 252, 1), "no /sys/dev/block: by name");
        assert!(!is_stacked(bare.path(), "sda", 8, 0));
    }
}
