"""Durable history (hvstat/rollups.py) against the goals of its issue, side by side in one run:

- disk per guest per year at the default tiers (fixed once full): bytes per bucket of each tier
  measured on a simulated container (random values: the worst case for compression, and a steady
  one), times the buckets each tier keeps;
- node + 1000 containers for a year: the same arithmetic;
- write cost at 1000 containers sampled every 10 s: the process's CPU time (the writer thread
  included) over simulated minutes, per second of wall clock simulated;
- query: 30 days of one guest at 1 h, a year at 1 d (HistoryService.query, from disk);
- restart with a 1 GB database: RollupWriter.start() until the first write is committed.

Run: python bench/history.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hvstat.history import HistoryService
from hvstat.models import ContainerMetrics, ContainersSample
from hvstat.rollups import CHUNK, RollupWriter
from hvstat.settings import DEFAULT_STORAGE_TIERS, StorageSettings
from hvstat.store import HistoryConfig, Store

T0 = 1_700_006_400.0  # a multiple of 86400


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def container(cid: str, ts: float, rnd: random.Random | None) -> ContainerMetrics:
    cpu = rnd.random() * 100 if rnd else 12.5
    mem = rnd.randrange(1 << 33) if rnd else 1 << 30
    return ContainerMetrics(
        timestamp=ts, id=cid, name=cid[:12], runtime="docker", cgroup_path=f"/docker/{cid}", state="running", processes=3,
        cpu_usage_percent=cpu, cpu_cores=cpu / 100, memory_usage_bytes=mem, memory_working_set_bytes=mem // 2, memory_limit_bytes="max",
        block_read_bytes=0, block_write_bytes=0, block_read_bytes_per_sec=rnd.random() * 1e6 if rnd else 0.0,
        block_write_bytes_per_sec=rnd.random() * 1e6 if rnd else 0.0, network_mode="own", network_rx_bytes=0, network_tx_bytes=0,
        network_rx_bytes_per_sec=rnd.random() * 1e5 if rnd else 0.0, network_tx_bytes_per_sec=rnd.random() * 1e5 if rnd else 0.0,
    )  # fmt: skip


def bytes_per_bucket(tmp: Path, values: str) -> dict[int, float]:
    """Per tier that packed a chunk: bytes per (guest, bucket) of the packed rows (payload plus an
    estimate of SQLite's per-row cost), for 50 guests sampled every 10 s for three 1 min chunks."""
    rnd = random.Random(1) if values == "random" else None
    tiers = list(DEFAULT_STORAGE_TIERS)
    path = tmp / f"size-{values}.db"
    clock = Clock(T0)
    w = RollupWriter(StorageSettings(path=str(path), tiers=tiers), clock=clock)
    w.start()
    ids = [f"{i:064x}" for i in range(50)]
    # Tier 0 packs 64 buckets per chunk: feed 3 chunks' worth of each tier by feeding coarse samples.
    per_tier: dict[int, float] = {}
    db = sqlite3.connect(path)
    t = T0
    step = 10.0  # six samples per 60 s bucket: min, avg and max differ
    end = T0 + 3 * CHUNK * 60
    while t < end:
        clock.now = t
        w.on_sample(ContainersSample(timestamp=t, containers=[container(c, t, rnd) for c in ids], vanished=[]))
        t += step
    w.flush(600)
    for tier in range(len(tiers)):
        rows = db.execute("SELECT count(*), sum(length(data)) FROM chunks WHERE tier = ?", (tier,)).fetchone()
        if rows[0]:
            # Payload per row plus SQLite's per-row cost in a WITHOUT ROWID b-tree (key ~ 12 bytes, header).
            per_tier[tier] = (rows[1] / rows[0] + 24) / CHUNK
    w.close()
    return per_tier


def size_of_year(per_bucket: dict[int, float]) -> float:
    """Bytes one guest takes once every tier is full: buckets kept per tier times bytes per bucket
    (tiers not measured take the 1 min tier's per-bucket size, the largest)."""
    worst = max(per_bucket.values())
    return sum(t.span / t.bucket * per_bucket.get(i, worst) for i, t in enumerate(DEFAULT_STORAGE_TIERS))


def write_cost(tmp: Path, guests: int, minutes: int) -> tuple[float, float]:
    """CPU seconds per second of simulated time (a fraction of a core) for ``guests`` containers
    sampled every 10 s; and the share of it spent committing (the writer's own write timer)."""
    rnd = random.Random(2)
    ids = [f"{i:064x}" for i in range(guests)]
    ticks = [ContainersSample(timestamp=T0 + k * 10, containers=[container(c, T0 + k * 10, rnd) for c in ids], vanished=[]) for k in range(minutes * 6)]
    clock = Clock(T0)
    w = RollupWriter(StorageSettings(path=str(tmp / "cost.db")), clock=clock)
    w.start()
    w.flush()
    c0 = time.process_time()
    for s in ticks:
        clock.now = s.timestamp
        w.on_sample(s)
    w.flush(600)
    cpu = time.process_time() - c0
    writes = w.counts.write_seconds_sum
    w.close()
    return cpu / (minutes * 60), writes / (minutes * 60)


def query_times(tmp: Path) -> dict[str, float]:
    """One guest with a year of hourly samples (every tier holds a bucket per hour or day)."""
    clock = Clock(T0)
    path = tmp / "query.db"
    w = RollupWriter(StorageSettings(path=str(path)), clock=clock)
    w.start()
    cid = "c" * 64
    rnd = random.Random(3)
    t = T0
    while t < T0 + 366 * 86400:
        clock.now = t
        w.on_sample(ContainersSample(timestamp=t, containers=[container(cid, t, rnd)], vanished=[]))
        t += 3600
    w.flush(600)
    w.close()
    w = RollupWriter(StorageSettings(path=str(path)), clock=clock)
    w.start()
    store = Store(HistoryConfig())
    hist = HistoryService(store, w, started=clock.now, clock=clock)
    out: dict[str, float] = {}
    for label, since, step in (("30 d at 1 h", clock.now - 30 * 86400, 3600.0), ("1 y at 1 d", clock.now - 365 * 86400, 86400.0)):
        times = []
        for _ in range(20):
            q0 = time.perf_counter()
            a = hist.query(store.container_kind, cid, None, since=since, until=clock.now, step=step, fields=[f.name for f in store.container_kind.fields], max_points=10_000)
            times.append(time.perf_counter() - q0)
        out[f"{label} ({a.tier}, {len(a.result.timestamps)} points)"] = statistics.median(times)
    w.close()
    return out


def restart_time(tmp: Path, size: int) -> float:
    """A database of ``size`` bytes (chunk rows of random payload, as 1000s of guests would leave),
    then RollupWriter.start() until a first write is committed."""
    path = tmp / "big.db"
    db = sqlite3.connect(path)
    db.executescript("PRAGMA journal_mode = WAL;")
    w = RollupWriter(StorageSettings(path=str(path)), clock=Clock(T0))
    w.start()
    w.close()
    db = sqlite3.connect(path)
    blob = os.urandom(3000)
    n = size // 3200
    db.execute("INSERT INTO entities (id, kind, key, name, last_seen) VALUES (1, 'container', 'x', 'x', ?)", (T0,))
    # Chunks within their tiers' spans at the restart's clock (expired ones would be deleted by the
    # first write: not what a restart of a healthy database costs), 32 per entity.
    tiers = list(w.tiers)
    now_chunks = [t.chunk_of(T0 + 86400) for t in tiers]
    db.executemany(
        "INSERT INTO chunks (entity, tier, chunk, layout, data) VALUES (?, ?, ?, 1, ?)",
        ((2 + i // 32, i % 4, now_chunks[i % 4] - (i // 4) % 8, blob) for i in range(n)),
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    actual = os.path.getsize(path)
    clock = Clock(T0 + 86400)
    t0 = time.perf_counter()
    w = RollupWriter(StorageSettings(path=str(path)), clock=clock)
    w.start()
    w.on_sample(ContainersSample(timestamp=clock.now, containers=[container("y" * 64, clock.now, None)], vanished=[]))
    w.on_sample(ContainersSample(timestamp=clock.now + 60, containers=[container("y" * 64, clock.now + 60, None)], vanished=[]))
    w.flush()
    elapsed = time.perf_counter() - t0
    assert w.counts.last_write is not None
    w.close()
    print(f"  (restart database: {actual / 1e9:.2f} GB)", file=sys.stderr)
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="smaller sizes (100 guests, a 0.2 GB restart)")
    args = p.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        tmp = Path(d)
        for values in ("random", "steady"):
            per = bytes_per_bucket(tmp, values)
            year = size_of_year(per)
            detail = ", ".join(f"{DEFAULT_STORAGE_TIERS[i].bucket}s: {b:.1f} B" for i, b in sorted(per.items()))
            rows.append((f"disk per guest, all tiers full ({values} values; per bucket {detail})", f"{year / 1e6:.2f} MB", "<= 1 MB"))
            if values == "random":
                rows.append(("node + 1000 containers, a year at the default tiers", f"{1001 * year / 1e9:.2f} GB", "<= 1.2 GB"))
        guests = 100 if args.quick else 1000
        cost, writes = write_cost(tmp, guests, 5 if args.quick else 10)
        rows.append((f"write cost, {guests} containers every 10 s (process CPU, writer thread included)", f"{cost * 100:.3f} % of a core (commits: {writes * 100:.3f} %)", "<= 0.3 %"))
        for label, secs in query_times(tmp).items():
            rows.append((f"query {label}", f"{secs * 1000:.1f} ms", "<= 20 ms"))
        size = (200 if args.quick else 1000) << 20
        rows.append((f"restart with a {size >> 20} MiB database: start to first commit", f"{restart_time(tmp, size):.2f} s", "<= 2 s"))
    print("| measure | result | goal |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
