//! Finding containers: the cgroup hierarchies from mountinfo, a walk of one of them that skips
//! what has not changed, and the classification of cgroup paths into (runtime, id).
//!
//! Cheap on repeat: kernfs updates a directory's mtime and its link count (2 + subdirectories)
//! whenever a child cgroup is made or removed, so a directory whose (mtime, nlink) is unchanged is
//! not listed again. A container's own directory is never descended into (its inner cgroups belong
//! to it), so the walk touches only the few "interior" directories above the containers.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::Result;
use crate::procfs::mountinfo::{self, Mount};
use crate::read::{FileReader, Shape};

/// Where each hierarchy is mounted. Paths are already joined to the configured root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    /// The v2 tree (pure v2, or the controller-less tree of a hybrid host).
    pub unified: Option<Hierarchy>,
    /// v1 hierarchies by controller (`cpu`, `cpuacct`, `memory`, `blkio`, `pids`, `freezer`, ...).
    /// Co-mounted controllers (`cpu,cpuacct`) appear under each of their names.
    pub v1: BTreeMap<String, Hierarchy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The mount point, under the configured root.
    pub dir: PathBuf,
    /// The cgroup path the mount shows at its top (`/` unless in a cgroup namespace or bind mount).
    pub root: String,
}

impl Hierarchy {
    /// The directory of the cgroup at `path` (a path as /proc/<pid>/cgroup shows it), if it is
    /// below this mount's root.
    pub fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let rel = if self.root == "/" { Some(path) } else { path.strip_prefix(self.root.as_str()) }?;
        let rel = rel.trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            return None;
        }
        Some(if rel.is_empty() { self.dir.clone() } else { self.dir.join(rel) })
    }
}

/// v1 controllers hvstat reads, to tell them apart from mount options in the super options.
const V1_CONTROLLERS: [&str; 9] = ["cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "freezer", "devices", "hugetlb"];

impl Hierarchies {
    pub fn from_mounts(mounts: &[Mount], rootfs: &Path) -> Hierarchies {
        let mut h = Hierarchies::default();
        for m in mounts {
            let hierarchy = Hierarchy { dir: rootfs.join(m.mount_point.trim_start_matches('/')), root: m.root.clone() };
            match m.fs_type.as_str() {
                "cgroup2" => {
                    // The first cgroup2 mount wins; later ones are the same tree mounted again.
                    h.unified.get_or_insert(hierarchy);
                }
                "cgroup" => {
                    for opt in m.super_options.split(',') {
                        let name = opt.strip_prefix("name=").map(|n| format!("name={n}"));
                        let key = match name {
                            Some(n) => n,
                            None if V1_CONTROLLERS.contains(&opt) => opt.to_owned(),
                            None => continue,
                        };
                        h.v1.entry(key).or_insert_with(|| hierarchy.clone());
                    }
                }
                _ => {}
            }
        }
        h
    }

    /// The hierarchy to walk for discovery: memory (every runtime sets it up), then cpu, pids,
    /// then the v2 tree.
    pub fn primary(&self) -> Option<&Hierarchy> {
        ["memory", "cpu", "pids", "cpuacct"].iter().find_map(|c| self.v1.get(*c)).or(self.unified.as_ref())
    }

    /// Pure v2: no v1 controller is mounted.
    pub fn is_unified_only(&self) -> bool {
        self.v1.keys().all(|k| k.starts_with("name="))
    }
}

/// The hierarchies as mountinfo shows them, read again only when the mount table changed (mountinfo
/// costs tens of µs; a kept-open /proc mountinfo tells a change by poll(), see
/// [`FileReader::mounts_unchanged`]). Shared by the container and the VM sampler.
pub struct HierarchyWatch {
    mountinfo: FileReader,
    rootfs: PathBuf,
    current: Option<Hierarchies>,
}

impl HierarchyWatch {
    /// Watch `<proc_root>/1/mountinfo` (else `self/mountinfo`); mount points are taken under `rootfs`.
    pub fn new(proc_root: &Path, rootfs: &Path) -> HierarchyWatch {
        let p = |rel: &str| proc_root.join(rel);
        HierarchyWatch {
            mountinfo: FileReader::first_of(vec![p("1/mountinfo"), p("self/mountinfo")], Shape::Records),
            rootfs: rootfs.to_owned(),
            current: None,
        }
    }

    /// The hierarchies now: the last ones while the mount table is unchanged, else read again. On
    /// an error there are none until a read succeeds.
    pub fn get(&mut self) -> Result<&Hierarchies> {
        let current = match self.current.take().filter(|_| self.mountinfo.mounts_unchanged()) {
            Some(h) => h,
            None => Hierarchies::from_mounts(&self.mountinfo.parse(mountinfo::parse)?, &self.rootfs),
        };
        Ok(self.current.insert(current))
    }

    /// The hierarchies of the latest successful [`Self::get`], without looking again.
    pub fn last(&self) -> Option<&Hierarchies> {
        self.current.as_ref()
    }
}

/// What kind of guest a cgroup belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    CriO,
    /// A kubepods container under the cgroupfs driver, where the path does not name the runtime.
    Kubernetes,
    Lxc,
    ProxmoxLxc,
    ProxmoxQemu,
    SystemdNspawn,
    Libvirt,
    /// An OCI runtime (runc, crun) given a plain cgroupfs path ending in a 64-hex id.
    Oci,
    /// A systemd service (`*.service`); reported only when asked for.
    Systemd,
}

/// A classified cgroup: what runtime made it and the id it goes by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guest {
    pub runtime: Runtime,
    /// The runtime's id: a 64-hex container id, an LXC name, a Proxmox vmid, a machine name.
    pub id: String,
    /// The cgroup path (as /proc/<pid>/cgroup shows it).
    pub path: String,
}

impl Guest {
    /// A QEMU VM's scope: libvirt's `qemu-<n>-<name>` machine (`machine.slice/machine-qemu\x2d...scope`,
    /// or `/machine/qemu-<n>-<name>.libvirt-qemu` without systemd) or Proxmox's
    /// `qemu.slice/<vmid>.scope`. It is the VM's, not a container: the VM sampler reads it from the
    /// QEMU process's cgroup, and the container sampler leaves it out, so one guest is one row.
    /// libvirt's LXC machines (`lxc-<pid>-<name>`, `.libvirt-lxc`) are containers.
    pub fn is_vm(&self) -> bool {
        // libvirt names a QEMU machine `qemu-<id>-<name>` and an LXC one `lxc-<pid>-<name>`
        // (virDomainDriverGenerateMachineName); both path forms keep that name as the id.
        match self.runtime {
            Runtime::ProxmoxQemu => true,
            Runtime::Libvirt => self.id.starts_with("qemu-"),
            _ => false,
        }
    }
}

/// The VM scope holding the cgroup at `path` (a QEMU process's, which libvirt keeps in the
/// machine's `emulator` sub-cgroup): `path` itself or its nearest ancestor that [`classify`] calls a
/// VM scope ([`Guest::is_vm`]); never the root. `None` for a QEMU outside any VM scope (started by
/// hand, or in a service).
pub fn enclosing_vm_scope(path: &str) -> Option<Guest> {
    let mut p = path.trim_end_matches('/');
    while !p.is_empty() {
        if let Some(g) = classify(p, false).filter(Guest::is_vm) {
            return Some(g);
        }
        p = &p[..p.rfind('/')?];
    }
    None
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// systemd escapes `-` in unit names as `\x2d` (systemd-escape(1)); undo every `\xNN`.
pub fn unescape_systemd(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = b.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Classify the cgroup at `path` (`/system.slice/docker-<id>.scope`, `/docker/<id>`, ...) by its
/// last component and its parent. `None` for everything that is not a guest (slices, pods,
/// conmon and monitor cgroups, the payload's own sub-cgroups are never reached).
pub fn classify(path: &str, with_services: bool) -> Option<Guest> {
    let mut comps = path.rsplit('/').filter(|c| !c.is_empty());
    let name = comps.next()?;
    let parent = comps.next().unwrap_or("");
    let guest = |runtime, id: &str| Some(Guest { runtime, id: id.to_owned(), path: path.to_owned() });
    let scope = |prefix: &str| name.strip_prefix(prefix).and_then(|r| r.strip_suffix(".scope")).filter(|id| is_hex64(id));

    if let Some(id) = scope("docker-") {
        return guest(Runtime::Docker, id);
    }
    if let Some(id) = scope("libpod-") {
        return guest(Runtime::Podman, id);
    }
    if let Some(id) = scope("cri-containerd-") {
        return guest(Runtime::Containerd, id);
    }
    if let Some(id) = scope("crio-") {
        return guest(Runtime::CriO, id);
    }
    if let Some(n) = name.strip_prefix("lxc.payload.") {
        return guest(Runtime::Lxc, n);
    }
    if let Some(m) = name.strip_prefix("machine-").and_then(|r| r.strip_suffix(".scope")) {
        let m = unescape_systemd(m);
        // libvirt names its machines qemu-<id>-<name> and lxc-<pid>-<name>.
        let libvirt = m.starts_with("qemu-") || m.starts_with("lxc-");
        return if libvirt { guest(Runtime::Libvirt, &m) } else { guest(Runtime::SystemdNspawn, &m) };
    }
    // libvirt without systemd (the test machines): /machine/qemu-<n>-<name>.libvirt-qemu
    if parent == "machine" {
        if let Some(m) = name.strip_suffix(".libvirt-qemu").or_else(|| name.strip_suffix(".libvirt-lxc")) {
            return guest(Runtime::Libvirt, m);
        }
    }
    if parent == "qemu.slice" {
        if let Some(vmid) = name.strip_suffix(".scope").filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) {
            return guest(Runtime::ProxmoxQemu, vmid);
        }
    }
    if parent == "lxc" && !name.starts_with("lxc.") {
        let numeric = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
        return guest(if numeric { Runtime::ProxmoxLxc } else { Runtime::Lxc }, name);
    }
    if is_hex64(name) {
        return match parent {
            "docker" => guest(Runtime::Docker, name),
            p if p.starts_with("pod") && path.contains("kubepods") => guest(Runtime::Kubernetes, name),
            _ => guest(Runtime::Oci, name),
        };
    }
    if parent == "libpod_parent" {
        if let Some(id) = name.strip_prefix("libpod-").filter(|id| is_hex64(id)) {
            return guest(Runtime::Podman, id);
        }
    }
    if with_services && parent == "system.slice" {
        if let Some(unit) = name.strip_suffix(".service") {
            return guest(Runtime::Systemd, unit);
        }
    }
    None
}

#[derive(Debug, Clone)]
struct DirState {
    mtime_ns: i128,
    nlink: u64,
    children: Vec<String>,
}

/// Walks one hierarchy and remembers what it saw, so the next walk lists only changed directories.
#[derive(Debug, Default)]
pub struct Walker {
    seen: HashMap<PathBuf, DirState>,
    /// Directories listed (not just checked) by the last walk: how much work it did.
    pub last_listed: usize,
}

impl Walker {
    /// Every guest below `hierarchy`. A directory that vanishes mid-walk is simply not there.
    pub fn walk(&mut self, hierarchy: &Hierarchy, with_services: bool) -> Vec<Guest> {
        let mut out = Vec::new();
        let mut next: HashMap<PathBuf, DirState> = HashMap::with_capacity(self.seen.len());
        let mut listed = 0;
        let mut stack: Vec<(PathBuf, String)> = vec![(hierarchy.dir.clone(), hierarchy.root.clone())];
        while let Some((dir, cg_path)) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
            let nlink = meta.nlink();
            let (children, mtime_ns) = match self.seen.remove(&dir) {
                Some(s) if s.mtime_ns == mtime_ns && s.nlink == nlink => (s.children, mtime_ns),
                old => {
                    listed += 1;
                    match std::fs::read_dir(&dir) {
                        Ok(rd) => {
                            let mut c: Vec<String> = rd
                                .flatten()
                                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect();
                            c.sort();
                            (c, mtime_ns)
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        // Out of fds, or anything else that says nothing about the directory:
                        // keep what was there (so guests do not flap) and list it again next time.
                        Err(_) => match old {
                            Some(s) => (s.children, i128::MIN),
                            None => continue,
                        },
                    }
                }
            };
            for child in &children {
                let child_path = if cg_path.ends_with('/') { format!("{cg_path}{child}") } else { format!("{cg_path}/{child}") };
                match classify(&child_path, with_services) {
                    // A VM's scope is the VM's (its sub-cgroups too): neither a container nor
                    // walked into.
                    Some(g) if g.is_vm() => {}
                    Some(g) => out.push(g),
                    None => stack.push((dir.join(child), child_path)),
                }
            }
            next.insert(dir, DirState { mtime_ns, nlink, children });
        }
        self.seen = next;
        self.last_listed = listed;
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn c(path: &str) -> Option<(Runtime, String)> {
        classify(path, false).map(|g| (g.runtime, g.id))
    }

    #[test]
    fn runtimes_by_path() {
        use Runtime::*;
        assert_eq!(c(&format!("/system.slice/docker-{ID}.scope")), Some((Docker, ID.into())));
        assert_eq!(c(&format!("/docker/{ID}")), Some((Docker, ID.into())));
        assert_eq!(c(&format!("/machine.slice/libpod-{ID}.scope")), Some((Podman, ID.into())));
        assert_eq!(c(&format!("/libpod_parent/libpod-{ID}")), Some((Podman, ID.into())));
        assert_eq!(c("/libpod_parent/conmon"), None);
        assert_eq!(c(&format!("/machine.slice/libpod-conmon-{ID}.scope")), None);
        assert_eq!(
            c(&format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/cri-containerd-{ID}.scope")),
            Some((Containerd, ID.into()))
        );
        assert_eq!(c(&format!("/kubepods.slice/kubepods-pod1a2b.slice/crio-{ID}.scope")), Some((CriO, ID.into())));
        assert_eq!(c("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice"), None);
        assert_eq!(c(&format!("/kubepods/burstable/pod1a2b-3c/{ID}")), Some((Kubernetes, ID.into())));
        assert_eq!(c("/lxc.payload.web1"), Some((Lxc, "web1".into())));
        assert_eq!(c("/lxc.monitor.web1"), None);
        assert_eq!(c("/lxc.pivot"), None);
        assert_eq!(c("/lxc/web1"), Some((Lxc, "web1".into())));
        assert_eq!(c("/lxc/101"), Some((ProxmoxLxc, "101".into())));
        assert_eq!(c("/qemu.slice/100.scope"), Some((ProxmoxQemu, "100".into())));
        assert_eq!(c("/machine.slice/machine-qemu\\x2d1\\x2dweb.scope"), Some((Libvirt, "qemu-1-web".into())));
        assert_eq!(c("/machine.slice/machine-arch\\x2dbox.scope"), Some((SystemdNspawn, "arch-box".into())));
        assert_eq!(c("/machine.slice/machine-lxc\\x2d4242\\x2dweb.scope"), Some((Libvirt, "lxc-4242-web".into())));
        assert_eq!(c("/machine/qemu-3-fz-kvm.libvirt-qemu"), Some((Libvirt, "qemu-3-fz-kvm".into())));
        assert_eq!(c(&format!("/mygroup/{ID}")), Some((Oci, ID.into())));
        assert_eq!(c("/system.slice/sshd.service"), None);
        assert_eq!(classify("/system.slice/sshd.service", true).map(|g| g.runtime), Some(Systemd));
        assert_eq!(c("/"), None);
        assert_eq!(c(&format!("/docker/{}", &ID[..63])), None);
        assert_eq!(c(&format!("/docker/{}", ID.to_uppercase())), None);
    }

    #[test]
    fn qemu_scopes_are_vms_and_libvirt_lxc_machines_containers() {
        let vm = |p: &str| classify(p, false).is_some_and(|g| g.is_vm());
        assert!(vm("/machine.slice/machine-qemu\\x2d1\\x2dweb.scope"));
        assert!(vm("/machine/qemu-3-fz-kvm.libvirt-qemu"));
        assert!(vm("/qemu.slice/100.scope"));
        assert!(!vm("/machine.slice/machine-lxc\\x2d4242\\x2dweb.scope"));
        assert!(!vm("/machine/lxc-4242-web.libvirt-lxc"));
        assert!(!vm("/machine.slice/machine-arch\\x2dbox.scope"), "systemd-nspawn");
        assert!(!vm("/lxc/101"));
        assert!(!vm(&format!("/docker/{ID}")));
    }

    #[test]
    fn a_qemu_process_cgroup_is_in_its_vm_scope() {
        let scope = |p: &str| enclosing_vm_scope(p).map(|g| g.path);
        // libvirt keeps QEMU in the machine's emulator (and vcpuN) sub-cgroups.
        assert_eq!(scope("/machine.slice/machine-qemu\\x2d1\\x2dweb.scope/libvirt/emulator").as_deref(), Some("/machine.slice/machine-qemu\\x2d1\\x2dweb.scope"));
        assert_eq!(scope("/machine/qemu-3-fz-kvm.libvirt-qemu/emulator").as_deref(), Some("/machine/qemu-3-fz-kvm.libvirt-qemu"));
        assert_eq!(scope("/qemu.slice/100.scope").as_deref(), Some("/qemu.slice/100.scope"));
        assert_eq!(scope("/qemu.slice/100.scope/").as_deref(), Some("/qemu.slice/100.scope"));
        // Not in a VM scope: a hand-started QEMU, one in a service, one in a container; never the root.
        assert_eq!(scope("/user.slice/user-0.slice/session-3.scope"), None);
        assert_eq!(scope("/system.slice/qemu-guest.service"), None);
        assert_eq!(scope("/machine.slice/machine-lxc\\x2d4242\\x2dweb.scope/qemu"), None);
        assert_eq!(scope("/"), None);
        assert_eq!(scope(""), None);
    }

    #[test]
    fn the_walk_neither_lists_nor_enters_vm_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mk = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
        mk("machine/qemu-3-fz-kvm.libvirt-qemu/emulator");
        mk(&format!("machine/qemu-3-fz-kvm.libvirt-qemu/vcpu0/{ID}"));
        mk("machine/lxc-4242-web.libvirt-lxc");
        mk("qemu.slice/100.scope");
        let h = Hierarchy { dir: root.to_owned(), root: "/".into() };
        let mut w = Walker::default();
        let found: Vec<String> = w.walk(&h, false).into_iter().map(|g| g.path).collect();
        assert_eq!(found, vec!["/machine/lxc-4242-web.libvirt-lxc".to_string()]);
        assert_eq!(w.last_listed, 3, "the root, machine/ and qemu.slice/: not the VM scopes");
    }

    #[test]
    fn hierarchies_from_hybrid_mountinfo() {
        let text = b"30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n\
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
34 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let mounts = crate::procfs::mountinfo::parse(text).unwrap();
        let h = Hierarchies::from_mounts(&mounts, Path::new("/x"));
        assert_eq!(h.unified.as_ref().unwrap().dir, Path::new("/x/sys/fs/cgroup/unified"));
        assert_eq!(h.v1["memory"].dir, Path::new("/x/sys/fs/cgroup/memory"));
        assert_eq!(h.v1["cpu"].dir, Path::new("/x/sys/fs/cgroup/cpu"), "the first mount of a controller wins");
        assert_eq!(h.v1["cpuacct"].dir, Path::new("/x/sys/fs/cgroup/cpu,cpuacct"));
        assert!(h.v1.contains_key("name=systemd"));
        assert!(!h.v1.contains_key("xattr"));
        assert_eq!(h.primary().unwrap().dir, Path::new("/x/sys/fs/cgroup/memory"));
        assert!(!h.is_unified_only());
    }

    #[test]
    fn dir_of_respects_the_mount_root() {
        let h = Hierarchy { dir: "/sys/fs/cgroup".into(), root: "/docker/abc".into() };
        assert_eq!(h.dir_of("/docker/abc/x"), Some("/sys/fs/cgroup/x".into()));
        assert_eq!(h.dir_of("/other"), None);
        assert_eq!(h.dir_of("/docker/abc/../../etc"), None);
    }

    #[test]
    fn walk_finds_guests_and_lists_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mk = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
        mk(&format!("docker/{ID}/inner"));
        mk("system.slice/sshd.service");
        mk("lxc.payload.web1/system.slice");
        let h = Hierarchy { dir: root.to_owned(), root: "/".into() };
        let mut w = Walker::default();
        let found: Vec<String> = w.walk(&h, false).into_iter().map(|g| g.path).collect();
        assert_eq!(found, vec![format!("/docker/{ID}"), "/lxc.payload.web1".to_string()]);
        let first = w.last_listed;
        assert!(first >= 3);
        w.walk(&h, false);
        assert_eq!(w.last_listed, 0, "nothing changed, nothing listed");
        mk("lxc.payload.web2");
        let found = w.walk(&h, false);
        assert_eq!(found.len(), 3);
        assert_eq!(w.last_listed, 1, "only the root changed");
        std::fs::remove_dir_all(root.join("lxc.payload.web1")).unwrap();
        assert_eq!(w.walk(&h, false).len(), 2);
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_systemd("qemu\\x2d1\\x2dweb"), "qemu-1-web");
        assert_eq!(unescape_systemd("bad\\x2"), "bad\\x2");
        assert_eq!(unescape_systemd("\\xzz"), "\\xzz");
    }
}
