"""``/ws`` over real sockets: a real uvicorn on loopback and real WebSocket clients (the
``websockets`` package), plus the check that docs/websocket.md's schemas are the models'.

Servers:
- ``serve`` (conftest): ``hvstat serve`` as an operator runs it, node every second;
- ``stall_server``: uvicorn run by a small script around ``create_app``, so that the listening
  socket can get a small SO_SNDBUF. Accepted sockets inherit it, with the kernel's autotuning off:
  on loopback a peer that stops reading would otherwise be buffered for megabytes (minutes of node
  messages) before the hub's queue even starts to fill. Node every 0.2 s, ws_queue_size 4;
- a server with 0.5 s keepalive pings, for the dead-peer test;
- ``hvstat serve`` with fake Docker containers (real cgroups, tests/cgroups.py), for container topics.

A stalled peer is a ``RawClient``: websockets' sans-I/O protocol on a plain socket with a small
receive buffer, which reads the handshake answer and then nothing until told to.

Regenerate the schema blocks of docs/websocket.md: ``python tests/test_ws.py --write-doc``.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

import cgroups
from conftest import _stop, free_port, running_server
from helpers import WAIT_SECS, clean_env, http_ok, wait_ready
from hvstat import __version__
from hvstat.api.ws import schemas
from hvstat.models import (
    ContainerMetricsMessage,
    ContainersSummaryMessage,
    HelloMessage,
    NodeMetricsMessage,
    ProcessesMessage,
    UsersMessage,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "websocket.md"
STALL_INTERVAL = 0.2
STALL_QUEUE = 4

# uvicorn around the app, on a listening socket made here (argv: port, SO_SNDBUF or 0, ping secs).
SERVER_SCRIPT = r"""
import logging, socket, sys
import uvicorn
from hvstat.api.transport import WebSocketProtocol
from hvstat.app import create_app
from hvstat.config import load_settings
port, sndbuf, ping = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if sndbuf:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
sock.bind(("127.0.0.1", port))
# hvstat serve's WebSocket protocol and options (cli.py): the prebuilt-frame fast path is tested here too.
config = uvicorn.Config(create_app(load_settings()), ws_ping_interval=ping, ws_ping_timeout=ping, log_level="info",
                        ws=WebSocketProtocol, ws_per_message_deflate=False)
uvicorn.Server(config).run(sockets=[sock])
"""


@contextlib.contextmanager
def uvicorn_server(workdir: Path, env: dict[str, str], *, sndbuf: int = 0, ping: float = 20.0) -> Iterator[tuple[str, Path]]:
    """SERVER_SCRIPT on a free loopback port with ``env`` (HVSTAT_* settings) and an empty config
    file; waits for /health, yields (base URL, log file); always terminates and reaps it."""
    config = workdir / "hvstat.toml"
    config.write_text("")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / f"uvicorn-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, str(port), str(sndbuf), str(ping)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(HVSTAT_CONFIG=str(config), **env),
        )
        try:
            wait_ready(http_ok(f"{base}/health"), "the uvicorn server answering /health", proc=proc, log=log_path)
            yield base, log_path
        finally:
            _stop(proc)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/ws"


def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def next_of(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next message of type ``kind``, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        m = recv_json(ws, max(0.01, deadline - time.monotonic()))
        if m["type"] == kind:
            return m


def wait_for_log(log_path: Path, pattern: str, timeout: float = WAIT_SECS) -> None:
    deadline = time.monotonic() + timeout
    while pattern not in log_path.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not in the server log within {timeout}s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)


def refused(url: str) -> ConnectionClosed | None:
    """Connect and read one message: the close it ended with if the server refused the client
    (accepted, then closed at once), None if a hello came."""
    try:
        with connect(url, open_timeout=10, max_size=None) as ws:
            recv_json(ws)
            return None
    except ConnectionClosed as e:
        return e


class RawClient:
    """A WebSocket client that reads only when told to (see the module docstring)."""

    def __init__(self, url: str, rcvbuf: int | None = None) -> None:
        uri = parse_uri(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect: the receive window is negotiated with it.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((uri.host, uri.port))
        self.port = self.sock.getsockname()[1]
        self.proto = ClientProtocol(uri, max_size=None)
        self.proto.send_request(self.proto.connect())
        self.sock.sendall(b"".join(self.proto.data_to_send()))
        # One byte at a time up to the end of the 101 answer, so that nothing after it is read.
        while True:
            chunk = self.sock.recv(1)
            assert chunk, "the server closed during the handshake"
            self.proto.receive_data(chunk)
            if any(isinstance(e, Response) for e in self.proto.events_received()):
                break
        assert self.proto.handshake_exc is None, self.proto.handshake_exc

    def read_until_close(self, timeout: float) -> tuple[list[Frame], Close | None]:
        """Every data frame until the server's close frame (None: the connection ended without one)."""
        self.sock.settimeout(timeout)
        frames: list[Frame] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except (ConnectionResetError, TimeoutError):
                return frames, None
            if not data:
                return frames, None
            self.proto.receive_data(data)
            for e in self.proto.events_received():
                if isinstance(e, Frame) and e.opcode == Opcode.CLOSE:
                    return frames, self.proto.close_rcvd
                if isinstance(e, Frame) and e.opcode in (Opcode.TEXT, Opcode.BINARY):
                    frames.append(e)

    def close(self) -> None:
        self.sock.close()


class Reader:
    """A well-behaved client in a thread: reads everything, notes when each NodeMetrics came."""

    def __init__(self, url: str) -> None:
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(url, open_timeout=10, max_size=None))
        self.hello = recv_json(self.ws)
        self.node: list[tuple[float, float]] = []  # (received at, sample timestamp)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for raw in self.ws:
                at = time.time()
                m = json.loads(raw)
                if m["type"] == "NodeMetrics":
                    self.node.append((at, m["timestamp"]))
        except ConnectionClosed:
            pass
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def stop(self) -> None:
        self._stack.close()
        self.thread.join(WAIT_SECS)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


# --- hvstat serve ----------------------------------------------------------------------------------------


@pytest.mark.server
def test_hello_then_node_metrics_every_second(serve: str) -> None:
    with connect(ws_url(serve), open_timeout=10, max_size=None) as ws:
        hello = recv_json(ws)
        msgspec.convert(hello, HelloMessage)
        assert hello["type"] == "hello" and hello["version"] == __version__ and hello["node_id"] == socket.gethostname()
        assert set(hello["topics"]) == {"node", "containers", "vms", "alerts"}
        assert abs(hello["node"]["timestamp"] - time.time()) < 5
        assert hello["containers"] is not None
        ws.send(json.dumps({"type": "subscribe", "topics": ["node"]}))
        assert next_of(ws, "subscribed")["topics"] == ["node"]
        got = []
        for _ in range(4):
            m = next_of(ws, "NodeMetrics")
            got.append((time.time(), m))
    for at, m in got:
        msg = msgspec.convert(m, NodeMetricsMessage)
        s = msg.sample
        assert msg.node_id == socket.gethostname() and msg.timestamp == s.timestamp
        assert (msg.cpu_usage, msg.memory_usage, msg.disk_usage) == (s.cpu_usage, s.memory_usage, s.disk_usage)
        assert msg.load_averages == (s.load_average_1m, s.load_average_5m, s.load_average_15m)
        assert msg.cpu_usage is not None and 0 <= msg.cpu_usage <= 100
        assert 0 <= at - msg.timestamp < 1.0, "delivered late"
    stamps = [m["timestamp"] for _, m in got]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(0.5 < g < 2.0 for g in gaps), gaps


@pytest.mark.server
def test_bad_messages_get_errors_and_the_connection_stays(serve: str) -> None:
    with connect(ws_url(serve), open_timeout=10, max_size=None) as ws:
        recv_json(ws)
        ws.send("}{")
        assert next_of(ws, "error")["error"] == "malformed JSON"
        ws.send(b"\x00\x01")
        assert next_of(ws, "error")["error"] == "malformed JSON"
        ws.send(json.dumps({"type": "subscribe", "topics": ["node", "nope"]}))
        e = next_of(ws, "error")
        assert e["error"] == "unknown topic" and e["detail"]["unknown"] == ["nope"]
        ws.send(json.dumps({"type": "dance"}))
        assert next_of(ws, "error")["error"] == "unknown message type"
        ws.send(json.dumps({"type": "subscribe", "topics": ["node"]}))
        next_of(ws, "subscribed")
        next_of(ws, "NodeMetrics")


@pytest.mark.server
def test_summary_topic_and_vm_references(serve: str) -> None:
    with connect(ws_url(serve), open_timeout=10, max_size=None) as ws:
        hello = recv_json(ws)
        assert "vms" in hello
        ws.send(json.dumps({"type": "subscribe", "topics": ["containers.summary", "vms.summary"]}))
        assert next_of(ws, "subscribed")["topics"] == ["containers.summary", "vms.summary"]
        # The serve fixture samples containers every 10 s (the default vm_metrics_interval).
        m = next_of(ws, "ContainersSummary", timeout=15)
        msgspec.convert(m, ContainersSummaryMessage)
        assert m["timestamp"] > hello["containers"]["timestamp"]
        # The list entries of GET /api/containers, not whole samples.
        assert all("cgroup_path" in c and "pressure_cpu" not in c for c in m["containers"])
        ws.send(json.dumps({"type": "subscribe", "topics": ["vm:no-such-vm"]}))
        e = next_of(ws, "error")
        assert e["error"] in ("no such VM", "VM monitoring is disabled") and e["detail"]["topic"] == "vm:no-such-vm"


@pytest.mark.server
def test_processes_and_users_topics(serve: str) -> None:
    """A real ``hvstat serve`` (processes every second, the node's interval): the top 20 processes
    by CPU and every user, each once per process sample; this test's own process among them by
    the end of a busy second."""
    with connect(ws_url(serve), open_timeout=10, max_size=None) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "subscribe", "topics": ["processes", "users"]}))
        assert next_of(ws, "subscribed")["topics"] == ["processes", "users"]
        first = msgspec.convert(next_of(ws, "Processes"), ProcessesMessage)
        users = msgspec.convert(next_of(ws, "Users"), UsersMessage)
        second = msgspec.convert(next_of(ws, "Processes"), ProcessesMessage)
    assert second.timestamp > first.timestamp
    for m in (first, second):
        assert 0 < len(m.processes) <= 20 < m.total <= m.host.processes
        cpu = [p.cpu_percent or 0.0 for p in m.processes]
        assert cpu == sorted(cpu, reverse=True)
    assert users.status.level in ("light", "medium", "heavy")  # users: maybe none at or above min_uid here
    assert [u.cpu_percent or 0.0 for u in users.users] == sorted((u.cpu_percent or 0.0 for u in users.users), reverse=True)


# --- a stalled client ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stall_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    env = {
        "HVSTAT_MONITORING_NODE_METRICS_INTERVAL": str(STALL_INTERVAL),
        "HVSTAT_MONITORING_WS_QUEUE_SIZE": str(STALL_QUEUE),
        "HVSTAT_MONITORING_MAX_WS_CLIENTS": "4",
        "HVSTAT_CONTAINERS_ENABLED": "false",
    }
    with uvicorn_server(tmp_path_factory.mktemp("stall"), env, sndbuf=8192) as server:
        yield server


@pytest.mark.server
def test_stalled_client_is_closed_while_others_keep_receiving(stall_server: tuple[str, Path]) -> None:
    base, log_path = stall_server
    url = ws_url(base)
    readers = [Reader(url), Reader(url)]
    stalled = RawClient(url, rcvbuf=1024)
    try:
        started = time.monotonic()
        wait_for_log(log_path, f"WebSocket client 127.0.0.1:{stalled.port} dropped (1008)")
        took = time.monotonic() - started
        # Read now, within the server's close timeout: what was buffered, then the close frame.
        frames, close = stalled.read_until_close(timeout=10)
        time.sleep(1.0)
    finally:
        stalled.close()
        for r in readers:
            r.stop()
    assert close is not None, "no close frame"
    assert close.code == 1008 and "too slow" in close.reason, close
    kinds = [json.loads(f.data)["type"] for f in frames]
    assert kinds[0] == "hello" and set(kinds[1:]) == {"NodeMetrics"}
    # Nobody waited for it: both readers got the same messages (none skipped), each soon after
    # its sample was taken, before, during and after the stall.
    a, b = ([ts for _, ts in r.node] for r in readers)
    common = [ts for ts in a if max(a[0], b[0]) <= ts <= min(a[-1], b[-1])]
    assert common == [ts for ts in b if max(a[0], b[0]) <= ts <= min(a[-1], b[-1])]
    assert len(common) >= (took + 1.0) / STALL_INTERVAL * 0.5, (len(common), took)
    delays = [at - ts for r in readers for at, ts in r.node]
    assert statistics.median(delays) < 0.1 and max(delays) < 1.0, (statistics.median(delays), max(delays))


@pytest.mark.server
def test_max_ws_clients_is_refused_with_1013(stall_server: tuple[str, Path]) -> None:
    url = ws_url(stall_server[0])
    with contextlib.ExitStack() as stack:
        clients: list[ClientConnection] = []
        deadline = time.monotonic() + WAIT_SECS
        while len(clients) < 4:  # the previous test's connections may still be closing
            ws = stack.enter_context(connect(url, open_timeout=10, max_size=None))
            try:
                assert recv_json(ws)["type"] == "hello"
                clients.append(ws)
            except ConnectionClosed:
                assert time.monotonic() < deadline, "never got four clients in"
                time.sleep(0.1)
        e = refused(url)
        assert e is not None and e.rcvd is not None
        assert e.rcvd.code == 1013 and "max_ws_clients = 4" in e.rcvd.reason
        clients.pop().close()
        deadline = time.monotonic() + 10
        while refused(url) is not None:
            assert time.monotonic() < deadline, "the slot of a client that left was not freed"
            time.sleep(0.1)


# --- a dead peer --------------------------------------------------------------------------------------------------


@pytest.mark.server
def test_dead_peer_is_dropped_by_keepalive_pings(tmp_path: Path) -> None:
    env = {"HVSTAT_MONITORING_MAX_WS_CLIENTS": "1", "HVSTAT_CONTAINERS_ENABLED": "false", "HVSTAT_MONITORING_NODE_METRICS_INTERVAL": "1"}
    with uvicorn_server(tmp_path, env, ping=0.5) as (base, _):
        url = ws_url(base)
        dead = RawClient(url)  # never reads, so never answers a ping
        try:
            e = refused(url)
            assert e is not None and e.rcvd is not None and e.rcvd.code == 1013, "the dead peer should hold the only slot"
            deadline = time.monotonic() + 10
            while refused(url) is not None:
                assert time.monotonic() < deadline, "the dead peer was not dropped"
                time.sleep(0.2)
            _, close = dead.read_until_close(timeout=5)
            assert close is None or close.code == 1011, close
        finally:
            dead.close()
        # A client that answers pings stays, over many ping intervals.
        with connect(url, open_timeout=10, max_size=None) as ws:
            assert recv_json(ws)["type"] == "hello"
            first = next_of(ws, "NodeMetrics")["timestamp"]
            time.sleep(3.0)
            assert next_of(ws, "NodeMetrics")["timestamp"] > first


# --- container topics --------------------------------------------------------------------------------------------


@pytest.mark.cgroups
@pytest.mark.server
@pytest.mark.skipif(cgroups.why_no_cgroups() is not None, reason=str(cgroups.why_no_cgroups()))
def test_subscribe_narrows_to_one_container(tmp_path: Path, fake_containers: Any) -> None:
    a = fake_containers(f"docker/{cgroups.hex_id()}")
    b = fake_containers(f"docker/{cgroups.hex_id()}")
    id_a, id_b = a.rel.rsplit("/", 1)[1], b.rel.rsplit("/", 1)[1]
    roots = "\n".join(f'{k} = "{tmp_path / "meta" / k}"' for k in ("docker_root", "podman_root", "pods_log_root", "pve_root"))
    config = f"[monitoring]\nnode_metrics_interval = 1\nvm_metrics_interval = 1\n\n[containers]\n{roots}\n"
    with running_server(tmp_path, config) as base:
        deadline = time.monotonic() + WAIT_SECS
        while not {id_a, id_b} <= {c["id"] for c in httpx.get(f"{base}/api/containers", timeout=10).json()["containers"]}:
            assert time.monotonic() < deadline, "the containers were not found"
            time.sleep(0.2)
        with connect(ws_url(base), open_timeout=10, max_size=None) as ws:
            hello = recv_json(ws)
            assert {id_a, id_b} <= {c["id"] for c in hello["containers"]["containers"]}
            ws.send(json.dumps({"type": "subscribe", "topics": [f"container:{id_a[:12]}"]}))
            assert next_of(ws, "subscribed")["topics"] == [f"container:{id_a}"]
            for _ in range(3):
                m = recv_json(ws)  # nothing but A from here: no node, no other container
                msgspec.convert(m, ContainerMetricsMessage)
                assert m["type"] == "ContainerMetrics" and [c["id"] for c in m["containers"]] == [id_a] and m["vanished"] == []
            a.remove()
            m = recv_json(ws)
            while m["containers"]:
                assert [c["id"] for c in m["containers"]] == [id_a]
                m = recv_json(ws)
            assert m["type"] == "ContainerMetrics" and m["vanished"] == [id_a]
        assert httpx.get(f"{base}/api/containers/{id_a}/metrics", timeout=10).status_code == 404
        r = httpx.get(f"{base}/api/containers/{id_a}/history", timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["entity"] == f"container:{id_a}" and len(r.json()["timestamps"]) >= 3


# --- docs/websocket.md ----------------------------------------------------------------------------------------------

_BLOCK = re.compile(r"<!-- schema: (\S+) -->\n```json\n(.*?)\n```\n<!-- /schema -->", re.DOTALL)


def _format(value: Any, expand: int, depth: int = 0) -> str:
    """JSON with objects above depth ``expand`` one member per line, the rest compact."""
    if isinstance(value, dict) and value and depth < expand:
        pad = "  " * (depth + 1)
        members = ",\n".join(f"{pad}{json.dumps(k)}: {_format(v, expand, depth + 1)}" for k, v in value.items())
        return "{\n" + members + "\n" + "  " * depth + "}"
    return json.dumps(value, ensure_ascii=False)


def doc_blocks() -> dict[str, str]:
    """What the schema blocks of docs/websocket.md should say, by marker name."""
    per_message, defs = schemas()
    out = {name: _format(s, 2) for name, s in per_message.items()}
    out["$defs"] = _format({"$defs": defs}, 4)
    return out


@pytest.mark.unit
def test_doc_schemas_are_the_models() -> None:
    text = DOC.read_text()
    found = {name: json.loads(body) for name, body in _BLOCK.findall(text)}
    per_message, defs = schemas()
    assert set(found) == {*per_message, "$defs"}, "python tests/test_ws.py --write-doc"
    for name, schema in per_message.items():
        assert found[name] == schema, f"{name}: docs/websocket.md is out of date (python tests/test_ws.py --write-doc)"
    assert found["$defs"] == {"$defs": defs}, "docs/websocket.md is out of date (python tests/test_ws.py --write-doc)"
    # Each message's standalone schema (msgspec.json.schema) is the block plus the shared $defs.
    for m in (HelloMessage, NodeMetricsMessage, ContainerMetricsMessage):
        alone = msgspec.json.schema(m)
        assert set(alone["$defs"]) - {m.__name__} <= set(defs)
        assert alone["$defs"][m.__name__]["properties"] == per_message[m.__name__]["properties"]


def write_doc() -> None:
    blocks = doc_blocks()
    text = DOC.read_text()
    missing = set(blocks) - set(dict(_BLOCK.findall(text)))
    if missing:
        raise SystemExit(f"docs/websocket.md has no block for {sorted(missing)}: add <!-- schema: NAME --> blocks first")
    DOC.write_text(_BLOCK.sub(lambda m: f"<!-- schema: {m[1]} -->\n```json\n{blocks[m[1]]}\n```\n<!-- /schema -->", text))


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--write-doc"]:
        write_doc()
    else:
        sys.exit("usage: python tests/test_ws.py --write-doc")
