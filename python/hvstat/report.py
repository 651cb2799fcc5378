"""``hvstat report``: what the node, its guests and its users did over a period, from the durable
history ([storage], read through rollups.RollupReader; no server needed, the service may be
writing meanwhile), as text for an email or a ticket, a Markdown document, or JSON.

The period is read from one tier: the finest whose span reaches back to ``--since`` (else the
coarsest). An average is the mean of the buckets' averages weighted by their sample counts; a peak
is the largest bucket maximum. Alerts are the resolved ones on disk whose firing overlaps the
period (an alert still firing is on disk only once it resolves)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from hvstat.models import Alert
from hvstat.rollups import RollupReader, Tier, tiers_of
from hvstat.settings import Settings
from hvstat.tools import database_path, parse_since
from hvstat.top.model import fmt_bytes, fmt_rate

TOP_N = 10


class Stat(msgspec.Struct, kw_only=True):
    avg: float | None
    peak: float | None


class EntityStats(msgspec.Struct, kw_only=True):
    kind: str
    key: str
    name: str | None
    cpu: Stat
    memory: Stat
    io: Stat  # bytes per second, read + write (disk or block I/O)


class AlertSpan(msgspec.Struct, kw_only=True):
    rule: str
    severity: str
    entity: str
    entity_name: str | None
    metric: str
    fired_at: float
    resolved_at: float | None
    duration_secs: float | None
    reason: str | None
    message: str | None


class Report(msgspec.Struct, kw_only=True):
    database: str
    since: float
    until: float
    tier: str
    node: dict[str, Stat]
    containers: list[EntityStats]
    vms: list[EntityStats]
    users: list[EntityStats]
    alerts: list[AlertSpan]


# What each kind's CPU, memory and I/O are in its history fields.
NODE_FIELDS = {
    "cpu_usage": "CPU %",
    "memory_usage": "memory %",
    "swap_used_percent": "swap %",
    "load_average_1m": "load 1m",
    "pressure_cpu_some_avg10": "PSI cpu some %",
    "pressure_memory_some_avg10": "PSI memory some %",
    "pressure_io_some_avg10": "PSI io some %",
    "disk_read_bytes_per_sec": "disk read B/s",
    "disk_write_bytes_per_sec": "disk write B/s",
    "network_rx_bytes_per_sec": "network rx B/s",
    "network_tx_bytes_per_sec": "network tx B/s",
}
GUEST_FIELDS = {
    "container": ("cpu_usage_percent", "memory_usage_bytes", ("block_read_bytes_per_sec", "block_write_bytes_per_sec")),
    "vm": ("cpu_usage_percent", "memory_rss_bytes", ("disk_read_bytes_per_sec", "disk_write_bytes_per_sec")),
    "user": ("cpu_host_percent", "rss_bytes", ("read_bytes_per_sec", "write_bytes_per_sec")),
}


def pick_tier(tiers: Sequence[Tier], since: float, now: float) -> Tier:
    for t in tiers:
        if t.span >= now - since:
            return t
    return tiers[-1]


def _stat(counts: Sequence[int], avgs: Sequence[float | None], maxs: Sequence[float | None]) -> Stat:
    total = weight = 0.0
    for n, a in zip(counts, avgs):
        if a is not None and n:
            total += a * n
            weight += n
    peaks = [m for m in maxs if m is not None]
    return Stat(avg=total / weight if weight else None, peak=max(peaks) if peaks else None)


def _sum_stat(counts: Sequence[int], a: Sequence[Sequence[float | None]], m: Sequence[Sequence[float | None]]) -> Stat:
    """Read plus write: per bucket the sum of the averages (and of the maxima: an upper bound of
    the peak, as the two maxima need not fall in the same sample)."""

    def add(cols: Sequence[Sequence[float | None]]) -> list[float | None]:
        out: list[float | None] = []
        for vals in zip(*cols):
            known = [v for v in vals if v is not None]
            out.append(sum(known) if known else None)
        return out

    return _stat(counts, add(a), add(m))


def build(reader: RollupReader, path: str, since: float, until: float) -> Report:
    tier = pick_tier(reader.tiers, since, until)
    node: dict[str, Stat] = {}
    if reader.entity("node", "node") is not None:
        fields = list(NODE_FIELDS)
        b = reader.buckets("node", "node", tier, since, until, fields)
        node = {f: _stat(b.counts, b.avgs[i], b.maxs[i]) for i, f in enumerate(fields)}
    guests: dict[str, list[EntityStats]] = {}
    for kind, (cpu, mem, (rd, wr)) in GUEST_FIELDS.items():
        rows = []
        for key, name, last_seen in reader.entities(kind):
            if last_seen < since:
                continue
            b = reader.buckets(kind, key, tier, since, until, [cpu, mem, rd, wr])
            if not b.ts:
                continue
            rows.append(
                EntityStats(
                    kind=kind, key=key, name=name,
                    cpu=_stat(b.counts, b.avgs[0], b.maxs[0]),
                    memory=_stat(b.counts, b.avgs[1], b.maxs[1]),
                    io=_sum_stat(b.counts, b.avgs[2:4], b.maxs[2:4]),
                )
            )
        guests[kind] = rows
    alerts = [span(a) for a in reader.alerts(100_000) if _overlaps(a, since, until)]
    alerts.sort(key=lambda a: a.fired_at)
    return Report(
        database=path, since=since, until=until, tier=tier.name, node=node,
        containers=guests["container"], vms=guests["vm"], users=guests["user"], alerts=alerts,
    )


def _overlaps(a: Alert, since: float, until: float) -> bool:
    if a.fired_at is None:
        return False  # pending, never fired
    end = a.resolved_at if a.resolved_at is not None else until
    return a.fired_at <= until and end >= since


def span(a: Alert) -> AlertSpan:
    assert a.fired_at is not None
    return AlertSpan(
        rule=a.rule, severity=a.severity, entity=a.entity, entity_name=a.entity_name, metric=a.metric,
        fired_at=a.fired_at, resolved_at=a.resolved_at,
        duration_secs=None if a.resolved_at is None else a.resolved_at - a.fired_at,
        reason=a.reason, message=a.message,
    )


# --- rendering --------------------------------------------------------------------------------------


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _dur(secs: float | None) -> str:
    if secs is None:
        return "-"
    s = int(round(secs))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _num(field: str, v: float | None) -> str:
    if v is None:
        return "-"
    if field.endswith("bytes_per_sec"):
        return fmt_rate(v)
    return f"{v:.2f}" if field.startswith("load") else f"{v:.1f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _top(rows: Sequence[EntityStats], what: str) -> list[EntityStats]:
    def key(r: EntityStats) -> float | None:
        return r.cpu.avg if what == "cpu" else r.memory.peak if what == "memory" else r.io.avg

    known = [(v, r) for r in rows if (v := key(r)) is not None]
    return [r for _, r in sorted(known, key=lambda vr: (-vr[0], vr[1].key))][:TOP_N]


def _label(r: EntityStats) -> str:
    if r.kind == "container":
        return r.name or r.key[:12]
    return r.name or r.key


def tables(rep: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every section, the same for text and Markdown."""
    out: list[tuple[str, list[str], list[list[str]]]] = []
    if rep.node:
        out.append(("Node", ["metric", "average", "peak"], [[label, _num(f, rep.node[f].avg), _num(f, rep.node[f].peak)] for f, label in NODE_FIELDS.items()]))
    for title, rows in (("Containers", rep.containers), ("VMs", rep.vms), ("Users", rep.users)):
        if not rows:
            out.append((f"{title}", [], []))
            continue
        cpu_label = "CPU % of host" if title == "Users" else "CPU %"
        out.append((f"{title}: top {TOP_N} by CPU (average)", ["name", f"avg {cpu_label}", "peak", "avg memory", "avg I/O"],
                    [[_label(r), _pct(r.cpu.avg), _pct(r.cpu.peak), fmt_bytes(r.memory.avg), fmt_rate(r.io.avg)] for r in _top(rows, "cpu")]))
        out.append((f"{title}: top {TOP_N} by memory (peak)", ["name", "peak memory", "avg memory"],
                    [[_label(r), fmt_bytes(r.memory.peak), fmt_bytes(r.memory.avg)] for r in _top(rows, "memory")]))
        out.append((f"{title}: top {TOP_N} by I/O (average, read + write)", ["name", "avg I/O", "peak I/O"],
                    [[_label(r), fmt_rate(r.io.avg), fmt_rate(r.io.peak)] for r in _top(rows, "io")]))
    out.append((
        "Alerts that fired",
        ["fired", "lasted", "severity", "rule", "on"],
        [[_when(a.fired_at), _dur(a.duration_secs) if a.resolved_at is not None else "still firing", a.severity, a.rule, a.entity_name or a.entity] for a in rep.alerts],
    ))
    return out


def _title(rep: Report) -> str:
    return f"hvstat report {_when(rep.since)} to {_when(rep.until)} ({_dur(rep.until - rep.since)}, {rep.tier} buckets)"


def _aligned(cells: Sequence[str], widths: Sequence[int]) -> str:
    """The first column left-aligned (names), the others right-aligned (numbers)."""
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()


def _md_cell(c: str) -> str:
    return c.replace("|", "\\|")


def render_text(rep: Report) -> str:
    lines = [_title(rep), f"from {rep.database}", ""]
    for title, header, rows in tables(rep):
        lines.append(title)
        lines.append("-" * len(title))
        if not header:
            lines.append("(none in this period)")
        elif not rows:
            lines.append("(none)")
        else:
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
            lines.extend(_aligned(cells, widths) for cells in [header, *rows])
        lines.append("")
    return "\n".join(lines)


def render_markdown(rep: Report) -> str:
    lines = [f"# {_title(rep)}", "", f"From `{rep.database}`.", ""]
    for title, header, rows in tables(rep):
        lines.append(f"## {title}")
        lines.append("")
        if not header:
            lines.append("None in this period.")
        elif not rows:
            lines.append("None.")
        else:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
            lines.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows)
        lines.append("")
    return "\n".join(lines)


def report_command(settings: Settings, args: argparse.Namespace) -> int:
    path = database_path(settings, args)
    if path is None:
        return 1
    now = time.time()
    try:
        since = parse_since(args.since, now)
    except ValueError as e:
        print(f"hvstat: {e}", file=sys.stderr)
        return 2
    reader = RollupReader(path, tiers_of(settings.storage))
    try:
        rep = build(reader, path, since, now)
    finally:
        reader.close()
    if args.format == "json":
        out: Any = msgspec.json.encode(rep).decode()
    elif args.format == "markdown":
        out = render_markdown(rep)
    else:
        out = render_text(rep)
    sys.stdout.write(out.rstrip("\n") + "\n")
    return 0
