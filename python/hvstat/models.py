"""Wire types: every REST body and WebSocket message is one of these msgspec Structs.

The types the Rust core writes and reads (NodeMetrics, ContainersSample, VmsSample, ProcessesSample,
VmObservations and everything in them) are generated from the Rust serde types into ``hvstat.wire`` (see
scripts/gen_wire.py) and re-exported here; this module adds the Python-only ones (list summaries,
health, history, alerts, WebSocket messages) and the reused decoders and encoder.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# Every generated wire type, re-exported (``X as X``: explicit for mypy --strict); the rest of the
# service imports them from here.
from hvstat.wire import (
    BalloonObservation as BalloonObservation,
)
from hvstat.wire import (
    ContainerMetrics as ContainerMetrics,
)
from hvstat.wire import (
    ContainersSample as ContainersSample,
)
from hvstat.wire import (
    ContainerState as ContainerState,
)
from hvstat.wire import (
    Cpu as Cpu,
)
from hvstat.wire import (
    CpuPercent as CpuPercent,
)
from hvstat.wire import (
    CpuSeconds as CpuSeconds,
)
from hvstat.wire import (
    Disk as Disk,
)
from hvstat.wire import (
    DiskObservation as DiskObservation,
)
from hvstat.wire import (
    DiskTotal as DiskTotal,
)
from hvstat.wire import (
    Filesystem as Filesystem,
)
from hvstat.wire import (
    GuestProcesses as GuestProcesses,
)
from hvstat.wire import (
    HugePages as HugePages,
)
from hvstat.wire import (
    Interface as Interface,
)
from hvstat.wire import (
    InterfaceKind as InterfaceKind,
)
from hvstat.wire import (
    IoDevice as IoDevice,
)
from hvstat.wire import (
    Ksm as Ksm,
)
from hvstat.wire import (
    Limit as Limit,
)
from hvstat.wire import (
    LoadLevel as LoadLevel,
)
from hvstat.wire import (
    LoadStatus as LoadStatus,
)
from hvstat.wire import (
    Memory as Memory,
)
from hvstat.wire import (
    NetworkMode as NetworkMode,
)
from hvstat.wire import (
    NetworkTotal as NetworkTotal,
)
from hvstat.wire import (
    NicObservation as NicObservation,
)
from hvstat.wire import (
    NicOrigin as NicOrigin,
)
from hvstat.wire import (
    NodeMetrics as NodeMetrics,
)
from hvstat.wire import (
    PerCpu as PerCpu,
)
from hvstat.wire import (
    Pressure as Pressure,
)
from hvstat.wire import (
    PressureAll as PressureAll,
)
from hvstat.wire import (
    PressureLine as PressureLine,
)
from hvstat.wire import (
    ProcessesSample as ProcessesSample,
)
from hvstat.wire import (
    ProcessGuestKind as ProcessGuestKind,
)
from hvstat.wire import (
    ProcessHost as ProcessHost,
)
from hvstat.wire import (
    ProcessMetrics as ProcessMetrics,
)
from hvstat.wire import (
    ProcessView as ProcessView,
)
from hvstat.wire import (
    Runtime as Runtime,
)
from hvstat.wire import (
    Swap as Swap,
)
from hvstat.wire import (
    TemperatureReading as TemperatureReading,
)
from hvstat.wire import (
    UserMetrics as UserMetrics,
)
from hvstat.wire import (
    VcpuMetrics as VcpuMetrics,
)
from hvstat.wire import (
    VcpuObservation as VcpuObservation,
)
from hvstat.wire import (
    VcpuOrigin as VcpuOrigin,
)
from hvstat.wire import (
    VcpuState as VcpuState,
)
from hvstat.wire import (
    VmActivity as VmActivity,
)
from hvstat.wire import (
    VmCgroup as VmCgroup,
)
from hvstat.wire import (
    VmDisk as VmDisk,
)
from hvstat.wire import (
    VmMetrics as VmMetrics,
)
from hvstat.wire import (
    VmNic as VmNic,
)
from hvstat.wire import (
    VmObservation as VmObservation,
)
from hvstat.wire import (
    VmObservations as VmObservations,
)
from hvstat.wire import (
    VmOrigin as VmOrigin,
)
from hvstat.wire import (
    VmProcess as VmProcess,
)
from hvstat.wire import (
    VmsSample as VmsSample,
)
from hvstat.wire import (
    VmStatus as VmStatus,
)
from hvstat.wire import (
    Wire as Wire,
)


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


class StorageHealth(Wire, kw_only=True):
    """``GET /health`` ``storage``: the on-disk history ([storage]). ``degraded`` while the database
    cannot be opened or written (a full disk, a read-only path): ``error`` says why, history goes on
    in memory and the closed buckets wait (``pending_buckets``) until the disk takes them."""

    status: Literal["ok", "degraded"]
    path: str
    error: str | None = None
    bytes: int  # the database file and its write-ahead log
    max_bytes: int
    tiers: list[str]  # bucket widths, finest first ("1m", "5m", "1h", "1d")
    last_write: float | None = None
    pending_buckets: int = 0


class FileOutputHealth(Wire, kw_only=True):
    """``GET /health`` ``file_output``: the ``[outputs.file]`` sink. ``degraded`` while the file cannot
    be written (a full disk, a read-only or missing directory): ``error`` says why; the samples of
    that time are not written (``samples_dropped`` counts them) and live metrics go on."""

    status: Literal["ok", "degraded"]
    path: str
    error: str | None = None
    samples_written: int
    # Not written: the disk refused them, or the writer's queue was full.
    samples_dropped: int
    bytes: int  # of the current file
    rotations: int
    last_write: float | None = None


class NodeInfo(Wire, kw_only=True):
    """``GET /health`` ``node``: who this node is (hvstat/identity.py, docs/operations.md "Node
    identity")."""

    name: str  # [server] node_name, else the hostname: the node_id of every /ws message
    machine_id: str | None  # /etc/machine-id; null when absent or unreadable (unavailable says why)
    labels: dict[str, str]  # [labels]
    unavailable: dict[str, str] = {}


class ClockHealth(Wire, kw_only=True):
    """``GET /health`` ``clock``: the wall clock against the monotonic clock and the kernel's NTP
    state (hvstat/clock.py, docs/operations.md "Clock"). ``degraded`` for 10 minutes after a step,
    while the clock drifts past 100 ppm, and while the remote-write receiver's Date is more than 2 s
    beyond its uncertainty away; an unsynchronised clock alone is not degraded."""

    status: Literal["ok", "degraded"]
    error: str | None = None  # why it is degraded
    steps: int  # steps seen since the start
    stepped: bool = False  # a step in the last 10 minutes (what makes it degraded)
    last_step_seconds: float | None = None  # the last step: how far the wall clock moved (negative: back)
    last_step_at: float | None = None  # unix seconds, after the step
    drift_ppm: float | None = None  # sub-step changes of wall - monotonic over the last 10 minutes
    synchronized: bool | None = None  # adjtimex: NTP has the clock synchronised
    max_error_secs: float | None = None  # adjtimex maxerror
    estimated_error_secs: float | None = None  # adjtimex esterror
    receiver_offset_secs: float | None = None  # the remote-write receiver's Date minus this clock
    unavailable: dict[str, str] = {}


class Health(Wire, kw_only=True):
    """``GET /health``."""

    status: Literal["ok", "degraded", "error"]
    version: str
    uptime_secs: float
    node: NodeInfo
    sources: list[SourceHealth]
    remote_write: RemoteWriteHealth | None = None  # null when [remote_write] is off
    storage: StorageHealth | None = None  # null when [storage] path = "" (history in memory only)
    clock: ClockHealth | None = None  # null only outside the service (a Health built by hand)
    file_output: FileOutputHealth | None = None  # null when [outputs.file] is off


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
    # Where the answer comes from: "memory" (the in-memory history), or the on-disk tier by its
    # bucket width ("1m", "5m", "1h", "1d" at the default [storage] tiers).
    tier: str = "memory"
    since: float
    until: float
    timestamps: list[float]
    # Byte counts are integers; every other value a float.
    series: dict[str, list[int | float | None] | SeriesStats]


# --- the fleet view: GET /api/fleet/nodes, GET /api/fleet/nodes/{name}/history (hvstat/fleet.py) ----
# Answered from PromQL queries against the engine every node remote-writes to ([fleet] query_url);
# nothing of it is stored here.


class FleetNode(Wire, kw_only=True):
    """One node of ``GET /api/fleet/nodes``: its identity and the numbers of its newest sample in
    the engine. A null number says why in ``unavailable``."""

    name: str  # the node's ``node`` label: its [server] node_name
    # Its [labels] (hvstat_node_info's labels but node and machine_id).
    labels: dict[str, str] = {}
    machine_id: str | None = None
    # The node's own hvstat, from its ``url`` label when that is an http(s) URL.
    url: str | None = None
    # When the node's node source last took a sample that reached the engine, unix seconds.
    last_seen: float
    cpu_usage: float | None = None  # percent busy over the last two samples
    memory_usage: float | None = None  # percent (MemTotal - MemAvailable) / MemTotal
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    disk_usage: float | None = None  # percent used of the root filesystem, as df
    load_average_1m: float | None = None
    load_average_5m: float | None = None
    load_average_15m: float | None = None
    containers: int | None = None
    vms: int | None = None
    vms_running: int | None = None
    alerts_firing: int | None = None
    unavailable: dict[str, str] = {}


class FleetNodeList(Wire, kw_only=True):
    """``GET /api/fleet/nodes``: every node whose newest sample is at most ``within`` seconds old
    at ``timestamp`` (now, or the request's ``time``), by name."""

    engine: str  # the query URL, without user and password
    timestamp: float
    within: float
    nodes: list[FleetNode]


class FleetHistory(Wire, kw_only=True):
    """``GET /api/fleet/nodes/{name}/history``: ``timestamps[i]`` goes with ``series[f][i]``, the
    node's newest sample in (t - ``window``, t]; null where it had none."""

    node: str
    since: float
    until: float
    step: float
    window: float
    timestamps: list[float]
    series: dict[str, list[float | None]]


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
AlertEndReason = Literal["cleared", "vanished", "no_data", "rule_removed"]


class Alert(Wire, kw_only=True):
    """One alert of ``GET /api/alerts``: one rule on one entity (and, for a ``[*]`` rule, one item)."""

    alert_id: str
    rule: str
    severity: AlertSeverity
    # pending: the condition holds, for less than the rule's ``for``; firing: notified; resolved:
    # ended (history only).
    state: Literal["pending", "firing", "resolved"]
    # What the alert is about, named as its topic: "node", "container:<id>", "vm:<id>"; "user:<name>",
    # "process:<pid>".
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
    kind: Literal["node", "container", "vm", "user", "process", "clock"]
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
    # What the alert is about, named as its topic: "node", "container:<id>", "vm:<id>"; "user:<name>",
    # "process:<pid>".
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
    # This server serves the fleet view (``[fleet] query_url`` set: ``GET /api/fleet/nodes``).
    fleet: bool = False
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


class ProcessesMessage(WsMessage, tag="Processes", kw_only=True):
    """Topic ``processes``: one per process sample, the ``[processes] top`` processes by CPU (then
    RSS), highest first, as ``GET /api/processes``; with the host's sums and the load status."""

    node_id: str
    timestamp: float
    interval_secs: float | None = None
    host: ProcessHost
    status: LoadStatus
    # Processes in the sample (the ignored ones left out), of which ``processes`` are the first.
    total: int
    processes: list[ProcessMetrics]


class UsersMessage(WsMessage, tag="Users", kw_only=True):
    """Topic ``users``: one per process sample, every user at or above ``min_uid`` and not excluded,
    highest CPU first, as ``GET /api/users``; with the load status (its persistent heavy users)."""

    node_id: str
    timestamp: float
    interval_secs: float | None = None
    status: LoadStatus
    users: list[UserMetrics]


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
    ProcessesMessage,
    UsersMessage,
    AlertTriggeredMessage,
    AlertResolvedMessage,
    SubscribedMessage,
    ErrorMessage,
)
CLIENT_MESSAGES: tuple[type[WsMessage], ...] = (SubscribeMessage,)


node_metrics_decoder = msgspec.json.Decoder(NodeMetrics)
containers_sample_decoder = msgspec.json.Decoder(ContainersSample)
vms_sample_decoder = msgspec.json.Decoder(VmsSample)
processes_sample_decoder = msgspec.json.Decoder(ProcessesSample)
process_view_decoder = msgspec.json.Decoder(ProcessView)
encoder = msgspec.json.Encoder()
