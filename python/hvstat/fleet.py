"""The fleet view: every node that remote-writes to the engine ([fleet] query_url, Prometheus or
VictoriaMetrics), answered from PromQL queries against that engine; hvstat keeps no copy of it.

Which series (docs/prometheus.md): every remote-write series carries the ``node`` label (the
writer's [server] node_name) and its [labels]. For ``W`` = ``within`` seconds:

- the nodes and ``last_seen``: ``hvstat_source_last_success_timestamp_seconds{source="node"}``,
  its largest value over W per node (sent with every batch, so a node that stopped writing
  drops out after W);
- labels and machine id: ``hvstat_node_info``, the series with the newest sample per node;
- CPU: ``irate`` of ``hvstat_node_cpu_seconds_total`` over W, busy modes over busy + idle +
  iowait, summed over the CPUs: the share of the last two samples' interval, as the node's own
  ``cpu_usage`` (which reads the kernel's all-CPU line: it differs from the per-CPU sum by the
  kernel's rounding of each CPU's time to ticks, fs/proc/stat.c);
- memory, the root filesystem, load: the newest sample over W (``last_over_time``);
- guests and firing alerts: the series of the node's newest sample of them (``fresh``), counted;
  null when the node has no such source (the source's ``hvstat_source_up`` is missing) or when
  its newest sample is older than the engines' default lookback (``LOOKBACK``), past which an
  instant selector finds nothing.

A history point at ``t`` is the node's newest sample in (t - window, t], window =
max(step, [fleet] lookback): CPU over the last two samples in it, the rest that sample's value.
(VictoriaMetrics' irate takes the sample before the window as the previous one when the window
holds one sample: it shows CPU where Prometheus has a gap.)
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hvstat.identity import node_name_problem
from hvstat.models import FleetHistory, FleetNode, FleetNodeList
from hvstat.promql import Labels, Point, QueryClient
from hvstat.settings import FleetSettings

NODE = "node"
# hvstat_node_info's own labels; the rest are the node's [labels].
INFO_OWN = frozenset(("__name__", NODE, "machine_id"))
# Prometheus' default --query.lookback-delta; VictoriaMetrics looks back at least as far.
LOOKBACK = 300.0
# What the node's own cpu_usage counts as busy (rust/hvstat-core/src/rate.rs); guest and
# guest_nice are already in user and nice.
BUSY = "user|nice|system|irq|softirq|steal"
ALL_CPU = BUSY + "|idle|iowait"
# Prometheus refuses a range query of more than 11000 points per series.
MAX_POINTS = 11000


def duration(secs: float) -> str:
    """A PromQL duration of ``secs`` (milliseconds are the finest both engines take)."""
    return f"{max(1, round(secs * 1000))}ms"


def fresh(metric: str) -> str:
    """The series of ``metric`` whose newest sample is the node's newest of that metric: those
    of its last sample (a vanished guest's series ends earlier), within the lookback."""
    return f"({metric} and (timestamp({metric}) == on({NODE}) group_left() max by ({NODE}) (timestamp({metric}))))"


def cpu_expr(selector: str, window: str) -> str:
    def rate(modes: str) -> str:
        return f'sum by ({NODE}) (irate(hvstat_node_cpu_seconds_total{{{selector}mode=~"{modes}"}}[{window}]))'

    return f"100 * {rate(BUSY)} / {rate(ALL_CPU)}"


def node_selector(name: str) -> str:
    """``node="<name>",`` for a selector; ``name`` is a node name (identity.node_name_problem:
    letters, digits, '.', '_', '-': nothing to escape)."""
    assert node_name_problem(name) is None, name
    return f'{NODE}="{name}",'


def _last(metric: str, window: str, by: str = f"max by ({NODE})") -> str:
    return f"{by} (last_over_time({metric}[{window}]))"


def node_queries(window: str) -> dict[str, str]:
    """The instant queries of GET /api/fleet/nodes, by what they answer."""
    root = '{mountpoint="/"}'
    return {
        "seen": f'max by ({NODE}) (max_over_time(hvstat_source_last_success_timestamp_seconds{{source="node"}}[{window}]))',
        "info": "timestamp(hvstat_node_info)",
        "info_any": f"last_over_time(hvstat_node_info[{window}])",
        "cpu_usage": cpu_expr("", window),
        "memory_used_bytes": _last("hvstat_node_memory_used_bytes", window),
        "memory_total_bytes": _last("hvstat_node_memory_total_bytes", window),
        "disk_used": _last(f"hvstat_node_filesystem_used_bytes{root}", window, f"sum by ({NODE})"),
        "disk_avail": _last(f"hvstat_node_filesystem_avail_bytes{root}", window, f"sum by ({NODE})"),
        "load_average_1m": _last("hvstat_node_load1", window),
        "load_average_5m": _last("hvstat_node_load5", window),
        "load_average_15m": _last("hvstat_node_load15", window),
        "sources": _last('hvstat_source_up{source=~"containers|vms|node"}', window, f"max by ({NODE}, source)"),
        "containers": f"count by ({NODE}) ({fresh('hvstat_container_info')})",
        "vms": f"count by ({NODE}, status) ({fresh('hvstat_vm_info')})",
        "alerts_firing": f"sum by ({NODE}) ({fresh('hvstat_alerts_firing')})",
    }


# History fields: the expression of each for one node's selector (``node="x",``) and window.
HISTORY_FIELDS: dict[str, str] = {
    "cpu_usage": "cpu",
    # In the order of the node's own percentages (rate.rs: part / whole * 100), so the floats agree.
    "memory_usage": "{last_used} / {last_total} * 100",
    "memory_used_bytes": "{last_used}",
    "disk_usage": "{disk_used} / ({disk_used} + {disk_avail}) * 100",
    "load_average_1m": "max(last_over_time(hvstat_node_load1{{{sel}}}[{w}]))",
    "load_average_5m": "max(last_over_time(hvstat_node_load5{{{sel}}}[{w}]))",
    "load_average_15m": "max(last_over_time(hvstat_node_load15{{{sel}}}[{w}]))",
}


def history_expr(field: str, name: str, window: str) -> str:
    sel = node_selector(name)
    if field == "cpu_usage":
        return cpu_expr(sel, window)
    parts = {
        "sel": sel,
        "w": window,
        "last_used": f"max(last_over_time(hvstat_node_memory_used_bytes{{{sel}}}[{window}]))",
        "last_total": f"max(last_over_time(hvstat_node_memory_total_bytes{{{sel}}}[{window}]))",
        "disk_used": f'sum(last_over_time(hvstat_node_filesystem_used_bytes{{{sel}mountpoint="/"}}[{window}]))',
        "disk_avail": f'sum(last_over_time(hvstat_node_filesystem_avail_bytes{{{sel}mountpoint="/"}}[{window}]))',
    }
    return HISTORY_FIELDS[field].format(**parts)


class FleetQueryError(Exception):
    """A request the fleet view cannot answer as asked: a 4xx with ``error`` and ``detail``."""

    def __init__(self, status: int, error: str, detail: dict[str, Any]) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


def _by_node(points: list[Point]) -> dict[str, float | None]:
    return {p.labels[NODE]: p.value for p in points if NODE in p.labels}


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def _url(labels: Mapping[str, str]) -> str | None:
    url = labels.get("url")
    return url if url is not None and re.match(r"https?://[^\s/]", url) else None


# Why a number of a node that wrote within the window is null, when nothing more particular says so.
MISSING = {
    "cpu_usage": "fewer than two CPU samples of this node within the window",
    "memory_usage": "no memory sample of this node within the window",
    "disk_usage": "no sample of the root filesystem (/) of this node within the window",
    "load_average_1m": "no load sample of this node within the window",
}
STALE = f"the node's newest sample is older than the engine's lookback ({LOOKBACK:g} s)"


@dataclass(frozen=True)
class _Fleet:
    """The answers of node_queries, by node."""

    at: float
    seen: dict[str, float]
    info: dict[str, Labels]
    sources: dict[str, set[str]]
    vms: dict[str, dict[str, int]]  # node -> VM status -> count
    values: dict[str, dict[str, float | None]]  # query -> node -> value

    @classmethod
    def of(cls, at: float, answers: dict[str, list[Point]]) -> _Fleet:
        sources: dict[str, set[str]] = {}
        for p in answers["sources"]:
            if NODE in p.labels and "source" in p.labels:
                sources.setdefault(p.labels[NODE], set()).add(p.labels["source"])
        vms: dict[str, dict[str, int]] = {}
        for p in answers["vms"]:
            if NODE in p.labels and p.value is not None:
                vms.setdefault(p.labels[NODE], {})[p.labels.get("status", "")] = int(p.value)
        return cls(
            at=at,
            seen={n: t for n, t in _by_node(answers["seen"]).items() if t is not None},
            info=_newest_info(answers["info"], answers["info_any"]),
            sources=sources,
            vms=vms,
            values={k: _by_node(v) for k, v in answers.items() if k not in ("seen", "info", "info_any", "sources", "vms")},
        )

    def node(self, name: str) -> FleetNode:
        v = {k: by.get(name) for k, by in self.values.items()}
        why: dict[str, str] = {}
        info = self.info.get(name)
        if info is None:
            why["labels"] = "no hvstat_node_info of this node within the window"
        labels = {k: x for k, x in (info or {}).items() if k not in INFO_OWN}
        stale = self.at - self.seen[name] > LOOKBACK
        sources = self.sources.get(name, set())

        def count(value: float | None, source: str, key: str) -> int | None:
            if source not in sources:
                why[key] = f"no {source} source on this node (monitoring off, or not reported within the window)"
            elif stale:
                why[key] = STALE
            else:
                return 0 if value is None else int(value)
            return None

        alerts: int | None = None
        if stale:
            why["alerts_firing"] = STALE
        elif v["alerts_firing"] is None:
            why["alerts_firing"] = "no alert rules on this node ([alerts] off or without rules)"
        else:
            alerts = int(v["alerts_firing"])
        vms = self.vms.get(name, {})
        used, total = v["memory_used_bytes"], v["memory_total_bytes"]
        disk_used, disk_avail = v["disk_used"], v["disk_avail"]
        disk_whole = None if disk_used is None or disk_avail is None else disk_used + disk_avail
        numbers = {
            "cpu_usage": v["cpu_usage"],
            # As the node computes its own (rate.rs: part / whole * 100), so the floats agree.
            "memory_usage": used / total * 100 if used is not None and total else None,
            "disk_usage": disk_used / disk_whole * 100 if disk_used is not None and disk_whole else None,
            "load_average_1m": v["load_average_1m"],
        }
        why.update({k: MISSING[k] for k, x in numbers.items() if x is None})
        return FleetNode(
            name=name,
            labels=labels,
            machine_id=(info or {}).get("machine_id"),
            url=_url(labels),
            last_seen=self.seen[name],
            **numbers,
            memory_used_bytes=_int(used),
            memory_total_bytes=_int(total),
            load_average_5m=v["load_average_5m"],
            load_average_15m=v["load_average_15m"],
            containers=count(v["containers"], "containers", "containers"),
            vms=count(float(sum(vms.values())), "vms", "vms"),
            vms_running=count(float(vms.get("running", 0)), "vms", "vms_running"),
            alerts_firing=alerts,
            unavailable=why,
        )


def _newest_info(newest: list[Point], any_: list[Point]) -> dict[str, Labels]:
    """Per node, the labels of its hvstat_node_info series with the newest sample (``newest``:
    their timestamps, within the engine's lookback); else one of ``any_`` (within the window)."""
    best: dict[str, tuple[float, Labels]] = {}
    for p in newest:
        name = p.labels.get(NODE)
        if name is not None and p.value is not None and (name not in best or p.value > best[name][0]):
            best[name] = (p.value, p.labels)
    out = {name: labels for name, (_, labels) in best.items()}
    for p in any_:
        name = p.labels.get(NODE)
        if name is not None and name not in out:
            out[name] = p.labels
    return out


class FleetView:
    """The fleet routes' queries against one engine."""

    def __init__(self, settings: FleetSettings, client: QueryClient | None = None) -> None:
        self.settings = settings
        self.client = client if client is not None else QueryClient(settings)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def nodes(self, at: float, within: float) -> FleetNodeList:
        """Every node whose node source's last success reached the engine within ``within``
        seconds before ``at``, by name."""
        queries = node_queries(duration(within))
        results = await asyncio.gather(*(self.client.query(q, at) for q in queries.values()))
        fleet = _Fleet.of(at, dict(zip(queries, results, strict=True)))
        nodes = [fleet.node(name) for name in sorted(fleet.seen)]
        return FleetNodeList(engine=self.client.shown_url, timestamp=at, within=within, nodes=nodes)

    async def history(self, name: str, since: float, until: float, step: float | None, fields: list[str]) -> FleetHistory:
        """The node's history from ``since`` to ``until``; ``step`` None: about 300 points.
        FleetQueryError 404 when the engine holds no sample of the node in the range."""
        span = until - since
        if step is None:
            step = max(1.0, math.ceil(span / 300))
        if span / step + 1 > MAX_POINTS:
            raise FleetQueryError(400, "too many points", {"points": math.floor(span / step) + 1, "max": MAX_POINTS, "reason": "use a larger step or a shorter range"})
        window_secs = max(step, self.settings.lookback)
        window = duration(window_secs)
        # Points at multiples of the step, the same on both engines (VictoriaMetrics aligns a
        # range query's start to its step; Prometheus takes it as given).
        start = math.ceil(since / step) * step
        end = math.floor(until / step) * step
        if end < start:
            raise FleetQueryError(400, "bad range", {"since": since, "until": until, "step": step, "reason": "no multiple of the step between since and until"})
        known = await self.client.query(
            f'max(max_over_time(hvstat_source_last_success_timestamp_seconds{{{node_selector(name)}source="node"}}[{duration(until - since + window_secs)}]))', until
        )
        if not known or known[0].value is None:
            raise FleetQueryError(404, "no such node", {"node": name, "since": since, "until": until, "reason": "the engine has no sample of this node in the range"})
        results = await asyncio.gather(*(self.client.query_range(history_expr(f, name, window), start, end, step) for f in fields))
        count = round((end - start) / step) + 1
        timestamps = [round(start + i * step, 3) for i in range(count)]
        series: dict[str, list[float | None]] = {}
        for field, ranges in zip(fields, results, strict=True):
            column: list[float | None] = [None] * count
            for r in ranges[:1]:
                for t, v in r.values:
                    i = round((t - start) / step)
                    if 0 <= i < count:
                        column[i] = v
            series[field] = column
        return FleetHistory(node=name, since=since, until=until, step=step, window=window_secs, timestamps=timestamps, series=series)
