//! One cgroup's files, kept open: the reader both samplers use. The container sampler has one per
//! guest, the VM sampler one per VM (the scope holding its QEMU process). Which files depends on the
//! host's layout: pure v2 reads everything from the unified tree; v1 and hybrid read the
//! controllers' files from their v1 hierarchies and, where a v2 tree exists too, cpu.stat
//! (microsecond CPU time), the pressure files and cgroup.events from it, since those work without
//! v2 controllers. The reader keeps its previous raw reading, so the caller's model (a pure function
//! of current and previous, see [`super::model`]) gets both.
//!
//! Limits are read less often than counters: `cpu.max` (v1 `cpu.cfs_quota_us` and
//! `cpu.cfs_period_us`), `memory.max` (v1 `memory.limit_in_bytes`) and `pids.max` change only when
//! somebody changes the limit, so a reader reads them on its first reading and then at most every
//! [`LIMITS_EVERY`] (each reader at its own phase, spread by its path, so 1000 guests made at once
//! do not all re-read on one tick), and whenever the previous read of one failed. Every counter
//! (CPU, memory usage and stat, I/O, pids.current, pressure, events) is read on every reading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::discover::Hierarchies;
use super::sampler::{IoDevice, RawContainer};
use super::{v1, v2, Limit};
use crate::host;
use crate::parse::{single_u64, ParseResult};
use crate::procfs::{pid, pressure};
use crate::read::{FileReader, Shape};

/// Which of a cgroup's files a reader keeps open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Everything a container reports: processes, state, CPU with limits and throttling, memory
    /// in detail, block I/O, PIDs, pressure.
    Container,
    /// What a VM's `cgroup` reports: CPU time, memory usage and limit, pressure.
    Vm,
}

/// An optional reader: `None` where the layout (or the coverage) has no such file.
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
    /// Pure v2: the limits of the `container` sub-cgroup, where crun under the systemd cgroup
    /// driver puts the processes and the limits (podman's `libpod-<id>.scope/container`), leaving
    /// the scope's own cpu.max, memory.max and pids.max at `max`; and its cpu.stat, whose
    /// throttling counters are that quota's (they are per cgroup, not summed up the tree). Read
    /// only while the cgroup has no processes of its own.
    inner_limits: [Slot; 4],
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
    fn new(h: &Hierarchies, path: &str, coverage: Coverage) -> Files {
        let f = Files::of_layout(h, path);
        match coverage {
            Coverage::Container => f,
            Coverage::Vm => Files {
                cpu_stat_v2: f.cpu_stat_v2,
                cpuacct_usage: f.cpuacct_usage,
                memory_current: f.memory_current,
                memory_max: f.memory_max,
                memory_usage_v1: f.memory_usage_v1,
                memory_limit_v1: f.memory_limit_v1,
                pressure: f.pressure,
                ..Default::default()
            },
        }
    }

    /// Every file of the layout. Opening is lazy (a [`FileReader`] opens on its first read), so the
    /// slots a coverage drops cost nothing.
    fn of_layout(h: &Hierarchies, path: &str) -> Files {
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
            f.pids_max = at(v2.clone(), "pids.max");
            let inner = v2.map(|d| d.join("container"));
            f.inner_limits = ["cpu.max", "memory.max", "pids.max", "cpu.stat"].map(|p| at(inner.clone(), p));
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

/// How stale a limit may be: a reader re-reads its limit files when this long has passed since it
/// last read them (docs/metrics.md, "How fresh each value is").
pub const LIMITS_EVERY: Duration = Duration::from_secs(30);

/// The limits of the last read of the limit files.
#[derive(Debug, Clone, Copy)]
struct Limits {
    cpu_quota: Option<(Limit, u64)>,
    memory_limit: Option<Limit>,
    pids_max: Option<Limit>,
}

/// One cgroup's kept-open files and its previous raw reading.
pub struct CgroupReader {
    /// The cgroup path (as /proc/<pid>/cgroup shows it).
    path: String,
    coverage: Coverage,
    files: Files,
    previous: Option<RawContainer>,
    /// The limits and when they count as read (spread by the path on the first reading).
    limits: Option<(Instant, Limits)>,
}

/// Where in [`LIMITS_EVERY`] a reader's limit reads fall: a hash of its path (FNV-1a).
fn phase(path: &str) -> Duration {
    let h = path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    Duration::from_millis(h % LIMITS_EVERY.as_millis() as u64)
}

impl CgroupReader {
    pub fn new(h: &Hierarchies, path: &str, coverage: Coverage) -> CgroupReader {
        CgroupReader { path: path.to_owned(), coverage, files: Files::new(h, path, coverage), previous: None, limits: None }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Every file a reading reads (those found absent dropped), for benchmarks.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.all().map(FileReader::path)
    }

    /// The previous raw reading, if any since [`Self::reopen`].
    pub fn previous(&self) -> Option<&RawContainer> {
        self.previous.as_ref()
    }

    /// Open the files again (the cgroup was removed and made again: the kept fds are on the old
    /// one) and forget the previous reading, as after a counter reset.
    pub fn reopen(&mut self, h: &Hierarchies) {
        self.files = Files::new(h, &self.path, self.coverage);
        self.previous = None;
        self.limits = None;
    }

    /// Build the caller's model from `raw` and the previous reading, then keep `raw` as the
    /// previous one.
    pub fn build<T>(&mut self, raw: RawContainer, model: impl FnOnce(&RawContainer, Option<&RawContainer>) -> T) -> T {
        let out = model(&raw, self.previous.as_ref());
        self.previous = Some(raw);
        out
    }

    /// Read the cgroup's files. `cgroup_gone` when cgroup.procs is gone (the cgroup was removed, or
    /// made again): the caller decides which. `beside_counters` runs after the cumulative counters
    /// are read and before the clock (the container sampler reads the network counters there),
    /// with the directory of the cgroup.procs read (`None` without one).
    pub fn read(&mut self, beside_counters: impl FnOnce(&mut RawContainer, Option<&Path>)) -> RawContainer {
        let f = &mut self.files;
        let mut errors = Vec::new();
        let e = &mut errors;
        let procs = match f.procs.as_mut().map(|r| r.parse(pid::parse_pid_list)) {
            Some(Ok(p)) => p,
            // The cgroup is gone (or was made again): the caller decides which, from its directory.
            Some(Err(err)) if err.is_gone() => return RawContainer { cgroup_gone: true, ..Default::default() },
            Some(Err(err)) => {
                e.push(("processes", err.to_string()));
                vec![]
            }
            None => vec![],
        };
        // Counters first and together, then the clock.
        let cpu_v2 = get(&mut f.cpu_stat_v2, v2::parse_cpu_stat, "cpu", e);
        let cpuacct_usage = get(&mut f.cpuacct_usage, single_u64, "cpu", e);
        let cpuacct_stat = get(&mut f.cpuacct_stat, v1::parse_cpuacct_stat, "cpu", e);
        let cpu_v1 = get(&mut f.cpu_stat_v1, v1::parse_cpu_stat, "cpu_throttled_percent", e);
        let io = read_io(f, e);
        let pressure = [0, 1, 2].map(|i| get(&mut f.pressure[i], pressure::parse, "pressure", e));
        let own_procs = !procs.is_empty();
        let mut raw = RawContainer { procs, pressure, io, ..Default::default() };
        beside_counters(&mut raw, f.procs.as_ref().and_then(|r| r.path().parent()));
        raw.at = Some(Instant::now());

        let hz = host::user_hz();
        let ticks_usec = |t: u64| t.saturating_mul(1_000_000) / hz;
        // Prefer v2 cpu.stat (microseconds, also on hybrid hosts) over v1 cpuacct (ns / ticks).
        raw.cpu_usage_usec = cpu_v2.and_then(|c| c.usage_usec).or(cpuacct_usage.map(|ns| ns / 1000));
        raw.cpu_user_usec = cpu_v2.and_then(|c| c.user_usec).or(cpuacct_stat.map(|s| ticks_usec(s.user_ticks)));
        raw.cpu_system_usec = cpu_v2.and_then(|c| c.system_usec).or(cpuacct_stat.map(|s| ticks_usec(s.system_ticks)));
        (raw.nr_periods, raw.nr_throttled, raw.throttled_usec) = match (cpu_v1, cpu_v2) {
            (Some(c), _) => (c.nr_periods, c.nr_throttled, c.throttled_time_ns.map(|ns| ns / 1000)),
            (None, Some(c)) => (c.nr_periods, c.nr_throttled, c.throttled_usec),
            _ => (None, None, None),
        };
        read_state(f, &mut raw, e);
        let memory = read_memory(f, &mut raw, e);
        raw.pids_current = get(&mut f.pids_current, single_u64, "pids", e);
        let now = raw.at.unwrap_or_else(Instant::now);
        let limits = match self.limits {
            Some((at, limits)) if now.saturating_duration_since(at) < LIMITS_EVERY => limits,
            cached => {
                let before = e.len();
                let limits = read_limits(f, memory, e);
                // A failed read is tried again next time; the first reading's time is moved back
                // by the path's phase, so that readers made together spread their next reads.
                self.limits = (e.len() == before).then(|| (if cached.is_none() { now.checked_sub(phase(&self.path)).unwrap_or(now) } else { now }, limits));
                limits
            }
        };
        (raw.cpu_quota, raw.memory_limit, raw.pids_max) = (limits.cpu_quota, limits.memory_limit, limits.pids_max);
        if !own_procs {
            tighten_from_inner(f, &mut raw);
        }
        raw.errors = errors;
        raw
    }
}

/// The tighter of the cgroup's own limits and those of its `container` sub-cgroup (crun's layout
/// under the systemd driver: the scope has no processes and no limits of its own; its processes
/// are all below it, so the sub-cgroup's limits are the ones they run under). When the sub-cgroup's
/// CPU quota is the one that holds, the throttling counters are its too. A sub-cgroup that is not
/// there is no error and is looked for again next time (crun makes it just after the scope).
fn tighten_from_inner(f: &mut Files, raw: &mut RawContainer) {
    let [cpu, memory, pids, cpu_stat] = &mut f.inner_limits;
    let inner_cpu = cpu.as_mut().and_then(|r| r.parse(v2::parse_cpu_max).ok());
    if let Some(m) = inner_cpu {
        let inner = (m.quota_usec, m.period_usec);
        let chosen = tighter_quota(raw.cpu_quota, inner);
        if chosen != raw.cpu_quota.unwrap_or((Limit::Max, 0)) && matches!(inner.0, Limit::Value(_)) {
            if let Some(c) = cpu_stat.as_mut().and_then(|r| r.parse(v2::parse_cpu_stat).ok()) {
                (raw.nr_periods, raw.nr_throttled, raw.throttled_usec) = (c.nr_periods, c.nr_throttled, c.throttled_usec);
            }
        }
        raw.cpu_quota = Some(chosen);
    }
    if let Some(l) = memory.as_mut().and_then(|r| r.parse(v2::parse_limit).ok()) {
        raw.memory_limit = raw.memory_usage.map(|_| tighter(raw.memory_limit, l));
    }
    if let Some(l) = pids.as_mut().and_then(|r| r.parse(v2::parse_limit).ok()) {
        raw.pids_max = Some(tighter(raw.pids_max, l));
    }
}

fn tighter(own: Option<Limit>, inner: Limit) -> Limit {
    match (own, inner) {
        (Some(Limit::Value(a)), Limit::Value(b)) => Limit::Value(a.min(b)),
        (Some(Limit::Value(a)), Limit::Max) => Limit::Value(a),
        (_, l) => l,
    }
}

/// The quota with the smaller share of its period (`max` is no limit).
fn tighter_quota(own: Option<(Limit, u64)>, inner: (Limit, u64)) -> (Limit, u64) {
    match (own, inner) {
        (Some((Limit::Value(q), p)), (Limit::Value(iq), ip)) => {
            // q/p <= iq/ip, in integers
            if u128::from(q) * u128::from(ip) <= u128::from(iq) * u128::from(p) {
                (Limit::Value(q), p)
            } else {
                inner
            }
        }
        (Some(own @ (Limit::Value(_), _)), (Limit::Max, _)) => own,
        (_, inner) => inner,
    }
}

/// The limit files (see the module comment for how often); `memory` says which memory files
/// [`read_memory`] found.
fn read_limits(f: &mut Files, memory: Memory, e: &mut Vec<(&'static str, String)>) -> Limits {
    let cpu_quota = match (get(&mut f.cpu_max, v2::parse_cpu_max, "cpu_limit", e), get(&mut f.cfs_quota, v1::parse_cfs_quota, "cpu_limit", e)) {
        (Some(m), _) => Some((m.quota_usec, m.period_usec)),
        (None, Some(q)) => get(&mut f.cfs_period, single_u64, "cpu_limit", e).map(|p| (q, p)),
        _ => None,
    };
    let memory_limit = match memory {
        Memory::V2 => get(&mut f.memory_max, v2::parse_limit, "memory_limit", e),
        Memory::V1 => get(&mut f.memory_limit_v1, v1::parse_memory_limit, "memory_limit", e),
        Memory::None => None,
    };
    Limits { cpu_quota, memory_limit, pids_max: get(&mut f.pids_max, v2::parse_limit, "pids", e) }
}

/// Which memory files a reading found.
#[derive(Debug, Clone, Copy)]
enum Memory {
    V2,
    V1,
    None,
}

/// Populated and frozen from cgroup.events, and frozen from the v1 freezer where there is one.
fn read_state(f: &mut Files, raw: &mut RawContainer, e: &mut Vec<(&'static str, String)>) {
    if let Some(events) = get(&mut f.events, v2::parse_events, "state", e) {
        raw.populated = events.populated;
        raw.frozen = events.frozen;
    }
    // On a hybrid host the v2 tree's `frozen` is always 0: runc pauses through the v1 freezer.
    if raw.frozen != Some(true) && f.freezer_state.is_some() {
        raw.frozen = get(&mut f.freezer_state, |b| Ok(b.starts_with(b"FROZEN") || b.starts_with(b"FREEZING")), "state", e);
    }
}

/// Memory: v2 files, else v1 (preferring the hierarchical total_* keys of memory.stat).
fn read_memory(f: &mut Files, raw: &mut RawContainer, e: &mut Vec<(&'static str, String)>) -> Memory {
    if let Some(cur) = get(&mut f.memory_current, single_u64, "memory", e) {
        raw.memory_usage = Some(cur);
        if let Some(s) = get(&mut f.memory_stat_v2, v2::parse_memory_stat, "memory", e) {
            raw.memory_inactive_file = s.inactive_file;
            raw.memory_rss = s.anon;
            raw.memory_cache = s.file;
        }
        raw.memory_swap = get(&mut f.swap_current, single_u64, "memory_swap", e);
        raw.oom_kills = get(&mut f.memory_events, v2::parse_memory_events, "memory", e).and_then(|m| m.oom_kill);
        Memory::V2
    } else if let Some(usage) = get(&mut f.memory_usage_v1, single_u64, "memory", e) {
        raw.memory_usage = Some(usage);
        if let Some(s) = get(&mut f.memory_stat_v1, v1::parse_memory_stat, "memory", e) {
            raw.memory_inactive_file = s.total_inactive_file.or(s.inactive_file);
            raw.memory_rss = s.total_rss.or(s.rss);
            raw.memory_cache = s.total_cache.or(s.cache);
        }
        // memsw counts memory + swap (only with swap accounting on).
        raw.memory_swap = get(&mut f.memsw_usage, single_u64, "memory_swap", e).map(|sw| sw.saturating_sub(usage));
        raw.oom_kills = get(&mut f.oom_control, v1::parse_oom_control, "memory", e).and_then(|o| o.oom_kill);
        Memory::V1
    } else {
        Memory::None
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(dir: &Path) -> (Hierarchies, CgroupReader) {
        let g = dir.join("cg/guest");
        std::fs::create_dir_all(&g).unwrap();
        for (file, text) in [("cgroup.procs", "1\n"), ("memory.current", "100\n"), ("memory.max", "1000\n"), ("pids.max", "max\n"), ("cpu.max", "50000 100000\n")] {
            std::fs::write(g.join(file), text).unwrap();
        }
        let mounts = crate::procfs::mountinfo::parse(b"31 30 0:27 / /cg rw - cgroup2 cgroup2 rw\n").unwrap();
        let h = Hierarchies::from_mounts(&mounts, dir);
        let r = CgroupReader::new(&h, "/guest", Coverage::Container);
        (h, r)
    }

    #[test]
    fn limits_are_read_first_then_at_most_every_limits_every_and_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (_h, mut r) = guest(dir.path());
        let max = dir.path().join("cg/guest/memory.max");
        let first = r.read(|_, _| ());
        assert_eq!(first.memory_limit, Some(Limit::Value(1000)));
        assert_eq!(first.pids_max, Some(Limit::Max));
        assert_eq!(first.cpu_quota, Some((Limit::Value(50_000), 100_000)));
        // Changed within LIMITS_EVERY: the reading keeps the limit it read; the counters are new.
        std::fs::write(&max, "2000\n").unwrap();
        std::fs::write(dir.path().join("cg/guest/memory.current"), "150\n").unwrap();
        let second = r.read(|_, _| ());
        assert_eq!((second.memory_usage, second.memory_limit), (Some(150), Some(Limit::Value(1000))));
        // LIMITS_EVERY later: read again.
        let (_, limits) = r.limits.unwrap();
        r.limits = Some((Instant::now() - LIMITS_EVERY, limits));
        assert_eq!(r.read(|_, _| ()).memory_limit, Some(Limit::Value(2000)));
        // A failed read is not kept: the next reading reads again.
        r.limits = Some((Instant::now() - LIMITS_EVERY, limits));
        std::fs::write(&max, "lots\n").unwrap();
        let bad = r.read(|_, _| ());
        assert_eq!(bad.memory_limit, None);
        assert!(bad.errors.iter().any(|(field, _)| *field == "memory_limit"), "{:?}", bad.errors);
        assert!(r.limits.is_none());
        std::fs::write(&max, "3000\n").unwrap();
        assert_eq!(r.read(|_, _| ()).memory_limit, Some(Limit::Value(3000)));
    }

    #[test]
    fn readers_made_together_spread_their_limit_reads() {
        let phases: std::collections::BTreeSet<Duration> = (0..100).map(|i| phase(&format!("/docker/{i:064x}"))).collect();
        assert!(phases.len() > 90 && phases.iter().all(|p| *p < LIMITS_EVERY));
    }
}
