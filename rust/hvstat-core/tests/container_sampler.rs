//! The container sampler on the recorded cgroup trees: discovery, the choice of files per layout,
//! and values that must equal what the fixture files say.

use std::path::PathBuf;

use hvstat_core::cgroup::sampler::{ContainerConfig, ContainerSampler};
use serde_json::Value;

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts").join(name)
}

fn sampler(name: &str) -> ContainerSampler {
    let root = scenario(name);
    ContainerSampler::new(ContainerConfig {
        proc_root: root.join("proc"),
        sys_root: root.join("sys"),
        rootfs: root.clone(),
        ..Default::default()
    })
}

fn sample(s: &mut ContainerSampler) -> Value {
    serde_json::to_value(s.sample()).unwrap()
}

fn by_id<'a>(v: &'a Value, prefix: &str) -> &'a Value {
    v["containers"].as_array().unwrap().iter().find(|c| c["id"].as_str().unwrap().starts_with(prefix)).unwrap()
}

#[test]
fn pure_v2_docker_with_the_systemd_driver() {
    let mut s = sampler("cgroup-v2-6.8-docker-systemd");
    let first = sample(&mut s);
    assert_eq!(first["containers"].as_array().unwrap().len(), 2);
    assert_eq!(first["appeared"].as_array().unwrap().len(), 2);
    let c = by_id(&first, "8dfebddde31c");
    assert!(c["cpu_cores"].is_null(), "first sample: no rate");
    assert!(c["unavailable"]["rates"].is_string());

    let v = sample(&mut s);
    assert!(v["appeared"].as_array().unwrap().is_empty());
    let c = by_id(&v, "8dfebddde31c");
    assert_eq!(c["runtime"], "docker");
    assert_eq!(c["name"], "8dfebddde31c", "no docker metadata in the fixture: the short id");
    assert_eq!(c["state"], "running");
    assert_eq!(c["processes"], 3);
    assert_eq!(c["cpu_usage_secs_total"], 48.211847);
    assert_eq!(c["cpu_user_secs_total"], 36.911219);
    assert_eq!(c["cpu_limit_cores"], 0.5);
    assert_eq!(c["cpu_cores"], 0.0, "the files did not change between the two samples");
    assert_eq!(c["memory_usage_bytes"], 155189248u64);
    assert_eq!(c["memory_limit_bytes"], 536870912u64);
    assert_eq!(c["memory_working_set_bytes"], 155189248u64 - 30408704);
    assert_eq!(c["pids_max"], 1024);
    // dm-0 (252:0) sits on nvme0n1: its I/O is nvme0n1's too, and counts once.
    assert_eq!(c["block_read_bytes"], 23134208u64);
    assert_eq!(c["block_write_ops"], 951);
    assert_eq!(c["block_devices"].as_array().unwrap().len(), 2);
    assert_eq!(c["block_devices"][1]["stacked"], true);
    assert!(c["pressure_cpu"]["some"]["avg10"].is_number());

    let unlimited = by_id(&v, "e98ebaebf364");
    assert_eq!(unlimited["memory_limit_bytes"], "max");
    assert!(unlimited["memory_usage_percent"].is_null());
    assert_eq!(unlimited["unavailable"]["memory_usage_percent"], "no memory limit");
    assert!(unlimited["cpu_limit_cores"].is_null());
    assert!(unlimited["unavailable"]["cpu_limit_cores"].is_string());
}

#[test]
fn hybrid_runc_container_reads_v1_controllers_and_v2_cpu_time() {
    let mut s = sampler("cgroup-hybrid-6.18-runc");
    sample(&mut s);
    let v = sample(&mut s);
    let c = by_id(&v, "5196071ee165");
    assert_eq!(c["runtime"], "docker", "/docker/<id> is how runc and Docker's cgroupfs driver name it");
    // CPU time comes from the unified tree's cpu.stat (microseconds), not cpuacct.
    assert_eq!(c["cpu_usage_secs_total"], 1.463681);
    assert_eq!(c["cpu_limit_cores"], 0.5);
    assert_eq!(c["memory_usage_bytes"], 80183296u64);
    assert_eq!(c["memory_limit_bytes"], 134217728u64);
    assert_eq!(c["pids_max"], 64);
    assert_eq!(c["block_read_bytes"], 25305088u64);
    assert_eq!(c["block_write_bytes"], 16797696u64);
    // Every file the sampler reads exists in the tree (none fell back to "gone").
    let paths = s.paths();
    assert!(paths.iter().any(|p| p.ends_with("memory.limit_in_bytes")));
    assert!(paths.iter().any(|p| p.ends_with("unified/docker/5196071ee165475bd9ff7cb99eae4be48c6d6a3e49c8392b88fe512e643e32ce/cpu.stat")));
    assert!(!paths.iter().any(|p| p.ends_with("memory.current")), "hybrid: no v2 memory files");
}

#[test]
fn no_cgroup_mounts_means_no_guests_and_no_error() {
    let mut s = sampler("linux-6.8-full");
    let v = sample(&mut s);
    assert!(v["containers"].as_array().unwrap().is_empty());
}

#[test]
fn every_runtime_layout_is_found_named_and_its_nested_processes_seen() {
    let root = scenario("cgroup-v2-6.8-layouts");
    let config = |services: bool| ContainerConfig {
        proc_root: root.join("proc"),
        sys_root: root.join("sys"),
        rootfs: root.clone(),
        include_services: services,
        metadata: hvstat_core::cgroup::names::MetadataRoots {
            docker_root: root.join("var/lib/docker"),
            podman_root: root.join("var/lib/containers/storage"),
            pods_log_root: root.join("var/log"),
            pve_root: root.join("etc/pve"),
        },
        ..Default::default()
    };
    let mut s = ContainerSampler::new(config(false));
    let v = sample(&mut s);
    let mut found: Vec<(String, String, String, u64)> = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["runtime"].as_str().unwrap().to_owned(),
                c["name"].as_str().unwrap().to_owned(),
                c["state"].as_str().unwrap().to_owned(),
                c["processes"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    let expect = |r: &str, n: &str| (r.to_owned(), n.to_owned(), "running".to_owned(), 1);
    assert_eq!(
        found,
        vec![
            expect("containerd", "prod/api-7d9f/server"),
            expect("lxc", "web1"),
            expect("podman", "db"),
            expect("proxmox-lxc", "ct101"),
        ],
        "conmon, lxc.monitor and the pod slice are not guests; nested cgroups are not separate guests; \
         the QEMU VMs' scopes (libvirt's machine-qemu\\x2d1\\x2dweb.scope, Proxmox's qemu.slice/100.scope) are the VMs'"
    );
    // Neither a VM scope nor anything below it (libvirt/emulator) is read.
    let paths = s.paths();
    assert!(!paths.iter().any(|p| p.to_string_lossy().contains("qemu")), "{paths:?}");
    let services = sample(&mut ContainerSampler::new(config(true)));
    assert!(services["containers"].as_array().unwrap().iter().any(|c| c["runtime"] == "systemd" && c["name"] == "sshd"));
}

/// Podman with crun on the systemd cgroup driver (pure v2, seen live in tests/test_guest_host.py):
/// the scope `libpod-<id>.scope` has no processes and no limits of its own; crun puts both in its
/// `container` sub-cgroup. The limits reported are that sub-cgroup's (the scope's own are `max`),
/// the counters the scope's (hierarchical), and a scope with processes of its own keeps its own.
#[test]
fn pure_v2_podman_crun_limits_live_in_the_container_sub_cgroup() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let write = |rel: &str, text: &str| {
        let p = r.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("proc/self/mountinfo", "34 25 0:29 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n");
    let crun = "a".repeat(64);
    let runc = "b".repeat(64);
    for (id, own_procs) in [(&crun, ""), (&runc, "4242\n")] {
        let scope = format!("sys/fs/cgroup/machine.slice/libpod-{id}.scope");
        for (file, text) in [
            ("cgroup.procs", own_procs),
            ("cgroup.events", "populated 1\nfrozen 0\n"),
            ("cpu.stat", "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 30\nthrottled_usec 900000\n"),
            ("cpu.max", "max 100000\n"),
            ("memory.current", "104857600\n"),
            ("memory.max", "max\n"),
            ("pids.current", "2\n"),
            ("pids.max", "max\n"),
        ] {
            write(&format!("{scope}/{file}"), text);
        }
        for (file, text) in [
            ("cgroup.procs", "4243\n"),
            ("cpu.max", "50000 100000\n"),
            ("memory.max", "536870912\n"),
            ("pids.max", "2048\n"),
            ("cpu.stat", "usage_usec 1900000\nuser_usec 1400000\nsystem_usec 500000\nnr_periods 70\nnr_throttled 60\nthrottled_usec 3000000\n"),
        ] {
            write(&format!("{scope}/container/{file}"), text);
        }
    }
    let mut s = ContainerSampler::new(ContainerConfig { proc_root: r.join("proc"), sys_root: r.join("sys"), rootfs: r.to_path_buf(), ..Default::default() });
    let v = sample(&mut s);
    let c = by_id(&v, &crun);
    assert_eq!(c["runtime"], "podman");
    assert_eq!(c["processes"], 1, "the sub-cgroup's process");
    assert_eq!(c["cpu_limit_cores"], 0.5);
    assert_eq!(c["memory_limit_bytes"], 536870912u64);
    assert_eq!(c["pids_max"], 2048);
    assert_eq!(c["memory_usage_bytes"], 104857600u64, "the scope's (hierarchical) counter");
    // throttling is counted where the quota is: the sub-cgroup's cpu.stat, not the scope's
    assert_eq!(c["cpu_throttled_periods_total"], 60);
    assert_eq!(c["cpu_periods_total"], 70);
    assert_eq!(c["cpu_throttled_secs_total"], 3.0);
    assert_eq!(c["cpu_usage_secs_total"], 2.0, "CPU time is the scope's (hierarchical)");
    // A cgroup with processes of its own runs under its own limits: the sub-cgroup is not asked.
    let own = by_id(&v, &runc);
    assert!(own["cpu_limit_cores"].is_null());
    assert_eq!(own["memory_limit_bytes"], "max");
    assert_eq!(own["pids_max"], "max");
    // The scope's own limit, when tighter, wins. (A new sampler: a running one reads limit files
    // again only every LIMITS_EVERY.)
    write(&format!("sys/fs/cgroup/machine.slice/libpod-{crun}.scope/memory.max"), "268435456\n");
    write(&format!("sys/fs/cgroup/machine.slice/libpod-{crun}.scope/cpu.max"), "20000 100000\n");
    let mut s = ContainerSampler::new(ContainerConfig { proc_root: r.join("proc"), sys_root: r.join("sys"), rootfs: r.to_path_buf(), ..Default::default() });
    let v = sample(&mut s);
    let c = by_id(&v, &crun);
    assert_eq!(c["memory_limit_bytes"], 268435456u64);
    assert_eq!(c["cpu_limit_cores"], 0.2);
    assert_eq!(c["cpu_throttled_periods_total"], 30, "the scope's own quota holds: its counters");
    assert_eq!(own["cpu_throttled_periods_total"], 30);
}
