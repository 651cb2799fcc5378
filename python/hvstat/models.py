"""Wire types: every REST body and WebSocket message is one of these msgspec Structs.

The node sample is produced by the Rust core as JSON (rust/hvstat-core/src/node/model.rs) and
decoded here by one reused typed decoder; the field names and units below mirror that file, and
``tests/test_models.py`` decodes real samples with unknown fields forbidden so the two cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every wire type: immutable, keyword-only (msgspec does not inherit kw_only, so each
    subclass says it again)."""


class CpuPercent(Wire, kw_only=True):
    usage: float | None = None
    user: float | None = None
    nice: float | None = None
    system: float | None = None
    idle: float | None = None
    iowait: float | None = None
    irq: float | None = None
    softirq: float | None = None
    steal: float | None = None
    guest: float | None = None
    guest_nice: float | None = None


class CpuSeconds(Wire, kw_only=True):
    user: float
    nice: float
    system: float
    idle: float
    iowait: float | None = None
    irq: float | None = None
    softirq: float | None = None
    steal: float | None = None
    guest: float | None = None
    guest_nice: float | None = None


class PerCpu(CpuPercent, kw_only=True):
    cpu: int
    seconds_total: CpuSeconds


class Cpu(Wire, kw_only=True):
    count: int
    total: CpuPercent
    per_cpu: list[PerCpu]
    seconds_total: CpuSeconds
    context_switches_per_sec: float | None = None
    interrupts_per_sec: float | None = None
    forks_per_sec: float | None = None
    procs_running: int | None = None
    procs_blocked: int | None = None
    context_switches_total: int | None = None
    interrupts_total: int | None = None
    forks_total: int | None = None


class Memory(Wire, kw_only=True):
    total_bytes: int | None = None
    available_bytes: int | None = None
    used_bytes: int | None = None
    used_percent: float | None = None
    free_bytes: int | None = None
    buffers_bytes: int | None = None
    cached_bytes: int | None = None
    shmem_bytes: int | None = None
    slab_bytes: int | None = None
    slab_reclaimable_bytes: int | None = None
    anon_bytes: int | None = None
    mapped_bytes: int | None = None
    active_file_bytes: int | None = None
    inactive_file_bytes: int | None = None
    dirty_bytes: int | None = None
    writeback_bytes: int | None = None
    page_tables_bytes: int | None = None
    kernel_stack_bytes: int | None = None
    committed_bytes: int | None = None
    commit_limit_bytes: int | None = None
    anon_huge_pages_bytes: int | None = None


class Swap(Wire, kw_only=True):
    total_bytes: int | None = None
    free_bytes: int | None = None
    used_bytes: int | None = None
    used_percent: float | None = None
    cached_bytes: int | None = None
    swap_in_pages_per_sec: float | None = None
    swap_out_pages_per_sec: float | None = None


class HugePages(Wire, kw_only=True):
    total: int | None = None
    free: int | None = None
    reserved: int | None = None
    surplus: int | None = None
    page_size_bytes: int | None = None
    hugetlb_bytes: int | None = None
    used_percent: float | None = None


class Ksm(Wire, kw_only=True):
    run: int | None = None
    pages_shared: int | None = None
    pages_sharing: int | None = None
    pages_unshared: int | None = None
    pages_volatile: int | None = None
    full_scans: int | None = None
    saved_bytes: int | None = None


class VmActivity(Wire, kw_only=True):
    page_faults_per_sec: float | None = None
    major_page_faults_per_sec: float | None = None
    page_in_bytes_per_sec: float | None = None
    page_out_bytes_per_sec: float | None = None
    oom_kills_total: int | None = None


class PressureLine(Wire, kw_only=True):
    avg10: float
    avg60: float
    avg300: float
    total_usec: int
    stall_percent: float | None = None


class Pressure(Wire, kw_only=True):
    some: PressureLine
    full: PressureLine | None = None


class PressureAll(Wire, kw_only=True):
    cpu: Pressure | None = None
    memory: Pressure | None = None
    io: Pressure | None = None


class Disk(Wire, kw_only=True):
    name: str
    major: int
    minor: int
    # On top of other devices (LVM, md, a zvol): left out of disk_total, which would count it twice.
    stacked: bool
    read_bytes_per_sec: float | None = None
    write_bytes_per_sec: float | None = None
    reads_per_sec: float | None = None
    writes_per_sec: float | None = None
    discard_bytes_per_sec: float | None = None
    busy_percent: float | None = None
    read_latency_ms: float | None = None
    write_latency_ms: float | None = None
    in_progress: int
    read_bytes_total: int
    write_bytes_total: int
    reads_total: int
    writes_total: int
    read_time_secs_total: float
    write_time_secs_total: float
    io_time_secs_total: float
    discarded_bytes_total: int | None = None
    flushes_total: int | None = None


class DiskTotal(Wire, kw_only=True):
    disks: list[str]
    read_bytes_per_sec: float | None = None
    write_bytes_per_sec: float | None = None
    reads_per_sec: float | None = None
    writes_per_sec: float | None = None


class Interface(Wire, kw_only=True):
    name: str
    kind: Literal["loopback", "physical", "virtual"]
    rx_bytes_per_sec: float | None = None
    tx_bytes_per_sec: float | None = None
    rx_packets_per_sec: float | None = None
    tx_packets_per_sec: float | None = None
    rx_errors_per_sec: float | None = None
    tx_errors_per_sec: float | None = None
    rx_dropped_per_sec: float | None = None
    tx_dropped_per_sec: float | None = None
    rx_bytes_total: int
    tx_bytes_total: int
    rx_packets_total: int
    tx_packets_total: int
    rx_errors_total: int
    tx_errors_total: int
    rx_dropped_total: int
    tx_dropped_total: int


class NetworkTotal(Wire, kw_only=True):
    interfaces: list[str]
    rx_bytes_per_sec: float | None = None
    tx_bytes_per_sec: float | None = None
    rx_packets_per_sec: float | None = None
    tx_packets_per_sec: float | None = None


class Filesystem(Wire, kw_only=True):
    mount_point: str
    device: str
    fs_type: str
    size_bytes: int | None = None
    used_bytes: int | None = None
    avail_bytes: int | None = None
    used_percent: float | None = None
    inodes_total: int | None = None
    inodes_used: int | None = None
    inodes_free: int | None = None
    inodes_used_percent: float | None = None
    read_only: bool


class TemperatureReading(Wire, kw_only=True):
    sensor: str
    kind: str
    label: str | None = None
    celsius: float | None = None


class NodeMetrics(Wire, kw_only=True):
    """``GET /api/monitoring/node/metrics``: one node sample. See docs/api.md."""

    # The contract fields: always present, null when unknown (the reason is in `unavailable`).
    timestamp: float
    cpu_usage: float | None
    memory_usage: float | None
    disk_usage: float | None
    load_average_1m: float | None
    load_average_5m: float | None
    load_average_15m: float | None
    interval_secs: float | None = None
    uptime_secs: float | None = None
    boot_time: int | None = None
    cpu: Cpu | None = None
    memory: Memory | None = None
    swap: Swap | None = None
    hugepages: HugePages | None = None
    ksm: Ksm | None = None
    vm: VmActivity | None = None
    pressure: PressureAll | None = None
    disks: list[Disk] = []
    disk_total: DiskTotal | None = None
    interfaces: list[Interface] = []
    network: NetworkTotal | None = None
    filesystems: list[Filesystem] = []
    temperatures: list[TemperatureReading] = []
    unavailable: dict[str, str] = {}


Limit = int | Literal["max"]
"""A limit in bytes (or pids, ...), or "max" for no limit, as the kernel writes it."""


class IoDevice(Wire, kw_only=True):
    major: int
    minor: int
    read_bytes: int
    write_bytes: int
    read_ops: int | None = None
    write_ops: int | None = None
    # On top of other devices (LVM, md): left out of the totals, which would count it twice.
    stacked: bool


Runtime = Literal[
    "docker",
    "podman",
    "containerd",
    "cri-o",
    "kubernetes",
    "lxc",
    "proxmox-lxc",
    "proxmox-qemu",
    "systemd-nspawn",
    "libvirt",
    "oci",
    "systemd",
]


class ContainerMetrics(Wire, kw_only=True):
    """``GET /api/containers/{ref}/metrics``: one guest's cgroup sample. See docs/api.md."""

    timestamp: float
    id: str
    name: str
    runtime: Runtime
    cgroup_path: str
    state: Literal["running", "paused", "empty"]
    processes: int
    cpu_cores: float | None = None
    cpu_usage_percent: float | None
    cpu_limit_cores: float | None = None
    cpu_limit_percent: float | None = None
    cpu_usage_secs_total: float | None = None
    cpu_user_secs_total: float | None = None
    cpu_system_secs_total: float | None = None
    cpu_periods_total: int | None = None
    cpu_throttled_periods_total: int | None = None
    cpu_throttled_secs_total: float | None = None
    cpu_throttled_percent: float | None = None
    memory_usage_bytes: int | None
    memory_limit_bytes: Limit | None
    memory_usage_percent: float | None = None
    memory_working_set_bytes: int | None = None
    memory_rss_bytes: int | None = None
    memory_cache_bytes: int | None = None
    memory_swap_bytes: int | None = None
    memory_oom_kills_total: int | None = None
    block_read_bytes: int | None
    block_write_bytes: int | None
    block_read_ops: int | None = None
    block_write_ops: int | None = None
    block_read_bytes_per_sec: float | None = None
    block_write_bytes_per_sec: float | None = None
    block_read_ops_per_sec: float | None = None
    block_write_ops_per_sec: float | None = None
    block_devices: list[IoDevice] = []
    pids_current: int | None = None
    pids_max: Limit | None = None
    network_mode: Literal["own", "host", "unknown"]
    network_rx_bytes: int | None
    network_tx_bytes: int | None
    network_rx_packets: int | None = None
    network_tx_packets: int | None = None
    network_rx_errors: int | None = None
    network_tx_errors: int | None = None
    network_rx_dropped: int | None = None
    network_tx_dropped: int | None = None
    network_rx_bytes_per_sec: float | None = None
    network_tx_bytes_per_sec: float | None = None
    network_rx_packets_per_sec: float | None = None
    network_tx_packets_per_sec: float | None = None
    network_interfaces: list[str] = []
    pressure_cpu: Pressure | None = None
    pressure_memory: Pressure | None = None
    pressure_io: Pressure | None = None
    unavailable: dict[str, str] = {}


class ContainersSample(Wire, kw_only=True):
    """One container sample as the core produces it (all guests at once)."""

    timestamp: float
    interval_secs: float | None = None
    host_cpus: int | None = None
    containers: list[ContainerMetrics] = []
    appeared: list[str] = []
    vanished: list[str] = []
    unavailable: dict[str, str] = {}


class ContainerSummary(Wire, kw_only=True):
    """One entry of ``GET /api/containers``."""

    id: str
    name: str
    runtime: Runtime
    cgroup_path: str
    state: Literal["running", "paused", "empty"]
    cpu_usage_percent: float | None
    memory_usage_bytes: int | None
    memory_limit_bytes: Limit | None


def container_summary(c: ContainerMetrics) -> ContainerSummary:
    """One container's entry of the list (REST and the WebSocket hello)."""
    return ContainerSummary(
        id=c.id,
        name=c.name,
        runtime=c.runtime,
        cgroup_path=c.cgroup_path,
        state=c.state,
        cpu_usage_percent=c.cpu_usage_percent,
        memory_usage_bytes=c.memory_usage_bytes,
        memory_limit_bytes=c.memory_limit_bytes,
    )


class ContainerList(Wire, kw_only=True):
    """``GET /api/containers``."""

    timestamp: float
    interval_secs: float | None = None
    host_cpus: int | None = None
    containers: list[ContainerSummary]
    unavailable: dict[str, str] = {}


# --- VMs (sources/vms*.py, rust/hvstat-core/src/vm/) -----------------------------------------------
# Collectors (libvirt, QMP) gather a VmObservation per VM each tick; the Rust core's VmSampler adds
# what /proc/<qemu pid> says and does the counter math, and returns a VmsSample of VmMetrics.

VmStatus = Literal["running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended", "nostate"]
"""libvirt's domain states (virDomainState), lower case; QMP's run states are mapped onto them."""

VmOrigin = Literal["libvirt", "qmp"]


class VcpuObservation(Wire, kw_only=True):
    """One vCPU as a collector saw it (libvirt ``vcpu.<n>.*``; QMP ``query-cpus-fast``)."""

    index: int
    # Host thread id of the vCPU (QMP thread-id); None: the core finds it by thread name.
    tid: int | None = None
    state: Literal["offline", "running", "blocked"] | None = None
    time_ns: int | None = None
    # libvirt vcpu.<n>.wait: time the vCPU thread waited for I/O.
    wait_ns: int | None = None
    # libvirt vcpu.<n>.delay: time runnable but not running (the host's view of steal).
    delay_ns: int | None = None
    # KVM's own counters (libvirt vcpu.<n>.exits.sum / halt_exits.sum; QMP query-stats), KVM only.
    kvm_exits: int | None = None
    kvm_halt_exits: int | None = None


class DiskObservation(Wire, kw_only=True):
    """One disk (libvirt ``block.<n>.*``; QMP ``query-blockstats`` for the counters and the
    allocation, ``query-block`` every 60 s for the path and sizes). Cumulative counters."""

    name: str
    path: str | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None
    read_ops: int | None = None
    write_ops: int | None = None
    flush_ops: int | None = None
    read_time_ns: int | None = None
    write_time_ns: int | None = None
    flush_time_ns: int | None = None
    capacity_bytes: int | None = None
    allocation_bytes: int | None = None
    physical_bytes: int | None = None


class NicObservation(Wire, kw_only=True):
    """One NIC's counters seen from the guest (libvirt ``net.<n>.*`` already is; a host tap's are
    swapped by the core). ``name`` is the host-side interface (tap/vnet)."""

    name: str
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    rx_packets: int | None = None
    tx_packets: int | None = None
    rx_errors: int | None = None
    tx_errors: int | None = None
    rx_dropped: int | None = None
    tx_dropped: int | None = None


class BalloonObservation(Wire, kw_only=True):
    """virtio-balloon: current size always; the rest only while a guest driver reports (libvirt
    ``balloon.*`` in KiB are converted to bytes by the collector; QMP ``guest-stats``)."""

    current_bytes: int | None = None
    maximum_bytes: int | None = None
    available_bytes: int | None = None
    usable_bytes: int | None = None
    unused_bytes: int | None = None
    disk_caches_bytes: int | None = None
    swap_in_bytes: int | None = None
    swap_out_bytes: int | None = None
    major_faults: int | None = None
    minor_faults: int | None = None
    # Unix seconds of the guest's last report; None or 0: the guest never reported.
    last_update: int | None = None


class VmObservation(Wire, kw_only=True):
    """What a collector read about one VM this tick: the input of the core's VmSampler."""

    # The VM's id in the API: libvirt's UUID; for QMP the socket's name without ".qmp" (Proxmox:
    # the vmid), since a QMP VM has a socket but not always a UUID.
    id: str
    name: str
    # The SMBIOS UUID: libvirt's domain UUID; QMP query-uuid when not all zero.
    uuid: str | None = None
    origin: VmOrigin
    status: VmStatus
    status_reason: str | None = None
    # The QEMU process; None when not running or not known.
    pid: int | None = None
    vcpus_current: int | None = None
    vcpus_max: int | None = None
    memory_max_bytes: int | None = None
    # libvirt cpu.time / cpu.user / cpu.system (the whole QEMU process, ns).
    cpu_time_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    vcpus: list[VcpuObservation] = []
    disks: list[DiskObservation] = []
    # None: the collector has no NIC counters (QMP); the core finds the QEMU process's taps.
    nics: list[NicObservation] | None = None
    balloon: BalloonObservation | None = None
    # Field -> why the collector could not read it.
    unavailable: dict[str, str] = {}


class VmObservations(Wire, kw_only=True):
    """One tick's input to the core: every VM that the collectors know."""

    vms: list[VmObservation]


class VcpuMetrics(Wire, kw_only=True):
    index: int
    tid: int | None = None
    state: Literal["offline", "running", "blocked"] | None = None
    # Cores' worth of time this vCPU ran over the interval, as percent of one core.
    cpu_percent: float | None = None
    cpu_secs_total: float | None = None
    # Runnable but waiting for a host CPU (schedstat run_delay or libvirt delay): steal as the
    # guest would see it, percent of the interval and cumulative.
    steal_percent: float | None = None
    steal_secs_total: float | None = None
    # libvirt vcpu.<n>.wait (I/O wait of the vCPU thread).
    wait_secs_total: float | None = None
    # KVM guests only: VM exits and halt exits per second (from the observation's kvm_* counters).
    kvm_exits_per_sec: float | None = None
    kvm_halt_exits_per_sec: float | None = None
    # "libvirt" (vcpu.<n>.time) or "thread" (/proc/<pid>/task/<tid>/stat and schedstat).
    origin: Literal["libvirt", "thread"] | None = None


class VmDisk(Wire, kw_only=True):
    name: str
    path: str | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None
    read_ops: int | None = None
    write_ops: int | None = None
    flush_ops: int | None = None
    read_bytes_per_sec: float | None = None
    write_bytes_per_sec: float | None = None
    read_ops_per_sec: float | None = None
    write_ops_per_sec: float | None = None
    # Mean time per request over the interval, from the time and request counters.
    read_latency_ms: float | None = None
    write_latency_ms: float | None = None
    flush_latency_ms: float | None = None
    capacity_bytes: int | None = None
    allocation_bytes: int | None = None
    physical_bytes: int | None = None


class VmNic(Wire, kw_only=True):
    # The host-side interface (vnetN, tapN, tap<vmid>i<n>); rx/tx as the guest sees them.
    name: str
    origin: Literal["libvirt", "tap"]
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    rx_packets: int | None = None
    tx_packets: int | None = None
    rx_errors: int | None = None
    tx_errors: int | None = None
    rx_dropped: int | None = None
    tx_dropped: int | None = None
    rx_bytes_per_sec: float | None = None
    tx_bytes_per_sec: float | None = None
    rx_packets_per_sec: float | None = None
    tx_packets_per_sec: float | None = None


class VmProcess(Wire, kw_only=True):
    """The QEMU process from /proc/<pid>: the host's side of the VM."""

    pid: int
    threads: int | None = None
    # Unix seconds the process started (from /proc/<pid>/stat starttime and the boot time).
    started_at: float | None = None
    rss_bytes: int | None = None
    cpu_secs_total: float | None = None
    # /proc/<pid>/io: bytes the process caused to be read from / written to storage.
    read_bytes: int | None = None
    write_bytes: int | None = None
    read_bytes_per_sec: float | None = None
    write_bytes_per_sec: float | None = None
    # The process's cgroup (the unified line, else the v1 cpu/cpuacct line), to join with
    # /api/containers.
    cgroup_path: str | None = None


class VmCgroup(Wire, kw_only=True):
    """The VM's cgroup as the containers source read it (same cgroup, its latest sample)."""

    container_id: str
    cgroup_path: str
    timestamp: float
    cpu_usage_percent: float | None = None
    memory_usage_bytes: int | None = None
    memory_limit_bytes: Limit | None = None
    pressure_cpu: Pressure | None = None
    pressure_memory: Pressure | None = None
    pressure_io: Pressure | None = None


class VmMetrics(Wire, kw_only=True):
    """``GET /api/vms/{ref}/metrics``: one VM. See docs/api.md and docs/metrics.md."""

    timestamp: float
    id: str
    name: str
    # The SMBIOS UUID (for libvirt the same as id); GET /api/vms/{ref} finds a VM by it too.
    uuid: str | None = None
    origin: VmOrigin
    status: VmStatus
    status_reason: str | None = None
    vcpus: int | None = None
    vcpus_max: int | None = None
    # CPU of the whole QEMU process (libvirt cpu.time, else /proc/<pid>/stat): share of the host
    # (all online CPUs = 100), cores in use, and share of the VM's own vCPUs (a fully busy 4-vCPU
    # guest reads 100).
    cpu_usage_percent: float | None
    cpu_cores: float | None = None
    cpu_vcpu_percent: float | None = None
    cpu_secs_total: float | None = None
    cpu_user_secs_total: float | None = None
    cpu_system_secs_total: float | None = None
    vcpu: list[VcpuMetrics] = []
    memory_max_bytes: int | None = None
    memory_balloon_bytes: int | None = None
    # The guest's own view (balloon driver stats): memory_usage_percent = (available - usable) /
    # available; null when the guest does not report.
    memory_available_bytes: int | None = None
    memory_usable_bytes: int | None = None
    memory_unused_bytes: int | None = None
    memory_usage_percent: float | None
    # The host's view: resident memory of the QEMU process.
    memory_rss_bytes: int | None = None
    memory_swap_in_bytes: int | None = None
    memory_swap_out_bytes: int | None = None
    memory_major_faults: int | None = None
    disk_read_bytes: int | None
    disk_write_bytes: int | None
    disk_read_bytes_per_sec: float | None = None
    disk_write_bytes_per_sec: float | None = None
    disk_read_ops_per_sec: float | None = None
    disk_write_ops_per_sec: float | None = None
    disks: list[VmDisk] = []
    network_rx_bytes: int | None
    network_tx_bytes: int | None
    network_rx_bytes_per_sec: float | None = None
    network_tx_bytes_per_sec: float | None = None
    nics: list[VmNic] = []
    process: VmProcess | None = None
    cgroup: VmCgroup | None = None
    unavailable: dict[str, str] = {}


class VmsSample(Wire, kw_only=True):
    """One VM sample as the core produces it (every VM at once)."""

    timestamp: float
    interval_secs: float | None = None
    host_cpus: int | None = None
    vms: list[VmMetrics] = []
    appeared: list[str] = []
    vanished: list[str] = []
    unavailable: dict[str, str] = {}


class VmSummary(Wire, kw_only=True):
    """One entry of ``GET /api/vms``."""

    id: str
    name: str
    origin: VmOrigin
    status: VmStatus
    vcpus: int | None = None
    cpu_usage_percent: float | None
    cpu_vcpu_percent: float | None = None
    memory_max_bytes: int | None = None
    memory_usage_percent: float | None
    memory_rss_bytes: int | None = None


def vm_summary(v: VmMetrics) -> VmSummary:
    return VmSummary(
        id=v.id,
        name=v.name,
        origin=v.origin,
        status=v.status,
        vcpus=v.vcpus,
        cpu_usage_percent=v.cpu_usage_percent,
        cpu_vcpu_percent=v.cpu_vcpu_percent,
        memory_max_bytes=v.memory_max_bytes,
        memory_usage_percent=v.memory_usage_percent,
        memory_rss_bytes=v.memory_rss_bytes,
    )


class VmList(Wire, kw_only=True):
    """``GET /api/vms``."""

    timestamp: float
    interval_secs: float | None = None
    host_cpus: int | None = None
    vms: list[VmSummary]
    unavailable: dict[str, str] = {}


class SourceHealth(Wire, kw_only=True):
    name: str
    status: Literal["ok", "degraded", "error"]
    interval_secs: float
    last_success: float | None = None
    last_attempt: float | None = None
    last_duration_secs: float | None = None
    consecutive_failures: int = 0
    error: str | None = None


class RemoteWriteHealth(Wire, kw_only=True):
    """``GET /health`` ``remote_write``: whether the receiver takes the batches. ``degraded`` from a
    failed send (unreachable, 5xx, 429) until the next accepted batch; the samples wait in the
    buffer meanwhile."""

    status: Literal["ok", "degraded"]
    url: str  # without user and password
    error: str | None = None  # the last failed send, null after a success
    last_success: float | None = None
    last_failure: float | None = None
    buffer_samples: int
    buffer_bytes: int
    samples_dropped: int  # the buffer's bound, oldest first
    samples_failed: int  # refused by the receiver (4xx): dropped, retrying cannot help


class Health(Wire, kw_only=True):
    """``GET /health``."""

    status: Literal["ok", "degraded", "error"]
    version: str
    uptime_secs: float
    sources: list[SourceHealth]
    remote_write: RemoteWriteHealth | None = None  # null when [remote_write] is off


class ErrorBody(Wire, kw_only=True):
    """Every 4xx/5xx response body."""

    error: str
    detail: Any = None


# --- history: GET /api/monitoring/node/history, GET /api/containers/{ref}/history ----------------


class SeriesStats(Wire, kw_only=True):
    """One field's values per step when a step holds several samples: the smallest, the mean and the
    largest of the samples that had a value (nulls are left out); all null when none had one."""

    min: list[int | float | None]
    avg: list[float | None]
    max: list[int | float | None]


class History(Wire, kw_only=True):
    """A history answer: timestamps[i] goes with series[f][i] (or series[f].min[i], .avg[i], .max[i])."""

    entity: str
    name: str | None = None
    resolution: Literal["full", "min/avg/max"]
    step: float
    since: float
    until: float
    timestamps: list[float]
    # Byte counts are integers; every other value a float.
    series: dict[str, list[int | float | None] | SeriesStats]


# --- WebSocket messages (/ws, docs/websocket.md) ------------------------------------------------------
# Every message is a JSON object whose "type" names it. The Python class names end in "Message" so
# they do not clash with the REST bodies they carry (NodeMetrics, ContainerMetrics).


class WsMessage(Wire, tag_field="type", kw_only=True):
    """Base of every WebSocket message: the ``type`` tag is the subclass's ``tag``."""


class NodeMetricsMessage(WsMessage, tag="NodeMetrics", kw_only=True):
    """Topic ``node``: one per node sample. The seed's headline fields, then the whole sample."""

    node_id: str
    timestamp: float
    cpu_usage: float | None
    memory_usage: float | None
    disk_usage: float | None
    # 1, 5 and 15 minutes, as in /proc/loadavg.
    load_averages: tuple[float | None, float | None, float | None]
    sample: NodeMetrics


class ContainerMetricsMessage(WsMessage, tag="ContainerMetrics", kw_only=True):
    """Topic ``containers``: one per container sample, with every container in it. Topic
    ``container:<id>``: the same message with only that container in ``containers`` (and, in the
    sample where it vanished, an empty ``containers`` and its id in ``vanished``)."""

    node_id: str
    timestamp: float
    interval_secs: float | None = None
    host_cpus: int | None = None
    containers: list[ContainerMetrics]
    vanished: list[str] = []
    unavailable: dict[str, str] = {}


class VmMetricsMessage(WsMessage, tag="VmMetrics", kw_only=True):
    """Topics ``vms`` and ``vm:<id>``: one per VM per VM sample. The seed's headline fields, then the
    whole VM sample under ``sample`` (as ``GET /api/vms/{ref}/metrics``). Units: percent
    (``cpu_usage`` of the host, ``memory_usage`` of the guest's memory), bytes per second (disk and
    network)."""

    node_id: str
    timestamp: float
    vm_id: str
    name: str | None = None
    cpu_usage: float | None
    memory_usage: float | None
    disk_read: float | None
    disk_write: float | None
    network_rx: float | None
    network_tx: float | None
    sample: VmMetrics


class VmStatusChangedMessage(WsMessage, tag="VmStatusChanged", kw_only=True):
    """Topics ``vms`` and ``vm:<id>``: a VM appeared (``previous`` null), changed state, or
    vanished (``vanished`` true; ``status`` is its last known state). Sent at once on libvirt
    lifecycle events, else when a tick sees the change; never twice for the same change."""

    node_id: str
    timestamp: float
    vm_id: str
    name: str | None = None
    origin: VmOrigin | None = None
    previous: VmStatus | None
    status: VmStatus
    # libvirt's state reason ("user", "booted", "destroyed", ...) or QEMU's run state.
    reason: str | None = None
    vanished: bool = False


# --- alerts (python/hvstat/alerts/, docs/alerts.md): the REST bodies and the two messages ----------

AlertSeverity = Literal["critical", "high", "medium", "low"]
AlertOp = Literal[">", ">=", "<", "<=", "==", "!="]
# Why an alert ended: its condition cleared, its entity (or list item) vanished, or its metric had no
# value for several evaluations in a row.
AlertEndReason = Literal["cleared", "vanished", "no_data"]


class Alert(Wire, kw_only=True):
    """One alert of ``GET /api/alerts``: one rule on one entity (and, for a ``[*]`` rule, one item)."""

    alert_id: str
    rule: str
    severity: AlertSeverity
    # pending: the condition holds, for less than the rule's ``for``; firing: notified; resolved:
    # ended (history only).
    state: Literal["pending", "firing", "resolved"]
    # What the alert is about, named as its topic: "node", "container:<id>", "vm:<id>".
    entity: str
    # The node's host name, the container's or the VM's name.
    entity_name: str | None = None
    # The key of the list element for a rule with [*] (a mount point, a disk, an interface).
    item: str | None = None
    metric: str
    op: AlertOp
    threshold: float
    # The latest value evaluated (null: the metric had none then).
    value: float | None
    # When the condition began to hold (unix seconds).
    since: float
    fired_at: float | None = None
    resolved_at: float | None = None
    reason: AlertEndReason | None = None
    # The rule's message, rendered when the alert fired (null while pending).
    message: str | None = None


class NotifierStatus(Wire, kw_only=True):
    """One notifier's counters since the start (``GET /api/alerts``, and /metrics)."""

    name: Literal["webhook", "email"]
    # Notifications delivered; given up after the last retry (or refused for good); not queued
    # because the queue was full; attempts that were retries.
    sent: int
    failed: int
    dropped: int
    retries: int
    queued: int
    queue_size: int
    last_success: float | None = None
    last_error: str | None = None


class AlertList(Wire, kw_only=True):
    """``GET /api/alerts``: active alerts (pending and firing), then recent resolved ones, newest first."""

    timestamp: float
    active: list[Alert]
    history: list[Alert]
    notifiers: list[NotifierStatus] = []


class AlertRuleInfo(Wire, kw_only=True):
    """One rule of ``GET /api/alerts/rules``, as compiled from the config."""

    name: str
    kind: Literal["node", "container", "vm"]
    metric: str
    op: AlertOp
    threshold: float
    for_secs: float
    severity: AlertSeverity
    message: str
    resolve_threshold: float | None = None
    resolve_for_secs: float = 0.0
    select_name: list[str] = []
    select_runtime: list[str] = []
    pending: int = 0
    firing: int = 0


class AlertRuleList(Wire, kw_only=True):
    """``GET /api/alerts/rules``."""

    rules: list[AlertRuleInfo]


class AlertTriggeredMessage(WsMessage, tag="AlertTriggered", kw_only=True):
    """Topic ``alerts``: a rule's condition held on an entity for the rule's ``for``. Sent once per
    alert; nothing more until it resolves. Also the body of the webhook (docs/alerts.md)."""

    node_id: str
    # When it fired.
    timestamp: float
    alert_id: str
    rule: str
    severity: AlertSeverity
    # What the alert is about, named as its topic: "node", "container:<id>", "vm:<id>".
    entity: str
    entity_name: str | None = None
    item: str | None = None
    metric: str
    op: AlertOp
    value: float
    threshold: float
    # When the condition began to hold (timestamp - since >= the rule's for).
    since: float
    message: str


class AlertResolvedMessage(WsMessage, tag="AlertResolved", kw_only=True):
    """Topic ``alerts``: a firing alert ended (``reason``); same ``alert_id`` as its AlertTriggered."""

    node_id: str
    # When it resolved.
    timestamp: float
    alert_id: str
    rule: str
    severity: AlertSeverity
    entity: str
    entity_name: str | None = None
    item: str | None = None
    metric: str
    op: AlertOp
    # The value that cleared it; null when it vanished or had no value.
    value: float | None
    threshold: float
    since: float
    fired_at: float
    reason: AlertEndReason
    message: str


class HelloMessage(WsMessage, tag="hello", kw_only=True):
    """The first message on every connection: who is talking, what the client is subscribed to, and
    the current state (so a client can draw before the next tick)."""

    version: str
    node_id: str
    topics: list[str]
    queue_size: int
    node: NodeMetrics | None = None
    containers: ContainerList | None = None
    vms: VmList | None = None


class ContainersSummaryMessage(WsMessage, tag="ContainersSummary", kw_only=True):
    """Topic ``containers.summary``: one per container sample, every container as its entry in
    ``GET /api/containers`` (a table's worth, about a tenth of ``ContainerMetrics``)."""

    node_id: str
    timestamp: float
    interval_secs: float | None = None
    host_cpus: int | None = None
    containers: list[ContainerSummary]
    unavailable: dict[str, str] = {}


class VmsSummaryMessage(WsMessage, tag="VmsSummary", kw_only=True):
    """Topic ``vms.summary``: one per VM sample, every VM as its entry in ``GET /api/vms``."""

    node_id: str
    timestamp: float
    interval_secs: float | None = None
    host_cpus: int | None = None
    vms: list[VmSummary]
    unavailable: dict[str, str] = {}


class SubscribedMessage(WsMessage, tag="subscribed", kw_only=True):
    """The answer to a ``subscribe``: the topics now in effect, container references resolved to
    ``container:<full id>``."""

    topics: list[str]


class ErrorMessage(WsMessage, tag="error", kw_only=True):
    """A client message the server could not act on; the connection stays open and the
    subscription unchanged."""

    error: str
    detail: Any = None


class SubscribeMessage(WsMessage, tag="subscribe", kw_only=True):
    """Client to server: replace the subscription with ``topics``."""

    topics: list[str]


SERVER_MESSAGES: tuple[type[WsMessage], ...] = (
    HelloMessage,
    NodeMetricsMessage,
    ContainerMetricsMessage,
    ContainersSummaryMessage,
    VmMetricsMessage,
    VmsSummaryMessage,
    VmStatusChangedMessage,
    AlertTriggeredMessage,
    AlertResolvedMessage,
    SubscribedMessage,
    ErrorMessage,
)
CLIENT_MESSAGES: tuple[type[WsMessage], ...] = (SubscribeMessage,)


node_metrics_decoder = msgspec.json.Decoder(NodeMetrics)
containers_sample_decoder = msgspec.json.Decoder(ContainersSample)
vms_sample_decoder = msgspec.json.Decoder(VmsSample)
encoder = msgspec.json.Encoder()
