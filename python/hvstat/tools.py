"""``hvstat history`` and ``hvstat backup``: the on-disk history without a running server.

``history`` opens the database read-only (WAL lets it read while the service writes) and answers
as ``GET .../history`` would from disk: the finest tier that reaches back to ``--since`` (or the
coarsest tier whose bucket divides ``--step``). ``backup`` is SQLite's online backup API: a
consistent copy while the service keeps writing.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import time
from typing import Any

import msgspec

from hvstat.history import HistoryService
from hvstat.models import History, SeriesStats
from hvstat.rollups import KIND_FIELDS, RollupReader, backup, tiers_of
from hvstat.settings import Settings
from hvstat.store import HistoryConfig, HistoryQueryError, Kind, Store

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_since(raw: str, now: float) -> float:
    """``7d`` -> now - 7 days; a bare number under 10**9 is seconds back, a larger one unix seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdwy]?)\s*", raw)
    if m is None:
        raise ValueError(f"--since {raw!r}: seconds, a duration like 90m, 7d, 1y, or unix seconds")
    value = float(m[1])
    if not m[2] and value >= 1e9:
        return value
    return now - value * UNITS[m[2] or "s"]


def database_path(settings: Settings, args: argparse.Namespace) -> str | None:
    """The history database ``--db`` or ``[storage] path`` names, or None (said on stderr) when there is none."""
    path: str | None = args.db or settings.storage.path
    if not path:
        print("hvstat: no database: [storage] path is empty (history in memory only); give --db", file=sys.stderr)
        return None
    if not os.path.exists(path):
        print(f"hvstat: {path} does not exist", file=sys.stderr)
        return None
    return path


def history_command(settings: Settings, args: argparse.Namespace) -> int:
    path = database_path(settings, args)
    if path is None:
        return 1
    kind_name, _, key = args.entity.partition(":")
    if kind_name not in KIND_FIELDS or (kind_name == "node") != (not key):
        print(f"hvstat: --entity {args.entity!r}: node, container:<id> or vm:<id>", file=sys.stderr)
        return 2
    key = key or "node"
    kind = Kind(kind_name, KIND_FIELDS[kind_name], 1.0)
    now = time.time()
    try:
        since = parse_since(args.since, now)
    except ValueError as e:
        print(f"hvstat: {e}", file=sys.stderr)
        return 2
    fields = [f.strip() for f in args.fields.split(",")] if args.fields else [f.name for f in kind.fields]
    unknown = [f for f in fields if f not in kind.field_index]
    if unknown:
        print(f"hvstat: unknown field(s) {', '.join(unknown)}; {kind_name} has {', '.join(kind.field_index)}", file=sys.stderr)
        return 2
    reader = RollupReader(path, tiers_of(settings.storage))
    try:
        found = reader.entity(kind_name, key)
        if found is None:
            print(f"hvstat: {args.entity} has no history in {path}", file=sys.stderr)
            return 1
        service = HistoryService(Store(HistoryConfig()), reader=reader, started=now)
        answer = service.query(kind, key, None, since=since, until=now, step=args.step, fields=fields, max_points=1_000_000)
    except HistoryQueryError as e:
        print(f"hvstat: {e.error}: {e.detail}", file=sys.stderr)
        return 2
    finally:
        reader.close()
    r = answer.result
    if args.format == "json":
        body = History(entity=args.entity, name=found[1], resolution=r.resolution, step=r.step, tier=answer.tier, since=since, until=now, timestamps=r.timestamps, series=r.series)
        sys.stdout.write(msgspec.json.encode(body).decode() + "\n")
        return 0
    out = csv.writer(sys.stdout)
    out.writerow(["timestamp", *(f"{f}_{s}" for f in fields for s in ("min", "avg", "max"))])
    for i, ts in enumerate(r.timestamps):
        row: list[Any] = [ts]
        for f in fields:
            stats = r.series[f]
            assert isinstance(stats, SeriesStats)
            row += ["" if v is None else v for v in (stats.min[i], stats.avg[i], stats.max[i])]
        out.writerow(row)
    return 0


def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    path = database_path(settings, args)
    if path is None:
        return 1
    try:
        size = backup(path, args.target)
    except FileExistsError:
        print(f"hvstat: {args.target} exists; give a new path", file=sys.stderr)
        return 1
    print(f"copied {path} to {args.target} ({size} bytes)", file=sys.stderr)
    return 0
