"""What ``hvstat top`` shows, without the terminal: the latest state from either feed (a server's
``/ws`` messages or the sources sampled in this process), the tables' columns, sorting, filtering,
the header's lines and each guest's recent CPU for its sparkline. Pure Python: tests drive it with
Structs, and the Textual app (app.py) only draws what it computes."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hvstat.models import (
    AlertResolvedMessage,
    AlertTriggeredMessage,
    ContainerMetrics,
    ContainerSummary,
    LoadStatus,
    NodeMetrics,
    ProcessHost,
    ProcessMetrics,
    UserMetrics,
    VmMetrics,
    VmSummary,
)

# Points of a guest's sparkline (one per sample of its kind).
SPARK_POINTS = 60

# --- formatting -------------------------------------------------------------------------------------


def fmt_bytes(v: float | None) -> str:
    """1536 -> 1.5K (powers of 1024, as top and htop); None -> '-'."""
    if v is None:
        return "-"
    x = float(v)
    for unit in ("", "K", "M", "G", "T", "P"):
        if abs(x) < 1024 or unit == "P":
            return f"{x:.0f}{unit}" if unit == "" else f"{x:.1f}{unit}" if abs(x) < 100 else f"{x:.0f}{unit}"
        x /= 1024
    return "-"  # unreachable


def fmt_rate(v: float | None) -> str:
    return "-" if v is None else fmt_bytes(v) + "/s"


def fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def fmt_num(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


BARS = " ▁▂▃▄▅▆▇█"


def spark_text(points: Sequence[float], width: int, height: int = 3) -> list[str]:
    """``points`` (the last ``width`` of them, NaN: no value, drawn as a gap) as ``height`` lines of
    eighth blocks, on an absolute scale from 0 to the larger of the peak and 1 (a guest idling at
    0.04 % draws flat, not as a full-height bar as a min-to-max scale would draw it)."""
    pts = list(points)[-width:]
    known = [p for p in pts if not math.isnan(p)]
    top = max([1.0, *known])
    levels = [-1 if math.isnan(p) else round(max(0.0, p) / top * 8 * height) for p in pts]
    lines = []
    for row in reversed(range(height)):
        base = row * 8
        lines.append("".join(" " if lv < 0 else BARS[min(8, max(0, lv - base))] if lv > base or row == 0 else " " for lv in levels))
    # The bottom line shows a zero as the lowest bar, so that a flat guest is still a line.
    lines[-1] = "".join("▁" if c == " " and lv == 0 else c for c, lv in zip(lines[-1], levels))
    return lines


# --- tables -----------------------------------------------------------------------------------------


# How long a logged warning stays in the banner (a repeat shows it again).
WARNING_SHOWN_SECS = 60.0


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    get: Callable[[Any], Any]
    fmt: Callable[[Any], str] = str
    numeric: bool = False

    def text(self, row: Any) -> str:
        v = self.get(row)
        if v is None:
            return "-"
        return self.fmt(v)


def _attr(name: str) -> Callable[[Any], Any]:
    return lambda r: getattr(r, name)


def _limit(r: ContainerSummary) -> int | None:
    lim = r.memory_limit_bytes
    return lim if isinstance(lim, int) else None


@dataclass(frozen=True)
class View:
    """One table: its rows come from ``State``; ``key`` names a row (its id), ``search`` is the text
    a filter matches (case-insensitive substring), ``entity`` the guest of its detail view."""

    name: str
    title: str
    key_binding: str
    columns: tuple[Column, ...]
    default_sort: str
    rows: Callable[[State], Sequence[Any]]
    key: Callable[[Any], str]
    search: Callable[[Any], str]
    detail: bool
    # Columns left out, in this order, while the table is wider than the terminal (a group of
    # keys goes together, so READ is not shown without WRITE).
    drop: tuple[tuple[str, ...], ...] = ()

    def column(self, key: str) -> Column:
        for c in self.columns:
            if c.key == key:
                return c
        return self.columns[0]

    def fit(self, width: int) -> tuple[Column, ...]:
        """The columns shown in ``width`` terminal cells: each takes its width plus one cell of
        padding on either side (DataTable's), the scrollbar one more; the ``drop`` groups are
        left out in order until the rest fits."""
        cols = self.columns
        for group in self.drop:
            if sum(c.width + 2 for c in cols) + 1 <= width:
                break
            cols = tuple(c for c in cols if c.key not in group)
        return cols


CONTAINERS = View(
    name="containers",
    title="Containers",
    key_binding="1",
    columns=(
        Column("name", "NAME", 16, _attr("name")),
        Column("id", "ID", 12, lambda r: r.id[:12]),
        Column("runtime", "RUNTIME", 9, _attr("runtime")),
        Column("state", "STATE", 7, _attr("state")),
        Column("cpu", "CPU%", 6, _attr("cpu_usage_percent"), fmt_pct, True),
        Column("mem", "MEM", 7, _attr("memory_usage_bytes"), fmt_bytes, True),
        Column("limit", "LIMIT", 7, _limit, fmt_bytes, True),
    ),
    default_sort="cpu",
    rows=lambda s: list(s.containers.values()),
    key=lambda r: r.id,
    search=lambda r: f"{r.name} {r.id} {r.runtime} {r.state} {r.cgroup_path}".lower(),
    detail=True,
)

VMS = View(
    name="vms",
    title="VMs",
    key_binding="2",
    columns=(
        Column("name", "NAME", 13, _attr("name")),
        Column("origin", "ORIGIN", 7, _attr("origin")),
        Column("status", "STATUS", 7, _attr("status")),
        Column("vcpus", "VCPU", 4, _attr("vcpus"), str, True),
        Column("cpu", "CPU%", 5, _attr("cpu_usage_percent"), fmt_pct, True),
        Column("vcpu", "VCPU%", 5, _attr("cpu_vcpu_percent"), fmt_pct, True),
        Column("mem", "MEM%", 5, _attr("memory_usage_percent"), fmt_pct, True),
        Column("rss", "RSS", 7, _attr("memory_rss_bytes"), fmt_bytes, True),
        Column("max", "MAX", 7, _attr("memory_max_bytes"), fmt_bytes, True),
    ),
    default_sort="cpu",
    rows=lambda s: list(s.vms.values()),
    key=lambda r: r.id,
    search=lambda r: f"{r.name} {r.id} {r.origin} {r.status}".lower(),
    detail=True,
)


def _guest(r: ProcessMetrics) -> str | None:
    if r.container:
        return f"ct:{r.container[:12]}"
    if r.vm:
        return f"vm:{r.vm}"
    return None


PROCESSES = View(
    name="processes",
    title="Processes",
    key_binding="3",
    columns=(
        Column("pid", "PID", 7, _attr("pid"), str, True),
        Column("user", "USER", 8, _attr("user")),
        Column("name", "COMMAND", 15, _attr("name")),
        Column("cpu", "CPU%", 5, _attr("cpu_percent"), fmt_pct, True),
        Column("rss", "RSS", 6, _attr("rss_bytes"), fmt_bytes, True),
        Column("mem", "MEM%", 5, _attr("memory_percent"), fmt_pct, True),
        Column("read", "READ", 7, _attr("read_bytes_per_sec"), fmt_rate, True),
        Column("write", "WRITE", 7, _attr("write_bytes_per_sec"), fmt_rate, True),
        Column("guest", "GUEST", 15, _guest),
    ),
    default_sort="cpu",
    rows=lambda s: s.processes,
    key=lambda r: str(r.pid),
    search=lambda r: f"{r.pid} {r.user} {r.name} {r.container or ''} {r.vm or ''}".lower(),
    detail=False,
    drop=(("read", "write"), ("mem",), ("rss",)),
)

USERS = View(
    name="users",
    title="Users",
    key_binding="4",
    columns=(
        Column("user", "USER", 12, _attr("user")),
        Column("procs", "PROCS", 6, _attr("processes"), str, True),
        Column("cpu", "CPU%", 7, _attr("cpu_percent"), fmt_pct, True),
        Column("rss", "RSS", 7, _attr("rss_bytes"), fmt_bytes, True),
        Column("mem", "MEM%", 5, _attr("memory_percent"), fmt_pct, True),
        Column("read", "READ", 8, _attr("read_bytes_per_sec"), fmt_rate, True),
        Column("write", "WRITE", 8, _attr("write_bytes_per_sec"), fmt_rate, True),
        Column("heavy", "HEAVY", 5, lambda r: "yes" if r.persistent_heavy else "no"),
    ),
    default_sort="cpu",
    rows=lambda s: s.users,
    key=lambda r: r.user,
    search=lambda r: f"{r.user} {r.uid}".lower(),
    detail=False,
)

VIEWS: tuple[View, ...] = (CONTAINERS, VMS, PROCESSES, USERS)


def arrange(view: View, rows: Sequence[Any], sort: str, descending: bool, query: str) -> list[Any]:
    """The rows the table shows: those whose search text holds ``query`` (case-insensitive), sorted
    by column ``sort``; rows without a value (null) last in either direction, ties by key."""
    col = view.column(sort)
    q = query.strip().lower()
    if q:
        rows = [r for r in rows if q in view.search(r)]
    get, key = col.get, view.key
    known = [r for r in rows if get(r) is not None]
    unknown = [r for r in rows if get(r) is None]
    if col.numeric:
        known.sort(key=lambda r: (get(r), key(r)), reverse=descending)
    else:
        known.sort(key=lambda r: (str(get(r)).lower(), key(r)), reverse=descending)
    unknown.sort(key=key)
    return known + unknown


def cells(columns: Sequence[Column], row: Any) -> tuple[str, ...]:
    return tuple(c.text(row) for c in columns)


# --- state ------------------------------------------------------------------------------------------


@dataclass
class State:
    """The latest of everything, whichever feed filled it."""

    source: str = ""  # "server ws://..." or "direct sampling every 2s"
    node: NodeMetrics | None = None
    containers: dict[str, ContainerSummary] = field(default_factory=dict)
    vms: dict[str, VmSummary] = field(default_factory=dict)
    # The full sample of guests, for the detail view (server: only the subscribed guest).
    container_detail: dict[str, ContainerMetrics] = field(default_factory=dict)
    vm_detail: dict[str, VmMetrics] = field(default_factory=dict)
    processes: list[ProcessMetrics] = field(default_factory=list)
    processes_total: int | None = None
    process_host: ProcessHost | None = None
    users: list[UserMetrics] = field(default_factory=list)
    load_status: LoadStatus | None = None
    # None: this feed has no processes/users (server without the topics, or disabled).
    processes_note: str | None = "no process data yet"
    alerts: dict[str, AlertTriggeredMessage] = field(default_factory=dict)
    alerts_note: str | None = None
    # Each guest's recent CPU percent, oldest first (entity "container:<id>"/"vm:<id>").
    spark: dict[str, deque[float]] = field(default_factory=dict)
    banner: str | None = None
    # The latest warning logged in this process (unix time, text): the banner shows it for a while.
    warning: tuple[float, str] | None = None
    updated: float = 0.0

    def banner_text(self, now: float | None = None) -> str | None:
        """The banner line: the feed's own (a lost server, no file descriptors left), else the
        latest warning logged here within the last WARNING_SHOWN_SECS."""
        if self.banner is not None:
            return self.banner
        if self.warning is not None:
            at, text = self.warning
            if (time.time() if now is None else now) - at < WARNING_SHOWN_SECS:
                return f"warning {time.strftime('%H:%M:%S', time.localtime(at))}: {text}"
        return None

    # --- what the feeds call ---

    def set_containers(self, items: Sequence[ContainerSummary]) -> None:
        self.containers = {c.id: c for c in items}
        self._spark("container", ((c.id, c.cpu_usage_percent) for c in items))

    def set_vms(self, items: Sequence[VmSummary]) -> None:
        self.vms = {v.id: v for v in items}
        self._spark("vm", ((v.id, v.cpu_usage_percent) for v in items))

    def vm_status(self, vm_id: str, status: Any, vanished: bool) -> None:
        v = self.vms.get(vm_id)
        if v is None:
            return
        if vanished:
            del self.vms[vm_id]
        else:
            import msgspec

            self.vms[vm_id] = msgspec.structs.replace(v, status=status)

    def alert(self, m: AlertTriggeredMessage | AlertResolvedMessage) -> None:
        if isinstance(m, AlertTriggeredMessage):
            self.alerts[m.alert_id] = m
        else:
            self.alerts.pop(m.alert_id, None)

    def _spark(self, kind: str, values: Any) -> None:
        spark = self.spark
        seen = set()
        for gid, v in values:
            ent = f"{kind}:{gid}"
            seen.add(ent)
            d = spark.get(ent)
            if d is None:
                d = spark[ent] = deque(maxlen=SPARK_POINTS)
            d.append(float("nan") if v is None else v)
        prefix = kind + ":"
        for ent in [e for e in spark if e.startswith(prefix) and e not in seen]:
            del spark[ent]

    def backfill(self, entity: str, values: Sequence[float | None]) -> None:
        """Earlier points of a guest's sparkline (the server's history), before the live ones."""
        d = self.spark.get(entity)
        live = list(d) if d is not None else []
        merged = [float("nan") if v is None else float(v) for v in values] + live
        self.spark[entity] = deque(merged[-SPARK_POINTS:], maxlen=SPARK_POINTS)

    # --- the header ---

    def header(self, width: int = 80, per_core: bool = False) -> list[str]:
        """The header's lines, each at most ``width`` characters."""
        lines = [self._title_line()]
        n = self.node
        if n is None:
            lines.append("waiting for the first node sample...")
        else:
            cpu = n.cpu
            if cpu is None:
                lines.append("CPU -")
            else:
                t = cpu.total
                modes = " ".join(
                    f"{label} {fmt_pct(getattr(t, m))}"
                    for label, m in (("us", "user"), ("ni", "nice"), ("sy", "system"), ("io", "iowait"), ("irq", "irq"), ("si", "softirq"), ("st", "steal"), ("gu", "guest"))
                )
                lines.append(f"CPU {fmt_pct(t.usage)}% of {cpu.count}: {modes}")
            if per_core and cpu is not None:
                cores = [f"{c.cpu}:{fmt_pct(c.usage)}" for c in cpu.per_cpu]
                row = ""
                for c in cores:
                    if len(row) + len(c) + 1 > width:
                        lines.append(row.rstrip())
                        row = ""
                    row += c + " "
                if row:
                    lines.append(row.rstrip())
            m, sw = n.memory, n.swap
            mem = "Mem -" if m is None else f"Mem {fmt_bytes(m.used_bytes)}/{fmt_bytes(m.total_bytes)} {fmt_pct(m.used_percent)}%"
            swap = f"Swap {fmt_bytes(sw.used_bytes)}/{fmt_bytes(sw.total_bytes)}" if sw is not None else "Swap -"
            load = f"Load {fmt_num(n.load_average_1m)} {fmt_num(n.load_average_5m)} {fmt_num(n.load_average_15m)}"
            lines.append(f"{mem}  {swap}  {load}")
            p = n.pressure

            def some(r: Any) -> str:
                return "-" if r is None else f"{r.some.avg10:.1f}"

            psi = "PSI -" if p is None else f"PSI cpu {some(p.cpu)} mem {some(p.memory)} io {some(p.io)}"
            d, net = n.disk_total, n.network
            disk = "Disk -" if d is None else f"Disk r {fmt_rate(d.read_bytes_per_sec)} w {fmt_rate(d.write_bytes_per_sec)}"
            nets = "Net -" if net is None else f"Net rx {fmt_rate(net.rx_bytes_per_sec)} tx {fmt_rate(net.tx_bytes_per_sec)}"
            lines.append(f"{psi}  {disk}  {nets}")
        lines.append(self._alerts_line())
        return [line[:width] for line in lines]

    def _title_line(self) -> str:
        parts = [f"hvstat top | {self.source}"]
        s = self.load_status
        if s is not None:
            parts.append(f"load {s.level}")
        return " | ".join(parts)

    def _alerts_line(self) -> str:
        if self.alerts_note is not None and not self.alerts:
            return f"Alerts: {self.alerts_note}"
        if not self.alerts:
            return "Alerts: none firing"
        firing = sorted(self.alerts.values(), key=lambda a: ("critical", "high", "medium", "low").index(a.severity))
        return f"Alerts: {len(firing)} firing: " + "; ".join(f"{a.severity} {a.rule} {a.entity_name or a.entity}" for a in firing)

    def detail_lines(self, entity: str) -> list[str]:
        """The detail view's text for ``container:<id>`` or ``vm:<id>``."""
        kind, _, gid = entity.partition(":")
        if kind == "container":
            full = self.container_detail.get(gid)
            c = self.containers.get(gid)
            if full is None and c is None:
                return [f"container {gid[:12]} is gone"]
            if full is None:
                assert c is not None
                return [
                    f"Container {c.name}  ({c.runtime}, {c.state})",
                    f"id {c.id}",
                    f"cgroup {c.cgroup_path}",
                    f"CPU {fmt_pct(c.cpu_usage_percent)}%   memory {fmt_bytes(c.memory_usage_bytes)} of {fmt_bytes(_limit(c))}",
                    "(waiting for its full sample)",
                ]
            f = full
            return [
                f"Container {f.name}  ({f.runtime}, {f.state}, {f.processes if f.processes is not None else '-'} processes)",
                f"id {f.id}",
                f"cgroup {f.cgroup_path}",
                f"CPU {fmt_pct(f.cpu_usage_percent)}% ({fmt_num(None if f.cpu_cores is None else round(f.cpu_cores, 3))} cores, limit {fmt_num(f.cpu_limit_cores)}), throttled {fmt_pct(f.cpu_throttled_percent)}%",
                f"Memory {fmt_bytes(f.memory_usage_bytes)} of {fmt_bytes(f.memory_limit_bytes if isinstance(f.memory_limit_bytes, int) else None)}"
                f" (working set {fmt_bytes(f.memory_working_set_bytes)}, rss {fmt_bytes(f.memory_rss_bytes)}, cache {fmt_bytes(f.memory_cache_bytes)})",
                f"Block I/O read {fmt_rate(f.block_read_bytes_per_sec)} write {fmt_rate(f.block_write_bytes_per_sec)}",
                f"Network rx {fmt_rate(f.network_rx_bytes_per_sec)} tx {fmt_rate(f.network_tx_bytes_per_sec)} ({f.network_mode})",
                f"PIDs {fmt_num(f.pids_current)} of {fmt_num(f.pids_max if isinstance(f.pids_max, int) else None)}",
            ]
        fv = self.vm_detail.get(gid)
        v = self.vms.get(gid)
        if fv is None and v is None:
            return [f"VM {gid} is gone"]
        if fv is None:
            assert v is not None
            return [
                f"VM {v.name}  ({v.origin}, {v.status}, {fmt_num(v.vcpus)} vCPUs)",
                f"id {v.id}",
                f"CPU {fmt_pct(v.cpu_usage_percent)}% of the host, vCPUs {fmt_pct(v.cpu_vcpu_percent)}%",
                f"Memory {fmt_pct(v.memory_usage_percent)}% of {fmt_bytes(v.memory_max_bytes)}, rss {fmt_bytes(v.memory_rss_bytes)}",
                "(waiting for its full sample)",
            ]
        return [
            f"VM {fv.name}  ({fv.origin}, {fv.status}, {fmt_num(fv.vcpus)} vCPUs)",
            f"id {fv.id}",
            f"CPU {fmt_pct(fv.cpu_usage_percent)}% of the host, vCPUs {fmt_pct(fv.cpu_vcpu_percent)}%",
            f"Memory {fmt_pct(fv.memory_usage_percent)}% of {fmt_bytes(fv.memory_max_bytes)}, rss {fmt_bytes(fv.memory_rss_bytes)}",
            f"Disk read {fmt_rate(fv.disk_read_bytes_per_sec)} write {fmt_rate(fv.disk_write_bytes_per_sec)}",
            f"Network rx {fmt_rate(fv.network_rx_bytes_per_sec)} tx {fmt_rate(fv.network_tx_bytes_per_sec)}",
        ]

    def touch(self) -> None:
        self.updated = time.time()
