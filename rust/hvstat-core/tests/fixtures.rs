//! Every parser against every file of every scenario in tests/fixtures/hosts/ (see the README there):
//! each file present must parse, and the result must be plausible on its own and against the other
//! files of the same machine. Scenarios with a known shape (which kernel wrote them) are also checked
//! for what that kernel does and does not write.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use hvstat_core::parse::{i64_of, single_u64, ParseResult};
use hvstat_core::procfs::{diskstats, loadavg, meminfo, mountinfo, net_dev, pressure, stat, uptime, vmstat};
use hvstat_core::sysfs::{hwmon, ksm, thermal};

fn hosts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts")
}

fn scenarios() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(hosts_dir())
        .expect("tests/fixtures/hosts exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Parse `dir/rel` if the file exists; a parse error fails the test with the path, line and message.
fn parse_opt<T>(dir: &Path, rel: &str, parser: impl FnOnce(&[u8]) -> ParseResult<T>) -> Option<T> {
    let path = dir.join(rel);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    match parser(&bytes) {
        Ok(v) => Some(v),
        Err(e) => panic!("{}:{}: {}", path.display(), e.line, e.msg),
    }
}

fn parse_req<T>(dir: &Path, rel: &str, parser: impl FnOnce(&[u8]) -> ParseResult<T>) -> T {
    parse_opt(dir, rel, parser).unwrap_or_else(|| panic!("{}: missing {rel}", dir.display()))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// What one scenario holds, for the per-scenario expectations.
#[derive(Debug)]
struct Host {
    stat: stat::Stat,
    meminfo: meminfo::MemInfo,
    vmstat: vmstat::VmStat,
    disks: Vec<diskstats::DiskStat>,
    nets: Vec<net_dev::NetDev>,
    pressure: BTreeMap<&'static str, pressure::Pressure>,
    ksm: Option<ksm::Ksm>,
    /// zone name -> (type, degrees)
    thermal: BTreeMap<String, (String, f64)>,
    /// hwmon name -> (its name, sorted temp input indices)
    hwmon: BTreeMap<String, (String, Vec<u32>)>,
}

fn check_scenario(dir: &Path) -> Host {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    check_no_unknown_files(dir);

    // /proc/stat
    let st = parse_req(dir, "proc/stat", stat::parse);
    assert!(!st.cpus.is_empty(), "{name}: no cpuN line");
    assert!(st.cpus.windows(2).all(|w| w[0].0 < w[1].0), "{name}: cpu indices not increasing");
    let ticks = |t: &stat::CpuTicks| [t.user, t.nice, t.system, t.idle];
    for (i, sum) in ticks(&st.total).iter().enumerate() {
        // The cpu line also counts offline CPUs, and the kernel sums it before printing the cpuN lines,
        // so these may run a few ticks ahead of it.
        let per: u64 = st.cpus.iter().map(|(_, t)| ticks(t)[i]).sum();
        assert!(per <= sum + 100 * st.cpus.len() as u64, "{name}: cpuN column {i} sums to {per} > cpu {sum}");
    }
    for (_, t) in std::iter::once(&(u32::MAX, st.total)).chain(&st.cpus) {
        assert!(t.guest.unwrap_or(0) <= t.user, "{name}: guest is part of user");
        assert!(t.guest_nice.unwrap_or(0) <= t.nice, "{name}: guest_nice is part of nice");
    }
    assert!(st.boot_time_secs.is_some_and(|b| b > 1_000_000_000), "{name}: btime");
    assert!(st.context_switches.is_some() && st.interrupts.is_some() && st.forks.is_some(), "{name}: counters");

    // /proc/meminfo
    let m = parse_req(dir, "proc/meminfo", meminfo::parse);
    let total = m.mem_total_bytes.unwrap_or(0);
    assert!(total > 0, "{name}: MemTotal");
    assert!(m.mem_free_bytes.unwrap() <= total, "{name}: MemFree > MemTotal");
    if let Some(a) = m.mem_available_bytes {
        assert!(a <= total, "{name}: MemAvailable > MemTotal");
    }
    assert!(m.swap_free_bytes.unwrap() <= m.swap_total_bytes.unwrap(), "{name}: SwapFree > SwapTotal");
    assert!(m.hugepages_free.unwrap() <= m.hugepages_total.unwrap(), "{name}: HugePages_Free > Total");
    // One snapshot of the LRU and slab counters makes these exact (fs/proc/meminfo.c).
    assert_eq!(m.active_bytes, Some(m.active_anon_bytes.unwrap() + m.active_file_bytes.unwrap()), "{name}: Active");
    assert_eq!(m.inactive_bytes, Some(m.inactive_anon_bytes.unwrap() + m.inactive_file_bytes.unwrap()), "{name}");
    assert_eq!(m.slab_bytes, Some(m.s_reclaimable_bytes.unwrap() + m.s_unreclaim_bytes.unwrap()), "{name}: Slab");
    if let (Some(h), Some(n), Some(sz)) = (m.hugetlb_bytes, m.hugepages_total, m.hugepagesize_bytes) {
        assert!(h >= n * sz, "{name}: Hugetlb covers at least the default-size pool");
    }

    // /proc/loadavg, /proc/uptime
    let l = parse_req(dir, "proc/loadavg", loadavg::parse);
    for v in [l.load1, l.load5, l.load15] {
        assert!(v.is_finite() && v >= 0.0, "{name}: load {v}");
    }
    assert!(l.runnable <= l.threads, "{name}: runnable > threads");
    let u = parse_req(dir, "proc/uptime", uptime::parse);
    assert!(u.uptime_secs > 0.0 && u.idle_secs >= 0.0, "{name}: uptime");
    let possible_cpus = st.cpus.last().map(|c| c.0 + 1).unwrap_or(1) as f64;
    assert!(u.idle_secs <= u.uptime_secs * possible_cpus + 1.0, "{name}: more idle than CPU time");

    // /proc/vmstat
    let vm = parse_req(dir, "proc/vmstat", vmstat::parse);
    for (k, v) in [("pgfault", vm.pgfault), ("pgmajfault", vm.pgmajfault), ("pgpgin", vm.pgpgin)] {
        assert!(v.is_some(), "{name}: vmstat {k} missing");
    }
    assert!(vm.pgmajfault <= vm.pgfault, "{name}: more major faults than faults");

    // /proc/diskstats, against /sys/block
    let disks = parse_req(dir, "proc/diskstats", diskstats::parse);
    let disk_names: BTreeSet<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(disk_names.len(), disks.len(), "{name}: duplicate disk");
    for d in &disks {
        let discard = [d.discards_completed, d.discards_merged, d.sectors_discarded, d.discard_time_ms];
        assert!(discard.iter().all(Option::is_some) || discard.iter().all(Option::is_none), "{name}: {}", d.name);
        assert!(d.flushes_completed.is_none() || d.discards_completed.is_some(), "{name}: {}", d.name);
        for p in disks.iter().filter(|p| is_partition_of(&p.name, &d.name) && p.major == d.major) {
            assert!(p.sectors_read <= d.sectors_read, "{name}: {} read more than {}", p.name, d.name);
            assert!(p.sectors_written <= d.sectors_written, "{name}: {} wrote more than {}", p.name, d.name);
        }
    }
    // All rows of one file have the same number of columns.
    assert!(disks.windows(2).all(|w| w[0].flushes_completed.is_some() == w[1].flushes_completed.is_some()));
    assert!(disks.windows(2).all(|w| w[0].discards_completed.is_some() == w[1].discards_completed.is_some()));
    for b in entries(&dir.join("sys/block")) {
        assert!(disk_names.contains(b.as_str()), "{name}: sys/block/{b} not in diskstats");
    }

    // /proc/net/dev, against /sys/class/net
    let nets = parse_req(dir, "proc/net/dev", net_dev::parse);
    let net_names: BTreeSet<&str> = nets.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(net_names.len(), nets.len(), "{name}: duplicate interface");
    assert!(net_names.contains("lo"), "{name}: no lo");
    for i in entries(&dir.join("sys/class/net")) {
        assert!(net_names.contains(i.as_str()), "{name}: sys/class/net/{i} not in net/dev");
    }
    for n in &nets {
        assert!(n.rx_packets <= n.rx_bytes && n.tx_packets <= n.tx_bytes, "{name}: {} packets > bytes", n.name);
    }

    // /proc/pressure/*
    let mut psi = BTreeMap::new();
    for res in ["cpu", "memory", "io"] {
        if let Some(p) = parse_opt(dir, &format!("proc/pressure/{res}"), pressure::parse) {
            for l in std::iter::once(p.some).chain(p.full) {
                for v in [l.avg10, l.avg60, l.avg300] {
                    assert!((0.0..=100.0).contains(&v), "{name}: {res} avg {v}");
                }
            }
            if let Some(f) = p.full {
                assert!(f.total_usec <= p.some.total_usec, "{name}: {res}: full stalls are a subset of some");
            }
            psi.insert(res, p);
        }
    }
    if dir.join("proc/pressure").exists() {
        assert_eq!(psi.len(), 3, "{name}: PSI enabled but not all of cpu, memory, io");
    }

    // mountinfo
    let mounts = parse_req(dir, "proc/self/mountinfo", mountinfo::parse);
    assert!(mounts.iter().any(|m| m.mount_point == "/"), "{name}: no / mount");
    let ids: BTreeSet<u64> = mounts.iter().map(|m| m.mount_id).collect();
    assert_eq!(ids.len(), mounts.len(), "{name}: duplicate mount id");

    // /sys/kernel/mm/ksm
    let ksm_dir = dir.join("sys/kernel/mm/ksm");
    let ksm = ksm_dir.exists().then(|| {
        let get = |f: &str| parse_opt(dir, &format!("sys/kernel/mm/ksm/{f}"), single_u64);
        let k = ksm::Ksm {
            run: get(ksm::FILES[0]),
            pages_shared: get(ksm::FILES[1]),
            pages_sharing: get(ksm::FILES[2]),
            pages_unshared: get(ksm::FILES[3]),
            pages_volatile: get(ksm::FILES[4]),
            full_scans: get(ksm::FILES[5]),
        };
        assert!(matches!(k.run, Some(0..=2)), "{name}: ksm run");
        // general_profit (Linux 6.1+) is signed: the rmap items can cost more than the merging saves.
        parse_opt(dir, "sys/kernel/mm/ksm/general_profit", |b| {
            let t = b.strip_suffix(b"\n").unwrap_or(b);
            i64_of(t).ok_or_else(|| hvstat_core::parse::ParseError::new(1, "not a signed number"))
        });
        k
    });

    // thermal zones
    let mut zones = BTreeMap::new();
    for z in entries(&dir.join("sys/class/thermal")) {
        let ty = parse_req(dir, &format!("sys/class/thermal/{z}/type"), thermal::parse_type);
        // `temp` may be missing: a sensor that is off fails to read and is not recorded.
        if let Some(t) = parse_opt(dir, &format!("sys/class/thermal/{z}/temp"), thermal::parse_temp_celsius) {
            assert!((-60.0..150.0).contains(&t), "{name}: {z} at {t} °C");
            zones.insert(z, (ty, t));
        }
    }

    // hwmon
    let mut hw = BTreeMap::new();
    for h in entries(&dir.join("sys/class/hwmon")) {
        let hname = parse_req(dir, &format!("sys/class/hwmon/{h}/name"), thermal::parse_type);
        let files = entries(&dir.join(format!("sys/class/hwmon/{h}")));
        let mut idx = vec![];
        for f in &files {
            if let Some(i) = hwmon::temp_input_index(f) {
                let t = parse_req(dir, &format!("sys/class/hwmon/{h}/{f}"), thermal::parse_temp_celsius);
                assert!((-60.0..150.0).contains(&t), "{name}: {h}/{f} at {t} °C");
                idx.push(i);
            } else if let Some(base) = f.strip_suffix("_label") {
                parse_req(dir, &format!("sys/class/hwmon/{h}/{f}"), thermal::parse_type);
                assert!(files.contains(&format!("{base}_input")), "{name}: {h}/{f} labels no input");
            } else {
                assert_eq!(f, "name", "{name}: unexpected hwmon file {h}/{f}");
            }
        }
        idx.sort();
        hw.insert(h, (hname, idx));
    }

    Host { stat: st, meminfo: m, vmstat: vm, disks, nets, pressure: psi, ksm, thermal: zones, hwmon: hw }
}

/// `sda1` of `sda`, `nvme0n1p2` of `nvme0n1` (disk names ending in a digit put a `p` before the number).
fn is_partition_of(part: &str, disk: &str) -> bool {
    let Some(rest) = part.strip_prefix(disk) else { return false };
    let rest = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        match rest.strip_prefix('p') {
            Some(r) => r,
            None => return false,
        }
    } else {
        rest
    };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
}

/// Every file under a scenario's `proc/` and `sys/` must be one this test reads (or a .gitkeep / net
/// `device` marker), so a misnamed fixture file cannot go unnoticed. Files beside those two trees
/// (`expected.json`, the golden sample of tests/golden.py) are not kernel files and not checked here.
fn check_no_unknown_files(root: &Path) {
    for top in ["proc", "sys"] {
        let dir = root.join(top);
        if dir.exists() {
            check_tree(root, &dir);
        }
    }
}

fn check_tree(root: &Path, dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            check_tree(root, &p);
            continue;
        }
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        let known = matches!(
            parts.as_slice(),
            ["proc", "stat" | "meminfo" | "loadavg" | "uptime" | "vmstat" | "diskstats"]
                | ["proc", "net", "dev"]
                | ["proc", "pressure", "cpu" | "memory" | "io"]
                | ["proc", "self", "mountinfo"]
                | ["sys", "block", _, ".gitkeep"]
                | ["sys", "class", "net", _, ".gitkeep" | "device"]
                | ["sys", "class", "thermal", _, "type" | "temp"]
                | ["sys", "class", "hwmon", _, _]
                | ["sys", "fs", "cgroup", ..]
                | ["sys", "dev", "block", _, "slaves", _]
                | ["var", "lib" | "log", ..]
                | ["etc", "pve", ..]
                | ["proc", _, "stat" | "status" | "io" | "schedstat" | "cgroup"]
        ) || matches!(parts.as_slice(), ["sys", "kernel", "mm", "ksm", f] if ksm::FILES.contains(f) || *f == "general_profit");
        assert!(known, "{}: unknown fixture file {rel}", root.display());
    }
}

fn host(name: &str) -> Option<Host> {
    let dir = hosts_dir().join(name);
    dir.exists().then(|| check_scenario(&dir))
}

#[test]
fn every_scenario_parses() {
    let all = scenarios();
    assert!(all.len() >= 5, "expected the recorded scenarios, found {all:?}");
    for dir in all {
        check_scenario(&dir);
    }
}

#[test]
fn hosts_readme_names_every_scenario() {
    let readme = fs::read_to_string(hosts_dir().join("README.md")).expect("tests/fixtures/hosts/README.md");
    for dir in scenarios() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(readme.contains(&format!("`{name}`")), "README.md does not describe {name}");
    }
}

#[test]
fn linux_3_10() {
    let Some(h) = host("linux-3.10-old") else { return };
    assert!(h.pressure.is_empty(), "PSI arrived in 4.20");
    assert!(h.stat.total.guest_nice.is_some(), "3.10 writes 10 cpu columns");
    assert_eq!(h.meminfo.mem_available_bytes, None, "MemAvailable arrived in 3.14");
    assert_eq!(h.meminfo.hugetlb_bytes, None, "Hugetlb arrived in 4.16");
    assert_eq!(h.vmstat.oom_kill, None, "oom_kill arrived in 4.13");
    assert!(h.disks.iter().all(|d| d.discards_completed.is_none() && d.flushes_completed.is_none()));
    assert!(h.ksm.is_none() && h.thermal.is_empty() && h.hwmon.is_empty());
}

#[test]
fn linux_4_19() {
    let Some(h) = host("linux-4.19-discard") else { return };
    assert!(h.pressure.is_empty(), "PSI arrived in 4.20");
    assert!(h.disks.iter().all(|d| d.discards_completed.is_some() && d.flushes_completed.is_none()));
    assert!(h.meminfo.mem_available_bytes.is_some() && h.vmstat.oom_kill.is_some());
}

#[test]
fn linux_5_10() {
    let Some(h) = host("linux-5.10-psi-nofull") else { return };
    assert_eq!(h.stat.cpus.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1, 3], "cpu2 is offline");
    assert_eq!(h.pressure["cpu"].full, None, "no cpu full line before 5.13");
    assert!(h.pressure["memory"].full.is_some() && h.pressure["io"].full.is_some());
    assert!(h.disks.iter().all(|d| d.flushes_completed.is_some()), "5.10 writes the 5.5 flush columns");
    assert_eq!(h.hwmon["hwmon1"], ("coretemp".to_string(), vec![1, 2, 3, 5]), "core 2 went with its cpu");
    assert_eq!(h.thermal["thermal_zone1"], ("x86_pkg_temp".to_string(), 41.0));
    assert_eq!(h.ksm.unwrap().run, Some(0));
}

#[test]
fn linux_6_8() {
    let Some(h) = host("linux-6.8-full") else { return };
    for (res, p) in &h.pressure {
        assert!(p.full.is_some(), "{res}: full line since 5.13");
    }
    assert_eq!(h.pressure["cpu"].full, Some(pressure::PsiLine::default()), "system-level cpu full is zero");
    assert!(h.disks.iter().all(|d| d.flushes_completed.is_some()));
    let names: BTreeSet<&str> = h.disks.iter().map(|d| d.name.as_str()).collect();
    for d in ["nvme0n1", "nvme0n1p1", "nvme0n1p3", "dm-0", "loop0", "zram0"] {
        assert!(names.contains(d), "{d}");
    }
    let nets: BTreeSet<&str> = h.nets.iter().map(|n| n.name.as_str()).collect();
    for n in ["eth0", "lo", "tap101i0", "vnet3", "veth1234", "virbr0", "bond0"] {
        assert!(nets.contains(n), "{n}");
    }
    let bond = h.nets.iter().find(|n| n.name == "bond0").unwrap();
    let slaves: u64 = h.nets.iter().filter(|n| n.name == "eth0" || n.name == "eth1").map(|n| n.rx_bytes).sum();
    assert_eq!(bond.rx_bytes, slaves, "bond0 counts what its slaves receive");
    let k = h.ksm.unwrap();
    assert_eq!(k.run, Some(1));
    assert!(k.pages_sharing.unwrap() > k.pages_shared.unwrap());
    assert!(h.meminfo.hugepages_total.unwrap() > h.meminfo.hugepages_free.unwrap(), "a guest uses hugepages");
}

#[test]
fn psi_disabled() {
    let Some(h) = host("psi-disabled") else { return };
    assert!(h.pressure.is_empty());
    assert!(!hosts_dir().join("psi-disabled/proc/pressure").exists(), "psi=0 creates no directory at all");
}

#[test]
fn partition_names() {
    assert!(is_partition_of("sda1", "sda"));
    assert!(is_partition_of("nvme0n1p3", "nvme0n1"));
    assert!(!is_partition_of("nvme0n12", "nvme0n1"));
    assert!(!is_partition_of("dm-10", "dm-1"));
    assert!(!is_partition_of("sda", "sda"));
    assert!(!is_partition_of("sdaa", "sda"));
}
