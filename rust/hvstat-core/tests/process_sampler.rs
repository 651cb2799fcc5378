//! The process sampler on a fake /proc built in a tempdir (PID reuse, vanished and zombie processes,
//! counters that go back, users and guests) and on the running kernel's /proc (a real busy child).

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hvstat_core::procs::model::LoadLevel;
use hvstat_core::procs::{ProcessConfig, ProcessSampler};

const DOCKER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[allow(clippy::too_many_arguments)] // one fake process per call, every file it needs
fn write_pid(root: &Path, pid: u32, comm: &str, state: char, start: u64, cpu: (u64, u64), rss_pages: u64, uid: u32, cgroup: &str, write_bytes: u64) {
    let d = root.join(pid.to_string());
    std::fs::create_dir_all(&d).unwrap();
    let stat = format!(
        "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {} {} 0 0 20 0 1 0 {start} 10000000 {rss_pages} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
        cpu.0, cpu.1
    );
    std::fs::write(d.join("stat"), stat).unwrap();
    std::fs::write(d.join("statm"), format!("2000 {rss_pages} 10 5 0 100 0\n")).unwrap();
    std::fs::write(d.join("status"), format!("Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")).unwrap();
    std::fs::write(d.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
    let io = format!("rchar: 0\nwchar: {write_bytes}\nsyscr: 0\nsyscw: 0\nread_bytes: 0\nwrite_bytes: {write_bytes}\ncancelled_write_bytes: 0\n");
    std::fs::write(d.join("io"), io).unwrap();
}

fn fake_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let proc_ = dir.path().join("proc");
    std::fs::create_dir_all(&proc_).unwrap();
    std::fs::write(proc_.join("meminfo"), "MemTotal:       1024000 kB\nMemAvailable:    512000 kB\n").unwrap();
    std::fs::write(proc_.join("uptime"), "1000.00 10.00\n").unwrap();
    std::fs::write(proc_.join("stat"), "cpu  1 2 3 4\nbtime 1700000000\n").unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n").unwrap();
    dir
}

struct Clock(Arc<Mutex<Instant>>);

impl Clock {
    fn advance(&self, secs: u64) {
        *self.0.lock().unwrap() += Duration::from_secs(secs);
    }
}

fn sampler(root: &Path, config: ProcessConfig) -> (ProcessSampler, Clock) {
    let t = Arc::new(Mutex::new(Instant::now()));
    let c = t.clone();
    let config = ProcessConfig { proc_root: root.join("proc"), rootfs: root.to_owned(), ..config };
    (ProcessSampler::with_clock(config, move || *c.lock().unwrap()).unwrap(), Clock(t))
}

#[test]
fn fake_tree_rates_users_guests_reuse_and_zombies() {
    let root = fake_root();
    let p = root.path().join("proc");
    write_pid(&p, 1, "init", 'S', 1, (10, 10), 100, 0, "/init.scope", 0);
    write_pid(&p, 100, "burn", 'R', 500, (0, 0), 256, 1000, "/user.slice/user-1000.slice", 0);
    write_pid(&p, 200, "alloc", 'S', 600, (0, 0), 51200, 1001, "/user.slice/user-1001.slice", 0);
    write_pid(&p, 300, "nginx", 'S', 700, (5, 5), 1000, 1000, &format!("/system.slice/docker-{DOCKER}.scope"), 0);
    write_pid(&p, 400, "oldjob", 'S', 800, (50, 0), 10, 1001, "/user.slice", 0);
    let config = ProcessConfig { persistent_time_secs: 4.0, cpu_threshold_percent: 90.0, memory_threshold_percent: 15.0, ..ProcessConfig::default() };
    let (mut s, clock) = sampler(root.path(), config);
    let first = s.sample();
    assert_eq!(first.interval_secs, None);
    assert_eq!(first.host.processes, 5);
    assert!(first.processes.iter().all(|p| p.cpu_percent.is_none()), "no rates on the first sample");

    clock.advance(2);
    write_pid(&p, 100, "burn", 'R', 500, (150, 50), 256, 1000, "/user.slice/user-1000.slice", 0);
    write_pid(&p, 300, "nginx", 'S', 700, (25, 5), 1000, 1000, &format!("/system.slice/docker-{DOCKER}.scope"), 8192);
    // pid 400 reused by a new process (a later start time): no rate against the old one.
    write_pid(&p, 400, "newjob", 'S', 900, (10, 0), 10, 1001, "/user.slice", 0);
    // pid 1's counters went back: no rate, never negative.
    write_pid(&p, 1, "init", 'Z', 1, (5, 5), 0, 0, "/init.scope", 0);
    let s2 = s.sample();
    assert_eq!(s2.interval_secs, Some(2.0));
    let by_pid = |pid: u32| s2.processes.iter().find(|p| p.pid == pid).unwrap();
    assert_eq!(by_pid(100).cpu_percent, Some(100.0), "200 ticks in 2 s");
    assert_eq!(by_pid(100).user.as_deref(), Some("alice"));
    assert_eq!(by_pid(300).container.as_deref(), Some(DOCKER));
    assert_eq!(by_pid(300).write_bytes_per_sec, Some(4096.0));
    assert_eq!(by_pid(400).cpu_percent, None, "a reused pid is a new process");
    assert_eq!(by_pid(400).name, "newjob");
    assert_eq!(by_pid(1).cpu_percent, None, "a counter that went back has no rate");
    assert_eq!(by_pid(1).rss_bytes, Some(0), "a zombie has no memory");
    assert_eq!(s2.host.zombies, 1);
    assert_eq!(s2.processes.first().map(|p| p.pid), Some(100), "highest CPU first");
    let alice = s2.users.iter().find(|u| u.user == "alice").unwrap();
    assert_eq!((alice.processes, alice.cpu_percent), (2, Some(110.0)));
    assert_eq!(alice.cpu_seconds_total, 2.2);
    assert!(s2.users.iter().all(|u| u.uid >= 1000), "system users are out of the per-user view");
    let bob = s2.users.iter().find(|u| u.user == "bob").unwrap();
    // 51200 pages of 4 KiB = 200 MiB of 1000 MiB: over bob's 15 % memory threshold.
    assert!(bob.heavy_for_secs.is_some() && !bob.persistent_heavy);
    assert_eq!(s2.guests.len(), 1);
    assert_eq!(s2.guests[0].id, DOCKER);

    // Bob stays over his threshold for persistent_time: persistent; then drops under it: cleared.
    clock.advance(5);
    let s3 = s.sample();
    let bob = s3.users.iter().find(|u| u.user == "bob").unwrap();
    assert!(bob.persistent_heavy, "{bob:?}");
    assert_eq!(s3.status.persistent_users, ["bob"]);
    assert_eq!(s3.status.level, LoadLevel::Medium);
    write_pid(&p, 200, "alloc", 'S', 600, (0, 0), 10, 1001, "/user.slice/user-1001.slice", 0);
    std::fs::remove_dir_all(p.join("100")).unwrap();
    clock.advance(2);
    let s4 = s.sample();
    let bob = s4.users.iter().find(|u| u.user == "bob").unwrap();
    assert!(!bob.persistent_heavy && bob.heavy_for_secs.is_none());
    assert!(s4.processes.iter().all(|p| p.pid != 100), "a vanished process is dropped");
    assert_eq!(s4.host.processes, 4);
}

#[test]
fn ignored_processes_and_excluded_users_still_count_in_the_host() {
    let root = fake_root();
    let p = root.path().join("proc");
    write_pid(&p, 100, "backup", 'R', 500, (0, 0), 256, 1000, "/", 0);
    write_pid(&p, 101, "bash", 'S', 500, (0, 0), 256, 1001, "/", 0);
    let config = ProcessConfig { ignore_processes: vec!["back*".into()], exclude_users: vec!["bob".into()], ..ProcessConfig::default() };
    let (mut s, _) = sampler(root.path(), config);
    let x = s.sample();
    assert_eq!(x.host.processes, 2);
    assert!(x.processes.iter().all(|p| p.name != "backup"));
    assert!(x.users.is_empty(), "{:?}", x.users);
}

#[test]
fn a_real_busy_child_reads_one_core() {
    let mut child = Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
    let pid = child.id();
    let read_ticks = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let mut s = ProcessSampler::new(ProcessConfig::default()).unwrap();
    // The loop's own counter read just before and just after each sample: whatever the sampler
    // read lies between them, however long a sample takes on a busy machine.
    let before1 = read_ticks();
    s.sample();
    let after1 = read_ticks();
    std::thread::sleep(Duration::from_millis(1000));
    let before2 = read_ticks();
    let x = s.sample();
    let after2 = read_ticks();
    let _ = child.kill();
    let _ = child.wait();
    let p = x.processes.iter().find(|p| p.pid == pid).expect("the child is listed");
    let hz = hvstat_core::host::user_hz() as f64;
    let cpu = p.cpu_percent.unwrap();
    // Back from a percentage over the sample's interval to the ticks the sampler counted.
    let ticks = cpu / 100.0 * x.interval_secs.unwrap() * hz;
    let (low, high) = (before2.saturating_sub(after1) as f64, (after2 - before1) as f64);
    assert!(ticks > low - 0.5 && ticks < high + 0.5, "hvstat counted {ticks:.1} ticks ({cpu:.1} %), the loop's own stat {low}..{high}");
    // And it is the busy loop: most of a core whenever it got one (the machine is shared).
    assert!(cpu > 0.0);
    assert_eq!(p.uid, Some(unsafe { libc::geteuid() }));
    assert!(p.rss_bytes.unwrap() > 0);
    assert!(x.host.kept_open_fds > 0 && x.host.kept_open_fds <= 3 * x.host.processes);
    let me = x.processes.iter().find(|p| p.pid == std::process::id()).unwrap();
    assert!(me.read_bytes_total.is_some(), "our own io is readable");
}
