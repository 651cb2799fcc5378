//! Human names for guests, from each runtime's own files on disk; never a daemon call. Read once
//! when a guest is first seen. Where nothing is readable the name is the short id (12 characters
//! of a hex id, as `docker ps` shows it) or the id itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::discover::{Guest, Runtime};

/// Where each runtime keeps its metadata. All configurable, for non-default installs.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataRoots {
    /// Docker's data root: `<docker_root>/containers/<id>/config.v2.json`.
    pub docker_root: PathBuf,
    /// Podman's (containers/storage) graph root: `<podman_root>/overlay-containers/containers.json`.
    pub podman_root: PathBuf,
    /// kubelet's log links: `<pods_log_root>/containers/<pod>_<namespace>_<container>-<id>.log`.
    pub pods_log_root: PathBuf,
    /// Proxmox VE config: `<pve_root>/lxc/<vmid>.conf` (`hostname:`), `<pve_root>/qemu-server/<vmid>.conf` (`name:`).
    pub pve_root: PathBuf,
}

impl Default for MetadataRoots {
    fn default() -> Self {
        MetadataRoots {
            docker_root: "/var/lib/docker".into(),
            podman_root: "/var/lib/containers/storage".into(),
            pods_log_root: "/var/log".into(),
            pve_root: "/etc/pve".into(),
        }
    }
}

/// Per discovery round: files that list many guests at once are read at most once.
#[derive(Default)]
pub struct Lookup {
    podman: Option<HashMap<String, String>>,
    pods: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(rename = "Name")]
    name: Option<String>,
}

#[derive(Deserialize)]
struct PodmanContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

impl Lookup {
    pub fn name(&mut self, g: &Guest, roots: &MetadataRoots) -> String {
        self.on_disk(g, roots).unwrap_or_else(|| fallback(g))
    }

    fn on_disk(&mut self, g: &Guest, roots: &MetadataRoots) -> Option<String> {
        match g.runtime {
            Runtime::Docker => {
                let p = roots.docker_root.join("containers").join(&g.id).join("config.v2.json");
                let c: DockerConfig = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
                Some(c.name?.trim_start_matches('/').to_owned()).filter(|n| !n.is_empty())
            }
            Runtime::Podman => self
                .podman
                .get_or_insert_with(|| podman_names(&roots.podman_root))
                .get(&g.id)
                .cloned(),
            Runtime::Containerd | Runtime::CriO | Runtime::Kubernetes => {
                self.pods.get_or_insert_with(|| pod_names(&roots.pods_log_root)).get(&g.id).cloned()
            }
            Runtime::ProxmoxLxc => pve_key(&roots.pve_root.join("lxc").join(format!("{}.conf", g.id)), "hostname"),
            Runtime::ProxmoxQemu => pve_key(&roots.pve_root.join("qemu-server").join(format!("{}.conf", g.id)), "name"),
            // libvirt's machine names are `qemu-<domain id>-<name>` and `lxc-<pid>-<name>`.
            Runtime::Libvirt => {
                let rest = g.id.strip_prefix("qemu-").or_else(|| g.id.strip_prefix("lxc-"))?;
                let (n, name) = rest.split_once('-')?;
                n.bytes().all(|b| b.is_ascii_digit()).then(|| name.to_owned())
            }
            Runtime::Lxc | Runtime::SystemdNspawn | Runtime::Systemd | Runtime::Oci => None,
        }
    }
}

fn fallback(g: &Guest) -> String {
    if g.id.len() == 64 {
        g.id[..12].to_owned()
    } else {
        g.id.clone()
    }
}

fn podman_names(root: &Path) -> HashMap<String, String> {
    let Ok(bytes) = std::fs::read(root.join("overlay-containers/containers.json")) else { return HashMap::new() };
    let list: Vec<PodmanContainer> = serde_json::from_slice(&bytes).unwrap_or_default();
    list.into_iter().filter_map(|c| Some((c.id, c.names.into_iter().next()?))).collect()
}

/// `<pod>_<namespace>_<container>-<64hex>.log` -> id => `namespace/pod/container`.
fn pod_names(root: &Path) -> HashMap<String, String> {
    let Ok(rd) = std::fs::read_dir(root.join("containers")) else { return HashMap::new() };
    rd.flatten()
        .filter_map(|e| {
            let f = e.file_name().to_string_lossy().into_owned();
            let stem = f.strip_suffix(".log")?;
            let (rest, id) = stem.rsplit_once('-')?;
            let mut parts = rest.splitn(3, '_');
            let (pod, ns, container) = (parts.next()?, parts.next()?, parts.next()?);
            (id.len() == 64).then(|| (id.to_owned(), format!("{ns}/{pod}/{container}")))
        })
        .collect()
}

/// `key: value` from a Proxmox guest config (the first section only: snapshots follow `[name]`).
fn pve_key(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_owned()))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn guest(runtime: Runtime, id: &str) -> Guest {
        Guest { runtime, id: id.into(), path: "/x".into() }
    }

    #[test]
    fn names_from_each_runtime_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let roots = MetadataRoots {
            docker_root: r.join("docker"),
            podman_root: r.join("storage"),
            pods_log_root: r.join("log"),
            pve_root: r.join("pve"),
        };
        let w = |p: &str, t: &str| {
            let p = r.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        w(&format!("docker/containers/{ID}/config.v2.json"), r#"{"ID":"x","Name":"/web-1","State":{}}"#);
        w("storage/overlay-containers/containers.json", &format!(r#"[{{"id":"{ID}","names":["db"],"image":"x"}}]"#));
        w(&format!("log/containers/api-7d9_prod_server-{ID}.log"), "");
        w("pve/lxc/101.conf", "arch: amd64\nhostname: ct101\n[snap]\nhostname: old\n");
        w("pve/qemu-server/100.conf", "boot: order=scsi0\nname: vm100\n");
        let mut l = Lookup::default();
        assert_eq!(l.name(&guest(Runtime::Docker, ID), &roots), "web-1");
        assert_eq!(l.name(&guest(Runtime::Podman, ID), &roots), "db");
        assert_eq!(l.name(&guest(Runtime::Containerd, ID), &roots), "prod/api-7d9/server");
        assert_eq!(l.name(&guest(Runtime::ProxmoxLxc, "101"), &roots), "ct101");
        assert_eq!(l.name(&guest(Runtime::ProxmoxQemu, "100"), &roots), "vm100");
        assert_eq!(l.name(&guest(Runtime::Libvirt, "qemu-3-fz-kvm"), &roots), "fz-kvm");
        assert_eq!(l.name(&guest(Runtime::Lxc, "web1"), &roots), "web1");
        // Nothing on disk: the short id.
        let mut l = Lookup::default();
        assert_eq!(l.name(&guest(Runtime::Oci, ID), &MetadataRoots::default()), &ID[..12]);
        w(&format!("docker/containers/{ID}/config.v2.json"), "not json");
        assert_eq!(l.name(&guest(Runtime::Docker, ID), &roots), &ID[..12]);
    }
}
