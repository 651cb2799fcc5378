//! The process sampler: every /proc/<pid> each tick.
//!
//! Per process it reads stat every tick (its field 24 is the resident set: statm, which says the
//! same, is not read) and io when it can have changed: when the process is first seen, when its CPU
//! time moved since the previous tick, and every [`IO_REFRESH_TICKS`] ticks otherwise (staggered by
//! pid, so that each tick reads a share of the idle processes). A process that used no whole clock
//! tick of CPU in an interval shows no I/O for it; whatever it did is counted at its next io read,
//! as a rate over the time since the previous one. stat is kept open (pread at offset 0, as
//! [`crate::read`] explains) for at most `max_kept_open` processes, and io beside it (for idle
//! processes only while the kept fds are under a quarter of the soft RLIMIT_NOFILE), all within half
//! the soft RLIMIT_NOFILE; a process past that budget has its stat (and io when due) opened for
//! each read. The directory listing is one readdir pass with no allocation per entry.
//! A kept fd belongs to one process:
//! once that process is reaped its reads fail with ESRCH even if the pid is reused, so a failed read
//! is retried once through a fresh open, and the start time (stat field 22) tells a reused pid from
//! the same process. The effective uid (status `Uid:`) and the cgroup (for attribution to a
//! container or VM) are read when a process is first seen, after it execs (its comm changes), and
//! every [`IDENT_REREAD`]. A process that vanishes between the directory listing and its read is
//! skipped; one whose stat may not be read (hidepid=1, or a mount option we cannot see) is counted
//! in `host.unreadable`; io that may not be read (it needs ptrace access) is null. Nothing here is
//! fatal: one process's error never fails the tick.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::model::{
    self, by_cpu, Attribution, GuestProcesses, Host, LoadStatus, Previous, ProcessGuestKind, ProcessHost, ProcessMetrics,
    ProcessQuery, ProcessSort, ProcessView, ProcessesSample, Rates, RawProcess, Share, StatusRule, Sums, UserMetrics,
};
use super::passwd::UserNames;
use crate::cgroup::discover::classify;
use crate::filter::Glob;
use crate::parse::name_of;
use crate::host;
use crate::procfs::{meminfo, pid, stat, uptime};
use crate::rate::percent;
use crate::read::{self, FileReader, Shape};
use crate::vm::process::pick_cgroup_path;

/// How often a process's uid and cgroup are read again when nothing (an exec) says they changed:
/// a setuid() without exec, a process moved to another cgroup.
pub const IDENT_REREAD: Duration = Duration::from_secs(60);

/// A process whose CPU time did not move has its io read every this many ticks (a minute at the
/// default 5 s interval); one whose CPU time moved, at every tick.
pub const IO_REFRESH_TICKS: u64 = 12;

/// Thresholds of one named user, overriding the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserThresholds {
    pub cpu_threshold_percent: Option<f64>,
    pub memory_threshold_percent: Option<f64>,
}

/// The `[processes]` settings the core uses (the service's own keys, enabled, interval, top, stay in Python).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    pub proc_root: PathBuf,
    /// The root /etc/passwd is read from.
    pub rootfs: PathBuf,
    /// Users below this uid (system users) are left out of the per-user view; their processes still
    /// count in the host.
    pub min_uid: u32,
    /// Users left out of the per-user view by name.
    pub exclude_users: Vec<String>,
    /// Globs on the command name: such processes are left out of the process list, the users and the
    /// guests; they still count in the host.
    pub ignore_processes: Vec<String>,
    /// How long a user stays over a threshold before it is a persistent heavy user.
    pub persistent_time_secs: f64,
    /// Percent of the host's CPU (all online CPUs = 100).
    pub cpu_threshold_percent: f64,
    /// Percent of MemTotal.
    pub memory_threshold_percent: f64,
    /// Per-user thresholds by user name.
    pub users: BTreeMap<String, UserThresholds>,
    pub status: StatusRule,
    /// At most this many processes get a kept-open stat (and io while they use CPU).
    pub max_kept_open: usize,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            proc_root: "/proc".into(),
            rootfs: "/".into(),
            min_uid: 1000,
            exclude_users: vec!["nobody".into()],
            ignore_processes: Vec::new(),
            persistent_time_secs: 300.0,
            cpu_threshold_percent: 50.0,
            memory_threshold_percent: 50.0,
            users: BTreeMap::new(),
            status: StatusRule::default(),
            max_kept_open: 10_000,
        }
    }
}

impl ProcessConfig {
    /// Every check the config can make alone; the message names the key.
    pub fn validate(&self) -> Result<Vec<Glob>, String> {
        let pct = |k: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("processes.{k}: must be a number >= 0, got {v}"))
            }
        };
        pct("cpu_threshold", self.cpu_threshold_percent)?;
        pct("memory_threshold", self.memory_threshold_percent)?;
        pct("persistent_time", self.persistent_time_secs)?;
        let s = &self.status;
        for (k, v) in [
            ("status.medium_cpu", s.medium_cpu_percent),
            ("status.heavy_cpu", s.heavy_cpu_percent),
            ("status.medium_memory", s.medium_memory_percent),
            ("status.heavy_memory", s.heavy_memory_percent),
        ] {
            pct(k, v)?;
        }
        for (name, t) in &self.users {
            if let Some(v) = t.cpu_threshold_percent {
                pct(&format!("users.{name}.cpu_threshold"), v)?;
            }
            if let Some(v) = t.memory_threshold_percent {
                pct(&format!("users.{name}.memory_threshold"), v)?;
            }
        }
        self.ignore_processes.iter().map(|g| Glob::new(g).map_err(|e| format!("processes.ignore_processes: {e}"))).collect()
    }
}

/// One of a process's files: kept open, or opened for each read past the fd budget.
struct PidFile {
    file: Option<File>,
}

enum ReadError {
    Gone,
    Denied,
    Other(io::Error),
}

fn classify_err(e: io::Error) -> ReadError {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH | libc::ENOTDIR) => ReadError::Gone,
        Some(libc::EACCES | libc::EPERM) => ReadError::Denied,
        _ => ReadError::Other(e),
    }
}

impl PidFile {
    const fn new() -> Self {
        PidFile { file: None }
    }

    /// Reads the whole file into `buf` (grown if a read fills it: these are single_open files, so
    /// a read that does not fill the buffer is all of it) and returns its length. The file stays
    /// open after it when `keep` and the process's keep budget ([`read::reserve_kept_fd`]) allow.
    fn read(&mut self, path: impl FnOnce() -> PathBuf, keep: bool, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
        let (file, counted) = match self.file.take() {
            Some(f) => (f, true),
            None => (File::open(path()).map_err(classify_err)?, false),
        };
        let n = loop {
            match file.read_at(buf, 0) {
                Ok(n) if n < buf.len() => break Ok(n),
                Ok(_) if buf.len() < (1 << 20) => {
                    let grown = buf.len() * 2;
                    buf.resize(grown, 0);
                }
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(classify_err(e)),
            }
        };
        if n.is_ok() && keep && (counted || read::reserve_kept_fd()) {
            self.file = Some(file);
        } else if counted {
            read::release_kept_fd();
        }
        n
    }

    fn is_open(&self) -> bool {
        self.file.is_some()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // An open PidFile always holds one fd of the keep budget.
        if self.file.is_some() {
            read::release_kept_fd();
        }
    }
}

/// The uid and cgroup of a process, and when they were read.
struct Ident {
    uid: Option<u32>,
    cgroup: Option<Arc<str>>,
    guest: Option<Arc<Attribution>>,
    read_at: Instant,
}

/// Reads a process's effective uid (status) and cgroup, and the guest that cgroup puts it in.
fn read_ident(root: &Path, pid_: u32, now: Instant) -> Ident {
    let dir = pid_path(root, pid_, "");
    let uid = match std::fs::read(dir.join("status")) {
        Ok(b) => pid::parse_status_uids(&b).ok().map(|u| u.effective),
        Err(_) => None,
    };
    let cgroup = std::fs::read(dir.join("cgroup")).ok().and_then(|b| pid::parse_cgroup(&b).ok()).and_then(|l| pick_cgroup_path(&l));
    let guest = cgroup.as_deref().and_then(attribute).map(Arc::new);
    Ident { uid, cgroup: cgroup.map(Arc::from), guest, read_at: now }
}

/// Counts a forgotten process's kept slot and fds out (its fds close as it drops).
fn release(kept: &mut usize, kept_fds: &mut usize, t: Tracked) {
    if t.kept {
        *kept -= 1;
    }
    *kept_fds -= usize::from(t.stat.is_open()) + usize::from(t.io.is_open());
}

/// What every process's read in one tick needs to know.
struct TickContext {
    now: Instant,
    tick: u64,
    /// Seconds since the previous tick (0 on the first).
    dt: f64,
    /// The previous tick's uptime: a process started after it was born within the interval.
    born_after: Option<f64>,
    host: Host,
}

/// One process as a tick's sums and table need it (so that they run without looking it up again).
struct Seen {
    pid: u32,
    uid: Option<u32>,
    state: char,
    guest: Option<Arc<Attribution>>,
    /// Its command name matches `ignore_processes`.
    ignored: bool,
    share: Share,
}

/// What the sampler keeps per pid between ticks.
struct Tracked {
    starttime_ticks: u64,
    stat: PidFile,
    io: PidFile,
    /// io was refused (EACCES): not tried again for this process.
    io_denied: bool,
    /// When io was last read, and in which tick.
    io_read: Option<(Instant, u64)>,
    /// Its stat stays open (within the budget).
    kept: bool,
    ident: Ident,
    previous: Option<RawProcess>,
    /// The tick that last saw it.
    seen: u64,
    /// Its command name matches `ignore_processes` (set when the name changes).
    ignored: bool,
}

impl Tracked {
    fn new(starttime_ticks: u64, kept: bool, ident: Ident) -> Tracked {
        Tracked {
            starttime_ticks,
            stat: PidFile::new(),
            io: PidFile::new(),
            io_denied: false,
            io_read: None,
            kept,
            ident,
            previous: None,
            seen: 0,
            ignored: false,
        }
    }
}

/// Per user across ticks: the CPU counter and how long it has been over a threshold.
#[derive(Default)]
struct UserState {
    cpu_ticks_total: u64,
    over_since: Option<Instant>,
}

pub struct ProcessSampler {
    config: ProcessConfig,
    ignore: Vec<Glob>,
    clock: Box<dyn Fn() -> Instant + Send>,
    hz: u64,
    page_size_bytes: u64,
    btime: Option<u64>,
    meminfo: FileReader,
    uptime: FileReader,
    names: UserNames,
    tracked: HashMap<u32, Tracked, PidHash>,
    users: HashMap<u32, UserState>,
    tick: u64,
    /// Monotonic time and uptime (seconds) of the previous sample.
    previous_at: Option<(Instant, Option<f64>)>,
    /// Processes that may keep their stat open (`max_kept_open`), and fds the sampler may keep
    /// open (half the soft RLIMIT_NOFILE).
    kept_budget: usize,
    fd_budget: usize,
    /// Processes whose stat is kept open, and fds kept open (stat and io).
    kept: usize,
    kept_fds: usize,
    /// Scratch buffer for every read of a tick.
    buf: Vec<u8>,
    /// The latest tick's processes (the ignored ones left out) by CPU, highest first: what
    /// [`ProcessSampler::query`] filters and sorts; each one's reading is its `Tracked::previous`.
    table: Vec<Row>,
    /// The latest tick's timestamp, interval and host.
    view: Option<(f64, Option<f64>, Host)>,
}

/// One process of the latest tick's table.
#[derive(Debug, Clone, Copy)]
struct Row {
    pid: u32,
    rss_bytes: u64,
    rates: Rates,
}

/// Half the soft RLIMIT_NOFILE, in fds: the rest stays for sockets, the other samplers and Python.
fn fd_budget() -> usize {
    read::soft_nofile() / 2
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_else(|e| -e.duration().as_secs_f64())
}

fn sysconf_cpus() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (n > 0).then_some(n as u64)
}

/// The guest a cgroup path belongs to: its nearest ancestor (itself included) that names one.
pub fn attribute(path: &str) -> Option<Attribution> {
    let mut p = path.trim_end_matches('/');
    loop {
        if let Some(g) = classify(p, false) {
            let kind = if g.is_vm() { ProcessGuestKind::Vm } else { ProcessGuestKind::Container };
            return Some(Attribution { kind, runtime: g.runtime, id: g.id });
        }
        p = p.get(..p.rfind('/')?)?;
        if p.is_empty() {
            return None;
        }
    }
}

/// A hasher for pid keys: a multiplicative mix of the one u32 (SipHash's DoS resistance buys
/// nothing for pids the kernel hands out, and costs a tenth of a tick's user time).
#[derive(Default, Clone, Copy)]
pub struct PidHasher(u64);

impl std::hash::Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PidHash = std::hash::BuildHasherDefault<PidHasher>;

/// `<proc_root>/<pid>/<file>` (the directory itself when `file` is empty).
fn pid_path(root: &Path, pid_: u32, file: &str) -> PathBuf {
    let mut p = root.join(pid_.to_string());
    if !file.is_empty() {
        p.push(file);
    }
    p
}

/// A /proc entry's name as a pid: decimal digits only.
fn parse_pid(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 {
        return None;
    }
    name.iter().try_fold(0u32, |acc, &c| if c.is_ascii_digit() { acc.checked_mul(10)?.checked_add(u32::from(c - b'0')) } else { None })
}

impl ProcessSampler {
    pub fn new(config: ProcessConfig) -> Result<Self, String> {
        Self::with_clock(config, Instant::now)
    }

    /// A sampler taking monotonic time from `clock` (tests move it by hand).
    pub fn with_clock(config: ProcessConfig, clock: impl Fn() -> Instant + Send + 'static) -> Result<Self, String> {
        let ignore = config.validate()?;
        let btime = std::fs::read(config.proc_root.join("stat")).ok().and_then(|b| stat::parse(&b).ok()).and_then(|s| s.boot_time_secs);
        Ok(ProcessSampler {
            ignore,
            clock: Box::new(clock),
            hz: host::user_hz(),
            page_size_bytes: host::page_size(),
            btime,
            meminfo: FileReader::new(config.proc_root.join("meminfo"), Shape::Whole),
            uptime: FileReader::new(config.proc_root.join("uptime"), Shape::Whole),
            names: UserNames::new(config.rootfs.join("etc/passwd")),
            tracked: HashMap::default(),
            users: HashMap::new(),
            tick: 0,
            previous_at: None,
            kept_budget: config.max_kept_open,
            fd_budget: fd_budget(),
            kept: 0,
            kept_fds: 0,
            buf: vec![0; 4096],
            table: Vec::new(),
            view: None,
            config,
        })
    }

    pub fn config(&self) -> &ProcessConfig {
        &self.config
    }

    /// Every file the latest sample read (stat of every process, io of those whose io it read),
    /// for benchmarks.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v = vec![self.meminfo.path().to_owned(), self.uptime.path().to_owned()];
        let mut pids: Vec<(&u32, &Tracked)> = self.tracked.iter().collect();
        pids.sort_by_key(|(p, _)| **p);
        for (p, t) in pids {
            let dir = self.config.proc_root.join(p.to_string());
            v.push(dir.join("stat"));
            if t.io_read.is_some_and(|(_, tick)| tick == self.tick) {
                v.push(dir.join("io"));
            }
        }
        v
    }

    /// Fds the sampler keeps open now (stat and io of processes).
    pub fn kept_open_fds(&self) -> usize {
        self.kept_fds
    }

    /// Processes whose files are kept open now.
    pub fn kept_open(&self) -> usize {
        self.kept
    }

    fn user_name(&self, uid: u32) -> String {
        self.names.name(uid).map_or_else(|| uid.to_string(), str::to_owned)
    }

    /// Reads one process and folds it into its tracked state: its rates are taken against the
    /// previous reading, which the new one then replaces. `None`: gone, or its stat unreadable
    /// (counted in `unreadable`).
    fn read_process(&mut self, pid_: u32, cx: &TickContext, unreadable: &mut u64, errors: &mut Vec<String>) -> Option<Seen> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.read_process_with(pid_, cx, unreadable, errors, &mut buf);
        self.buf = buf;
        result
    }

    /// Forgets a process: its kept fds closed and counted out.
    fn forget(&mut self, pid_: u32) -> Option<Seen> {
        if let Some(t) = self.tracked.remove(&pid_) {
            release(&mut self.kept, &mut self.kept_fds, t);
        }
        None
    }

    /// The per-process work of a tick, with one hash lookup for a process already tracked and no
    /// allocation unless it is new, exec'd or due for its uid and cgroup.
    fn read_process_with(&mut self, pid_: u32, cx: &TickContext, unreadable: &mut u64, errors: &mut Vec<String>, buf: &mut Vec<u8>) -> Option<Seen> {
        let root = &self.config.proc_root;
        let stat_path = || pid_path(root, pid_, "stat");
        let mut entry = self.tracked.entry(pid_);
        let (mut stat_file, keep, had) = match &mut entry {
            Entry::Occupied(o) => {
                let t = o.get_mut();
                (std::mem::replace(&mut t.stat, PidFile::new()), t.kept, true)
            }
            Entry::Vacant(_) => (PidFile::new(), self.kept < self.kept_budget && self.kept_fds < self.fd_budget, false),
        };
        if stat_file.is_open() {
            self.kept_fds -= 1;
        }
        // stat, with one retry through a fresh open: a kept fd of a reaped process fails (ESRCH)
        // even when its pid was reused by a process in the listing now.
        let mut r = stat_file.read(stat_path, keep, buf);
        if matches!(r, Err(ReadError::Gone)) && had {
            r = stat_file.read(stat_path, keep, buf);
        }
        let (n, failed) = match r {
            Ok(n) => (n, None),
            Err(ReadError::Gone) => (0, Some(None)),
            Err(ReadError::Denied) => {
                *unreadable += 1;
                (0, Some(None))
            }
            Err(ReadError::Other(e)) => (0, Some(Some(format!("{}: {e}", stat_path().display())))),
        };
        let bytes = buf.get(..n).unwrap_or_default();
        let head = if failed.is_none() { pid::parse_stat_head(bytes) } else { None };
        let Some(pid::StatHead { comm, state, ppid, utime_ticks, stime_ticks, num_threads, starttime_ticks, rss_pages, .. }) = head else {
            let error = match failed {
                Some(e) => e,
                // The one-pass parse refused it: the full parse says why.
                None => Some(match pid::parse_stat(bytes) {
                    Err(e) => crate::Error::parse(&stat_path(), e).to_string(),
                    Ok(_) => format!("{}: fields 1 to 24 unparsable", stat_path().display()),
                }),
            };
            errors.extend(error);
            drop(stat_file);
            if let Entry::Occupied(o) = entry {
                release(&mut self.kept, &mut self.kept_fds, o.remove());
            }
            return None;
        };
        let now = cx.now;
        let t: &mut Tracked = match entry {
            Entry::Occupied(o) => {
                let t = o.into_mut();
                if t.starttime_ticks != starttime_ticks {
                    // The pid was reused: a fresh record in the same kept slot.
                    self.kept_fds -= usize::from(t.io.is_open());
                    *t = Tracked::new(starttime_ticks, t.kept, read_ident(root, pid_, now));
                }
                t
            }
            Entry::Vacant(v) => {
                self.kept += usize::from(keep);
                v.insert(Tracked::new(starttime_ticks, keep, read_ident(root, pid_, now)))
            }
        };
        // The command name: the previous reading's string while it is the same (no allocation);
        // a new one means an exec, and the uid and cgroup are read again.
        let same_comm = t.previous.as_ref().is_some_and(|p| p.comm.as_bytes() == comm);
        if now.saturating_duration_since(t.ident.read_at) >= IDENT_REREAD || (t.previous.is_some() && !same_comm) {
            t.ident = read_ident(root, pid_, now);
        }
        let comm = match t.previous.as_mut() {
            Some(p) if same_comm => std::mem::take(&mut p.comm),
            _ => {
                let c = name_of(comm);
                t.ignored = self.ignore.iter().any(|g| g.matches(&c));
                c
            }
        };
        t.stat = stat_file;
        self.kept_fds += usize::from(t.stat.is_open());
        t.seen = cx.tick;
        let cpu_ticks = utime_ticks.saturating_add(stime_ticks);
        // stat's rss (field 24) is statm's resident: get_mm_rss() of the process, 0 for a zombie or
        // a kernel thread (no memory map).
        let rss_bytes = Some(rss_pages.saturating_mul(self.page_size_bytes));
        // io: read when it may have moved (CPU time moved, or never read) and every
        // IO_REFRESH_TICKS ticks; else the previous reading stands (no I/O in this interval).
        let active = t.previous.as_ref().is_some_and(|p| p.cpu_ticks != cpu_ticks);
        let due = t.io_read.is_none() || active || (u64::from(pid_) + cx.tick) % IO_REFRESH_TICKS == 0;
        let (io, io_secs) = if t.io_denied {
            (None, None)
        } else if !due {
            (t.previous.as_ref().and_then(|p| p.io), None)
        } else {
            // Kept open beside a kept stat: always while the process uses CPU (then it is read every
            // tick), for an idle one while the kept fds are under half the budget (the rest stays
            // for the stat of processes seen later).
            let keep_io = t.kept && (t.io.is_open() || (active && self.kept_fds < self.fd_budget) || self.kept_fds < self.fd_budget / 2);
            let was_open = t.io.is_open();
            let io_path = || pid_path(root, pid_, "io");
            let r = t.io.read(io_path, keep_io, buf);
            self.kept_fds = self.kept_fds + usize::from(t.io.is_open()) - usize::from(was_open);
            let since = t.io_read.map(|(at, _)| now.saturating_duration_since(at).as_secs_f64());
            match r {
                Ok(n) => match pid::parse_io(buf.get(..n).unwrap_or_default()) {
                    Ok(io) => {
                        t.io_read = Some((now, cx.tick));
                        (Some(io), since)
                    }
                    Err(e) => {
                        errors.push(crate::Error::parse(&io_path(), e).to_string());
                        (None, None)
                    }
                },
                Err(ReadError::Denied) => {
                    t.io_denied = true;
                    (None, None)
                }
                Err(ReadError::Gone) => (None, None),
                Err(ReadError::Other(e)) => {
                    errors.push(format!("{}: {e}", io_path().display()));
                    (None, None)
                }
            }
        };
        let raw = RawProcess {
            pid: pid_,
            ppid,
            comm,
            state: char::from(state),
            uid: t.ident.uid,
            starttime_ticks,
            cpu_ticks,
            threads: num_threads,
            rss_bytes,
            io,
            io_secs,
            cgroup: t.ident.cgroup.clone(),
            guest: t.ident.guest.clone(),
        };
        let prev = match &t.previous {
            Some(p) => Previous::Reading(p),
            // Started after the previous tick's uptime: all its counters are this interval's.
            None if cx.born_after.is_some_and(|up| starttime_ticks as f64 / cx.host.hz.max(1) as f64 > up) => Previous::Born,
            None => Previous::None,
        };
        let (rates, deltas) = model::rates(&raw, prev, cx.dt, &cx.host);
        let seen = Seen {
            pid: pid_,
            uid: raw.uid,
            state: raw.state,
            guest: raw.guest.clone(),
            ignored: t.ignored,
            share: Share::of(&raw, rates, deltas),
        };
        t.previous = Some(raw);
        Some(seen)
    }

    /// The pids in /proc now (numeric directory names): one opendir/readdir pass, nothing
    /// allocated per entry.
    fn list_pids(&self) -> io::Result<Vec<u32>> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.config.proc_root.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut out = Vec::with_capacity(self.tracked.len() + 64);
        // SAFETY: a valid C string; each entry is read before the next readdir; the DIR is closed
        // once, after the loop.
        unsafe {
            let d = libc::opendir(path.as_ptr());
            if d.is_null() {
                return Err(io::Error::last_os_error());
            }
            loop {
                let e = libc::readdir(d);
                if e.is_null() {
                    break;
                }
                if let Some(p) = parse_pid(std::ffi::CStr::from_ptr((*e).d_name.as_ptr()).to_bytes()) {
                    out.push(p);
                }
            }
            libc::closedir(d);
        }
        Ok(out)
    }

    fn thresholds(&self, name: &str) -> (f64, f64) {
        let u = self.config.users.get(name).copied().unwrap_or_default();
        (
            u.cpu_threshold_percent.unwrap_or(self.config.cpu_threshold_percent),
            u.memory_threshold_percent.unwrap_or(self.config.memory_threshold_percent),
        )
    }

    /// The reported record of one row of the table.
    fn metrics(&self, row: &Row, host: &Host) -> Option<ProcessMetrics> {
        let raw = self.tracked.get(&row.pid)?.previous.as_ref()?;
        Some(model::metrics(raw, &row.rates, host, raw.uid.map(|u| self.user_name(u))))
    }

    /// A sample with every process in full.
    pub fn sample(&mut self) -> ProcessesSample {
        self.sample_top(None)
    }

    /// A sample with the first `top` processes by CPU in full (every one with `None`); the rest
    /// stay in the table [`ProcessSampler::query`] answers from until the next sample.
    pub fn sample_top(&mut self, top: Option<usize>) -> ProcessesSample {
        let mut notes: BTreeMap<String, String> = BTreeMap::new();
        let now = (self.clock)();
        let timestamp = unix_now();
        self.tick += 1;
        if let Err(e) = self.names.refresh() {
            notes.insert("users.user".into(), format!("user names: {e}; uids without a name are shown as numbers"));
        }
        let mem = self.meminfo.parse(meminfo::parse);
        let (memory_total_bytes, memory_used_percent) = match &mem {
            Ok(m) => (m.mem_total_bytes, m.mem_total_bytes.zip(m.mem_available_bytes).and_then(|(t, a)| percent(t.saturating_sub(a) as f64, t as f64))),
            Err(e) => {
                notes.insert("host.memory_total_bytes".into(), e.to_string());
                (None, None)
            }
        };
        let uptime = self.uptime.parse(uptime::parse).ok().map(|u| u.uptime_secs);
        let cpus = if self.config.proc_root == Path::new("/proc") { sysconf_cpus() } else { None };
        let host = Host { hz: self.hz, cpus, memory_total_bytes, btime: self.btime };
        let (dt, born_after) = match self.previous_at {
            Some((at, up)) => (Some(now.saturating_duration_since(at).as_secs_f64()), up),
            None => (None, None),
        };

        let pids = match self.list_pids() {
            Ok(p) => p,
            Err(e) => {
                notes.insert("processes".into(), format!("{}: {e}", self.config.proc_root.display()));
                Vec::new()
            }
        };
        let mut unreadable = 0u64;
        let mut errors = Vec::new();
        let cx = TickContext { now, tick: self.tick, dt: dt.unwrap_or(0.0), born_after, host };
        let mut seen = Vec::with_capacity(pids.len());
        for p in pids {
            if let Some(s) = self.read_process(p, &cx, &mut unreadable, &mut errors) {
                seen.push(s);
            }
        }
        // Vanished processes: dropped with their fds.
        let tick = self.tick;
        let gone: Vec<u32> = self.tracked.iter().filter(|(_, t)| t.seen != tick).map(|(p, _)| *p).collect();
        for p in gone {
            self.forget(p);
        }

        let hz = self.hz.max(1) as f64;
        let mut host_sums = Sums::default();
        let (mut running, mut blocked, mut zombies) = (0u64, 0u64, 0u64);
        let mut per_user: HashMap<u32, Sums, PidHash> = HashMap::default();
        let mut per_guest: HashMap<Arc<Attribution>, Sums> = HashMap::new();
        let mut table: Vec<Row> = std::mem::take(&mut self.table);
        table.clear();
        let excluded: HashSet<&str> = self.config.exclude_users.iter().map(String::as_str).collect();
        // Per uid: whether it is in the per-user view (its name looked up once per tick, not per process).
        let mut in_view: HashMap<u32, bool, PidHash> = HashMap::default();
        for s in &seen {
            host_sums.add(&s.share);
            match s.state {
                'R' => running += 1,
                'D' => blocked += 1,
                'Z' => zombies += 1,
                _ => {}
            }
            if s.ignored {
                continue;
            }
            if let Some(uid) = s.uid {
                let names = &self.names;
                let min_uid = self.config.min_uid;
                let listed = *in_view.entry(uid).or_insert_with(|| {
                    uid >= min_uid
                        && !match names.name(uid) {
                            Some(n) => excluded.contains(n),
                            None => excluded.contains(uid.to_string().as_str()),
                        }
                });
                if listed {
                    per_user.entry(uid).or_default().add(&s.share);
                }
            }
            if let Some(g) = &s.guest {
                per_guest.entry(Arc::clone(g)).or_default().add(&s.share);
            }
            table.push(Row { pid: s.pid, rss_bytes: s.share.rss_bytes.unwrap_or(0), rates: s.share.rates });
        }
        table.sort_unstable_by(|a, b| by_cpu((a.rates.cpu_percent, a.rss_bytes, a.pid), (b.rates.cpu_percent, b.rss_bytes, b.pid)));
        let total = table.len() as u64;
        let keep = top.map_or(table.len(), |n| n.min(table.len()));
        let processes: Vec<ProcessMetrics> = table.get(..keep).unwrap_or_default().iter().filter_map(|row| self.metrics(row, &host)).collect();
        self.table = table;

        let persistent_after = Duration::from_secs_f64(self.config.persistent_time_secs);
        let mut users = Vec::with_capacity(per_user.len());
        for (uid, s) in per_user {
            let name = self.user_name(uid);
            let (cpu_t, mem_t) = self.thresholds(&name);
            let cpu_host = s.cpu_host_percent(&host);
            let mem_pct = s.memory_percent(&host);
            let over = cpu_host.is_some_and(|c| c >= cpu_t) || mem_pct.is_some_and(|m| m >= mem_t);
            let st = self.users.entry(uid).or_default();
            st.cpu_ticks_total += s.cpu_ticks;
            st.over_since = if over { Some(st.over_since.unwrap_or(now)) } else { None };
            let heavy_for = st.over_since.map(|since| now.saturating_duration_since(since));
            users.push(UserMetrics {
                uid,
                user: name,
                processes: s.processes,
                threads: s.threads,
                cpu_percent: s.cpu_percent(),
                cpu_host_percent: cpu_host,
                cpu_seconds_total: st.cpu_ticks_total as f64 / hz,
                rss_bytes: s.rss_bytes,
                memory_percent: mem_pct,
                read_bytes_per_sec: s.read_bytes_per_sec,
                write_bytes_per_sec: s.write_bytes_per_sec,
                io_unreadable_processes: s.io_unreadable,
                persistent_heavy: heavy_for.is_some_and(|d| d >= persistent_after),
                heavy_for_secs: heavy_for.map(|d| d.as_secs_f64()),
                cpu_threshold_percent: cpu_t,
                memory_threshold_percent: mem_t,
            });
        }
        // A user with no process left is no longer over anything.
        let live: HashSet<u32> = users.iter().map(|u| u.uid).collect();
        for (uid, st) in &mut self.users {
            if !live.contains(uid) {
                st.over_since = None;
            }
        }
        users.sort_by(|a, b| by_cpu((a.cpu_percent, a.rss_bytes, a.uid), (b.cpu_percent, b.rss_bytes, b.uid)));

        let mut guests: Vec<GuestProcesses> = per_guest
            .into_iter()
            .map(|(g, s)| GuestProcesses {
                kind: g.kind,
                runtime: g.runtime,
                id: g.id.clone(),
                processes: s.processes,
                threads: s.threads,
                cpu_percent: s.cpu_percent(),
                cpu_host_percent: s.cpu_host_percent(&host),
                rss_bytes: s.rss_bytes,
                memory_percent: s.memory_percent(&host),
                read_bytes_per_sec: s.read_bytes_per_sec,
                write_bytes_per_sec: s.write_bytes_per_sec,
            })
            .collect();
        guests.sort_by(|a, b| by_cpu((a.cpu_percent, a.rss_bytes, 0), (b.cpu_percent, b.rss_bytes, 0)).then(a.id.cmp(&b.id)));

        let host_cpu = host_sums.cpu_host_percent(&host);
        let persistent: Vec<String> = users.iter().filter(|u| u.persistent_heavy).map(|u| u.user.clone()).collect();
        let status: LoadStatus = model::load_status(&self.config.status, host_cpu, memory_used_percent, persistent);

        if dt.is_none() {
            notes.insert("processes.cpu_percent".into(), "first sample: rates need two".into());
        }
        if host.cpus.is_none() {
            notes.insert("host.cpus".into(), "online CPUs are known only for the running kernel's /proc".into());
        }
        if host_sums.io_unreadable > 0 {
            notes.insert(
                "processes.read_bytes_per_sec".into(),
                format!("{} processes' /proc/<pid>/io may not be read (it needs ptrace access: root, or the same user)", host_sums.io_unreadable),
            );
        }
        if unreadable > 0 {
            notes.insert("host.unreadable".into(), format!("{unreadable} processes' stat may not be read (hidepid, or permissions)"));
        }
        if let Some(first) = errors.first() {
            notes.insert("processes".into(), format!("{} read errors, first: {first}", errors.len()));
        }
        debug_assert_eq!(self.kept_fds, self.tracked.values().map(|t| usize::from(t.stat.is_open()) + usize::from(t.io.is_open())).sum::<usize>());
        let kept_open_fds = self.kept_fds as u64;
        self.previous_at = Some((now, uptime));
        self.view = Some((timestamp, dt, host));
        ProcessesSample {
            timestamp,
            interval_secs: dt,
            host: ProcessHost {
                cpus: host.cpus,
                memory_total_bytes,
                memory_used_percent,
                processes: host_sums.processes,
                threads: host_sums.threads,
                running,
                blocked,
                zombies,
                unreadable,
                cpu_percent: host_cpu,
                rss_bytes: host_sums.rss_bytes,
                read_bytes_per_sec: host_sums.read_bytes_per_sec,
                write_bytes_per_sec: host_sums.write_bytes_per_sec,
                io_unreadable_processes: host_sums.io_unreadable,
                kept_open_fds,
            },
            status,
            users,
            guests,
            processes,
            total,
            unavailable: notes,
        }
    }

    /// The latest sample's processes filtered, sorted and cut as `q` asks (an empty view before
    /// the first sample).
    pub fn query(&self, q: &ProcessQuery) -> ProcessView {
        let Some((timestamp, interval_secs, host)) = self.view else {
            return ProcessView { timestamp: 0.0, interval_secs: None, total: 0, processes: Vec::new() };
        };
        let keep = |row: &&Row| -> bool {
            if q.pid.is_some_and(|p| p != row.pid) {
                return false;
            }
            let Some(raw) = self.tracked.get(&row.pid).and_then(|t| t.previous.as_ref()) else {
                return false;
            };
            if q.uid.is_some() && raw.uid != q.uid {
                return false;
            }
            if let Some(user) = &q.user {
                let by_uid = raw.uid.is_some_and(|u| u.to_string() == *user);
                let by_name = raw.uid.is_some_and(|u| self.names.name(u).map_or_else(|| u.to_string() == *user, |n| n == user));
                if !(by_uid || by_name) {
                    return false;
                }
            }
            let guest = |kind: ProcessGuestKind| raw.guest.as_ref().filter(|g| g.kind == kind).map(|g| g.id.as_str());
            if let Some(c) = &q.container {
                let id = guest(ProcessGuestKind::Container);
                let ok = if q.container_prefix { id.is_some_and(|i| i.starts_with(c.as_str())) } else { id == Some(c.as_str()) };
                if !ok {
                    return false;
                }
            }
            if let Some(v) = &q.vm {
                if guest(ProcessGuestKind::Vm) != Some(v.as_str()) {
                    return false;
                }
            }
            if q.vm_pid.is_some() || q.vm_scope.is_some() {
                let in_scope = q.vm_scope.as_deref().is_some_and(|scope| {
                    raw.cgroup.as_deref().is_some_and(|c| c == scope || c.strip_prefix(scope).is_some_and(|rest| rest.starts_with('/')))
                });
                if !(q.vm_pid == Some(row.pid) || in_scope) {
                    return false;
                }
            }
            true
        };
        let mut chosen: Vec<&Row> = self.table.iter().filter(keep).collect();
        let io = |r: &Row| r.rates.read_bytes_per_sec.unwrap_or(0.0) + r.rates.write_bytes_per_sec.unwrap_or(0.0);
        let cpu0 = |r: &Row| r.rates.cpu_percent.unwrap_or(0.0);
        // Stable sorts over the CPU order: ties stay in it (as the service's Python sort did).
        match q.sort {
            ProcessSort::Cpu => {}
            ProcessSort::Memory => chosen.sort_by(|a, b| b.rss_bytes.cmp(&a.rss_bytes).then(cpu0(b).total_cmp(&cpu0(a)))),
            ProcessSort::Io => chosen.sort_by(|a, b| io(b).total_cmp(&io(a)).then(cpu0(b).total_cmp(&cpu0(a)))),
            ProcessSort::Pid => chosen.sort_by_key(|r| r.pid),
        }
        let total = chosen.len() as u64;
        let n = q.limit.map_or(chosen.len(), |l| l.min(chosen.len()));
        let processes = chosen.get(..n).unwrap_or_default().iter().filter_map(|row| self.metrics(row, &host)).collect();
        ProcessView { timestamp, interval_secs, total, processes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribution_walks_up_to_the_guest() {
        let d = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let a = attribute(&format!("/system.slice/docker-{d}.scope/init.scope")).unwrap();
        assert_eq!((a.kind, a.id.as_str()), (ProcessGuestKind::Container, d));
        let a = attribute("/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator").unwrap();
        assert_eq!((a.kind, a.id.as_str()), (ProcessGuestKind::Vm, "qemu-1-vm1"));
        let a = attribute("/qemu.slice/101.scope").unwrap();
        assert_eq!((a.kind, a.id.as_str()), (ProcessGuestKind::Vm, "101"));
        assert_eq!(attribute("/user.slice/user-1000.slice/session-3.scope"), None);
        assert_eq!(attribute("/"), None);
    }

    #[test]
    fn config_checks_name_the_key() {
        let c = ProcessConfig { cpu_threshold_percent: -1.0, ..ProcessConfig::default() };
        assert!(c.validate().unwrap_err().contains("processes.cpu_threshold"));
        let c = ProcessConfig { ignore_processes: vec!["[abc".into()], ..ProcessConfig::default() };
        assert!(c.validate().unwrap_err().contains("ignore_processes"));
    }
}
