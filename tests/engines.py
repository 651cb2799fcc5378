"""The two query engines of a fleet, started by the tests on loopback: Debian's Prometheus 2.42 as a
remote-write receiver (``--web.enable-remote-write-receiver``) and Debian's VictoriaMetrics
(``victoria-metrics``, 1.79), each with its own storage directory, stopped with SIGTERM and reaped
at the end, also when the test failed. Both take remote write at ``/api/v1/write`` and answer the
Prometheus query API (``/api/v1/query``, ``/api/v1/query_range``); ``Engine`` hides the few
differences (readiness, making fresh writes visible, reading raw samples back).

Importable as ``engines`` (tests/ is on sys.path, as for ``helpers``)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import WAIT_SECS, http_ok, log_tail, wait_ready

ENGINES = ("prometheus", "victoriametrics")
# For @pytest.mark.parametrize: each engine's test carries its marker, so that
# `-m "not victoriametrics"` leaves out what needs one.
PARAMS = [pytest.param("prometheus", marks=pytest.mark.prometheus), pytest.param("victoriametrics", marks=pytest.mark.victoriametrics)]


@dataclass(frozen=True)
class Engine:
    """A running engine: ``base`` its URL, ``write_url`` its remote-write endpoint."""

    name: str
    base: str
    workdir: Path

    @property
    def write_url(self) -> str:
        return f"{self.base}/api/v1/write"

    def log(self) -> str:
        return log_tail(self.workdir / f"{self.name}.log")

    def flush(self) -> None:
        """Make what was written so far visible to queries. Prometheus: at once already.
        VictoriaMetrics: ingested samples sit in in-memory buffers for up to a second
        (docs: "/internal/force_flush")."""
        if self.name == "victoriametrics":
            httpx.get(f"{self.base}/internal/force_flush", timeout=10).raise_for_status()

    def query(self, promql: str, **params: Any) -> list[dict[str, Any]]:
        """An instant query's result (``status`` must be success)."""
        r = httpx.get(f"{self.base}/api/v1/query", params={"query": promql, **params}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (promql, r.status_code, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def raw(self, selector: str, window: str = "10m") -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
        """Every stored sample of every series ``selector`` matches over the last ``window``:
        (labels, [(timestamp ms, value)...]) per series, duplicates kept (a sample stored twice
        is listed twice). Prometheus: a range-vector query (its TSDB keeps one sample per
        timestamp: a second with another value is refused, one with the same value dropped).
        VictoriaMetrics: ``/api/v1/export``, which returns what the storage holds, duplicates
        included while deduplication is off (the default: -dedup.minScrapeInterval=0)."""
        self.flush()
        if self.name == "prometheus":
            out = []
            for s in self.query(f"{selector}[{window}]"):
                out.append((s["metric"], [(round(float(t) * 1000), float(v)) for t, v in s["values"]]))
            return out
        r = httpx.get(f"{self.base}/api/v1/export", params={"match[]": selector, "start": f"-{window}"}, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        out = []
        for line in r.text.splitlines():
            if line.strip():
                s = json.loads(line)
                out.append((s["metric"], sorted(zip(s["timestamps"], map(float, s["values"]), strict=True))))
        return out

    def timestamps(self, selector: str, window: str = "10m") -> list[int]:
        """Every stored sample's timestamp (ms) of the one series ``selector``, in order,
        duplicates kept."""
        series = self.raw(selector, window)
        assert len(series) <= 1, [labels for labels, _ in series]
        return [t for t, _ in series[0][1]] if series else []


def skip_unless_installed(name: str) -> None:
    exe = {"prometheus": "prometheus", "victoriametrics": "victoria-metrics"}[name]
    if shutil.which(exe) is None:
        package = {"prometheus": "prometheus", "victoriametrics": "victoria-metrics"}[name]
        pytest.skip(f"the {exe} binary is not installed (Debian package {package}; scripts/setup)")


def _stopped(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (both engines then write what they hold in memory), then reaped; killed if it
    does not end within half of WAIT_SECS."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT_SECS / 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT_SECS / 2)


@contextlib.contextmanager
def _running(name: str, argv: list[str], workdir: Path, ready: Callable[[], Any], base: str) -> Iterator[Engine]:
    log_path = workdir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
        try:
            wait_ready(ready, f"{name} ready", every=0.1, proc=proc, log=log_path)
            yield Engine(name, base, workdir)
        finally:
            _stopped(proc)


@contextlib.contextmanager
def prometheus_receiver(workdir: Path, port: int) -> Iterator[Engine]:
    """Debian's Prometheus 2.42 on 127.0.0.1:``port`` as a remote-write receiver only (no scrape
    jobs), its TSDB in ``workdir/tsdb``."""
    skip_unless_installed("prometheus")
    config = workdir / "prometheus.yml"
    # Batches buffered during an outage arrive late; within the head block they are in order per
    # series anyway, and the out-of-order window (2.39+, a config key, not a flag) also takes
    # samples older than the head's range after a long outage.
    config.write_text("global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 1h\n")
    base = f"http://127.0.0.1:{port}"
    argv = [
        str(shutil.which("prometheus")),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-remote-write-receiver",
    ]
    with _running("prometheus", argv, workdir, http_ok(f"{base}/-/ready"), base) as engine:
        yield engine


@contextlib.contextmanager
def victoria_metrics(workdir: Path, port: int) -> Iterator[Engine]:
    """Debian's VictoriaMetrics (single node) on 127.0.0.1:``port``, its storage in
    ``workdir/vmdata``. ``-search.latencyOffset=0s``: by default queries leave out the last 30 s
    (samples still arriving from scrapes); the tests read back what they just wrote.
    ``-search.disableCache``: range queries are answered from a cache by default, which would hide
    samples that arrive late (a buffered outage) from a repeated query."""
    skip_unless_installed("victoriametrics")
    base = f"http://127.0.0.1:{port}"
    argv = [
        str(shutil.which("victoria-metrics")),
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={workdir / 'vmdata'}",
        "-retentionPeriod=1d",
        "-search.latencyOffset=0s",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    with _running("victoriametrics", argv, workdir, http_ok(f"{base}/health"), base) as engine:
        yield engine


@contextlib.contextmanager
def engine(name: str, workdir: Path, port: int) -> Iterator[Engine]:
    """The engine called ``name`` (one of ENGINES) on ``port``, its data in ``workdir``."""
    start = {"prometheus": prometheus_receiver, "victoriametrics": victoria_metrics}[name]
    with start(workdir, port) as e:
        yield e
