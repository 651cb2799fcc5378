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


class SourceHealth(Wire, kw_only=True):
    name: str
    status: Literal["ok", "degraded", "error"]
    interval_secs: float
    last_success: float | None = None
    last_attempt: float | None = None
    last_duration_secs: float | None = None
    consecutive_failures: int = 0
    error: str | None = None


class Health(Wire, kw_only=True):
    """``GET /health``."""

    status: Literal["ok", "degraded", "error"]
    version: str
    uptime_secs: float
    sources: list[SourceHealth]


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
    """Topics ``vms`` and ``vm:<id>``. Defined for the schema only: there is no VM source yet, so
    nothing sends it. Units: percent (``cpu_usage`` of the host, ``memory_usage`` of the guest's
    memory), bytes per second (disk and network)."""

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


VmStatus = Literal["running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended", "nostate"]
"""libvirt's domain states (virDomainState), lower case."""


class VmStatusChangedMessage(WsMessage, tag="VmStatusChanged", kw_only=True):
    """Topics ``vms`` and ``vm:<id>``. Defined for the schema only: no producer yet."""

    node_id: str
    timestamp: float
    vm_id: str
    name: str | None = None
    previous: VmStatus | None
    status: VmStatus


class AlertTriggeredMessage(WsMessage, tag="AlertTriggered", kw_only=True):
    """Topic ``alerts``. Defined for the schema only: there are no alert rules yet."""

    node_id: str
    timestamp: float
    alert_id: str
    rule: str
    severity: Literal["info", "warning", "critical"]
    # What the alert is about, named as its topic: "node", "container:<id>", "vm:<id>".
    entity: str
    message: str
    value: float | None = None
    threshold: float | None = None


class AlertResolvedMessage(WsMessage, tag="AlertResolved", kw_only=True):
    """Topic ``alerts``. Defined for the schema only: there are no alert rules yet."""

    node_id: str
    timestamp: float
    alert_id: str
    rule: str
    entity: str
    triggered_at: float | None = None


class HelloMessage(WsMessage, tag="hello", kw_only=True):
    """The first message on every connection: who is talking, what the client is subscribed to, and
    the current state (so a client can draw before the next tick)."""

    version: str
    node_id: str
    topics: list[str]
    queue_size: int
    node: NodeMetrics | None = None
    containers: ContainerList | None = None


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
    VmMetricsMessage,
    VmStatusChangedMessage,
    AlertTriggeredMessage,
    AlertResolvedMessage,
    SubscribedMessage,
    ErrorMessage,
)
CLIENT_MESSAGES: tuple[type[WsMessage], ...] = (SubscribeMessage,)


node_metrics_decoder = msgspec.json.Decoder(NodeMetrics)
containers_sample_decoder = msgspec.json.Decoder(ContainersSample)
encoder = msgspec.json.Encoder()
