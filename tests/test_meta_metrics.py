"""Collector meta-metrics (hvstat/meta.py, docs/prometheus.md "hvstat itself"): samples and failures
per source, the tick-duration histogram, hvstat_reader_up per reader, hvstat_build_info, and remote
write's send-duration histogram.

Against reality: readers fail because the files of a recorded tree (a copy of
tests/fixtures/hosts/linux-6.8-full, and of the cgroup-v2 docker tree) are removed or garbled while
the real service samples them; a tick hangs because /proc/stat is a FIFO nobody writes (the core's
open blocks in the kernel); the send durations are those of POSTs to a real HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.testclient import TestClient

from helpers import FIXTURE_HOSTS, WAIT_SECS
from hvstat import __version__
from hvstat import exposition as P
from hvstat._core import __version__ as CORE_VERSION
from hvstat.app import create_app
from hvstat.meta import TICK_BUCKETS, Histogram, HistogramSnapshot, SourceStats
from hvstat.remote_write import RemoteWriter
from hvstat.settings import (
    ContainerSettings,
    MonitoringSettings,
    NodeSettings,
    ProcessSettings,
    RemoteWriteSettings,
    Settings,
    StorageSettings,
    VmSettings,
)
from hvstat.sources.base import is_read_failure, reader_failures
from hvstat.sources.containers import ContainerSource
from hvstat.sources.node import NodeSource
from test_remote_write import Receiver, live_node

FULL = FIXTURE_HOSTS / "linux-6.8-full"
DOCKER_V2 = FIXTURE_HOSTS / "cgroup-v2-6.8-docker-systemd"


def series(text: str, openmetrics: bool = False) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {(s.name, frozenset(s.labels.items())): s.value for f in parse(text) for s in f.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    got = [v for (n, ls), v in series(text).items() if n == name and set(labels.items()) <= ls]
    assert len(got) <= 1, (name, labels, got)
    return got[0] if got else None


def until(cond: Callable[[], Any], what: str, secs: float = WAIT_SECS) -> Any:
    deadline = time.monotonic() + secs
    while not (got := cond()):
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)
    return got


# --- the histogram and its two renderings ----------------------------------------------------------


@pytest.mark.unit
def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = Histogram((0.1, 1.0, 10.0))
    for v in (0.05, 0.1, 0.5, 1.0, 3.0, 50.0):
        h.observe(v)
    snap = h.snapshot()
    assert snap.cumulative == (2, 4, 5) and snap.count == 6 and snap.sum == pytest.approx(54.65)


def _stats() -> list[SourceStats]:
    h = Histogram(TICK_BUCKETS)
    for v in (0.0004, 0.002, 0.002, 0.3, 12.0):
        h.observe(v)
    return [
        SourceStats("node", samples=4, failures=1, duration=h.snapshot(), readers=(("meminfo", "memory: /proc/meminfo: gone"), ("stat", None))),
        SourceStats("containers", samples=0, failures=0, duration=Histogram(TICK_BUCKETS).snapshot()),
    ]


@pytest.mark.unit
@pytest.mark.parametrize("openmetrics", [False, True])
def test_stats_render_in_both_formats(openmetrics: bool) -> None:
    text = P.render(None, [], [], "1.2.3", stats=_stats(), openmetrics=openmetrics).decode()
    fams = {f.name: f for f in (parse_openmetrics if openmetrics else parse_text)(text)}
    assert fams["hvstat_source_duration_seconds"].type == "histogram"
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fams["hvstat_source_duration_seconds"].samples}
    node = (("source", "node"),)
    assert got[("hvstat_source_duration_seconds_bucket", (("le", "0.0005"), *node))] == 1
    assert got[("hvstat_source_duration_seconds_bucket", (("le", "0.0025"), *node))] == 3
    assert got[("hvstat_source_duration_seconds_bucket", (("le", "10.0"), *node))] == 4
    assert got[("hvstat_source_duration_seconds_bucket", (("le", "+Inf"), *node))] == 5
    assert got[("hvstat_source_duration_seconds_count", node)] == 5
    assert got[("hvstat_source_duration_seconds_sum", node)] == pytest.approx(12.3044)
    assert got[("hvstat_source_duration_seconds_count", (("source", "containers"),))] == 0
    flat = {(n, tuple(sorted(ls))): v for (n, ls), v in series(text, openmetrics).items()}
    assert flat[("hvstat_source_samples_total", node)] == 4
    assert flat[("hvstat_source_failures_total", node)] == 1
    assert flat[("hvstat_reader_up", (("reader", "meminfo"), ("source", "node")))] == 0
    assert flat[("hvstat_reader_up", (("reader", "stat"), ("source", "node")))] == 1
    assert not [k for k in flat if k[0] == "hvstat_reader_up" and ("source", "containers") in k[1]]
    build = (("core_version", CORE_VERSION), ("python", platform.python_version()), ("version", "1.2.3"))
    assert flat[("hvstat_build_info", build)] == 1


@pytest.mark.prometheus
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus package) is not installed")
def test_promtool_accepts_the_histograms() -> None:
    h = Histogram((0.01, 0.1))
    h.observe(0.05)
    rw = _RemoteWriteCounts(h.snapshot())
    text = P.render(live_node(), [], [], __version__, stats=_stats(), remote_write=rw)
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=WAIT_SECS)
    assert r.returncode == 0 and not r.stdout and not r.stderr, (r.stdout + r.stderr).decode()


class _RemoteWriteCounts:
    """remote_write's counters as /metrics reads them, with a given send histogram."""

    def __init__(self, h: HistogramSnapshot) -> None:
        self.samples_sent = self.samples_failed = self.samples_dropped = self.retries = 0
        self.buffer_bytes = self.buffer_samples = 0
        self.last_success: float | None = None
        self.send_duration = h


@pytest.mark.unit
def test_which_reasons_are_read_failures() -> None:
    assert is_read_failure("/proc/meminfo does not exist on this system")
    assert is_read_failure("/tmp/x/proc/pressure/cpu:1: expected some or full")
    assert is_read_failure("cannot read /proc/4127/ns/net")
    assert is_read_failure("discovery failed: /proc/self/mountinfo: Permission denied (os error 13)")
    for fixed in (
        "PSI is not available: kernel before 4.20, built without CONFIG_PSI, or booted with psi=0",
        "6 disks match; only the first 1 (node.max_disks) are reported",
        "no memory limit",
        "first sample: a rate needs two readings",
        "/proc/4127/net/dev: not present",  # the guest's process exited between two reads
    ):
        assert not is_read_failure(fixed), fixed
    got = reader_failures(
        {"meminfo": ("memory",), "pressure": ("pressure", "pressure.*"), "stat": ("cpu",)},
        [{"pressure.cpu.full": "the kernel reports no 'full' line here", "memory.available_bytes": "MemAvailable is not in /proc/meminfo"}, {"pressure.io": "/p/io: gone"}],
    )
    assert got == {"meminfo": None, "pressure": "pressure.io: /p/io: gone", "stat": None}


# --- the node's readers, failing in a real service ------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    shutil.copytree(FULL, root, symlinks=True)
    return root


def _node_only(root: Path, interval: float = 0.2) -> Settings:
    return Settings(
        node=NodeSettings(proc_root=str(root / "proc"), sys_root=str(root / "sys"), rootfs=str(root)),
        monitoring=MonitoringSettings(node_metrics_interval=interval),
        containers=ContainerSettings(enabled=False),
        vms=VmSettings(enabled=False),
        processes=ProcessSettings(enabled=False),
        storage=StorageSettings(path=""),
    )


def reader_is(text: str, reader: str, up: int) -> str | None:
    """``text`` when the node's ``reader`` is ``up`` in it, else None."""
    return text if value(text, "hvstat_reader_up", source="node", reader=reader) == up else None


@pytest.mark.unit
def test_node_tick_succeeds_while_readers_fail(tree: Path) -> None:
    """meminfo absent from the start, then back; the cpu pressure file garbled mid-run (same inode:
    the core's kept-open descriptor reads the new text), then restored. The node source stays up;
    hvstat_reader_up says which reader failed, /health and the sample's unavailable say why."""
    meminfo = (tree / "proc" / "meminfo").read_bytes()
    (tree / "proc" / "meminfo").unlink()
    pressure = tree / "proc" / "pressure" / "cpu"
    good_pressure = pressure.read_bytes()
    with TestClient(create_app(_node_only(tree))) as client:

        def metrics() -> str:
            return client.get("/metrics").text

        text = metrics()
        assert value(text, "hvstat_source_up", source="node") == 1
        assert value(text, "hvstat_reader_up", source="node", reader="meminfo") == 0
        for ok in ("stat", "loadavg", "vmstat", "pressure", "diskstats", "net_dev"):
            assert value(text, "hvstat_reader_up", source="node", reader=ok) == 1, ok
        assert client.get("/health").json()["sources"][0]["status"] == "ok"
        assert "meminfo does not exist" in client.get("/api/monitoring/node/metrics").json()["unavailable"]["memory"]

        with open(pressure, "r+b") as fh:  # truncate and rewrite in place: the same inode
            fh.truncate(0)
            fh.write(b"garbage\n")
        until(lambda: reader_is(metrics(), "pressure", 0), "pressure reader down")
        (tree / "proc" / "meminfo").write_bytes(meminfo)
        text = until(lambda: reader_is(metrics(), "meminfo", 1), "meminfo back")
        assert value(text, "hvstat_reader_up", source="node", reader="pressure") == 0
        with open(pressure, "r+b") as fh:
            fh.truncate(0)
            fh.write(good_pressure)
        text = until(lambda: reader_is(metrics(), "pressure", 1), "pressure back")
        samples = value(text, "hvstat_source_samples_total", source="node")
        count = value(text, "hvstat_source_duration_seconds_count", source="node")
        assert samples is not None and samples >= 3 and count is not None and count >= samples
        assert value(text, "hvstat_source_failures_total", source="node") == 0
        assert value(text, "hvstat_source_up", source="node") == 1


@pytest.mark.unit
def test_container_controller_reader_fails(tmp_path: Path) -> None:
    """The recorded docker tree on cgroup v2: one container's memory.current garbled, so the memory
    reader fails (for that container, hence the source's), the cpu reader does not."""
    root = tmp_path / "host"
    shutil.copytree(DOCKER_V2, root, symlinks=True)
    source = ContainerSource(ContainerSettings(proc_root=str(root / "proc"), sys_root=str(root / "sys"), rootfs=str(root)), NodeSettings(), 1.0)
    first = source.sample()
    assert first.containers, "the fixture's containers were not found"
    assert source.readers([first])["memory"] is None
    target = first.containers[0]
    files = [p for p in root.rglob("memory.current") if target.id in str(p)]
    assert files, target.cgroup_path
    with open(files[0], "r+b") as fh:
        fh.truncate(0)
        fh.write(b"not a number\n")
    second = source.sample()
    readers = source.readers([second])
    assert readers["memory"] is not None and "memory" in readers["memory"], readers
    assert readers["cpu"] is None and readers["discovery"] is None, readers


# --- a tick that hangs in the kernel ---------------------------------------------------------------


@contextlib.contextmanager
def fifo_stat(tree: Path) -> Iterator[Path]:
    """/proc/stat of the tree as a FIFO: opening it for reading blocks until a writer opens it. The
    writer end is opened (and closed) when the test is done, also on failure, so that no worker
    thread stays blocked."""
    stat = tree / "proc" / "stat"
    stat.unlink()
    os.mkfifo(stat)
    try:
        yield stat
    finally:
        release(stat)


def release(fifo: Path) -> bool:
    """Let a reader blocked in open() go: open the write end without blocking and close it."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:  # no reader waiting
            return False
        raise
    os.close(fd)
    return True


@pytest.mark.unit
def test_a_hung_tick_counts_as_failures_and_its_wait_in_the_histogram(tree: Path) -> None:
    original = (tree / "proc" / "stat").read_bytes()

    async def run() -> None:
        with fifo_stat(tree) as stat:
            source = NodeSource(NodeSettings(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), rootfs=str(tree)), 0.2)
            source.tick_timeout_secs = 0.3  # the service's is max(interval, 5 s): the same path, sooner
            await source.prepare(source._sampler.prime)  # blocks in open(): "did not finish"
            await source.tick()  # the priming reading still runs: "still running"
            stats = source.stats()
            assert stats.failures == 2 and stats.samples == 0, stats
            assert source.health().status == "error" and "still running" in (source.health().error or "")
            # The priming reading is not a tick, and the refused tick started nothing: no duration yet.
            assert stats.duration.count == 0
            # Let the blocked open() return (a writer end appears), and put a real file in the
            # FIFO's place for the readings after it.
            writer = os.open(stat, os.O_WRONLY | os.O_NONBLOCK)
            stat.unlink()
            stat.write_bytes(original)
            os.close(writer)
            deadline = time.monotonic() + WAIT_SECS
            while source.stats().samples == 0:
                assert time.monotonic() < deadline, source.health()
                await asyncio.sleep(0.05)
                await source.tick()
            stats = source.stats()
            assert stats.failures >= 2 and source.health().status == "ok"
            # Every started tick is in the histogram: the one that took the sample, and any that
            # was waited for in vain before it (counted as the 0.3 s of its wait).
            assert stats.samples <= stats.duration.count <= stats.samples + (stats.failures - 2)
            await source.close()

    asyncio.run(run())


# --- remote write's send latency, against a real receiver -----------------------------------------


@pytest.mark.unit
def test_send_duration_is_observed_per_post(tmp_path: Path) -> None:
    sample = live_node()
    with Receiver() as rx:
        settings = RemoteWriteSettings(enabled=True, url=rx.url, buffer_dir=str(tmp_path), backoff=0.05, backoff_max=0.1)

        async def run() -> None:
            w = RemoteWriter(settings, 3600, version="9.9.9")
            w.start()
            try:
                rx.statuses[:] = [503]  # one failed POST, then the retry is accepted
                w.on_sample(sample)
                batch = await w.flush()
                assert batch is not None
                deadline = time.monotonic() + WAIT_SECS
                while w.samples_sent < batch.samples:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                h = w.status().send_duration
                assert h.count == 2 and 0 < h.sum < WAIT_SECS and h.cumulative[-1] == 2
                # The next batch carries the histogram as series, stamped with the batch's time.
                await w.flush()
                deadline = time.monotonic() + WAIT_SECS
                while not rx.timestamps("hvstat_remote_write_send_duration_seconds_count"):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
            finally:
                await w.aclose()

        asyncio.run(run())
        assert rx.timestamps("hvstat_remote_write_send_duration_seconds_bucket", le="+Inf")
