"""packaging/: the systemd unit (systemd-analyze verify and security, and whether its capabilities
really let an unprivileged user read what hvstat reads), the example config (every key of Settings,
and the defaults it shows are the defaults), and the Grafana dashboard (every series it queries is
one /metrics exports; every query parses)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from conftest import free_port
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready
from hvstat.config import Settings, load_settings
from hvstat.exposition import FAMILIES
from hvstat.settings import StorageSettings, default_storage_path

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "packaging" / "hvstat.service"
EXAMPLE = REPO / "packaging" / "hvstat.toml"
DASHBOARD = REPO / "packaging" / "grafana-dashboard.json"
OPERATIONS = REPO / "docs" / "operations.md"

# scripts/setup installs the systemd package; its tools work offline, without systemd as PID 1.
needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


# --- the systemd unit ------------------------------------------------------------------------------


def unit_as_installed(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this hvstat (verify checks that the binary exists)."""
    exe = hvstat_exe()
    assert len(exe) == 1 and Path(exe[0]).is_file(), f"no installed hvstat console script: {exe}"
    text = UNIT.read_text()
    assert "ExecStart=/opt/hvstat/bin/hvstat serve" in text
    out = tmp_path / "hvstat.service"
    out.write_text(text.replace("/opt/hvstat/bin/hvstat", exe[0]))
    return out


def unit_values(key: str) -> list[str]:
    """The values of ``key=`` lines of the unit, each split on whitespace."""
    return [v for line in UNIT.read_text().splitlines() if line.startswith(f"{key}=") for v in line.split("=", 1)[1].split()]


@pytest.mark.unit
@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit_as_installed(tmp_path))], capture_output=True, text=True, timeout=WAIT_SECS
    )
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@pytest.mark.unit
@needs_systemd_analyze
def test_unit_security_score_is_the_one_recorded_in_operations_md() -> None:
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)], capture_output=True, text=True, timeout=WAIT_SECS
    )
    assert r.returncode == 0, r.stderr
    m = re.search(r"Overall exposure level for hvstat\.service: (\d+\.\d+) (\w+)", r.stdout)
    assert m, r.stdout
    score = float(m[1])
    assert score <= 3.0, f"exposure {score} {m[2]}:\n{r.stdout}"
    recorded = re.search(r"Overall exposure level for hvstat\.service: (\d+\.\d+)", OPERATIONS.read_text())
    assert recorded and float(recorded[1]) == score, f"docs/operations.md records {recorded and recorded[1]}, the unit scores {score}"


@pytest.mark.unit
def test_unit_hardening_keys() -> None:
    """The settings issue 6 asks for, and the capabilities the service keeps are the ones it is given."""
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "PrivateTmp": "yes",
        "DynamicUser": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
    }.items():
        assert unit_values(key) == [value], key
    assert unit_values("LimitNOFILE") == ["1048576"]
    caps = set(unit_values("AmbientCapabilities"))
    assert caps == set(unit_values("CapabilityBoundingSet")) == {"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}
    # CAP_SYS_PTRACE is kept for /proc's access checks only: the calls that attach are filtered.
    denied = set(unit_values("SystemCallFilter")) - {"@system-service"}
    assert {"~@privileged", "@debug", "process_vm_readv", "process_vm_writev"} <= denied, denied


def setpriv(caps: set[str]) -> list[str]:
    """Run as nobody with exactly ``caps`` (ambient, so they survive exec), as the unit does."""
    names = ",".join("+" + c.removeprefix("CAP_").lower() for c in sorted(caps))
    spec = f"-all,{names}" if names else "-all"
    return [
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        f"--inh-caps={spec}", f"--ambient-caps={spec}", f"--bounding-set={spec}", "--no-new-privs",
    ]  # fmt: skip


needs_root_and_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv (util-linux) to switch users"
)

READ_OTHER_PROCESS = """
import json, sys
from hvstat._core import VmSampler
obs = {"vms": [{"id": "x", "name": "x", "origin": "qmp", "status": "running", "pid": int(sys.argv[1]), "nics": None}]}
vm = json.loads(VmSampler().sample(json.dumps(obs).encode()))["vms"][0]
print(json.dumps({"read_bytes": vm["process"]["read_bytes"], "why": vm["unavailable"].get("process.read_bytes")}))
"""


@contextlib.contextmanager
def root_process() -> Iterator[int]:
    """A process of root's standing in for QEMU (QEMU runs as root or its own user)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdin=subprocess.DEVNULL)
    try:
        yield p.pid
    finally:
        p.kill()
        p.wait(timeout=WAIT_SECS)


@pytest.mark.root
@needs_root_and_setpriv
def test_unit_capabilities_let_its_user_read_another_users_process_files() -> None:
    """With the unit's capabilities, a user of its own reads /proc/<pid>/io of root's process (QEMU's
    disk bytes); with one fewer (no CAP_SYS_PTRACE) it cannot: the set is needed, not just enough."""
    caps = set(unit_values("AmbientCapabilities"))

    def read(with_caps: set[str], pid: int) -> dict[str, Any]:
        r = subprocess.run(
            [*setpriv(with_caps), sys.executable, "-c", READ_OTHER_PROCESS, str(pid)],
            capture_output=True, text=True, timeout=WAIT_SECS, env=clean_env(), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    with root_process() as pid:
        got = read(caps, pid)
        assert isinstance(got["read_bytes"], int) and got["why"] is None, got
        without_ptrace = read(caps - {"CAP_SYS_PTRACE"}, pid)
        assert without_ptrace["read_bytes"] is None and "Permission denied" in without_ptrace["why"], without_ptrace


@pytest.mark.root
@pytest.mark.server
@needs_root_and_setpriv
def test_hvstat_serve_runs_as_an_unprivileged_user_with_the_units_capabilities(tmp_path: Path) -> None:
    config = tmp_path / "hvstat.toml"
    config.write_text("")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    caps = set(unit_values("AmbientCapabilities"))
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*setpriv(caps), *hvstat_exe(), "serve", "--config", str(config), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env(),
        )  # fmt: skip
    try:
        health = wait_ready(http_ok(f"{base}/health", 200, 503, timeout=5), "hvstat serve (unprivileged) answering /health", proc=proc, log=log)
        sources = {s["name"]: s for s in health.json()["sources"]}
        assert sources["node"]["status"] == "ok", sources
        assert sources["containers"]["status"] == "ok", sources
        assert httpx.get(f"{base}/api/containers", timeout=10).status_code == 200
        assert Path(f"/proc/{proc.pid}/status").read_text().count("\nUid:\t65534\t65534\t65534\t65534") == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=WAIT_SECS) == 0, log.read_text()


# --- packaging/hvstat.toml -------------------------------------------------------------------------


def _struct_in(t: Any) -> type[msgspec.Struct] | None:
    """The Struct inside ``t`` (``S``, ``S | None``, ``list[S]``), else None."""
    if isinstance(t, type) and issubclass(t, msgspec.Struct):
        return t
    for arg in typing.get_args(t):
        found = _struct_in(arg)
        if found is not None:
            return found
    return None


def settings_keys(t: type[msgspec.Struct] = Settings, prefix: str = "") -> set[str]:
    """Every key a config file may hold, as dotted paths (tables included: "alerts.webhook")."""
    out = set()
    for f in msgspec.structs.fields(t):
        key = f"{prefix}{f.encode_name}"
        out.add(key)
        inner = _struct_in(f.type)
        if inner is not None:
            out |= settings_keys(inner, key + ".")
    return out


def example_keys(text: str) -> set[str]:
    """Keys of the example file, commented out or not: ``[table]`` / ``[[table]]`` headers and
    ``key = ...`` lines under them (a "# # key" line is a remark, not a key; ``[a.<name>]`` is the
    map ``a``'s entry)."""
    section, out = "", set()
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[\[?([a-z_.<>]+)\]\]?\s*(#.*)?$", line)
        if header:
            # A "<name>" part is a map's key ([processes.users.<name>]): the keys under it are the map's.
            section = re.sub(r"\.<[a-z_]+>", "", header[1])
            out.add(section)
            continue
        key = re.match(r"^#?\s*([a-z_]+)\s*=", line)
        if key and section:
            out.add(f"{section}.{key[1]}")
    return out


@pytest.mark.unit
def test_example_config_lists_every_key_and_only_keys() -> None:
    documented, expected = example_keys(EXAMPLE.read_text()), settings_keys()
    assert not expected - documented, f"keys of Settings not in packaging/hvstat.toml: {sorted(expected - documented)}"
    assert not documented - expected, f"packaging/hvstat.toml lists keys Settings does not have: {sorted(documented - expected)}"


@pytest.mark.unit
def test_example_config_shows_the_defaults() -> None:
    """The file says "the values shown are the defaults": loading it as is gives the defaults."""
    # ([storage] path unset is filled in with where the service keeps its history.)
    assert load_settings(EXAMPLE, environ={}) == Settings(storage=StorageSettings(path=default_storage_path({})))


# --- packaging/grafana-dashboard.json --------------------------------------------------------------


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query, panels inside rows included."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    d = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in panels(d["panels"]) for t in p.get("targets", [])]


# A selector: a metric name with an optional {matchers} block right after it.
SELECTOR = re.compile(r"\b(hvstat_[a-z0-9_]+)\b(\{[^}]*\})?")
GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")


@pytest.mark.unit
def test_dashboard_queries_only_exported_series_and_labels() -> None:
    # A histogram's series are <name>_bucket (with le), <name>_sum and <name>_count, not <name>.
    families = {f.name: set(f.labels) for f in FAMILIES if f.kind != "histogram"}
    for f in FAMILIES:
        if f.kind == "histogram":
            families |= {f"{f.name}_bucket": {*f.labels, "le"}, f"{f.name}_sum": set(f.labels), f"{f.name}_count": set(f.labels)}
    queries = dashboard_queries()
    assert len(queries) >= 20
    used = set()
    for title, expr in queries:
        selectors = SELECTOR.findall(expr)
        assert selectors, f"{title}: no hvstat series in {expr}"
        labels_in_expr: set[str] = set()
        for name, matchers in selectors:
            assert name in families, f"{title}: {name} is not exported by /metrics (exposition.py)"
            used.add(name)
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in families[name] | {"instance", "job"}, f"{title}: {name} has no label {label!r}"
            labels_in_expr |= families[name]
        for group in GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                assert label in labels_in_expr | {"instance", "job"}, f"{title}: no series of {expr} has the label {label!r}"
    # What issue 6 names: node CPU, memory, load, disks, network; containers' CPU and memory; VMs'
    # CPU and vCPU steal; the sources' health.
    for name in (
        "hvstat_node_cpu_seconds_total", "hvstat_node_memory_available_bytes", "hvstat_node_load1",
        "hvstat_node_disk_read_bytes_total", "hvstat_node_network_receive_bytes_total",
        "hvstat_container_cpu_seconds_total", "hvstat_container_memory_working_set_bytes",
        "hvstat_vm_cpu_seconds_total", "hvstat_vm_vcpu_wait_seconds_total", "hvstat_source_up",
    ):  # fmt: skip
        assert name in used, f"the dashboard does not show {name}"


@pytest.mark.prometheus
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus package) is not installed")
def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """promtool checks rule files only: every query becomes a recording rule, with Grafana's
    variables replaced by what Grafana would put there."""
    rules = [
        {"record": f"hvstat:dashboard_query_{i}", "expr": expr.replace("$__rate_interval", "1m").replace("$instance", "node1:9106")}
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    r = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=WAIT_SECS)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.unit
def test_dashboard_is_importable_json() -> None:
    d = json.loads(DASHBOARD.read_text())
    assert d["uid"] == "hvstat-node" and d["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "hvstat_build_info" in variables["instance"]["definition"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
