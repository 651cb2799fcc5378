"""The Store: the latest sample of every entity, written by the sources and read by the API and the
hub, plus a bounded history of each entity (the node, every container, every VM, every user of the
process sample's per-user view) unless ``monitoring.enable_history`` is off.

History layout
--------------
Only the numeric fields each kind declares (NODE_HISTORY_FIELDS, CONTAINER_HISTORY_FIELDS) are kept,
as float64 columns in ``array`` objects: no Python object per value. A null is stored as NaN and
comes back as null (the kernel never hands us a NaN: JSON has none). Integers are exact up to 2**53.
Per entity (a ``Series``) there are two tiers:

- **full resolution**: a ring of the last ``history_full_resolution`` seconds of samples (capped at
  ``history_retention``): ``full_cap = ceil(full_resolution / interval) + 1`` slots, each the
  sample's timestamp and one float64 per field;
- **min/avg/max buckets**: a ring of ``coarse_cap = ceil(history_retention / history_bucket)``
  closed buckets aligned to multiples of ``history_bucket`` on the unix clock, each its start and,
  per field, min, max and sum (float64) and the count of non-null samples (uint32), so that
  buckets can be merged into larger steps exactly; plus the open bucket's accumulators.

Bytes per entity with F fields once both rings are full (``Series.capacity_bytes``, which
tests/test_history.py checks against tracemalloc)::

    8 * (1 + F) * full_cap  +  (8 + 28 * F) * coarse_cap  +  headers (80 bytes per array: 4,696 for F = 8)

At the defaults (3600 s at full resolution, 60 s buckets, 86400 s retention), CPython 3.11 64-bit:

- a container (F = 8, sampled every 10 s: full_cap 361, coarse_cap 1440): **364,768 bytes**
  (356 KiB), so 1000 containers take at most 365 MB; 92 % of it is the bucket ring
  (``history_bucket = 300`` brings a container to 97,504 bytes);
- the node (F = 21, sampled every 5 s: full_cap 721): **995,916 bytes**.

The arrays grow as samples come and stop at these sizes, so a short-lived container costs only what
it used. A container that vanishes keeps its history until its newest sample is older than
``history_retention``; then it is dropped.

Threads: sources write from worker threads while the event loop reads. Each append and each read
of a series holds ``Store._lock`` (one entity at a time, microseconds), so a reader never sees half
a sample.
"""

from __future__ import annotations

import bisect
import logging
import math
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Literal

from hvstat.models import (
    ContainerMetrics,
    ContainersSample,
    NodeMetrics,
    ProcessesSample,
    SeriesStats,
    VmMetrics,
    VmsSample,
    VmStatusChangedMessage,
)
from hvstat.settings import MonitoringSettings

log = logging.getLogger(__name__)

NAN = math.nan
# A step is aligned to history_bucket when step / bucket is this close to an integer.
_ALIGN_EPS = 1e-9


@dataclass(frozen=True)
class HistoryField:
    """A numeric field kept in history: its name in history answers, and how to read it from a sample."""

    name: str
    get: Callable[[Any], float | int | None]
    # A count (bytes): served as JSON integers (values and min/max; a mean stays a float).
    integer: bool = False
    # The attribute ``get`` reads, when it reads just one (Kind reads all of those in one call).
    attr: str | None = None


def _network(attr: str) -> Callable[[NodeMetrics], float | None]:
    def get(s: NodeMetrics) -> float | None:
        return None if s.network is None else getattr(s.network, attr)

    return get


def _disk_total(attr: str) -> Callable[[NodeMetrics], float | None]:
    def get(s: NodeMetrics) -> float | None:
        return None if s.disk_total is None else getattr(s.disk_total, attr)

    return get


def _cpu_mode(mode: str) -> Callable[[NodeMetrics], float | None]:
    def get(s: NodeMetrics) -> float | None:
        return None if s.cpu is None else getattr(s.cpu.total, mode)

    return get


def _swap_used_percent(s: NodeMetrics) -> float | None:
    # No swap is null, not 0% (as the dashboard shows it).
    return s.swap.used_percent if s.swap is not None and s.swap.total_bytes else None


def _pressure_some_avg10(resource: str) -> Callable[[NodeMetrics], float | None]:
    def get(s: NodeMetrics) -> float | None:
        p = None if s.pressure is None else getattr(s.pressure, resource)
        return None if p is None else p.some.avg10

    return get


NODE_HISTORY_FIELDS: tuple[HistoryField, ...] = (
    *(
        HistoryField(n, attrgetter(n), attr=n)
        for n in ("cpu_usage", "memory_usage", "disk_usage", "load_average_1m", "load_average_5m", "load_average_15m")
    ),
    # The CPU modes the dashboard stacks, from cpu.total.
    *(HistoryField(f"cpu_{m}_percent", _cpu_mode(m)) for m in ("user", "nice", "system", "irq", "softirq", "steal", "iowait")),
    HistoryField("swap_used_percent", _swap_used_percent),
    HistoryField("disk_read_bytes_per_sec", _disk_total("read_bytes_per_sec")),
    HistoryField("disk_write_bytes_per_sec", _disk_total("write_bytes_per_sec")),
    HistoryField("network_rx_bytes_per_sec", _network("rx_bytes_per_sec")),
    HistoryField("network_tx_bytes_per_sec", _network("tx_bytes_per_sec")),
    *(HistoryField(f"pressure_{r}_some_avg10", _pressure_some_avg10(r)) for r in ("cpu", "memory", "io")),
)
CONTAINER_HISTORY_FIELDS: tuple[HistoryField, ...] = tuple(
    HistoryField(n, attrgetter(n), integer=n.endswith("_bytes"), attr=n)
    for n in (
        "cpu_usage_percent",
        "cpu_cores",
        "memory_usage_bytes",
        "memory_working_set_bytes",
        "block_read_bytes_per_sec",
        "block_write_bytes_per_sec",
        "network_rx_bytes_per_sec",
        "network_tx_bytes_per_sec",
    )
)

VM_HISTORY_FIELDS: tuple[HistoryField, ...] = tuple(
    HistoryField(n, attrgetter(n), integer=n.endswith("_bytes"), attr=n)
    for n in (
        "cpu_usage_percent",
        "cpu_vcpu_percent",
        "memory_usage_percent",
        "memory_rss_bytes",
        "disk_read_bytes_per_sec",
        "disk_write_bytes_per_sec",
        "network_rx_bytes_per_sec",
        "network_tx_bytes_per_sec",
    )
)
# A user's sums (UserMetrics of the process sample), kept per user name: GET /api/users/{name}/history.
USER_HISTORY_FIELDS: tuple[HistoryField, ...] = tuple(
    HistoryField(n, attrgetter(n), integer=n.endswith("_bytes") or n in ("processes", "threads"), attr=n)
    for n in (
        "cpu_percent",
        "cpu_host_percent",
        "rss_bytes",
        "memory_percent",
        "processes",
        "threads",
        "read_bytes_per_sec",
        "write_bytes_per_sec",
    )
)
# VmStatusChanged events kept for GET /api/vms/events.
VM_EVENTS_KEPT = 1000


@dataclass(frozen=True)
class HistoryConfig:
    """The history settings, resolved: ``full_resolution`` already capped at ``retention``."""

    full_resolution: float = 3600.0
    retention: float = 86400.0
    bucket: float = 60.0

    @classmethod
    def from_settings(cls, m: MonitoringSettings) -> HistoryConfig | None:
        """None when history is off (``enable_history = false`` or a retention of 0)."""
        if not m.enable_history or m.history_retention == 0:
            return None
        return cls(min(m.history_full_resolution, m.history_retention), m.history_retention, m.history_bucket)

    def full_capacity(self, interval: float) -> int:
        return math.ceil(self.full_resolution / interval) + 1 if self.full_resolution > 0 else 0

    def coarse_capacity(self) -> int:
        return math.ceil(self.retention / self.bucket)


class HistoryQueryError(ValueError):
    """A history request that cannot be answered as asked (answered with a 400)."""

    def __init__(self, error: str, detail: object) -> None:
        super().__init__(error)
        self.error, self.detail = error, detail


@dataclass(frozen=True)
class HistoryResult:
    resolution: Literal["full", "min/avg/max"]
    step: float
    timestamps: list[float]
    series: dict[str, list[int | float | None] | SeriesStats]


def _nulls(values: Sequence[float], integer: bool = False) -> list[int | float | None]:
    if integer:
        return [None if v != v else int(v) for v in values]
    return [None if v != v else v for v in values]


def _stats(mins: list[float | None], avgs: list[float | None], maxs: list[float | None], integer: bool) -> SeriesStats:
    if integer:
        mins = [None if v is None else int(v) for v in mins]
        maxs = [None if v is None else int(v) for v in maxs]
    return SeriesStats(min=mins, avg=avgs, max=maxs)


def _columns(code: str, n: int) -> list[array]:  # type: ignore[type-arg]
    """``n`` empty arrays in a list of exactly ``n`` slots (a comprehension would over-allocate)."""
    cols: list[array] = [None] * n  # type: ignore[list-item,type-arg]
    for j in range(n):
        cols[j] = array(code)
    return cols


def _exact(cols: list[array]) -> None:  # type: ignore[type-arg]
    """Replace each array by a copy of exactly its length (``append`` over-allocates)."""
    for j, c in enumerate(cols):
        cols[j] = array(c.typecode, c)


def _ring(a: array, start: int) -> array:  # type: ignore[type-arg]
    """A copy of ring ``a`` in logical order (oldest first); ``start`` is the oldest slot."""
    return a[start:] + a[:start] if start else a[:]


def accumulate(mn: array[float], mx: array[float], sm: array[float], ct: array[int], values: Sequence[float]) -> None:
    """Fold one sample into a bucket's per-field min, max, sum and count; a NaN (null) is skipped.
    The in-memory buckets here and the on-disk rollups (hvstat.rollups) both accumulate this way."""
    for j, v in enumerate(values):
        if v == v:
            if ct[j]:
                if v < mn[j]:
                    mn[j] = v
                if v > mx[j]:
                    mx[j] = v
            else:
                mn[j] = mx[j] = v
            sm[j] += v
            ct[j] += 1


class Series:
    """The history of one entity: the full-resolution ring and the min/avg/max bucket ring.

    The arrays grow by append until they reach capacity, are then copied once to their exact size,
    and from there on are written in place as rings (``start`` and ``bstart`` are the oldest slots).
    """

    __slots__ = (
        "nfields",
        "full_cap",
        "coarse_cap",
        "bucket",
        "name",
        "last",
        "ts",
        "cols",
        "start",
        "bts",
        "bmin",
        "bmax",
        "bsum",
        "bcnt",
        "bstart",
        "open_at",
        "amin",
        "amax",
        "asum",
        "acnt",
    )

    def __init__(self, nfields: int, full_cap: int, coarse_cap: int, bucket: float, name: str | None = None) -> None:
        self.nfields, self.full_cap, self.coarse_cap, self.bucket, self.name = nfields, full_cap, coarse_cap, bucket, name
        self._reset()

    def _reset(self) -> None:
        n = self.nfields
        self.last = -math.inf
        self.ts = array("d")
        self.cols = _columns("d", n)
        self.start = 0
        self.bts = array("d")
        self.bmin = _columns("d", n)
        self.bmax = _columns("d", n)
        self.bsum = _columns("d", n)
        self.bcnt = _columns("I", n)
        self.bstart = 0
        self.open_at = NAN
        self.amin = array("d", [NAN]) * n
        self.amax = array("d", [NAN]) * n
        self.asum = array("d", [0.0]) * n
        self.acnt = array("I", [0]) * n

    def append(self, ts: float, values: Sequence[float]) -> None:
        """Add one sample (``values`` in field order, NaN for null). A timestamp that is not after
        the previous one is dropped; one that went back (the wall clock was stepped back) starts the
        series over, since both rings must stay sorted by time."""
        if ts <= self.last:
            if ts == self.last:
                return
            log.warning("history: a sample at %.3f is older than the previous one (%.3f): the clock went back; history of %s restarted", ts, self.last, self.name or "the node")
            self._reset()
        self.last = ts
        cap = self.full_cap
        if cap:
            if len(self.ts) < cap:
                self.ts.append(ts)
                for col, v in zip(self.cols, values):
                    col.append(v)
                if len(self.ts) == cap:
                    # Drop append's over-allocation: from here on the size is exactly the capacity.
                    self.ts = array("d", self.ts)
                    _exact(self.cols)
            else:
                i = self.start
                self.ts[i] = ts
                for col, v in zip(self.cols, values):
                    col[i] = v
                self.start = i + 1 if i + 1 < cap else 0
        if self.coarse_cap:
            at = math.floor(ts / self.bucket) * self.bucket
            if at != self.open_at:
                if self.open_at == self.open_at:  # not NaN: a bucket is open
                    self._close_bucket()
                self.open_at = at
            accumulate(self.amin, self.amax, self.asum, self.acnt, values)

    def resize_full(self, cap: int) -> None:
        """A new full-resolution capacity (the source's interval changed): the newest ``cap``
        samples are kept, in order; the ring grows again by append up to ``cap``."""
        if cap == self.full_cap:
            return
        keep = min(len(self.ts), cap)
        drop = len(self.ts) - keep
        self.ts = _ring(self.ts, self.start)[drop:]
        for j, c in enumerate(self.cols):
            self.cols[j] = _ring(c, self.start)[drop:]
        self.start, self.full_cap = 0, cap

    def _close_bucket(self) -> None:
        n, cap = self.nfields, self.coarse_cap
        if len(self.bts) < cap:
            self.bts.append(self.open_at)
            for j in range(n):
                self.bmin[j].append(self.amin[j])
                self.bmax[j].append(self.amax[j])
                self.bsum[j].append(self.asum[j])
                self.bcnt[j].append(self.acnt[j])
            if len(self.bts) == cap:
                self.bts = array("d", self.bts)
                for cols in (self.bmin, self.bmax, self.bsum, self.bcnt):
                    _exact(cols)
        else:
            i = self.bstart
            self.bts[i] = self.open_at
            for j in range(n):
                self.bmin[j][i] = self.amin[j]
                self.bmax[j][i] = self.amax[j]
                self.bsum[j][i] = self.asum[j]
                self.bcnt[j][i] = self.acnt[j]
            self.bstart = i + 1 if i + 1 < cap else 0
        for j in range(n):
            self.amin[j] = self.amax[j] = NAN
            self.asum[j] = 0.0
            self.acnt[j] = 0

    # --- reading (callers hold the store's lock; these copy, so the answer is built without it) ---

    def full_copy(self, fields: Sequence[int]) -> tuple[array, list[array]]:  # type: ignore[type-arg]
        return _ring(self.ts, self.start), [_ring(self.cols[j], self.start) for j in fields]

    def coarse_copy(self, fields: Sequence[int]) -> tuple[array, list[tuple[array, array, array, array]]]:  # type: ignore[type-arg]
        """The closed buckets and, last, the open one (partial), per field (min, max, sum, count)."""
        s = self.bstart
        ts = _ring(self.bts, s)
        cols = [(_ring(self.bmin[j], s), _ring(self.bmax[j], s), _ring(self.bsum[j], s), _ring(self.bcnt[j], s)) for j in fields]
        if self.open_at == self.open_at:
            ts.append(self.open_at)
            for (mn, mx, sm, ct), j in zip(cols, fields):
                mn.append(self.amin[j])
                mx.append(self.amax[j])
                sm.append(self.asum[j])
                ct.append(self.acnt[j])
        return ts, cols

    def nbytes(self) -> int:
        """The memory this series holds now (arrays, the lists of them, the object itself)."""
        arrays = [self.ts, *self.cols, self.bts, *self.bmin, *self.bmax, *self.bsum, *self.bcnt, self.amin, self.amax, self.asum, self.acnt]
        lists = [self.cols, self.bmin, self.bmax, self.bsum, self.bcnt]
        return sys.getsizeof(self) + sum(map(sys.getsizeof, arrays)) + sum(map(sys.getsizeof, lists))

    @staticmethod
    def capacity_bytes(nfields: int, full_cap: int, coarse_cap: int) -> int:
        """What ``nbytes`` is once both rings are full: the bound per entity."""
        f = nfields
        header = sys.getsizeof(array("d"))
        full = (1 + f) * (header + 8 * full_cap)
        coarse = (1 + 3 * f) * (header + 8 * coarse_cap) + f * (header + 4 * coarse_cap)
        accumulators = 3 * (header + 8 * f) + (header + 4 * f)
        lists = 5 * sys.getsizeof([None] * f)
        return _SERIES_OBJECT_BYTES + full + coarse + accumulators + lists


_SERIES_OBJECT_BYTES = sys.getsizeof(Series(0, 0, 0, 1.0))


class Kind:
    """One kind of entity: its history fields and how often its source samples."""

    def __init__(self, name: str, fields: tuple[HistoryField, ...], interval: float) -> None:
        self.name, self.fields, self.interval = name, fields, interval
        self.field_index = {f.name: i for i, f in enumerate(fields)}
        self.integers = frozenset(f.name for f in fields if f.integer)
        self._getters = tuple(f.get for f in fields)
        # Every field a plain attribute (guests, users): one attrgetter call reads them all.
        attrs = [f.attr for f in fields]
        self._all: Callable[[Any], tuple[Any, ...]] | None = attrgetter(*attrs) if len(attrs) > 1 and None not in attrs else None  # type: ignore[arg-type]  # no None: checked

    def values(self, sample: Any) -> list[float]:
        if self._all is not None:
            return [NAN if v is None else float(v) for v in self._all(sample)]
        out = []
        for get in self._getters:
            v = get(sample)
            out.append(NAN if v is None else float(v))
        return out


class Store:
    def __init__(
        self,
        history: HistoryConfig | None = None,
        *,
        node_interval: float = 5.0,
        container_interval: float = 10.0,
        vm_interval: float = 10.0,
        user_interval: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._node: NodeMetrics | None = None
        self._containers: Mapping[str, ContainerMetrics] = MappingProxyType({})
        self._containers_sample: ContainersSample | None = None
        self._vms: Mapping[str, VmMetrics] = MappingProxyType({})
        self._vms_sample: VmsSample | None = None
        self._vm_events: deque[VmStatusChangedMessage] = deque(maxlen=VM_EVENTS_KEPT)
        self._processes_sample: ProcessesSample | None = None
        self.history_config = history
        self.clock = clock
        self.node_kind = Kind("node", NODE_HISTORY_FIELDS, node_interval)
        self.container_kind = Kind("container", CONTAINER_HISTORY_FIELDS, container_interval)
        self.vm_kind = Kind("vm", VM_HISTORY_FIELDS, vm_interval)
        # The process source samples at the node's interval unless [processes] interval says otherwise.
        self.user_kind = Kind("user", USER_HISTORY_FIELDS, user_interval if user_interval is not None else node_interval)
        self._lock = threading.Lock()
        self._node_history: Series | None = self._new_series(self.node_kind) if history else None
        self._container_history: dict[str, Series] = {}
        self._vm_history: dict[str, Series] = {}
        self._user_history: dict[str, Series] = {}

    @classmethod
    def from_settings(cls, m: MonitoringSettings, clock: Callable[[], float] = time.time, *, user_interval: float | None = None) -> Store:
        return cls(
            HistoryConfig.from_settings(m),
            node_interval=m.node_metrics_interval,
            container_interval=m.vm_metrics_interval,
            vm_interval=m.vm_metrics_interval,
            user_interval=user_interval,
            clock=clock,
        )

    def set_interval(self, kind: Kind, interval: float) -> None:
        """``kind``'s source samples every ``interval`` from now on (SIGHUP): the full-resolution
        rings of its entities are resized to cover ``history_full_resolution`` at that interval."""
        with self._lock:
            kind.interval = interval
            h = self.history_config
            if h is None:
                return
            cap = h.full_capacity(interval)
            series: list[Series] = []
            if kind is self.node_kind and self._node_history is not None:
                series.append(self._node_history)
            for k, entities in ((self.container_kind, self._container_history), (self.vm_kind, self._vm_history), (self.user_kind, self._user_history)):
                if kind is k:
                    series.extend(entities.values())
            for s in series:
                s.resize_full(cap)

    def _new_series(self, kind: Kind, name: str | None = None) -> Series:
        h = self.history_config
        assert h is not None
        return Series(len(kind.fields), h.full_capacity(kind.interval), h.coarse_capacity(), h.bucket, name)

    # --- writing (from the sources' worker threads, through the sample bus) ---

    def put(self, sample: NodeMetrics | ContainersSample | VmsSample | VmStatusChangedMessage | ProcessesSample) -> None:
        """Any sample the bus carries, kept by its kind."""
        if isinstance(sample, NodeMetrics):
            self.put_node(sample)
        elif isinstance(sample, ContainersSample):
            self.put_containers(sample)
        elif isinstance(sample, VmsSample):
            self.put_vms(sample)
        elif isinstance(sample, VmStatusChangedMessage):
            self.put_vm_event(sample)
        elif isinstance(sample, ProcessesSample):
            self.put_processes(sample)
        else:
            raise TypeError(f"the store keeps no {type(sample).__name__}")

    def put_node(self, sample: NodeMetrics) -> None:
        self._node = sample
        if self._node_history is not None:
            values = self.node_kind.values(sample)
            with self._lock:
                self._node_history.append(sample.timestamp, values)

    def put_containers(self, sample: ContainersSample) -> None:
        # One new mapping per tick, swapped in whole: readers never see a half-updated set, and
        # containers that vanished are simply not in it.
        self._containers = MappingProxyType({c.id: c for c in sample.containers})
        self._containers_sample = sample
        if self.history_config is not None:
            self._append(self.container_kind, self._container_history, sample.containers, self._containers)

    def put_vms(self, sample: VmsSample) -> None:
        self._vms = MappingProxyType({v.id: v for v in sample.vms})
        self._vms_sample = sample
        if self.history_config is not None:
            self._append(self.vm_kind, self._vm_history, sample.vms, self._vms)

    def put_processes(self, sample: ProcessesSample) -> None:
        """The latest sample (swapped whole) and one history point per user, keyed by user name (a
        user without processes now keeps its history for ``history_retention``, as a guest)."""
        self._processes_sample = sample
        if self.history_config is None:
            return
        history, kind, ts = self._user_history, self.user_kind, sample.timestamp
        for u in sample.users:
            values = kind.values(u)
            series = history.get(u.user)
            if series is None:
                series = self._new_series(kind, u.user)
                with self._lock:
                    history[u.user] = series
            with self._lock:
                series.append(ts, values)
        self._expire(history, {u.user: u for u in sample.users})

    def put_vm_event(self, event: VmStatusChangedMessage) -> None:
        self._vm_events.append(event)

    def _append(self, kind: Kind, history: dict[str, Series], entities: Sequence[Any], live: Mapping[str, Any]) -> None:
        """One sample of each guest into its series (made on first sight), then expiry."""
        lock = self._lock
        for e in entities:
            values = kind.values(e)
            series = history.get(e.id)
            if series is None:
                series = self._new_series(kind, e.name)
                with lock:
                    history[e.id] = series
            elif series.name != e.name:
                series.name = e.name
            with lock:
                series.append(e.timestamp, values)
        self._expire(history, live)

    def _expire(self, history: dict[str, Series], live: Mapping[str, Any]) -> None:
        """Forget vanished guests whose newest sample is older than the retention."""
        assert self.history_config is not None
        if len(history) == len(live):
            return
        oldest = self.clock() - self.history_config.retention
        gone = [key for key, s in history.items() if key not in live and s.last < oldest]
        if gone:
            with self._lock:
                for key in gone:
                    del history[key]

    # --- reading ---

    @property
    def node(self) -> NodeMetrics | None:
        return self._node

    @property
    def containers(self) -> Mapping[str, ContainerMetrics]:
        return self._containers

    @property
    def containers_sample(self) -> ContainersSample | None:
        return self._containers_sample

    @property
    def vms(self) -> Mapping[str, VmMetrics]:
        return self._vms

    @property
    def vms_sample(self) -> VmsSample | None:
        return self._vms_sample

    @property
    def processes_sample(self) -> ProcessesSample | None:
        return self._processes_sample

    def vm_events(self) -> list[VmStatusChangedMessage]:
        """Recent VM status changes, oldest first."""
        return list(self._vm_events)

    @property
    def history_enabled(self) -> bool:
        return self.history_config is not None

    def container_series_ids(self) -> list[str]:
        """Ids of every container with history: the live ones and the vanished ones still kept."""
        with self._lock:
            return list(self._container_history)

    def series(self, kind: str, key: str | None = None) -> Series | None:
        if kind == "node":
            return self._node_history
        with self._lock:
            if kind == "user":
                return self._user_history.get(key or "")
            return (self._vm_history if kind == "vm" else self._container_history).get(key or "")

    def history_nbytes(self) -> int:
        with self._lock:
            items = [self._node_history, *self._container_history.values(), *self._vm_history.values(), *self._user_history.values()]
        return sum(s.nbytes() for s in items if s is not None)

    def query(
        self,
        kind: Kind,
        series: Series,
        *,
        since: float,
        until: float,
        step: float | None,
        fields: Sequence[str],
        max_points: int,
    ) -> HistoryResult:
        """The history of ``series`` in [since, until] (validated by the caller: finite, 0 <= since
        <= until). Without ``step``: every sample when ``since`` lies in the full-resolution window,
        else the min/avg/max buckets. With ``step``: a step below ``history_bucket`` comes from the
        full-resolution samples (every sample when ``step`` <= the interval, else min/avg/max per
        step) and needs ``since`` in that window; a larger step must be a multiple of the bucket."""
        h = self.history_config
        assert h is not None
        now = self.clock()
        idx = [kind.field_index[f] for f in fields]
        full_from = now - h.full_resolution
        # A client computes "the last hour" with its own clock: allow one bucket of skew.
        in_full_window = series.full_cap > 0 and since >= full_from - h.bucket
        if step is not None and (not math.isfinite(step) or step <= 0 or step > h.retention):
            raise HistoryQueryError("bad step", {"step": step, "reason": f"seconds, > 0 and <= history_retention ({h.retention:g})"})
        if step is None:
            mode = "raw" if in_full_window else "coarse"
        elif step >= h.bucket:
            k = step / h.bucket
            if abs(k - round(k)) > _ALIGN_EPS:
                raise HistoryQueryError(
                    "bad step",
                    {"step": step, "reason": f"a step of {h.bucket:g} s or more must be a multiple of history_bucket ({h.bucket:g} s)"},
                )
            mode = "coarse"
        elif not in_full_window:
            raise HistoryQueryError(
                "step too fine for this range",
                {
                    "step": step,
                    "since": since,
                    "full_resolution_since": full_from,
                    "hint": f"steps below {h.bucket:g} s are kept for the last {h.full_resolution:g} s only; use since >= {full_from:.0f} or step >= {h.bucket:g}",
                },
            )
        else:
            mode = "raw" if step <= kind.interval else "grouped"

        if mode == "coarse":
            out_step = step if step is not None else h.bucket
            with self._lock:
                bucket_ts, buckets = series.coarse_copy(idx)
            lo = max(since, now - h.retention) - h.bucket  # a bucket starting here still overlaps
            i0 = bisect.bisect_right(bucket_ts, lo)
            i1 = bisect.bisect_right(bucket_ts, until)
            return self._merge_buckets(kind, fields, bucket_ts, buckets, i0, i1, out_step, h.bucket, max_points)

        with self._lock:
            ts, cols = series.full_copy(idx)
        i0 = bisect.bisect_left(ts, max(since, full_from))
        i1 = bisect.bisect_right(ts, until)
        if mode == "raw":
            self._check_points(i1 - i0, max_points, since, until, kind.interval)
            return HistoryResult(
                "full", kind.interval, ts[i0:i1].tolist(), {f: _nulls(c[i0:i1], f in kind.integers) for f, c in zip(fields, cols)}
            )
        assert step is not None
        return self._group_samples(kind, fields, ts, cols, i0, i1, step, max_points, since, until)

    @staticmethod
    def _check_points(n: int, max_points: int, since: float, until: float, step: float) -> None:
        if n > max_points:
            raise HistoryQueryError(
                "too many points",
                {
                    "points": n,
                    "max_points": max_points,
                    "hint": f"narrow the range or use a larger step (at least {math.ceil((until - since) / max_points)} s for this range)",
                },
            )

    def _merge_buckets(
        self, kind: Kind, fields: Sequence[str], ts: array, cols: list[tuple[array, array, array, array]], i0: int, i1: int, step: float, bucket: float, max_points: int  # type: ignore[type-arg]
    ) -> HistoryResult:
        # Buckets are aligned to multiples of `bucket`, and `step` is a multiple of it, so each
        # bucket lies in exactly one step: group them by the step they start in.
        groups: list[tuple[float, int, int]] = []  # (step start, first bucket, end bucket)
        for i in range(i0, i1):
            g = math.floor(ts[i] / step) * step
            if groups and groups[-1][0] == g:
                groups[-1] = (g, groups[-1][1], i + 1)
            else:
                groups.append((g, i, i + 1))
        if groups:
            self._check_points(len(groups), max_points, groups[0][0], groups[-1][0] + step, step)
        series: dict[str, list[int | float | None] | SeriesStats] = {}
        for f, (mn, mx, sm, ct) in zip(fields, cols):
            mins: list[float | None] = []
            avgs: list[float | None] = []
            maxs: list[float | None] = []
            for _, a, b in groups:
                n = sum(ct[a:b])
                if n == 0:
                    mins.append(None)
                    avgs.append(None)
                    maxs.append(None)
                    continue
                have = [i for i in range(a, b) if ct[i]]
                mins.append(min(mn[i] for i in have))
                maxs.append(max(mx[i] for i in have))
                avgs.append(math.fsum(sm[a:b]) / n)
            series[f] = _stats(mins, avgs, maxs, f in kind.integers)
        return HistoryResult("min/avg/max", step, [g for g, _, _ in groups], series)

    def _group_samples(
        self, kind: Kind, fields: Sequence[str], ts: array, cols: list[array], i0: int, i1: int, step: float, max_points: int, since: float, until: float  # type: ignore[type-arg]
    ) -> HistoryResult:
        groups: list[tuple[float, int, int]] = []
        for i in range(i0, i1):
            g = math.floor(ts[i] / step) * step
            if groups and groups[-1][0] == g:
                groups[-1] = (g, groups[-1][1], i + 1)
            else:
                groups.append((g, i, i + 1))
        self._check_points(len(groups), max_points, since, until, step)
        series: dict[str, list[int | float | None] | SeriesStats] = {}
        for f, col in zip(fields, cols):
            mins: list[float | None] = []
            avgs: list[float | None] = []
            maxs: list[float | None] = []
            for _, a, b in groups:
                vals = [v for v in col[a:b] if v == v]
                if vals:
                    mins.append(min(vals))
                    maxs.append(max(vals))
                    avgs.append(math.fsum(vals) / len(vals))
                else:
                    mins.append(None)
                    avgs.append(None)
                    maxs.append(None)
            series[f] = _stats(mins, avgs, maxs, f in kind.integers)
        return HistoryResult("min/avg/max", step, [g for g, _, _ in groups], series)

