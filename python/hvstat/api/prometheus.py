"""``GET /metrics``: the Store's latest samples as Prometheus metrics.

The Prometheus text format 0.0.4 by default, OpenMetrics 1.0.0 when the scraper's Accept header
asks for ``application/openmetrics-text`` (Prometheus itself does). Every family, its type, labels,
unit and the sample field it comes from are listed in docs/prometheus.md.

What a scrape does: format the Structs the sources already stored. Nothing is read from /proc, no
source is asked for anything, and nothing is cached between scrapes, so two scrapers see the same
numbers for the same tick.

Rules (docs/prometheus.md, "Rules"):
- A null value leaves its series out of that scrape, never a 0 in its place.
- A limit of "max" (no limit) leaves the limit series out: no +Inf, no 0, no -1.
- Rates and percentages the sample computed (``*_per_sec``, ``*_percent``) are not exported:
  Prometheus computes them from the counters with ``rate()``. A quantity the sample has only as a
  rate (page faults, swap-ins) is therefore not exported at all, rather than re-integrated.
- Values carry no timestamp (exporter convention: the scrape time stands for them). How fresh the
  sample is shows in ``hvstat_source_last_success_timestamp_seconds``; after a failed tick the
  previous sample is served again, and ``hvstat_source_up`` is 0.

This is a direct renderer, not prometheus_client's exposition: bench/prometheus.py renders the same
store both ways and the parsed outputs are equal; the numbers and the choice are in bench/README.md,
"Prometheus /metrics".
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from starlette.requests import Request
from starlette.responses import Response

from hvstat.api.responses import check_params
from hvstat.models import ContainerMetrics, NodeMetrics, Pressure, SourceHealth, VmMetrics
from hvstat.state import AppState

if TYPE_CHECKING:
    from hvstat.alerts.engine import AlertEngine

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Kind = Literal["counter", "gauge", "info"]


@dataclass(frozen=True)
class Family:
    """One metric family. ``name`` is the name of its samples, so counters end in ``_total`` and
    info families in ``_info``. ``unit`` and ``source`` are for docs/prometheus.md."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    source: str = ""
    text_header: str = field(init=False, repr=False)
    openmetrics_header: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # HELP text is written as is: keep out what one of the two formats would need escaped.
        if any(ch in self.help for ch in '\\\n"'):
            raise ValueError(f"{self.name}: HELP text with a backslash, newline or double quote")
        # The 0.0.4 format has no info type: a gauge of 1 is its convention (node_exporter's
        # node_uname_info, prometheus_build_info).
        text_type = "gauge" if self.kind == "info" else self.kind
        object.__setattr__(self, "text_header", f"# HELP {self.name} {self.help}\n# TYPE {self.name} {text_type}\n")
        # OpenMetrics names the family without the sample suffix its type implies.
        suffix = {"counter": "_total", "info": "_info"}.get(self.kind, "")
        if not self.name.endswith(suffix):
            raise ValueError(f"{self.name}: a {self.kind} must end in {suffix}")
        family = self.name[: len(self.name) - len(suffix)]
        object.__setattr__(self, "openmetrics_header", f"# HELP {family} {self.help}\n# TYPE {family} {self.kind}\n")


FAMILIES: list[Family] = []


def _family(name: str, kind: Kind, help: str, labels: tuple[str, ...] = (), unit: str = "", source: str = "") -> Family:
    f = Family(name, kind, help, labels, unit, source)
    FAMILIES.append(f)
    return f


def counter(name: str, help: str, labels: tuple[str, ...] = (), unit: str = "", source: str = "") -> Family:
    return _family(name, "counter", help, labels, unit, source)


def gauge(name: str, help: str, labels: tuple[str, ...] = (), unit: str = "", source: str = "") -> Family:
    return _family(name, "gauge", help, labels, unit, source)


def info(name: str, help: str, labels: tuple[str, ...], source: str = "") -> Family:
    return _family(name, "info", help, labels, "", source)


# --- label values ------------------------------------------------------------------------------------


def escape(value: str) -> str:
    """A label value as the exposition formats want it: backslash, double quote and line feed
    escaped (the same three in 0.0.4 and OpenMetrics 1.0.0)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in kv.items()) + "}"


def _value(v: float | int | bool) -> str:
    # int and float print as Go's ParseFloat reads them (repr of a float: 1e-05, 1.5e+20); JSON
    # cannot carry NaN or Inf, so neither can reach here. bool is an int, but prints as True.
    if v is True:
        return "1"
    if v is False:
        return "0"
    return repr(v)


class _Exposition:
    """Collects the output; a family with no sample this scrape is left out entirely."""

    __slots__ = ("chunks", "openmetrics")

    def __init__(self, openmetrics: bool) -> None:
        self.chunks: list[str] = []
        self.openmetrics = openmetrics

    def add(self, fam: Family, lines: list[str]) -> None:
        if lines:
            self.chunks.append(fam.openmetrics_header if self.openmetrics else fam.text_header)
            self.chunks.extend(lines)

    def one(self, fam: Family, value: float | int | bool | None, labels: str = "") -> None:
        if value is not None:
            self.add(fam, [f"{fam.name}{labels} {_value(value)}\n"])

    def fields(self, obj: object | None, table: Iterable[tuple[Family, str]]) -> None:
        """One unlabelled series per (family, attribute) of ``obj``."""
        if obj is not None:
            for fam, attr in table:
                self.one(fam, getattr(obj, attr))

    def finish(self) -> bytes:
        if self.openmetrics:
            self.chunks.append("# EOF\n")
        # Label values come from the kernel and runtimes' metadata, decoded lossily to str by the
        # core; "replace" keeps one odd character from failing the whole scrape.
        return "".join(self.chunks).encode("utf-8", "replace")


# --- node --------------------------------------------------------------------------------------------

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")

NODE_CPU_SECONDS = counter(
    "hvstat_node_cpu_seconds_total",
    "Seconds the CPUs spent in each mode (guest is also counted in user, guest_nice in nice).",
    ("cpu", "mode"),
    "seconds",
    "cpu.per_cpu[].seconds_total.<mode>",
)
NODE_CPU = (
    (counter("hvstat_node_context_switches_total", "Context switches since boot.", unit="switches", source="cpu.context_switches_total"), "context_switches_total"),
    (counter("hvstat_node_interrupts_total", "Interrupts serviced since boot.", unit="interrupts", source="cpu.interrupts_total"), "interrupts_total"),
    (counter("hvstat_node_forks_total", "Processes and threads created since boot.", unit="forks", source="cpu.forks_total"), "forks_total"),
    (gauge("hvstat_node_procs_running", "Tasks runnable right now.", unit="tasks", source="cpu.procs_running"), "procs_running"),
    (gauge("hvstat_node_procs_blocked", "Tasks blocked on I/O right now.", unit="tasks", source="cpu.procs_blocked"), "procs_blocked"),
)
NODE_TOP = (
    (gauge("hvstat_node_load1", "Load average over 1 minute.", unit="load", source="load_average_1m"), "load_average_1m"),
    (gauge("hvstat_node_load5", "Load average over 5 minutes.", unit="load", source="load_average_5m"), "load_average_5m"),
    (gauge("hvstat_node_load15", "Load average over 15 minutes.", unit="load", source="load_average_15m"), "load_average_15m"),
    (gauge("hvstat_node_uptime_seconds", "Seconds since boot.", unit="seconds", source="uptime_secs"), "uptime_secs"),
    (gauge("hvstat_node_boot_time_seconds", "Boot time, unix seconds.", unit="seconds", source="boot_time"), "boot_time"),
)

_MEMINFO = {
    "total": "MemTotal",
    "available": "MemAvailable",
    "used": "MemTotal minus MemAvailable",
    "free": "MemFree",
    "buffers": "Buffers",
    "cached": "Cached",
    "shmem": "Shmem",
    "slab": "Slab",
    "slab_reclaimable": "SReclaimable",
    "anon": "AnonPages",
    "mapped": "Mapped",
    "active_file": "Active(file)",
    "inactive_file": "Inactive(file)",
    "dirty": "Dirty",
    "writeback": "Writeback",
    "page_tables": "PageTables",
    "kernel_stack": "KernelStack",
    "committed": "Committed_AS",
    "commit_limit": "CommitLimit",
    "anon_huge_pages": "AnonHugePages",
}
NODE_MEMORY = tuple(
    (gauge(f"hvstat_node_memory_{k}_bytes", f"Memory: {v}, bytes.", unit="bytes", source=f"memory.{k}_bytes"), f"{k}_bytes")
    for k, v in _MEMINFO.items()
)
NODE_SWAP = tuple(
    (gauge(f"hvstat_node_swap_{k}_bytes", f"Swap: {v}, bytes.", unit="bytes", source=f"swap.{k}_bytes"), f"{k}_bytes")
    for k, v in {"total": "SwapTotal", "free": "SwapFree", "used": "SwapTotal minus SwapFree", "cached": "SwapCached"}.items()
)
NODE_HUGEPAGES = (
    (gauge("hvstat_node_hugepages_total_pages", "Huge pages of the default size in the pool (HugePages_Total).", unit="pages", source="hugepages.total"), "total"),
    (gauge("hvstat_node_hugepages_free_pages", "Huge pages of the default size not allocated (HugePages_Free).", unit="pages", source="hugepages.free"), "free"),
    (gauge("hvstat_node_hugepages_reserved_pages", "Huge pages reserved but not yet allocated (HugePages_Rsvd).", unit="pages", source="hugepages.reserved"), "reserved"),
    (gauge("hvstat_node_hugepages_surplus_pages", "Huge pages above the configured pool (HugePages_Surp).", unit="pages", source="hugepages.surplus"), "surplus"),
    (gauge("hvstat_node_hugepages_page_size_bytes", "Default huge page size (Hugepagesize), bytes.", unit="bytes", source="hugepages.page_size_bytes"), "page_size_bytes"),
    (gauge("hvstat_node_hugetlb_bytes", "Memory in huge pages of all sizes (Hugetlb), bytes.", unit="bytes", source="hugepages.hugetlb_bytes"), "hugetlb_bytes"),
)
NODE_KSM = (
    (gauge("hvstat_node_ksm_run", "KSM state: 0 stopped, 1 running, 2 unmerging.", unit="state", source="ksm.run"), "run"),
    (gauge("hvstat_node_ksm_shared_pages", "KSM pages in use, each shared by several mappings (pages_shared).", unit="pages", source="ksm.pages_shared"), "pages_shared"),
    (gauge("hvstat_node_ksm_sharing_pages", "Mappings that share a KSM page, i.e. pages saved (pages_sharing).", unit="pages", source="ksm.pages_sharing"), "pages_sharing"),
    (gauge("hvstat_node_ksm_unshared_pages", "Pages KSM checked that are unique (pages_unshared).", unit="pages", source="ksm.pages_unshared"), "pages_unshared"),
    (gauge("hvstat_node_ksm_volatile_pages", "Pages changing too fast for KSM to merge (pages_volatile).", unit="pages", source="ksm.pages_volatile"), "pages_volatile"),
    (counter("hvstat_node_ksm_full_scans_total", "Full scans of mergeable memory KSM completed.", unit="scans", source="ksm.full_scans"), "full_scans"),
    (gauge("hvstat_node_ksm_saved_bytes", "Memory KSM saves (pages_sharing times the page size), bytes.", unit="bytes", source="ksm.saved_bytes"), "saved_bytes"),
)
NODE_VM = (
    (counter("hvstat_node_vm_oom_kills_total", "Processes killed by the OOM killer since boot (Linux 4.13+).", unit="kills", source="vm.oom_kills_total"), "oom_kills_total"),
)

PRESSURE_LABELS = ("resource", "kind")
NODE_PRESSURE_STALL = counter(
    "hvstat_node_pressure_stall_seconds_total",
    "Seconds in which some (or all, kind=full) non-idle tasks stalled on the resource (PSI total).",
    PRESSURE_LABELS,
    "seconds",
    "pressure.<resource>.<kind>.total_usec / 1e6",
)
NODE_PRESSURE_AVG = tuple(
    (
        gauge(
            f"hvstat_node_pressure_{avg}_ratio",
            f"Share of the last {secs} seconds stalled on the resource, 0 to 1 (the kernel's PSI {avg} / 100).",
            PRESSURE_LABELS,
            "ratio",
            f"pressure.<resource>.<kind>.{avg} / 100",
        ),
        avg,
    )
    for avg, secs in (("avg10", 10), ("avg60", 60), ("avg300", 300))
)

DISK_LABELS = ("device",)
_disk = {
    "read_bytes_total": ("hvstat_node_disk_read_bytes_total", "Bytes read from the device.", "bytes"),
    "write_bytes_total": ("hvstat_node_disk_written_bytes_total", "Bytes written to the device.", "bytes"),
    "reads_total": ("hvstat_node_disk_reads_completed_total", "Reads completed.", "reads"),
    "writes_total": ("hvstat_node_disk_writes_completed_total", "Writes completed.", "writes"),
    "read_time_secs_total": ("hvstat_node_disk_read_time_seconds_total", "Seconds spent by all reads.", "seconds"),
    "write_time_secs_total": ("hvstat_node_disk_write_time_seconds_total", "Seconds spent by all writes.", "seconds"),
    "io_time_secs_total": ("hvstat_node_disk_io_time_seconds_total", "Seconds the device had I/O in flight.", "seconds"),
    "discarded_bytes_total": ("hvstat_node_disk_discarded_bytes_total", "Bytes discarded (Linux 4.18+).", "bytes"),
    "flushes_total": ("hvstat_node_disk_flush_requests_total", "Flush requests completed (Linux 5.5+).", "flushes"),
}
NODE_DISK = tuple((counter(n, h, DISK_LABELS, u, f"disks[].{attr}"), attr) for attr, (n, h, u) in _disk.items()) + (
    (gauge("hvstat_node_disk_ios_in_progress", "I/Os in flight right now.", DISK_LABELS, "I/Os", "disks[].in_progress"), "in_progress"),
)

NET_LABELS = ("device", "kind")
# (name part, field part, help, unit) of the eight net/dev counters, for the node and containers.
_NET_COUNTERS = (
    ("receive_bytes", "rx_bytes", "Bytes received", "bytes"),
    ("receive_packets", "rx_packets", "Packets received", "packets"),
    ("receive_errors", "rx_errors", "Receive errors", "errors"),
    ("receive_drops", "rx_dropped", "Received packets dropped", "packets"),
    ("transmit_bytes", "tx_bytes", "Bytes transmitted", "bytes"),
    ("transmit_packets", "tx_packets", "Packets transmitted", "packets"),
    ("transmit_errors", "tx_errors", "Transmit errors", "errors"),
    ("transmit_drops", "tx_dropped", "Packets dropped on transmit", "packets"),
)
NODE_NET = tuple(
    (counter(f"hvstat_node_network_{n}_total", f"{h} on the interface.", NET_LABELS, u, f"interfaces[].{a}_total"), f"{a}_total")
    for n, a, h, u in _NET_COUNTERS
)

FS_LABELS = ("mountpoint", "device", "fstype")
NODE_FS = (
    (gauge("hvstat_node_filesystem_size_bytes", "Size of the filesystem, bytes.", FS_LABELS, "bytes", "filesystems[].size_bytes"), "size_bytes"),
    (gauge("hvstat_node_filesystem_avail_bytes", "Bytes available to unprivileged users.", FS_LABELS, "bytes", "filesystems[].avail_bytes"), "avail_bytes"),
    (gauge("hvstat_node_filesystem_used_bytes", "Bytes in use (size minus free, as df).", FS_LABELS, "bytes", "filesystems[].used_bytes"), "used_bytes"),
    (gauge("hvstat_node_filesystem_inodes", "Inodes of the filesystem.", FS_LABELS, "inodes", "filesystems[].inodes_total"), "inodes_total"),
    (gauge("hvstat_node_filesystem_inodes_free", "Inodes free.", FS_LABELS, "inodes", "filesystems[].inodes_free"), "inodes_free"),
    (gauge("hvstat_node_filesystem_inodes_used", "Inodes in use.", FS_LABELS, "inodes", "filesystems[].inodes_used"), "inodes_used"),
    (gauge("hvstat_node_filesystem_readonly", "1 if the filesystem is mounted read-only, else 0.", FS_LABELS, "boolean", "filesystems[].read_only"), "read_only"),
)

NODE_TEMPERATURE = gauge(
    "hvstat_node_temperature_celsius",
    "Temperature of a thermal zone or hwmon sensor, degrees Celsius.",
    ("sensor", "kind", "label"),
    "celsius",
    "temperatures[].celsius",
)


def _pressure_lines(fam: Family, resource: str, p: Pressure | None, attr: str, out: list[str]) -> None:
    """The node's lines of one pressure family for one resource (``full`` is null for cpu before
    Linux 5.13: no line then)."""
    if p is None:
        return
    for kind, line in (("some", p.some), ("full", p.full)):
        if line is not None:
            v = getattr(line, attr)
            # total= is in microseconds; avg10= and friends are percent with two decimals, so six
            # decimals of a ratio keep all of it and drop the float noise of the division.
            v = v / 1e6 if attr == "total_usec" else round(v / 100, 6)
            out.append(f'{fam.name}{{resource="{resource}",kind="{kind}"}} {_value(v)}\n')


def _node(out: _Exposition, node: NodeMetrics) -> None:
    cpu = node.cpu
    if cpu is not None:
        lines = []
        for pc in cpu.per_cpu:
            secs = pc.seconds_total
            for mode in CPU_MODES:
                v = getattr(secs, mode)
                if v is not None:
                    lines.append(f'hvstat_node_cpu_seconds_total{{cpu="{pc.cpu}",mode="{mode}"}} {_value(v)}\n')
        out.add(NODE_CPU_SECONDS, lines)
    out.fields(cpu, NODE_CPU)
    out.fields(node, NODE_TOP)
    out.fields(node.memory, NODE_MEMORY)
    out.fields(node.swap, NODE_SWAP)
    out.fields(node.hugepages, NODE_HUGEPAGES)
    out.fields(node.ksm, NODE_KSM)
    out.fields(node.vm, NODE_VM)

    pressure = node.pressure
    if pressure is not None:
        resources = (("cpu", pressure.cpu), ("memory", pressure.memory), ("io", pressure.io))
        lines = []
        for resource, p in resources:
            _pressure_lines(NODE_PRESSURE_STALL, resource, p, "total_usec", lines)
        out.add(NODE_PRESSURE_STALL, lines)
        for fam, attr in NODE_PRESSURE_AVG:
            lines = []
            for resource, p in resources:
                _pressure_lines(fam, resource, p, attr, lines)
            out.add(fam, lines)

    disks = [(d, _labels(device=d.name)) for d in node.disks]
    for fam, attr in NODE_DISK:
        out.add(fam, [f"{fam.name}{lab} {_value(v)}\n" for d, lab in disks if (v := getattr(d, attr)) is not None])

    ifaces = [(i, _labels(device=i.name, kind=i.kind)) for i in node.interfaces]
    for fam, attr in NODE_NET:
        out.add(fam, [f"{fam.name}{lab} {_value(v)}\n" for i, lab in ifaces if (v := getattr(i, attr)) is not None])

    fss = [(f, _labels(mountpoint=f.mount_point, device=f.device, fstype=f.fs_type)) for f in node.filesystems]
    for fam, attr in NODE_FS:
        out.add(fam, [f"{fam.name}{lab} {_value(v)}\n" for f, lab in fss if (v := getattr(f, attr)) is not None])

    out.add(
        NODE_TEMPERATURE,
        [
            f"{NODE_TEMPERATURE.name}{_labels(sensor=t.sensor, kind=t.kind, label=t.label or '')} {_value(t.celsius)}\n"
            for t in node.temperatures
            if t.celsius is not None
        ],
    )


# --- containers --------------------------------------------------------------------------------------

CONTAINER_LABELS = ("id", "name", "runtime")
CONTAINER_INFO = info(
    "hvstat_container_info",
    "1 for every container hvstat sees; its cgroup path and state as labels.",
    ("id", "name", "runtime", "cgroup_path", "state"),
    "id, name, runtime, cgroup_path, state",
)


def _c(kind: Kind, name: str, help: str, unit: str, attr: str) -> tuple[Family, str]:
    return (_family(name, kind, help, CONTAINER_LABELS, unit, attr), attr)


# Per-container families from one field each, in output order. Limits of "max" are left out.
CONTAINER_FIELDS = (
    _c("gauge", "hvstat_container_processes", "Processes in the container's cgroup.", "processes", "processes"),
    _c("counter", "hvstat_container_cpu_seconds_total", "CPU time used by the container, seconds.", "seconds", "cpu_usage_secs_total"),
    _c("counter", "hvstat_container_cpu_user_seconds_total", "CPU time in user mode, seconds.", "seconds", "cpu_user_secs_total"),
    _c("counter", "hvstat_container_cpu_system_seconds_total", "CPU time in kernel mode, seconds.", "seconds", "cpu_system_secs_total"),
    _c("counter", "hvstat_container_cpu_periods_total", "CFS bandwidth periods elapsed (only with a CPU limit).", "periods", "cpu_periods_total"),
    _c("counter", "hvstat_container_cpu_throttled_periods_total", "CFS bandwidth periods in which the container was throttled.", "periods", "cpu_throttled_periods_total"),
    _c("counter", "hvstat_container_cpu_throttled_seconds_total", "Time the container was throttled, seconds.", "seconds", "cpu_throttled_secs_total"),
    _c("gauge", "hvstat_container_cpu_limit_cores", "CPU limit (quota / period), cores; absent when unlimited.", "cores", "cpu_limit_cores"),
    _c("gauge", "hvstat_container_memory_usage_bytes", "Memory charged to the container, bytes.", "bytes", "memory_usage_bytes"),
    _c("gauge", "hvstat_container_memory_working_set_bytes", "Memory usage minus inactive file pages, bytes.", "bytes", "memory_working_set_bytes"),
    _c("gauge", "hvstat_container_memory_rss_bytes", "Anonymous memory, bytes.", "bytes", "memory_rss_bytes"),
    _c("gauge", "hvstat_container_memory_cache_bytes", "Page cache, bytes.", "bytes", "memory_cache_bytes"),
    _c("gauge", "hvstat_container_memory_swap_bytes", "Swap used, bytes.", "bytes", "memory_swap_bytes"),
    _c("gauge", "hvstat_container_memory_limit_bytes", "Memory limit, bytes; absent when there is no limit (max).", "bytes", "memory_limit_bytes"),
    _c("counter", "hvstat_container_memory_oom_kills_total", "Processes of the container killed by the OOM killer.", "kills", "memory_oom_kills_total"),
    _c("counter", "hvstat_container_block_read_bytes_total", "Bytes read from block devices.", "bytes", "block_read_bytes"),
    _c("counter", "hvstat_container_block_written_bytes_total", "Bytes written to block devices.", "bytes", "block_write_bytes"),
    _c("counter", "hvstat_container_block_reads_total", "Read operations on block devices.", "reads", "block_read_ops"),
    _c("counter", "hvstat_container_block_writes_total", "Write operations on block devices.", "writes", "block_write_ops"),
    _c("gauge", "hvstat_container_pids", "Tasks (processes and threads) in the cgroup (pids.current).", "tasks", "pids_current"),
    _c("gauge", "hvstat_container_pids_limit", "Task limit (pids.max); absent when there is no limit (max).", "tasks", "pids_max"),
)
# Only for containers with their own network namespace: a container on the host's network has its
# traffic in the node's interfaces, and repeating it here would count it twice.
CONTAINER_NETWORK = tuple(
    _c("counter", f"hvstat_container_network_{n}_total", f"{h} in the container's network namespace (loopback excluded).", u, f"network_{a}")
    for n, a, h, u in _NET_COUNTERS
)
CONTAINER_PRESSURE_STALL = counter(
    "hvstat_container_pressure_stall_seconds_total",
    "Seconds in which some (or all, kind=full) of the container's tasks stalled on the resource (cgroup PSI total).",
    (*CONTAINER_LABELS, *PRESSURE_LABELS),
    "seconds",
    "pressure_<resource>.<kind>.total_usec / 1e6",
)
_container_values = operator.attrgetter(*(attr for _, attr in CONTAINER_FIELDS))
_network_values = operator.attrgetter(*(attr for _, attr in CONTAINER_NETWORK))


def _containers(out: _Exposition, containers: Iterable[ContainerMetrics]) -> None:
    # This is what a scrape of 1000 containers costs, so it works column by column: the label text
    # of each container is built once, the values of all fields are fetched per container in one
    # C call (attrgetter) and transposed (zip), and each family's lines are one comprehension.
    cs = list(containers)
    if not cs:
        return
    bases = [f'id="{escape(c.id)}",name="{escape(c.name)}",runtime="{c.runtime}"' for c in cs]
    labs = ["{" + b + "} " for b in bases]
    out.add(
        CONTAINER_INFO,
        [f'hvstat_container_info{{{b},cgroup_path="{escape(c.cgroup_path)}",state="{c.state}"}} 1\n' for b, c in zip(bases, cs)],
    )
    # f"{v}" of an int or float is its repr, which Go's ParseFloat reads; limits of "max" are skipped.
    for (fam, _), col in zip(CONTAINER_FIELDS, zip(*map(_container_values, cs))):
        name = fam.name
        out.add(fam, [f"{name}{lab}{v}\n" for lab, v in zip(labs, col) if v is not None and v != "max"])
    own = [(lab, c) for lab, c in zip(labs, cs) if c.network_mode == "own"]
    if own:
        own_labs = [lab for lab, _ in own]
        for (fam, _), col in zip(CONTAINER_NETWORK, zip(*(_network_values(c) for _, c in own))):
            name = fam.name
            out.add(fam, [f"{name}{lab}{v}\n" for lab, v in zip(own_labs, col) if v is not None])
    stall: list[str] = []
    name = CONTAINER_PRESSURE_STALL.name
    for resource, attr in (("cpu", "pressure_cpu"), ("memory", "pressure_memory"), ("io", "pressure_io")):
        ps = [getattr(c, attr) for c in cs]
        stall += [f'{name}{{{b},resource="{resource}",kind="some"}} {p.some.total_usec / 1e6}\n' for b, p in zip(bases, ps) if p is not None]
        stall += [
            f'{name}{{{b},resource="{resource}",kind="full"}} {p.full.total_usec / 1e6}\n'
            for b, p in zip(bases, ps)
            if p is not None and p.full is not None
        ]
    out.add(CONTAINER_PRESSURE_STALL, stall)


# --- VMs ---------------------------------------------------------------------------------------------

VM_LABELS = ("vm", "name")
VM_INFO = info(
    "hvstat_vm_info",
    "1 for every VM hvstat sees; where it comes from and its state as labels.",
    ("vm", "name", "origin", "status"),
    "id, name, origin, status",
)


def _v(kind: Kind, name: str, help: str, unit: str, attr: str) -> tuple[Family, str]:
    return (_family(name, kind, help, VM_LABELS, unit, attr), attr)


VM_FIELDS = (
    _v("gauge", "hvstat_vm_vcpus", "vCPUs the VM has now.", "vcpus", "vcpus"),
    _v("counter", "hvstat_vm_cpu_seconds_total", "CPU time of the whole QEMU process (vCPUs and emulator), seconds.", "seconds", "cpu_secs_total"),
    _v("counter", "hvstat_vm_cpu_user_seconds_total", "CPU time of the QEMU process in user mode, seconds.", "seconds", "cpu_user_secs_total"),
    _v("counter", "hvstat_vm_cpu_system_seconds_total", "CPU time of the QEMU process in kernel mode, seconds.", "seconds", "cpu_system_secs_total"),
    _v("gauge", "hvstat_vm_memory_max_bytes", "Memory the VM was given, bytes.", "bytes", "memory_max_bytes"),
    _v("gauge", "hvstat_vm_memory_balloon_bytes", "Current balloon size (memory the guest may use), bytes.", "bytes", "memory_balloon_bytes"),
    _v("gauge", "hvstat_vm_memory_available_bytes", "Memory the guest sees in total (balloon driver stats), bytes.", "bytes", "memory_available_bytes"),
    _v("gauge", "hvstat_vm_memory_usable_bytes", "Memory the guest could still use without swapping (balloon driver stats), bytes.", "bytes", "memory_usable_bytes"),
    _v("gauge", "hvstat_vm_memory_rss_bytes", "Resident memory of the QEMU process on the host, bytes.", "bytes", "memory_rss_bytes"),
)
VCPU_LABELS = (*VM_LABELS, "vcpu")
VM_VCPU = (
    (counter("hvstat_vm_vcpu_seconds_total", "Time the vCPU ran, seconds.", VCPU_LABELS, "seconds", "vcpu[].cpu_secs_total"), "cpu_secs_total"),
    (
        counter(
            "hvstat_vm_vcpu_wait_seconds_total",
            "Time the vCPU thread was runnable but waiting for a host CPU (run-queue wait: the guest's steal), seconds.",
            VCPU_LABELS,
            "seconds",
            "vcpu[].steal_secs_total",
        ),
        "steal_secs_total",
    ),
    (
        counter("hvstat_vm_vcpu_io_wait_seconds_total", "Time the vCPU waited for I/O (libvirt vcpu.<n>.wait), seconds.", VCPU_LABELS, "seconds", "vcpu[].wait_secs_total"),
        "wait_secs_total",
    ),
)
DISK_VM_LABELS = (*VM_LABELS, "disk")
VM_DISK = tuple(
    (counter(n, h, DISK_VM_LABELS, u, f"disks[].{a}"), a)
    for n, h, u, a in (
        ("hvstat_vm_disk_read_bytes_total", "Bytes the guest read from the disk.", "bytes", "read_bytes"),
        ("hvstat_vm_disk_written_bytes_total", "Bytes the guest wrote to the disk.", "bytes", "write_bytes"),
        ("hvstat_vm_disk_reads_total", "Read requests of the guest.", "reads", "read_ops"),
        ("hvstat_vm_disk_writes_total", "Write requests of the guest.", "writes", "write_ops"),
        ("hvstat_vm_disk_flushes_total", "Flush requests of the guest.", "flushes", "flush_ops"),
    )
)
NIC_VM_LABELS = (*VM_LABELS, "interface")
VM_NIC = tuple(
    (counter(f"hvstat_vm_network_{n}_total", f"{h}, seen from the guest (interface: the host-side tap).", NIC_VM_LABELS, u, f"nics[].{a}"), a)
    for n, a, h, u in _NET_COUNTERS
)
_vm_values = operator.attrgetter(*(attr for _, attr in VM_FIELDS))


def _vms(out: _Exposition, vms: Iterable[VmMetrics]) -> None:
    vs = list(vms)
    if not vs:
        return
    bases = [f'vm="{escape(v.id)}",name="{escape(v.name)}"' for v in vs]
    out.add(VM_INFO, [f'hvstat_vm_info{{{b},origin="{v.origin}",status="{v.status}"}} 1\n' for b, v in zip(bases, vs)])
    for (fam, _), col in zip(VM_FIELDS, zip(*map(_vm_values, vs))):
        out.add(fam, [f"{fam.name}{{{b}}} {v}\n" for b, v in zip(bases, col) if v is not None])
    for fam, attr in VM_VCPU:
        out.add(
            fam,
            [
                f'{fam.name}{{{b},vcpu="{c.index}"}} {getattr(c, attr)}\n'
                for b, v in zip(bases, vs)
                for c in v.vcpu
                if getattr(c, attr) is not None
            ],
        )
    for fam, attr in VM_DISK:
        out.add(
            fam,
            [f'{fam.name}{{{b},disk="{escape(d.name)}"}} {getattr(d, attr)}\n' for b, v in zip(bases, vs) for d in v.disks if getattr(d, attr) is not None],
        )
    for fam, attr in VM_NIC:
        out.add(
            fam,
            [f'{fam.name}{{{b},interface="{escape(n.name)}"}} {getattr(n, attr)}\n' for b, v in zip(bases, vs) for n in v.nics if getattr(n, attr) is not None],
        )


# --- alerts ------------------------------------------------------------------------------------------

ALERTS_FIRING = gauge(
    "hvstat_alerts_firing",
    "Alerts of the rule firing now, one per entity (0 when none: every configured rule has a series).",
    ("rule", "severity"),
    "alerts",
    "GET /api/alerts/rules rules[].firing",
)
NOTIFIER_LABELS = ("notifier",)
ALERT_NOTIFIER = tuple(
    (counter(f"hvstat_alert_notifications_{what}_total", help, NOTIFIER_LABELS, "notifications", f"GET /api/alerts notifiers[].{attr}"), attr)
    for what, attr, help in (
        ("sent", "sent", "Alert notifications the receiver accepted."),
        ("failed", "failed", "Alert notifications given up on (refused, or still failing after the last retry)."),
        ("dropped", "dropped", "Alert notifications not queued because the notifier's queue was full."),
    )
)
ALERT_NOTIFIER_RETRIES = counter(
    "hvstat_alert_notification_retries_total",
    "Attempts to deliver an alert notification that were retries.",
    NOTIFIER_LABELS,
    "attempts",
    "GET /api/alerts notifiers[].retries",
)


def _alerts(out: _Exposition, alerts: AlertEngine) -> None:
    out.add(ALERTS_FIRING, [f"{ALERTS_FIRING.name}{_labels(rule=r, severity=s)} {n}\n" for r, s, n in alerts.firing_by_rule()])
    ns = [(n, _labels(notifier=n.name)) for n in alerts.notifier_status()]
    for fam, attr in ALERT_NOTIFIER:
        out.add(fam, [f"{fam.name}{lab} {getattr(n, attr)}\n" for n, lab in ns])
    out.add(ALERT_NOTIFIER_RETRIES, [f"{ALERT_NOTIFIER_RETRIES.name}{lab} {n.retries}\n" for n, lab in ns])


# --- hvstat itself -----------------------------------------------------------------------------------

SOURCE_LABELS = ("source",)
SOURCE_UP = gauge("hvstat_source_up", "1 if the source's last tick succeeded, else 0.", SOURCE_LABELS, "boolean", "/health sources[]: consecutive_failures == 0 and last_success set")
SOURCE_DURATION = gauge("hvstat_source_duration_seconds", "Duration of the source's last tick, seconds.", SOURCE_LABELS, "seconds", "/health sources[].last_duration_secs")
SOURCE_LAST_SUCCESS = gauge(
    "hvstat_source_last_success_timestamp_seconds",
    "When the source's last successful tick ended, unix seconds.",
    SOURCE_LABELS,
    "seconds",
    "/health sources[].last_success",
)
SOURCE_FAILURES = gauge(
    "hvstat_source_consecutive_failures", "Ticks of the source that failed in a row (0 after a success).", SOURCE_LABELS, "ticks", "/health sources[].consecutive_failures"
)
BUILD_INFO = info("hvstat_build_info", "1, with the version of hvstat as a label.", ("version",), "hvstat.__version__")


def _sources(out: _Exposition, sources: Iterable[SourceHealth]) -> None:
    hs = [(h, _labels(source=h.name)) for h in sources]
    out.add(SOURCE_UP, [f"{SOURCE_UP.name}{lab} {int(h.consecutive_failures == 0 and h.last_success is not None)}\n" for h, lab in hs])
    out.add(SOURCE_DURATION, [f"{SOURCE_DURATION.name}{lab} {_value(h.last_duration_secs)}\n" for h, lab in hs if h.last_duration_secs is not None])
    out.add(SOURCE_LAST_SUCCESS, [f"{SOURCE_LAST_SUCCESS.name}{lab} {_value(h.last_success)}\n" for h, lab in hs if h.last_success is not None])
    out.add(SOURCE_FAILURES, [f"{SOURCE_FAILURES.name}{lab} {h.consecutive_failures}\n" for h, lab in hs])


# --- the endpoint ------------------------------------------------------------------------------------


def render(
    node: NodeMetrics | None,
    containers: Iterable[ContainerMetrics],
    sources: Iterable[SourceHealth],
    version: str,
    *,
    vms: Iterable[VmMetrics] = (),
    alerts: AlertEngine | None = None,
    openmetrics: bool = False,
) -> bytes:
    """The whole exposition of one scrape: node, containers, VMs, hvstat's own health."""
    out = _Exposition(openmetrics)
    if node is not None:
        _node(out, node)
    _containers(out, containers)
    _vms(out, vms)
    if alerts is not None:
        _alerts(out, alerts)
    _sources(out, sources)
    out.one(BUILD_INFO, 1, _labels(version=version))
    return out.finish()


def wants_openmetrics(accept: str) -> bool:
    """True when the Accept header lists application/openmetrics-text with a q above 0. Prometheus
    sends ``application/openmetrics-text;version=1.0.0,...;q=0.75,text/plain;version=0.0.4;q=0.5,...``;
    any OpenMetrics version it asks for is answered with 1.0.0 (0.0.1 is the same text format)."""
    for media_range in accept.split(","):
        media_type, *params = (p.strip() for p in media_range.split(";"))
        if media_type.lower() != "application/openmetrics-text":
            continue
        q = 1.0
        for p in params:
            key, _, val = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


async def metrics(request: Request) -> Response:
    check_params(request, set())
    state: AppState = request.app.state.hvstat
    om = wants_openmetrics(request.headers.get("accept", ""))
    body = render(
        state.store.node,
        state.store.containers.values(),
        [s.health() for s in state.sources],
        state.version,
        vms=state.store.vms.values(),
        alerts=state.alerts,
        openmetrics=om,
    )
    return Response(body, media_type=CONTENT_TYPE_OPENMETRICS if om else CONTENT_TYPE_TEXT)
