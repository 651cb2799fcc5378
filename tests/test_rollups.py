"""The on-disk history (hvstat/rollups.py) and the query layer across memory and disk
(hvstat/history.py), in process with an injected clock: tiers, chunks, restart, faults, max_bytes."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hvstat.history import HistoryService
from hvstat.models import Alert, ContainerMetrics, ContainersSample, NodeMetrics, SeriesStats, VmStatusChangedMessage
from hvstat.rollups import CHUNK, RollupWriter, StorageLockedError, backup, check_lock
from hvstat.settings import StorageSettings, StorageTier
from hvstat.store import HistoryConfig, HistoryQueryError, Store

pytestmark = pytest.mark.unit

T0 = 1_700_002_800.0  # a multiple of 3600
TIERS = [StorageTier(bucket=60, span=7200), StorageTier(bucket=300, span=86400), StorageTier(bucket=3600, span=30 * 86400)]


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def node(ts: float, cpu: float) -> NodeMetrics:
    base: dict[str, Any] = dict.fromkeys(("memory_usage", "disk_usage", "load_average_1m", "load_average_5m", "load_average_15m"), 1.0)
    return NodeMetrics(timestamp=ts, cpu_usage=cpu, **base)


def container(cid: str, ts: float, cpu: float, mem: int = 1 << 20) -> ContainerMetrics:
    return ContainerMetrics(
        timestamp=ts, id=cid, name=f"n-{cid[:6]}", runtime="docker", cgroup_path=f"/docker/{cid}", state="running", processes=1,
        cpu_usage_percent=cpu, memory_usage_bytes=mem, memory_limit_bytes="max", block_read_bytes=0, block_write_bytes=0,
        network_mode="own", network_rx_bytes=0, network_tx_bytes=0,
    )  # fmt: skip


def writer(path: Path, clock: Clock, tiers: list[StorageTier] = TIERS, max_bytes: int = 1 << 30) -> RollupWriter:
    w = RollupWriter(StorageSettings(path=str(path), tiers=tiers, max_bytes=max_bytes), clock=clock)
    w.start()
    return w


def feed_node(w: RollupWriter, clock: Clock, start: float, end: float, step: float = 10.0) -> None:
    """Node samples every ``step`` s in [start, end): cpu_usage is the second within the minute."""
    t = start
    while t < end:
        clock.now = t
        w.on_sample(node(t, float(t % 60)))
        t += step
    w.flush()


def test_tiers_hold_min_avg_max_and_chunks_pack(tmp_path: Path) -> None:
    clock = Clock()
    w = writer(tmp_path / "h.db", clock)
    try:
        feed_node(w, clock, T0, T0 + 3 * 3600)
        assert w.reader is not None and w.health().status == "ok"
        for tier, per_bucket in ((w.tiers[0], 6), (w.tiers[1], 30), (w.tiers[2], 360)):
            b = w.reader.buckets("node", "node", tier, T0, T0 + 3 * 3600, ["cpu_usage", "memory_usage"])
            assert b.ts, tier
            assert set(b.counts) == {per_bucket}, tier
            # cpu_usage runs 0, 10, ..., 50 in every minute.
            assert set(b.mins[0]) == {0.0} and set(b.maxs[0]) == {50.0} and set(b.avgs[0]) == {25.0} and set(b.avgs[1]) == {1.0}
            assert b.ts == sorted(b.ts) and all((t2 - t1) == tier.bucket for t1, t2 in zip(b.ts, b.ts[1:]))
        # The 60 s tier keeps its span (2 h) give or take a chunk; the 1 h tier all of it but the open hour.
        b0 = w.reader.buckets("node", "node", w.tiers[0], T0, T0 + 3 * 3600, ["cpu_usage"])
        assert b0.ts[-1] == T0 + 3 * 3600 - 120 and b0.ts[0] <= T0 + 3600 - 60
        assert w.reader.buckets("node", "node", w.tiers[2], T0, T0 + 3 * 3600, ["cpu_usage"]).ts == [T0, T0 + 3600]
        db = sqlite3.connect(tmp_path / "h.db")
        packed = dict(db.execute("SELECT tier, count(*) FROM chunks GROUP BY tier").fetchall())
        recent = dict(db.execute("SELECT tier, count(*) FROM recent GROUP BY tier").fetchall())
        assert packed.get(0) and all(n <= CHUNK for n in recent.values())
        # What the disk does not have yet comes from the writer: the open bucket of every tier.
        open0 = w.unwritten("node", "node", w.tiers[0], ["cpu_usage"])
        assert [(at, n) for at, n, *_ in open0] == [(T0 + 3 * 3600 - 60, 6)]
        open2 = w.unwritten("node", "node", w.tiers[2], ["cpu_usage"])
        assert [(at, n) for at, n, *_ in open2] == [(T0 + 2 * 3600, 360)]
    finally:
        w.close()


def test_a_clean_stop_keeps_the_open_buckets_and_a_restart_goes_on(tmp_path: Path) -> None:
    clock = Clock()
    w = writer(tmp_path / "h.db", clock)
    feed_node(w, clock, T0, T0 + 1800)
    w.close()
    w = writer(tmp_path / "h.db", clock)
    try:
        feed_node(w, clock, T0 + 1800, T0 + 3600 + 370)  # the hour closes with its next 5 min bucket
        assert w.reader is not None
        hour = w.reader.buckets("node", "node", w.tiers[2], T0, T0 + 7200, ["cpu_usage"])
        assert hour.ts == [T0] and hour.counts == [360] and hour.avgs[0] == [25.0]
    finally:
        w.close()


def test_a_kill_loses_at_most_the_open_bucket(tmp_path: Path) -> None:
    """A writer whose thread is never stopped (as with SIGKILL: nothing at exit) and a second one
    on the same file after its lock is gone: every closed 60 s bucket is there."""
    clock = Clock()
    w = writer(tmp_path / "h.db", clock)
    feed_node(w, clock, T0, T0 + 600 + 30)
    # Simulate the kill: drop the lock and the connection without the stop's checkpoint.
    assert w._lock_fd is not None
    os.close(w._lock_fd)
    w._lock_fd = None
    w2 = writer(tmp_path / "h.db", clock)
    try:
        assert w2.reader is not None
        b = w2.reader.buckets("node", "node", w2.tiers[0], T0, T0 + 700, ["cpu_usage"])
        assert b.ts == [T0 + 60 * i for i in range(10)] and set(b.counts) == {6}
    finally:
        w2.close()


def test_a_second_writer_on_the_same_path_is_refused(tmp_path: Path) -> None:
    clock = Clock()
    w = writer(tmp_path / "h.db", clock)
    try:
        with pytest.raises(StorageLockedError, match=f"pid {os.getpid()}"):
            writer(tmp_path / "h.db", clock)
        assert check_lock(str(tmp_path / "h.db")) is not None
    finally:
        w.close()
    assert check_lock(str(tmp_path / "h.db")) is None


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_database_is_moved_aside_and_a_fresh_one_started(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "h.db"
    clock = Clock()
    w = writer(path, clock)
    feed_node(w, clock, T0, T0 + 4 * 3600)
    w.close()
    if damage == "garbage":
        path.write_bytes(b"this is no database" * 1000)
    else:
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2)
    w = writer(path, clock)
    try:
        assert any("moved aside" in r.getMessage() for r in caplog.records)
        assert list(tmp_path.glob("h.db.corrupt-*"))
        feed_node(w, clock, T0 + 4 * 3600, T0 + 4 * 3600 + 180)
        assert w.health().status == "ok" and w.reader is not None
        assert len(w.reader.buckets("node", "node", w.tiers[0], T0, T0 + 5 * 3600, ["cpu_usage"]).ts) == 2
    finally:
        w.close()


def test_an_unwritable_path_is_degraded_and_buckets_wait(tmp_path: Path) -> None:
    clock = Clock()
    w = RollupWriter(StorageSettings(path="/proc/hvstat-no/history.db", tiers=TIERS), clock=clock)
    w.start()
    try:
        feed_node(w, clock, T0, T0 + 600)
        h = w.health()
        # Nine closed 60 s buckets and the first 5 min one.
        assert h.status == "degraded" and h.error and "/proc/hvstat-no" in h.error and h.pending_buckets == 10
        # The query layer still answers from the writer's memory.
        assert [n for _, n, *_ in w.unwritten("node", "node", w.tiers[0], ["cpu_usage"])] == [6] * 10
    finally:
        w.close()


def test_max_bytes_is_a_hard_cap_and_the_oldest_go_first(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    clock = Clock()
    cap = 1 << 20
    tiers = [StorageTier(bucket=60, span=30 * 86400)]
    w = writer(path, clock, tiers, max_bytes=cap)
    try:
        ids = [f"{i:064x}" for i in range(60)]
        t = T0
        while t < T0 + 1.5 * 86400:
            clock.now = t
            w.on_sample(ContainersSample(timestamp=t, containers=[container(c, t, random.random() * 100, random.randrange(1 << 30)) for c in ids], vanished=[]))
            t += 60
        w.flush(60)
        assert os.path.getsize(path) <= cap
        assert w.reader is not None
        b = w.reader.buckets("container", ids[0], w.tiers[0], T0, t, ["cpu_usage_percent"])
        assert b.ts[-1] >= t - 180 and b.ts[0] > T0  # the newest kept, the oldest pruned
    finally:
        w.close()


def _service(tmp_path: Path, clock: Clock, started: float) -> tuple[Store, RollupWriter, HistoryService]:
    store = Store(HistoryConfig(full_resolution=3600, retention=86400, bucket=60), node_interval=10, clock=clock)
    w = writer(tmp_path / "h.db", clock)
    return store, w, HistoryService(store, w, started=started, clock=clock)


def test_the_query_layer_picks_memory_or_the_finest_covering_tier(tmp_path: Path) -> None:
    clock = Clock()
    store, w, hist = _service(tmp_path, clock, started=T0 + 3 * 3600)
    try:
        feed_node(w, clock, T0, T0 + 4 * 3600)
        for t in range(int(T0 + 3 * 3600), int(T0 + 4 * 3600), 10):
            store.put_node(node(float(t), float(t % 60)))
        series = store.series("node")
        now = clock()
        fields = ["cpu_usage"]

        def ask(since: float, step: float | None = None, max_points: int = 10_000) -> Any:
            return hist.query(store.node_kind, "node", series, since=since, until=now, step=step, fields=fields, max_points=max_points)

        assert ask(now - 1800).tier == "memory"  # this run recorded all of it
        before = ask(now - 2 * 3600)  # before this run started: disk, the finest tier reaching back
        assert before.tier == "1m" and before.result.step == 60
        stats = before.result.series["cpu_usage"]
        assert isinstance(stats, SeriesStats) and set(stats.avg) == {25.0}
        # Without a seam: the last bucket is the open one, the first from before the restart.
        assert before.result.timestamps[-1] == T0 + 4 * 3600 - 60 and before.result.timestamps[0] == (now - 2 * 3600) // 60 * 60
        assert ask(now - 12 * 3600).tier == "5m"  # older than the 1 m tier's 2 h span
        assert ask(now - 2 * 3600, step=3600).tier == "1h"
        assert ask(now - 2 * 3600, step=600).tier == "5m"  # the coarsest tier dividing the step that reaches back
        assert ask(now - 40 * 86400).tier == "1h"  # none reaches back 40 days: the coarsest
        assert ask(now - 2 * 3600, max_points=50).tier == "5m"  # 120 points of 1 m is too many
        with pytest.raises(HistoryQueryError, match="bad step"):
            ask(now - 2 * 3600, step=90)
    finally:
        w.close()


def test_alerts_and_vm_events_come_back_from_disk(tmp_path: Path) -> None:
    clock = Clock()
    store, w, hist = _service(tmp_path, clock, started=T0)
    alert = Alert(
        alert_id="a1", rule="cpu", severity="high", state="resolved", entity="node", metric="cpu_usage", op=">", threshold=90.0,
        value=10.0, since=T0 - 100, fired_at=T0 - 50, resolved_at=T0, reason="cleared", message="cpu high",
    )  # fmt: skip
    event = VmStatusChangedMessage(node_id="n", timestamp=T0, vm_id="vm-1", previous="running", status="paused")
    w.record_alert(alert)
    w.on_sample(event)
    w.close()
    w = writer(tmp_path / "h.db", clock)
    try:
        hist = HistoryService(store, w, started=T0, clock=clock)
        assert hist.resolved_alerts([], 10) == [alert]
        assert hist.vm_events([], None, 10) == [event]
        assert hist.vm_events([event], T0, 10) == [event]  # not twice
        assert hist.vm_events([], T0 + 1, 10) == []
    finally:
        w.close()


def test_disk_answers_equal_the_samples_at_every_step(tmp_path: Path) -> None:
    """The columnar read and the step merge (hvstat/rollups.py RollupReader.buckets, history.py
    merge_steps) against min/avg/max computed from the samples themselves: gaps (no samples for
    20 min), samples without the field (null), steps of one bucket and of several."""
    import math
    import struct

    from hvstat.rollups import encode_bucket

    clock = Clock()
    w = writer(tmp_path / "h.db", clock, tiers=[StorageTier(bucket=60, span=86400), StorageTier(bucket=300, span=2 * 86400), StorageTier(bucket=3600, span=30 * 86400)])
    rnd = random.Random(5)
    fed: list[tuple[float, float | None]] = []
    try:
        t = T0
        while t < T0 + 4 * 3600:
            clock.now = t
            if not T0 + 3600 <= t < T0 + 3600 + 1200:  # a gap of 20 min
                cpu = None if rnd.random() < 0.1 else rnd.random() * 100
                w.on_sample(node(t, cpu))  # type: ignore[arg-type]
                fed.append((t, cpu))
            t += 10
        w.flush()
        store = Store(HistoryConfig())
        hist = HistoryService(store, w, started=clock.now, clock=clock)
        f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]  # noqa: E731
        until = clock.now // 60 * 60 - 1  # the last minute is left out (a bucket counts when it starts by until)
        for step in (60.0, 300.0, 600.0, 3600.0):
            a = hist.query(store.node_kind, "node", None, since=T0 - 3600, until=until, step=step, fields=["cpu_usage"], max_points=10_000)
            tb = {t.name: t.bucket for t in w.tiers}[a.tier]
            got = a.result.series["cpu_usage"]
            assert isinstance(got, SeriesStats)
            expect: dict[float, list[float]] = {}
            for ts, cpu in fed:
                if ts // tb * tb <= until:
                    expect.setdefault(math.floor(ts / step) * step, [])
                    if cpu is not None:
                        expect[math.floor(ts / step) * step].append(cpu)
            assert a.result.timestamps == sorted(expect), step
            # A step's mean: the tier's bucket means weighted by the bucket's samples (nulls included:
            # a bucket keeps one sample count, docs/api.md).
            means: dict[float, list[tuple[float, int]]] = {}
            for b0 in sorted({ts // tb * tb for ts, _ in fed if ts // tb * tb <= until}):
                inb = [cpu for ts, cpu in fed if ts // tb * tb == b0]
                known = [c for c in inb if c is not None]
                if known:
                    means.setdefault(math.floor(b0 / step) * step, []).append((sum(known) / len(known), len(inb)))
            for i, at in enumerate(a.result.timestamps):
                vals = expect[at]
                mean = sum(m * n for m, n in means[at]) / sum(n for _, n in means[at])
                # float32 on disk; the buckets not on disk yet (the open ones) come exact from memory.
                assert got.min[i] in (f32(min(vals)), min(vals)) and got.max[i] in (f32(max(vals)), max(vals)), (step, at)
                assert got.avg[i] == pytest.approx(mean, rel=1e-6), (step, at)
        # A recent row written after its chunk was packed (the next pack merges it) wins over the slot.
        assert w.reader is not None
        packed = w.reader.buckets("node", "node", w.tiers[0], T0, T0 + 1800, ["cpu_usage"])
        at = packed.ts[3]
        db = sqlite3.connect(tmp_path / "h.db")
        eid, lid = db.execute("SELECT c.entity, c.layout FROM chunks c WHERE c.tier = 0 LIMIT 1").fetchone()
        nf = len(w.kinds["node"].fields)
        db.execute("INSERT INTO recent VALUES (?, 0, ?, ?, ?)", (eid, at, lid, encode_bucket(7, [1.0] * nf, [2.0] * nf, [3.0] * nf)))
        db.commit()
        again = w.reader.buckets("node", "node", w.tiers[0], T0, T0 + 1800, ["cpu_usage"])
        assert again.ts == packed.ts and again.counts[3] == 7 and (again.mins[0][3], again.avgs[0][3], again.maxs[0][3]) == (1.0, 2.0, 3.0)
        assert again.avgs[0][:3] == packed.avgs[0][:3] and again.avgs[0][4:] == packed.avgs[0][4:]
    finally:
        w.close()


def test_backup_is_a_consistent_copy_while_writing(tmp_path: Path) -> None:
    clock = Clock()
    w = writer(tmp_path / "h.db", clock)
    try:
        feed_node(w, clock, T0, T0 + 3600)
        size = backup(str(tmp_path / "h.db"), str(tmp_path / "copy.db"))
        assert size > 0
        db = sqlite3.connect(tmp_path / "copy.db")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM entities").fetchone() == (1,)
        with pytest.raises(FileExistsError):
            backup(str(tmp_path / "h.db"), str(tmp_path / "copy.db"))
    finally:
        w.close()


def test_hvstat_history_and_backup_read_the_database_without_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import time

    from hvstat import cli

    clock = Clock(time.time() // 3600 * 3600 - 3 * 3600)
    w = writer(tmp_path / "h.db", clock)
    try:
        feed_node(w, clock, clock.now, clock.now + 2 * 3600)
        config = tmp_path / "hvstat.toml"
        config.write_text(f'[storage]\npath = "{tmp_path / "h.db"}"\ntiers = [{{bucket = 60, span = 7200}}, {{bucket = 300, span = 86400}}, {{bucket = 3600, span = 2592000}}]\n')
        assert cli.main(["history", "--config", str(config), "--since", "4h", "--fields", "cpu_usage"]) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["tier"] == "5m" and body["series"]["cpu_usage"]["avg"][0] == 25.0 and len(body["timestamps"]) == 23  # closed ones
        assert cli.main(["history", "--config", str(config), "--since", "4h", "--step", "3600", "--format", "csv", "--fields", "cpu_usage"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "timestamp,cpu_usage_min,cpu_usage_avg,cpu_usage_max" and lines[1].endswith(",0.0,25.0,50.0")
        assert cli.main(["history", "--config", str(config), "--entity", "container:nope"]) == 1
        assert "no history" in capsys.readouterr().err
        assert cli.main(["backup", "--config", str(config), str(tmp_path / "copy.db")]) == 0
        assert sqlite3.connect(tmp_path / "copy.db").execute("SELECT count(*) FROM chunks").fetchone()[0] > 0
    finally:
        w.close()


def test_a_vanished_guest_has_its_open_buckets_written_when_due_and_is_then_forgotten(tmp_path: Path) -> None:
    """Churn: a guest that left the sample keeps its open buckets until their time is over; each is
    then written as a sample past it would have, and the writer lets go of the guest (a host where
    thousands of guests come and go holds only those of the last hour here, not every one ever)."""
    clock = Clock()
    w = writer(tmp_path / "h.db", clock)
    gone, stays = "a" * 64, "b" * 64
    try:
        for i in range(12):  # two minutes of both, every 10 s
            clock.now = T0 + 10 * i
            w.on_sample(ContainersSample(timestamp=clock.now, containers=[container(gone, clock.now, 1.0), container(stays, clock.now, 2.0)]))
        t = T0 + 120
        while t < T0 + 3 * 3600 + 60:  # then only `stays`, for three hours
            clock.now = t
            w.on_sample(ContainersSample(timestamp=t, containers=[container(stays, t, 2.0)]))
            t += 10
        w.flush()
        assert ("container", gone) not in w._entities and ("container", stays) in w._entities
        assert w.reader is not None
        for tier in w.tiers[1:]:  # (the 60 s tier keeps 2 h: the guest's minutes there are pruned by now)
            b = w.reader.buckets("container", gone, tier, T0, T0 + 3 * 3600, ["cpu_usage_percent"])
            assert sum(b.counts) == 12 and set(b.avgs[0]) == {1.0}, tier
    finally:
        w.close()
