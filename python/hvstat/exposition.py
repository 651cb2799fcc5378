"""The series model: every Prometheus family hvstat exports, and the walks that turn samples into
series, shared by ``GET /metrics`` (api/prometheus.py) and remote write (remote_write.py).

The Prometheus text format 0.0.4, or OpenMetrics 1.0.0 (``render(..., openmetrics=True)``). Every
family, its type, labels, unit and the sample field it comes from are listed in docs/prometheus.md.

What a render does: format the Structs the sources already stored. Nothing is read from /proc, no
source is asked for anything, and nothing is cached between renders, so two scrapers see the same
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

One walk, two sinks: the ``walk_node``, ``walk_containers``, ``walk_vms`` and ``walk_own`` walks hand
every family's series to a sink as (label key, value) pairs. ``_Exposition`` makes them exposition
lines (its label keys are the label text, built once per entity); ``SeriesSink`` makes
``(name, labels, value)`` tuples, which remote write encodes. So both export exactly the same series.

This module sits below the sinks: hvstat's own series (alerts, the hub, remote write, storage) are read
through the small protocols below, never by importing those modules.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal, Protocol

from hvstat.identity import NodeIdentity
from hvstat.meta import BuildInfo, HistogramSnapshot, SourceStats
from hvstat.models import (
    ContainerMetrics,
    ContainersSample,
    NodeMetrics,
    NotifierStatus,
    ProcessesSample,
    SourceHealth,
    VmMetrics,
    VmsSample,
)


class AlertCounts(Protocol):
    """What the alert engine tells /metrics."""

    def firing_by_rule(self) -> list[tuple[str, str, int]]: ...

    def notifier_status(self) -> list[NotifierStatus]: ...


class HubCounts(Protocol):
    """What the WebSocket hub tells /metrics."""

    @property
    def clients(self) -> Sequence[object]: ...

    dropped_slow: int
    refused: int
    frames_encoded: int


class RemoteWriteCounts(Protocol):
    """What remote write tells /metrics."""

    @property
    def samples_sent(self) -> int: ...
    @property
    def samples_failed(self) -> int: ...
    @property
    def samples_dropped(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def buffer_bytes(self) -> int: ...
    @property
    def buffer_samples(self) -> int: ...
    @property
    def last_success(self) -> float | None: ...
    @property
    def send_duration(self) -> HistogramSnapshot: ...


class StorageCounts(Protocol):
    """What the on-disk history (``[storage]``, its writer's counters) tells /metrics."""

    @property
    def bytes(self) -> int: ...
    @property
    def write_seconds_sum(self) -> float: ...
    @property
    def write_attempts(self) -> int: ...
    @property
    def errors(self) -> int: ...


class ClockCounts(Protocol):
    """What the clock watch tells /metrics."""

    steps: int

    @property
    def last_step(self) -> Any: ...  # hvstat.clock.Step | None: .at, .seconds

    def drift_ppm(self) -> float | None: ...

    def sync(self) -> Any: ...  # hvstat.clock.SyncState

    @property
    def receiver_offset(self) -> tuple[float, float] | None: ...


CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Kind = Literal["counter", "gauge", "info", "histogram"]


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


def histogram(name: str, help: str, labels: tuple[str, ...] = (), unit: str = "", source: str = "") -> Family:
    """Its series are ``<name>_bucket{le=...}`` (cumulative, the last ``le="+Inf"``), ``<name>_sum``
    and ``<name>_count``."""
    return _family(name, "histogram", help, labels, unit, source)


# --- label values and the two sinks ------------------------------------------------------------------

# A sample's value: a number (an int is exact, as the sample has it), or None / "max" (left out).
Value = float | int | None
# Constant labels a walk adds to every series of one ``add`` call (values that need no escaping).
Extra = tuple[tuple[str, str], ...]


def escape(value: str) -> str:
    """A label value as the exposition formats want it: backslash, double quote and line feed
    escaped (the same three in 0.0.4 and OpenMetrics 1.0.0)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _same(value: Any) -> Any:
    return value


@functools.cache
def _parts(names: tuple[str, ...], opening: str) -> tuple[str, ...]:
    """The text before each label value: ``('{a="', '",b="')`` (``opening`` "{" for a new label
    set, "," to extend one)."""
    return tuple(f'{opening if i == 0 else chr(34) + ","}{n}="' for i, n in enumerate(names))


class Sink(Protocol):
    """Where a walk puts its series. A label key is whatever the sink wants per label set: the
    walks build one per entity and reuse it in every family of that entity."""

    def key(self, **labels: str) -> Any: ...

    def keys(self, names: tuple[str, ...], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> list[Any]:
        """A key per row of label values. ``raw``: the values need no escaping (ints, constants)."""
        ...

    def extend(self, keys: Iterable[Any], names: tuple[str, ...], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> list[Any]:
        """Each key with the labels of its row added."""
        ...

    def add(self, fam: Family, pairs: Iterable[tuple[Any, Any]], *, limits: bool = False, extra: Extra = ()) -> None:
        """Series of the family: (key, value) pairs, each with the ``extra`` labels too; a None
        value (and with ``limits``, a "max") leaves its series out. Several calls for one family
        must follow each other."""
        ...

    def one(self, fam: Family, value: Value, key: Any = None) -> None:
        """One series (unlabelled when ``key`` is None)."""
        ...

    def histogram(self, fam: Family, pairs: Iterable[tuple[Any, HistogramSnapshot]]) -> None:
        """A histogram per key (None: unlabelled): its buckets, sum and count."""
        ...


class _Exposition:
    """The text sink. A key is the label text without its closing brace (``'{a="x",b="y"'``),
    so that extending it is a concatenation; ``add`` closes it. Collects the output; a family with
    no sample this scrape is left out entirely."""

    __slots__ = ("chunks", "openmetrics", "last")

    def __init__(self, openmetrics: bool) -> None:
        self.chunks: list[str] = []
        self.openmetrics = openmetrics
        self.last: Family | None = None  # the family whose lines were added last

    def key(self, **labels: str) -> str:
        return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())

    def keys(self, names: tuple[str, ...], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> list[str]:
        return self._build(_parts(names, "{"), rows, raw, None)

    def extend(self, keys: Iterable[str], names: tuple[str, ...], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> list[str]:
        return self._build(_parts(names, ","), rows, raw, keys)

    @staticmethod
    def _build(parts: tuple[str, ...], rows: Iterable[Sequence[Any]], raw: bool, keys: Iterable[str] | None) -> list[str]:
        # The per-entity label text of 1000 containers is built on every scrape: f-strings for the
        # usual one to three labels (a third of the cost of str.format), a join otherwise.
        e = _same if raw else escape
        if keys is None:
            keys = repeat("")
        if len(parts) == 1:
            (p,) = parts
            if raw:
                return [f'{k}{p}{a}"' for k, (a,) in zip(keys, rows)]
            return [f'{k}{p}{escape(a)}"' for k, (a,) in zip(keys, rows)]
        if len(parts) == 2:
            p, q = parts
            if raw:
                return [f'{k}{p}{a}{q}{b}"' for k, (a, b) in zip(keys, rows)]
            return [f'{k}{p}{escape(a)}{q}{escape(b)}"' for k, (a, b) in zip(keys, rows)]
        if len(parts) == 3:
            p, q, r = parts
            return [f'{k}{p}{e(a)}{q}{e(b)}{r}{e(c)}"' for k, (a, b, c) in zip(keys, rows)]
        return [k + "".join(f'{p}{e(v)}' for p, v in zip(parts, row)) + '"' for k, row in zip(keys, rows)]

    def add(self, fam: Family, pairs: Iterable[tuple[str, Any]], *, limits: bool = False, extra: Extra = ()) -> None:
        # f"{v}" of an int or float is its repr, which Go's ParseFloat reads (1e-05, 1.5e+20); JSON
        # cannot carry NaN or Inf, so neither can reach here. The walks turn bools into ints.
        name = fam.name
        close = "".join([f',{k}="{v}"' for k, v in extra]) + "} " if extra else "} "
        if limits:
            lines = [f"{name}{k}{close}{v}\n" for k, v in pairs if v is not None and v != "max"]
        else:
            lines = [f"{name}{k}{close}{v}\n" for k, v in pairs if v is not None]
        if lines:
            if fam is not self.last:
                self.chunks.append(fam.openmetrics_header if self.openmetrics else fam.text_header)
                self.last = fam
            self.chunks.extend(lines)

    def one(self, fam: Family, value: Value, key: str | None = None) -> None:
        if value is not None:
            self.chunks.append(fam.openmetrics_header if self.openmetrics else fam.text_header)
            self.last = fam
            self.chunks.append(f"{fam.name} {value}\n" if key is None else f"{fam.name}{key}}} {value}\n")

    def histogram(self, fam: Family, pairs: Iterable[tuple[str | None, HistogramSnapshot]]) -> None:
        lines = []
        name = fam.name
        for key, h in pairs:
            k = "{" if key is None else key + ","
            close = "" if key is None else key + "}"
            lines += [f'{name}_bucket{k}le="{le}"}} {c}\n' for le, c in zip(_les(h.bounds), (*h.cumulative, h.count))]
            lines += [f"{name}_sum{close} {h.sum}\n", f"{name}_count{close} {h.count}\n"]
        if lines:
            self.chunks.append(fam.openmetrics_header if self.openmetrics else fam.text_header)
            self.last = fam
            self.chunks.extend(lines)

    def finish(self) -> bytes:
        if self.openmetrics:
            self.chunks.append("# EOF\n")
        # Label values come from the kernel and runtimes' metadata, decoded lossily to str by the
        # core; "replace" keeps one odd character from failing the whole scrape.
        return "".join(self.chunks).encode("utf-8", "replace")


Labels = tuple[tuple[str, str], ...]


class SeriesSink:
    """The tuple sink: ``series`` gets a ``(name, labels, value)`` per series, ``labels`` a tuple
    of (label name, value) pairs in the family's label order (one entity's base labels are one
    tuple, shared by all its series)."""

    __slots__ = ("series",)

    def __init__(self) -> None:
        self.series: list[tuple[str, Labels, Any]] = []

    def key(self, **labels: str) -> Labels:
        return tuple(labels.items())

    def keys(self, names: tuple[str, ...], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> list[Labels]:
        return [tuple(zip(names, map(str, row))) for row in rows]

    def extend(self, keys: Iterable[Labels], names: tuple[str, ...], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> list[Labels]:
        return [k + tuple(zip(names, map(str, row))) for k, row in zip(keys, rows)]

    def add(self, fam: Family, pairs: Iterable[tuple[Labels, Any]], *, limits: bool = False, extra: Extra = ()) -> None:
        name = fam.name
        if extra:
            pairs = [(k + extra, v) for k, v in pairs]
        if limits:
            self.series.extend([(name, k, v) for k, v in pairs if v is not None and v != "max"])
        else:
            self.series.extend([(name, k, v) for k, v in pairs if v is not None])

    def one(self, fam: Family, value: Value, key: Labels | None = None) -> None:
        if value is not None:
            self.series.append((fam.name, key or (), value))

    def histogram(self, fam: Family, pairs: Iterable[tuple[Labels | None, HistogramSnapshot]]) -> None:
        name = fam.name
        for key, h in pairs:
            k = key or ()
            self.series.extend((f"{name}_bucket", (*k, ("le", le)), c) for le, c in zip(_les(h.bounds), (*h.cumulative, h.count)))
            self.series += [(f"{name}_sum", k, h.sum), (f"{name}_count", k, h.count)]


@functools.cache
def _les(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` values of a histogram's buckets, +Inf last; as floats (``1.0``, not ``1``): the
    form OpenMetrics requires and Prometheus writes."""
    return (*(repr(float(b)) for b in bounds), "+Inf")


def _fields(out: Sink, obj: object | None, table: Iterable[tuple[Family, str]]) -> None:
    """One unlabelled series per (family, attribute) of ``obj``."""
    if obj is not None:
        for fam, attr in table:
            out.one(fam, getattr(obj, attr))


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
    (gauge("hvstat_node_disk_stacked", "1 if the device is built on other block devices (LVM, md, a ZFS zvol), else 0.", DISK_LABELS, "boolean", "disks[].stacked"), "stacked"),
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


_cpu_modes = operator.attrgetter(*CPU_MODES)
_disk_values = operator.attrgetter(*(attr for _, attr in NODE_DISK))
_net_values = operator.attrgetter(*(attr for _, attr in NODE_NET))
_fs_values = operator.attrgetter(*(attr for _, attr in NODE_FS))


def _exposed(fam: Family, col: Sequence[Any]) -> Sequence[Any]:
    """A column as the exposition wants it: a boolean family's True and False as 1 and 0 (a bool
    would print as True)."""
    return [int(v) for v in col] if fam.unit == "boolean" else col


def walk_node(out: Sink, node: NodeMetrics) -> None:
    cpu = node.cpu
    if cpu is not None:
        pcs = cpu.per_cpu
        keys = out.keys(("cpu", "mode"), [(pc.cpu, mode) for pc in pcs for mode in CPU_MODES], raw=True)
        out.add(NODE_CPU_SECONDS, zip(keys, [v for pc in pcs for v in _cpu_modes(pc.seconds_total)]))
    _fields(out, cpu, NODE_CPU)
    _fields(out, node, NODE_TOP)
    _fields(out, node.memory, NODE_MEMORY)
    _fields(out, node.swap, NODE_SWAP)
    _fields(out, node.hugepages, NODE_HUGEPAGES)
    _fields(out, node.ksm, NODE_KSM)
    _fields(out, node.vm, NODE_VM)

    pressure = node.pressure
    if pressure is not None:
        # ``full`` is null for cpu before Linux 5.13: no series then.
        lines = [
            (resource, kind, line)
            for resource, p in (("cpu", pressure.cpu), ("memory", pressure.memory), ("io", pressure.io))
            if p is not None
            for kind, line in (("some", p.some), ("full", p.full))
            if line is not None
        ]
        keys = out.keys(PRESSURE_LABELS, [(r, k) for r, k, _ in lines], raw=True)
        # total= is in microseconds; avg10= and friends are percent with two decimals, so six
        # decimals of a ratio keep all of it and drop the float noise of the division.
        out.add(NODE_PRESSURE_STALL, zip(keys, [line.total_usec / 1e6 for _, _, line in lines]))
        for fam, attr in NODE_PRESSURE_AVG:
            out.add(fam, zip(keys, [round(getattr(line, attr) / 100, 6) for _, _, line in lines]))

    # As for containers: each entity's values in one attrgetter call, transposed to columns.
    disks = node.disks
    keys = out.keys(DISK_LABELS, [(d.name,) for d in disks])
    for (fam, _), col in zip(NODE_DISK, zip(*map(_disk_values, disks))):
        out.add(fam, zip(keys, _exposed(fam, col)))

    ifaces = node.interfaces
    keys = out.keys(NET_LABELS, [(i.name, i.kind) for i in ifaces])
    for (fam, _), col in zip(NODE_NET, zip(*map(_net_values, ifaces))):
        out.add(fam, zip(keys, col))

    fss = node.filesystems
    keys = out.keys(FS_LABELS, [(f.mount_point, f.device, f.fs_type) for f in fss])
    for (fam, _), col in zip(NODE_FS, zip(*map(_fs_values, fss))):
        out.add(fam, zip(keys, _exposed(fam, col)))

    temps = node.temperatures
    keys = out.keys(NODE_TEMPERATURE.labels, [(t.sensor, t.kind, t.label or "") for t in temps])
    out.add(NODE_TEMPERATURE, zip(keys, [t.celsius for t in temps]))


# --- containers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GuestSeries:
    """What every guest of a kind exports: an info series (1, with ``info_attrs`` as labels) and a
    family per scalar field, each labelled with ``labels`` (taken from the fields ``label_attrs``).
    Fields in ``limits`` may hold "max" (no limit): their series is left out then."""

    labels: tuple[str, ...]
    label_attrs: tuple[str, ...]
    info: Family
    info_attrs: tuple[str, ...]
    fields: tuple[tuple[Family, str], ...]
    limits: frozenset[str] = frozenset()

    def walk(self, out: Sink, guests: Sequence[Any]) -> list[Any]:
        """The info and field series of ``guests``; returns each guest's label key, for the
        kind's own series. Column by column (what a scrape of 1000 containers costs): the label
        key of each guest is built once, the values of all fields are fetched per guest in one
        C call (attrgetter) and transposed (zip), and each family's lines are one comprehension."""
        bases = out.keys(self.labels, list(map(operator.attrgetter(*self.label_attrs), guests)))
        out.add(self.info, zip(out.extend(bases, self.info_attrs, list(map(operator.attrgetter(*self.info_attrs), guests))), repeat(1)))
        values = operator.attrgetter(*(attr for _, attr in self.fields))
        for (fam, attr), col in zip(self.fields, zip(*map(values, guests))):
            out.add(fam, zip(bases, col), limits=attr in self.limits)
        return bases


def _each(out: Sink, bases: Sequence[Any], guests: Sequence[Any], attr: str, label: str, key: str, families: Sequence[tuple[Family, str]], raw: bool = False) -> None:
    """Series of the items of each guest's list ``attr`` (a VM's vCPUs, disks, NICs), labelled
    with the guest's labels plus ``label`` (the item's ``key``)."""
    items = [(b, x) for b, g in zip(bases, guests) for x in getattr(g, attr)]
    keys = out.extend([b for b, _ in items], (label,), [(getattr(x, key),) for _, x in items], raw=raw)
    for fam, field_name in families:
        out.add(fam, zip(keys, [getattr(x, field_name) for _, x in items]))


def _field_family(labels: tuple[str, ...]) -> Callable[[Kind, str, str, str, str], tuple[Family, str]]:
    """Makes (family, field) pairs of one guest kind: labelled with ``labels``, documented as from ``field``."""

    def make(kind: Kind, name: str, help: str, unit: str, attr: str) -> tuple[Family, str]:
        return (_family(name, kind, help, labels, unit, attr), attr)

    return make


CONTAINER_LABELS = ("id", "name", "runtime")
CONTAINER_INFO = info(
    "hvstat_container_info", "1 for every container hvstat sees; its cgroup path and state as labels.", (*CONTAINER_LABELS, "cgroup_path", "state"), "id, name, runtime, cgroup_path, state"
)
_c = _field_family(CONTAINER_LABELS)


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
CONTAINER_SERIES = GuestSeries(
    CONTAINER_LABELS, ("id", "name", "runtime"), CONTAINER_INFO, ("cgroup_path", "state"), CONTAINER_FIELDS, frozenset({"memory_limit_bytes", "pids_max"})
)
_network_values = operator.attrgetter(*(attr for _, attr in CONTAINER_NETWORK))


def walk_containers(out: Sink, containers: Iterable[ContainerMetrics]) -> None:
    cs = list(containers)
    if not cs:
        return
    bases = CONTAINER_SERIES.walk(out, cs)
    own = [(b, c) for b, c in zip(bases, cs) if c.network_mode == "own"]
    if own:
        own_bases = [b for b, _ in own]
        for (fam, _), col in zip(CONTAINER_NETWORK, zip(*(_network_values(c) for _, c in own))):
            out.add(fam, zip(own_bases, col))
    for resource, attr in (("cpu", "pressure_cpu"), ("memory", "pressure_memory"), ("io", "pressure_io")):
        ps = [getattr(c, attr) for c in cs]
        some = [(b, p.some.total_usec / 1e6) for b, p in zip(bases, ps) if p is not None]
        out.add(CONTAINER_PRESSURE_STALL, some, extra=(("resource", resource), ("kind", "some")))
        full = [(b, p.full.total_usec / 1e6) for b, p in zip(bases, ps) if p is not None and p.full is not None]
        out.add(CONTAINER_PRESSURE_STALL, full, extra=(("resource", resource), ("kind", "full")))


# --- VMs ---------------------------------------------------------------------------------------------

VM_LABELS = ("vm", "name")
VM_INFO = info("hvstat_vm_info", "1 for every VM hvstat sees; where it comes from and its state as labels.", (*VM_LABELS, "origin", "status"), "id, name, origin, status")
_v = _field_family(VM_LABELS)


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
VM_SERIES = GuestSeries(VM_LABELS, ("id", "name"), VM_INFO, ("origin", "status"), VM_FIELDS)


def walk_vms(out: Sink, vms: Iterable[VmMetrics]) -> None:
    vs = list(vms)
    if not vs:
        return
    bases = VM_SERIES.walk(out, vs)
    _each(out, bases, vs, "vcpu", "vcpu", "index", VM_VCPU, raw=True)
    _each(out, bases, vs, "disks", "disk", "name", VM_DISK)
    _each(out, bases, vs, "nics", "interface", "name", VM_NIC)


# --- alerts ------------------------------------------------------------------------------------------

# --- processes and users -------------------------------------------------------------------------

USER_LABELS = ("user", "uid")
USER_FIELDS = (
    (counter("hvstat_user_cpu_seconds_total", "CPU seconds the user's processes used since hvstat started (each interval's use of the processes seen).", USER_LABELS, "seconds", "users[].cpu_seconds_total"), "cpu_seconds_total"),
    (gauge("hvstat_user_cpu_percent", "The user's processes' CPU over the last interval, percent of one core.", USER_LABELS, "percent", "users[].cpu_percent"), "cpu_percent"),
    (gauge("hvstat_user_memory_rss_bytes", "Sum of the resident sets of the user's processes.", USER_LABELS, "bytes", "users[].rss_bytes"), "rss_bytes"),
    (gauge("hvstat_user_processes", "Processes of the user.", USER_LABELS, "processes", "users[].processes"), "processes"),
    (gauge("hvstat_user_threads", "Threads of the user's processes.", USER_LABELS, "threads", "users[].threads"), "threads"),
    (gauge("hvstat_user_read_bytes_per_second", "Bytes the user's processes caused to be read from storage, per second.", USER_LABELS, "bytes/s", "users[].read_bytes_per_sec"), "read_bytes_per_sec"),
    (gauge("hvstat_user_write_bytes_per_second", "Bytes the user's processes caused to be written to storage, per second.", USER_LABELS, "bytes/s", "users[].write_bytes_per_sec"), "write_bytes_per_sec"),
    (gauge("hvstat_user_persistent_heavy", "1 if the user has been over its threshold for persistent_time, else 0.", USER_LABELS, "boolean", "users[].persistent_heavy"), "persistent_heavy"),
)
PROCESSES_HOST = (
    (gauge("hvstat_processes", "Processes on the host (every user).", unit="processes", source="host.processes"), "processes"),
    (gauge("hvstat_processes_threads", "Threads of every process on the host.", unit="threads", source="host.threads"), "threads"),
    (gauge("hvstat_processes_zombies", "Processes exited and not yet reaped.", unit="processes", source="host.zombies"), "zombies"),
    (gauge("hvstat_processes_unreadable", "Processes listed in /proc whose stat hvstat may not read.", unit="processes", source="host.unreadable"), "unreadable"),
    (gauge("hvstat_processes_kept_open_fds", "Descriptors the process sampler keeps open.", unit="fds", source="host.kept_open_fds"), "kept_open_fds"),
)
# Opt-in ([processes] prometheus_top = N): the N processes highest by CPU (then RSS), one series each.
PROCESS_LABELS = ("pid", "name", "user")
PROCESS_FIELDS = (
    (counter("hvstat_process_cpu_seconds_total", "utime + stime of the process since it started (prometheus_top processes only).", PROCESS_LABELS, "seconds", "processes[].cpu_seconds_total"), "cpu_seconds_total"),
    (gauge("hvstat_process_cpu_percent", "The process's CPU over the last interval, percent of one core (prometheus_top processes only).", PROCESS_LABELS, "percent", "processes[].cpu_percent"), "cpu_percent"),
    (gauge("hvstat_process_memory_rss_bytes", "The process's resident set (prometheus_top processes only).", PROCESS_LABELS, "bytes", "processes[].rss_bytes"), "rss_bytes"),
    (gauge("hvstat_process_threads", "Threads of the process (prometheus_top processes only).", PROCESS_LABELS, "threads", "processes[].threads"), "threads"),
    (gauge("hvstat_process_read_bytes_per_second", "Bytes the process caused to be read from storage, per second (prometheus_top processes only).", PROCESS_LABELS, "bytes/s", "processes[].read_bytes_per_sec"), "read_bytes_per_sec"),
    (gauge("hvstat_process_write_bytes_per_second", "Bytes the process caused to be written to storage, per second (prometheus_top processes only).", PROCESS_LABELS, "bytes/s", "processes[].write_bytes_per_sec"), "write_bytes_per_sec"),
)
LOAD_LEVELS = ("light", "medium", "heavy")
LOAD_STATUS = gauge("hvstat_load_status", "1 for the host's load status level (light, medium, heavy), 0 for the others.", ("level",), "boolean", "status.level")


def walk_processes(out: Sink, sample: ProcessesSample, top: int = 0) -> None:
    """Per-user series, the host's process counts and the load status; per-process series for the
    ``top`` processes highest by CPU (the sample's order) when ``top`` > 0 ([processes]
    prometheus_top, /metrics only)."""
    _fields(out, sample.host, PROCESSES_HOST)
    out.add(LOAD_STATUS, [(out.key(level=level), int(sample.status.level == level)) for level in LOAD_LEVELS])
    users = sample.users
    if users:
        keys = out.keys(USER_LABELS, ((u.user, str(u.uid)) for u in users))
        for fam, attr in USER_FIELDS:
            out.add(fam, ((k, _number(getattr(u, attr))) for k, u in zip(keys, users, strict=True)))
    procs = sample.processes[:top] if top > 0 else []
    if procs:
        pkeys = out.keys(PROCESS_LABELS, ((str(p.pid), p.name, p.user if p.user is not None else "") for p in procs))
        for fam, attr in PROCESS_FIELDS:
            out.add(fam, ((k, getattr(p, attr)) for k, p in zip(pkeys, procs, strict=True)))


def _number(v: object) -> object:
    return int(v) if isinstance(v, bool) else v


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


def _alerts(out: Sink, alerts: AlertCounts) -> None:
    firing = alerts.firing_by_rule()
    keys = out.keys(ALERTS_FIRING.labels, [(r, s) for r, s, _ in firing])
    out.add(ALERTS_FIRING, zip(keys, [n for _, _, n in firing]))
    ns = alerts.notifier_status()
    keys = out.keys(NOTIFIER_LABELS, [(n.name,) for n in ns])
    for fam, attr in ALERT_NOTIFIER:
        out.add(fam, zip(keys, [getattr(n, attr) for n in ns]))
    out.add(ALERT_NOTIFIER_RETRIES, zip(keys, [n.retries for n in ns]))


# --- hvstat itself -----------------------------------------------------------------------------------

SOURCE_LABELS = ("source",)
SOURCE_UP = gauge("hvstat_source_up", "1 if the source's last tick succeeded, else 0.", SOURCE_LABELS, "boolean", "/health sources[]: consecutive_failures == 0 and last_success set")
# A histogram, not the last tick's duration: a scrape every 15 s sees one tick in three of a 5 s
# source, and a slow tick between two scrapes would never show (the reasoning of
# hvstat_storage_write_seconds_total below). /health keeps the last one (last_duration_secs).
SOURCE_DURATION = histogram(
    "hvstat_source_duration_seconds",
    "Duration of the source's ticks, seconds (a stuck tick counts as the time it was waited for).",
    SOURCE_LABELS,
    "seconds",
    "every tick's duration (/health sources[].last_duration_secs is the last one)",
)
SOURCE_SAMPLES = counter(
    "hvstat_source_samples_total",
    "Ticks of the source that succeeded: a sample taken and stored within the tick timeout.",
    SOURCE_LABELS,
    "samples",
    "ticks that succeeded, since the start",
)
SOURCE_FAILED = counter(
    "hvstat_source_failures_total",
    "Ticks of the source that failed (an error, or a tick that did not finish in time), and a failed first reading.",
    SOURCE_LABELS,
    "ticks",
    "failed ticks, since the start (/health sources[].error says why, while it lasts)",
)
READER_UP = gauge(
    "hvstat_reader_up",
    "1 if the reader read its files in the source's last tick, 0 if one could not be read or parsed (the reason is in the sample's unavailable).",
    ("source", "reader"),
    "boolean",
    "the last tick's unavailable reasons that name a path",
)
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
BUILD_INFO = info(
    "hvstat_build_info",
    "1, with the versions of hvstat, of its compiled core and of Python as labels.",
    ("version", "core_version", "python"),
    "hvstat.__version__, hvstat._core.__version__, platform.python_version()",
)
NODE_INFO = info(
    "hvstat_node_info",
    "1, with this node's name, its machine id (left out when unknown) and the [labels] as labels.",
    ("node", "machine_id"),
    "[server] node_name (default: the hostname), /etc/machine-id, [labels]",
)


def _node_info(out: Sink, node: NodeIdentity) -> None:
    labels = {"node": node.name}
    if node.machine_id.value is not None:
        labels["machine_id"] = node.machine_id.value
    out.one(NODE_INFO, 1, out.key(**labels, **dict(node.labels)))


def _sources(out: Sink, sources: Iterable[SourceHealth]) -> None:
    hs = list(sources)
    keys = out.keys(SOURCE_LABELS, [(h.name,) for h in hs])
    out.add(SOURCE_UP, zip(keys, [int(h.consecutive_failures == 0 and h.last_success is not None) for h in hs]))
    out.add(SOURCE_LAST_SUCCESS, zip(keys, [h.last_success for h in hs]))
    out.add(SOURCE_FAILURES, zip(keys, [h.consecutive_failures for h in hs]))


def _source_stats(out: Sink, stats: Iterable[SourceStats]) -> None:
    ss = list(stats)
    keys = out.keys(SOURCE_LABELS, [(s.name,) for s in ss])
    out.add(SOURCE_SAMPLES, zip(keys, [s.samples for s in ss]))
    out.add(SOURCE_FAILED, zip(keys, [s.failures for s in ss]))
    out.histogram(SOURCE_DURATION, zip(keys, [s.duration for s in ss]))
    readers = [(s.name, r, int(problem is None)) for s in ss for r, problem in s.readers]
    out.add(READER_UP, zip(out.keys(READER_UP.labels, [(s, r) for s, r, _ in readers]), [up for _, _, up in readers]))


REMOTE_WRITE_SENT = counter(
    "hvstat_remote_write_samples_sent_total",
    "Samples the remote-write receiver accepted (a 2xx answer).",
    unit="samples",
    source="[remote_write]: samples of batches answered 2xx",
)
REMOTE_WRITE_FAILED = counter(
    "hvstat_remote_write_samples_failed_total",
    "Samples of batches the receiver refused with a 4xx other than 429 (malformed or out of order): dropped, not retried.",
    unit="samples",
    source="[remote_write]: samples of batches answered 4xx (not 429)",
)
REMOTE_WRITE_DROPPED = counter(
    "hvstat_remote_write_samples_dropped_total",
    "Samples never sent: the oldest batches, dropped to keep the buffer within buffer_max_bytes, or unreadable.",
    unit="samples",
    source="[remote_write]: samples of batches removed unsent from buffer_dir",
)
REMOTE_WRITE_RETRIES = counter(
    "hvstat_remote_write_retries_total",
    "Sends that failed and will be retried (5xx, 429, timeout, connection error).",
    unit="attempts",
    source="[remote_write]: failed attempts that keep the batch",
)
REMOTE_WRITE_BUFFER_BYTES = gauge(
    "hvstat_remote_write_buffer_bytes",
    "Bytes of batches in the on-disk buffer waiting to be sent.",
    unit="bytes",
    source="[remote_write]: sizes of the batch files in buffer_dir",
)
REMOTE_WRITE_BUFFER_SAMPLES = gauge(
    "hvstat_remote_write_buffer_samples",
    "Samples in the on-disk buffer waiting to be sent.",
    unit="samples",
    source="[remote_write]: samples of the batch files in buffer_dir",
)
REMOTE_WRITE_SEND_DURATION = histogram(
    "hvstat_remote_write_send_duration_seconds",
    "Duration of each POST of a batch to the receiver, seconds, answered or failed (a timeout counts as the time it took).",
    unit="seconds",
    source="[remote_write]: every send attempt",
)
REMOTE_WRITE_LAST_SUCCESS = gauge(
    "hvstat_remote_write_last_success_timestamp_seconds",
    "When the receiver last accepted a batch, unix seconds; absent until it has.",
    unit="seconds",
    source="[remote_write]: time of the last 2xx",
)


WS_CLIENTS = gauge("hvstat_ws_clients", "WebSocket clients connected to /ws now.", unit="clients", source="the hub's clients")
WS_DROPPED = counter(
    "hvstat_ws_clients_dropped_total",
    "WebSocket clients closed because they fell behind (their queue of ws_queue_size messages was full).",
    unit="clients",
    source="the hub: slow clients closed (code 1008)",
)
WS_REFUSED = counter(
    "hvstat_ws_clients_refused_total",
    "WebSocket connections refused because max_ws_clients were connected.",
    unit="clients",
    source="the hub: refusals (code 1013)",
)
WS_ENCODED = counter(
    "hvstat_ws_messages_encoded_total",
    "Messages the hub encoded (once each, however many clients got it).",
    unit="messages",
    source="the hub: frames encoded",
)


def _hub(out: Sink, hub: HubCounts) -> None:
    out.one(WS_CLIENTS, len(hub.clients))
    out.one(WS_DROPPED, hub.dropped_slow)
    out.one(WS_REFUSED, hub.refused)
    out.one(WS_ENCODED, hub.frames_encoded)


def _remote_write(out: Sink, rw: RemoteWriteCounts) -> None:
    out.one(REMOTE_WRITE_SENT, rw.samples_sent)
    out.one(REMOTE_WRITE_FAILED, rw.samples_failed)
    out.one(REMOTE_WRITE_DROPPED, rw.samples_dropped)
    out.one(REMOTE_WRITE_RETRIES, rw.retries)
    out.one(REMOTE_WRITE_BUFFER_BYTES, rw.buffer_bytes)
    out.one(REMOTE_WRITE_BUFFER_SAMPLES, rw.buffer_samples)
    out.one(REMOTE_WRITE_LAST_SUCCESS, rw.last_success)
    out.histogram(REMOTE_WRITE_SEND_DURATION, [(None, rw.send_duration)])


# A counter of seconds, not the last write's duration: a gauge of the last write shows whatever
# write a scrape happened to follow (a 60 s bucket's one commit between two 15 s scrapes is seen
# four times, a slow one between them never); rate() of the counter is the share of a core spent
# writing, and divided by rate(hvstat_storage_writes_total) the mean duration of a write, over
# any window (node_exporter's node_disk_io_time_seconds_total, a summary's _sum and _count).
STORAGE_BYTES = gauge(
    "hvstat_storage_bytes",
    "Bytes of the on-disk history: the database file and its write-ahead log.",
    unit="bytes",
    source="/health storage.bytes",
)
STORAGE_WRITE_SECONDS = counter(
    "hvstat_storage_write_seconds_total",
    "Seconds the storage writer spent in write transactions (committed or failed), since the start.",
    unit="seconds",
    source="[storage]: wall time of each write transaction",
)
STORAGE_WRITES = counter(
    "hvstat_storage_writes_total",
    "Write transactions of the storage writer (one per closed bucket), committed or failed.",
    unit="transactions",
    source="[storage]: write transactions begun",
)
STORAGE_ERRORS = counter(
    "hvstat_storage_errors_total",
    "Storage failures: a write or an open the disk refused (full, read-only, corrupt), or a sample the writer could not take.",
    unit="errors",
    source="[storage]: failures (/health storage.error holds the last one while it lasts)",
)


def _storage(out: Sink, st: StorageCounts) -> None:
    out.one(STORAGE_BYTES, st.bytes)
    out.one(STORAGE_WRITE_SECONDS, st.write_seconds_sum)
    out.one(STORAGE_WRITES, st.write_attempts)
    out.one(STORAGE_ERRORS, st.errors)


def walk_own(
    out: Sink,
    sources: Iterable[SourceHealth],
    version: str,
    alerts: AlertCounts | None = None,
    remote_write: RemoteWriteCounts | None = None,
    hub: HubCounts | None = None,
    storage: StorageCounts | None = None,
    identity: NodeIdentity | None = None,
    stats: Iterable[SourceStats] = (),
    clock: ClockCounts | None = None,
) -> None:
    """hvstat's own series: alerts, source health and collection, build info, the node's
    identity, the clock, remote write, the WebSocket hub, the on-disk history."""
    if alerts is not None:
        _alerts(out, alerts)
    _sources(out, sources)
    _source_stats(out, stats)
    b = BuildInfo(version)
    out.one(BUILD_INFO, 1, out.key(version=b.version, core_version=b.core_version, python=b.python))
    if identity is not None:
        _node_info(out, identity)
    if clock is not None:
        _clock(out, clock)
    if remote_write is not None:
        _remote_write(out, remote_write)
    if hub is not None:
        _hub(out, hub)
    if storage is not None:
        _storage(out, storage)


CLOCK_STEPS = counter(
    "hvstat_clock_steps_total",
    "Steps of the wall clock: (wall - monotonic) moved by 0.1 s or more between two node ticks.",
    unit="steps",
    source="/health clock.steps",
)
CLOCK_STEP = gauge(
    "hvstat_clock_step_seconds",
    "The last step of the wall clock: how far it moved beyond the monotonic clock (negative: back); absent until one.",
    unit="seconds",
    source="/health clock.last_step_seconds",
)
CLOCK_STEP_AT = gauge(
    "hvstat_clock_last_step_timestamp_seconds", "When the wall clock last stepped, unix seconds; absent until it has.", unit="seconds", source="/health clock.last_step_at"
)
CLOCK_DRIFT = gauge(
    "hvstat_clock_drift_ppm",
    "Changes of (wall - monotonic) below a step over the last 10 minutes, per second, in ppm; absent for the first minute.",
    unit="ppm",
    source="/health clock.drift_ppm",
)
CLOCK_SYNCED = gauge(
    "hvstat_clock_synchronized", "1 if the kernel says NTP has the clock synchronised (adjtimex), else 0.", unit="boolean", source="/health clock.synchronized"
)
CLOCK_MAX_ERROR = gauge(
    "hvstat_clock_max_error_seconds", "The kernel's maximum error of the clock (adjtimex maxerror), seconds.", unit="seconds", source="/health clock.max_error_secs"
)
CLOCK_EST_ERROR = gauge(
    "hvstat_clock_estimated_error_seconds",
    "The kernel's estimated error of the clock (adjtimex esterror), seconds.",
    unit="seconds",
    source="/health clock.estimated_error_secs",
)

CLOCK_RECEIVER_OFFSET = gauge(
    "hvstat_clock_receiver_offset_seconds",
    "The remote-write receiver's clock (its Date header) minus this one, seconds, known to 0.5 s plus half the round trip.",
    unit="seconds",
    source="/health clock.receiver_offset_secs",
)

def _clock(out: Sink, clock: ClockCounts) -> None:
    out.one(CLOCK_STEPS, clock.steps)
    step = clock.last_step
    if step is not None:
        out.one(CLOCK_STEP, step.seconds)
        out.one(CLOCK_STEP_AT, step.at)
    out.one(CLOCK_DRIFT, clock.drift_ppm())
    sync = clock.sync()
    out.one(CLOCK_SYNCED, None if sync.synchronized is None else int(sync.synchronized))
    out.one(CLOCK_MAX_ERROR, sync.max_error_secs)
    out.one(CLOCK_EST_ERROR, sync.estimated_error_secs)
    rx = clock.receiver_offset
    if rx is not None:
        out.one(CLOCK_RECEIVER_OFFSET, rx[0])


def own_label_names() -> frozenset[str]:
    """Every label name hvstat's series use (``[labels]`` may not take one of them), and those
    Prometheus gives a meaning: ``le`` and ``quantile`` (histograms, summaries)."""
    return frozenset(label for f in FAMILIES for label in f.labels) | {"le", "quantile"}


# --- the endpoint ------------------------------------------------------------------------------------


# The samples that become series, each stamped with its own time (remote write).
Walked = NodeMetrics | ContainersSample | VmsSample | ProcessesSample
WALKED = (NodeMetrics, ContainersSample, VmsSample, ProcessesSample)


def walk_sample(out: Sink, sample: Walked) -> None:
    """The series of one sample."""
    if isinstance(sample, NodeMetrics):
        walk_node(out, sample)
    elif isinstance(sample, ContainersSample):
        walk_containers(out, sample.containers)
    elif isinstance(sample, ProcessesSample):
        walk_processes(out, sample)
    else:
        walk_vms(out, sample.vms)


def collect(
    out: Sink,
    node: NodeMetrics | None,
    containers: Iterable[ContainerMetrics],
    sources: Iterable[SourceHealth],
    version: str,
    *,
    vms: Iterable[VmMetrics] = (),
    processes: ProcessesSample | None = None,
    processes_top: int = 0,
    alerts: AlertCounts | None = None,
    remote_write: RemoteWriteCounts | None = None,
    hub: HubCounts | None = None,
    storage: StorageCounts | None = None,
    identity: NodeIdentity | None = None,
    stats: Iterable[SourceStats] = (),
    clock: ClockCounts | None = None,
) -> None:
    """Every series of one scrape into ``out``: node, containers, VMs, users, hvstat's own."""
    if node is not None:
        walk_node(out, node)
    walk_containers(out, containers)
    walk_vms(out, vms)
    if processes is not None:
        walk_processes(out, processes, processes_top)
    walk_own(out, sources, version, alerts, remote_write, hub, storage, identity, stats, clock)


def render(
    node: NodeMetrics | None,
    containers: Iterable[ContainerMetrics],
    sources: Iterable[SourceHealth],
    version: str,
    *,
    vms: Iterable[VmMetrics] = (),
    processes: ProcessesSample | None = None,
    processes_top: int = 0,
    alerts: AlertCounts | None = None,
    remote_write: RemoteWriteCounts | None = None,
    hub: HubCounts | None = None,
    storage: StorageCounts | None = None,
    identity: NodeIdentity | None = None,
    stats: Iterable[SourceStats] = (),
    clock: ClockCounts | None = None,
    openmetrics: bool = False,
) -> bytes:
    """The whole exposition of one scrape: node, containers, VMs, hvstat's own health."""
    out = _Exposition(openmetrics)
    collect(out, node, containers, sources, version, vms=vms, processes=processes, processes_top=processes_top, alerts=alerts, remote_write=remote_write, hub=hub, storage=storage, identity=identity, stats=stats, clock=clock)
    return out.finish()
