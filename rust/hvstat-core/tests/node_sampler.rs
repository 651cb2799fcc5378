//! The node sampler on a tree the test writes and changes between two samples: rates are exact
//! deltas over the interval, resets give null plus a reason, and the selection rules hold.

use std::fs;
use std::path::Path;

use hvstat_core::node::{NodeConfig, NodeSampler};
use serde_json::Value;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn stat(user: u64, idle: u64) -> String {
    format!(
        "cpu  {u} 0 {s} {i} 0 0 0 0 0 0\ncpu0 {u} 0 {s} {i} 0 0 0 0 0 0\nintr 100 1 2\nctxt 5000\nbtime 1700000000\nprocesses 300\nprocs_running 2\nprocs_blocked 0\n",
        u = user,
        s = user / 2,
        i = idle
    )
}

const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

fn net(eth0_rx: u64, tap_rx: u64) -> String {
    format!(
        "{HEADER}    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n  eth0: {eth0_rx} 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n  eth1: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\ntap101i0: {tap_rx} 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n virbr0: 9999 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n"
    )
}

fn diskstats(sda_sectors_read: u64, sda_reads: u64) -> String {
    format!(
        "   8       0 sda {sda_reads} 0 {sda_sectors_read} 100 50 0 800 40 0 120 140 0 0 0 0 0 0\n   8       1 sda1 {sda_reads} 0 {sda_sectors_read} 100 50 0 800 40 0 120 140 0 0 0 0 0 0\n   7       0 loop0 10 0 80 1 0 0 0 0 0 1 1 0 0 0 0 0 0\n 253       0 dm-0 5 0 40 1 5 0 40 1 0 2 2 0 0 0 0 0 0\n"
    )
}

fn tree(root: &Path) {
    write(root, "proc/stat", &stat(1000, 9000));
    write(root, "proc/meminfo", "MemTotal:       16000000 kB\nMemFree:         8000000 kB\nMemAvailable:   12000000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n");
    write(root, "proc/loadavg", "0.50 0.25 0.10 2/300 4242\n");
    write(root, "proc/uptime", "1000.00 1900.00\n");
    write(root, "proc/vmstat", "pgfault 1000\npgmajfault 10\npswpin 0\npswpout 0\n");
    write(root, "proc/diskstats", &diskstats(2000, 100));
    write(root, "proc/net/dev", &net(10_000, 5_000));
    write(root, "proc/self/mountinfo", "");
    for d in ["sda", "loop0", "dm-0"] {
        fs::create_dir_all(root.join("sys/block").join(d)).unwrap();
    }
    for (i, dev) in [("eth0", true), ("eth1", true), ("virbr0", false), ("tap101i0", false), ("lo", false)] {
        fs::create_dir_all(root.join("sys/class/net").join(i)).unwrap();
        if dev {
            write(root, &format!("sys/class/net/{i}/device"), "");
        }
    }
}

fn sampler(root: &Path, tweak: impl FnOnce(&mut NodeConfig)) -> NodeSampler {
    let mut c = NodeConfig { proc_root: root.join("proc"), sys_root: root.join("sys"), rootfs: root.to_owned(), ..Default::default() };
    tweak(&mut c);
    NodeSampler::new(c).unwrap()
}

fn json(s: &mut NodeSampler) -> Value {
    serde_json::to_value(s.sample()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn first_sample_has_no_rates_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let v = json(&mut sampler(dir.path(), |_| {}));
    assert!(v["cpu_usage"].is_null());
    assert!(v["interval_secs"].is_null());
    assert!(v["disks"][0]["read_bytes_per_sec"].is_null());
    assert!(v["unavailable"]["rates"].as_str().unwrap().contains("first sample"));
    // Levels are known at once.
    assert_eq!(v["memory_usage"], 25.0);
    assert_eq!(v["load_average_5m"], 0.25);
}

#[test]
fn rates_are_exact_deltas_over_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    let mut s = sampler(root, |_| {});
    s.prime();
    write(root, "proc/stat", &stat(1300, 9100)); // +300 user, +150 system, +100 idle
    write(root, "proc/diskstats", &diskstats(2000 + 4096, 164));
    write(root, "proc/net/dev", &net(10_000 + 123_456, 5_000 + 1_000_000));
    let v = json(&mut s);
    let dt = v["interval_secs"].as_f64().unwrap();
    assert!(dt > 0.0);
    // CPU: busy 450 of 550 ticks.
    assert!(close(v["cpu_usage"].as_f64().unwrap(), 450.0 / 550.0 * 100.0));
    assert!(close(v["cpu"]["per_cpu"][0]["idle"].as_f64().unwrap(), 100.0 / 550.0 * 100.0));
    // Disk: 4096 sectors of 512 bytes, 64 reads.
    let sda = &v["disks"][0];
    assert_eq!(sda["name"], "sda");
    assert!(close(sda["read_bytes_per_sec"].as_f64().unwrap() * dt, 4096.0 * 512.0));
    assert!(close(sda["reads_per_sec"].as_f64().unwrap() * dt, 64.0));
    assert!(close(sda["write_bytes_per_sec"].as_f64().unwrap(), 0.0));
    // Network total: physical eth0 and eth1 only; the tap's megabyte is not in it.
    assert_eq!(v["network"]["interfaces"], serde_json::json!(["eth0", "eth1"]));
    assert!(close(v["network"]["rx_bytes_per_sec"].as_f64().unwrap() * dt, 123_456.0));
    let tap = v["interfaces"].as_array().unwrap().iter().find(|i| i["name"] == "tap101i0").unwrap();
    assert_eq!(tap["kind"], "virtual");
    assert!(close(tap["rx_bytes_per_sec"].as_f64().unwrap() * dt, 1_000_000.0));
    let kinds: Vec<(String, String)> = v["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().into(), i["kind"].as_str().unwrap().into()))
        .collect();
    assert!(kinds.contains(&("lo".into(), "loopback".into())));
    assert!(kinds.contains(&("virbr0".into(), "virtual".into())), "no device link: virtual");
    assert!(v["unavailable"].get("rates").is_none());
}

#[test]
fn partitions_and_excluded_disks_are_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let v = json(&mut sampler(dir.path(), |_| {}));
    let names: Vec<&str> = v["disks"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sda", "dm-0"], "sda1 is a partition, loop0 excluded by default");
}

#[test]
fn a_counter_that_went_down_gives_null_and_a_reason_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    let mut s = sampler(root, |_| {});
    s.prime();
    write(root, "proc/diskstats", &diskstats(10, 1)); // device reset
    write(root, "proc/net/dev", &net(5, 5)); // eth0 counters reset
    let v = json(&mut s);
    assert!(v["disks"][0]["read_bytes_per_sec"].is_null());
    assert!(v["unavailable"]["disks.sda"].as_str().unwrap().contains("went down"));
    assert!(v["network"]["rx_bytes_per_sec"].is_null());
    assert!(v["unavailable"].get("interfaces.eth0").is_some());
    write(root, "proc/diskstats", &diskstats(10 + 8, 2));
    write(root, "proc/net/dev", &net(5 + 100, 5));
    let v = json(&mut s);
    let dt = v["interval_secs"].as_f64().unwrap();
    assert!(close(v["disks"][0]["read_bytes_per_sec"].as_f64().unwrap() * dt, 8.0 * 512.0));
    assert!(close(v["network"]["rx_bytes_per_sec"].as_f64().unwrap() * dt, 100.0));
}

#[test]
fn missing_psi_and_ksm_are_null_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let v = json(&mut sampler(dir.path(), |_| {}));
    assert!(v["pressure"].is_null());
    assert!(v["unavailable"]["pressure"].as_str().unwrap().contains("PSI"));
    assert!(v["ksm"].is_null());
    assert!(v["unavailable"]["ksm"].as_str().unwrap().contains("KSM"));
    assert!(v["swap"]["used_percent"].is_null(), "0 of 0 swap is not 0%");
}

#[test]
fn pressure_without_a_full_line_for_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    write(root, "proc/pressure/cpu", "some avg10=1.50 avg60=0.50 avg300=0.10 total=1000000\n");
    let line = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    write(root, "proc/pressure/memory", line);
    write(root, "proc/pressure/io", line);
    let mut s = sampler(root, |_| {});
    s.prime();
    write(root, "proc/pressure/cpu", "some avg10=1.50 avg60=0.50 avg300=0.10 total=1250000\n");
    let v = json(&mut s);
    let dt = v["interval_secs"].as_f64().unwrap();
    assert_eq!(v["pressure"]["cpu"]["some"]["avg10"], 1.5);
    assert!(v["pressure"]["cpu"]["full"].is_null());
    assert!(v["unavailable"].get("pressure.cpu.full").is_some());
    // 250 ms stalled over dt seconds.
    let expect = (0.25 / dt * 100.0).min(100.0);
    assert!(close(v["pressure"]["cpu"]["some"]["stall_percent"].as_f64().unwrap(), expect));
}

#[test]
fn cardinality_caps_keep_totals_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    let mut s = sampler(root, |c| {
        c.max_interfaces = 1;
        c.max_disks = 1;
    });
    s.prime();
    write(root, "proc/net/dev", &net(10_000 + 1000, 5_000));
    let v = json(&mut s);
    assert_eq!(v["interfaces"].as_array().unwrap().len(), 1);
    assert_eq!(v["disks"].as_array().unwrap().len(), 1);
    assert!(v["unavailable"]["interfaces"].as_str().unwrap().contains("max_interfaces"));
    assert_eq!(v["network"]["interfaces"], serde_json::json!(["eth0", "eth1"]));
}

#[test]
fn a_malformed_file_is_reported_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    write(root, "proc/loadavg", "garbage\n");
    let v = json(&mut sampler(root, |_| {}));
    assert!(v["load_average_1m"].is_null());
    let why = v["unavailable"]["load_average_1m"].as_str().unwrap();
    assert!(why.contains("proc/loadavg"), "{why}");
}

#[test]
fn filesystems_from_mountinfo_with_statvfs_under_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    fs::create_dir_all(root.join("data")).unwrap();
    write(
        root,
        "proc/self/mountinfo",
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n23 22 0:5 / /proc rw - proc proc rw\n24 22 8:2 / /data rw - xfs /dev/sda2 rw\n25 22 8:3 / /gone rw - xfs /dev/sda3 rw\n26 22 0:20 / /run rw - tmpfs tmpfs rw\n",
    );
    let v = json(&mut sampler(root, |_| {}));
    let fss = v["filesystems"].as_array().unwrap();
    let points: Vec<&str> = fss.iter().map(|f| f["mount_point"].as_str().unwrap()).collect();
    assert_eq!(points, ["/", "/data", "/gone"], "proc and tmpfs are excluded by type");
    // "/data" exists under rootfs, so statvfs works; "/gone" does not, so it is null with a reason.
    assert!(fss[1]["size_bytes"].as_u64().unwrap() > 0);
    assert!(fss[2]["size_bytes"].is_null());
    assert!(v["unavailable"].get("filesystems./gone").is_some());
    assert!(v["disk_usage"].as_f64().is_some());
}

#[test]
fn a_mount_hidden_under_an_excluded_one_is_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    fs::create_dir_all(root.join("srv")).unwrap();
    fs::create_dir_all(root.join("data")).unwrap();
    // xfs on /srv, then a tmpfs mounted over it: /srv now shows the tmpfs, which is excluded.
    write(
        root,
        "proc/self/mountinfo",
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n30 22 8:5 / /srv rw - xfs /dev/sda5 rw\n31 30 0:40 / /srv rw - tmpfs tmpfs rw\n32 22 8:6 / /data rw - xfs /dev/sda6 rw\n",
    );
    let v = json(&mut sampler(root, |c| c.max_filesystems = 1));
    let points: Vec<&str> = v["filesystems"].as_array().unwrap().iter().map(|f| f["mount_point"].as_str().unwrap()).collect();
    assert_eq!(points, ["/"], "/srv is a tmpfs now; /data is over the cap");
    assert!(v["unavailable"]["filesystems"].as_str().unwrap().contains("1 more"));
}

#[test]
fn the_host_view_of_pid_1_is_preferred_over_our_own() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    write(root, "proc/1/net/dev", &format!("{HEADER}  eth7: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"));
    let v = json(&mut sampler(root, |_| {}));
    let names: Vec<&str> = v["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["eth7"]);
}

#[test]
fn temperatures_from_thermal_zones_and_hwmon_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    write(root, "sys/class/thermal/thermal_zone0/type", "acpitz\n");
    write(root, "sys/class/thermal/thermal_zone0/temp", "27800\n");
    write(root, "sys/class/hwmon/hwmon0/name", "acpitz\n");
    write(root, "sys/class/hwmon/hwmon0/temp1_input", "27800\n");
    std::os::unix::fs::symlink("../../thermal/thermal_zone0", root.join("sys/class/hwmon/hwmon0/device")).unwrap();
    write(root, "sys/class/hwmon/hwmon1/name", "coretemp\n");
    write(root, "sys/class/hwmon/hwmon1/temp2_input", "-1500\n");
    write(root, "sys/class/hwmon/hwmon1/temp2_label", "Core 0\n");
    write(root, "sys/class/hwmon/hwmon1/temp2_max", "100000\n");
    let v = json(&mut sampler(root, |_| {}));
    assert_eq!(
        v["temperatures"],
        serde_json::json!([
            {"sensor": "thermal_zone0", "kind": "acpitz", "label": null, "celsius": 27.8},
            {"sensor": "hwmon1/temp2", "kind": "coretemp", "label": "Core 0", "celsius": -1.5},
        ])
    );
    assert!(v["unavailable"].get("temperatures").is_none());
}

// --- stacked disks and the disk total ------------------------------------------------------------

/// (major, minor, name, whole device); what the stacked ones sit on is in `stacked_tree`.
const STACK: [(u32, u32, &str, bool); 7] = [
    (8, 0, "sda", true),
    (8, 16, "sdb", true),
    (8, 17, "sdb1", false),
    (9, 0, "md0", true),
    (252, 0, "dm-0", true),
    (230, 0, "zd0", true),
    (259, 0, "nvme0n1", true),
];

/// A diskstats line per device of `STACK`, with the counters of device i scaled by `k[i]`: reads,
/// sectors read, writes and sectors written (20 fields, as since Linux 5.5).
fn stack_diskstats(k: [u64; 7]) -> String {
    STACK
        .iter()
        .zip(k)
        .map(|(&(maj, min, name, _), k)| {
            format!("{maj:4} {min:7} {name} {} 0 {} 10 {} 0 {} 20 0 {} 30 0 0 0 0 0 0\n", 3 * k, 40 * k, 5 * k, 72 * k, k)
        })
        .collect()
}

/// The `tree` host with a stack of devices instead of its disks: dm-0 (LVM) on sda, md0 on sdb1,
/// a zvol, and two disks beneath nothing. `sysfs`: also /sys/dev/block with the slaves links as
/// the kernel makes them (else only /sys/block, as in most fixture trees, and names decide).
fn stacked_tree(root: &Path, sysfs: bool) {
    tree(root);
    write(root, "proc/diskstats", &stack_diskstats([1; 7]));
    for &(maj, min, name, whole) in &STACK {
        if whole {
            fs::create_dir_all(root.join("sys/block").join(name)).unwrap();
        }
        if sysfs {
            fs::create_dir_all(root.join(format!("sys/dev/block/{maj}:{min}/slaves"))).unwrap();
        }
    }
    if sysfs {
        write(root, "sys/dev/block/252:0/slaves/sda", "");
        write(root, "sys/dev/block/9:0/slaves/sdb1", "");
        // A zvol: sysfs lists nothing beneath it, but its I/O lands on the pool's disks.
    }
}

fn rate(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("expected a rate, got {v}"))
}

const RATES: [&str; 4] = ["read_bytes_per_sec", "write_bytes_per_sec", "reads_per_sec", "writes_per_sec"];

#[test]
fn stacked_disks_are_flagged_from_sysfs_or_by_name() {
    for sysfs in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        stacked_tree(dir.path(), sysfs);
        let v = json(&mut sampler(dir.path(), |_| {}));
        let flags: Vec<(&str, bool)> =
            v["disks"].as_array().unwrap().iter().map(|d| (d["name"].as_str().unwrap(), d["stacked"].as_bool().unwrap())).collect();
        assert_eq!(
            flags,
            [("sda", false), ("sdb", false), ("md0", true), ("dm-0", true), ("zd0", true), ("nvme0n1", false)],
            "sysfs: {sysfs}"
        );
    }
}

#[test]
fn the_disk_total_is_the_sum_of_the_disks_that_are_not_stacked() {
    for sysfs in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        stacked_tree(root, sysfs);
        let mut s = sampler(root, |_| {});

        // First sample: which disks are summed is known, the rates are not, and `rates` says why.
        let v = json(&mut s);
        let total = &v["disk_total"];
        assert_eq!(total["disks"], serde_json::json!(["sda", "sdb", "nvme0n1"]));
        for r in RATES {
            assert!(total[r].is_null(), "{r}");
        }
        assert!(v["unavailable"]["rates"].as_str().unwrap().contains("first sample"));
        assert!(v["unavailable"].get("disk_total").is_none());

        // Every device moves, the stacked ones too: the total has only sda, sdb and nvme0n1.
        write(root, "proc/diskstats", &stack_diskstats([3, 5, 4, 100, 200, 300, 7]));
        let v = json(&mut s);
        let dt = rate(&v["interval_secs"]);
        let disks = v["disks"].as_array().unwrap();
        for r in RATES {
            // Summed as a client would, in list order: equal to the last bit.
            let sum: f64 = disks.iter().filter(|d| d["stacked"] == false).map(|d| rate(&d[r])).sum();
            assert_eq!(rate(&v["disk_total"][r]), sum, "{r}");
        }
        // sda +2, sdb +4, nvme0n1 +6 units: 40 sectors of 512 bytes read per unit.
        assert!(close(rate(&v["disk_total"]["read_bytes_per_sec"]) * dt, 12.0 * 40.0 * 512.0));
        assert!(close(rate(&v["disk_total"]["writes_per_sec"]) * dt, 12.0 * 5.0));
        assert!(v["unavailable"].as_object().unwrap().keys().all(|k| !k.starts_with("disk")), "{}", v["unavailable"]);
    }
}

#[test]
fn a_disk_counter_that_went_down_makes_the_total_null_not_negative() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    stacked_tree(root, true);
    let mut s = sampler(root, |_| {});
    write(root, "proc/diskstats", &stack_diskstats([10; 7]));
    s.prime();
    // sdb was reset: all its counters went down, the others moved on.
    write(root, "proc/diskstats", &stack_diskstats([20, 1, 1, 20, 20, 20, 20]));
    let v = json(&mut s);
    for r in RATES {
        assert!(v["disk_total"][r].is_null(), "{r}");
    }
    assert_eq!(v["disk_total"]["disks"], serde_json::json!(["sda", "sdb", "nvme0n1"]));
    assert!(v["unavailable"]["disk_total"].as_str().unwrap().contains("went down"));
    assert!(v["unavailable"]["disks.sdb"].as_str().unwrap().contains("went down"));
    // A stacked device going down does not touch the total.
    write(root, "proc/diskstats", &stack_diskstats([30, 2, 2, 1, 1, 1, 30]));
    let v = json(&mut s);
    let dt = rate(&v["interval_secs"]);
    assert!(close(rate(&v["disk_total"]["reads_per_sec"]) * dt, 3.0 * (10 + 1 + 10) as f64));
    assert!(v["unavailable"].get("disk_total").is_none());
}

#[test]
fn a_disk_that_appeared_makes_the_total_null_for_one_interval() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    stacked_tree(root, false);
    fs::create_dir_all(root.join("sys/block/sdc")).unwrap();
    let mut s = sampler(root, |_| {});
    s.prime();
    let with_sdc = |k: u64| format!("{}   8      32 sdc {k} 0 {k} 1 0 0 0 0 0 1 1 0 0 0 0 0 0\n", stack_diskstats([k; 7]));
    write(root, "proc/diskstats", &with_sdc(2));
    let v = json(&mut s);
    assert_eq!(v["disk_total"]["disks"], serde_json::json!(["sda", "sdb", "nvme0n1", "sdc"]));
    assert!(v["disk_total"]["read_bytes_per_sec"].is_null());
    assert!(v["unavailable"]["disk_total"].as_str().unwrap().contains("appeared"));
    write(root, "proc/diskstats", &with_sdc(3));
    let v = json(&mut s);
    assert!(rate(&v["disk_total"]["read_bytes_per_sec"]) > 0.0);
    assert!(v["unavailable"].get("disk_total").is_none());
}

#[test]
fn disks_beyond_max_disks_still_count_in_the_total() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    stacked_tree(root, true);
    let mut s = sampler(root, |c| c.max_disks = 1);
    s.prime();
    write(root, "proc/diskstats", &stack_diskstats([2, 3, 3, 9, 9, 9, 4]));
    let v = json(&mut s);
    let dt = rate(&v["interval_secs"]);
    assert_eq!(v["disks"].as_array().unwrap().len(), 1);
    assert!(v["unavailable"]["disks"].as_str().unwrap().contains("max_disks"));
    assert_eq!(v["disk_total"]["disks"], serde_json::json!(["sda", "sdb", "nvme0n1"]));
    // sda +1, sdb +2, nvme0n1 +3 units of 3 reads.
    assert!(close(rate(&v["disk_total"]["reads_per_sec"]) * dt, 3.0 * 6.0));
}

#[test]
fn with_no_disk_to_sum_the_total_is_an_empty_sum_as_for_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    stacked_tree(root, true);
    // Only the stacked devices are let through the filter.
    let mut s = sampler(root, |c| c.disk_include = vec!["dm-*".into(), "md*".into()]);
    s.prime();
    write(root, "proc/diskstats", &stack_diskstats([2; 7]));
    let v = json(&mut s);
    assert_eq!(v["disks"].as_array().unwrap().len(), 2);
    assert_eq!(v["disk_total"]["disks"], serde_json::json!([]));
    for r in RATES {
        assert_eq!(v["disk_total"][r], 0.0, "{r}");
    }
    // /proc/diskstats unusable: no total at all, and `disks` says why.
    write(root, "proc/diskstats", "garbage\n");
    let v = json(&mut s);
    assert!(v["disk_total"].is_null());
    assert!(v["unavailable"]["disks"].as_str().unwrap().contains("diskstats"), "{}", v["unavailable"]);
}
