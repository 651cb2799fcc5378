"""History in the Store (python/hvstat/store.py) and its endpoints (python/hvstat/api/history.py).

Unit tests drive ``Series`` and ``Store`` with made-up samples and an injected clock: ring wrap,
min/avg/max exactness (values chosen so float64 sums are exact, compared with Fractions), null
round trips, bounded memory with 1000 containers, retention. The API tests run the app (lifespan
and all) under Starlette's TestClient: the node from this machine's /proc, the containers from a
copy of the recorded ``cgroup-v2-6.8-docker-systemd`` tree, so a container can be made to vanish by
deleting its cgroup directory.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from starlette.testclient import TestClient

from helpers import FIXTURE_HOSTS, WAIT_SECS
from hvstat.app import create_app
from hvstat.config import ConfigError, ContainerSettings, MonitoringSettings, Settings, VmSettings, load_settings
from hvstat.models import ContainerMetrics, ContainersSample, History, NodeMetrics
from hvstat.store import (
    CONTAINER_HISTORY_FIELDS,
    NODE_HISTORY_FIELDS,
    HistoryConfig,
    HistoryQueryError,
    Series,
    Store,
)

pytestmark = pytest.mark.unit

# A unix time on a bucket boundary (a multiple of 60 and of 3600), so bucket arithmetic is readable.
T0 = 1_700_002_800.0
NODE = "/api/monitoring/node/history"
TREE = FIXTURE_HOSTS / "cgroup-v2-6.8-docker-systemd"
# The two containers of that tree (names are their short ids: no runtime metadata is given).
ID_A = "8dfebddde31ced4b45409da15de92efd2bd0a89a8fdf3549622a6c629589070e"
ID_B = "e98ebaebf364d158932a3bda0611079ce79d0c77602b83c628719d36e89aaedc"
LOOP_INTERVAL = 0.25


def node_sample(ts: float, **values: float | None) -> NodeMetrics:
    base: dict[str, Any] = dict.fromkeys(("cpu_usage", "memory_usage", "disk_usage", "load_average_1m", "load_average_5m", "load_average_15m"), 1.0)
    return NodeMetrics(timestamp=ts, **{**base, **values})


def container(cid: str, ts: float, name: str | None = None, **values: float | int | None) -> ContainerMetrics:
    return ContainerMetrics(
        timestamp=ts,
        id=cid,
        name=name or cid[:12],
        runtime="docker",
        cgroup_path=f"/docker/{cid}",
        state="running",
        processes=1,
        cpu_usage_percent=values.pop("cpu_usage_percent", 1.0),
        memory_usage_bytes=values.pop("memory_usage_bytes", 1 << 20),  # type: ignore[arg-type]
        memory_limit_bytes="max",
        block_read_bytes=0,
        block_write_bytes=0,
        network_mode="own",
        network_rx_bytes=0,
        network_tx_bytes=0,
        **values,  # type: ignore[arg-type]
    )


def containers_sample(ts: float, containers: list[ContainerMetrics], vanished: list[str] | None = None) -> ContainersSample:
    return ContainersSample(timestamp=ts, containers=containers, vanished=vanished or [])


class Clock:
    """An injected wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def query(store: Store, kind: str = "node", key: str | None = None, **kw: Any) -> Any:
    k = store.node_kind if kind == "node" else store.container_kind
    series = store.series(kind, key)
    assert series is not None
    kw.setdefault("step", None)
    kw.setdefault("fields", [f.name for f in k.fields])
    kw.setdefault("max_points", 100_000)
    return store.query(k, series, **kw)


def dyadic(rnd: random.Random) -> float:
    """A value whose sums stay exact in float64 (a multiple of 1/64 below 2**20)."""
    return rnd.randrange(0, 1 << 26) / 64


def expected_stats(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
    have = [v for v in values if v is not None]
    if not have:
        return None, None, None
    return min(have), float(Fraction(sum(Fraction(v) for v in have), len(have))), max(have)


# --- the rings --------------------------------------------------------------------------------------


def test_full_ring_wraps_and_keeps_the_newest_in_order() -> None:
    s = Series(2, full_cap=5, coarse_cap=0, bucket=60.0)
    for i in range(12):
        s.append(T0 + i, [float(i), float(-i)])
    ts, (a, b) = s.full_copy([0, 1])
    assert list(ts) == [T0 + i for i in range(7, 12)]
    assert list(a) == [7.0, 8.0, 9.0, 10.0, 11.0] and list(b) == [-7.0, -8.0, -9.0, -10.0, -11.0]
    assert len(s.ts) == 5 and all(len(c) == 5 for c in s.cols), "the ring must not grow past its capacity"
    size = s.nbytes()
    for i in range(12, 40):
        s.append(T0 + i, [float(i), float(-i)])
    assert s.nbytes() == size
    ts, [a] = s.full_copy([0])
    assert list(ts) == [T0 + i for i in range(35, 40)] and list(a) == [35.0, 36.0, 37.0, 38.0, 39.0]


def test_bucket_ring_wraps_and_the_open_bucket_comes_last() -> None:
    s = Series(1, full_cap=0, coarse_cap=3, bucket=10.0)
    for i in range(60):  # six buckets of ten samples
        s.append(T0 + i, [float(i)])
    ts, [(mn, mx, sm, ct)] = s.coarse_copy([0])
    # Buckets 2, 3, 4 are the three closed ones kept; bucket 5 is still open.
    assert list(ts) == [T0 + 20, T0 + 30, T0 + 40, T0 + 50]
    assert list(mn) == [20.0, 30.0, 40.0, 50.0] and list(mx) == [29.0, 39.0, 49.0, 59.0]
    assert list(ct) == [10, 10, 10, 10] and list(sm) == [sum(range(b, b + 10)) for b in (20, 30, 40, 50)]
    assert len(s.bts) == 3


def test_timestamp_repeated_is_dropped_and_clock_going_back_restarts() -> None:
    s = Series(1, full_cap=10, coarse_cap=10, bucket=60.0)
    s.append(T0, [1.0])
    s.append(T0, [2.0])  # the same instant again: ignored
    assert list(s.full_copy([0])[1][0]) == [1.0]
    s.append(T0 + 1, [3.0])
    s.append(T0 - 100, [4.0])  # the wall clock was stepped back: start over, stay sorted
    ts, [col] = s.full_copy([0])
    assert list(ts) == [T0 - 100] and list(col) == [4.0]


# --- downsampling ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded() -> tuple[Store, list[tuple[float, dict[str, float | None]]]]:
    """Ten minutes of node samples, one a second, with random exact values and some nulls."""
    rnd = random.Random(5)
    clock = Clock()
    store = Store(HistoryConfig(full_resolution=600, retention=3600, bucket=60), node_interval=1.0, clock=clock)
    raw = []
    for i in range(600):
        ts = T0 + i + 0.5
        values: dict[str, float | None] = {f.name: dyadic(rnd) for f in NODE_HISTORY_FIELDS[:6]}
        if i % 7 == 0:
            values["cpu_usage"] = None
        if 120 <= i < 180:
            values["disk_usage"] = None  # a whole bucket without a value
        store.put_node(node_sample(ts, **values))
        raw.append((ts, values))
    clock.now = T0 + 600
    return store, raw


def _grouped(raw: list[tuple[float, dict[str, float | None]]], step: float, field: str) -> dict[float, list[float | None]]:
    out: dict[float, list[float | None]] = {}
    for ts, values in raw:
        out.setdefault(math.floor(ts / step) * step, []).append(values[field])
    return out


@pytest.mark.parametrize("step", [60.0, 180.0, 600.0, 20.0, 7.0])
def test_min_avg_max_are_exact(recorded: tuple[Store, list[Any]], step: float) -> None:
    """Buckets (60 s), buckets merged into longer steps (180, 600) and full-resolution samples
    grouped into shorter steps (20, 7) all give exactly the min, mean and max of the raw values."""
    store, raw = recorded
    fields = ["cpu_usage", "memory_usage", "disk_usage"]
    r = query(store, since=T0, until=T0 + 600, step=step, fields=fields)
    assert r.resolution == "min/avg/max" and r.step == step
    for f in fields:
        groups = _grouped(raw, step, f)
        assert r.timestamps == sorted(groups)
        stats = r.series[f]
        for i, t in enumerate(r.timestamps):
            assert (stats.min[i], stats.avg[i], stats.max[i]) == expected_stats(groups[t]), (f, t)


def test_full_resolution_returns_every_sample(recorded: tuple[Store, list[Any]]) -> None:
    store, raw = recorded
    r = query(store, since=T0 + 300, until=T0 + 400)
    assert r.resolution == "full" and r.step == 1.0
    want = [(ts, v) for ts, v in raw if T0 + 300 <= ts <= T0 + 400]
    assert r.timestamps == [ts for ts, _ in want]
    for f in ("cpu_usage", "disk_usage", "load_average_15m"):
        assert r.series[f] == [v[f] for _, v in want]


def test_node_fields_beyond_the_seed_ones() -> None:
    """The CPU modes come from cpu.total, the disk rates from disk_total (never a sum of disks[],
    which counts I/O through LVM twice), swap only when there is swap: 0 of 0 is null, not 0 %."""
    store = Store(HistoryConfig(full_resolution=600, retention=3600, bucket=60), node_interval=1.0, clock=Clock(T0 + 10))
    cpu = {"count": 1, "per_cpu": [], "seconds_total": {"user": 0.0, "nice": 0.0, "system": 0.0, "idle": 0.0}}
    modes = {"user": 10.5, "nice": 0.25, "system": 4.0, "irq": 0.5, "softirq": 1.5, "steal": 2.0, "iowait": 3.0}
    disk = {"name": "dm-0", "major": 252, "minor": 0, "stacked": True, "read_bytes_per_sec": 1e9, "in_progress": 0}
    disk |= dict.fromkeys(("read_bytes_total", "write_bytes_total", "reads_total", "writes_total"), 0)
    disk |= dict.fromkeys(("read_time_secs_total", "write_time_secs_total", "io_time_secs_total"), 0.0)
    base = dict.fromkeys(("cpu_usage", "memory_usage", "disk_usage", "load_average_1m", "load_average_5m", "load_average_15m"), 1.0)
    samples = [
        {"cpu": {**cpu, "total": modes}, "swap": {"total_bytes": 1 << 30, "used_percent": 12.5}, "disks": [disk],
         "disk_total": {"disks": ["sda"], "read_bytes_per_sec": 4096.0, "write_bytes_per_sec": 512.0}},
        {"swap": {"total_bytes": 0, "used_percent": 0.0}, "disk_total": {"disks": ["sda"]}},
    ]
    for i, extra in enumerate(samples):
        store.put_node(msgspec.convert({"timestamp": T0 + i, **base, **extra}, NodeMetrics))
    r = query(store, since=T0, until=T0 + 10)
    assert r.series["cpu_user_percent"] == [10.5, None] and r.series["cpu_softirq_percent"] == [1.5, None]
    assert [r.series[f"cpu_{m}_percent"][0] for m in modes] == list(modes.values())
    assert r.series["swap_used_percent"] == [12.5, None]
    assert r.series["disk_read_bytes_per_sec"] == [4096.0, None]
    assert r.series["disk_write_bytes_per_sec"] == [512.0, None]


def test_nulls_come_back_as_null_never_zero(recorded: tuple[Store, list[Any]]) -> None:
    store, raw = recorded
    full = query(store, since=T0, until=T0 + 600, fields=["cpu_usage", "network_rx_bytes_per_sec"])
    nulls = [i for i, (_, v) in enumerate(raw) if v["cpu_usage"] is None]
    assert nulls and all(full.series["cpu_usage"][i] is None for i in nulls)
    assert all(v is not None for i, v in enumerate(full.series["cpu_usage"]) if i not in nulls)
    # The samples have no network at all: every value is null, in both tiers.
    assert set(full.series["network_rx_bytes_per_sec"]) == {None}
    coarse = query(store, since=T0, until=T0 + 600, step=60, fields=["disk_usage", "network_rx_bytes_per_sec"])
    i = coarse.timestamps.index(T0 + 120)
    disk = coarse.series["disk_usage"]
    assert (disk.min[i], disk.avg[i], disk.max[i]) == (None, None, None)
    assert None not in disk.avg[:i] + disk.avg[i + 1 :]
    net = coarse.series["network_rx_bytes_per_sec"]
    assert set(net.min) == set(net.avg) == set(net.max) == {None}
    body = msgspec.json.decode(msgspec.json.encode(History(entity="node", resolution="full", step=1, since=0, until=1, timestamps=[1.0], series={"x": [None]})))
    assert body["series"]["x"] == [None]


def test_default_step_follows_the_full_resolution_window() -> None:
    clock = Clock()
    store = Store(HistoryConfig(full_resolution=600, retention=7200, bucket=60), node_interval=10, clock=clock)
    for i in range(720):  # two hours, one sample every 10 s
        store.put_node(node_sample(T0 + 10 * i))
    clock.now = T0 + 7200
    assert query(store, since=clock.now - 600, until=clock.now).resolution == "full"
    # One bucket of clock skew is tolerated.
    assert query(store, since=clock.now - 650, until=clock.now).resolution == "full"
    older = query(store, since=clock.now - 3600, until=clock.now)
    assert older.resolution == "min/avg/max" and older.step == 60
    assert older.timestamps[0] == clock.now - 3600 and older.timestamps[-1] == clock.now - 60
    # Full resolution means the last 600 s: samples older than that are not served as such.
    r = query(store, since=clock.now - 600, until=clock.now)
    assert r.timestamps[0] >= clock.now - 600


@pytest.mark.parametrize(
    ("step", "since_ago", "error"),
    [
        (0.0, 60, "bad step"),
        (-1.0, 60, "bad step"),
        (math.inf, 60, "bad step"),
        (90.0, 60, "bad step"),
        (7201.0 * 60, 60, "bad step"),
        (10.0, 3600, "step too fine for this range"),
    ],
)
def test_query_rejects_bad_steps(step: float, since_ago: float, error: str) -> None:
    clock = Clock(T0 + 3600)
    store = Store(HistoryConfig(full_resolution=600, retention=7200, bucket=60), node_interval=1, clock=clock)
    store.put_node(node_sample(T0 + 3599))
    with pytest.raises(HistoryQueryError) as e:
        query(store, since=clock.now - since_ago, until=clock.now, step=step)
    assert e.value.error == error


def test_too_many_points_is_refused_with_a_hint() -> None:
    clock = Clock(T0 + 100)
    store = Store(HistoryConfig(full_resolution=600, retention=7200, bucket=60), node_interval=1, clock=clock)
    for i in range(100):
        store.put_node(node_sample(T0 + i))
    with pytest.raises(HistoryQueryError) as e:
        query(store, since=T0, until=T0 + 100, max_points=50)
    assert e.value.error == "too many points"
    assert e.value.detail["points"] == 100 and e.value.detail["max_points"] == 50
    assert len(query(store, since=T0, until=T0 + 100, step=2, max_points=50).timestamps) == 50


# --- memory -----------------------------------------------------------------------------------------------


def test_bytes_per_entity_at_the_defaults() -> None:
    """The numbers in store.py's docstring: a container at the defaults (10 s samples) and the node
    (5 s). Measured with tracemalloc on a series filled past both capacities."""
    h = HistoryConfig.from_settings(MonitoringSettings())
    assert h is not None and (h.full_resolution, h.retention, h.bucket) == (3600, 86400, 60)
    container_cap = Series.capacity_bytes(len(CONTAINER_HISTORY_FIELDS), h.full_capacity(10), h.coarse_capacity())
    node_cap = Series.capacity_bytes(len(NODE_HISTORY_FIELDS), h.full_capacity(5), h.coarse_capacity())
    # store.py says 364,768 and 995,916 bytes (CPython 3.11, 64-bit); other builds differ in headers only.
    assert container_cap == pytest.approx(364_768, rel=0.01)
    assert node_cap == pytest.approx(995_916, rel=0.01)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        s = Series(len(CONTAINER_HISTORY_FIELDS), h.full_capacity(10), h.coarse_capacity(), h.bucket)
        values = [1.0] * len(CONTAINER_HISTORY_FIELDS)
        for i in range(86400 // 10 + 1000):  # a day and then some, every 10 s
            s.append(T0 + 10 * i, values)
        measured = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert s.nbytes() == container_cap
    assert measured == pytest.approx(container_cap, rel=0.02)


def test_memory_is_bounded_with_1000_containers() -> None:
    """1000 containers past both capacities: the history holds exactly capacity_bytes each, and 50
    more ticks allocate nothing that stays."""
    h = HistoryConfig(full_resolution=120, retention=600, bucket=60)
    clock = Clock()
    store = Store(h, container_interval=10, clock=clock)
    templates = [container(f"{i:064x}", T0, name=f"c{i}") for i in range(1000)]

    def tick(n: int) -> None:
        ts = T0 + 10 * n
        clock.now = ts
        store.put_containers(containers_sample(ts, [msgspec.structs.replace(c, timestamp=ts, cpu_cores=n / 7) for c in templates]))

    for n in range(75):  # 750 s: both rings full (13 samples, 10 closed buckets)
        tick(n)
    cap = Series.capacity_bytes(len(CONTAINER_HISTORY_FIELDS), h.full_capacity(10), h.coarse_capacity())
    node = store.series("node")
    assert node is not None
    assert store.history_nbytes() - node.nbytes() == 1000 * cap
    tracemalloc.start()
    try:
        tick(75)  # warm: the latest sample's objects are replaced each tick
        before = tracemalloc.get_traced_memory()[0]
        for n in range(76, 126):
            tick(n)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert store.history_nbytes() - node.nbytes() == 1000 * cap
    assert grown < 64 * 1024, f"the store grew by {grown} bytes over 50 ticks"


def test_history_off_keeps_only_the_latest_sample() -> None:
    for m in (MonitoringSettings(enable_history=False), MonitoringSettings(history_retention=0)):
        store = Store.from_settings(m)
        assert not store.history_enabled
        for i in range(5):
            store.put_node(node_sample(T0 + i, cpu_usage=float(i)))
            store.put_containers(containers_sample(T0 + i, [container(ID_A, T0 + i)]))
        assert store.node is not None and store.node.cpu_usage == 4.0
        assert list(store.containers) == [ID_A]
        assert store.series("node") is None and store.series("container", ID_A) is None
        assert store.history_nbytes() == 0


def test_full_resolution_is_capped_at_the_retention() -> None:
    h = HistoryConfig.from_settings(MonitoringSettings(history_retention=600))
    assert h is not None and h.full_resolution == 600


# --- retention --------------------------------------------------------------------------------------------


def test_vanished_container_is_kept_until_it_ages_out() -> None:
    h = HistoryConfig(full_resolution=60, retention=300, bucket=60)
    clock = Clock()
    store = Store(h, container_interval=10, clock=clock)

    def tick(ts: float, ids: list[str], vanished: list[str] | None = None) -> None:
        clock.now = ts
        store.put_containers(containers_sample(ts, [container(i, ts) for i in ids], vanished))

    for i in range(13):
        tick(T0 + 10 * i, [ID_A, ID_B])
    last_b = T0 + 120
    tick(T0 + 130, [ID_A], vanished=[ID_B])
    t = T0 + 130
    while t < last_b + 300:
        assert store.series("container", ID_B) is not None, f"dropped {t - last_b} s after it vanished"
        assert ID_B in store.container_series_ids()
        t += 10
        tick(t, [ID_A])
    t += 10
    tick(t, [ID_A])
    assert store.series("container", ID_B) is None
    assert store.container_series_ids() == [ID_A]


def test_queries_never_reach_past_the_retention() -> None:
    h = HistoryConfig(full_resolution=60, retention=300, bucket=60)
    clock = Clock()
    store = Store(h, node_interval=10, clock=clock)
    for i in range(200):  # 2000 s
        clock.now = T0 + 10 * i
        store.put_node(node_sample(clock.now))
    r = query(store, since=0, until=clock.now, step=60)
    assert r.timestamps[0] >= clock.now - 300 - 60
    assert len(r.timestamps) <= h.coarse_capacity() + 1
    # Later, with no new samples: what is left ages out of the answers too.
    clock.now += 1000
    assert query(store, since=0, until=clock.now, step=60).timestamps == []


# --- settings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"HVSTAT_MONITORING_HISTORY_BUCKET": "0"}, "monitoring.history_bucket"),
        ({"HVSTAT_MONITORING_HISTORY_BUCKET": "90000"}, "monitoring.history_bucket"),
        ({"HVSTAT_MONITORING_HISTORY_FULL_RESOLUTION": "-1"}, "monitoring.history_full_resolution"),
        ({"HVSTAT_MONITORING_HISTORY_FULL_RESOLUTION": "soon"}, "monitoring.history_full_resolution"),
    ],
)
def test_history_settings_are_validated(tmp_path: Path, env: dict[str, str], key: str) -> None:
    empty = tmp_path / "hvstat.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(empty, environ=env)


def test_history_settings_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "hvstat.toml"
    empty.write_text("")
    m = load_settings(empty, environ={}).monitoring
    assert (m.history_full_resolution, m.history_bucket, m.history_retention, m.enable_history) == (3600, 60, 86400, True)


# --- the endpoints ------------------------------------------------------------------------------------------


def _check_error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == error, body
    return body


def _settings(tree: Path, meta: Path, **monitoring: Any) -> Settings:
    roots = {k: str(meta / k) for k in ("docker_root", "podman_root", "pods_log_root", "pve_root")}
    return Settings(
        monitoring=MonitoringSettings(node_metrics_interval=LOOP_INTERVAL, vm_metrics_interval=LOOP_INTERVAL, **monitoring),
        containers=ContainerSettings(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), rootfs=str(tree), **roots),
    )


def _copy_tree(dest: Path) -> Path:
    shutil.copytree(TREE, dest, symlinks=True)
    return dest


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    base = tmp_path_factory.mktemp("history-api")
    with TestClient(create_app(_settings(_copy_tree(base / "tree"), base / "meta"))) as c:
        _wait_for(lambda: len(c.get(NODE).json()["timestamps"]) >= 4, "four node samples")
        yield c


def test_node_history(client: TestClient) -> None:
    body = client.get(NODE).json()
    h = msgspec.convert(body, History)
    assert h.entity == "node" and h.name is None and h.resolution == "full" and h.step == LOOP_INTERVAL
    assert h.until - h.since == 3600
    assert h.timestamps == sorted(h.timestamps) and len(set(h.timestamps)) == len(h.timestamps)
    assert abs(h.timestamps[-1] - time.time()) < 5
    assert list(h.series) == [f.name for f in NODE_HISTORY_FIELDS]
    for f, values in h.series.items():
        assert isinstance(values, list) and len(values) == len(h.timestamps), f
    latest = client.get("/api/monitoring/node/metrics").json()
    # The newest history point is a sample the metrics route served (or the one before it).
    assert latest["timestamp"] >= h.timestamps[-1]


def test_node_history_fields_and_steps(client: TestClient) -> None:
    body = client.get(NODE, params={"fields": "cpu_usage, load_average_1m,cpu_usage"}).json()
    assert list(body["series"]) == ["cpu_usage", "load_average_1m"]
    body = client.get(NODE, params={"step": "60", "fields": "memory_usage"}).json()
    assert body["resolution"] == "min/avg/max" and body["step"] == 60
    stats = body["series"]["memory_usage"]
    assert set(stats) == {"min", "avg", "max"}
    for lo, mid, hi in zip(stats["min"], stats["avg"], stats["max"]):
        # The mean of equal values may differ from them in the last bit.
        assert lo - 1e-9 * abs(lo) <= mid <= hi + 1e-9 * abs(hi)
    now = time.time()
    body = client.get(NODE, params={"since": str(now - 5), "until": str(now + 1)}).json()
    assert body["timestamps"] and all(now - 5 <= t <= now + 1 for t in body["timestamps"])


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("since=10&until=5", "bad range"),
        ("since=-1", "bad range"),
        ("until=-5&since=-10", "bad range"),
        ("since=yesterday", "bad range"),
        ("until=nan", "bad range"),
        ("step=0", "bad step"),
        ("step=-60", "bad step"),
        ("step=fast", "bad step"),
        ("step=90", "bad step"),
        ("step=inf", "bad step"),
        ("fields=nope", "unknown field in 'fields'"),
        ("fields=cpu_usage,nope", "unknown field in 'fields'"),
        ("fields=", "'fields' is empty"),
        ("bogus=1", "unknown query parameter"),
        ("since=1&since=2", "query parameter given more than once"),
    ],
)
def test_node_history_errors(client: TestClient, query: str, error: str) -> None:
    _check_error(client.get(f"{NODE}?{query}"), 400, error)


def test_fine_step_over_an_old_range_is_refused(client: TestClient) -> None:
    now = time.time()
    body = _check_error(client.get(NODE, params={"since": str(now - 86000), "until": str(now), "step": "5"}), 400, "step too fine for this range")
    assert "hint" in body["detail"]


def test_too_many_points(client: TestClient) -> None:
    """monitoring.history_max_points, set to 2 on the running app (a server with that setting:
    tests/test_security.py)."""
    app_state = client.app.state  # type: ignore[attr-defined]
    state = app_state.hvstat
    monitoring = msgspec.structs.replace(state.settings.monitoring, history_max_points=2)
    app_state.hvstat = dataclasses.replace(state, settings=msgspec.structs.replace(state.settings, monitoring=monitoring))
    try:
        body = _check_error(client.get(NODE), 400, "too many points")
    finally:
        app_state.hvstat = state
    assert body["detail"]["max_points"] == 2 and body["detail"]["points"] > 2


@pytest.mark.parametrize("ref", [ID_A, ID_A[:12], ID_A[:20]])
def test_container_history_by_id_prefix_or_name(client: TestClient, ref: str) -> None:
    r = client.get(f"/api/containers/{ref}/history")
    assert r.status_code == 200, r.text
    h = msgspec.convert(r.json(), History)
    assert h.entity == f"container:{ID_A}" and h.name == ID_A[:12] and h.resolution == "full"
    assert list(h.series) == [f.name for f in CONTAINER_HISTORY_FIELDS]
    assert len(h.timestamps) >= 2
    # The tree does not change: the byte counts are the same every sample, never null.
    memory = h.series["memory_usage_bytes"]
    assert isinstance(memory, list) and len(set(memory)) == 1 and memory[0] is not None
    assert all(type(v) is int for v in memory), "byte counts are served as integers"
    stats = client.get(f"/api/containers/{ref}/history", params={"step": "60", "fields": "memory_usage_bytes"}).json()
    c_stats = stats["series"]["memory_usage_bytes"]
    assert type(c_stats["min"][0]) is int and type(c_stats["max"][0]) is int and type(c_stats["avg"][0]) is float


def test_container_history_errors(client: TestClient) -> None:
    _check_error(client.get("/api/containers/nope/history"), 404, "no such container")
    _check_error(client.get(f"/api/containers/{ID_A}/history?fields=cpu_usage"), 400, "unknown field in 'fields'")
    _check_error(client.get(f"/api/containers/{ID_A}/history?since=9&until=1"), 400, "bad range")
    _check_error(client.get(f"/api/containers/{ID_A}/history?x=1"), 400, "unknown query parameter")


def test_openapi_lists_the_history_routes(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in (NODE, "/api/containers/{ref}/history", "/api/vms/{ref}/history"):
        ok = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/History"}
    assert {"entity", "step", "timestamps", "series", "resolution"} <= set(doc["components"]["schemas"]["History"]["required"])


def test_vanished_container_stays_reachable_by_full_id(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path / "tree")
    with TestClient(create_app(_settings(tree, tmp_path / "meta"))) as c:
        _wait_for(lambda: len(c.get(f"/api/containers/{ID_B}/history").json()["timestamps"]) >= 3, "three samples of B")
        (scope,) = (tree / "sys/fs/cgroup/system.slice").glob(f"docker-{ID_B}.scope")
        shutil.rmtree(scope)
        _wait_for(lambda: c.get(f"/api/containers/{ID_B}/metrics").status_code == 404, "B to vanish")
        r = c.get(f"/api/containers/{ID_B}/history")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["entity"] == f"container:{ID_B}" and body["name"] == ID_B[:12] and len(body["timestamps"]) >= 3
        frozen = body["timestamps"]
        time.sleep(2 * LOOP_INTERVAL)
        assert c.get(f"/api/containers/{ID_B}/history").json()["timestamps"] == frozen, "no new samples after it vanished"
        # Only the full id reaches it: names and prefixes resolve among the live containers.
        _check_error(c.get(f"/api/containers/{ID_B[:12]}/history"), 404, "no such container")
        assert c.get(f"/api/containers/{ID_A}/history").status_code == 200


def test_history_disabled_is_404(tmp_path: Path) -> None:
    settings = _settings(_copy_tree(tmp_path / "tree"), tmp_path / "meta", enable_history=False)
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/monitoring/node/metrics").status_code == 200
        body = _check_error(c.get(NODE), 404, "history is disabled")
        assert body["detail"] == {"setting": "monitoring.enable_history"}
        _check_error(c.get(f"/api/containers/{ID_A}/history"), 404, "history is disabled")


def test_guest_history_when_containers_and_vms_are_off() -> None:
    settings = Settings(
        monitoring=MonitoringSettings(node_metrics_interval=LOOP_INTERVAL), containers=ContainerSettings(enabled=False), vms=VmSettings(enabled=False)
    )
    with TestClient(create_app(settings)) as c:
        _check_error(c.get(f"/api/containers/{ID_A}/history"), 404, "container monitoring is disabled")
        for path in ("/api/vms", "/api/vms/events", "/api/vms/some-vm/metrics", "/api/vms/some-vm/history"):
            body = _check_error(c.get(path), 404, "VM monitoring is disabled")
            assert body["detail"] == {"setting": "vms.enabled"}
        assert c.get(NODE).status_code == 200


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
