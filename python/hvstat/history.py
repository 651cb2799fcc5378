"""History queries across memory and disk: the one place the history routes (api/history.py), the
alerts and VM events routes and ``hvstat history`` read from.

Which answers a range (docs/api.md, "History"):

- **memory** (the store's full-resolution samples and min/avg/max buckets, hvstat/store.py) when
  history is kept in memory for the whole range: ``since`` is after this process began recording
  (a restart empties memory) and within ``monitoring.history_retention``, or ``step`` is finer
  than the finest tier on disk;
- otherwise **disk** (hvstat/rollups.py): the finest tier whose span reaches back to ``since``
  and that answers in at most ``max_points``; with ``step``, the coarsest tier whose bucket divides
  it and that reaches back to ``since``; the coarsest tier when none reaches that far. The buckets the disk does not have yet (the open
  bucket, and closed ones waiting for a full disk) come from the writer's memory, so the answer
  runs up to the latest sample without a seam.

The answer names its tier (``History.tier``): ``memory`` or the tier's bucket width (``1m``...).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hvstat.models import Alert, SeriesStats, VmStatusChangedMessage
from hvstat.rollups import Buckets, RollupReader, RollupWriter, Tier
from hvstat.store import HistoryQueryError, HistoryResult, Kind, Series, Store

# A step is a multiple of a bucket when step / bucket is this close to an integer.
_ALIGN_EPS = 1e-9


@dataclass(frozen=True)
class Answer:
    result: HistoryResult
    tier: str


def _ints(values: list[float | None]) -> list[int | float | None]:
    return [None if v is None else int(v) for v in values]


def merge_steps(buckets: Buckets, extra: Sequence[tuple[float, int, list[float], list[float], list[float]]], step: float, fields: Sequence[str], integers: frozenset[str], since: float, until: float, max_points: int) -> HistoryResult:
    """Buckets (persisted, then ``extra``: unwritten ones, which win over a persisted bucket of the
    same start) grouped into steps of ``step`` seconds (a multiple of the bucket): min of mins, max
    of maxes, the average weighted by each bucket's sample count. A step of one bucket (the usual
    answer: a tier's own buckets) takes the columns as they are."""
    k = len(fields)
    ts, counts = buckets.ts, buckets.counts
    cols = [*buckets.mins, *buckets.avgs, *buckets.maxs]  # min of each field, avg of each, max of each
    lo = since - buckets.tier.bucket
    extra = [e for e in extra if lo < e[0] <= until]
    if extra:
        ts, counts, cols = list(ts), list(counts), [list(c) for c in cols]
        pos = {t: i for i, t in enumerate(ts)}
        for at, n, mn, av, mx in extra:
            i = pos.get(at)
            if i is None:
                i = pos[at] = len(ts)
                ts.append(at)
                counts.append(n)
                for c in cols:
                    c.append(None)
            counts[i] = n
            for col, v in zip(cols, (*mn, *av, *mx), strict=True):
                col[i] = None if v != v else v
        if any(a >= b for a, b in zip(ts, ts[1:])):
            order = sorted(range(len(ts)), key=ts.__getitem__)
            ts, counts, cols = [ts[i] for i in order], [counts[i] for i in order], [[c[i] for i in order] for c in cols]
    series: dict[str, list[int | float | None] | SeriesStats] = {}
    if step == buckets.tier.bucket:  # bucket starts are multiples of the bucket: one bucket per step
        if len(ts) > max_points:
            raise _too_many(len(ts), max_points, since, until)
        for j, f in enumerate(fields):
            lows, means, highs = cols[j], cols[k + j], cols[2 * k + j]
            series[f] = SeriesStats(min=_ints(lows) if f in integers else list(lows), avg=means, max=_ints(highs) if f in integers else list(highs))
        return HistoryResult("min/avg/max", step, list(ts), series)
    groups: dict[float, list[int]] = {}
    for i, at in enumerate(ts):
        groups.setdefault(math.floor(at / step) * step, []).append(i)
    if len(groups) > max_points:
        raise _too_many(len(groups), max_points, since, until)
    starts = list(groups)
    for j, f in enumerate(fields):
        col_min, col_avg, col_max = cols[j], cols[k + j], cols[2 * k + j]
        mins: list[int | float | None] = []
        avgs: list[float | None] = []
        maxs: list[int | float | None] = []
        for g in starts:
            lo_v: float | None = None
            hi_v: float | None = None
            total = 0.0
            weight = 0
            for i in groups[g]:
                a, lo_j, hi_j = col_avg[i], col_min[i], col_max[i]
                if a is None:
                    continue
                if lo_j is not None and (lo_v is None or lo_j < lo_v):
                    lo_v = lo_j
                if hi_j is not None and (hi_v is None or hi_j > hi_v):
                    hi_v = hi_j
                n = max(counts[i], 1)
                total += a * n
                weight += n
            if f in integers:
                mins.append(None if lo_v is None else int(lo_v))
                maxs.append(None if hi_v is None else int(hi_v))
            else:
                mins.append(lo_v)
                maxs.append(hi_v)
            avgs.append(total / weight if weight else None)
        series[f] = SeriesStats(min=mins, avg=avgs, max=maxs)
    return HistoryResult("min/avg/max", step, starts, series)


def _too_many(points: int, max_points: int, since: float, until: float) -> HistoryQueryError:
    return HistoryQueryError(
        "too many points",
        {"points": points, "max_points": max_points, "hint": f"narrow the range or use a larger step (at least {math.ceil((until - since) / max_points)} s for this range)"},
    )


class HistoryService:
    """The store's history and, with ``[storage]``, the rollups on disk, as one."""

    def __init__(self, store: Store, writer: RollupWriter | None = None, *, reader: RollupReader | None = None, started: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store, self.writer, self.clock = store, writer, clock
        self._reader = reader
        # From when memory holds history: what happened before (an earlier run) is on disk only.
        self.memory_since = started if started is not None else clock()
        self.tiers: list[Tier] = writer.tiers if writer is not None else (reader.tiers if reader is not None else [])

    @property
    def reader(self) -> RollupReader | None:
        if self._reader is not None:
            return self._reader
        return self.writer.reader if self.writer is not None else None

    @property
    def enabled(self) -> bool:
        return self.store.history_enabled or self.reader is not None

    def on_disk(self, kind: str, key: str) -> tuple[str | None] | None:
        """``(name,)`` when the disk has history of the entity, else None."""
        r = self.reader
        if r is None:
            return None
        try:
            found = r.entity(kind, key)
        except Exception:  # noqa: BLE001 - an unreadable disk is answered as "not on disk"
            found = None
        if found is None:
            if self.writer is not None and self.writer.known(kind, key):
                return (None,)
            return None
        return (found[1],)

    def uses_memory(self, series: Series | None, since: float, step: float | None) -> bool:
        h = self.store.history_config
        if self.reader is None or not self.tiers:
            return True
        if h is None:
            return False
        if step is not None and step < self.tiers[0].bucket:
            return True  # only memory has it (and says so when the range is too old)
        # Memory holds nothing from before this process began recording (``memory_since``); a
        # client's "last 24 h" computed with its own clock gets a bucket of slack on the retention.
        now = self.clock()
        return series is not None and series.last > -math.inf and since >= self.memory_since and since >= now - h.retention - h.bucket

    def pick_tier(self, since: float, until: float, step: float | None, max_points: int) -> Tier:
        now = self.clock()
        if step is not None:
            fits = [t for t in self.tiers if step >= t.bucket and abs(step / t.bucket - round(step / t.bucket)) <= _ALIGN_EPS]
            if not fits:
                raise HistoryQueryError("bad step", {"step": step, "reason": f"a multiple of a tier's bucket ({', '.join(f'{t.bucket:g}' for t in self.tiers)} s)"})
        else:
            fits = [t for t in self.tiers if (until - since) / t.bucket <= max_points] or self.tiers[-1:]
        covering = [t for t in fits if now - t.span <= since + t.bucket]
        if not covering:
            return fits[-1]
        # With a step, the coarsest tier that divides it reads the fewest buckets for the same
        # answer; without, the finest that fits in max_points.
        return covering[-1] if step is not None else covering[0]

    def query(self, kind: Kind, key: str, series: Series | None, *, since: float, until: float, step: float | None, fields: Sequence[str], max_points: int) -> Answer:
        """The history of one entity (``key``: "node" or the guest's id); blocks on the disk (call it
        in a worker thread when ``uses_memory`` is false)."""
        if self.uses_memory(series, since, step):
            if self.store.history_config is None:
                raise HistoryQueryError("history is disabled", {"setting": "monitoring.enable_history"})
            if series is None:
                series = Series(len(kind.fields), 0, 0, 1.0)
            return Answer(self.store.query(kind, series, since=since, until=until, step=step, fields=fields, max_points=max_points), "memory")
        reader = self.reader
        assert reader is not None
        tier = self.pick_tier(since, until, step, max_points)
        buckets = reader.buckets(kind.name, key, tier, since, until, fields)
        extra = self.writer.unwritten(kind.name, key, tier, fields) if self.writer is not None else []
        result = merge_steps(buckets, extra, step or tier.bucket, fields, kind.integers, since, until, max_points)
        return Answer(result, tier.name)

    # --- alerts and VM events: memory first, then what the disk kept from earlier runs ---

    def resolved_alerts(self, in_memory: list[Alert], limit: int) -> list[Alert]:
        """Resolved alerts, newest first: this run's (``in_memory``), then earlier runs' from disk."""
        r = self.reader
        if r is None:
            return in_memory
        try:
            on_disk = r.alerts(limit + len(in_memory))
        except Exception:  # noqa: BLE001 - the disk's part is best effort; memory answers anyway
            return in_memory
        seen = {(a.alert_id, a.resolved_at) for a in in_memory}
        merged = in_memory + [a for a in on_disk if (a.alert_id, a.resolved_at) not in seen]
        merged.sort(key=lambda a: a.resolved_at or 0.0, reverse=True)
        return merged[:limit]

    def vm_events(self, in_memory: list[VmStatusChangedMessage], since: float | None, limit: int) -> list[VmStatusChangedMessage]:
        """VM status changes at or after ``since``, oldest first: earlier runs' from disk, then this run's."""
        r = self.reader
        if r is None:
            return in_memory
        try:
            on_disk = r.vm_events(since, limit)
        except Exception:  # noqa: BLE001 - as above
            return in_memory
        seen = {(e.vm_id, e.timestamp, e.status) for e in in_memory}
        merged = [e for e in on_disk if (e.vm_id, e.timestamp, e.status) not in seen] + in_memory
        merged.sort(key=lambda e: e.timestamp)
        return merged[-limit:]


__all__ = ["Answer", "HistoryService", "merge_steps"]
