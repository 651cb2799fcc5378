//! The host's side of a VM: its QEMU process in /proc/<pid>. Readers for stat, statm, io, cgroup and
//! net/dev are kept open for as long as the process is the same one (same pid and start time); stat,
//! statm and io are read every tick, cgroup only every [`CGROUP_REREAD`]. The vCPU threads
//! (task/<tid>/{stat,schedstat}) and the process's tap interfaces (fd/ + fdinfo/) are found once and
//! looked for again only when something says they changed. net/dev is the same file for every process
//! of a network namespace: a tick reads it through one of them per namespace ([`NetDevByNamespace`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::host;
use crate::parse::u64_of;
use crate::procfs::fdinfo::{self, TunIff};
use crate::procfs::net_dev::{self, NetDev};
use crate::procfs::pid::{self, CgroupMembership, PidIo, PidStatm};
use crate::read::{FileReader, Shape};

/// The vCPU index in a QEMU vCPU thread's name, `CPU <n>/<accel>` (`CPU 0/TCG`, `CPU 12/KVM`), with or
/// without the trailing newline of /proc/<pid>/task/<tid>/comm. QEMU names its threads so only with
/// `-name ...,debug-threads=on` (libvirt always sets it); single-threaded TCG runs every vCPU in one
/// thread named `ALL CPUs/TCG`, which is not one vCPU's (`None`). The name is cut at 15 bytes
/// (TASK_COMM_LEN), which can shorten the accelerator's name but never the index: QEMU's indices are
/// far below the 10 digits that would reach it.
pub fn parse_vcpu_thread_name(comm: &[u8]) -> Option<u32> {
    let name = comm.strip_suffix(b"\n").unwrap_or(comm);
    let rest = name.strip_prefix(b"CPU ")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (index, accel) = (rest.get(..slash)?, rest.get(slash + 1..)?);
    if accel.is_empty() || !accel.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    u32::try_from(u64_of(index)?).ok()
}

/// The process's cgroup to report (and to join with the containers source): the unified (`0::`) line
/// when there is one and it is not `/` (on a hybrid host a process outside any v2 group shows `/`),
/// else the v1 line of the cpu or cpuacct controller (what libvirt and systemd place a VM by), else
/// the first line.
pub fn pick_cgroup_path(lines: &[CgroupMembership]) -> Option<String> {
    let v2 = lines.iter().find(|l| l.hierarchy_id == 0 && l.controllers.is_empty() && l.path != "/");
    let cpu = || lines.iter().find(|l| l.controllers.iter().any(|c| c == "cpu" || c == "cpuacct"));
    v2.or_else(cpu).or(lines.first()).map(|l| l.path.clone())
}

/// One reading of the QEMU process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessReading {
    pub pid: u32,
    /// Ticks after boot (stat field 22): with the pid, the process's identity.
    pub starttime_ticks: u64,
    /// Unix seconds: boot time + starttime; `None` when /proc/stat's btime could not be read.
    pub started_at: Option<f64>,
    pub threads: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    /// Resident set: /proc/<pid>/statm's resident pages × the page size, the number
    /// /proc/<pid>/status shows as VmRSS.
    pub rss_bytes: Option<u64>,
    /// /proc/<pid>/io (needs ptrace access to the process).
    pub io: Option<PidIo>,
    /// From /proc/<pid>/cgroup as of its latest read (see [`CGROUP_REREAD`]).
    pub cgroup_path: Option<String>,
}

/// What became of the process this tick.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessState {
    /// The observation names no process.
    NoPid,
    /// The pid is gone, or a zombie: the QEMU process has exited.
    Gone(u32),
    /// Its stat could not be read or parsed (the message names the path).
    Error(u32, String),
    Read(ProcessReading),
}

impl ProcessState {
    pub fn reading(&self) -> Option<&ProcessReading> {
        match self {
            ProcessState::Read(r) => Some(r),
            _ => None,
        }
    }
}

/// One vCPU thread's counters (task/<tid>/stat and schedstat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadReading {
    /// utime + stime.
    pub cpu_ns: u64,
    /// schedstat's run-queue wait (run_delay): the host's view of the vCPU's steal.
    pub wait_ns: Option<u64>,
}

/// A tap of the process as the host sees it (its rx is what the guest sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    pub name: String,
    /// `None`: the interface is not in the net/dev of the process's network namespace (it is in another one).
    pub dev: Option<NetDev>,
}

/// Which net/dev a process's taps are looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetDevKey {
    /// The inode of the process's network namespace (/proc/<pid>/ns/net): shared by its processes.
    Netns(u64),
    /// A process whose namespace is unknown (its ns/net link could not be read): its own file.
    Process(u32),
}

/// One tick's parsed /proc/<pid>/net/dev, once per network namespace. /proc/<pid>/net shows the
/// namespace of <pid> (proc_tgid_net_lookup() in fs/proc/proc_net.c), so every process of a
/// namespace has the same net/dev: the first process of a namespace whose taps need it reads it
/// through its kept reader, and the others of that namespace share the result. A read that fails is
/// that process's own error and fills nothing: the next process of the namespace reads its own file
/// (the first one may just have exited). Cleared at the start of every tick.
#[derive(Debug, Default)]
pub struct NetDevByNamespace {
    /// The namespaces read this tick, searched in order: usually one, the host's. Even one per VM
    /// costs a comparison per pair of VMs, far below the 9 µs of a net/dev read.
    parsed: Vec<(NetDevKey, Vec<NetDev>)>,
    /// Every net/dev this tick read (or tried to), in order.
    read: Vec<PathBuf>,
}

impl NetDevByNamespace {
    /// Forget the previous tick's.
    pub fn clear(&mut self) {
        self.parsed.clear();
        self.read.clear();
    }

    /// The files this tick read: one per network namespace, plus any whose read failed and those of
    /// processes whose namespace is unknown.
    pub fn paths(&self) -> &[PathBuf] {
        &self.read
    }

    /// The namespace's parsed net/dev, read through `reader` if no process of it read it this tick.
    fn get(&mut self, key: NetDevKey, reader: &mut FileReader) -> Result<&[NetDev]> {
        let i = match self.parsed.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.read.push(reader.path().to_owned());
                self.parsed.push((key, reader.parse(net_dev::parse)?));
                self.parsed.len() - 1
            }
        };
        Ok(&self.parsed[i].1)
    }
}

/// How often the fd table is scanned for taps even when nothing suggests a change (a NIC hot-plugged
/// with a new tap), in addition to a scan whenever a known tap is missing from net/dev.
pub const TAP_RESCAN: Duration = Duration::from_secs(60);

/// How often /proc/<pid>/cgroup is read again after the process's first tick (it cost 4.2 µs of
/// kernel time per VM and read, bench/README.md "VMs"); in between, the path read last is reported.
pub const CGROUP_REREAD: Duration = Duration::from_secs(60);

struct ThreadFiles {
    stat: FileReader,
    schedstat: FileReader,
}

struct VcpuThreads {
    /// vCPU index -> tid, from the thread names.
    by_index: BTreeMap<u32, u32>,
    /// The process's thread count when the names were read.
    num_threads: u64,
}

struct TapNames {
    names: Vec<String>,
    scanned_at: Instant,
}

/// The cgroup path picked from the latest successful read of /proc/<pid>/cgroup.
struct CgroupRead {
    path: Option<String>,
    read_at: Instant,
}

/// The open readers of one QEMU process (one pid and start time).
pub struct QemuProcess {
    pid: u32,
    dir: PathBuf,
    starttime_ticks: Option<u64>,
    num_threads: Option<u64>,
    stat: FileReader,
    statm: FileReader,
    io: FileReader,
    cgroup: FileReader,
    net_dev: FileReader,
    /// The inode of the process's network namespace, read with the fd table's scans for taps (`None`
    /// before the first, or when ns/net could not be read).
    netns: Option<u64>,
    threads: HashMap<u32, ThreadFiles>,
    vcpu_threads: Option<VcpuThreads>,
    taps: Option<TapNames>,
    /// `None` until cgroup was read successfully (and again after a failed re-read).
    cgroup_read: Option<CgroupRead>,
}

impl QemuProcess {
    pub fn new(proc_root: &Path, pid: u32) -> Self {
        let dir = proc_root.join(pid.to_string());
        let at = |f: &str, shape| FileReader::new(dir.join(f), shape);
        QemuProcess {
            pid,
            stat: at("stat", Shape::Whole),
            statm: at("statm", Shape::Whole),
            io: at("io", Shape::Whole),
            cgroup: at("cgroup", Shape::Whole),
            net_dev: at("net/dev", Shape::Records),
            netns: None,
            dir,
            starttime_ticks: None,
            num_threads: None,
            threads: HashMap::new(),
            vcpu_threads: None,
            taps: None,
            cgroup_read: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Every file a tick reads through this process's kept readers but net/dev. cgroup is not one of
    /// them: it is read on the first tick and then every [`CGROUP_REREAD`] (like the fd table's scans
    /// for taps). net/dev is read through one process per network namespace, which the tick's
    /// [`NetDevByNamespace::paths`] names.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = [&self.stat, &self.statm, &self.io].iter().map(|r| r.path().to_owned()).collect();
        for t in self.threads.values() {
            v.push(t.stat.path().to_owned());
            v.push(t.schedstat.path().to_owned());
        }
        v
    }

    /// The start time of the process these readers were opened for (`None` before the first read).
    pub fn starttime_ticks(&self) -> Option<u64> {
        self.starttime_ticks
    }

    /// Read stat, statm and io, and cgroup when it is due (the first read, then every
    /// [`CGROUP_REREAD`] after `now`'s clock). `Err(Gone)` when the process exited (or is a zombie)
    /// or its pid now belongs to another process than the one these readers were opened for: the
    /// caller starts over with new readers. `errors` gets (field, reason) for the parts that failed.
    pub fn read(
        &mut self,
        hz: u64,
        page_size_bytes: u64,
        btime: Option<u64>,
        now: Instant,
        errors: &mut Vec<(String, String)>,
    ) -> Result<ProcessReading> {
        let stat = self.stat.parse(pid::parse_stat)?;
        if matches!(stat.state, 'Z' | 'X') {
            // Exited, not yet reaped by its parent: nothing of the VM is left in it.
            return Err(Error::Gone { path: self.stat.path().to_owned() });
        }
        match self.starttime_ticks {
            // A kept fd of an exited process fails with ESRCH rather than showing the pid's next
            // owner, but the reader re-opens after an error: a new start time is a new process.
            Some(s) if s != stat.starttime_ticks => return Err(Error::Gone { path: self.stat.path().to_owned() }),
            _ => self.starttime_ticks = Some(stat.starttime_ticks),
        }
        self.num_threads = Some(stat.num_threads);
        let mut r = ProcessReading {
            pid: self.pid,
            starttime_ticks: stat.starttime_ticks,
            started_at: btime.map(|b| b as f64 + stat.starttime_ticks as f64 / hz as f64),
            threads: stat.num_threads,
            user_ns: ticks_to_ns(stat.utime_ticks, hz),
            system_ns: ticks_to_ns(stat.stime_ticks, hz),
            ..Default::default()
        };
        match self.statm.parse(pid::parse_statm).map(|m| rss_bytes(&m, page_size_bytes)) {
            Ok(Ok(bytes)) => r.rss_bytes = Some(bytes),
            Ok(Err(why)) => errors.push(("memory_rss_bytes".into(), format!("{}: {why}", self.statm.path().display()))),
            Err(e) => errors.push(("memory_rss_bytes".into(), e.to_string())),
        }
        match self.io.parse(pid::parse_io) {
            Ok(io) => r.io = Some(io),
            Err(e) => errors.push(("process.read_bytes".into(), e.to_string())),
        }
        // Re-read now and then, not once: a QEMU's cgroup can change after start (libvirt moves it into .../emulator).
        let due = self.cgroup_read.as_ref().is_none_or(|c| now.saturating_duration_since(c.read_at) >= CGROUP_REREAD);
        if due {
            self.cgroup_read = match self.cgroup.parse(pid::parse_cgroup) {
                Ok(lines) => Some(CgroupRead { path: pick_cgroup_path(&lines), read_at: now }),
                Err(e) => {
                    errors.push(("process.cgroup_path".into(), e.to_string()));
                    None
                }
            };
        }
        r.cgroup_path = self.cgroup_read.as_ref().and_then(|c| c.path.clone());
        Ok(r)
    }

    /// The tid of vCPU `index`, from the thread names. The names are read again only when the
    /// process's thread count changed since they were read (QEMU starts and stops worker threads,
    /// and vCPUs can be hot-plugged), or when `stale` (a known vCPU thread vanished).
    pub fn vcpu_tid(&mut self, index: u32, stale: bool) -> Result<Option<u32>> {
        Ok(self.vcpu_tids(stale)?.get(&index).copied())
    }

    /// Every vCPU thread found by name, by index (see [`Self::vcpu_tid`]).
    pub fn vcpu_tids(&mut self, stale: bool) -> Result<&BTreeMap<u32, u32>> {
        let num_threads = self.num_threads;
        let v = match self.vcpu_threads.take().filter(|v| !stale && Some(v.num_threads) == num_threads) {
            Some(v) => v,
            None => VcpuThreads { by_index: scan_vcpu_threads(&self.dir.join("task"))?, num_threads: num_threads.unwrap_or(0) },
        };
        Ok(&self.vcpu_threads.insert(v).by_index)
    }

    /// Read one thread's CPU time and run-queue wait, keeping its readers open. `Err(Gone)` when the
    /// thread is not (or no longer) one of this process's.
    pub fn read_thread(&mut self, tid: u32, hz: u64, errors: &mut Vec<(String, String)>, field: &str) -> Result<ThreadReading> {
        let dir = self.dir.join("task").join(tid.to_string());
        let t = self.threads.entry(tid).or_insert_with(|| ThreadFiles {
            stat: FileReader::new(dir.join("stat"), Shape::Whole),
            schedstat: FileReader::new(dir.join("schedstat"), Shape::Whole),
        });
        let stat = match t.stat.parse(pid::parse_stat) {
            Ok(s) => s,
            Err(e) => {
                if e.is_gone() {
                    self.threads.remove(&tid);
                }
                return Err(e);
            }
        };
        let wait_ns = match t.schedstat.parse(pid::parse_schedstat) {
            Ok(s) => Some(s.wait_ns),
            Err(e) => {
                // No schedstat at all: a kernel without CONFIG_SCHED_INFO.
                errors.push((field.to_owned(), format!("steal unknown: {e}")));
                None
            }
        };
        Ok(ThreadReading { cpu_ns: ticks_to_ns(stat.utime_ticks.saturating_add(stat.stime_ticks), hz), wait_ns })
    }

    /// Close the readers of threads not in `keep`.
    pub fn retain_threads(&mut self, keep: &[u32]) {
        self.threads.retain(|tid, _| keep.contains(tid));
    }

    /// The process's taps with their counters from the net/dev of its network namespace (where a
    /// tap QEMU was given lives), taken from `net_devs` or read into it through this process's reader.
    /// The names come from the fd table (see [`scan_taps`]), scanned again when a known tap is missing
    /// from net/dev or every [`TAP_RESCAN`]; the namespace is read again with each scan.
    pub fn read_taps(&mut self, now: Instant, net_devs: &mut NetDevByNamespace) -> Result<Vec<Tap>> {
        let scheduled = self.taps.as_ref().is_none_or(|t| now.saturating_duration_since(t.scanned_at) >= TAP_RESCAN);
        // Kept between scans: only setns(2) or unshare(2) moves a process to another netns, and QEMU calls neither.
        if scheduled {
            self.read_netns();
        }
        let known = |devs: &[NetDev], names: &[String]| names.iter().all(|n| devs.iter().any(|d| &d.name == n));
        let mut key = self.net_dev_key();
        let missing = !scheduled && !known(net_devs.get(key, &mut self.net_dev)?, self.taps.as_ref().map_or(&[], |t| &t.names));
        if missing {
            self.read_netns();
            key = self.net_dev_key();
        }
        // Already parsed unless the namespace just changed.
        let devs = net_devs.get(key, &mut self.net_dev)?;
        if scheduled || missing {
            self.taps = Some(TapNames { names: scan_taps(&self.dir)?, scanned_at: now });
        }
        let names = self.taps.as_ref().map(|t| t.names.as_slice()).unwrap_or_default();
        Ok(names.iter().map(|n| Tap { name: n.clone(), dev: devs.iter().find(|d| &d.name == n).cloned() }).collect())
    }

    /// Read the process's network namespace again. An open net/dev stays with the namespace it was
    /// opened in (seq_open_net() takes it at open), so a process seen in another one gets a new reader.
    fn read_netns(&mut self) {
        let netns = host::ns_inode(&self.dir.join("ns/net"));
        if self.netns.is_some() && netns.is_some() && netns != self.netns {
            self.net_dev = FileReader::new(self.dir.join("net/dev"), Shape::Records);
        }
        self.netns = netns;
    }

    fn net_dev_key(&self) -> NetDevKey {
        self.netns.map_or(NetDevKey::Process(self.pid), NetDevKey::Netns)
    }
}

/// The resident set in bytes, or why there is none: a process without a memory map (exiting, past
/// exit_mm()) shows seven zeros in statm where status would have no VmRSS line at all.
fn rss_bytes(m: &PidStatm, page_size_bytes: u64) -> std::result::Result<u64, String> {
    if m.size_pages == 0 {
        return Err("all zero: the process has no memory map (it is exiting)".into());
    }
    m.resident_pages
        .checked_mul(page_size_bytes)
        .ok_or_else(|| format!("{} resident pages of {page_size_bytes} bytes overflow", m.resident_pages))
}


fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1))).unwrap_or(u64::MAX)
}

/// vCPU index -> tid for the threads in `task_dir` named `CPU <n>/<accel>`. Threads that exit during
/// the scan are skipped.
fn scan_vcpu_threads(task_dir: &Path) -> Result<BTreeMap<u32, u32>> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(task_dir).map_err(|e| Error::io(task_dir, e))?;
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(comm) = std::fs::read(entry.path().join("comm")) else { continue };
        if let Some(index) = parse_vcpu_thread_name(&comm) {
            out.entry(index).or_insert(tid);
        }
    }
    Ok(out)
}

/// The interfaces of the process's tun/tap fds: every fd in <dir>/fd whose link is /dev/net/tun,
/// named by the `iff:` line of its fdinfo. A multiqueue tap has one fd per queue: each name once,
/// in fd order. Fds closed during the scan are skipped; reading the fd table needs ptrace access.
pub fn scan_taps(dir: &Path) -> Result<Vec<String>> {
    let fd_dir = dir.join("fd");
    let mut fds: Vec<u32> = std::fs::read_dir(&fd_dir)
        .map_err(|e| Error::io(&fd_dir, e))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    fds.sort_unstable();
    let mut names: Vec<String> = Vec::new();
    for fd in fds {
        let is_tun = std::fs::read_link(fd_dir.join(fd.to_string())).is_ok_and(|l| l == Path::new("/dev/net/tun"));
        if !is_tun {
            continue;
        }
        let info = dir.join("fdinfo").join(fd.to_string());
        let text = match std::fs::read(&info).map_err(|e| Error::io(&info, e)) {
            Ok(t) => t,
            // Closed since the link was read.
            Err(e) if e.is_gone() => continue,
            Err(e) => return Err(e),
        };
        if let TunIff::Interface(name) = fdinfo::parse_tun_iff(&text).map_err(|e| Error::parse(&info, e))? {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vcpu_thread_names() {
        // What QEMU 7.2 names them here (TESTBED.md section 2), with comm's newline.
        assert_eq!(parse_vcpu_thread_name(b"CPU 0/TCG\n"), Some(0));
        assert_eq!(parse_vcpu_thread_name(b"CPU 1/TCG"), Some(1));
        assert_eq!(parse_vcpu_thread_name(b"CPU 12/KVM\n"), Some(12));
        // Cut at 15 bytes: the accelerator's name shortened, the index whole.
        assert_eq!(parse_vcpu_thread_name(b"CPU 1234567/KV\n"), Some(1234567));
        for junk in [
            &b"ALL CPUs/TCG\n"[..],
            b"qemu-system-x86\n",
            b"call_rcu",
            b"IO mon_iothread",
            b"worker",
            b"kvm-nx-lpage-re",
            b"CPU /KVM",
            b"CPU 0/",
            b"CPU 0",
            b"CPU x/KVM",
            b"CPU -1/KVM",
            b"CPU 0/K M",
            b"cpu 0/KVM",
            b"CPU  0/KVM",
            b"CPU 4294967296/KVM",
            b"CPU 0/KVM\n\n",
            b"",
        ] {
            assert_eq!(parse_vcpu_thread_name(junk), None, "{:?}", String::from_utf8_lossy(junk));
        }
    }

    fn line(id: u32, controllers: &[&str], path: &str) -> CgroupMembership {
        CgroupMembership { hierarchy_id: id, controllers: controllers.iter().map(|c| c.to_string()).collect(), path: path.into() }
    }

    #[test]
    fn cgroup_path_choice() {
        // libvirt without systemd on the hybrid test machine: v2 and v1 agree.
        let libvirt = [line(4, &["cpu"], "/machine/qemu-3-fz.libvirt-qemu/emulator"), line(0, &[], "/machine/qemu-3-fz.libvirt-qemu/emulator")];
        assert_eq!(pick_cgroup_path(&libvirt).as_deref(), Some("/machine/qemu-3-fz.libvirt-qemu/emulator"));
        // A hybrid host whose v2 tree does not place the process: the cpu hierarchy's path.
        let hybrid = [line(9, &["name=systemd"], "/x.scope"), line(3, &["cpu", "cpuacct"], "/qemu.slice/101.scope"), line(0, &[], "/")];
        assert_eq!(pick_cgroup_path(&hybrid).as_deref(), Some("/qemu.slice/101.scope"));
        // cpuacct alone counts too; then the first line; pure v2 at the root stays "/".
        assert_eq!(pick_cgroup_path(&[line(2, &["memory"], "/m"), line(5, &["cpuacct"], "/a")]).as_deref(), Some("/a"));
        assert_eq!(pick_cgroup_path(&[line(2, &["memory"], "/m"), line(0, &[], "/")]).as_deref(), Some("/m"));
        assert_eq!(pick_cgroup_path(&[line(0, &[], "/")]).as_deref(), Some("/"));
        assert_eq!(pick_cgroup_path(&[]), None);
    }

    #[test]
    fn ticks() {
        assert_eq!(ticks_to_ns(250, 100), 2_500_000_000);
        assert_eq!(ticks_to_ns(u64::MAX, 100), u64::MAX, "saturates, no overflow");
        assert_eq!(ticks_to_ns(7, 0), 7_000_000_000, "a zero rate is taken as 1");
    }

    proptest! {
        #[test]
        fn thread_names_never_panic_and_round_trip(b in proptest::collection::vec(any::<u8>(), 0..24), n in any::<u32>(), accel in "[A-Za-z0-9]{1,6}") {
            let _ = parse_vcpu_thread_name(&b);
            prop_assert_eq!(parse_vcpu_thread_name(format!("CPU {n}/{accel}\n").as_bytes()), Some(n));
        }
    }
}
