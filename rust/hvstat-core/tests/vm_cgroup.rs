//! The VM sampler reads each VM's cgroup itself: the VM scope enclosing its QEMU process's cgroup,
//! on the recorded layouts of `cgroup-v2-6.8-layouts` (libvirt under systemd with QEMU in
//! `machine-qemu\x2d1\x2dweb.scope/libvirt/emulator`, Proxmox's `qemu.slice/100.scope`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hvstat_core::vm::observe::{VmOrigin, VmStatus};
use hvstat_core::vm::{VmConfig, VmObservation, VmObservations, VmSampler};
use serde_json::Value;

const LIBVIRT_SCOPE: &str = "/machine.slice/machine-qemu\\x2d1\\x2dweb.scope";
const PROXMOX_SCOPE: &str = "/qemu.slice/100.scope";

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts").join(name)
}

/// A copy of the scenario that the test may change (symlinks copied as symlinks).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_tree(&src, &dst);
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn sampler(root: &Path) -> VmSampler {
    VmSampler::new(VmConfig { proc_root: root.join("proc"), sys_root: root.join("sys"), rootfs: root.to_owned() })
}

fn vm(id: &str, origin: VmOrigin, pid: u32) -> VmObservation {
    let mut o = VmObservation::new(id, id, origin, VmStatus::Running);
    o.pid = Some(pid);
    o
}

fn sample(s: &mut VmSampler) -> Value {
    // 6008 is in the libvirt machine's emulator sub-cgroup, 6006 in Proxmox's scope itself; 6001
    // is a Podman container's process: a QEMU there would be in no VM scope.
    let vms = vec![vm("web", VmOrigin::Libvirt, 6008), vm("100", VmOrigin::Qmp, 6006), vm("odd", VmOrigin::Qmp, 6001)];
    serde_json::to_value(s.sample(VmObservations { vms })).unwrap()
}

fn read(root: &Path, scope: &str, file: &str) -> String {
    std::fs::read_to_string(root.join("sys/fs/cgroup").join(scope.trim_start_matches('/')).join(file)).unwrap()
}

#[test]
fn each_vm_reads_its_own_scope_in_its_own_tick() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_tree(&scenario("cgroup-v2-6.8-layouts"), root);
    // The recorded tree has no CPU count; 4 online CPUs make the percentages checkable.
    std::fs::create_dir_all(root.join("sys/devices/system/cpu")).unwrap();
    std::fs::write(root.join("sys/devices/system/cpu/online"), "0-3\n").unwrap();
    let mut s = sampler(root);

    let first = sample(&mut s);
    let (web, pve, odd) = (&first["vms"][0], &first["vms"][1], &first["vms"][2]);
    assert_eq!(web["process"]["cgroup_path"], format!("{LIBVIRT_SCOPE}/libvirt/emulator"));
    let c = &web["cgroup"];
    assert_eq!(c["cgroup_path"], LIBVIRT_SCOPE, "the enclosing VM scope, not QEMU's emulator sub-cgroup");
    assert_eq!(c["memory_usage_bytes"].as_u64().unwrap().to_string(), read(root, LIBVIRT_SCOPE, "memory.current").trim());
    assert_eq!(c["memory_limit_bytes"].as_u64().unwrap().to_string(), read(root, LIBVIRT_SCOPE, "memory.max").trim());
    assert_eq!(c["pressure_memory"]["some"]["total_usec"], 412877, "{c}");
    assert!(c["cpu_usage_percent"].is_null(), "first reading: no rate");
    assert_eq!(web["unavailable"]["cgroup.cpu_usage_percent"], "first reading of this cgroup: a rate needs two");
    assert!(c.get("container_id").is_none());
    assert_eq!(pve["cgroup"]["cgroup_path"], PROXMOX_SCOPE);
    assert_eq!(pve["cgroup"]["memory_limit_bytes"].as_u64().unwrap().to_string(), read(root, PROXMOX_SCOPE, "memory.max").trim());
    assert!(odd["cgroup"].is_null());
    let why = odd["unavailable"]["cgroup"].as_str().unwrap();
    assert!(why.starts_with("the QEMU process's cgroup /machine.slice/libpod-") && why.contains("is not in a VM scope"), "{why}");

    // The files a tick reads: the two scopes' CPU, memory and pressure, and nothing of the
    // emulator sub-cgroup, nor of any container.
    let cgroup_files: Vec<String> = s
        .paths()
        .iter()
        .filter_map(|p| p.strip_prefix(root.join("sys/fs/cgroup")).ok().map(|p| p.display().to_string()))
        .collect();
    for scope in [LIBVIRT_SCOPE, PROXMOX_SCOPE] {
        let scope = scope.trim_start_matches('/');
        let mut mine: Vec<&str> = cgroup_files.iter().filter_map(|p| p.strip_prefix(scope)).collect();
        mine.sort_unstable();
        assert_eq!(mine, ["/cpu.pressure", "/cpu.stat", "/io.pressure", "/memory.current", "/memory.max", "/memory.pressure"], "{cgroup_files:?}");
    }
    assert_eq!(cgroup_files.len(), 12, "{cgroup_files:?}");

    // 1 s of CPU time in the libvirt scope since: its share of the 4 CPUs over the interval.
    let cpu_stat = read(root, LIBVIRT_SCOPE, "cpu.stat").replace("usage_usec 48211847", "usage_usec 49211847");
    std::fs::write(root.join("sys/fs/cgroup").join(LIBVIRT_SCOPE.trim_start_matches('/')).join("cpu.stat"), cpu_stat).unwrap();
    let before = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let second = sample(&mut s);
    let longest = before.elapsed().as_secs_f64() + 0.05;
    let pct = second["vms"][0]["cgroup"]["cpu_usage_percent"].as_f64().unwrap();
    // 1 s of CPU over an interval of dt seconds on 4 CPUs is 25/dt percent; dt is at least the
    // sleep and at most the time around it.
    assert!(pct <= 25.0 / 0.2 && pct >= 25.0 / longest, "{pct}");
    assert_eq!(second["vms"][1]["cgroup"]["cpu_usage_percent"], 0.0, "Proxmox's scope did not move");
    assert!(second["vms"][0]["unavailable"].get("cgroup.cpu_usage_percent").is_none());
}

#[test]
fn a_restarted_qemu_starts_its_cgroup_rates_over() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_tree(&scenario("cgroup-v2-6.8-layouts"), root);
    let mut s = sampler(root);
    let vms = || VmObservations { vms: vec![vm("web", VmOrigin::Libvirt, 6008)] };
    s.sample(vms());
    let v = serde_json::to_value(s.sample(vms())).unwrap();
    assert_eq!(v["vms"][0]["unavailable"]["cgroup.cpu_usage_percent"], "the number of online CPUs of the host is unknown", "no sys/devices/system/cpu/online in this tree");
    // The same pid with another start time: another QEMU (the VM restarted), in the same scope. Its
    // cgroup is read afresh: no rate across the two processes.
    let stat = std::fs::read_to_string(root.join("proc/6008/stat")).unwrap().replace(" 5820377 ", " 5820999 ");
    std::fs::write(root.join("proc/6008/stat"), stat).unwrap();
    let v = serde_json::to_value(s.sample(vms())).unwrap();
    assert_eq!(v["vms"][0]["cgroup"]["cgroup_path"], LIBVIRT_SCOPE);
    assert_eq!(v["vms"][0]["unavailable"]["cgroup.cpu_usage_percent"], "first reading of this cgroup: a rate needs two");
}

#[test]
fn without_cgroup_mounts_a_vm_has_no_cgroup_and_says_why() {
    let root = scenario("linux-6.8-full");
    let mut s = sampler(&root);
    let mut o = vm("web", VmOrigin::Qmp, 1);
    o.pid = Some(1);
    let v = serde_json::to_value(s.sample(VmObservations { vms: vec![o] })).unwrap();
    assert!(v["vms"][0]["cgroup"].is_null());
    assert!(v["vms"][0]["unavailable"]["cgroup"].is_string(), "{}", v["vms"][0]["unavailable"]);
}
