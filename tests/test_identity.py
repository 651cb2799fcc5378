"""Node identity: ``[server] node_name``, ``[labels]`` and the machine id (hvstat/identity.py), on
every outlet: the config's checks, /health, hvstat_node_info on /metrics, the node_id of /ws
messages, and the external labels of remote write, received by a real HTTP receiver and by a
real Prometheus (Debian's, started by the test on loopback)."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.testclient import TestClient
from websockets.sync.client import connect

from conftest import free_port, running_server
from engines import prometheus_receiver
from helpers import WAIT_SECS
from hvstat import exposition as P
from hvstat.app import create_app
from hvstat.config import ConfigError, Settings, load_settings
from hvstat.identity import MachineId, NodeIdentity, hostname, read_machine_id
from hvstat.remote_write import decode_write_request, encode_write_request
from hvstat.settings import ContainerSettings, MonitoringSettings, ProcessSettings, ServerSettings, StorageSettings, VmSettings
from test_remote_write import Receiver


def unique_name() -> str:
    return f"hv-test-{uuid.uuid4().hex[:8]}"


# --- the machine id --------------------------------------------------------------------------------


@pytest.mark.unit
def test_machine_id_is_the_files_or_null_with_a_reason(tmp_path: Path) -> None:
    if os.path.exists("/etc/machine-id"):
        real = read_machine_id()
        text = Path("/etc/machine-id").read_text().strip()
        assert (real.value, real.error) == ((text, None) if len(text) == 32 else (None, real.error))
    good = tmp_path / "good"
    good.write_text("0123456789abcdef0123456789abcdef\n")
    assert read_machine_id(str(good)) == MachineId("0123456789abcdef0123456789abcdef")
    missing = read_machine_id(str(tmp_path / "absent"))
    assert missing.value is None and "does not exist" in (missing.error or "")
    # systemd writes "uninitialized" until the first boot completes; an empty file is no id either.
    for text in ("uninitialized\n", "", "0123456789ABCDEF0123456789ABCDEF\n", "\xff" * 40):
        bad = tmp_path / "bad"
        bad.write_bytes(text.encode("latin-1"))
        got = read_machine_id(str(bad))
        assert got.value is None and "holds no machine id" in (got.error or ""), (text, got)
    # A directory where the file should be: read error, with the reason.
    assert read_machine_id(str(tmp_path)).value is None


@pytest.mark.unit
def test_identity_defaults_to_the_hostname(tmp_path: Path) -> None:
    ident = NodeIdentity.of(None, {}, str(tmp_path / "absent"))
    assert ident.name == hostname() and ident.labels == ()
    info = ident.info()
    assert info.machine_id is None and "does not exist" in info.unavailable["machine_id"]
    named = NodeIdentity.of("hv-7", {"rack": "r12", "env": "prod"})
    # Sorted by name; "node" first in the external labels.
    assert named.external_labels() == (("node", "hv-7"), ("env", "prod"), ("rack", "r12"))


# --- the configuration -----------------------------------------------------------------------------


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "hvstat.toml"
    path.write_text(text)
    return load_settings(path, environ={} if environ is None else environ)


@pytest.mark.unit
def test_node_name_and_labels_load(tmp_path: Path) -> None:
    s = _load(tmp_path, '[server]\nnode_name = "hv-r12.example.net"\n[labels]\nrack = "r12"\nenv = "prod"\n')
    assert s.server.node_name == "hv-r12.example.net" and s.labels == {"rack": "r12", "env": "prod"}
    assert _load(tmp_path, "").server.node_name is None  # the hostname, at start
    env = _load(tmp_path, "", {"HVSTAT_SERVER_NODE_NAME": "from-env", "HVSTAT_LABELS": '{"dc": "fra1"}'})
    assert env.server.node_name == "from-env" and env.labels == {"dc": "fra1"}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ('[server]\nnode_name = ""\n', {}, "config key server.node_name (in "),
        ('[server]\nnode_name = "a b"\n', {}, "characters other than"),
        ('[server]\nnode_name = "-x"\n', {}, "does not start with a letter or digit"),
        ('[server]\nnode_name = "x/y"\n', {}, "server.node_name"),
        (f'[server]\nnode_name = "{"a" * 254}"\n', {}, "more than 253"),
        ("", {"HVSTAT_SERVER_NODE_NAME": "bad name"}, "(from HVSTAT_SERVER_NODE_NAME)"),
        ('[labels]\n"1rack" = "x"\n', {}, "config key labels.1rack"),
        ('[labels]\n"rack-no" = "x"\n', {}, "not a Prometheus label name"),
        ('[labels]\n__meta = "x"\n', {}, "reserved for Prometheus"),
        ('[labels]\nrack = ""\n', {}, "is empty"),
        ('[labels]\nrack = 7\n', {}, "config key labels.rack"),
        ('[labels]\nrack = "' + "x" * 1025 + '"\n', {}, "longer than 1024"),
        ('[labels]\ndevice = "x"\n', {}, "config key labels.device: 'device' is a label of hvstat's own series"),
        ('[labels]\nnode = "x"\n', {}, "config key labels.node"),
        ('[labels]\nmachine_id = "x"\n', {}, "config key labels.machine_id"),
        ('[labels]\nle = "x"\n', {}, "config key labels.le"),
        ("[labels]\n" + "".join(f'l{i} = "x"\n' for i in range(33)), {}, "more than 32"),
        ("", {"HVSTAT_LABELS": "rack=r12"}, "(from HVSTAT_LABELS)"),
        ("", {"HVSTAT_LABELS": '{"bad name": "x"}'}, "(from HVSTAT_LABELS)"),
        ("", {"HVSTAT_LABELS": '{"rack": 1}'}, "labels.rack"),
        ("", {"HVSTAT_LABELS": '{"rack": "a\\u0000b"}'}, "config key labels.rack (from HVSTAT_LABELS): holds a NUL character"),
    ],
)
def test_bad_identity_is_a_config_error(tmp_path: Path, text: str, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text, environ)
    assert message in str(e.value), str(e.value)


# --- /metrics, /health and /ws of one app ----------------------------------------------------------


def _settings(name: str, **labels: str) -> Settings:
    return Settings(
        server=ServerSettings(node_name=name),
        labels=labels,
        monitoring=MonitoringSettings(node_metrics_interval=0.2),
        containers=ContainerSettings(enabled=False),
        vms=VmSettings(enabled=False),
        processes=ProcessSettings(enabled=False),
        storage=StorageSettings(path=""),
    )


@pytest.mark.unit
def test_identity_on_health_metrics_and_ws() -> None:
    name = unique_name()
    with TestClient(create_app(_settings(name, rack="r12", hostile='a "b"\\c'))) as client:
        node = client.get("/health").json()["node"]
        expected_id = read_machine_id()
        assert node == {
            "name": name,
            "machine_id": expected_id.value,
            "labels": {"rack": "r12", "hostile": 'a "b"\\c'},
            "unavailable": {} if expected_id.error is None else {"machine_id": expected_id.error},
        }
        families = {f.name: f for f in parse_text(client.get("/metrics").text)}
        (info,) = families["hvstat_node_info"].samples  # 0.0.4 text: an info family is a gauge of 1
    assert info.name == "hvstat_node_info" and info.value == 1
    want = {"node": name, "rack": "r12", "hostile": 'a "b"\\c'}
    if expected_id.value is not None:
        want["machine_id"] = expected_id.value
    assert info.labels == want


@pytest.mark.unit
def test_machine_id_left_out_of_node_info_when_unknown() -> None:
    sink = P.SeriesSink()
    P.walk_own(sink, [], "1.0", identity=NodeIdentity("n1", (("rack", "r1"),), MachineId(None, "gone")))
    assert ("hvstat_node_info", (("node", "n1"), ("rack", "r1")), 1) in sink.series


@pytest.mark.unit
def test_external_labels_are_added_unless_the_series_has_the_label() -> None:
    groups = [(1000, [("a", (("cpu", "0"),), 1.0), ("hvstat_node_info", (("node", "own"),), 1)])]
    payload, count = encode_write_request(groups, (("node", "n1"), ("rack", "r1")))
    got = {labels["__name__"]: labels for labels, _ in decode_write_request(payload)}
    assert count == 2
    assert got["a"] == {"__name__": "a", "cpu": "0", "node": "n1", "rack": "r1"}
    assert got["hvstat_node_info"] == {"__name__": "hvstat_node_info", "node": "own", "rack": "r1"}


# --- a real hvstat serve ---------------------------------------------------------------------------


def _serve_config(name: str, url: str, buffer_dir: Path) -> str:
    return "\n".join(
        [
            "[server]",
            f'node_name = "{name}"',
            "[labels]",
            'rack = "r12"',
            'env = "test"',
            "[monitoring]",
            "node_metrics_interval = 0.5",
            "[vms]",
            "enabled = false",
            "[containers]",
            "enabled = false",
            "[remote_write]",
            "enabled = true",
            f'url = "{url}"',
            f'buffer_dir = "{buffer_dir}"',
            "interval = 1",
        ]
    ) + "\n"


@pytest.mark.server
def test_serve_names_every_message_and_series(tmp_path: Path) -> None:
    """One ``hvstat serve`` with a node_name and labels: its /ws messages carry the name, and every
    series a real HTTP receiver gets carries node and the labels."""
    name = unique_name()
    with Receiver() as rx, running_server(tmp_path, _serve_config(name, rx.url, tmp_path / "buffer")) as base:
        with connect(base.replace("http", "ws", 1) + "/ws", open_timeout=WAIT_SECS) as ws:
            hello = json.loads(ws.recv(timeout=WAIT_SECS))
            assert hello["type"] == "hello" and hello["node_id"] == name, hello
            deadline = time.monotonic() + WAIT_SECS
            while (m := json.loads(ws.recv(timeout=WAIT_SECS)))["type"] != "NodeMetrics":
                assert time.monotonic() < deadline
            assert m["node_id"] == name
        deadline = time.monotonic() + WAIT_SECS
        while not rx.timestamps("hvstat_node_info"):
            assert time.monotonic() < deadline, "no batch with hvstat_node_info arrived"
            time.sleep(0.2)
    with rx.lock:
        every = [labels for request in rx.accepted for labels, _ in request]
    assert every and all(ls.get("node") == name and ls.get("rack") == "r12" and ls.get("env") == "test" for ls in every)
    assert {ls["__name__"] for ls in every} >= {"hvstat_node_load1", "hvstat_source_up", "hvstat_build_info", "hvstat_node_info"}


@pytest.mark.prometheus
@pytest.mark.server
def test_prometheus_keeps_two_nodes_of_one_host_apart(tmp_path: Path) -> None:
    """Two ``hvstat serve`` on this one host (one hostname), different node_names, writing to one
    real Prometheus: their series stay two sets, told apart by ``node``, each with its labels and
    the machine id; without node_name they would be one series written twice."""
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (Debian package prometheus; scripts/setup)")
    port = free_port()
    (tmp_path / "prom").mkdir()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    names = [unique_name(), unique_name()]
    dirs = [tmp_path / n for n in names]
    for d in dirs:
        d.mkdir()
    with prometheus_receiver(tmp_path / "prom", port) as prom:
        with running_server(dirs[0], _serve_config(names[0], url, dirs[0] / "buffer")), running_server(dirs[1], _serve_config(names[1], url, dirs[1] / "buffer")):

            def query(q: str) -> list[dict[str, object]]:
                body = httpx.get(f"{prom.base}/api/v1/query", params={"query": q}, timeout=10).json()
                assert body["status"] == "success", body
                return list(body["data"]["result"])

            deadline = time.monotonic() + WAIT_SECS
            sel = "{" + f'node=~"{names[0]}|{names[1]}"' + "}"
            while len(query(f"count by (node, rack, env) (hvstat_node_load1{sel})")) < 2:
                assert time.monotonic() < deadline, "both nodes' series did not reach Prometheus"
                time.sleep(0.25)
            infos = query(f"hvstat_node_info{sel}")
    mid = read_machine_id().value
    got = sorted((r["metric"]["node"], r["metric"].get("machine_id"), r["metric"]["rack"], r["metric"]["env"]) for r in infos)  # type: ignore[index]
    assert got == sorted((n, mid, "r12", "test") for n in names)

