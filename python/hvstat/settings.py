"""Settings: a TOML file plus ``HVSTAT_<TABLE>_<KEY>`` environment overrides, read into one frozen
object, with the checks each table can make on its own. Errors name the offending key (and the
variable, for overrides).

This module is the bottom of the service: it imports only the models. Loading *and* validating
everything (tokens, alert rules, the core's sampler configs, the bind) is ``hvstat.config.load_settings``,
the one entry point the CLI and the SIGHUP reload use."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from hvstat.identity import MAX_LABELS, hostname, label_problem, node_name_problem
from hvstat.models import AlertOp, AlertSeverity

DEFAULT_CONFIG_PATH = Path("/etc/hvstat/hvstat.toml")
ENV_PREFIX = "HVSTAT_"
# Not a setting: names the config file itself.
ENV_CONFIG = "HVSTAT_CONFIG"

Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400)]
# A sampling or sending interval: below a tenth of a second a source would only burn a core and
# flood the log (1e-9 was accepted once).
MIN_INTERVAL = 0.1
Interval = Annotated[float, msgspec.Meta(ge=MIN_INTERVAL, le=86400)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Cap = Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class ConfigError(Exception):
    """The configuration is invalid; the message names the key."""


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A config table. msgspec does not inherit kw_only, so each subclass repeats it. Each also
    repeats frozen=True: msgspec inherits it, but mypy (through dataclass_transform) would take a
    subclass without it for a non-frozen dataclass inheriting a frozen one (msgspec's advice in
    msgspec/msgspec#657)."""


class ServerSettings(_Table, frozen=True, kw_only=True):
    # This node's name in every /ws message (node_id), hvstat_node_info and remote write's "node"
    # label (hvstat/identity.py); unset: the hostname.
    node_name: str | None = None
    host: str = "127.0.0.1"
    port: Port = 9106
    # API tokens (docs/operations.md, "Security"). With any token set, every request needs one
    # (Authorization: Bearer; for /ws also ?token= or a first "auth" message), loopback or not.
    tokens: list[str] = []
    # A file of tokens, one per line ("#" starts a comment line); read at start.
    token_file: str | None = None
    # Binding anywhere but loopback needs a token; this serves it without one (a warning is logged).
    allow_unauthenticated_remote: bool = False
    # Paths answered without a token (exact paths): /health for load balancers. The dashboard's
    # static page and files (/ui/...) never need one; the data they load does.
    public_paths: list[str] = msgspec.field(default_factory=lambda: ["/health"])
    # Origins (scheme://host[:port]) whose pages may open /ws, or ["*"]. Empty: the page's host
    # must be the Host the request came to (same origin); a request without Origin (not a
    # browser) is always let through to the token check.
    allowed_origins: list[str] = []
    # TLS: PEM certificate (chain) and key, handed to uvicorn; both or neither.
    tls_cert: str | None = None
    tls_key: str | None = None
    # Request limits: a body over this is a 413 (hvstat has only GET routes), a query string over
    # this a 414.
    max_body_bytes: Annotated[int, msgspec.Meta(ge=0, le=1 << 20)] = 0
    max_query_bytes: Annotated[int, msgspec.Meta(ge=64, le=65536)] = 4096
    # Seconds a /ws client without a token in its handshake has to send {"type": "auth", ...}.
    ws_auth_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    # Seconds a connection has to send a whole request (head and body); then 408 and closed.
    request_timeout: Annotated[float, msgspec.Meta(ge=1, le=300)] = 10.0
    # Host names (or addresses) requests may name in their Host header besides the bind address
    # and, on a loopback bind, localhost and the loopback addresses: the DNS-rebinding check
    # (docs/operations.md, "Security"). ["*"] turns the check off.
    allowed_hosts: list[str] = []


class MonitoringSettings(_Table, frozen=True, kw_only=True):
    node_metrics_interval: Interval = 5.0
    vm_metrics_interval: Interval = 10.0
    enable_history: bool = True
    history_retention: Annotated[int, msgspec.Meta(ge=0)] = 86400
    # Seconds of history kept at full resolution (every sample); older samples survive only as
    # min/avg/max per history_bucket. Capped at history_retention (see docs/operations.md).
    history_full_resolution: Annotated[int, msgspec.Meta(ge=0)] = 3600
    # Width in seconds of the min/avg/max buckets kept for history_retention.
    history_bucket: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    max_ws_clients: Annotated[int, msgspec.Meta(ge=0)] = 100
    # Messages a WebSocket client may have waiting; one more and it is disconnected as too slow.
    ws_queue_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 16
    # Points (timestamps) one history answer may hold; more is a 400 "too many points".
    history_max_points: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000


class NodeSettings(_Table, frozen=True, kw_only=True):
    """What the node sampler reads. Unset keys take the Rust core's defaults, which are the only
    copy of them (see docs/operations.md or ``hvstat check-config`` for the effective values)."""

    proc_root: str | None = None
    sys_root: str | None = None
    rootfs: str | None = None
    disk_include: list[str] | None = None
    disk_exclude: list[str] | None = None
    interface_include: list[str] | None = None
    interface_exclude: list[str] | None = None
    interface_virtual: list[str] | None = None
    fs_type_exclude: list[str] | None = None
    mount_point_exclude: list[str] | None = None
    max_disks: Cap | None = None
    max_interfaces: Cap | None = None
    max_filesystems: Cap | None = None

    def core_config_json(self) -> str:
        """The set keys only, as the JSON the core's NodeSampler takes."""
        return msgspec.json.encode({k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}).decode()


class ContainerSettings(_Table, frozen=True, kw_only=True):
    """Container (cgroup guest) discovery and sampling. Unset keys take the Rust core's defaults;
    proc_root, sys_root and rootfs default to the [node] table's."""

    enabled: bool = True
    include_services: bool | None = None
    max_containers: Cap | None = None
    docker_root: str | None = None
    podman_root: str | None = None
    pods_log_root: str | None = None
    pve_root: str | None = None
    proc_root: str | None = None
    sys_root: str | None = None
    rootfs: str | None = None

    def core_config_json(self, node: NodeSettings) -> str:
        """The set keys, with the node's roots where this table sets none, as the core's JSON."""
        roots = {k: getattr(node, k) for k in ("proc_root", "sys_root", "rootfs") if getattr(node, k) is not None}
        own = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None and k != "enabled"}
        return msgspec.json.encode({**roots, **own}).decode()


class VmSettings(_Table, frozen=True, kw_only=True):
    """VM sources: libvirt (bulk domain stats) and QEMU's QMP sockets for VMs libvirt does not own."""

    enabled: bool = True
    # "auto": use libvirt when libvirt-python is installed, and report it degraded only once a
    # connection had worked; "on": libvirtd must be reachable (degraded until it is); "off".
    libvirt: Literal["auto", "on", "off"] = "auto"
    libvirt_uri: str = "qemu:///system"
    # Where libvirt writes each running domain's QEMU pid as <name>.pid (qemu:///system's default).
    libvirt_pid_dir: str = "/run/libvirt/qemu"
    # Seconds without an answer from libvirtd (keepalive) before the connection counts as dead.
    libvirt_timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    qmp: bool = True
    # Globs of QMP sockets of QEMU processes libvirt does not manage (Proxmox's by default).
    # Sockets under libvirt's own directories are never touched.
    qmp_sockets: list[str] = msgspec.field(default_factory=lambda: ["/run/qemu-server/*.qmp", "/var/run/qemu-server/*.qmp"])
    qmp_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    # QEMU serves one monitor client per socket and makes the next wait: keeping ours open would
    # block Proxmox's qm and pvestatd, so by default hvstat connects for each poll (~0.3 ms more
    # per VM). true: keep the connections open (for sockets nobody else uses).
    qmp_keep_open: bool = False
    proc_root: str | None = None
    sys_root: str | None = None

    def core_config_json(self, node: NodeSettings) -> str:
        """The roots (this table's, else the [node] table's; the filesystem root, where the cgroup
        hierarchies are mounted, is the [node] table's) as the core's VmSampler JSON."""
        roots = {k: getattr(self, k) or getattr(node, k) for k in ("proc_root", "sys_root")}
        roots["rootfs"] = node.rootfs
        return msgspec.json.encode({k: v for k, v in roots.items() if v is not None}).decode()


class ProcessUserSettings(_Table, frozen=True, kw_only=True):
    """``[processes.users.<name>]``: one user's thresholds, overriding ``[processes]``'s."""

    cpu_threshold: Annotated[float, msgspec.Meta(ge=0)] | None = None
    memory_threshold: Annotated[float, msgspec.Meta(ge=0)] | None = None


class ProcessStatusSettings(_Table, frozen=True, kw_only=True):
    """``[processes.status]``: the load status rule's thresholds (docs/metrics.md, "Load status")."""

    medium_cpu: Annotated[float, msgspec.Meta(ge=0)] | None = None
    heavy_cpu: Annotated[float, msgspec.Meta(ge=0)] | None = None
    medium_memory: Annotated[float, msgspec.Meta(ge=0)] | None = None
    heavy_memory: Annotated[float, msgspec.Meta(ge=0)] | None = None
    persistent_user_level: Literal["light", "medium", "heavy"] | None = None


class ProcessSettings(_Table, frozen=True, kw_only=True):
    """``[processes]``: the process and user view (docs/metrics.md, "Processes and users"). Unset
    keys take the Rust core's defaults; proc_root and rootfs default to the [node] table's."""

    enabled: bool = True
    # Seconds between samples; unset: [monitoring] node_metrics_interval.
    interval: Interval | None = None
    # Processes each tick sends on the /ws "processes" topic (the highest CPU first).
    top: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 20
    # Per-process Prometheus series for the top N by CPU; 0 (default): none (cardinality).
    prometheus_top: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    min_uid: Annotated[int, msgspec.Meta(ge=0, le=4_294_967_295)] | None = None
    exclude_users: list[str] | None = None
    ignore_processes: list[str] | None = None
    persistent_time: Seconds | None = None
    cpu_threshold: Annotated[float, msgspec.Meta(ge=0)] | None = None
    memory_threshold: Annotated[float, msgspec.Meta(ge=0)] | None = None
    max_kept_open: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    users: dict[str, ProcessUserSettings] = {}
    status: ProcessStatusSettings = ProcessStatusSettings()
    proc_root: str | None = None
    rootfs: str | None = None

    def interval_secs(self, monitoring: MonitoringSettings) -> float:
        return self.interval if self.interval is not None else monitoring.node_metrics_interval

    def core_config_json(self, node: NodeSettings) -> str:
        """The set keys, renamed to the core's (units in the names), with the node's roots where
        this table sets none."""
        core: dict[str, object] = {k: getattr(node, k) for k in ("proc_root", "rootfs") if getattr(node, k) is not None}
        names = {
            "proc_root": "proc_root",
            "rootfs": "rootfs",
            "min_uid": "min_uid",
            "exclude_users": "exclude_users",
            "ignore_processes": "ignore_processes",
            "persistent_time": "persistent_time_secs",
            "cpu_threshold": "cpu_threshold_percent",
            "memory_threshold": "memory_threshold_percent",
            "max_kept_open": "max_kept_open",
        }
        for key, core_key in names.items():
            v = getattr(self, key)
            if v is not None:
                core[core_key] = v
        if self.users:
            core["users"] = {
                name: {
                    k: v
                    for k, v in (("cpu_threshold_percent", u.cpu_threshold), ("memory_threshold_percent", u.memory_threshold))
                    if v is not None
                }
                for name, u in self.users.items()
            }
        status = {f"{k}_percent" if k != "persistent_user_level" else k: v for k, v in msgspec.structs.asdict(self.status).items() if v is not None}
        if status:
            core["status"] = status
        return msgspec.json.encode(core).decode()


class LoggingSettings(_Table, frozen=True, kw_only=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # "text": "LEVEL logger: message" lines; "json": one JSON object per line (ts, level, logger,
    # msg and any extra fields), uvicorn's error and access logs included (hvstat/logs.py).
    format: Literal["text", "json"] = "text"


class AlertRuleSelect(_Table, frozen=True, kw_only=True):
    """Which guests a container or VM rule applies to; both keys must match when both are set."""

    # Shell globs on the container's or VM's name.
    name: str | list[str] | None = None
    # Container runtimes ("docker", "lxc", ...); for VMs the origin ("libvirt", "qmp").
    runtime: str | list[str] | None = None


class AlertRuleSettings(_Table, frozen=True, kw_only=True):
    """One ``[[alerts.rules]]`` table as written; hvstat.alerts.rules checks and compiles it at
    load (docs/alerts.md)."""

    name: str
    metric: str
    op: AlertOp
    threshold: float
    severity: AlertSeverity
    # How long the condition must hold before the alert fires: seconds or "30s", "5m", "1h".
    for_: str | float = msgspec.field(default=0.0, name="for")
    message: str | None = None
    # Hysteresis: a firing alert resolves only once the value no longer passes this threshold.
    resolve_threshold: float | None = None
    # How long the condition must stay cleared before a firing alert resolves.
    resolve_for: str | float = 0.0
    select: AlertRuleSelect | None = None


class _NotifierTable(_Table, frozen=True, kw_only=True):
    # Per attempt (connect, send, answer).
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # Attempts after the first; waits double from `backoff` up to `backoff_max`, with jitter.
    retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5
    backoff: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    backoff_max: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    # Notifications waiting to be sent; one more is dropped (and counted).
    queue_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    tls_verify: bool = True
    # A CA bundle (PEM) to verify the server with instead of the system's.
    ca_file: str | None = None


class WebhookSettings(_NotifierTable, frozen=True, kw_only=True):
    """``[alerts.webhook]``: every AlertTriggered / AlertResolved message POSTed as JSON."""

    url: str
    headers: dict[str, str] = {}


class EmailRecipients(_Table, frozen=True, kw_only=True):
    """``[alerts.email.recipients]``: per severity, who gets mail instead of ``to`` ([] for nobody)."""

    critical: list[str] | None = None
    high: list[str] | None = None
    medium: list[str] | None = None
    low: list[str] | None = None


class EmailSettings(_NotifierTable, frozen=True, kw_only=True):
    """``[alerts.email]``: one mail per AlertTriggered / AlertResolved over SMTP."""

    host: str
    # Default: 587 for starttls, 465 for tls, 25 for none.
    port: Port | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    # A file holding the password (e.g. a systemd credential); the one trailing newline is dropped.
    password_file: str | None = None
    from_: str = msgspec.field(name="from")
    to: list[str] = []
    recipients: EmailRecipients = EmailRecipients()
    subject_prefix: str = "[hvstat]"

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.security]

    def recipients_for(self, severity: str) -> list[str]:
        own = getattr(self.recipients, severity)
        return list(self.to) if own is None else list(own)


class AlertSettings(_Table, frozen=True, kw_only=True):
    """``[alerts]``: rules evaluated on every sample, and where notifications go (docs/alerts.md).
    Rules, webhook and email are set in the file; of this table only ``enabled``,
    ``history_size`` and ``clock_rules`` have environment overrides."""

    enabled: bool = True
    # Resolved alerts kept for GET /api/alerts.
    history_size: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 500
    # The built-in clock rules (clock-stepped, clock-unsynchronised; docs/alerts.md, "Clock").
    clock_rules: bool = False
    rules: list[AlertRuleSettings] = []
    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None


class RemoteWriteSettings(_Table, frozen=True, kw_only=True):
    """``[remote_write]``: push the series of /metrics to a Prometheus remote-write 1.0 receiver
    (Prometheus with --web.enable-remote-write-receiver, VictoriaMetrics, Mimir...), through an
    on-disk buffer so that an outage of the receiver loses nothing (hvstat/remote_write.py,
    docs/operations.md "Remote write")."""

    enabled: bool = False
    # The receiver's write endpoint, e.g. http://prom:9090/api/v1/write.
    url: str | None = None
    # Seconds between batches; default: monitoring.node_metrics_interval. Every sample a source
    # takes is sent once, with its own timestamp, whatever this interval.
    interval: Interval | None = None
    # Extra request headers, e.g. Authorization = "Bearer ..." (shown as *** by check-config).
    headers: dict[str, str] = {}
    # Seconds per request (connect, send, answer); more counts as a failure and is retried.
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # Where batches wait until the receiver accepted them (created if missing).
    buffer_dir: str = "/var/lib/hvstat/remote-write"
    # Bytes of batches kept on disk (compressed); past it the oldest batches are dropped (counted
    # in hvstat_remote_write_samples_dropped_total).
    buffer_max_bytes: Annotated[int, msgspec.Meta(ge=1 << 16, le=1 << 40)] = 256 << 20
    # A failed send is retried after `backoff` seconds, doubling up to `backoff_max`, each wait
    # with jitter (between half and all of it); retries go on until the batch is sent or dropped.
    backoff: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    backoff_max: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    tls_verify: bool = True
    # A CA bundle (PEM) to verify the receiver with instead of the system's.
    ca_file: str | None = None


FileOutputKind = Literal["node", "containers", "vms", "vm_status", "processes"]
FILE_OUTPUT_KINDS: tuple[FileOutputKind, ...] = ("node", "containers", "vms", "vm_status", "processes")


class FileOutputSettings(_Table, frozen=True, kw_only=True):
    """``[outputs.file]``: every published sample as one JSON line in a file, rotated by size and age
    (hvstat/file_sink.py, docs/operations.md "Outputs")."""

    enabled: bool = False
    # The file being written; rotated files sit beside it as <stem>-<UTC time>.jsonl[.gz].
    path: str = "/var/lib/hvstat/samples.jsonl"
    # Rotate before a line would take the file past this many bytes.
    max_bytes: Annotated[int, msgspec.Meta(ge=1 << 12, le=1 << 40)] = 100 << 20
    # Rotate when the file's first line is older than this many seconds; 0: by size only.
    max_age: Annotated[float, msgspec.Meta(ge=0, le=366 * 86400)] = 86400.0
    # Rotated files kept (the newest); older ones are deleted. 0: none (the current file only).
    keep: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 7
    # gzip each rotated file (in the writer's thread).
    compress: bool = False
    # Which samples: node, containers, vms, vm_status (VmStatusChanged events), processes.
    kinds: list[FileOutputKind] = msgspec.field(default_factory=lambda: list(FILE_OUTPUT_KINDS))
    # Samples waiting for the writer's thread; one more is dropped (and counted).
    queue_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000


class OutputSettings(_Table, frozen=True, kw_only=True):
    """``[outputs]``: where samples are written besides the API (one sub-table per kind of output)."""

    file: FileOutputSettings = FileOutputSettings()


class FleetSettings(_Table, frozen=True, kw_only=True):
    """``[fleet]``: the fleet view (``GET /api/fleet/...``, the dashboard's Fleet page), PromQL
    queries against the engine every node remote-writes to (hvstat/fleet.py, docs/operations.md
    "Fleet"). Off while ``query_url`` is unset."""

    # The engine's Prometheus query API base: http://prom:9090 (Prometheus) or
    # http://vm:8428 (VictoriaMetrics); hvstat appends /api/v1/query and /api/v1/query_range.
    query_url: str | None = None
    # Extra request headers, e.g. Authorization = "Bearer ..." (shown as *** by check-config).
    headers: dict[str, str] = {}
    # Seconds per query; more answers the request with 504.
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    tls_verify: bool = True
    # A CA bundle (PEM) to verify the engine with instead of the system's.
    ca_file: str | None = None
    # GET /api/fleet/nodes lists the nodes whose last sample is at most this many seconds old.
    within: Annotated[float, msgspec.Meta(ge=1, le=30 * 86400)] = 300.0
    # A history point at time t is the node's newest sample in (t - max(step, lookback), t]; CPU
    # needs two samples in it, so keep it above twice the nodes' node_metrics_interval.
    lookback: Annotated[float, msgspec.Meta(ge=1, le=86400)] = 60.0


class StorageTier(_Table, frozen=True, kw_only=True):
    """One ``[[storage.tiers]]`` table: min/avg/max buckets of ``bucket`` seconds kept for ``span`` seconds."""

    bucket: Annotated[int, msgspec.Meta(ge=1, le=7 * 86400)]
    span: Annotated[int, msgspec.Meta(ge=1, le=20 * 365 * 86400)]


DEFAULT_STORAGE_TIERS = (
    StorageTier(bucket=60, span=2 * 86400),
    StorageTier(bucket=300, span=14 * 86400),
    StorageTier(bucket=3600, span=180 * 86400),
    StorageTier(bucket=86400, span=730 * 86400),
)


class StorageSettings(_Table, frozen=True, kw_only=True):
    """``[storage]``: durable history, rollups in an SQLite file (hvstat/rollups.py, docs/operations.md
    "Storage"). ``path`` unset: $STATE_DIRECTORY/history.db under systemd, else /var/lib/hvstat/history.db
    as root, else $XDG_STATE_HOME/hvstat/history.db (filled in by read_settings); ``path = ""``: history in memory only."""

    path: str | None = None
    # A hard cap on the database file; the oldest buckets are pruned first to stay under it.
    max_bytes: Annotated[int, msgspec.Meta(ge=1 << 20, le=1 << 44)] = 2 << 30
    # Finest first; each bucket a multiple of the one before, each span longer than the one before.
    tiers: list[StorageTier] = msgspec.field(default_factory=lambda: list(DEFAULT_STORAGE_TIERS))


def default_storage_path(environ: dict[str, str]) -> str:
    """Where history goes when ``[storage] path`` is not set: the state directory systemd made for
    the unit ($STATE_DIRECTORY, from StateDirectory=; packaging/hvstat.service runs as a dynamic
    user, not root), else /var/lib/hvstat as root, else the XDG state directory of the user."""
    systemd_state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd_state:
        return os.path.join(systemd_state, "history.db")
    if os.geteuid() == 0:
        return "/var/lib/hvstat/history.db"
    state = environ.get("XDG_STATE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "hvstat", "history.db")


class Settings(_Table, frozen=True, kw_only=True):
    server: ServerSettings = ServerSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    node: NodeSettings = NodeSettings()
    containers: ContainerSettings = ContainerSettings()
    vms: VmSettings = VmSettings()
    processes: ProcessSettings = ProcessSettings()
    logging: LoggingSettings = LoggingSettings()
    alerts: AlertSettings = AlertSettings()
    remote_write: RemoteWriteSettings = RemoteWriteSettings()
    storage: StorageSettings = StorageSettings()
    fleet: FleetSettings = FleetSettings()
    # [labels]: name = "value" pairs on hvstat_node_info and on every remote-write series
    # (docs/operations.md, "Node identity").
    labels: dict[str, str] = {}
    outputs: OutputSettings = OutputSettings()


_TABLES = {f.name: f.type for f in msgspec.structs.fields(Settings)}
# Tables of free keys (not a Struct): one variable for the whole table, HVSTAT_LABELS, a JSON object.
_FREE_TABLES = frozenset(("labels",))


def _env_key(table: str, key: str) -> str:
    return f"{ENV_PREFIX}{table}_{key}".upper()


def _env_value(raw: str, annotation: Any) -> Any:
    """Environment values are strings; lists are given as JSON arrays or comma-separated, tables
    (dict keys) as JSON objects."""
    if "dict" in repr(annotation):
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return raw
    if "list" in repr(annotation):
        raw = raw.strip()
        if raw.startswith("["):
            try:
                return msgspec.json.decode(raw)
            except msgspec.DecodeError:
                return raw
        return [p.strip() for p in raw.split(",") if p.strip()]
    return raw


# Keys without an environment variable: tables of tables, set in the file (packaging/hvstat.toml).
FILE_ONLY = frozenset(("alerts.rules", "alerts.webhook", "alerts.email", "outputs.file"))


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """Merge ``HVSTAT_*`` variables into ``data``; return key path -> variable name for messages."""
    known: dict[str, tuple[str, str, Any]] = {}
    for table, table_type in _TABLES.items():
        if table not in _FREE_TABLES:
            for f in msgspec.structs.fields(table_type):
                known[_env_key(table, f.name)] = (table, f.name, f.type)
    origins: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        if name[len(ENV_PREFIX) :].lower() in _FREE_TABLES:
            table = name[len(ENV_PREFIX) :].lower()
            data[table] = _env_value(raw, dict)
            origins[table] = name
            continue
        if name not in known:
            raise ConfigError(f"unknown environment variable {name} (expected HVSTAT_<TABLE>_<KEY>, e.g. HVSTAT_SERVER_PORT)")
        table, key, annotation = known[name]
        if f"{table}.{key}" in FILE_ONLY:
            raise ConfigError(f"environment variable {name}: {table}.{key} is set in the config file only (no HVSTAT_* variable)")
        section = data.setdefault(table, {})
        if not isinstance(section, dict):
            raise ConfigError(f"config key {table}: expected a table")
        section[key] = _env_value(raw, annotation)
        origins[f"{table}.{key}"] = name
    return origins


def read_settings(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read ``path`` (or $HVSTAT_CONFIG, or /etc/hvstat/hvstat.toml if it exists, or nothing),
    apply environment overrides, and make the checks each table can make alone (the types, URLs,
    files). ``hvstat.config.load_settings`` adds the checks that need other modules."""
    environ = dict(os.environ if environ is None else environ)
    if path is None:
        path = environ.get(ENV_CONFIG) or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {path}: not UTF-8 text (byte {e.start}: {e.object[e.start : e.start + 1]!r}); TOML files are UTF-8") from None
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"config file {path}: {e}") from None
        except RecursionError:  # arrays or tables nested past the parser's depth
            raise ConfigError(f"config file {path}: arrays or tables nested too deeply") from None
    origins = _apply_env(data, environ)
    _check_values(data, origins, path)
    _check_label_values(data, origins, path)
    try:
        # Lax conversion so that environment strings like "9200" or "true" become numbers/bools.
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(_name_rule(_explain(str(e), origins, path), data)) from None
    try:
        _check_alerts(settings.alerts, path)
        _check_remote_write(settings.remote_write, path)
        _check_server(settings.server, path)
        _check_storage(settings.storage, path)
        _check_fleet(settings.fleet, path)
        _check_identity(settings, path)
        _check_outputs(settings, path)
    except ConfigError as e:
        raise ConfigError(_from_variable(str(e), origins, path)) from None
    if settings.storage.path is None:
        settings = msgspec.structs.replace(settings, storage=msgspec.structs.replace(settings.storage, path=default_storage_path(environ)))
    return settings


def _check_values(data: dict[str, Any], origins: dict[str, str], path: object) -> None:
    """What no key takes, whatever its type: a NUL character in a string (no file name, host or
    header can hold one; the OS refuses it with a ValueError) and a number that is not finite
    (TOML's nan and inf: no limit, interval or threshold means anything with them). A loop, not a
    recursion: a file may nest tables thousands deep."""
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in data.items()]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{key}.{k}", v) for k, v in value.items())
            continue
        if isinstance(value, list):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
            continue
        problem = None
        if isinstance(value, str) and "\x00" in value:
            problem = "holds a NUL character"
        elif isinstance(value, float) and not math.isfinite(value):
            problem = f"{value} is not a finite number"
        if problem is not None:
            top = ".".join(re.sub(r"\[\d+\]", "", key).split(".")[:2])
            origin = origins.get(top) or origins.get(top.split(".")[0])  # or a whole table (HVSTAT_LABELS)
            source = f" (from {origin})" if origin else (f" (in {path})" if path else "")
            raise ConfigError(f"config key {key}{source}: {problem}")


def _check_label_values(data: dict[str, Any], origins: dict[str, str], path: object) -> None:
    """``[labels]`` values are strings; msgspec would name a wrong one ``labels[...]``, not the label."""
    labels = data.get("labels")
    if isinstance(labels, dict):
        for key, value in labels.items():
            if not isinstance(value, str):
                source = f" (from {origins['labels']})" if "labels" in origins else (f" (in {path})" if path else "")
                raise ConfigError(f"config key labels.{key}{source}: {value!r} is not a string (label values are quoted)")


def _from_variable(msg: str, origins: dict[str, str], path: object) -> str:
    """A check's message about a key an ``HVSTAT_*`` variable set names the variable, not the file."""
    m = re.match(r"config key ([\w.]+)", msg)
    origin = (origins.get(".".join(m[1].split(".")[:2])) or origins.get(m[1].split(".")[0])) if m else None
    if origin and path:
        return msg.replace(f" (in {path})", f" (from {origin})", 1)
    return msg


def _check_storage(storage: StorageSettings, path: object) -> None:
    """What the types cannot say: the tiers nest (each bucket a multiple of the previous one, each
    span longer and at least two buckets), so that a coarser bucket is made of whole finer ones."""
    where = f" (in {path})" if path else ""
    tiers = storage.tiers
    if not 1 <= len(tiers) <= 8:
        raise ConfigError(f"config key storage.tiers{where}: between 1 and 8 tiers")
    for i, t in enumerate(tiers):
        if t.span < 2 * t.bucket:
            raise ConfigError(f"config key storage.tiers[{i}].span{where}: {t.span} is less than two buckets ({2 * t.bucket})")
        if i and (t.bucket <= tiers[i - 1].bucket or t.bucket % tiers[i - 1].bucket):
            raise ConfigError(f"config key storage.tiers[{i}].bucket{where}: {t.bucket} is not a larger multiple of the previous tier's ({tiers[i - 1].bucket})")
        if i and t.span <= tiers[i - 1].span:
            raise ConfigError(f"config key storage.tiers[{i}].span{where}: {t.span} is not longer than the previous tier's ({tiers[i - 1].span})")


def _check_outputs(settings: Settings, path: object) -> None:
    """What the types cannot say: a file path that is a file's (not a directory's, not the history
    database's), and each kind named once."""
    where = f" (in {path})" if path else ""
    f = settings.outputs.file
    if not f.path or f.path.endswith("/") or os.path.isdir(f.path):
        raise ConfigError(f"config key outputs.file.path{where}: {f.path!r} is not a file name")
    if settings.storage.path and os.path.abspath(f.path) == os.path.abspath(settings.storage.path):
        raise ConfigError(f"config key outputs.file.path{where}: {f.path!r} is the history database ([storage] path)")
    if not f.kinds:
        raise ConfigError(f"config key outputs.file.kinds{where}: empty; name at least one of {', '.join(FILE_OUTPUT_KINDS)}")
    twice = sorted({k for k in f.kinds if f.kinds.count(k) > 1})
    if twice:
        raise ConfigError(f"config key outputs.file.kinds{where}: named more than once: {', '.join(twice)}")


def _check_identity(settings: Settings, path: object) -> None:
    """The node name (the hostname when unset) and the [labels] (hvstat/identity.py says what is
    allowed; hvstat.config adds the clashes with hvstat's own label names)."""
    where = f" (in {path})" if path else ""
    name = settings.server.node_name
    if name is not None:
        problem = node_name_problem(name)
        if problem is not None:
            raise ConfigError(f"config key server.node_name{where}: {problem}")
    else:
        problem = node_name_problem(hostname())
        if problem is not None:
            raise ConfigError(f"config key server.node_name: unset, and the hostname cannot be the node name ({problem}); set server.node_name")
    if len(settings.labels) > MAX_LABELS:
        raise ConfigError(f"config key labels{where}: {len(settings.labels)} labels, more than {MAX_LABELS}")
    for key, value in settings.labels.items():
        problem = label_problem(key, value)
        if problem is not None:
            raise ConfigError(f"config key labels.{key}{where}: {problem}")


def _check_server(server: ServerSettings, path: object) -> None:
    """What the types cannot say: TLS files readable and given together, paths and origins well
    formed. (Tokens: hvstat.config.load_settings.)"""
    where = f" (in {path})" if path else ""
    if (server.tls_cert is None) != (server.tls_key is None):
        given, missing = ("tls_cert", "tls_key") if server.tls_key is None else ("tls_key", "tls_cert")
        raise ConfigError(f"config key server.{given}{where}: server.{missing} is not set; tls_cert and tls_key go together")
    for key in ("tls_cert", "tls_key"):
        file = getattr(server, key)
        if file is not None and not os.access(file, os.R_OK):
            raise ConfigError(f"config key server.{key}{where}: cannot read {file}")
    bad = [p for p in server.public_paths if not p.startswith("/")]
    if bad:
        raise ConfigError(f"config key server.public_paths{where}: not a path (must start with /): {', '.join(map(repr, bad))}")
    bad = [h for h in server.allowed_hosts if h != "*" and (not h or any(c in h for c in "/@ \t"))]
    if bad:
        raise ConfigError(f"config key server.allowed_hosts{where}: not a host name or address: {', '.join(map(repr, bad))}")
    for origin in server.allowed_origins:
        parts = urllib.parse.urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query):
            raise ConfigError(f"config key server.allowed_origins{where}: {origin!r} is not an origin (scheme://host[:port], or \"*\")")


def _check_remote_write(rw: RemoteWriteSettings, path: object) -> None:
    """What the types cannot say: the URL (required when enabled), headers that hvstat sets itself,
    the CA file."""
    where = f" (in {path})" if path else ""
    if rw.url is not None:
        url = urllib.parse.urlsplit(rw.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"config key remote_write.url{where}: {rw.url!r} is not an http:// or https:// URL")
    elif rw.enabled:
        raise ConfigError(f"config key remote_write.url{where}: remote_write is enabled but has no url")
    own = {"content-encoding", "content-type", "x-prometheus-remote-write-version", "content-length", "host"}
    bad = [k for k in rw.headers if k.lower() in own or any(c in k + rw.headers[k] for c in "\r\n")]
    if bad:
        raise ConfigError(f"config key remote_write.headers{where}: hvstat sets these itself or they hold a line break: {', '.join(bad)}")
    if rw.ca_file is not None and not os.access(rw.ca_file, os.R_OK):
        raise ConfigError(f"config key remote_write.ca_file{where}: cannot read {rw.ca_file}")
    if rw.backoff_max < rw.backoff:
        raise ConfigError(f"config key remote_write.backoff_max{where}: less than backoff ({rw.backoff})")


def _check_fleet(fleet: FleetSettings, path: object) -> None:
    """What the types cannot say: the URL, the headers, the CA file."""
    where = f" (in {path})" if path else ""
    if fleet.query_url is not None:
        url = urllib.parse.urlsplit(fleet.query_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ConfigError(f"config key fleet.query_url{where}: {fleet.query_url!r} is not an http:// or https:// URL without a query")
    bad = [k for k in fleet.headers if k.lower() in ("content-length", "host") or any(c in k + fleet.headers[k] for c in "\r\n")]
    if bad:
        raise ConfigError(f"config key fleet.headers{where}: hvstat sets these itself or they hold a line break: {', '.join(bad)}")
    if fleet.ca_file is not None and not os.access(fleet.ca_file, os.R_OK):
        raise ConfigError(f"config key fleet.ca_file{where}: cannot read {fleet.ca_file}")


def _name_rule(msg: str, data: dict[str, Any]) -> str:
    """Add the rule's name to a message about ``alerts.rules[i]...`` when the file gives one."""
    m = re.match(r"config key (alerts\.rules\[(\d+)\]\S*)", msg)
    if m is None:
        return msg
    try:
        name = data["alerts"]["rules"][int(m[2])]["name"]
    except (KeyError, IndexError, TypeError):
        return msg
    return msg[: m.end(1)] + f" (rule {name!r})" + msg[m.end(1) :] if isinstance(name, str) else msg


def _check_alerts(alerts: AlertSettings, path: object) -> None:
    """What the types cannot say: the webhook's URL, the mail addresses and files. (Each rule's
    metric, durations and template: hvstat.config.load_settings.)"""
    where = f" (in {path})" if path else ""
    for table in (alerts.webhook, alerts.email):
        if table is not None and table.ca_file is not None and not os.access(table.ca_file, os.R_OK):
            kind = "webhook" if table is alerts.webhook else "email"
            raise ConfigError(f"config key alerts.{kind}.ca_file{where}: cannot read {table.ca_file}")
    if alerts.webhook is not None:
        url = urllib.parse.urlsplit(alerts.webhook.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"config key alerts.webhook.url{where}: {alerts.webhook.url!r} is not an http:// or https:// URL")
    email = alerts.email
    if email is not None:
        if email.password is not None and email.password_file is not None:
            raise ConfigError(f"config key alerts.email.password_file{where}: set password or password_file, not both")
        if email.password_file is not None and not os.access(email.password_file, os.R_OK):
            raise ConfigError(f"config key alerts.email.password_file{where}: cannot read {email.password_file}")
        if (email.password is not None or email.password_file is not None) and email.username is None:
            raise ConfigError(f"config key alerts.email.username{where}: a password is set but no username")
        addresses = {"from": [email.from_], "to": email.to}
        for severity in ("critical", "high", "medium", "low"):
            addresses[f"recipients.{severity}"] = getattr(email.recipients, severity) or []
        for key, values in addresses.items():
            bad = [a for a in values if "@" not in a or any(c in a for c in "\r\n")]
            if bad:
                raise ConfigError(f"config key alerts.email.{key}{where}: not a mail address: {', '.join(map(repr, bad))}")
        if not any(email.recipients_for(s) for s in ("critical", "high", "medium", "low")):
            raise ConfigError(f"config key alerts.email.to{where}: no recipients (set to, or recipients.<severity>)")


def replace_server(settings: Settings, *, host: str | None = None, port: int | None = None) -> Settings:
    """``settings`` with ``--host`` / ``--port`` (when given) in place of ``server.host`` / ``server.port``."""
    if host is None and port is None:
        return settings
    server = msgspec.structs.replace(settings.server, host=host or settings.server.host, port=port if port is not None else settings.server.port)
    return msgspec.structs.replace(settings, server=server)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def has_tokens(server: ServerSettings) -> bool:
    """Whether any token is configured (a token file, validated at load, holds at least one)."""
    return bool(server.tokens) or server.token_file is not None


def check_bind(server: ServerSettings) -> None:
    """Refuse a non-loopback bind without tokens unless the operator opted out explicitly."""
    if not is_loopback(server.host) and not has_tokens(server) and not server.allow_unauthenticated_remote:
        raise ConfigError(
            f"config key server.host: {server.host!r} is not a loopback address and no token is configured; "
            "set server.tokens or server.token_file (docs/operations.md, Security), or "
            "server.allow_unauthenticated_remote = true (HVSTAT_SERVER_ALLOW_UNAUTHENTICATED_REMOTE=1) "
            "to serve it unauthenticated anyway"
        )


def _explain(msg: str, origins: dict[str, str], path: object) -> str:
    """Turn msgspec's "... - at `$.server.port`" into "config key server.port: ..."."""
    text, sep, where = msg.rpartition(" - at `$.")
    if not sep:
        if msg.startswith("Object contains unknown field") and "`" in msg:
            table = msg.split("`")[1]
            return f"config key {table}{f' (in {path})' if path else ''}: unknown table"
        return f"config: {msg}"
    key = where.rstrip("`")
    if text.startswith("Object contains unknown field"):
        field = text.split("`")[1] if "`" in text else "?"
        key, text = f"{key}.{field}", "unknown key"
    # A variable sets a whole key of a table: "storage.tiers[0].span" came from HVSTAT_STORAGE_TIERS.
    top = ".".join(re.sub(r"\[\d+\]", "", key).split(".")[:2])
    origin = origins.get(key) or origins.get(top) or origins.get(key.split(".")[0])  # or a whole table (HVSTAT_LABELS)
    source = f" (from {origin})" if origin else (f" (in {path})" if path else "")
    return f"config key {key}{source}: {text}"
