"""The fleet view ([fleet], hvstat/fleet.py, hvstat/promql.py, hvstat/api/fleet.py).

- Settings and the routes' refusals: disabled without a query_url (404), bad parameters (400),
  an engine that is not there (503), too slow (504), or answers an error or something foreign
  (502): each a JSON error body, never a crash. The foreign engines are loopback servers of the
  test's own (http.server threads).
- The PromQL against the real engines (tests/engines.py): series written by remote write with
  known values for three nodes (one complete, one with little, one that stopped writing), then
  GET /api/fleet/nodes's numbers and a node's history compared with what was written: CPU from
  the counters' last two samples, guests and alerts of the newest sample only (a vanished
  container, a VM whose status changed, a rule gone), the window and the lookback.
- Three real ``hvstat serve`` with different node names writing to one VictoriaMetrics and one
  Prometheus; a fourth serves the fleet view of each engine, checked against each node's own
  /metrics and history.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import math
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.testclient import TestClient

import engines
from conftest import free_port, running_server
from helpers import clean_env, hvstat_exe, wait_ready
from hvstat.app import create_app
from hvstat.config import ConfigError, MonitoringSettings, Settings, load_settings
from hvstat.fleet import LOOKBACK, FleetView
from hvstat.identity import read_machine_id
from hvstat.models import FleetHistory, FleetNodeList
from hvstat.remote_write import HEADERS, encode_write_request, snappy_compress
from hvstat.settings import ContainerSettings, FleetSettings, ProcessSettings, VmSettings
from test_remote_write import node_sample_pinned

# --- settings and refusals -------------------------------------------------------------------------


@pytest.mark.unit
def test_config_keys_and_environment() -> None:
    s = load_settings(environ={"HVSTAT_FLEET_QUERY_URL": "http://vm:8428", "HVSTAT_FLEET_HEADERS": '{"Authorization": "Bearer x"}', "HVSTAT_FLEET_WITHIN": "600"})
    assert s.fleet.query_url == "http://vm:8428" and s.fleet.headers == {"Authorization": "Bearer x"} and s.fleet.within == 600
    assert load_settings(environ={}).fleet.query_url is None
    for bad in ("ftp://x", "http://", "http://vm:8428/?x=1"):
        with pytest.raises(ConfigError, match="fleet.query_url"):
            load_settings(environ={"HVSTAT_FLEET_QUERY_URL": bad})
    with pytest.raises(ConfigError, match="fleet.headers"):
        load_settings(environ={"HVSTAT_FLEET_HEADERS": '{"Host": "x"}'})
    with pytest.raises(ConfigError, match="fleet.ca_file"):
        load_settings(environ={"HVSTAT_FLEET_CA_FILE": "/nonexistent/ca.pem"})
    with pytest.raises(ConfigError, match="fleet.within"):
        load_settings(environ={"HVSTAT_FLEET_WITHIN": "0"})


@pytest.mark.unit
def test_check_config_hides_the_fleet_secrets(tmp_path: Path) -> None:
    config = tmp_path / "hvstat.toml"
    config.write_text('[fleet]\nquery_url = "https://user:pa55@vm.example:8428"\nheaders = { Authorization = "Bearer t0ken" }\n')
    r = subprocess.run([*hvstat_exe(), "check-config", "--config", str(config)], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    fleet = json.loads(r.stdout)["fleet"]
    assert fleet["headers"] == {"Authorization": "***"} and fleet["query_url"] == "https://***@vm.example:8428", fleet
    assert "pa55" not in r.stdout and "t0ken" not in r.stdout


def _settings(query_url: str | None, **fleet: Any) -> Settings:
    """The node source only (the fleet routes need no other; fewer files kept open)."""
    off = {"containers": ContainerSettings(enabled=False), "vms": VmSettings(enabled=False), "processes": ProcessSettings(enabled=False)}
    return Settings(monitoring=MonitoringSettings(node_metrics_interval=1), fleet=FleetSettings(query_url=query_url, **fleet), **off)


def _error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == error, body
    return body


@pytest.mark.unit
def test_disabled_without_a_query_url() -> None:
    with TestClient(create_app(_settings(None))) as c:
        _error(c.get("/api/fleet/nodes"), 404, "the fleet view is disabled")
        _error(c.get("/api/fleet/nodes/a/history"), 404, "the fleet view is disabled")
        assert "/api/fleet/nodes" in c.get("/api").json()["endpoints"]


@contextlib.contextmanager
def foreign_engine(status: int, body: bytes, delay: float = 0.0) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``status`` and ``body`` after ``delay``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            time.sleep(delay)
            with contextlib.suppress(OSError):  # the client may have given up (the timeout case)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.unit
def test_bad_parameters_are_400_before_the_engine_is_asked() -> None:
    # Nothing listens on the port: a 400 proves the request never reached the engine.
    with TestClient(create_app(_settings(f"http://127.0.0.1:{free_port()}"))) as c:
        _error(c.get("/api/fleet/nodes?x=1"), 400, "unknown query parameter")
        _error(c.get("/api/fleet/nodes?within=0"), 400, "bad within")
        _error(c.get("/api/fleet/nodes?within=nan"), 400, "bad within")
        _error(c.get("/api/fleet/nodes?within=1&within=2"), 400, "query parameter given more than once")
        h = "/api/fleet/nodes/a/history"
        _error(c.get(f"{h}?since=10&until=5"), 400, "bad range")
        _error(c.get(f"{h}?since=-1"), 400, "bad range")
        _error(c.get(f"{h}?until=abc"), 400, "bad range")
        _error(c.get(f"{h}?step=0"), 400, "bad step")
        _error(c.get(f"{h}?step=inf"), 400, "bad step")
        _error(c.get(f"{h}?fields=cpu_usage,nope"), 400, "unknown field in 'fields'")
        _error(c.get(f"{h}?fields=,"), 400, "'fields' is empty")
        _error(c.get("/api/fleet/nodes/a%22%7D%20or%20vector(1)/history"), 404, "no such node")


@pytest.mark.unit
def test_an_engine_that_is_not_there_or_fails_is_a_json_error() -> None:
    port = free_port()
    with TestClient(create_app(_settings(f"http://u:secret@127.0.0.1:{port}"))) as c:
        for path in ("/api/fleet/nodes", "/api/fleet/nodes/a/history"):
            body = _error(c.get(path), 503, "fleet engine unreachable")
            assert body["detail"]["url"] == f"http://127.0.0.1:{port}" and "ConnectError" in body["detail"]["reason"], body
            assert "secret" not in json.dumps(body)
        assert c.get("/health").status_code == 200  # the service goes on
    cases = [
        (400, b'{"status":"error","errorType":"bad_data","error":"parse error"}', 502, "fleet engine refused the query"),
        (200, b"<html>not prometheus</html>", 502, "fleet engine answered something other than the Prometheus query API"),
        (200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}', 502, "fleet engine answered an unexpected result type"),
        (200, b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":"x"}]}}', 502, "fleet engine answered something other than the Prometheus query API"),
    ]
    for status, answer, want, error in cases:
        with foreign_engine(status, answer) as url, TestClient(create_app(_settings(url))) as c:
            body = _error(c.get("/api/fleet/nodes"), want, error)
            assert body["detail"]["url"] == url and body["detail"]["query"], body
    with foreign_engine(200, b"{}", delay=2.0) as url, TestClient(create_app(_settings(url, timeout=0.3))) as c:
        _error(c.get("/api/fleet/nodes"), 504, "fleet engine timed out")


# --- the PromQL against the real engines, on series of known values ------------------------------


class Writer:
    """Series for the engine: ``add(t, name, value, **labels)``, then ``send`` one remote-write
    request (as hvstat sends them: protobuf, snappy)."""

    def __init__(self) -> None:
        self.groups: dict[int, list[tuple[str, tuple[tuple[str, str], ...], float]]] = {}

    def add(self, t: float, name: str, value: float, **labels: str) -> None:
        self.groups.setdefault(round(t * 1000), []).append((name, tuple(labels.items()), value))

    def send(self, url: str) -> None:
        request, _ = encode_write_request(sorted(self.groups.items()))
        r = httpx.post(url, content=snappy_compress(request), headers=HEADERS, timeout=10)
        assert r.status_code in (200, 204), (r.status_code, r.text)


CPU0 = {"user": 3, "nice": 0, "system": 1, "idle": 5, "iowait": 1, "irq": 0, "softirq": 0, "steal": 0, "guest": 2, "guest_nice": 0}
CPU1 = {"user": 1, "nice": 0, "system": 0, "idle": 9, "iowait": 0, "irq": 0, "softirq": 0, "steal": 0, "guest": 1, "guest_nice": 0}


def fleet_series(base: float) -> Writer:
    """alpha: every source, samples at base, base+10, base+20. beta: the node source only, one
    sample at base+10. gamma: stopped writing 400 s before base+20."""
    t0, t1, t2 = base, base + 10, base + 20
    w = Writer()
    for t in (t1, t2):
        k = 1 if t == t2 else 0  # the counters moved by CPU0/CPU1 between t1 and t2
        for cpu, moved in (("0", CPU0), ("1", CPU1)):
            for mode, d in moved.items():
                w.add(t, "hvstat_node_cpu_seconds_total", 1000 + k * d, node="alpha", cpu=cpu, mode=mode)
    for t, used in ((t0, 1 << 30), (t1, 2 << 30), (t2, 4 << 30)):
        w.add(t, "hvstat_node_memory_used_bytes", used, node="alpha")
        w.add(t, "hvstat_node_memory_total_bytes", 16 << 30, node="alpha")
        w.add(t, "hvstat_node_load1", used / (1 << 30), node="alpha")
    for mount, used, avail in (("/", 30e9, 70e9), ("/boot", 1e8, 9e8)):
        w.add(t2, "hvstat_node_filesystem_used_bytes", used, node="alpha", mountpoint=mount, device="vda1", fstype="ext4")
        w.add(t2, "hvstat_node_filesystem_avail_bytes", avail, node="alpha", mountpoint=mount, device="vda1", fstype="ext4")
    w.add(t2, "hvstat_node_load5", 1.5, node="alpha")
    w.add(t2, "hvstat_node_load15", 1.25, node="alpha")
    for t in (t1, t2):
        for source in ("node", "containers", "vms"):
            w.add(t, "hvstat_source_up", 1, node="alpha", source=source)
        w.add(t, "hvstat_source_last_success_timestamp_seconds", t - 0.25, node="alpha", source="node")
    for cid in ("c1", "c2", "c3"):
        w.add(t1, "hvstat_container_info", 1, node="alpha", id=cid, state="running")
    for cid in ("c1", "c2"):  # c3 vanished
        w.add(t2, "hvstat_container_info", 1, node="alpha", id=cid, state="running")
    w.add(t1, "hvstat_vm_info", 1, node="alpha", id="v1", status="paused")
    w.add(t2, "hvstat_vm_info", 1, node="alpha", id="v1", status="running")
    w.add(t2, "hvstat_vm_info", 1, node="alpha", id="v2", status="shutoff")
    w.add(t1, "hvstat_alerts_firing", 5, node="alpha", rule="gone", severity="low")
    w.add(t2, "hvstat_alerts_firing", 2, node="alpha", rule="r1", severity="high")
    w.add(t2, "hvstat_alerts_firing", 1, node="alpha", rule="r2", severity="low")
    w.add(t2, "hvstat_node_info", 1, node="alpha", machine_id="0123456789abcdef0123456789abcdef", rack="r7", url="http://alpha.example:9106/")
    # beta: one sample, node source only, no identity series.
    w.add(t1, "hvstat_source_up", 1, node="beta", source="node")
    w.add(t1, "hvstat_source_last_success_timestamp_seconds", t1, node="beta", source="node")
    w.add(t1, "hvstat_node_memory_used_bytes", 1 << 20, node="beta")
    w.add(t1, "hvstat_node_memory_total_bytes", 4 << 20, node="beta")
    w.add(t1, "hvstat_node_cpu_seconds_total", 5, node="beta", cpu="0", mode="user")
    # gamma: wrote last 400 s before t2, past the default window and the lookback.
    tg = t2 - 400
    for source in ("node", "containers"):
        w.add(tg, "hvstat_source_up", 1, node="gamma", source=source)
    w.add(tg, "hvstat_source_last_success_timestamp_seconds", tg, node="gamma", source="node")
    w.add(tg, "hvstat_container_info", 1, node="gamma", id="g1", state="running")
    w.add(tg, "hvstat_node_info", 1, node="gamma", url="javascript:alert(1)")
    return w


@pytest.fixture(params=engines.PARAMS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[engines.Engine]:
    (tmp_path / "engine").mkdir()
    with engines.engine(request.param, tmp_path / "engine", free_port()) as e:
        yield e


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_nodes_and_history_from_known_series(engine: engines.Engine) -> None:
    base = math.floor(time.time() / 10) * 10 - 30  # a multiple of the steps below: history points fall on multiples of the step
    t2 = base + 20
    fleet_series(base).send(engine.write_url)
    # Before any query: VictoriaMetrics caches a search that found no series for a few seconds.
    engine.flush()

    async def nodes(at: float, within: float, **settings: Any) -> FleetNodeList:
        view = FleetView(FleetSettings(query_url=engine.base, **settings))
        try:
            return await view.nodes(at, within)
        finally:
            await view.aclose()

    # VictoriaMetrics makes new series searchable within a second or two.
    deadline = time.monotonic() + 30
    while len((got := _run(nodes(t2 + 1, 300))).nodes) < 2:
        assert time.monotonic() < deadline, (got, engine.log())
        time.sleep(0.3)
    engine.flush()
    got = _run(nodes(t2 + 1, 300))
    assert [n.name for n in got.nodes] == ["alpha", "beta"], got
    alpha, beta = got.nodes
    assert got.within == 300 and got.timestamp == t2 + 1 and got.engine == engine.base
    assert alpha.last_seen == t2 - 0.25
    assert alpha.labels == {"rack": "r7", "url": "http://alpha.example:9106/"} and alpha.url == "http://alpha.example:9106/"
    assert alpha.machine_id == "0123456789abcdef0123456789abcdef"
    # busy (user, nice, system, irq, softirq, steal; guest is in user) over busy + idle + iowait.
    busy = sum(m[k] for m in (CPU0, CPU1) for k in ("user", "nice", "system", "irq", "softirq", "steal"))
    total = busy + sum(m[k] for m in (CPU0, CPU1) for k in ("idle", "iowait"))
    assert alpha.cpu_usage == pytest.approx(100 * busy / total, rel=1e-12)
    assert alpha.memory_used_bytes == 4 << 30 and alpha.memory_total_bytes == 16 << 30 and alpha.memory_usage == 25.0
    assert alpha.disk_usage == 30.0
    assert (alpha.load_average_1m, alpha.load_average_5m, alpha.load_average_15m) == (4.0, 1.5, 1.25)
    assert (alpha.containers, alpha.vms, alpha.vms_running, alpha.alerts_firing) == (2, 2, 1, 3)
    assert alpha.unavailable == {}, alpha.unavailable
    assert beta.last_seen == base + 10 and beta.labels == {} and beta.url is None and beta.machine_id is None
    assert beta.memory_usage == 25.0 and beta.cpu_usage is None and beta.disk_usage is None
    assert (beta.containers, beta.vms, beta.vms_running, beta.alerts_firing) == (None, None, None, None)
    assert set(beta.unavailable) == {"labels", "cpu_usage", "disk_usage", "load_average_1m", "containers", "vms", "vms_running", "alerts_firing"}, beta.unavailable
    # A window of 600 s takes in gamma, which wrote 400 s ago: past the lookback, its guest count
    # is unknown (null with the reason), not 0; its url label is not an http(s) URL.
    wide = _run(nodes(t2 + 1, 600))
    gamma = {n.name: n for n in wide.nodes}["gamma"]
    assert gamma.last_seen == t2 - 400 and gamma.containers is None and "lookback" in gamma.unavailable["containers"]
    assert 400 > LOOKBACK and gamma.url is None and gamma.labels == {"url": "javascript:alert(1)"}
    # Looking from before alpha's last sample, it is what it was then.
    earlier = {n.name: n for n in _run(nodes(base + 15, 300)).nodes}["alpha"]
    assert earlier.memory_used_bytes == 2 << 30 and earlier.containers == 3 and earlier.cpu_usage is None

    async def history(name: str, since: float, until: float, step: float | None, fields: list[str], lookback: float = 60) -> FleetHistory:
        view = FleetView(FleetSettings(query_url=engine.base, lookback=lookback))
        try:
            return await view.history(name, since, until, step, fields)
        finally:
            await view.aclose()

    h = _run(history("alpha", base - 10, t2 + 10, 5, ["memory_used_bytes", "memory_usage", "cpu_usage", "disk_usage", "load_average_1m"], lookback=12))
    assert h.timestamps == [base - 10 + 5 * i for i in range(9)] and h.window == 12
    # The newest sample in (t - 12 s, t]; CPU where two samples are in it (at base+20 only).
    used = {0: 1 << 30, 10: 2 << 30, 20: 4 << 30}
    expected = [next((float(v) for dt, v in sorted(used.items(), reverse=True) if t - 12 < base + dt <= t), None) for t in h.timestamps]
    assert h.series["memory_used_bytes"] == expected, (h.series, expected)
    assert h.series["memory_usage"] == [None if v is None else v / (16 << 30) * 100 for v in expected]
    cpu = pytest.approx(100 * busy / total, rel=1e-12)
    # VictoriaMetrics' irate also takes the sample just before the window as the previous one
    # (its rollups do), so after base+20 it still has two while the newer is in the window.
    vm = engine.name == "victoriametrics"
    assert h.series["cpu_usage"] == [None] * 6 + [cpu, cpu if vm else None, cpu if vm else None]
    assert h.series["disk_usage"] == [None] * 6 + [30.0, 30.0, 30.0]
    # No step: at most 300 steps; an unknown node: 404; too many points: 400.
    h = _run(history("alpha", base - 3000, t2, None, ["load_average_1m"]))
    # The points are the step's multiples within the range: 274 or 275 of them, by where they fall.
    multiples = math.floor(t2 / h.step) - math.ceil((base - 3000) / h.step) + 1
    assert h.step == math.ceil(3020 / 300) and len(h.timestamps) == len(h.series["load_average_1m"]) == multiples
    assert all(t % h.step == 0 and base - 3000 <= t <= t2 for t in h.timestamps)
    with pytest.raises(Exception, match="no such node"):
        _run(history("nobody", base, t2, 5, ["cpu_usage"]))
    with pytest.raises(Exception, match="too many points"):
        _run(history("alpha", 0, t2, 1, ["cpu_usage"]))


def test_the_routes_answer_from_the_engine(engine: engines.Engine) -> None:
    """The same through the REST routes of an app whose [fleet] query_url is the engine: the
    bodies decode as the documented types."""
    base = math.floor(time.time() / 10) * 10 - 30  # a multiple of the steps below: history points fall on multiples of the step
    fleet_series(base).send(engine.write_url)
    # Before any query: VictoriaMetrics caches a search that found no series for a few seconds.
    engine.flush()
    with TestClient(create_app(_settings(engine.base))) as c:
        deadline = time.monotonic() + 30
        while len((r := c.get("/api/fleet/nodes")).json().get("nodes", [])) < 2:
            assert r.status_code == 200 and time.monotonic() < deadline, r.text
            time.sleep(0.3)
        body = msgspec.convert(r.json(), FleetNodeList)
        assert [n.name for n in body.nodes] == ["alpha", "beta"]
        r = c.get("/api/fleet/nodes/alpha/history", params={"since": base, "until": base + 20, "step": 10, "fields": "memory_used_bytes"})
        h = msgspec.convert(r.json(), FleetHistory)
        assert h.timestamps == [base, base + 10, base + 20] and h.series == {"memory_used_bytes": [1 << 30, 2 << 30, 4 << 30]}
        _error(c.get("/api/fleet/nodes/nobody/history"), 404, "no such node")


# --- three real nodes writing to one engine ---------------------------------------------------------

RUNC_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "hosts" / "cgroup-hybrid-6.18-runc"
INTERVAL = 0.5


def node_config(name: str, rack: str, engine: engines.Engine, workdir: Path, *, containers: bool, rule: str | None, fleet: bool) -> str:
    """A node sampling every 0.5 s and writing to ``engine`` every 0.5 s. ``containers``: the
    container source on the recorded runc host (one container, always the same); else off.
    ``rule``: an alert rule's condition on node.memory_usage. ``fleet``: this node serves the
    fleet view of ``engine``."""
    lines = [
        "[server]",
        f'node_name = "{name}"',
        "[monitoring]",
        f"node_metrics_interval = {INTERVAL}",
        "vm_metrics_interval = 1",
        "[vms]",
        "enabled = false",
        "[processes]",
        "enabled = false",
        "[containers]",
    ]
    if containers:
        lines += [f'{k} = "{RUNC_FIXTURE / v}"' for k, v in (("proc_root", "proc"), ("sys_root", "sys"), ("rootfs", "."))]
        lines += [f'{k} = "{workdir / "meta" / k}"' for k in ("docker_root", "podman_root", "pods_log_root", "pve_root")]
    else:
        lines.append("enabled = false")
    lines += ["[remote_write]", "enabled = true", f'url = "{engine.write_url}"', f'buffer_dir = "{workdir / "buffer"}"', f"interval = {INTERVAL}"]
    lines += ["[labels]", f'rack = "{rack}"', f'url = "http://{name}.invalid:9106/"']
    if rule is not None:
        op, threshold = rule.split()
        lines += ["[alerts]", "enabled = true", "[[alerts.rules]]", 'name = "memory"', 'metric = "node.memory_usage"', f'op = "{op}"', f"threshold = {threshold}", 'severity = "low"']
    if fleet:
        # lookback 1 s: two or three of a node's samples at each history point.
        lines += ["[fleet]", f'query_url = "{engine.base}"', "within = 60", "lookback = 1"]
    return "\n".join(lines) + "\n"


def metrics_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in parse_text(text) for s in f.samples}


def one(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    got = [v for (n, ls), v in values.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(got) == 1, (name, labels, got)
    return got[0]


def node_history(base: str, since: float) -> dict[str, Any]:
    r = httpx.get(f"{base}/api/monitoring/node/history", params={"since": since, "fields": "cpu_usage,memory_usage,disk_usage,load_average_1m"}, timeout=10)
    body: dict[str, Any] = r.json()
    assert r.status_code == 200 and body["resolution"] == "full", body
    return body


def consecutive_pins(base: str) -> tuple[tuple[float, str], tuple[float, str]]:
    """Two /metrics scrapes of two consecutive node samples (no sample between them in the
    node's own history), each pinned to its sample (test_remote_write.node_sample_pinned)."""
    deadline = time.monotonic() + 60
    while True:
        first = node_sample_pinned(base)
        second = first
        while second[0] == first[0]:
            time.sleep(0.05)
            second = node_sample_pinned(base)
        stamps = node_history(base, first[0] - 1)["timestamps"]
        if first[0] in stamps and second[0] in stamps and stamps.index(second[0]) == stamps.index(first[0]) + 1:
            return first, second
        assert time.monotonic() < deadline, "no two consecutive samples pinned"


def cpu_between(before: str, after: str) -> float:
    """CPU busy percent between two scrapes: the busy modes' seconds over busy + idle + iowait,
    summed over the CPUs (what the fleet view computes)."""
    busy_modes = {"user", "nice", "system", "irq", "softirq", "steal"}

    def sums(text: str) -> tuple[float, float]:
        b = t = 0.0
        for (name, labels), v in metrics_values(text).items():
            mode = dict(labels).get("mode")
            if name == "hvstat_node_cpu_seconds_total" and mode in busy_modes | {"idle", "iowait"}:
                t += v
                b += v if mode in busy_modes else 0.0
        return b, t

    (b0, t0), (b1, t1) = sums(before), sums(after)
    return 100 * (b1 - b0) / (t1 - t0)


def fleet_at(view: str, eng: engines.Engine, name: str, t: float) -> dict[str, Any]:
    """``name`` in GET /api/fleet/nodes?time=t once the engine holds the node's sample of time
    ``t`` (remote write sends every 0.5 s; VictoriaMetrics shows new samples within a second)."""
    t_ms = round(t * 1000)

    def stored() -> bool:
        eng.flush()
        got = eng.query(f'timestamp(hvstat_node_memory_used_bytes{{node="{name}"}})', time=f"{t_ms / 1000:.3f}")
        return bool(got) and round(float(got[0]["value"][1]) * 1000) == t_ms

    wait_ready(stored, f"{name}'s sample at {t} in {eng.name}", every=0.25, timeout=20, log=eng.log)
    r = httpx.get(f"{view}/api/fleet/nodes", params={"time": f"{t_ms / 1000:.3f}"}, timeout=10)
    assert r.status_code == 200, r.text
    nodes = {n["name"]: n for n in r.json()["nodes"]}
    assert name in nodes, (name, sorted(nodes))
    node: dict[str, Any] = nodes[name]
    return node


@pytest.mark.server
@pytest.mark.parametrize("engine_name", engines.PARAMS)
def test_three_nodes_in_the_fleet_view(tmp_path: Path, engine_name: str) -> None:
    """Three ``hvstat serve`` with their own node names and labels write to one engine; the first
    also serves the fleet view of it. At the moment of a node's sample (its /metrics pinned to
    that sample), GET /api/fleet/nodes?time=<that sample> gives that node's numbers as its own
    /metrics has them; its history gives, at each step, the node's own history sample that was
    newest then."""
    tag = uuid.uuid4().hex[:8]
    names = [f"fleet-{tag}-{x}" for x in ("a", "b", "c")]
    (tmp_path / "engine").mkdir()
    with contextlib.ExitStack() as stack:
        eng = stack.enter_context(engines.engine(engine_name, tmp_path / "engine", free_port()))
        bases = []
        for i, (name, containers, rule) in enumerate(zip(names, (False, True, False), ("> 0", None, "> 100.5"), strict=True)):
            d = tmp_path / name
            d.mkdir()
            config = node_config(name, f"r{i}", eng, d, containers=containers, rule=rule, fleet=i == 0)
            bases.append(stack.enter_context(running_server(d, config)))
        view = bases[0]

        def listed() -> dict[str, Any] | None:
            eng.flush()
            body: dict[str, Any] = httpx.get(f"{view}/api/fleet/nodes", timeout=10).json()
            nodes = {n["name"]: n for n in body["nodes"]}
            ready = set(names) <= set(nodes) and all(nodes[n]["cpu_usage"] is not None and "labels" not in nodes[n]["unavailable"] for n in names)
            return nodes if ready else None

        nodes = wait_ready(listed, "three nodes in the fleet view", every=0.25, log=eng.log)
        machine_id = read_machine_id().value
        for i, name in enumerate(names):
            n = nodes[name]
            assert n["labels"] == {"rack": f"r{i}", "url": f"http://{name}.invalid:9106/"} and n["url"] == f"http://{name}.invalid:9106/"
            assert n["machine_id"] == machine_id
            assert n["vms"] is None and "vms" in n["unavailable"]

        for i, (name, base) in enumerate(zip(names, bases, strict=True)):
            (t1, before), (t2, text) = consecutive_pins(base)
            mine = metrics_values(text)
            n = fleet_at(view, eng, name, t2)
            assert n["memory_total_bytes"] == one(mine, "hvstat_node_memory_total_bytes")
            used, total = one(mine, "hvstat_node_memory_used_bytes"), one(mine, "hvstat_node_memory_total_bytes")
            assert n["memory_usage"] == used / total * 100
            fs_used, fs_avail = one(mine, "hvstat_node_filesystem_used_bytes", mountpoint="/"), one(mine, "hvstat_node_filesystem_avail_bytes", mountpoint="/")
            assert n["disk_usage"] == fs_used / (fs_used + fs_avail) * 100
            for key, series in (("load_average_1m", "hvstat_node_load1"), ("load_average_5m", "hvstat_node_load5"), ("load_average_15m", "hvstat_node_load15")):
                assert n[key] == one(mine, series), key
            assert n["cpu_usage"] == pytest.approx(cpu_between(before, text), rel=1e-9, abs=1e-9)
            # The node's own numbers of that sample: memory and disk are the same percentages.
            own = node_history(base, t2 - 5)
            k = own["timestamps"].index(t2)
            assert n["memory_usage"] == own["series"]["memory_usage"][k] and n["disk_usage"] == own["series"]["disk_usage"][k]
            assert t2 - 3 < n["last_seen"] <= t2 + 1
            containers = [v for (name_, _), v in mine.items() if name_ == "hvstat_container_info"]
            if i == 1:
                assert n["containers"] == len(containers) == 1
            else:
                assert n["containers"] is None and not containers and "containers" in n["unavailable"]
            firing = [v for (name_, _), v in mine.items() if name_ == "hvstat_alerts_firing"]
            assert n["alerts_firing"] == (sum(firing) if firing else None) == {0: 1, 1: None, 2: 0}[i]

            # History: each point at a multiple of 0.5 s is the node's newest own sample in the
            # window (lookback 1 s) before it.
            r = httpx.get(f"{view}/api/fleet/nodes/{name}/history", params={"since": t2 - 3, "until": t2, "step": INTERVAL}, timeout=10)
            h = r.json()
            assert r.status_code == 200 and h["window"] == 1 and h["step"] == INTERVAL, h
            stamps_ms = [round(t * 1000) for t in own["timestamps"]]
            for j, p in enumerate(h["timestamps"]):
                p_ms = round(p * 1000)
                newest = max((x for x, t in enumerate(stamps_ms) if p_ms - 1000 < t <= p_ms), default=None, key=lambda x: stamps_ms[x])
                for field in ("memory_usage", "disk_usage", "load_average_1m"):
                    want = None if newest is None else own["series"][field][newest]
                    assert h["series"][field][j] == want, (field, p, want, h["series"][field][j])
                in_window = sum(p_ms - 1000 < t <= p_ms for t in stamps_ms)
                if in_window == 0 or in_window >= 2:  # CPU needs two (VictoriaMetrics: one, and one before)
                    assert (h["series"]["cpu_usage"][j] is None) == (in_window == 0), (p, in_window, h["series"]["cpu_usage"][j])
