"""GET /metrics: the exposition itself (parsed by prometheus_client's parsers, compared with the
samples it was rendered from), the route, and a REAL Prometheus scraping a real ``hvstat serve``
that samples a real cgroup with a busy process in it; plus ``promtool check metrics``.

The samples rendered in the unit tests are real: this machine's node sample, and the container of
the recorded runc fixture tree (tests/fixtures/hosts/cgroup-hybrid-6.18-runc) as the core samples
it, with copies changed where a test needs a particular value (a hostile name, a null, "max").
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import re
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.testclient import TestClient

import virt
from conftest import free_port, running_server
from helpers import FIXTURE_HOSTS, WAIT_SECS, http_ok, wait_ready
from hvstat import __version__
from hvstat import exposition as P
from hvstat._core import ContainerSampler, NodeSampler
from hvstat._core import __version__ as CORE_VERSION
from hvstat.api.prometheus import wants_openmetrics
from hvstat.app import create_app
from hvstat.config import MonitoringSettings, Settings
from hvstat.models import ContainerMetrics, NodeMetrics, SourceHealth, containers_sample_decoder, node_metrics_decoder
from hvstat.settings import StorageSettings

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "prometheus.md"
RUNC_FIXTURE = FIXTURE_HOSTS / "cgroup-hybrid-6.18-runc"
# The exposition formats' grammar for names (Prometheus data model; OpenMetrics 1.0 ABNF).
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
HOSTILE = 'evil "quoted" \\back\\slash\\ and\nnew line\\n, {braces}=,'
# What Prometheus 2.42 sends when it scrapes (scrape/scrape.go, scrapeAcceptHeader).
PROMETHEUS_ACCEPT = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


# --- real samples to render ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> NodeMetrics:
    s = NodeSampler()
    s.prime()
    time.sleep(0.3)
    return node_metrics_decoder.decode(s.sample())


@pytest.fixture(scope="module")
def recorded() -> ContainerMetrics:
    """The recorded runc container: memory limit 128 MiB, CPU quota 0.5, pids.max 64, block I/O, PSI."""
    cfg = {"proc_root": str(RUNC_FIXTURE / "proc"), "sys_root": str(RUNC_FIXTURE / "sys"), "rootfs": str(RUNC_FIXTURE)}
    (c,) = containers_sample_decoder.decode(ContainerSampler(json.dumps(cfg)).sample()).containers
    assert isinstance(c.memory_limit_bytes, int) and isinstance(c.pids_max, int), "the fixture's limits changed"
    return c


def _variant(c: ContainerMetrics, suffix: str, **changes: Any) -> ContainerMetrics:
    cid = (c.id[: 64 - len(suffix)] + suffix) if suffix else c.id
    return msgspec.structs.replace(c, id=cid, cgroup_path=f"/docker/{cid}", **changes)


@dataclass(frozen=True)
class Case:
    node: NodeMetrics
    limited: ContainerMetrics  # the recorded container as sampled (numeric limits, host net unknown)
    unlimited: ContainerMetrics  # limits "max", own netns with traffic, one null field
    hostile: ContainerMetrics  # a name with quote, backslash and newline
    sources: list[SourceHealth]

    @property
    def containers(self) -> list[ContainerMetrics]:
        return [self.limited, self.unlimited, self.hostile]

    def render(self, openmetrics: bool = False) -> str:
        return P.render(self.node, self.containers, self.sources, __version__, openmetrics=openmetrics).decode()


@pytest.fixture(scope="module")
def case(node: NodeMetrics, recorded: ContainerMetrics) -> Case:
    now = time.time()
    return Case(
        node=node,
        limited=recorded,
        unlimited=_variant(
            recorded,
            "aa",
            name="unlimited",
            memory_limit_bytes="max",
            pids_max="max",
            cpu_limit_cores=None,
            memory_rss_bytes=None,
            network_mode="own",
            network_rx_bytes=123456789,
            network_tx_bytes=987654,
            network_rx_packets=1000,
            network_tx_packets=900,
            network_rx_errors=0,
            network_tx_errors=0,
            network_rx_dropped=3,
            network_tx_dropped=0,
        ),
        hostile=_variant(recorded, "bb", name=HOSTILE),
        sources=[
            SourceHealth(name="node", status="ok", interval_secs=1.0, last_success=now, last_attempt=now, last_duration_secs=0.0002),
            SourceHealth(
                name="containers", status="degraded", interval_secs=1.0, last_success=now - 3, last_attempt=now, last_duration_secs=5.0, consecutive_failures=2, error="x"
            ),
        ],
    )


def families(text: str, openmetrics: bool = False) -> dict[str, Any]:
    """The parsed families by name (the parsers drop _total from counter families)."""
    parse = parse_openmetrics if openmetrics else parse_text
    return {f.name: f for f in parse(text)}


def series(text: str, openmetrics: bool = False) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for f in (parse_openmetrics if openmetrics else parse_text)(text):
        for s in f.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def values(text: str, name: str, **labels: str) -> list[float]:
    """Values of the series called ``name`` whose labels include ``labels``."""
    return [v for (n, ls), v in series(text).items() if n == name and set(labels.items()) <= set(ls)]


def one(text: str, name: str, **labels: str) -> float:
    vs = values(text, name, **labels)
    assert len(vs) == 1, f"{name}{labels}: {len(vs)} series"
    return vs[0]


# --- the exposition ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_text_format_parses_with_help_and_type_for_every_family(case: Case) -> None:
    text = case.render()
    assert text.endswith("\n") and "# EOF" not in text
    fams = families(text)
    assert len(fams) > 50
    for name, f in fams.items():
        assert f.documentation, f"{name}: no HELP"
        assert f.type in ("counter", "gauge"), f"{name}: TYPE {f.type}"
        assert f.samples, f"{name}: a family without samples"
    # In the raw text, each family is HELP then TYPE, once, before its samples.
    headers = re.findall(r"^# HELP (\S+) .*\n# TYPE (\S+) (\S+)$", text, re.M)
    assert all(h == t for h, t, _ in headers)
    names = [h for h, _, _ in headers]
    assert len(names) == len(set(names)) == text.count("# HELP ") == text.count("# TYPE ")
    sample_names = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    assert sample_names == set(names), "a sample without its HELP/TYPE or a header without samples"


@pytest.mark.unit
def test_counters_end_in_total_and_nothing_else_does(case: Case) -> None:
    for f in parse_text(case.render()):
        for s in f.samples:
            if f.type == "counter":
                assert s.name.endswith("_total"), s.name
            else:
                assert not s.name.endswith("_total"), f"gauge {s.name} ends in _total"
    for fam in P.FAMILIES:
        assert fam.name.endswith("_total") == (fam.kind == "counter"), fam.name


@pytest.mark.unit
def test_names_and_label_names_are_valid(case: Case) -> None:
    for f in parse_text(case.render()):
        for s in f.samples:
            assert METRIC_NAME.match(s.name) and s.name.startswith("hvstat_"), s.name
            for label in s.labels:
                assert LABEL_NAME.match(label) and not label.startswith("__"), label
    for fam in P.FAMILIES:
        assert METRIC_NAME.match(fam.name)
        assert all(LABEL_NAME.match(label) for label in fam.labels)


@pytest.mark.unit
def test_openmetrics_parses_and_equals_the_text_format(case: Case) -> None:
    om = case.render(openmetrics=True)
    assert om.endswith("# EOF\n")
    fams = families(om, openmetrics=True)
    for name, f in fams.items():
        assert f.documentation and f.type in ("counter", "gauge", "info"), name
    assert fams["hvstat_node_cpu_seconds"].type == "counter"
    assert fams["hvstat_build"].type == "info" and fams["hvstat_container"].type == "info"
    assert series(om, openmetrics=True) == series(case.render())


@pytest.mark.unit
def test_node_values_equal_the_sample(case: Case) -> None:
    text, node = case.render(), case.node
    assert node.cpu is not None and node.memory is not None
    got = {(dict(ls)["cpu"], dict(ls)["mode"]): v for (n, ls), v in series(text).items() if n == "hvstat_node_cpu_seconds_total"}
    want = {
        (str(pc.cpu), mode): getattr(pc.seconds_total, mode)
        for pc in node.cpu.per_cpu
        for mode in P.CPU_MODES
        if getattr(pc.seconds_total, mode) is not None
    }
    assert got == want
    assert {m for _, m in got} >= {"user", "nice", "system", "idle", "guest", "guest_nice"}
    assert one(text, "hvstat_node_memory_total_bytes") == node.memory.total_bytes
    assert one(text, "hvstat_node_memory_available_bytes") == node.memory.available_bytes
    assert one(text, "hvstat_node_load1") == node.load_average_1m
    assert one(text, "hvstat_node_context_switches_total") == node.cpu.context_switches_total
    assert one(text, "hvstat_node_boot_time_seconds") == node.boot_time
    for d in node.disks:
        assert one(text, "hvstat_node_disk_read_bytes_total", device=d.name) == d.read_bytes_total
        assert one(text, "hvstat_node_disk_io_time_seconds_total", device=d.name) == d.io_time_secs_total
        assert one(text, "hvstat_node_disk_stacked", device=d.name) == int(d.stacked)
    for i in node.interfaces:
        assert one(text, "hvstat_node_network_receive_bytes_total", device=i.name, kind=i.kind) == i.rx_bytes_total
        assert one(text, "hvstat_node_network_transmit_drops_total", device=i.name) == i.tx_dropped_total
    for fs in node.filesystems:
        labels = {"mountpoint": fs.mount_point, "device": fs.device, "fstype": fs.fs_type}
        assert one(text, "hvstat_node_filesystem_size_bytes", **labels) == fs.size_bytes
        assert one(text, "hvstat_node_filesystem_readonly", **labels) == int(fs.read_only)
    if node.pressure is not None and node.pressure.cpu is not None:
        some = node.pressure.cpu.some
        assert one(text, "hvstat_node_pressure_stall_seconds_total", resource="cpu", kind="some") == pytest.approx(some.total_usec / 1e6, abs=1e-9)
        assert one(text, "hvstat_node_pressure_avg10_ratio", resource="cpu", kind="some") == pytest.approx(some.avg10 / 100, abs=1e-9)
    # Rates and percentages are not exported, and neither is what the sample has only as a rate.
    assert not [n for n, _ in series(text) if "per_sec" in n or "percent" in n or "page_faults" in n]


@pytest.mark.unit
def test_container_values_equal_the_sample(case: Case) -> None:
    text, c = case.render(), case.limited
    ident = {"id": c.id}
    assert one(text, "hvstat_container_cpu_seconds_total", **ident) == c.cpu_usage_secs_total
    assert one(text, "hvstat_container_cpu_throttled_periods_total", **ident) == c.cpu_throttled_periods_total
    assert one(text, "hvstat_container_memory_usage_bytes", **ident) == c.memory_usage_bytes
    assert one(text, "hvstat_container_memory_working_set_bytes", **ident) == c.memory_working_set_bytes
    assert one(text, "hvstat_container_memory_limit_bytes", **ident) == c.memory_limit_bytes == 128 << 20
    assert one(text, "hvstat_container_pids_limit", **ident) == c.pids_max == 64
    assert one(text, "hvstat_container_cpu_limit_cores", **ident) == c.cpu_limit_cores == 0.5
    assert one(text, "hvstat_container_block_written_bytes_total", **ident) == c.block_write_bytes
    assert one(text, "hvstat_container_block_reads_total", **ident) == c.block_read_ops
    info = series(text)
    key = ("hvstat_container_info", tuple(sorted({"id": c.id, "name": c.name, "runtime": c.runtime, "cgroup_path": c.cgroup_path, "state": c.state}.items())))
    assert info[key] == 1
    # Every per-container series carries exactly id, name and runtime (plus resource/kind for PSI).
    for (n, ls), _ in series(text).items():
        if n.startswith("hvstat_container_") and n != "hvstat_container_info":
            keys = [k for k, _ in ls]
            assert set(keys) - {"resource", "kind"} == {"id", "name", "runtime"}, (n, keys)
    assert c.pressure_memory is not None
    got = one(text, "hvstat_container_pressure_stall_seconds_total", id=c.id, resource="memory", kind="some")
    assert got == pytest.approx(c.pressure_memory.some.total_usec / 1e6, abs=1e-9)


@pytest.mark.unit
def test_nulls_and_max_limits_are_left_out(case: Case) -> None:
    text = case.render()
    u, limited = case.unlimited, case.limited
    # "max": no series at all (no +Inf, no 0, no -1) ...
    for name in ("hvstat_container_memory_limit_bytes", "hvstat_container_pids_limit", "hvstat_container_cpu_limit_cores"):
        assert values(text, name, id=u.id) == [], name
        assert len(values(text, name, id=limited.id)) == 1, name
    # ... and a null field likewise, while the container's other series are there.
    assert values(text, "hvstat_container_memory_rss_bytes", id=u.id) == []
    assert one(text, "hvstat_container_memory_usage_bytes", id=u.id) == u.memory_usage_bytes
    # Network series only for a container with its own network namespace.
    assert limited.network_mode != "own"
    assert not [n for (n, ls) in series(text) if "_network_" in n and ("id", limited.id) in ls]
    assert one(text, "hvstat_container_network_receive_bytes_total", id=u.id) == 123456789
    assert one(text, "hvstat_container_network_receive_drops_total", id=u.id) == 3
    # A node sample with nulls and without sensors: those series and families are absent.
    node = msgspec.structs.replace(case.node, load_average_5m=None, uptime_secs=None, temperatures=[])
    text = P.render(node, [], [], __version__).decode()
    assert not values(text, "hvstat_node_load5") and not values(text, "hvstat_node_uptime_seconds")
    assert "hvstat_node_temperature_celsius" not in text
    assert values(text, "hvstat_node_load1") == [case.node.load_average_1m]
    assert "hvstat_container_" not in text
    for v in series(text).values():
        assert math.isfinite(v)


@pytest.mark.unit
def test_hostile_label_values_round_trip(case: Case) -> None:
    for om in (False, True):
        text = case.render(openmetrics=om)
        names = {dict(ls).get("name") for (n, ls) in series(text, om) if n == "hvstat_container_memory_usage_bytes"}
        assert HOSTILE in names, f"openmetrics={om}: {names}"
        # The raw line is one line: the newline is escaped, quote and backslash too.
        assert 'name="evil \\"quoted\\" \\\\back\\\\slash\\\\ and\\nnew line\\\\n, {braces}=,"' in text
    node = msgspec.structs.replace(
        case.node,
        filesystems=[msgspec.structs.replace(case.node.filesystems[0], mount_point='/mnt/a"b\\c\nd')] if case.node.filesystems else [],
    )
    if node.filesystems:
        text = P.render(node, [], [], __version__).decode()
        mps = {dict(ls)["mountpoint"] for (n, ls) in series(text) if n == "hvstat_node_filesystem_size_bytes"}
        assert mps == {'/mnt/a"b\\c\nd'}


@pytest.mark.unit
def test_source_health_series() -> None:
    now = time.time()
    sources = [
        SourceHealth(name="node", status="ok", interval_secs=1.0, last_success=now, last_attempt=now, last_duration_secs=0.25),
        SourceHealth(name="containers", status="degraded", interval_secs=1.0, last_success=now - 2, last_attempt=now, last_duration_secs=5.0, consecutive_failures=2),
        # Never succeeded (its first tick failed): no last success, no duration yet.
        SourceHealth(name="vms", status="error", interval_secs=1.0, consecutive_failures=1),
    ]
    text = P.render(None, [], sources, "1.2.3").decode()
    assert one(text, "hvstat_source_up", source="node") == 1
    assert one(text, "hvstat_source_up", source="containers") == 0
    assert one(text, "hvstat_source_up", source="vms") == 0
    assert one(text, "hvstat_source_last_success_timestamp_seconds", source="containers") == now - 2
    assert one(text, "hvstat_source_consecutive_failures", source="containers") == 2
    assert values(text, "hvstat_source_last_success_timestamp_seconds", source="vms") == []
    assert one(text, "hvstat_build_info", version="1.2.3", core_version=CORE_VERSION, python=platform.python_version()) == 1
    assert "hvstat_node_" not in text  # no node sample yet: no node series, and no error either


@pytest.mark.unit
def test_every_family_is_documented() -> None:
    doc = DOC.read_text()
    missing = [f.name for f in P.FAMILIES if f"`{f.name}`" not in doc]
    assert not missing, f"not in {DOC.name}: {missing}"
    documented = set(re.findall(r"^\| `(hvstat_[a-z0-9_]+)`", doc, re.M))
    assert documented == {f.name for f in P.FAMILIES}, documented ^ {f.name for f in P.FAMILIES}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
        ("text/plain;version=0.0.4;q=0.5,*/*;q=0.1", False),
        ("application/openmetrics-text;q=0,text/plain", False),
        ("", False),
        ("*/*", False),
    ],
)
def test_content_negotiation(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


# --- the route -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(monitoring=MonitoringSettings(node_metrics_interval=1.0)))) as c:
        yield c


@pytest.mark.unit
def test_route(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == P.CONTENT_TYPE_TEXT
    fams = families(r.text)
    assert "hvstat_node_cpu_seconds" in fams and "hvstat_source_up" in fams
    assert one(r.text, "hvstat_source_up", source="node") == 1
    r = client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})
    assert r.headers["content-type"] == P.CONTENT_TYPE_OPENMETRICS
    assert r.text.endswith("# EOF\n")
    assert "hvstat_node_cpu_seconds" in families(r.text, openmetrics=True)
    assert client.get("/metrics?collect[]=cpu").status_code == 400
    assert "/metrics" in client.get("/").json()["endpoints"]
    doc = client.get("/openapi.json").json()
    assert "text/plain; version=0.0.4" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


@pytest.mark.unit
def test_storage_series_from_the_rollup_writer(tmp_path: Path) -> None:
    """[storage]'s series on /metrics come from the running RollupWriter's counters."""
    settings = Settings(monitoring=MonitoringSettings(node_metrics_interval=1.0), storage=StorageSettings(path=str(tmp_path / "history.db")))
    with TestClient(create_app(settings)) as c:
        w = c.app.state.hvstat.rollups  # type: ignore[attr-defined]
        w.flush()
        for _ in range(3):  # a bucket closing during the GET changes the counters: read again
            before = (w.counts.write_attempts, w.counts.bytes)
            text = c.get("/metrics").text
            if (w.counts.write_attempts, w.counts.bytes) == before:
                break
        assert one(text, "hvstat_storage_bytes") == w.counts.bytes > 0
        assert one(text, "hvstat_storage_write_seconds_total") == w.counts.write_seconds_sum >= 0
        assert one(text, "hvstat_storage_writes_total") == w.counts.write_attempts >= 1
        assert one(text, "hvstat_storage_errors_total") == 0
        om = c.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT}).text
        assert families(om, openmetrics=True)["hvstat_storage_write_seconds"].type == "counter"
    # Without [storage] there are none.
    assert b"hvstat_storage_" not in P.render(None, [], [], "1")


# --- promtool ------------------------------------------------------------------------------------------


def promtool_check(text: str) -> None:
    """``promtool check metrics`` (Prometheus's own parser and linter): parse errors fail, lint
    findings are reported as warnings."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not installed (Debian package prometheus; scripts/setup)")
    p = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True, timeout=WAIT_SECS)
    out = (p.stdout + p.stderr).strip()
    # promtool exits 1 on a parse error and 3 when only lint problems were found.
    assert p.returncode in (0, 3), f"promtool check metrics failed ({p.returncode}):\n{out}"
    if out:
        warnings.warn(f"promtool check metrics: {out}", stacklevel=2)


@pytest.mark.prometheus
def test_promtool_accepts_the_exposition(case: Case) -> None:
    promtool_check(case.render())


# --- a real Prometheus scraping a real hvstat ----------------------------------------------------------

# What Prometheus is given to scrape: every second, as the brief for this test says; a scrape must
# end within the interval.
SCRAPE_INTERVAL = "1s"
# The rate window: at 1 s scrapes it holds up to ten points, and rate() needs two.
RATE_WINDOW = "10s"


@dataclass
class Stack:
    hvstat: str
    prometheus: str
    container_id: str
    workdir: Path
    vm_uuid: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": promql}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", body
        return body["data"]["result"]

    def query_until(self, promql: str, ok: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT_SECS / 2
        while True:
            result = self.query(promql)
            if ok(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: {promql} -> {result}\nprometheus log:\n{self.log()}")
            time.sleep(0.5)

    def log(self) -> str:
        p = self.workdir / "prometheus.log"
        return p.read_text()[-4000:] if p.exists() else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Prometheus then flushes its head block and exits), SIGKILL if it does not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT_SECS / 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT_SECS / 2)


@contextlib.contextmanager
def prometheus_server(workdir: Path, target: str) -> Iterator[str]:
    """Debian's prometheus on a free loopback port, scraping ``target`` (host:port) every second,
    with its config and TSDB under ``workdir``; always stopped and reaped."""
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.skip("the prometheus binary is not installed (Debian package prometheus; scripts/setup)")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        "  - job_name: hvstat\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(workdir / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
        try:
            wait_ready(http_ok(f"{base}/-/ready"), "prometheus answering /-/ready", every=0.2, proc=proc, log=workdir / "prometheus.log")
            yield base
        finally:
            _stop(proc)


def wait_for_scrapes(prom: str, count: int, log: Callable[[], str]) -> dict[str, Any]:
    """Poll /api/v1/targets until the hvstat target is up and ``count`` distinct scrapes were seen
    (by lastScrape); returns the target."""
    seen: set[str] = set()
    deadline = time.monotonic() + WAIT_SECS
    target: dict[str, Any] = {}
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(seen)} successful scrapes within {WAIT_SECS}s; target: {target}\n{log()}")
        targets = httpx.get(f"{prom}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        target = next((t for t in targets if t["labels"].get("job") == "hvstat"), {})
        if target.get("health") == "up" and not target.get("lastScrape", "").startswith("0001"):
            seen.add(target["lastScrape"])
        time.sleep(0.2)
    return target


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, libvirt_uri: str) -> Iterator[Stack]:
    """A booted libvirt guest (tests/virt.py), a cgroup ``/docker/<64 hex>`` (v1 cpu, cpuacct, memory, blkio, pids and the v2 tree) with a
    busy loop the test started in it (tests/cgroups.py: the shell moves itself, then execs), a real
    ``hvstat serve`` sampling node and containers every second, and a real Prometheus scraping it
    every second. Everything is stopped and removed afterwards, also when a step fails."""
    import cgroups

    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (Debian package prometheus; scripts/setup)")
    reason = cgroups.why_no_cgroups()
    if reason:
        pytest.skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="hvstat-prom-"))
    cid = cgroups.hex_id()
    container = cgroups.FakeContainer(f"docker/{cid}", id=cid)
    try:
        with contextlib.ExitStack() as es:
            dom = es.enter_context(virt.libvirt_domain(mode="idle", vcpus=1))
            dom.wait_ready(60)
            container.create()
            # The loop's cgroup gets the top CPU weight: this 2-CPU machine is shared with other
            # work, and the rate must come out above 0 (see CPU_SHARES_MAX in test_containers_live).
            container.write("cpu", "cpu.shares", 262144)
            cgroups.expect_line(container.spawn(cgroups.py(cgroups.BUSY)), "ready")
            base = es.enter_context(
                running_server(
                    workdir,
                    env={"HVSTAT_MONITORING_NODE_METRICS_INTERVAL": "1", "HVSTAT_MONITORING_VM_METRICS_INTERVAL": "1"},
                )
            )
            prom = es.enter_context(prometheus_server(workdir, base.removeprefix("http://")))
            s = Stack(base, prom, cid, workdir, dom.uuid)
            target = wait_for_scrapes(prom, 2, s.log)
            assert target["lastError"] == "", target
            yield s
    finally:
        try:
            container.remove()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        left = cgroups.leftovers([cid])
        assert not left, f"left behind: {left}"


@pytest.mark.prometheus
@pytest.mark.server
@pytest.mark.libvirt
@pytest.mark.cgroups
def test_prometheus_rate_of_node_cpu_seconds(stack: Stack) -> None:
    node = httpx.get(f"{stack.hvstat}/api/monitoring/node/metrics", timeout=10).json()
    want = {
        (str(pc["cpu"]), mode)
        for pc in node["cpu"]["per_cpu"]
        for mode, v in pc["seconds_total"].items()
        if v is not None
    }
    result = stack.query_until(
        f"rate(hvstat_node_cpu_seconds_total[{RATE_WINDOW}])",
        lambda r: {(s["metric"]["cpu"], s["metric"]["mode"]) for s in r} == want,
        "a rate for every cpu and mode",
    )
    for s in result:
        assert s["metric"]["job"] == "hvstat", s
        # Seconds per second of one CPU: at most 1, plus what rate() extrapolates at the window's
        # edges from counters in 10 ms ticks.
        assert 0 <= float(s["value"][1]) <= 1.5, s
    busy = stack.query(f'sum(rate(hvstat_node_cpu_seconds_total{{mode!~"idle|iowait|guest|guest_nice"}}[{RATE_WINDOW}]))')
    assert float(busy[0]["value"][1]) > 0  # the busy loop runs right now


@pytest.mark.prometheus
@pytest.mark.server
@pytest.mark.libvirt
@pytest.mark.cgroups
def test_prometheus_sees_sources_up(stack: Stack) -> None:
    result = stack.query("hvstat_source_up")
    assert {s["metric"]["source"]: s["value"][1] for s in result} == {"node": "1", "containers": "1", "vms": "1", "processes": "1"}
    assert stack.query('up{job="hvstat"}')[0]["value"][1] == "1"


@pytest.mark.prometheus
@pytest.mark.server
@pytest.mark.libvirt
@pytest.mark.cgroups
def test_prometheus_rate_of_a_real_container(stack: Stack) -> None:
    promql = f'rate(hvstat_container_cpu_seconds_total{{id="{stack.container_id}"}}[{RATE_WINDOW}])'
    result = stack.query_until(promql, lambda r: len(r) == 1 and float(r[0]["value"][1]) > 0, "a rate > 0 for the busy container")
    (s,) = result
    assert s["metric"]["runtime"] == "docker" and s["metric"]["name"] == stack.container_id[:12]
    # A busy loop is one thread: at most one core, with room for rate()'s extrapolation at the
    # window's edges.
    assert float(s["value"][1]) <= 1.5
    mem = stack.query(f'hvstat_container_memory_usage_bytes{{id="{stack.container_id}"}}')
    assert len(mem) == 1 and float(mem[0]["value"][1]) > 0
    info = stack.query(f'hvstat_container_info{{id="{stack.container_id}"}}')
    assert info[0]["metric"]["cgroup_path"] == f"/docker/{stack.container_id}"


@pytest.mark.prometheus
@pytest.mark.server
@pytest.mark.libvirt
@pytest.mark.cgroups
def test_prometheus_rate_of_a_real_vm(stack: Stack) -> None:
    """A booted TCG guest under libvirt: its CPU counter rises, so rate() is above 0, and its
    per-vCPU series carry the vcpu label."""
    promql = f'rate(hvstat_vm_cpu_seconds_total{{vm="{stack.vm_uuid}"}}[{RATE_WINDOW}])'
    (s,) = stack.query_until(promql, lambda r: len(r) == 1 and float(r[0]["value"][1]) > 0, "a rate > 0 for the VM")
    assert s["metric"]["name"].startswith("hvstat-test-")
    assert float(s["value"][1]) <= 2.5  # the QEMU process: one vCPU thread plus emulator threads
    vcpu = stack.query(f'hvstat_vm_vcpu_seconds_total{{vm="{stack.vm_uuid}"}}')
    assert [x["metric"]["vcpu"] for x in vcpu] == ["0"]
    info = stack.query(f'hvstat_vm_info{{vm="{stack.vm_uuid}"}}')
    assert (info[0]["metric"]["origin"], info[0]["metric"]["status"]) == ("libvirt", "running")


@pytest.mark.prometheus
@pytest.mark.server
@pytest.mark.libvirt
@pytest.mark.cgroups
def test_promtool_accepts_the_served_exposition(stack: Stack) -> None:
    r = httpx.get(f"{stack.hvstat}/metrics", timeout=10)
    assert r.status_code == 200
    assert stack.container_id in r.text
    promtool_check(r.text)


@pytest.mark.prometheus
@pytest.mark.server
@pytest.mark.libvirt
@pytest.mark.cgroups
def test_prometheus_scraped_openmetrics(stack: Stack) -> None:
    """Prometheus asks for OpenMetrics first and hvstat answers with it: the metadata Prometheus
    keeps is that of the OpenMetrics families (named without _total / _info, info typed as info),
    not the 0.0.4 ones."""
    meta = httpx.get(f"{stack.prometheus}/api/v1/metadata", timeout=10).json()["data"]
    assert meta.get("hvstat_node_cpu_seconds", [{}])[0].get("type") == "counter", sorted(meta)[:20]
    assert meta.get("hvstat_build", [{}])[0].get("type") == "info"
    assert meta.get("hvstat_container", [{}])[0].get("type") == "info"
    assert meta["hvstat_node_memory_total_bytes"][0]["help"] == "Memory: MemTotal, bytes."
    assert "hvstat_node_cpu_seconds_total" not in meta


@pytest.mark.server
def test_websocket_hub_series_count_real_clients(serve: str) -> None:
    """A real /ws client is counted in hvstat_ws_clients while it is connected, and not after."""
    import asyncio

    import websockets

    async def run() -> tuple[float, float, float]:
        async with websockets.connect(serve.replace("http", "ws", 1) + "/ws") as ws:
            await ws.recv()  # hello
            text = await asyncio.to_thread(lambda: httpx.get(f"{serve}/metrics", timeout=10).text)
            connected = one(text, "hvstat_ws_clients")
            encoded = one(text, "hvstat_ws_messages_encoded_total")
        for _ in range(50):
            text = await asyncio.to_thread(lambda: httpx.get(f"{serve}/metrics", timeout=10).text)
            if one(text, "hvstat_ws_clients") == connected - 1:
                break
            await asyncio.sleep(0.1)
        return connected, one(text, "hvstat_ws_clients"), encoded

    connected, after, encoded = asyncio.run(run())
    assert connected >= 1 and after == connected - 1
    assert encoded >= 1  # at least this client's hello
