"""Remote write ([remote_write], hvstat/remote_write.py).

- The series pushed are the series of /metrics: the same walk into a SeriesSink, compared with the
  text exposition parsed by prometheus_client's parser.
- The protobuf: encoded, snappy-compressed, decoded again; labels sorted, one TimeSeries per series.
- The on-disk buffer: bounded (oldest dropped first, counted; never the batch being sent), found
  again after a restart in order, torn files detected.
- The answers, from a real HTTP receiver on loopback (http.server, started here): 5xx and 429
  retried with backoff, 4xx dropped and counted, 2xx removes the batch.
- A real ``hvstat serve`` whose receiver is down buffers; restarted with the receiver up, the
  batches of the first run arrive first.
- The real engines (tests/engines.py), each receiving from a real ``hvstat serve`` every 0.5 s:
  Prometheus 2.42 (``--web.enable-remote-write-receiver``) and VictoriaMetrics. Every node series
  of a /metrics scrape is stored at that sample's timestamp with its value; the receiver is
  stopped mid-run and started again on the same storage, and every node sample hvstat took (its
  own history API lists them) is in the engine, once.
"""

from __future__ import annotations

import asyncio
import http.server
import math
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text

import engines
from conftest import free_port, running_server
from helpers import WAIT_SECS, wait_ready
from hvstat import __version__
from hvstat import exposition as P
from hvstat._core import NodeSampler
from hvstat.config import ConfigError, RemoteWriteSettings, load_settings
from hvstat.models import node_metrics_decoder
from hvstat.remote_write import (
    HEADERS,
    Buffer,
    CorruptBatch,
    RemoteWriter,
    decode_write_request,
    encode_write_request,
    snappy_compress,
    snappy_decompress,
    url_without_credentials,
)
from hvstat.rollups import StorageCounts
from test_prometheus import Case, case, node, recorded  # noqa: F401 - the fixtures of the /metrics tests

# --- the same series as /metrics -------------------------------------------------------------------


@pytest.mark.unit
def test_series_sink_yields_exactly_the_exposition(case: Case) -> None:  # noqa: F811
    text = case.render()
    expected = {}
    for f in parse_text(text):
        for s in f.samples:
            expected[(s.name, tuple(sorted(s.labels.items())))] = s.value
    sink = P.SeriesSink()
    P.collect(sink, case.node, case.containers, case.sources, __version__)
    got = {}
    for name, labels, value in sink.series:
        key = (name, tuple(sorted(labels)))
        assert key not in got, f"duplicate series {key}"
        assert not isinstance(value, bool), key
        got[key] = float(value)
    assert got.keys() == expected.keys(), got.keys() ^ expected.keys()
    assert got == expected
    # Label order within a key is the family's (the encoder sorts).
    fams = {f.name: f for f in P.FAMILIES}
    for name, labels, _ in sink.series:
        assert tuple(k for k, _ in labels) == fams[name].labels or name.endswith("_info") or name == "hvstat_container_pressure_stall_seconds_total"


@pytest.mark.unit
def test_write_request_round_trip() -> None:
    hostile = 'a"b\\c\nd é'
    groups = [
        (1_700_000_000_123, [("x_total", (("zone", "1"), ("alpha", hostile)), 3.5), ("g", (), 7)]),
        (1_700_000_001_123, [("x_total", (("zone", "1"), ("alpha", hostile)), 2**53)]),
    ]
    request, count = encode_write_request(groups)
    assert count == 3
    decoded = decode_write_request(snappy_decompress(snappy_compress(request)))
    assert decoded == [
        ({"__name__": "x_total", "alpha": hostile, "zone": "1"}, [(1_700_000_000_123, 3.5), (1_700_000_001_123, float(2**53))]),
        ({"__name__": "g"}, [(1_700_000_000_123, 7.0)]),
    ]
    # Sorted by name on the wire: __name__, alpha, zone.
    assert list(decoded[0][0]) == ["__name__", "alpha", "zone"]


# --- the buffer ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_buffer_is_bounded_and_drops_the_oldest_first(tmp_path: Path) -> None:
    b = Buffer(tmp_path, max_bytes=3 * 1016 + 100)  # three batches of 1000 + 16 header bytes
    batches = [b.append(bytes([i]) * 1000, samples=10 + i) for i in range(5)]
    assert [x.seq for x in b._batches] == [3, 4, 5]
    assert b.dropped_samples == 10 + 11 and b.dropped_batches == 2
    assert b.bytes == 3 * 1016 and b.samples == 12 + 13 + 14
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{s:016d}.batch" for s in (3, 4, 5)]
    # The batch being sent is never dropped: the next oldest goes instead.
    sending = b.claim_oldest()
    assert sending is batches[2]
    b.append(b"\x07" * 1000, samples=1)
    assert [x.seq for x in b._batches] == [3, 5, 6]
    assert b.read(sending) == b"\x02" * 1000
    b.remove(sending)
    assert [x.seq for x in b._batches] == [5, 6] and b.dropped_samples == 10 + 11 + 13
    # A batch larger than the whole buffer is dropped at once, and counted.
    assert b.append(b"\x00" * 5000, samples=99) is None
    assert b.dropped_samples == 10 + 11 + 13 + 99


@pytest.mark.unit
def test_buffer_survives_a_restart_and_detects_torn_files(tmp_path: Path) -> None:
    b = Buffer(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        b.append(f"batch {i}".encode(), samples=i + 1)
    (tmp_path / ".tmp-0000000000000009").write_bytes(b"half written")
    again = Buffer(tmp_path, max_bytes=1 << 20)
    assert [(x.seq, x.samples) for x in again._batches] == [(1, 1), (2, 2), (3, 3)]
    assert again.samples == 6 and not (tmp_path / ".tmp-0000000000000009").exists()
    assert again.read(again.claim_oldest()) == b"batch 0"
    assert again.append(b"new", samples=1).seq == 4  # sequence numbers go on
    # A file with a bad CRC (a torn write after a power loss) is refused on read...
    p = again._batches[1].path
    p.write_bytes(p.read_bytes()[:-1] + b"X")
    with pytest.raises(CorruptBatch):
        again.read(again._batches[1])
    # ... and one without our header is dropped (and counted) when the buffer is opened.
    (tmp_path / "0000000000000099.batch").write_bytes(b"garbage")
    third = Buffer(tmp_path, max_bytes=1 << 20)
    assert 99 not in [x.seq for x in third._batches] and third.dropped_batches == 1


# --- a real HTTP receiver on loopback --------------------------------------------------------------


class Receiver:
    """A remote-write receiver on 127.0.0.1: answers each POST with the next status of
    ``statuses`` (204 once they run out), records every request it accepted (2xx) decoded, and the
    headers of all."""

    def __init__(self, port: int = 0) -> None:
        self.statuses: list[int] = []
        self.accepted: list[list[tuple[dict[str, str], list[tuple[int, float]]]]] = []
        self.seen: list[int] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 204
                    receiver.seen.append(status)
                    receiver.headers.append(dict(self.headers))
                    if 200 <= status < 300:
                        receiver.accepted.append(decode_write_request(snappy_decompress(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def timestamps(self, name: str, **labels: str) -> list[int]:
        with self.lock:
            return [
                t
                for request in self.accepted
                for ls, samples in request
                if ls["__name__"] == name and all(ls.get(k) == v for k, v in labels.items())
                for t, _ in samples
            ]


def live_node() -> Any:
    s = NodeSampler()
    s.prime()
    time.sleep(0.1)
    return node_metrics_decoder.decode(s.sample())


async def _until(cond: Any, what: str, secs: float = 20.0) -> None:
    deadline = time.monotonic() + secs
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.02)


@pytest.mark.unit
def test_answers_retry_drop_and_send(tmp_path: Path) -> None:
    sample = live_node()
    storage = StorageCounts(bytes=4096, write_seconds_sum=0.5, write_attempts=3, errors=1)  # [storage]'s writer's counters
    with Receiver() as rx:
        settings = RemoteWriteSettings(
            enabled=True, url=rx.url, buffer_dir=str(tmp_path), backoff=0.05, backoff_max=0.2, headers={"Authorization": "Bearer s3cret"}
        )

        async def run() -> None:
            # interval 3600: batches are made by the explicit flush() calls below only.
            w = RemoteWriter(settings, 3600, version="9.9.9", storage=storage)
            w.start()
            try:
                # 503, 429 and a refused connection would all be retried; 503 then 429 here.
                rx.statuses[:] = [503, 429]
                w.on_sample(sample)
                first = await w.flush()
                assert first is not None
                # Counted as sent on the 2xx, removed from the buffer just after: wait for both.
                await _until(lambda: w.samples_sent == first.samples and w.status().buffer_samples == 0, "first batch sent after two retries")
                assert rx.seen == [503, 429, 204] and w.retries == 2 and w.samples_failed == 0
                assert w.status().buffer_samples == 0 and w.status().last_success is not None
                # 400 (malformed, out of order): dropped and counted, and the next batch goes on.
                rx.statuses[:] = [400]
                w.on_sample(sample)
                refused = await w.flush()
                second = await w.flush()
                assert refused is not None and second is not None
                await _until(
                    lambda: w.samples_sent == first.samples + second.samples and not list(tmp_path.glob("*.batch")),
                    "batch after the refused one sent",
                )
                assert w.samples_failed == refused.samples and rx.seen[3:] == [400, 204]
                assert w.status().samples_dropped == 0 and not list(tmp_path.glob("*.batch"))
            finally:
                await w.aclose()

        asyncio.run(run())
        h = rx.headers[0]
        assert h["Authorization"] == "Bearer s3cret"
        for k, v in HEADERS.items():
            assert h[k] == v
        # The first accepted batch: the node sample at its own timestamp, plus hvstat's own series.
        ts = round(sample.timestamp * 1000)
        assert set(rx.timestamps("hvstat_node_cpu_seconds_total", cpu="0", mode="user")) == {ts}
        assert rx.timestamps("hvstat_build_info", version="9.9.9")
        for name in ("hvstat_storage_bytes", "hvstat_storage_write_seconds_total", "hvstat_storage_writes_total", "hvstat_storage_errors_total"):
            assert rx.timestamps(name), name


# --- a real hvstat serve ---------------------------------------------------------------------------


def _config(url: str, buffer_dir: Path, **extra: Any) -> str:
    lines = [
        "[monitoring]",
        "node_metrics_interval = 0.5",
        "vm_metrics_interval = 1",
        "[vms]",
        "enabled = false",
        # Node samples are what these tests follow; a host crowded with other cgroups (another
        # test's thousand guests) would otherwise take the server's descriptors.
        "[containers]",
        "enabled = false",
        "[processes]",
        "enabled = false",
        "[remote_write]",
        "enabled = true",
        f'url = "{url}"',
        f'buffer_dir = "{buffer_dir}"',
        "interval = 1",
        "backoff = 0.2",
        "backoff_max = 1",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def node_history(base: str) -> list[int]:
    """Every node sample's timestamp (ms) in hvstat's history (full resolution)."""
    r = httpx.get(f"{base}/api/monitoring/node/history", params={"fields": "cpu_usage", "since": time.time() - 600}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["resolution"] == "full", body
    return [round(t * 1000) for t in body["timestamps"]]


def metric(base: str, name: str) -> float | None:
    for f in parse_text(httpx.get(f"{base}/metrics", timeout=10).text):
        for s in f.samples:
            if s.name == name:
                return s.value
    return None


@pytest.mark.unit
def test_health_shows_the_url_without_credentials() -> None:
    assert url_without_credentials("https://u:p%40ss@rw.example:8428/api/v1/write?x=1") == "https://rw.example:8428/api/v1/write?x=1"
    assert url_without_credentials("http://127.0.0.1:9090/api/v1/write") == "http://127.0.0.1:9090/api/v1/write"


@pytest.mark.unit
def test_config_keys_and_environment() -> None:
    s = load_settings(environ={"HVSTAT_REMOTE_WRITE_ENABLED": "1", "HVSTAT_REMOTE_WRITE_URL": "http://r:9090/api/v1/write", "HVSTAT_REMOTE_WRITE_HEADERS": '{"Authorization": "Bearer x"}', "HVSTAT_REMOTE_WRITE_INTERVAL": "2.5"})
    rw = s.remote_write
    assert rw.enabled and rw.url == "http://r:9090/api/v1/write" and rw.headers == {"Authorization": "Bearer x"} and rw.interval == 2.5
    assert rw.buffer_dir == "/var/lib/hvstat/remote-write" and rw.buffer_max_bytes == 256 << 20
    with pytest.raises(ConfigError, match="remote_write.url.*no url"):
        load_settings(environ={"HVSTAT_REMOTE_WRITE_ENABLED": "true"})
    with pytest.raises(ConfigError, match="remote_write.url"):
        load_settings(environ={"HVSTAT_REMOTE_WRITE_URL": "ftp://x"})
    with pytest.raises(ConfigError, match="remote_write.headers"):
        load_settings(environ={"HVSTAT_REMOTE_WRITE_URL": "http://x/", "HVSTAT_REMOTE_WRITE_HEADERS": '{"Content-Encoding": "gzip"}'})
    with pytest.raises(ConfigError, match="remote_write.buffer_max_bytes"):
        load_settings(environ={"HVSTAT_REMOTE_WRITE_BUFFER_MAX_BYTES": "10"})


@pytest.mark.server
def test_restart_sends_the_buffer_of_the_previous_run_first(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    buffer_dir = tmp_path / "buffer"
    # Run 1: nothing listens on the receiver's port: every batch stays in the buffer.
    (tmp_path / "run1").mkdir()
    with running_server(tmp_path / "run1", _config(url, buffer_dir)) as base:
        time.sleep(3.5)
        first_run = node_history(base)
        assert (metric(base, "hvstat_remote_write_retries_total") or 0) >= 1
        assert metric(base, "hvstat_remote_write_samples_sent_total") == 0
        assert (metric(base, "hvstat_remote_write_buffer_samples") or 0) > 0
        health = httpx.get(f"{base}/health", timeout=10).json()
        rw = health["remote_write"]
        assert health["status"] == "degraded" and rw["status"] == "degraded", health
        assert rw["url"] == url and rw["last_success"] is None and rw["buffer_samples"] > 0
        assert rw["error"].startswith("ConnectError"), rw
    left = sorted(buffer_dir.glob("*.batch"))
    assert left, "no batch left in the buffer"
    # Run 2, the receiver up: the first run's batches come first, then the new ones.
    with Receiver(port) as rx:
        (tmp_path / "run2").mkdir()
        with running_server(tmp_path / "run2", _config(url, buffer_dir)) as base:
            deadline = time.monotonic() + WAIT_SECS
            while not set(first_run) <= set(rx.timestamps("hvstat_node_cpu_seconds_total", cpu="0", mode="user")):
                assert time.monotonic() < deadline, "the first run's samples did not arrive"
                time.sleep(0.2)
            second_run = node_history(base)
        got = rx.timestamps("hvstat_node_cpu_seconds_total", cpu="0", mode="user")
    assert set(first_run) <= set(got)
    assert got == sorted(got), "batches arrived out of order"
    assert min(second_run) > max(first_run)
    # The first run's samples were the first to arrive.
    assert got[: len(first_run)] == sorted(first_run)


# --- the real engines: Prometheus and VictoriaMetrics (tests/engines.py) ------------------------------

ENGINE_PARAMS = engines.PARAMS


def node_sample_pinned(base: str) -> tuple[float, str]:
    """A node sample's timestamp and a /metrics scrape of that same sample: /metrics read between
    two reads of the node route that name the same sample (retried when a tick fell between)."""
    deadline = time.monotonic() + WAIT_SECS
    while True:
        before = httpx.get(f"{base}/api/monitoring/node/metrics", params={"fields": "timestamp"}, timeout=10).json()["timestamp"]
        text = httpx.get(f"{base}/metrics", timeout=10).text
        after = httpx.get(f"{base}/api/monitoring/node/metrics", params={"fields": "timestamp"}, timeout=10).json()["timestamp"]
        if before == after:
            return before, text
        assert time.monotonic() < deadline, "the node sample changed during every read of /metrics"


@pytest.mark.server
@pytest.mark.parametrize("engine_name", ENGINE_PARAMS)
def test_the_engine_stores_the_series_of_metrics(tmp_path: Path, engine_name: str) -> None:
    """Every node series of one /metrics scrape is in the engine at that sample's timestamp, with
    the same labels (plus the external ones remote write adds) and the same value, read back
    raw (Prometheus: a range query; VictoriaMetrics: /api/v1/export); and an instant query at that
    time answers the same."""
    port = free_port()
    (tmp_path / "engine").mkdir()
    (tmp_path / "serve").mkdir()
    with engines.engine(engine_name, tmp_path / "engine", port) as eng:
        with running_server(tmp_path / "serve", _config(eng.write_url, tmp_path / "buffer")) as base:
            ts, text = node_sample_pinned(base)
            ts_ms = round(ts * 1000)
            expected = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in parse_text(text)
                for s in f.samples
                if s.name.startswith("hvstat_node_") and s.name != "hvstat_node_info"
            }
            assert len(expected) > 50, sorted(expected)[:5]
            selector = '{__name__=~"hvstat_node_.+",__name__!="hvstat_node_info"}'

            def stored_at_ts() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                got = {}
                for labels, points in eng.raw(selector, "2m"):
                    at = [v for t, v in points if t == ts_ms]
                    assert len(at) <= 1, (labels, at)
                    if at:
                        own = {k: v for k, v in labels.items() if k not in EXTERNAL and k != "__name__"}
                        got[(labels["__name__"], tuple(sorted(own.items())))] = at[0]
                return got

            got = wait_ready(lambda: (g := stored_at_ts()) and len(g) >= len(expected) and g, f"the sample at {ts_ms} in {engine_name}", log=eng.log)
            assert got.keys() == expected.keys(), got.keys() ^ expected.keys()
            assert got == expected
            # An instant query at the sample's time sees that sample (the newest at or before it).
            (r,) = eng.query('hvstat_node_memory_used_bytes', time=f"{ts_ms / 1000:.3f}")
            assert float(r["value"][1]) == expected[("hvstat_node_memory_used_bytes", ())]


# The labels remote write adds to every series (hvstat/identity.py): the node's name and [labels].
EXTERNAL = {"node"}


@pytest.mark.server
@pytest.mark.parametrize("engine_name", ENGINE_PARAMS)
def test_receiver_outage_loses_no_sample(tmp_path: Path, engine_name: str) -> None:
    """The engine is stopped mid-run and started again on the same storage: every node sample
    hvstat took (its own history API lists them) is in the engine once. With VictoriaMetrics the
    "once" is a real check: it stores a sample sent twice twice (deduplication is off by
    default), where Prometheus drops an identical sample."""
    port = free_port()
    eng_dir = tmp_path / "engine"
    eng_dir.mkdir()
    serve_dir = tmp_path / "serve"
    serve_dir.mkdir()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    selector = 'hvstat_node_cpu_seconds_total{cpu="0",mode="user"}'
    with running_server(serve_dir, _config(url, tmp_path / "buffer")) as base:
        with engines.engine(engine_name, eng_dir, port) as eng:
            wait_ready(lambda: len(eng.timestamps(selector)) >= 4, f"samples reaching {engine_name}", every=0.25, log=eng.log)
        # The receiver is down: hvstat goes on sampling every 0.5 s and buffering.
        down_from = time.time()
        time.sleep(4)
        assert (metric(base, "hvstat_remote_write_buffer_samples") or 0) > 0
        assert (metric(base, "hvstat_remote_write_retries_total") or 0) >= 1
        rw = httpx.get(f"{base}/health", timeout=10).json()["remote_write"]
        assert rw["status"] == "degraded" and rw["error"] and rw["last_failure"] > down_from, rw
        down_until = time.time()
        with engines.engine(engine_name, eng_dir, port) as eng:
            wait_ready(
                lambda: metric(base, "hvstat_remote_write_buffer_samples") == 0 and (metric(base, "hvstat_remote_write_last_success_timestamp_seconds") or 0) >= down_until,
                "the buffer drained",
                every=0.25,
                log=eng.log,
            )
            produced = node_history(base)
            # The sample taken last may still be queued for the next batch.
            time.sleep(2.5)
            stored = eng.timestamps(selector)
            up = eng.timestamps('hvstat_source_up{source="node"}')
            assert metric(base, "hvstat_remote_write_samples_failed_total") == 0
            assert metric(base, "hvstat_remote_write_samples_dropped_total") == 0
            health = httpx.get(f"{base}/health", timeout=10).json()
            assert health["remote_write"]["status"] == "ok" and health["remote_write"]["error"] is None, health
            assert health["status"] == "ok", health
            receiver_stopping = time.monotonic()
        serve_stopping = time.monotonic()
    serve_stopped = time.monotonic()
    missing = sorted(set(produced) - set(stored))
    assert not missing, f"{len(missing)} of {len(produced)} samples missing in {engine_name}: {missing[:10]}"
    during = [t for t in produced if down_from * 1000 < t < down_until * 1000]
    assert len(during) >= 6, f"only {len(during)} samples were taken while the receiver was down"
    duplicated = sorted(t for t in set(stored) if stored.count(t) > 1)
    assert not duplicated, f"{len(duplicated)} samples stored more than once: {duplicated[:10]}"
    # hvstat's own series come once per batch, also for the batches of the outage.
    assert sum(down_from * 1000 < t < down_until * 1000 for t in up) >= 3
    # The engine stopped first (its shutdown takes a while: it writes what it holds), then hvstat:
    # what hvstat sampled in between went to the buffer, for its next start, as one batch per
    # second (remote_write.interval) plus the one written at its shutdown; all of it newer than
    # what the engine stored.
    left = Buffer(tmp_path / "buffer", max_bytes=1 << 30)
    assert len(left) <= 2 + math.ceil(serve_stopped - receiver_stopping), (len(left), serve_stopping - receiver_stopping)
    while (batch := left.claim_oldest()) is not None:
        series = decode_write_request(snappy_decompress(left.read(batch)))
        mine = {"__name__": "hvstat_node_cpu_seconds_total", "cpu": "0", "mode": "user"}
        kept = [t for labels, points in series if mine.items() <= labels.items() for t, _ in points]
        assert all(t > max(stored) for t in kept), (kept, max(stored))
        left.remove(batch)
