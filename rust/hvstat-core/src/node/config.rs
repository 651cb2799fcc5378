//! What the node sampler reads and reports: filesystem roots, name filters and cardinality caps.
//! Deserialized from the `[node]` table of hvstat's config (via the Python side, as JSON); every
//! field has a default, so `{}` is a valid config. These defaults are the only copy of them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::filter::NameFilter;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where procfs is mounted. Point it elsewhere to read a recorded fixture tree or the host's
    /// /proc mounted into a container.
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    /// The root that mount points in mountinfo are relative to, for statvfs.
    pub rootfs: PathBuf,
    /// Disks (whole devices from /proc/diskstats) to report. Partitions are never reported: a
    /// partition's I/O is already counted in its disk.
    pub disk_include: Vec<String>,
    pub disk_exclude: Vec<String>,
    pub interface_include: Vec<String>,
    pub interface_exclude: Vec<String>,
    /// Interfaces that are reported one by one but kept out of the host's network total, because
    /// their traffic is a guest's or also crosses a physical NIC (taps, bridges, veths).
    pub interface_virtual: Vec<String>,
    pub fs_type_exclude: Vec<String>,
    pub mount_point_exclude: Vec<String>,
    pub max_disks: usize,
    pub max_interfaces: usize,
    pub max_filesystems: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        NodeConfig {
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            rootfs: "/".into(),
            disk_include: vec![],
            disk_exclude: v(&["loop*", "ram*", "zram*", "fd*"]),
            interface_include: vec![],
            interface_exclude: vec![],
            interface_virtual: v(&[
                "tap*", "vnet*", "veth*", "virbr*", "docker*", "br-*", "fwbr*", "fwpr*", "fwln*",
                "cali*", "flannel*", "cni*", "lxc*", "vxlan*", "kube-*",
            ]),
            // node_exporter's defaults (collector/filesystem_linux.go) plus tmpfs/devtmpfs, which on
            // a hypervisor are noise rather than capacity.
            fs_type_exclude: v(&[
                "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
                "devtmpfs", "efivarfs", "fuse.lxcfs", "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "overlay",
                "proc", "procfs", "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs",
                "squashfs", "sysfs", "tmpfs", "tracefs",
            ]),
            mount_point_exclude: v(&[
                "/dev/*", "/proc/*", "/sys/*", "/run/*", "/var/lib/docker/*",
                "/var/lib/containers/storage/*", "/var/lib/kubelet/*", "/snap/*",
            ]),
            max_disks: 128,
            max_interfaces: 256,
            max_filesystems: 128,
        }
    }
}

/// The compiled filters of a [`NodeConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Filters {
    pub disks: NameFilter,
    pub interfaces: NameFilter,
    pub virtual_interfaces: NameFilter,
    pub fs_types: NameFilter,
    pub mount_points: NameFilter,
}

impl NodeConfig {
    pub(crate) fn filters(&self) -> Result<Filters, String> {
        // Check each list on its own first, so the error names the exact key.
        for (key, globs) in [
            ("disk_include", &self.disk_include),
            ("disk_exclude", &self.disk_exclude),
            ("interface_include", &self.interface_include),
            ("interface_exclude", &self.interface_exclude),
            ("interface_virtual", &self.interface_virtual),
            ("fs_type_exclude", &self.fs_type_exclude),
            ("mount_point_exclude", &self.mount_point_exclude),
        ] {
            NameFilter::new(globs, &[]).map_err(|e| format!("node.{key}: {e}"))?;
        }
        Ok(Filters {
            disks: NameFilter::new(&self.disk_include, &self.disk_exclude)?,
            interfaces: NameFilter::new(&self.interface_include, &self.interface_exclude)?,
            virtual_interfaces: NameFilter::new(&self.interface_virtual, &[])?,
            fs_types: NameFilter::new(&[], &self.fs_type_exclude)?,
            mount_points: NameFilter::new(&[], &self.mount_point_exclude)?,
        })
    }
}
