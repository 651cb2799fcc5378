//! The container scenarios of tests/fixtures/hosts/ (`cgroup-*`, see the README there): every file under
//! `sys/fs/cgroup` and every `proc/<pid>/` file parses with the parser for its name (v1 or v2 as the
//! scenario's mountinfo says for the hierarchy it sits in), and the values are plausible on their own,
//! against each other and against the host's files (diskstats, the member processes).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hvstat_core::cgroup::{v1, v2, Limit};
use hvstat_core::parse::{single_u64, ParseResult};
use hvstat_core::procfs::{diskstats, mountinfo, pid, pressure};

/// USER_HZ, the unit of the tick counts in /proc/<pid>/stat and cpuacct.stat: 100 on x86, where both
/// scenarios come from (a kernel ABI constant there, whatever CONFIG_HZ is).
const USER_HZ: u64 = 100;

fn hosts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts")
}

fn cgroup_scenarios() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(hosts_dir())
        .expect("tests/fixtures/hosts exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with("cgroup-"))
        .collect();
    v.sort();
    v
}

fn parse<T>(path: &Path, parser: impl FnOnce(&[u8]) -> ParseResult<T>) -> T {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parser(&bytes).unwrap_or_else(|e| panic!("{}:{}: {}", path.display(), e.line, e.msg))
}

/// Which cgroup version a directory of the scenario belongs to, from its mountinfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

fn cgroup_mounts(root: &Path) -> Vec<(String, Version)> {
    let mounts = parse(&root.join("proc/self/mountinfo"), mountinfo::parse);
    let mut v: Vec<(String, Version)> = mounts
        .iter()
        .filter_map(|m| match m.fs_type.as_str() {
            "cgroup" => Some((m.mount_point.clone(), Version::V1)),
            "cgroup2" => Some((m.mount_point.clone(), Version::V2)),
            _ => None,
        })
        .collect();
    // Longest mount point first, so that /sys/fs/cgroup/unified wins over a v2 mount at /sys/fs/cgroup.
    v.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    v
}

/// Everything parsed from one cgroup directory (one container in one hierarchy).
#[derive(Debug, Default)]
struct CgroupDir {
    version: Option<Version>,
    procs: Option<Vec<u32>>,
    tasks: Option<Vec<u32>>,
    // v2
    cpu_stat_v2: Option<v2::CpuStat>,
    cpu_max: Option<v2::CpuMax>,
    memory_current: Option<u64>,
    memory_max: Option<Limit>,
    memory_stat_v2: Option<v2::MemoryStat>,
    memory_events: Option<v2::MemoryEvents>,
    io_stat: Option<Vec<v2::IoStat>>,
    // v1
    cpuacct_stat: Option<v1::CpuacctStat>,
    cpuacct_usage_ns: Option<u64>,
    cpu_stat_v1: Option<v1::CpuStat>,
    cfs_quota: Option<Limit>,
    cfs_period_usec: Option<u64>,
    memory_limit: Option<Limit>,
    memory_usage: Option<u64>,
    memory_max_usage: Option<u64>,
    memsw_usage: Option<u64>,
    memory_stat_v1: Option<v1::MemoryStat>,
    oom_control: Option<v1::OomControl>,
    blkio: BTreeMap<String, Vec<v1::BlkioDevice>>,
    // both
    pids_current: Option<u64>,
    pids_max: Option<Limit>,
    pressure: BTreeMap<String, pressure::Pressure>,
}

/// Files this test knows to be there and that no hvstat parser reads (listed so that a new or misnamed
/// fixture file is noticed): single numbers, checked to be numbers ...
const NOT_READ_NUMBERS: &[&str] = &[
    "cgroup.clone_children",
    "notify_on_release",
    "cgroup.freeze",
    "cpu.idle",
    "cpu.shares",
    "cpu.cfs_burst_us",
    "cpu.rt_period_us",
    "cpu.rt_runtime_us",
    "cpuacct.usage_sys",
    "cpuacct.usage_user",
    "memory.failcnt",
    "memory.kmem.failcnt",
    "memory.kmem.max_usage_in_bytes",
    "memory.kmem.usage_in_bytes",
    "memory.kmem.tcp.failcnt",
    "memory.kmem.tcp.max_usage_in_bytes",
    "memory.kmem.tcp.usage_in_bytes",
    "memory.memsw.failcnt",
    "memory.memsw.max_usage_in_bytes",
    "memory.move_charge_at_immigrate",
    "memory.shown_ram_in_bytes",
    "memory.swappiness",
    "memory.use_hierarchy",
    "pids.peak",
    "blkio.bfq.weight",
];

/// ... and other text, only read.
const NOT_READ_TEXT: &[&str] = &[
    "cpu.stat.local",
    "cpuacct.usage_all",
    "cpuacct.usage_percpu",
    "cpuacct.usage_percpu_sys",
    "cpuacct.usage_percpu_user",
    "memory.kmem.slabinfo",
    "memory.numa_stat",
    "pids.events",
    "blkio.bfq.weight_device",
    "blkio.throttle.read_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.write_iops_device",
    "cgroup.controllers",
    "cgroup.events",
    "cgroup.pressure",
    "cgroup.stat",
    "cgroup.stat.local",
    "cgroup.subtree_control",
    "cgroup.type",
];

fn read_dir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            read_dir_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Parses every file under `sys/fs/cgroup` of a scenario, grouped by directory.
fn cgroup_dirs(root: &Path) -> BTreeMap<PathBuf, CgroupDir> {
    let mounts = cgroup_mounts(root);
    assert!(!mounts.is_empty(), "{}: no cgroup mount in mountinfo", root.display());
    let mut files = Vec::new();
    read_dir_files(&root.join("sys/fs/cgroup"), &mut files);
    files.sort();
    assert!(!files.is_empty());
    let mut dirs: BTreeMap<PathBuf, CgroupDir> = BTreeMap::new();
    for path in files {
        let rel = format!("/{}", path.strip_prefix(root).unwrap().display());
        let version = mounts
            .iter()
            .find(|(m, _)| rel.starts_with(&format!("{m}/")))
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{rel}: not under a cgroup mount of the scenario's mountinfo"));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let d = dirs.entry(path.parent().unwrap().to_owned()).or_default();
        assert!(d.version.is_none_or(|v| v == version));
        d.version = Some(version);
        let p = path.as_path();
        match (version, name.as_str()) {
            (_, "cgroup.procs") => d.procs = Some(parse(p, pid::parse_pid_list)),
            (_, "tasks" | "cgroup.threads") => d.tasks = Some(parse(p, pid::parse_pid_list)),
            (_, "pids.current") => d.pids_current = Some(parse(p, single_u64)),
            // The v1 pids controller writes "max" as v2 does.
            (_, "pids.max") => d.pids_max = Some(parse(p, v2::parse_limit)),
            (_, "cpu.pressure" | "memory.pressure" | "io.pressure") => {
                d.pressure.insert(name.clone(), parse(p, pressure::parse));
            }
            (Version::V2, "cpu.stat") => d.cpu_stat_v2 = Some(parse(p, v2::parse_cpu_stat)),
            (Version::V2, "cpu.max") => d.cpu_max = Some(parse(p, v2::parse_cpu_max)),
            (Version::V2, "memory.current") => d.memory_current = Some(parse(p, single_u64)),
            (Version::V2, "memory.swap.current") => {
                parse(p, single_u64);
            }
            (Version::V2, "memory.max") => d.memory_max = Some(parse(p, v2::parse_limit)),
            (Version::V2, "memory.high" | "memory.swap.max") => {
                parse(p, v2::parse_limit);
            }
            (Version::V2, "memory.stat") => d.memory_stat_v2 = Some(parse(p, v2::parse_memory_stat)),
            (Version::V2, "memory.events") => d.memory_events = Some(parse(p, v2::parse_memory_events)),
            (Version::V2, "io.stat") => d.io_stat = Some(parse(p, v2::parse_io_stat)),
            (Version::V1, "cpuacct.stat") => d.cpuacct_stat = Some(parse(p, v1::parse_cpuacct_stat)),
            (Version::V1, "cpuacct.usage") => d.cpuacct_usage_ns = Some(parse(p, single_u64)),
            (Version::V1, "cpu.stat") => d.cpu_stat_v1 = Some(parse(p, v1::parse_cpu_stat)),
            (Version::V1, "cpu.cfs_quota_us") => d.cfs_quota = Some(parse(p, v1::parse_cfs_quota)),
            (Version::V1, "cpu.cfs_period_us") => d.cfs_period_usec = Some(parse(p, single_u64)),
            (Version::V1, "memory.limit_in_bytes") => d.memory_limit = Some(parse(p, v1::parse_memory_limit)),
            (
                Version::V1,
                "memory.memsw.limit_in_bytes"
                | "memory.soft_limit_in_bytes"
                | "memory.kmem.limit_in_bytes"
                | "memory.kmem.tcp.limit_in_bytes",
            ) => {
                parse(p, v1::parse_memory_limit);
            }
            (Version::V1, "memory.usage_in_bytes") => d.memory_usage = Some(parse(p, single_u64)),
            (Version::V1, "memory.max_usage_in_bytes") => d.memory_max_usage = Some(parse(p, single_u64)),
            (Version::V1, "memory.memsw.usage_in_bytes") => d.memsw_usage = Some(parse(p, single_u64)),
            (Version::V1, "memory.stat") => d.memory_stat_v1 = Some(parse(p, v1::parse_memory_stat)),
            (Version::V1, "memory.oom_control") => d.oom_control = Some(parse(p, v1::parse_oom_control)),
            (Version::V1, f) if f.starts_with("blkio.") && f.contains(".io_service") => {
                d.blkio.insert(name.clone(), parse(p, v1::parse_blkio));
            }
            (_, "cgroup.max.depth" | "cgroup.max.descendants") => {
                parse(p, v2::parse_limit);
            }
            (_, f) if NOT_READ_NUMBERS.contains(&f) => {
                parse(p, single_u64);
            }
            (_, f) if NOT_READ_TEXT.contains(&f) => {
                fs::read_to_string(p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            }
            (v, f) => panic!("{rel}: no parser for {f} ({v:?}) and not in NOT_READ_*"),
        }
    }
    dirs
}

/// A member process's files, from `proc/<pid>/`.
#[derive(Debug)]
struct Member {
    pid: u32,
    stat: pid::PidStat,
    status: pid::PidStatus,
    sched: pid::SchedStat,
    cgroups: Vec<pid::CgroupMembership>,
}

fn members(root: &Path) -> Vec<Member> {
    let mut out = Vec::new();
    for e in fs::read_dir(root.join("proc")).unwrap() {
        let dir = e.unwrap().path();
        let Ok(pid) = dir.file_name().unwrap().to_string_lossy().parse::<u32>() else { continue };
        let mut names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["cgroup", "io", "schedstat", "stat", "status"], "{}", dir.display());
        parse(&dir.join("io"), pid::parse_io);
        out.push(Member {
            pid,
            stat: parse(&dir.join("stat"), pid::parse_stat),
            status: parse(&dir.join("status"), pid::parse_status),
            sched: parse(&dir.join("schedstat"), pid::parse_schedstat),
            cgroups: parse(&dir.join("cgroup"), pid::parse_cgroup),
        });
    }
    out.sort_by_key(|m| m.pid);
    out
}

/// `a` is within `rel` (a fraction) plus `abs` of `b`.
fn close(a: u64, b: u64, rel: f64, abs: u64) -> bool {
    a.abs_diff(b) as f64 <= rel * a.max(b) as f64 + abs as f64
}

fn check_cpu_v2(what: &str, c: &v2::CpuStat, max: Option<&v2::CpuMax>) {
    let usage = c.usage_usec.expect("usage_usec");
    let (user, system) = (c.user_usec.expect("user_usec"), c.system_usec.expect("system_usec"));
    // cputime_adjust() splits the runtime exactly; each part is then rounded to microseconds.
    assert!(close(user + system, usage, 0.0, 2), "{what}: user {user} + system {system} != usage {usage}");
    if let (Some(periods), Some(throttled)) = (c.nr_periods, c.nr_throttled) {
        assert!(throttled <= periods, "{what}: throttled in more periods than there were");
        let max = max.expect("cpu.max beside a cpu.stat with throttling keys");
        assert!(c.throttled_usec.unwrap() <= throttled * max.period_usec, "{what}: throttled longer than its periods");
        if max.quota_usec == Limit::Max {
            assert_eq!(periods, 0, "{what}: no quota, no bandwidth periods");
        }
    }
}

fn check_pressure(what: &str, d: &CgroupDir) {
    for (f, p) in &d.pressure {
        if let Some(full) = p.full {
            assert!(full.total_usec <= p.some.total_usec, "{what}/{f}: full stalls are a subset of some");
        }
    }
}

fn check_pids(what: &str, d: &CgroupDir) {
    if let Some(cur) = d.pids_current {
        // pids.current counts tasks (threads), cgroup.procs lists processes.
        let procs = d.procs.as_ref().expect("cgroup.procs").len() as u64;
        assert!(cur >= procs, "{what}: pids.current {cur} < {procs} processes");
        if let Some(tasks) = &d.tasks {
            assert_eq!(cur, tasks.len() as u64, "{what}: pids.current counts the tasks");
        }
        if let Some(Limit::Value(max)) = d.pids_max {
            assert!(cur <= max, "{what}: pids.current over pids.max");
        }
    }
}

fn check_v2_dir(what: &str, d: &CgroupDir, disks: &[diskstats::DiskStat]) {
    if let Some(c) = &d.cpu_stat_v2 {
        check_cpu_v2(what, c, d.cpu_max.as_ref());
    }
    if let Some(cur) = d.memory_current {
        if let Some(Limit::Value(max)) = d.memory_max {
            assert!(cur <= max, "{what}: memory.current over memory.max");
        }
        let s = d.memory_stat_v2.as_ref().expect("memory.stat beside memory.current");
        let inactive_file = s.inactive_file.unwrap();
        assert!(inactive_file <= cur, "{what}: working set (current - inactive_file) would be negative");
        let (anon, file, kernel, sock) = (s.anon.unwrap(), s.file.unwrap(), s.kernel.unwrap(), s.sock.unwrap());
        // memory.current is the page counter; the stats are flushed per CPU batch: close, not equal.
        assert!(
            close(anon + file + kernel + sock, cur, 0.02, 1 << 20),
            "{what}: memory.stat does not add up to memory.current"
        );
        assert!(s.slab.unwrap() <= kernel && s.kernel_stack.unwrap() <= kernel, "{what}: parts of kernel memory");
        assert!(s.anon_thp.unwrap() <= anon && s.shmem.unwrap() <= file && s.file_mapped.unwrap() <= file);
        let lru = s.active_anon.unwrap() + s.inactive_anon.unwrap() + s.active_file.unwrap() + inactive_file;
        assert!(close(lru + s.unevictable.unwrap(), anon + file, 0.02, 1 << 20), "{what}: LRU lists vs anon + file");
        assert!(s.pgmajfault.unwrap() <= s.pgfault.unwrap());
        let e = d.memory_events.as_ref().expect("memory.events");
        assert!(e.oom.unwrap() <= e.max.unwrap(), "{what}: an OOM follows hitting memory.max");
        if e.oom_kill.unwrap() > 0 {
            assert!(matches!(d.memory_max, Some(Limit::Value(_))), "{what}: OOM kills without a limit");
        }
    }
    if let Some(io) = &d.io_stat {
        for s in io {
            let disk = disks
                .iter()
                .find(|k| (k.major, k.minor) == (s.major, s.minor))
                .unwrap_or_else(|| panic!("{what}: io.stat device {}:{} not in diskstats", s.major, s.minor));
            assert!(s.rbytes >= 512 * s.rios && s.wbytes >= 512 * s.wios, "{what}: I/Os smaller than a sector");
            assert!(s.rbytes <= disk.sectors_read * 512, "{what}: read more than {} did", disk.name);
            assert!(s.wbytes <= disk.sectors_written * 512, "{what}: wrote more than {} did", disk.name);
        }
    }
    check_pids(what, d);
    check_pressure(what, d);
}

fn check_v1_dir(what: &str, d: &CgroupDir, disks: &[diskstats::DiskStat]) {
    if let (Some(s), Some(usage_ns)) = (&d.cpuacct_stat, d.cpuacct_usage_ns) {
        // Ticks against nanoseconds: a few ticks of rounding, and the files were read a moment apart
        // while the workload ran.
        let ticks_ns = (s.user_ticks + s.system_ticks) * (1_000_000_000 / USER_HZ);
        assert!(
            close(ticks_ns, usage_ns, 0.05, 30_000_000),
            "{what}: user+system {ticks_ns} ns vs usage {usage_ns} ns"
        );
    }
    if let Some(c) = &d.cpu_stat_v1 {
        let (periods, throttled) = (c.nr_periods.unwrap(), c.nr_throttled.unwrap());
        assert!(throttled <= periods, "{what}: throttled in more periods than there were");
        let period_ns = d.cfs_period_usec.expect("cpu.cfs_period_us") * 1000;
        assert!(period_ns > 0);
        assert!(c.throttled_time_ns.unwrap() <= throttled * period_ns, "{what}: throttled longer than its periods");
        if d.cfs_quota == Some(Limit::Max) {
            assert_eq!(periods, 0, "{what}: no quota, no bandwidth periods");
        }
    }
    if let Some(usage) = d.memory_usage {
        if let Some(Limit::Value(limit)) = d.memory_limit {
            assert!(usage <= limit, "{what}: usage over the limit");
        }
        assert!(d.memory_max_usage.unwrap() >= usage, "{what}: max_usage below usage");
        assert!(d.memsw_usage.unwrap() >= usage, "{what}: memory+swap below memory");
        let s = d.memory_stat_v1.as_ref().expect("memory.stat");
        let (rss, cache) = (s.total_rss.or(s.rss).unwrap(), s.total_cache.or(s.cache).unwrap());
        assert!(s.total_inactive_file.unwrap() <= usage, "{what}: working set would be negative");
        // usage also counts kernel memory, and the stats lag the counter by per-CPU batches.
        assert!(rss + cache <= usage + usage / 20 + (1 << 20), "{what}: rss + cache beyond usage");
        assert!(s.total_mapped_file.unwrap() <= cache && s.total_shmem.unwrap() <= cache);
        assert!(s.total_pgmajfault.unwrap() <= s.total_pgfault.unwrap());
        assert_eq!(d.oom_control.unwrap().under_oom, Some(false), "{what}");
    }
    for (f, devs) in &d.blkio {
        for dev in devs {
            let disk = disks.iter().find(|k| (k.major, k.minor) == (dev.major, dev.minor));
            assert!(disk.is_some(), "{what}/{f}: device {}:{} not in diskstats", dev.major, dev.minor);
        }
    }
    // Bytes against operations of the same file family: every I/O moves at least a sector.
    for (bytes_file, ops_file) in [
        ("blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced"),
        ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive"),
    ] {
        let (Some(bytes), Some(ops)) = (d.blkio.get(bytes_file), d.blkio.get(ops_file)) else { continue };
        assert_eq!(bytes.len(), ops.len(), "{what}: {bytes_file} and {ops_file} list other devices");
        for (b, o) in bytes.iter().zip(ops) {
            assert_eq!((b.major, b.minor), (o.major, o.minor));
            assert!(b.read >= 512 * o.read && b.write >= 512 * o.write, "{what}: I/Os smaller than a sector");
            assert_eq!(b.discard.is_some(), o.discard.is_some());
        }
    }
    check_pids(what, d);
    check_pressure(what, d);
}

/// A member process against the cgroup directories its /proc/<pid>/cgroup names.
fn check_member(root: &Path, m: &Member, dirs: &BTreeMap<PathBuf, CgroupDir>) {
    let what = format!("{}: pid {}", root.file_name().unwrap().to_string_lossy(), m.pid);
    assert_eq!(m.stat.pid, m.pid, "{what}");
    assert_eq!(m.status.tgid, Some(m.pid), "{what}");
    assert_eq!(m.status.name.as_deref(), Some(m.stat.comm.as_str()), "{what}");
    assert_eq!(m.status.threads, Some(m.stat.num_threads), "{what}");
    // The same resident set in pages (stat) and kB (status), read a moment apart.
    let rss = m.status.vm_rss_bytes.unwrap();
    assert!(close(m.stat.rss_pages * 4096, rss, 0.02, 1 << 20), "{what}: stat rss vs status VmRSS");
    assert!(rss <= m.status.vm_hwm_bytes.unwrap(), "{what}: VmRSS above its high-water mark");
    let parts = m.status.rss_anon_bytes.unwrap() + m.status.rss_file_bytes.unwrap() + m.status.rss_shmem_bytes.unwrap();
    assert_eq!(parts, rss, "{what}: RssAnon + RssFile + RssShmem = VmRSS");
    // schedstat's run time is the same CPU time as utime + stime, in ns rather than ticks.
    let ticks_ns = (m.stat.utime_ticks + m.stat.stime_ticks) * (1_000_000_000 / USER_HZ);
    assert!(
        close(m.sched.run_ns, ticks_ns, 0.05, 50_000_000),
        "{what}: schedstat {} vs ticks {ticks_ns}",
        m.sched.run_ns
    );

    let mounts = cgroup_mounts(root);
    let mut found = 0;
    for c in &m.cgroups {
        // The hierarchy's mount point: by controller for v1 (name=systemd by its name), the cgroup2 mount for v2.
        let mount = mounts.iter().find(|(point, v)| match (c.hierarchy_id, v) {
            (0, Version::V2) => true,
            (0, _) => false,
            (_, Version::V1) => {
                let dir = point.rsplit('/').next().unwrap();
                c.controllers.iter().any(|ctl| ctl == dir || ctl.strip_prefix("name=") == Some(dir))
            }
            _ => false,
        });
        let (point, _) = mount.unwrap_or_else(|| panic!("{what}: no mount for {c:?}"));
        let dir = root.join(point.trim_start_matches('/')).join(c.path.trim_start_matches('/'));
        let Some(d) = dirs.get(&dir) else {
            // The root of a hierarchy the scenario did not record (cpuset, freezer, ...).
            assert_eq!(c.path, "/", "{what}: {} not recorded", dir.display());
            continue;
        };
        found += 1;
        let procs = d.procs.as_ref().expect("cgroup.procs");
        assert!(procs.contains(&m.pid), "{what}: not in {}/cgroup.procs", dir.display());
        if let Some(cur) = d.memory_current.or(d.memory_usage) {
            assert!(rss <= cur + (1 << 20), "{what}: resident beyond its cgroup's memory");
        }
        if let Some(usage) = d.cpu_stat_v2.and_then(|c| c.usage_usec) {
            assert!(ticks_ns / 1000 <= usage + 20_000, "{what}: more CPU time than its cgroup");
        }
    }
    assert!(found > 0, "{what}: none of its cgroups is in the scenario");
}

fn host_disks(root: &Path) -> Vec<diskstats::DiskStat> {
    parse(&root.join("proc/diskstats"), diskstats::parse)
}

#[test]
fn every_cgroup_file_parses_and_is_plausible() {
    let scenarios = cgroup_scenarios();
    assert!(scenarios.len() >= 2, "expected the cgroup scenarios, found {scenarios:?}");
    for root in scenarios {
        let name = root.file_name().unwrap().to_string_lossy().into_owned();
        let dirs = cgroup_dirs(&root);
        let disks = host_disks(&root);
        let mut containers = 0;
        for (dir, d) in &dirs {
            let what = format!("{name}: {}", dir.strip_prefix(&root).unwrap().display());
            match d.version {
                Some(Version::V2) => check_v2_dir(&what, d, &disks),
                Some(Version::V1) => check_v1_dir(&what, d, &disks),
                None => unreachable!(),
            }
            containers += usize::from(d.procs.as_ref().is_some_and(|p| !p.is_empty()));
        }
        assert!(containers >= 2, "{name}: expected container cgroups with processes");
        let members = members(&root);
        assert!(!members.is_empty(), "{name}: no proc/<pid>/ of a member process");
        for m in &members {
            check_member(&root, m, &dirs);
        }
    }
}

/// The recorded hybrid host: v1 controllers in separate hierarchies plus a controller-less v2 tree.
#[test]
fn hybrid_6_18_runc() {
    let root = hosts_dir().join("cgroup-hybrid-6.18-runc");
    if !root.exists() {
        return;
    }
    let dirs = cgroup_dirs(&root);
    let by_hierarchy = |h: &str| -> Vec<&CgroupDir> {
        let prefix = root.join("sys/fs/cgroup").join(h).join("docker");
        dirs.iter().filter(|(p, _)| p.starts_with(&prefix)).map(|(_, d)| d).collect()
    };
    for h in ["cpu", "cpuacct", "memory", "blkio", "pids", "unified"] {
        assert_eq!(by_hierarchy(h).len(), 1, "{h}: one /docker/<id> directory");
    }
    assert!(!root.join("sys/fs/cgroup/cpu,cpuacct").exists(), "cpu and cpuacct are separate here");
    let cpu = by_hierarchy("cpu")[0];
    assert_eq!(cpu.cfs_quota, Some(Limit::Value(50000)));
    assert_eq!(cpu.cfs_period_usec, Some(100000));
    assert!(cpu.cpu_stat_v1.unwrap().nr_throttled.unwrap() > 0, "the busy loop ran into the quota");
    let mem = by_hierarchy("memory")[0];
    assert_eq!(mem.memory_limit, Some(Limit::Value(128 << 20)));
    assert!(mem.memory_stat_v1.unwrap().total_rss.unwrap() >= 64 << 20, "64 MiB touched");
    let blk = by_hierarchy("blkio")[0];
    let bytes = &blk.blkio["blkio.throttle.io_service_bytes"];
    assert_eq!((bytes[0].major, bytes[0].minor), (254, 0));
    assert!(bytes[0].write >= 16 << 20 && bytes[0].read >= 16 << 20, "16 MiB O_DIRECT each way");
    assert!(bytes[0].discard.is_some(), "Discard lines since 4.19");
    assert!(blk.blkio["blkio.bfq.io_service_bytes"].is_empty(), "bfq is not the scheduler: only Total 0");
    assert_eq!(by_hierarchy("pids")[0].pids_max, Some(Limit::Value(64)));
    // The v2 tree has no controllers: only the usage lines of cpu.stat, and no memory or io files.
    let unified = by_hierarchy("unified")[0];
    let c = unified.cpu_stat_v2.unwrap();
    assert!(c.usage_usec.is_some() && c.nr_periods.is_none() && c.nr_bursts.is_none());
    assert!(unified.memory_current.is_none() && unified.io_stat.is_none() && unified.cpu_max.is_none());
    assert_eq!(unified.pressure.len(), 3);
    // Membership: the v1 lines and the v2 line name the same /docker/<id>.
    let m = &members(&root)[0];
    let docker: Vec<_> = m.cgroups.iter().filter(|c| c.path.starts_with("/docker/")).collect();
    assert_eq!(docker.len(), 6, "cpu, cpuacct, memory, blkio, pids and the v2 line");
    assert!(docker.iter().any(|c| c.hierarchy_id == 0 && c.controllers.is_empty()));
}

/// The hand-written pure v2 host: one container with limits, one without.
#[test]
fn v2_6_8_docker_systemd() {
    let root = hosts_dir().join("cgroup-v2-6.8-docker-systemd");
    if !root.exists() {
        return;
    }
    let dirs = cgroup_dirs(&root);
    let scopes: Vec<(&PathBuf, &CgroupDir)> =
        dirs.iter().filter(|(p, _)| p.file_name().unwrap().to_string_lossy().starts_with("docker-")).collect();
    assert_eq!(scopes.len(), 2);
    for (p, d) in &scopes {
        let name = p.file_name().unwrap().to_string_lossy();
        let id = name.strip_prefix("docker-").unwrap().strip_suffix(".scope").unwrap();
        assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        assert_eq!(d.version, Some(Version::V2));
        let c = d.cpu_stat_v2.unwrap();
        assert!(c.nr_periods.is_some() && c.nr_bursts.is_some(), "cpu controller keys, bursts since 5.14");
        assert!(d.memory_stat_v2.unwrap().kernel.is_some(), "kernel since 5.18");
    }
    let limited = scopes.iter().find(|(_, d)| d.memory_max != Some(Limit::Max)).expect("a container with limits").1;
    assert_eq!(limited.cpu_max, Some(v2::CpuMax { quota_usec: Limit::Value(50000), period_usec: 100000 }));
    assert_eq!(limited.memory_max, Some(Limit::Value(512 << 20)));
    assert!(limited.cpu_stat_v2.unwrap().nr_throttled.unwrap() > 0);
    assert_eq!(limited.memory_events.unwrap().oom_kill, Some(1));
    let free = scopes.iter().find(|(_, d)| d.memory_max == Some(Limit::Max)).expect("a container without").1;
    assert_eq!(free.cpu_max, Some(v2::CpuMax { quota_usec: Limit::Max, period_usec: 100000 }));
    assert_eq!(free.pids_max, Some(Limit::Max));
    for m in members(&root) {
        assert_eq!(m.cgroups.len(), 1, "pure v2: one line");
        assert_eq!((m.cgroups[0].hierarchy_id, m.cgroups[0].controllers.len()), (0, 0));
        assert!(m.stat.guest_time_ticks.is_some(), "52 fields");
    }
}
