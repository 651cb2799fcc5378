//! The VM sampler: takes the collectors' observations of one tick, adds what /proc says about each
//! VM's QEMU process (kept-open readers per VM, keyed by the VM's id), and builds the reported VMs
//! against each VM's previous reading.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::model::{self, CgroupReading, RawVm, Taps, VcpuOrigin, VcpuReading, VmCgroup, VmsSample};
use super::observe::{VmObservation, VmObservations};
use super::process::{NetDevByNamespace, ProcessState, QemuProcess};
use crate::cgroup::discover::{enclosing_vm_scope, Hierarchies, HierarchyWatch};
use crate::cgroup::model::{cpu_cores, host_percent, interval_secs, pressures};
use crate::cgroup::reader::{CgroupReader, Coverage};
use crate::cgroup::sampler::RawContainer;
use crate::host;
use crate::procfs::stat;
use crate::read::{FileReader, Shape};
use crate::sysfs::cpu::parse_cpu_count;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VmConfig {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    /// The root that mount points in mountinfo are relative to (the cgroup mounts), as the
    /// container sampler's.
    pub rootfs: PathBuf,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig { proc_root: "/proc".into(), sys_root: "/sys".into(), rootfs: "/".into() }
    }
}

/// What the sampler keeps per VM between ticks.
#[derive(Default)]
struct Tracked {
    /// The readers of the VM's QEMU process (while it has one).
    process: Option<QemuProcess>,
    /// The VM scope holding that process (while it is in one), read like a container's cgroup.
    cgroup: Option<CgroupReader>,
    /// The previous reading and when it was taken.
    previous: Option<(RawVm, Instant)>,
}

pub struct VmSampler {
    config: VmConfig,
    /// Monotonic time; injectable so that tests get exact intervals.
    clock: Box<dyn Fn() -> Instant + Send>,
    cpus_online: FileReader,
    /// Boot time (unix seconds) from /proc/stat, read once: it only moves with clock adjustments.
    btime: Option<u64>,
    hz: u64,
    /// The unit of /proc/<pid>/statm.
    page_size_bytes: u64,
    tracked: HashMap<String, Tracked>,
    previous_at: Option<Instant>,
    /// The latest sample's net/dev, one per network namespace.
    net_devs: NetDevByNamespace,
    /// The cgroup hierarchies, from mountinfo read again only when the mounts changed.
    hierarchies: HierarchyWatch,
}

impl VmSampler {
    pub fn new(config: VmConfig) -> Self {
        Self::with_clock(config, Instant::now)
    }

    /// A sampler that takes monotonic time from `clock` (for tests: a clock the test moves).
    pub fn with_clock(config: VmConfig, clock: impl Fn() -> Instant + Send + 'static) -> Self {
        VmSampler {
            clock: Box::new(clock),
            cpus_online: FileReader::new(config.sys_root.join("devices/system/cpu/online"), Shape::Whole),
            btime: None,
            hz: host::user_hz(),
            page_size_bytes: host::page_size(),
            tracked: HashMap::new(),
            previous_at: None,
            net_devs: NetDevByNamespace::default(),
            hierarchies: HierarchyWatch::new(&config.proc_root, &config.rootfs),
            config,
        }
    }

    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// Every file a sample reads through kept readers (as of the latest sample), for benchmarks.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v = vec![self.cpus_online.path().to_owned()];
        v.extend(self.tracked.values().filter_map(|t| t.process.as_ref()).flat_map(QemuProcess::paths));
        v.extend(self.net_devs.paths().iter().cloned());
        v.extend(self.tracked.values().filter_map(|t| t.cgroup.as_ref()).flat_map(|c| c.paths().map(Path::to_owned)));
        v
    }

    /// Decode one tick's observations (the JSON of `VmObservations`) and sample them.
    pub fn sample_json(&mut self, observations: &[u8]) -> Result<VmsSample, serde_json::Error> {
        Ok(self.sample(VmObservations::from_json(observations)?))
    }

    pub fn sample(&mut self, observations: VmObservations) -> VmsSample {
        let mut notes: BTreeMap<String, String> = BTreeMap::new();
        // The local CPU count stands in only when reading this machine's own /sys.
        let host_cpus = match self.cpus_online.parse(parse_cpu_count) {
            Ok(n) => Some(n),
            Err(_) if self.config.sys_root == Path::new("/sys") => sysconf_cpus(),
            Err(_) => None,
        };
        if host_cpus.is_none() {
            let note = format!("the number of online CPUs is unknown ({}); cpu_usage_percent is null", self.cpus_online.path().display());
            notes.insert("host_cpus".into(), note);
        }
        let now = (self.clock)();
        let timestamp = unix_now();
        let interval_secs = self.previous_at.map(|p| now.saturating_duration_since(p).as_secs_f64());
        self.previous_at = Some(now);
        if self.btime.is_none() && observations.vms.iter().any(|o| o.pid.is_some()) {
            self.btime = read_btime(&self.config.proc_root);
        }

        self.net_devs.clear();
        // mountinfo only when some VM has a process whose cgroup to read, at most once a tick.
        let hierarchies = match observations.vms.iter().any(|o| o.pid.is_some()) {
            true => self.hierarchies.get().map_err(|e| format!("cannot find the cgroup hierarchies: {e}")),
            false => Err("no VM has a QEMU process".into()),
        };
        let mut tick = Tick {
            proc_root: &self.config.proc_root,
            hz: self.hz,
            page_size_bytes: self.page_size_bytes,
            btime: self.btime,
            now,
            net_devs: &mut self.net_devs,
            hierarchies: hierarchies.as_ref().map_err(String::as_str).copied(),
            host_cpus,
        };
        let mut seen: HashSet<String> = HashSet::with_capacity(observations.vms.len());
        let mut appeared = Vec::new();
        let mut vms = Vec::with_capacity(observations.vms.len());
        for obs in observations.vms {
            if !seen.insert(obs.id.clone()) {
                let note = format!("more than one observation of VM {:?}: only the first is sampled", obs.id);
                notes.entry("vms".into()).and_modify(|n| *n = format!("{n}; {note}")).or_insert(note);
                continue;
            }
            let t = self.tracked.entry(obs.id.clone()).or_insert_with(|| {
                appeared.push(obs.id.clone());
                Tracked::default()
            });
            let raw = read_vm(t, obs, &mut tick);
            // Counters first, then the clock.
            let at = (self.clock)();
            let prev = t.previous.as_ref().map(|(r, a)| (r, at.saturating_duration_since(*a).as_secs_f64()));
            vms.push(model::build(&raw, prev, host_cpus, unix_now()));
            t.previous = Some((raw, at));
        }
        let mut vanished: Vec<String> = self.tracked.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        vanished.sort_unstable();
        for id in &vanished {
            self.tracked.remove(id);
        }
        VmsSample { timestamp, interval_secs, host_cpus, vms, appeared, vanished, unavailable: notes }
    }
}

/// What the VMs of one tick read with.
struct Tick<'a> {
    proc_root: &'a Path,
    hz: u64,
    page_size_bytes: u64,
    btime: Option<u64>,
    now: Instant,
    /// The net/dev of each network namespace an earlier VM of this tick read.
    net_devs: &'a mut NetDevByNamespace,
    /// The cgroup hierarchies, or why they are unknown.
    hierarchies: std::result::Result<&'a Hierarchies, &'a str>,
    host_cpus: Option<u64>,
}

/// Read what /proc says about one VM's QEMU process this tick (nothing when the observation names no
/// process) and put it with the observation.
fn read_vm(t: &mut Tracked, obs: VmObservation, tick: &mut Tick) -> RawVm {
    let Tick { proc_root, hz, page_size_bytes, btime, now, .. } = *tick;
    let mut raw = RawVm::new(obs);
    raw.vcpus = raw.obs.vcpus.iter().map(VcpuReading::from_observation).collect();
    let Some(pid) = raw.obs.pid else {
        t.process = None;
        t.cgroup = None;
        return raw;
    };
    if t.process.as_ref().map(QemuProcess::pid) != Some(pid) {
        t.process = Some(QemuProcess::new(proc_root, pid));
        t.cgroup = None;
    }
    let Some(p) = t.process.as_mut() else { return raw };
    let mut errors = Vec::new();
    let mut reading = p.read(hz, page_size_bytes, btime, now, &mut errors);
    if reading.as_ref().is_err_and(|e| e.is_gone()) && p.starttime_ticks().is_some() {
        // The process these readers were opened for is gone; the pid may belong to a new QEMU (the
        // VM restarted and got its old pid back, or the collector reports the new process by now).
        *p = QemuProcess::new(proc_root, pid);
        t.cgroup = None;
        errors.clear();
        reading = p.read(hz, page_size_bytes, btime, now, &mut errors);
    }
    raw.errors = errors;
    match reading {
        Ok(r) => {
            if btime.is_none() {
                raw.errors.push(("process.started_at".into(), format!("no btime in {}/stat", proc_root.display())));
            }
            raw.process = ProcessState::Read(r);
        }
        Err(e) if e.is_gone() => {
            raw.process = ProcessState::Gone(pid);
            t.process = None;
            t.cgroup = None;
            return raw;
        }
        Err(e) => {
            raw.process = ProcessState::Error(pid, e.to_string());
            return raw;
        }
    }
    let cgroup_path = raw.process.reading().and_then(|r| r.cgroup_path.clone());
    raw.cgroup = read_cgroup(&mut t.cgroup, cgroup_path.as_deref(), tick.hierarchies, tick.host_cpus);
    read_vcpu_threads(p, &mut raw, hz);
    if raw.obs.nics.is_none() {
        raw.taps = match p.read_taps(now, tick.net_devs) {
            Ok(taps) => Taps::Read(taps),
            Err(e) => Taps::Error(format!("finding the QEMU process's taps: {e}")),
        };
    }
    raw
}

/// The VM's cgroup: the VM scope enclosing the QEMU process's cgroup (libvirt keeps QEMU in the
/// machine's `emulator` sub-cgroup), read through a kept reader that follows the scope; its CPU,
/// memory and pressure are the ones the VM reports under `cgroup`.
fn read_cgroup(slot: &mut Option<CgroupReader>, process_cgroup: Option<&str>, hierarchies: std::result::Result<&Hierarchies, &str>, host_cpus: Option<u64>) -> CgroupReading {
    let Some(path) = process_cgroup else {
        *slot = None;
        return CgroupReading::Unavailable("the QEMU process's cgroup is unknown (see process.cgroup_path)".into());
    };
    let Some(scope) = enclosing_vm_scope(path) else {
        *slot = None;
        let why = format!("the QEMU process's cgroup {path} is not in a VM scope (a libvirt machine-qemu-... or /machine/qemu-...libvirt-qemu, or Proxmox's qemu.slice/<vmid>.scope)");
        return CgroupReading::Unavailable(why);
    };
    let h = match hierarchies {
        Ok(h) => h,
        Err(why) => return CgroupReading::Unavailable(why.to_owned()),
    };
    let reader = match slot {
        Some(r) if r.path() == scope.path => r,
        _ => slot.insert(CgroupReader::new(h, &scope.path, Coverage::Vm)),
    };
    let raw = reader.read(|_, _| {});
    let timestamp = unix_now();
    let (cgroup, reasons) = reader.build(raw, |cur, prev| vm_cgroup(&scope.path, cur, prev, host_cpus, timestamp));
    CgroupReading::Read(Box::new(cgroup), reasons)
}

/// The numbers a VM reports of its cgroup, and (field, reason) for those that are null.
fn vm_cgroup(path: &str, cur: &RawContainer, prev: Option<&RawContainer>, host_cpus: Option<u64>, timestamp: f64) -> (VmCgroup, Vec<(String, String)>) {
    let dt = interval_secs(cur, prev);
    let cpu_usage_percent = host_percent(cpu_cores(cur, prev, dt), host_cpus);
    let [pressure_cpu, pressure_memory, pressure_io] = pressures(cur, prev, dt);
    let mut why: Vec<(String, String)> = cur.errors.iter().map(|(f, e)| ((*f).to_owned(), e.clone())).collect();
    let mut note = |field: &str, reason: &str| why.push((field.to_owned(), reason.to_owned()));
    if cpu_usage_percent.is_none() {
        let counters = prev.and_then(|p| p.cpu_usage_usec).zip(cur.cpu_usage_usec);
        note("cpu_usage_percent", match (cur.cpu_usage_usec, prev, counters) {
            (None, _, _) => "no CPU accounting file for this cgroup (cpu.stat / cpuacct.usage)",
            (_, None, _) => "first reading of this cgroup: a rate needs two",
            (_, _, Some((p, c))) if c < p => "counter went down (the cgroup was made again); the rate resumes next interval",
            _ if host_cpus.is_none() => "the number of online CPUs of the host is unknown",
            _ => "no time elapsed since the previous reading",
        });
    }
    if cur.memory_usage.is_none() {
        note("memory_usage_bytes", "no memory controller file for this cgroup");
    }
    if cur.pressure.iter().all(Option::is_none) {
        note("pressure", "no pressure files for this cgroup (cgroup v2 with PSI)");
    }
    let cgroup = VmCgroup {
        cgroup_path: path.to_owned(),
        timestamp,
        cpu_usage_percent,
        memory_usage_bytes: cur.memory_usage,
        memory_limit_bytes: cur.memory_limit,
        pressure_cpu,
        pressure_memory,
        pressure_io,
    };
    (cgroup, why)
}

/// The vCPUs' counters from their threads: for each vCPU the collector did not time (or, when it
/// listed none, for each thread named as a vCPU), its thread's utime + stime and run-queue wait.
fn read_vcpu_threads(p: &mut QemuProcess, raw: &mut RawVm, hz: u64) {
    let pid = p.pid();
    if raw.obs.vcpus.is_empty() {
        match p.vcpu_tids(false) {
            Ok(tids) if tids.is_empty() => raw.errors.push((
                "vcpu".into(),
                format!("the collector listed no vCPUs and no thread of the QEMU process {pid} is named \"CPU <n>/<accel>\" {NAMES_WHY}"),
            )),
            Ok(tids) => {
                raw.vcpus = tids.iter().map(|(&index, &tid)| VcpuReading { index, tid: Some(tid), ..Default::default() }).collect();
            }
            Err(e) => raw.errors.push(("vcpu".into(), e.to_string())),
        }
    }
    let mut used = Vec::new();
    let mut unnamed = Vec::new();
    let mut rescanned = false;
    for (i, v) in raw.vcpus.iter_mut().enumerate() {
        if v.origin.is_some() {
            continue;
        }
        let given = raw.obs.vcpus.get(i).and_then(|o| o.tid);
        let field = format!("vcpu.{}", v.index);
        let mut tid = match given.or(v.tid) {
            Some(t) => Some(t),
            None => match p.vcpu_tid(v.index, false) {
                Ok(t) => t,
                Err(e) => {
                    raw.errors.push((field, e.to_string()));
                    continue;
                }
            },
        };
        for attempt in 0..2 {
            let Some(t) = tid else {
                unnamed.push(v.index);
                break;
            };
            match p.read_thread(t, hz, &mut raw.errors, &field) {
                Ok(r) => {
                    used.push(t);
                    *v = VcpuReading { tid: Some(t), origin: Some(VcpuOrigin::Thread), cpu_ns: Some(r.cpu_ns), steal_ns: r.wait_ns, ..v.clone() };
                    break;
                }
                // A thread found by name exited (vCPU unplugged, or QEMU re-created it): look again.
                Err(e) if e.is_gone() && given.is_none() && attempt == 0 => {
                    tid = p.vcpu_tid(v.index, !rescanned).unwrap_or(None);
                    rescanned = true;
                }
                Err(e) if e.is_gone() => {
                    raw.errors.push((field, format!("thread {t} of the QEMU process {pid} is gone")));
                    break;
                }
                Err(e) => {
                    raw.errors.push((field, e.to_string()));
                    break;
                }
            }
        }
    }
    if !unnamed.is_empty() {
        let list = unnamed.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        raw.errors.push((
            "vcpu".into(),
            format!("no thread of the QEMU process {pid} is named \"CPU <n>/<accel>\" for vCPU {list} {NAMES_WHY}"),
        ));
    }
    p.retain_threads(&used);
}

/// Why vCPU threads may have no names, for the reasons above.
const NAMES_WHY: &str =
    "(QEMU runs without -name ...,debug-threads=on, or runs every vCPU in one thread: single-threaded TCG)";

fn read_btime(proc_root: &Path) -> Option<u64> {
    stat::parse(&std::fs::read(proc_root.join("stat")).ok()?).ok()?.boot_time_secs
}

/// Wall-clock now, unix seconds (negative for a clock set before 1970, not a made-up 0).
fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_else(|e| -e.duration().as_secs_f64())
}

fn sysconf_cpus() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (n > 0).then_some(n as u64)
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::observe::{NicObservation, VcpuObservation, VmOrigin, VmStatus};
    use serde_json::Value;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const PID: u32 = 4242;
    const BTIME: u64 = 1795313989;
    /// readlink /proc/1/ns/net on the test machine: the host's network namespace.
    const HOST_NETNS: u64 = 4026531833;

    /// A fake /proc and /sys with one QEMU process in the host's network namespace: threads 4242
    /// (main), 4243 and 4244 (vCPUs 0 and 1), 4245 (a worker); fds 3 (/dev/null), 7 and 8 (two
    /// queues of tap0); its net/dev holds lo, eth0 and tap0.
    struct Tree {
        dir: tempfile::TempDir,
    }

    /// /proc/<pid>/stat with the kept fields set and the rest 0 (52 fields, as Linux 6.18 writes).
    fn stat_line(pid: u32, comm: &str, state: char, utime: u64, stime: u64, threads: u64, start: u64) -> String {
        let mut f = vec!["0".to_string(); 50];
        f[0] = state.to_string();
        f[14 - 3] = utime.to_string();
        f[15 - 3] = stime.to_string();
        f[20 - 3] = threads.to_string();
        f[22 - 3] = start.to_string();
        format!("{pid} ({comm}) {}\n", f.join(" "))
    }

    fn net_dev(tap_rx: u64, tap_tx: u64) -> String {
        net_dev_with(&[("tap0", tap_rx, tap_tx)])
    }

    /// A namespace's net/dev with lo, eth0 and these taps (name, host rx bytes, host tx bytes).
    fn net_dev_with(taps: &[(&str, u64, u64)]) -> String {
        let mut text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n  eth0: 70213669    4594    0    0    0     0          0         0   394360    4242    0    0    0     0       0          0\n".to_string();
        for (name, rx, tx) in taps {
            text.push_str(&format!("{name:>6}: {rx} 10 0 0 0 0 0 0 {tx} 20 0 1 0 0 0 0\n"));
        }
        text
    }

    impl Tree {
        fn new() -> Tree {
            let t = Tree { dir: tempfile::tempdir().unwrap() };
            t.write("sys/devices/system/cpu/online", "0-3\n");
            t.write("proc/stat", &format!("cpu  1 2 3 4\ncpu0 1 2 3 4\nbtime {BTIME}\n"));
            t.qemu(PID, "tap0", HOST_NETNS);
            t
        }

        /// QEMU process `pid`: threads pid (main), pid+1 and pid+2 (vCPUs 0 and 1), pid+3 (a
        /// worker); fds 3 (/dev/null), 7 and 8 (two queues of `tap`); in network namespace `netns`,
        /// its net/dev holding lo, eth0 and `tap`.
        fn qemu(&self, pid: u32, tap: &str, netns: u64) {
            self.write(&format!("proc/{pid}/stat"), &stat_line(pid, "qemu-system-x86", 'S', 0, 0, 6, 1000));
            // 51200 resident pages: 200 MiB with 4 KiB pages.
            self.write(&format!("proc/{pid}/statm"), "245760 51200 4096 1500 0 120000 0\n");
            self.write(&format!("proc/{pid}/io"), &io_text(0, 0));
            self.write(&format!("proc/{pid}/cgroup"), "4:cpu:/machine/qemu-3-web.libvirt-qemu/emulator\n0::/\n");
            self.write(&format!("proc/{pid}/net/dev"), &net_dev_with(&[(tap, 0, 0)]));
            self.netns(pid, netns);
            for (tid, comm) in [(pid, "qemu-system-x86"), (pid + 1, "CPU 0/TCG"), (pid + 2, "CPU 1/TCG"), (pid + 3, "worker")] {
                self.write(&format!("proc/{pid}/task/{tid}/comm"), &format!("{comm}\n"));
                self.thread_of(pid, tid, 0, 0);
            }
            std::fs::create_dir_all(self.path(&format!("proc/{pid}/fd"))).unwrap();
            for (fd, target) in [(3, "/dev/null"), (7, "/dev/net/tun"), (8, "/dev/net/tun")] {
                std::os::unix::fs::symlink(target, self.path(&format!("proc/{pid}/fd/{fd}"))).unwrap();
                let iff = if target == "/dev/net/tun" { format!("iff:\t{tap}\n") } else { String::new() };
                self.write(&format!("proc/{pid}/fdinfo/{fd}"), &format!("pos:\t0\nflags:\t02100002\nmnt_id:\t24\nino:\t105\n{iff}"));
            }
        }

        /// Put process `pid` in network namespace `netns`: /proc/<pid>/ns/net is a magic link whose
        /// readlink is `net:[<inode>]`; here a plain symlink with that target.
        fn netns(&self, pid: u32, netns: u64) {
            let link = self.path(&format!("proc/{pid}/ns/net"));
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("net:[{netns}]"), link).unwrap();
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn write(&self, rel: &str, text: &str) {
            let p = self.path(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            // Truncate in place, as a kept fd on the real file would see a regenerated one.
            std::fs::write(p, text).unwrap();
        }

        fn process(&self, utime: u64, stime: u64, threads: u64, start: u64) {
            self.write(&format!("proc/{PID}/stat"), &stat_line(PID, "qemu-system-x86", 'S', utime, stime, threads, start));
        }

        fn thread(&self, tid: u32, ticks: u64, wait_ns: u64) {
            self.thread_of(PID, tid, ticks, wait_ns);
        }

        fn thread_of(&self, pid: u32, tid: u32, ticks: u64, wait_ns: u64) {
            self.write(&format!("proc/{pid}/task/{tid}/stat"), &stat_line(tid, "x", 'R', ticks, 0, 6, 1000));
            self.write(&format!("proc/{pid}/task/{tid}/schedstat"), &format!("{} {wait_ns} 10\n", ticks * 1000));
        }

        fn sampler(&self) -> (VmSampler, Arc<Mutex<Instant>>) {
            let now = Arc::new(Mutex::new(Instant::now()));
            let clock = now.clone();
            let config = VmConfig { proc_root: self.path("proc"), sys_root: self.path("sys"), rootfs: self.dir.path().to_owned() };
            (VmSampler::with_clock(config, move || *clock.lock().unwrap()), now)
        }
    }

    fn io_text(read: u64, write: u64) -> String {
        format!("rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: {read}\nwrite_bytes: {write}\ncancelled_write_bytes: 0\n")
    }

    fn qmp_vm(pid: Option<u32>) -> VmObservation {
        let mut o = VmObservation::new("vm-1", "web", VmOrigin::Qmp, VmStatus::Running);
        o.pid = pid;
        o
    }

    /// A QMP VM named `id` whose QEMU is `pid`.
    fn qmp_vm_of(id: &str, pid: u32) -> VmObservation {
        let mut o = VmObservation::new(id, id, VmOrigin::Qmp, VmStatus::Running);
        o.pid = Some(pid);
        o
    }

    /// The NICs of a sampled VM as (name, rx bytes, tx bytes), in the guest's view.
    fn nics(vm: &Value) -> Vec<(String, u64, u64)> {
        let nics = vm["nics"].as_array().unwrap_or_else(|| panic!("no nics: {}", vm["unavailable"]));
        nics.iter().map(|n| (n["name"].as_str().unwrap().to_owned(), n["rx_bytes"].as_u64().unwrap(), n["tx_bytes"].as_u64().unwrap())).collect()
    }

    fn nic(name: &str, rx: u64, tx: u64) -> (String, u64, u64) {
        (name.to_owned(), rx, tx)
    }

    /// The net/dev files among the sampler's paths, sorted, relative to `root`.
    fn net_dev_paths(s: &VmSampler, root: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            s.paths().iter().filter(|p| p.ends_with("net/dev")).map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string()).collect();
        v.sort();
        v
    }

    fn sample(s: &mut VmSampler, vms: Vec<VmObservation>) -> Value {
        serde_json::to_value(s.sample(VmObservations { vms })).unwrap()
    }

    fn advance(clock: &Mutex<Instant>, secs: u64) {
        let mut c = clock.lock().unwrap();
        *c += Duration::from_secs(secs);
    }

    #[test]
    fn qemu_process_threads_and_taps_with_exact_rates() {
        let tree = Tree::new();
        let hz = host::user_hz();
        let (mut s, clock) = tree.sampler();
        let first = sample(&mut s, vec![qmp_vm(Some(PID))]);
        assert_eq!(first["appeared"], serde_json::json!(["vm-1"]));
        assert_eq!(first["host_cpus"], 4);
        assert!(first["interval_secs"].is_null());
        let v = &first["vms"][0];
        assert_eq!(v["process"]["pid"], PID);
        assert_eq!(v["process"]["threads"], 6);
        assert_eq!(v["process"]["rss_bytes"], 51200 * host::page_size());
        assert_eq!(v["memory_rss_bytes"], 51200 * host::page_size());
        assert_eq!(v["process"]["started_at"], BTIME as f64 + 1000.0 / hz as f64);
        assert_eq!(v["process"]["cgroup_path"], "/machine/qemu-3-web.libvirt-qemu/emulator", "v2 is / here: the cpu line");
        assert_eq!(v["vcpus"], 2);
        assert_eq!(v["vcpu"][0]["tid"], 4243);
        assert_eq!(v["vcpu"][1]["tid"], 4244);
        assert_eq!(v["vcpu"][1]["origin"], "thread");
        assert_eq!(v["nics"].as_array().unwrap().len(), 1, "two queues of one tap: one NIC");
        assert_eq!(v["nics"][0]["name"], "tap0");
        assert_eq!(v["nics"][0]["origin"], "tap");
        assert!(v["cpu_usage_percent"].is_null());
        assert_eq!(v["unavailable"]["rates"], "first sample of this VM: a rate needs two readings");
        assert!(v["cgroup"].is_null());

        // 2 s later: the process ran 3 s (2 user, 1 system), vCPU 0 all the time, vCPU 1 half of
        // it and waited 0.5 s for a CPU; 8 KiB read; the tap sent the guest 3000 bytes and got 1000.
        advance(&clock, 2);
        tree.process(2 * hz, hz, 6, 1000);
        tree.thread(4243, 2 * hz, 0);
        tree.thread(4244, hz, 500_000_000);
        tree.write(&format!("proc/{PID}/io"), &io_text(8192, 0));
        tree.write(&format!("proc/{PID}/net/dev"), &net_dev(1000, 3000));
        let second = sample(&mut s, vec![qmp_vm(Some(PID))]);
        assert_eq!(second["interval_secs"], 2.0);
        assert_eq!(second["appeared"], serde_json::json!([]));
        let v = &second["vms"][0];
        assert_eq!(v["cpu_cores"], 1.5);
        assert_eq!(v["cpu_usage_percent"], 37.5);
        assert_eq!(v["cpu_secs_total"], 3.0);
        assert_eq!(v["cpu_user_secs_total"], 2.0);
        assert_eq!(v["cpu_vcpu_percent"], 75.0, "(2 s + 1 s) / 2 s / 2 vCPUs");
        assert_eq!(v["vcpu"][0]["cpu_percent"], 100.0);
        assert_eq!(v["vcpu"][1]["cpu_percent"], 50.0);
        assert_eq!(v["vcpu"][1]["steal_percent"], 25.0);
        assert_eq!(v["vcpu"][1]["steal_secs_total"], 0.5);
        assert_eq!(v["process"]["read_bytes_per_sec"], 4096.0);
        assert_eq!(v["process"]["write_bytes_per_sec"], 0.0);
        let nic = &v["nics"][0];
        assert_eq!((nic["rx_bytes"].as_u64(), nic["tx_bytes"].as_u64()), (Some(3000), Some(1000)), "swapped");
        assert_eq!((nic["rx_packets"].as_u64(), nic["tx_packets"].as_u64(), nic["tx_dropped"].as_u64()), (Some(20), Some(10), Some(0)));
        assert_eq!(nic["rx_dropped"], 1, "the host's tx drops are the guest's rx drops");
        assert_eq!(v["network_rx_bytes_per_sec"], 1500.0);
        assert_eq!(v["network_tx_bytes_per_sec"], 500.0);
        assert!(v["unavailable"].get("rates").is_none(), "{}", v["unavailable"]);
        for k in ["cpu_usage_percent", "cpu_vcpu_percent", "network_rx_bytes", "process", "vcpu"] {
            assert!(v["unavailable"].get(k).is_none(), "{k}: {}", v["unavailable"]);
        }
        // Null headline fields have their reason.
        assert_eq!(v["unavailable"]["memory_usage_percent"], "the VM has no balloon device");
        assert_eq!(v["unavailable"]["disk_read_bytes"], "the VM has no disks");

        let mut paths = s.paths();
        paths.sort();
        let rel: Vec<String> = paths.iter().map(|p| p.strip_prefix(tree.dir.path()).unwrap().display().to_string()).collect();
        assert_eq!(
            rel,
            [
                "proc/4242/io",
                "proc/4242/net/dev",
                "proc/4242/stat",
                "proc/4242/statm",
                "proc/4242/task/4243/schedstat",
                "proc/4242/task/4243/stat",
                "proc/4242/task/4244/schedstat",
                "proc/4242/task/4244/stat",
                "sys/devices/system/cpu/online",
            ]
        );
    }

    #[test]
    fn a_new_start_time_is_a_restart_and_a_new_thread_count_a_rescan() {
        let tree = Tree::new();
        let hz = host::user_hz();
        let (mut s, clock) = tree.sampler();
        sample(&mut s, vec![qmp_vm(Some(PID))]);

        // vCPU 1 moved to a new thread (4250) and the thread count changed: found by a rescan, and
        // its rate starts over; vCPU 0 keeps its rate.
        advance(&clock, 1);
        tree.write(&format!("proc/{PID}/task/4250/comm"), "CPU 1/TCG\n");
        tree.write(&format!("proc/{PID}/task/4244/comm"), "worker\n");
        tree.thread(4250, hz, 0);
        tree.thread(4243, hz, 0);
        tree.process(hz, 0, 7, 1000);
        let v = &sample(&mut s, vec![qmp_vm(Some(PID))])["vms"][0];
        assert_eq!(v["vcpu"][1]["tid"], 4250);
        assert!(v["vcpu"][1]["cpu_percent"].is_null());
        assert_eq!(v["vcpu"][0]["cpu_percent"], 100.0);
        assert!(v["cpu_vcpu_percent"].is_number(), "the whole process stands in: {}", v["unavailable"]);
        assert!(!s.paths().iter().any(|p| p.to_string_lossy().contains("/4244/")), "the old thread's readers are closed");

        // The pid was reused by a new QEMU (another start time): counters start over.
        advance(&clock, 1);
        tree.process(5, 0, 7, 9000);
        let v = &sample(&mut s, vec![qmp_vm(Some(PID))])["vms"][0];
        assert!(v["cpu_usage_percent"].is_null());
        assert!(v["unavailable"]["rates"].as_str().unwrap().contains("restarted"), "{}", v["unavailable"]);
        assert_eq!(v["process"]["started_at"], BTIME as f64 + 9000.0 / hz as f64);
        advance(&clock, 1);
        tree.process(5 + hz, 0, 7, 9000);
        let v = &sample(&mut s, vec![qmp_vm(Some(PID))])["vms"][0];
        assert_eq!(v["cpu_cores"], 1.0, "rates resume");
    }

    #[test]
    fn libvirt_counters_need_no_threads_or_taps() {
        let tree = Tree::new();
        let (mut s, clock) = tree.sampler();
        let vm = |cpu_ns: u64, rx: u64| {
            let mut o = VmObservation::new("uuid-1", "db", VmOrigin::Libvirt, VmStatus::Running);
            o.pid = Some(PID);
            o.cpu_time_ns = Some(cpu_ns);
            o.vcpus_current = Some(1);
            o.vcpus = vec![VcpuObservation { index: 0, time_ns: Some(cpu_ns / 2), delay_ns: Some(0), wait_ns: Some(7), ..Default::default() }];
            o.nics = Some(vec![NicObservation { name: "vnet0".into(), rx_bytes: Some(rx), tx_bytes: Some(0), ..Default::default() }]);
            o
        };
        sample(&mut s, vec![vm(0, 0)]);
        advance(&clock, 4);
        let v = &sample(&mut s, vec![vm(2_000_000_000, 4000)])["vms"][0];
        assert_eq!(v["cpu_cores"], 0.5);
        assert_eq!(v["vcpu"][0]["origin"], "libvirt");
        assert_eq!(v["vcpu"][0]["cpu_percent"], 25.0);
        assert_eq!(v["vcpu"][0]["wait_secs_total"], 7e-9);
        assert_eq!(v["vcpu"][0]["tid"], Value::Null);
        assert_eq!(v["nics"][0]["origin"], "libvirt");
        assert_eq!(v["network_rx_bytes_per_sec"], 1000.0);
        assert_eq!(v["process"]["pid"], PID, "the process is read all the same");
        let paths: Vec<String> = s.paths().iter().map(|p| p.display().to_string()).collect();
        assert!(!paths.iter().any(|p| p.contains("/task/") || p.ends_with("net/dev")), "{paths:?}");
    }

    #[test]
    fn appeared_vanished_shutoff_and_duplicates() {
        let tree = Tree::new();
        let (mut s, _clock) = tree.sampler();
        let mut off = VmObservation::new("vm-2", "off", VmOrigin::Libvirt, VmStatus::Shutoff);
        off.memory_max_bytes = Some(1 << 30);
        let v = sample(&mut s, vec![qmp_vm(Some(PID)), off.clone(), qmp_vm(Some(PID))]);
        assert_eq!(v["appeared"], serde_json::json!(["vm-1", "vm-2"]));
        assert_eq!(v["vms"].as_array().unwrap().len(), 2);
        assert!(v["unavailable"]["vms"].as_str().unwrap().contains("more than one observation of VM \"vm-1\""));
        assert!(v["vms"][1]["process"].is_null());
        assert_eq!(v["vms"][1]["unavailable"]["process"], "no QEMU process: the VM is shutoff");
        let v = sample(&mut s, vec![off]);
        assert_eq!(v["vanished"], serde_json::json!(["vm-1"]));
        assert_eq!(s.paths().len(), 1, "the vanished VM's readers are closed");
        let v = sample(&mut s, vec![]);
        assert_eq!(v["vanished"], serde_json::json!(["vm-2"]));
    }

    #[test]
    fn missing_and_malformed_files_name_their_path() {
        let tree = Tree::new();
        let (mut s, _clock) = tree.sampler();
        // A pid with no /proc entry is gone.
        let v = sample(&mut s, vec![qmp_vm(Some(99999))]);
        assert_eq!(v["vms"][0]["unavailable"]["process"], "the QEMU process 99999 is gone");
        assert!(v["vms"][0]["process"].is_null());
        assert_eq!(v["vms"][0]["unavailable"]["nics"], "no NIC counters: the collector has none and there is no QEMU process to find taps in");

        tree.write(&format!("proc/{PID}/statm"), "245760 51200\n");
        tree.write(&format!("proc/{PID}/fdinfo/7"), "pos:\t0\niff:\tno/slash\n");
        let v = &sample(&mut s, vec![qmp_vm(Some(PID))])["vms"][0];
        let why = &v["unavailable"];
        assert!(why["memory_rss_bytes"].as_str().unwrap().ends_with(&format!("proc/{PID}/statm:1: shared: missing")), "{why}");
        assert!(why["nics"].as_str().unwrap().contains(&format!("proc/{PID}/fdinfo/7:2: iff: not an interface name")), "{why}");
        assert!(v["memory_rss_bytes"].is_null());
        assert_eq!(v["process"]["threads"], 6, "the rest of the process is still read");

        tree.write(&format!("proc/{PID}/stat"), "garbage\n");
        let v = &sample(&mut s, vec![qmp_vm(Some(PID))])["vms"][0];
        assert!(v["process"].is_null());
        assert!(v["unavailable"]["process"].as_str().unwrap().contains(&format!("proc/{PID}/stat:1: no \"(comm)\"")), "{}", v["unavailable"]);
    }

    #[test]
    fn cgroup_is_read_on_the_first_tick_then_every_reread_interval() {
        use crate::vm::process::CGROUP_REREAD;
        let tree = Tree::new();
        let (mut s, clock) = tree.sampler();
        let cgroup = |s: &mut VmSampler| sample(s, vec![qmp_vm(Some(PID))])["vms"][0]["process"]["cgroup_path"].clone();
        assert_eq!(cgroup(&mut s), "/machine/qemu-3-web.libvirt-qemu/emulator");

        // Moved (libvirt's move into emulator, or an admin's): seen at the next re-read, not before.
        tree.write(&format!("proc/{PID}/cgroup"), "0::/machine.slice/machine-qemu\\x2d3\\x2dweb.scope/libvirt/emulator\n");
        advance(&clock, CGROUP_REREAD.as_secs() - 1);
        assert_eq!(cgroup(&mut s), "/machine/qemu-3-web.libvirt-qemu/emulator", "the path read last, in between");
        advance(&clock, 1);
        assert_eq!(cgroup(&mut s), "/machine.slice/machine-qemu\\x2d3\\x2dweb.scope/libvirt/emulator");

        // A failed re-read: null with the reason, and tried again on the next tick.
        tree.write(&format!("proc/{PID}/cgroup"), "garbage\n");
        advance(&clock, CGROUP_REREAD.as_secs());
        let v = &sample(&mut s, vec![qmp_vm(Some(PID))])["vms"][0];
        assert!(v["process"]["cgroup_path"].is_null());
        let why = v["unavailable"]["process.cgroup_path"].as_str().unwrap();
        assert!(why.contains(&format!("proc/{PID}/cgroup:1: expected")), "{why}");
        tree.write(&format!("proc/{PID}/cgroup"), "0::/a\n");
        advance(&clock, 1);
        assert_eq!(cgroup(&mut s), "/a");

        // A restarted QEMU (same pid, new start time) gets new readers, which read it at once.
        tree.write(&format!("proc/{PID}/cgroup"), "0::/b\n");
        tree.process(0, 0, 6, 5000);
        advance(&clock, 1);
        assert_eq!(cgroup(&mut s), "/b");
    }

    #[test]
    fn rss_of_a_process_without_a_memory_map_is_null_with_its_reason() {
        let tree = Tree::new();
        let (mut s, _clock) = tree.sampler();
        // What statm shows once the process has dropped its mm while exiting (status: no VmRSS line).
        tree.write(&format!("proc/{PID}/statm"), "0 0 0 0 0 0 0\n");
        let v = &sample(&mut s, vec![qmp_vm(Some(PID))])["vms"][0];
        assert!(v["memory_rss_bytes"].is_null() && v["process"]["rss_bytes"].is_null());
        let why = v["unavailable"]["memory_rss_bytes"].as_str().unwrap();
        assert!(why.ends_with(&format!("proc/{PID}/statm: all zero: the process has no memory map (it is exiting)")), "{why}");
        assert_eq!(v["process"]["threads"], 6, "the rest of the process is still read");
    }

    #[test]
    fn a_zombie_and_a_real_exited_process_are_gone() {
        let tree = Tree::new();
        let (mut s, _clock) = tree.sampler();
        tree.write(&format!("proc/{PID}/stat"), &stat_line(PID, "qemu-system-x86", 'Z', 0, 0, 1, 1000));
        assert_eq!(sample(&mut s, vec![qmp_vm(Some(PID))])["vms"][0]["unavailable"]["process"], "the QEMU process 4242 is gone");

        // A real process on this machine's /proc: read, then gone once it exited (ESRCH on the kept
        // fds, ENOENT on a re-open).
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let mut s = VmSampler::new(VmConfig::default());
        let v = sample(&mut s, vec![qmp_vm(Some(pid))]);
        let p = &v["vms"][0]["process"];
        assert_eq!(p["pid"], pid);
        assert_eq!(p["threads"], 1);
        assert!(p["rss_bytes"].as_u64().unwrap() > 0);
        // statm's resident pages are status's VmRSS: equal whenever VmRSS holds still around a sample
        // (it grows while sleep is still starting).
        let vm_rss = || {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB");
            kb.parse::<u64>().unwrap() * 1024
        };
        let mut probe = VmSampler::new(VmConfig::default());
        let same = (0..100).find_map(|_| {
            let before = vm_rss();
            let rss = sample(&mut probe, vec![qmp_vm(Some(pid))])["vms"][0]["process"]["rss_bytes"].as_u64();
            let steady = before == vm_rss();
            std::thread::sleep(Duration::from_millis(10));
            steady.then_some((rss, before))
        });
        let (rss, vm_rss) = same.expect("VmRSS held still around one of 100 samples");
        assert_eq!(rss, Some(vm_rss));
        let started = p["started_at"].as_f64().unwrap();
        assert!((started - unix_now()).abs() < 60.0, "started just now: {started}");
        assert_eq!(v["vms"][0]["unavailable"]["nics"], NO_TAP_TEXT);
        child.kill().unwrap();
        child.wait().unwrap();
        let v = sample(&mut s, vec![qmp_vm(Some(pid))]);
        assert_eq!(v["vms"][0]["unavailable"]["process"], format!("the QEMU process {pid} is gone"));
        assert_eq!(s.paths().len(), 1);
    }

    const NO_TAP_TEXT: &str = "no tap interface: QEMU user-mode networking has no counters on the host";

    #[test]
    fn net_dev_is_read_once_per_network_namespace() {
        const B: u32 = 5252;
        const C: u32 = 6262;
        const OTHER_NETNS: u64 = 4026532601;
        let tree = Tree::new();
        tree.qemu(B, "tap1", HOST_NETNS);
        tree.qemu(C, "tap2", OTHER_NETNS);
        // The host's namespace holds both taps, as 4242 sees it. 5252's view is garbage: read, it
        // would fail.
        tree.write(&format!("proc/{PID}/net/dev"), &net_dev_with(&[("tap0", 100, 200), ("tap1", 300, 400)]));
        tree.write(&format!("proc/{B}/net/dev"), "garbage\n");
        tree.write(&format!("proc/{C}/net/dev"), &net_dev_with(&[("tap2", 5, 6)]));
        let (mut s, _clock) = tree.sampler();
        let root = tree.dir.path();

        // Each VM gets its own tap's counters (swapped into the guest's view) from one read.
        let v = sample(&mut s, vec![qmp_vm_of("a", PID), qmp_vm_of("b", B)]);
        assert_eq!(nics(&v["vms"][0]), [nic("tap0", 200, 100)]);
        assert_eq!(nics(&v["vms"][1]), [nic("tap1", 400, 300)], "from 4242's read: 5252's file is not read");
        assert!(v["vms"][1]["unavailable"].get("nics").is_none(), "{}", v["vms"][1]["unavailable"]);
        assert_eq!(net_dev_paths(&s, root), ["proc/4242/net/dev"]);

        // Another namespace is read on its own.
        let v = sample(&mut s, vec![qmp_vm_of("a", PID), qmp_vm_of("b", B), qmp_vm_of("c", C)]);
        assert_eq!(nics(&v["vms"][1]), [nic("tap1", 400, 300)]);
        assert_eq!(nics(&v["vms"][2]), [nic("tap2", 6, 5)]);
        assert_eq!(net_dev_paths(&s, root), ["proc/4242/net/dev", "proc/6262/net/dev"]);

        // The first of a namespace fails to read it (it is exiting): that is its own error, as it
        // was before the sharing, and the next process of the namespace reads its own file.
        let v = sample(&mut s, vec![qmp_vm_of("c", C), qmp_vm_of("b", B), qmp_vm_of("a", PID)]);
        let why = v["vms"][1]["unavailable"]["nics"].as_str().unwrap();
        assert!(why.starts_with("finding the QEMU process's taps: ") && why.contains(&format!("proc/{B}/net/dev:1: expected a header line")), "{why}");
        assert_eq!(nics(&v["vms"][2]), [nic("tap0", 200, 100)]);
        assert_eq!(nics(&v["vms"][0]), [nic("tap2", 6, 5)]);
        assert_eq!(net_dev_paths(&s, root), ["proc/4242/net/dev", "proc/5252/net/dev", "proc/6262/net/dev"], "the failed read was a read");

        // The first process of the namespace is gone: the second one's file is used.
        tree.write(&format!("proc/{B}/net/dev"), &net_dev_with(&[("tap0", 1000, 2000), ("tap1", 3000, 4000)]));
        tree.write(&format!("proc/{PID}/stat"), &stat_line(PID, "qemu-system-x86", 'Z', 0, 0, 1, 1000));
        let v = sample(&mut s, vec![qmp_vm_of("a", PID), qmp_vm_of("b", B), qmp_vm_of("c", C)]);
        assert_eq!(v["vms"][0]["unavailable"]["process"], "the QEMU process 4242 is gone");
        assert_eq!(nics(&v["vms"][1]), [nic("tap1", 4000, 3000)]);
        assert_eq!(net_dev_paths(&s, root), ["proc/5252/net/dev", "proc/6262/net/dev"]);
    }

    #[test]
    fn the_network_namespace_is_read_again_with_each_tap_scan() {
        use crate::vm::process::TAP_RESCAN;
        const B: u32 = 5252;
        let tree = Tree::new();
        tree.qemu(B, "tap1", HOST_NETNS);
        tree.write(&format!("proc/{PID}/net/dev"), &net_dev_with(&[("tap0", 1, 2), ("tap1", 3, 4)]));
        tree.write(&format!("proc/{B}/net/dev"), &net_dev_with(&[("tap1", 30, 40)]));
        let (mut s, clock) = tree.sampler();
        let root = tree.dir.path();
        let vms = || vec![qmp_vm_of("a", PID), qmp_vm_of("b", B)];
        let v = sample(&mut s, vms());
        assert_eq!(nics(&v["vms"][1]), [nic("tap1", 4, 3)]);

        // 5252 is now elsewhere (setns, which QEMU does not do) and its tap with it: the tap missing
        // from the shared file makes it scan its fds and read its namespace again, in the same tick.
        tree.netns(B, 777);
        tree.write(&format!("proc/{PID}/net/dev"), &net_dev_with(&[("tap0", 1, 2)]));
        let v = sample(&mut s, vms());
        assert_eq!(nics(&v["vms"][1]), [nic("tap1", 40, 30)]);
        assert_eq!(net_dev_paths(&s, root), ["proc/4242/net/dev", "proc/5252/net/dev"]);

        // Back in the host's namespace with its tap still found where it looks: seen at the next
        // scan (TAP_RESCAN), and from then on it shares 4242's read again.
        tree.netns(B, HOST_NETNS);
        tree.write(&format!("proc/{PID}/net/dev"), &net_dev_with(&[("tap0", 1, 2), ("tap1", 5, 6)]));
        advance(&clock, TAP_RESCAN.as_secs() - 1);
        assert_eq!(nics(&sample(&mut s, vms())["vms"][1]), [nic("tap1", 40, 30)], "the namespace read last, in between");
        advance(&clock, 1);
        assert_eq!(nics(&sample(&mut s, vms())["vms"][1]), [nic("tap1", 6, 5)]);
        assert_eq!(net_dev_paths(&s, root), ["proc/4242/net/dev"]);

        // A process whose namespace cannot be read shares with nobody and reads its own file.
        std::fs::remove_file(tree.path(&format!("proc/{PID}/ns/net"))).unwrap();
        advance(&clock, TAP_RESCAN.as_secs());
        let v = sample(&mut s, vms());
        assert_eq!(nics(&v["vms"][0]), [nic("tap0", 2, 1)]);
        assert_eq!(nics(&v["vms"][1]), [nic("tap1", 40, 30)]);
        assert_eq!(net_dev_paths(&s, root), ["proc/4242/net/dev", "proc/5252/net/dev"]);
    }

    /// Processes holding a real tap each, as QEMU does, in this machine's network namespace, and one
    /// in a namespace of its own (`unshare --net`). Needs root (TUNSETIFF, unshare); skipped without.
    #[test]
    fn real_processes_of_one_namespace_share_one_read() {
        use std::os::fd::AsRawFd;
        use std::process::{Child, Command};

        /// Kills and reaps the children however the test ends; their taps go with them.
        struct Children(Vec<Child>);
        impl Drop for Children {
            fn drop(&mut self) {
                for c in &mut self.0 {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }

        /// `sleep` holding a new tap `name` as its stdin: the tap lives while the process does.
        fn tap_holder(name: &str) -> Option<Child> {
            let tun = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun").ok()?;
            // SAFETY: all zeros is a valid ifreq.
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            for (d, b) in req.ifr_name.iter_mut().zip(name.bytes()) {
                *d = b as libc::c_char;
            }
            req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
            // SAFETY: a valid fd and a valid ifreq that outlives the call.
            if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
                return None;
            }
            Command::new("sleep").arg("60").stdin(tun).spawn().ok()
        }

        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root for taps and unshare");
            return;
        }
        let tag = std::process::id();
        let (tap_a, tap_b) = (format!("hvt{tag}a"), format!("hvt{tag}b"));
        let mut children = Children(vec![]);
        for name in [&tap_a, &tap_b] {
            match tap_holder(name) {
                Some(c) => children.0.push(c),
                None => {
                    eprintln!("skipped: cannot make tap {name}");
                    return;
                }
            }
        }
        children.0.push(Command::new("unshare").args(["--net", "sleep", "60"]).spawn().unwrap());
        let pids: Vec<u32> = children.0.iter().map(Child::id).collect();
        let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        // unshare(1) is running by now but may not have entered its namespace and exec'd sleep yet.
        let deadline = Instant::now() + Duration::from_secs(5);
        while ns(pids[2]) == ns(std::process::id()) || std::fs::read_to_string(format!("/proc/{}/comm", pids[2])).unwrap_or_default() != "sleep\n" {
            assert!(Instant::now() < deadline, "unshare --net did not get going");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(ns(pids[0]), ns(pids[1]));

        let vms = || vec![qmp_vm_of("a", pids[0]), qmp_vm_of("b", pids[1]), qmp_vm_of("c", pids[2])];
        let files = |of: &[u32]| {
            let mut v: Vec<String> = of.iter().map(|pid| format!("proc/{pid}/net/dev")).collect();
            v.sort();
            v
        };
        let mut s = VmSampler::new(VmConfig::default());
        let v = sample(&mut s, vms());
        let host = crate::procfs::net_dev::parse(&std::fs::read("/proc/net/dev").unwrap()).unwrap();
        for (vm, tap) in [(&v["vms"][0], &tap_a), (&v["vms"][1], &tap_b)] {
            let h = host.iter().find(|d| &d.name == tap).unwrap();
            // A tap that is down counts nothing, on either read.
            assert_eq!(nics(vm), [nic(tap, h.tx_bytes, h.rx_bytes)]);
        }
        assert_eq!(v["vms"][2]["unavailable"]["nics"], NO_TAP_TEXT);
        assert_eq!(net_dev_paths(&s, Path::new("/")), files(&[pids[0], pids[2]]));

        // The first one exits: the second one reads its namespace's file.
        let mut first = children.0.remove(0);
        first.kill().unwrap();
        first.wait().unwrap();
        let v = sample(&mut s, vms());
        assert_eq!(v["vms"][0]["unavailable"]["process"], format!("the QEMU process {} is gone", pids[0]));
        assert_eq!(nics(&v["vms"][1]).len(), 1);
        assert_eq!(nics(&v["vms"][1])[0].0, tap_b);
        assert_eq!(net_dev_paths(&s, Path::new("/")), files(&[pids[1], pids[2]]));
    }

    #[test]
    fn bad_input_is_a_decode_error() {
        let mut s = VmSampler::new(VmConfig::default());
        let e = s.sample_json(br#"{"vms":[{"id":"a"}]}"#).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
        assert!(s.sample_json(br#"{"vms":[]}"#).unwrap().vms.is_empty());
        let c: VmConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, VmConfig::default());
        assert!(serde_json::from_str::<VmConfig>(r#"{"proc_rot":"/x"}"#).is_err());
    }
}
