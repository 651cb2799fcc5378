"""Issue 17's defects, one test each, against a real ``hvstat serve`` on loopback: raw sockets that
stop reading, a Host header of a rebinding domain, nested JSON, bad TLS files made by openssl,
credentials in URLs, early SIGHUPs, half-sent requests, tiny intervals, non-UTF-8 files, message
bursts. Each failed before its fix. tests/test_hostile.py keeps probing the same surfaces more
broadly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from conftest import _stop, free_port
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready

pytestmark = pytest.mark.server

UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@contextlib.contextmanager
def served(workdir: Path, config_text: str = "", env: dict[str, str] | None = None) -> Iterator[Served]:
    """``hvstat serve`` as conftest.running_server starts it, handing the test its process and log."""
    config = workdir / "hvstat.toml"
    config.write_text(config_text)
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env(**(env or {})),
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(http_ok(f"{base}/health"), "hvstat serve answering /health", proc=proc, log=log)
            yield Served(proc, base, port, log)
        finally:
            _stop(proc)


def connections(server_port: int, peer_ports: set[int]) -> list[str]:
    """The server's side of the TCP connections to ``peer_ports`` that the kernel still holds (any
    state: established, or closing with data still queued), from /proc/net/tcp."""
    held = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) in peer_ports:
            held.append(f"{int(remote.split(':')[1], 16)} state {state}")
    return held


def no_traceback(s: Served) -> None:
    text = s.text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-3000:]


# --- 1: a /ws client dropped as too slow lets go of its socket ---


def test_a_dropped_slow_ws_client_lets_go_of_its_socket(tmp_path: Path) -> None:
    config = (
        "[monitoring]\nnode_metrics_interval = 0.1\nws_queue_size = 1\n[containers]\nenabled = false\n[vms]\nenabled = false\n"
        "[processes]\nenabled = false\n"
    )
    # Large error replies fill the socket buffers at once (the node stream would take ~40 s to
    # fill a 4 MiB loopback send buffer); then the next node messages overflow ws_queue_size.
    big = json.dumps({"type": "subscribe", "topics": [f"nope-{i:04}-" + "y" * 40 for i in range(1000)]}).encode()
    key = os.urandom(4)
    burst = bytes([0x81, 0xFF]) + struct.pack("!Q", len(big)) + key + bytes(b ^ key[i % 4] for i, b in enumerate(big))
    with served(tmp_path, config) as s:
        stalled = []
        for _ in range(4):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.connect(("127.0.0.1", s.port))
            sock.sendall(UPGRADE.format(port=s.port).encode())
            sock.recv(12)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                for _ in range(200):  # until the server stops reading (32 replies waiting) and TCP pushes back
                    sock.send(burst)
            stalled.append(sock)  # and never read again, never close
        try:
            wait_ready(lambda: s.text().count("dropped (1008)") >= len(stalled), "every stalled client dropped as too slow",
                       proc=s.proc, log=s.log)  # fmt: skip
            dropped = time.monotonic()
            ports = {sock.getsockname()[1] for sock in stalled}
            assert connections(s.port, ports)
            # The close frame cannot reach a peer that reads nothing: 5 s later the connection is
            # reset, and the kernel holds nothing of it any more (before: 60-170 s, megabytes queued).
            wait_ready(lambda: not connections(s.port, ports), "the server's side of the stalled connections gone", timeout=15,
                       log=lambda: "\n".join(connections(s.port, ports)))  # fmt: skip
            assert time.monotonic() - dropped < 12
            for sock in stalled:
                sock.setblocking(True)
                sock.settimeout(5)
                with pytest.raises(OSError):  # reset: ECONNRESET while draining what was sent
                    while sock.recv(1 << 20):
                        pass
        finally:
            for sock in stalled:
                sock.close()
        assert httpx.get(f"{s.base}/health").status_code == 200
        no_traceback(s)


# --- 7: a request must arrive within server.request_timeout ---


def test_half_sent_requests_and_a_chunked_get_without_body_get_408_and_are_closed(tmp_path: Path) -> None:
    with served(tmp_path, "[server]\nrequest_timeout = 1\n") as s:
        heads = [
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # slowloris: the head never ends
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",  # no body ever
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\nGET /hea",  # the second request half-sent
        ]
        socks = []
        for head in heads * 10:
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(head)
            socks.append(sock)
        started = time.monotonic()
        ports = {sock.getsockname()[1] for sock in socks}
        for sock in socks:
            sock.settimeout(WAIT_SECS)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            sock.close()
            assert b"HTTP/1.1 408 " in data, data
            body = json.loads(data.rsplit(b"\r\n\r\n", 1)[1])
            assert body["error"] == "request timeout" and body["detail"]["setting"] == "server.request_timeout"
        assert time.monotonic() - started < 5
        # A connection that sends nothing is closed as well, silently.
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.settimeout(WAIT_SECS)
            assert sock.recv(100) == b""
        wait_ready(lambda: not any(c.endswith("state 01") for c in connections(s.port, ports)), "no connection held open", timeout=10)
        # A slow but complete request is still answered.
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            for part in (b"GET /health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
                sock.sendall(part)
                time.sleep(0.2)
            assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
        no_traceback(s)


# --- 2: the Host check against DNS rebinding ---


def handshake_status(port: int, host: str, origin: str | None = None) -> tuple[int, bytes]:
    """A WebSocket upgrade with this Host (and Origin) header, by hand: the status and the body."""
    head = UPGRADE.format(port=port).replace(f"Host: 127.0.0.1:{port}", f"Host: {host}")
    if origin is not None:
        head = head.replace("\r\n\r\n", f"\r\nOrigin: {origin}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(WAIT_SECS)
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data or (data.startswith(b"HTTP/1.1 4") and not data.endswith(b"}")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


def test_a_rebinding_host_is_refused_on_a_loopback_bind(tmp_path: Path) -> None:
    with served(tmp_path, '[server]\nallowed_hosts = ["hv1.example.net"]\n') as s:
        rebound = f"evil.example:{s.port}"
        for path in ("/health", "/api/monitoring/node/metrics", "/metrics", "/"):
            r = httpx.get(s.base + path, headers={"Host": rebound})
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"] == "host not allowed" and r.json()["detail"]["setting"] == "server.allowed_hosts"
        status, body = handshake_status(s.port, rebound, f"http://{rebound}")
        assert status == 403 and json.loads(body)["error"] == "host not allowed"
        for host in (f"localhost:{s.port}", f"127.0.0.1:{s.port}", "127.0.0.1", f"app.localhost:{s.port}",
                     f"[::1]:{s.port}", f"HV1.example.net:{s.port}", f"{socket.gethostname()}:{s.port}"):  # fmt: skip
            assert httpx.get(f"{s.base}/health", headers={"Host": host}).status_code == 200, host
        assert handshake_status(s.port, f"localhost:{s.port}", f"http://localhost:{s.port}")[0] == 101
        no_traceback(s)
    with served(tmp_path, '[server]\nallowed_hosts = ["*"]\n') as s:
        assert httpx.get(f"{s.base}/health", headers={"Host": "evil.example"}).status_code == 200


# --- 3: deeply nested JSON on /ws; 11: the message limit counts bytes ---


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http", "ws", 1) + "/ws" + query


def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of this type (data messages in between are skipped)."""
    while True:
        msg = json.loads(ws.recv(timeout=WAIT_SECS))
        if msg["type"] == kind:
            return msg


TOKEN = "hostile-token-" + "a" * 32


def test_nested_json_is_a_malformed_json_error_and_the_limit_counts_bytes(tmp_path: Path) -> None:
    with served(tmp_path) as s, connect(ws_url(s.base), max_size=None) as ws:
        for depth in (1000, 30_000):
            ws.send("[" * depth + "]" * depth)
            err = next_of(ws, "error")
            assert err["error"] == "malformed JSON" and "nested" in err["detail"], err
        ws.send('{"type": "subscribe", "topics": [' + "[" * 5000 + "]" * 5000 + "]}")
        assert next_of(ws, "error")["error"] == "malformed JSON"
        # 30,000 characters of "€" are 90,000 bytes: over the 64 KiB limit.
        ws.send(json.dumps({"type": "subscribe", "topics": ["€" * 30_000]}, ensure_ascii=False))
        assert next_of(ws, "error") == {"type": "error", "error": "message too large", "detail": {"max_bytes": 65536}}
        ws.send(json.dumps({"type": "subscribe", "topics": ["node"]}))
        assert next_of(ws, "subscribed")["topics"] == ["node"]
    no_traceback(s)


def test_nested_json_as_the_auth_message_is_refused_4401_without_a_traceback(tmp_path: Path) -> None:
    with served(tmp_path, f'[server]\ntokens = ["{TOKEN}"]\n') as s:
        for first in ("[" * 1000 + "]" * 1000, '{"type": "auth", "token": "x", "x": ' + "[" * 5000 + "]" * 5000 + "}"):
            with connect(ws_url(s.base)) as ws:
                ws.send(first)
                with pytest.raises(ConnectionClosed) as e:
                    ws.recv(timeout=WAIT_SECS)
                assert e.value.rcvd is not None and e.value.rcvd.code == 4401, e.value
        no_traceback(s)


# --- 4: TLS files are checked at load: check-config and serve refuse them with exit 2, naming the key ---


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def hvstat(*args: str, timeout: float = WAIT_SECS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*hvstat_exe(), *args], capture_output=True, text=True, timeout=timeout, env=clean_env())


def test_invalid_tls_files_are_config_errors_naming_the_key(tmp_path: Path) -> None:
    for name in ("a", "b"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
                "-days", "1", "-subj", "/CN=127.0.0.1", cwd=tmp_path)  # fmt: skip
    openssl("genpkey", "-algorithm", "RSA", "-out", "enc.key", "-aes256", "-pass", "pass:secret", cwd=tmp_path)
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    (tmp_path / "dir").mkdir()
    cases = {
        ("a.crt", "b.key"): ("server.tls_key", "not the key of the certificate"),
        ("garbage.pem", "a.key"): ("server.tls_cert", "no valid PEM certificate"),
        ("a.key", "a.key"): ("server.tls_cert", "no valid PEM certificate"),
        ("a.crt", "garbage.pem"): ("server.tls_key", "no valid PEM private key"),
        ("a.crt", "enc.key"): ("server.tls_key", "no valid PEM private key"),
        ("dir", "a.key"): ("server.tls_cert", "is not a file"),
        ("a.crt", "dir"): ("server.tls_key", "is not a file"),
    }
    for (cert, key), (setting, why) in cases.items():
        config = tmp_path / "hvstat.toml"
        config.write_text(f'[server]\ntls_cert = "{tmp_path / cert}"\ntls_key = "{tmp_path / key}"\n')
        for command in (["check-config"], ["serve", "--port", str(free_port())]):
            r = hvstat(*command, "--config", str(config))
            assert r.returncode == 2, (cert, key, command, r.stderr)
            assert setting in r.stderr and why in r.stderr and "Traceback" not in r.stderr, (cert, key, r.stderr)
    config.write_text(f'[server]\ntls_cert = "{tmp_path / "a.crt"}"\ntls_key = "{tmp_path / "a.key"}"\n')
    assert hvstat("check-config", "--config", str(config)).returncode == 0


# --- 5: no credentials of remote_write.url in the log or check-config; 11: one line per buffer state ---


def test_remote_write_credentials_stay_out_of_logs_and_a_full_buffer_logs_once(tmp_path: Path) -> None:
    url = f"http://hvuser:s3cr3t-pass@127.0.0.1:{free_port()}/api/v1/write"  # nothing listens there
    config = f"""
[monitoring]
node_metrics_interval = 0.2
[containers]
enabled = false
[vms]
enabled = false
[remote_write]
enabled = true
url = "{url}"
buffer_dir = "{tmp_path / "rw"}"
buffer_max_bytes = 65536
interval = 0.2
backoff = 0.2
backoff_max = 0.5
[alerts.webhook]
url = "https://hook:h00k-pass@127.0.0.1:9/hook"
"""
    with served(tmp_path, config) as s:
        wait_ready(lambda: "sending to" in s.text(), "the first failed send logged", proc=s.proc, log=s.log)
        wait_ready(lambda: "buffer full" in s.text(), "the buffer full", proc=s.proc, log=s.log)
        health = httpx.get(f"{s.base}/health").text
        time.sleep(3)  # batches keep being dropped: about 15 a second
        text = s.text()
    assert "s3cr3t-pass" not in text and "hvuser" not in text and "s3cr3t-pass" not in health, text[-2000:]
    assert "http://***@127.0.0.1" in text or "http://127.0.0.1" in text
    assert text.count("buffer full") == 1 and "dropped the oldest batch" not in text, text[-3000:]
    checked = hvstat("check-config", "--config", str(tmp_path / "hvstat.toml"))
    assert checked.returncode == 0, checked.stderr
    assert "s3cr3t-pass" not in checked.stdout and "h00k-pass" not in checked.stdout
    assert json.loads(checked.stdout)["remote_write"]["url"].startswith("http://***@127.0.0.1:")


# --- 6: SIGHUP at any moment after start never kills the process ---


def test_sighup_storm_from_the_first_tenth_of_a_second_on_never_kills_serve(tmp_path: Path) -> None:
    config = tmp_path / "hvstat.toml"
    config.write_text("")
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*hvstat_exe(), "serve", "--config", str(config), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=clean_env())  # fmt: skip
        try:
            # The interpreter itself starts first (no Python code runs yet): from 0.1 s on, hvstat's.
            time.sleep(0.1)
            ready = http_ok(f"http://127.0.0.1:{port}/health", timeout=0.5)
            sent, answered = 0, None
            deadline = time.monotonic() + WAIT_SECS
            while answered is None and time.monotonic() < deadline and proc.poll() is None:
                proc.send_signal(signal.SIGHUP)
                sent += 1
                time.sleep(0.02)
                answered = ready() if sent % 10 == 0 else None
            assert proc.poll() is None, f"killed by an early SIGHUP (exit {proc.returncode}) after {sent}\n{log.read_text()[-2000:]}"
            assert answered is not None
            for _ in range(30):  # and a storm while it runs
                proc.send_signal(signal.SIGHUP)
            time.sleep(1)
            assert proc.poll() is None and ready() is not None
            proc.terminate()
            for _ in range(10):  # and while it stops
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGHUP)
            assert proc.wait(timeout=WAIT_SECS) == 0, log.read_text()[-2000:]
        finally:
            _stop(proc)
    assert "Traceback" not in log.read_text()


# --- 8: intervals have a lower bound; 9: a non-UTF-8 config; 11: file-only keys, the variable named ---


@pytest.mark.parametrize(
    ("config", "env", "needle"),
    [
        (b"[monitoring]\nnode_metrics_interval = 1e-9\n", {}, "config key monitoring.node_metrics_interval (in "),
        (b"[monitoring]\nvm_metrics_interval = 0.05\n", {}, "config key monitoring.vm_metrics_interval (in "),
        (b"", {"HVSTAT_MONITORING_NODE_METRICS_INTERVAL": "0.01"}, "(from HVSTAT_MONITORING_NODE_METRICS_INTERVAL): Expected `float` >= 0.1"),
        (b"[remote_write]\ninterval = 0.001\n", {}, "config key remote_write.interval (in "),
        (b'[server]\nhost = "127.0.0.1"\n# caf\xe9\n', {}, "not UTF-8 text (byte 33"),
        (b"\xff\xfe[\x00s\x00", {}, "not UTF-8 text (byte 0"),
        (b"", {"HVSTAT_ALERTS_RULES": "[]"}, "HVSTAT_ALERTS_RULES: alerts.rules is set in the config file only"),
        (b"", {"HVSTAT_ALERTS_WEBHOOK": '{"url": "http://x/"}'}, "alerts.webhook is set in the config file only"),
        (b"", {"HVSTAT_SERVER_TOKENS": "short"}, "too short (at least 16; e.g. `openssl rand -hex 32`) (from HVSTAT_SERVER_TOKENS)"),
        # Found by tests/test_hostile.py: a ValueError traceback (NUL), the core's message naming
        # only the table (inf), a RecursionError traceback (nesting), the file named for a variable.
        (b'[server]\ntoken_file = "/etc/x\\u0000y"\n', {}, "config key server.token_file (in "),
        (b'[alerts.webhook]\nurl = "http://127.0.0.1:9/"\nca_file = "\\u0000"\n', {}, "alerts.webhook.ca_file (in "),
        (b"[processes]\ncpu_threshold = inf\n", {}, "config key processes.cpu_threshold (in "),
        (b"[monitoring]\nnode_metrics_interval = nan\n", {}, "nan is not a finite number"),
        (b"a = " + b"[" * 2000 + b"]" * 2000 + b"\n", {}, "nested too deeply"),
        (b"", {"HVSTAT_STORAGE_TIERS": "x"}, "config key storage.tiers[0] (from HVSTAT_STORAGE_TIERS)"),
        (b"", {"HVSTAT_REMOTE_WRITE_URL": "x"}, "config key remote_write.url (from HVSTAT_REMOTE_WRITE_URL)"),
        (b"", {"HVSTAT_SERVER_TLS_CERT": "/x"}, "config key server.tls_cert (from HVSTAT_SERVER_TLS_CERT): server.tls_key is not set"),
    ],
)
def test_bad_configs_are_exit_2_naming_the_key_or_variable(tmp_path: Path, config: bytes, env: dict[str, str], needle: str) -> None:
    path = tmp_path / "hvstat.toml"
    path.write_bytes(config)
    for command in (["check-config"], ["serve", "--port", str(free_port())]):
        r = subprocess.run([*hvstat_exe(), *command, "--config", str(path)], capture_output=True, text=True, timeout=WAIT_SECS, env=clean_env(**env))
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, (command, r.returncode, r.stderr)


def test_the_smallest_interval_serves(tmp_path: Path) -> None:
    # [processes] off: at the node's 0.1 s it would walk every /proc/<pid> ten times a second and
    # take both cores of a CI machine (this test took 35 s, or never got an answer to /health).
    with served(tmp_path, "[monitoring]\nnode_metrics_interval = 0.1\n[processes]\nenabled = false\n") as s:
        time.sleep(1)
        assert httpx.get(f"{s.base}/health").json()["sources"][0]["interval_secs"] == 0.1
    no_traceback(s)


# --- 10: a burst of client messages does not get a reading client dropped as too slow ---


def test_a_burst_of_client_messages_is_answered_not_dropped(tmp_path: Path) -> None:
    # The client reads in its own thread into an unbounded buffer while the test writes (with the
    # websockets package's default of 16 frames, both ends would wait for each other to read).
    with served(tmp_path, "[monitoring]\nnode_metrics_interval = 0.2\n[processes]\nenabled = false\n") as s, connect(ws_url(s.base), max_queue=None) as ws:
        burst = 500
        for i in range(burst):
            ws.send(json.dumps({"type": "subscribe", "topics": ["node"] if i % 2 else ["nope"]}))
        answers = {"subscribed": 0, "error": 0}
        while sum(answers.values()) < burst:
            msg = json.loads(ws.recv(timeout=WAIT_SECS))  # ConnectionClosed (1008, too slow) before the fix
            if msg["type"] in answers:
                answers[msg["type"]] += 1
        assert answers == {"subscribed": burst // 2, "error": burst // 2}
        next_of(ws, "NodeMetrics")  # and the stream goes on
    assert "dropped" not in s.text()
    no_traceback(s)


# --- found by tests/test_hostile.py: every refusal the JSON error body, no traceback for a bad frame ---


def raw_answer(port: int, request: bytes) -> tuple[int, str, dict[str, Any]]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(WAIT_SECS)
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    ctype = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n") if line.lower().startswith(b"content-type:")), "")
    return int(head.split(b" ", 2)[1]), ctype, json.loads(body)


def test_requests_uvicorn_cannot_parse_and_refused_handshakes_get_the_json_error_body(tmp_path: Path) -> None:
    # Before: text/plain "Invalid HTTP request received.", websockets' text/plain 400 and a bare 403.
    with served(tmp_path, "[processes]\nenabled = false\n") as s:
        for request in (b"GET /health HTTP/1.1\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n"):
            status, ctype, body = raw_answer(s.port, request)
            assert (status, ctype, body["error"]) == (400, "application/json", "bad request") and body["detail"]["reason"], (request, body)
        no_key = UPGRADE.format(port=s.port).replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "").encode()
        status, ctype, body = raw_answer(s.port, no_key)
        assert (status, ctype, body["error"]) == (400, "application/json", "bad request") and "Sec-WebSocket-Key" in body["detail"]["reason"]
        for path in ("/health", "/nope"):
            status, ctype, body = raw_answer(s.port, UPGRADE.format(port=s.port).replace("GET /ws ", f"GET {path} ").encode())
            assert (status, ctype, body) == (404, "application/json", {"error": "not found", "detail": {"path": path, "hint": "the WebSocket endpoint is /ws"}})
        no_traceback(s)


def test_a_text_frame_that_is_not_utf8_is_closed_1007_without_a_traceback(tmp_path: Path) -> None:
    # Before: uvicorn logged "Invalid UTF-8 sequence received from client." with a traceback.
    with served(tmp_path, "[processes]\nenabled = false\n") as s:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", s.port)) as sock:
                sock.settimeout(WAIT_SECS)
                sock.sendall(UPGRADE.format(port=s.port).encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(1)
                key = os.urandom(4)
                sock.sendall(bytes([0x81, 0x82]) + key + bytes(b ^ key[i] for i, b in enumerate(b"\xff\xfe")))
                data = b""
                while b"\x88" not in data[:1]:
                    data = sock.recv(65536)
                    data = data[data.find(b"\x88") :] if b"\x88" in data else data
                assert struct.unpack("!H", data[2:4])[0] == 1007, data[:40]
        assert httpx.get(f"{s.base}/health").status_code == 200
        no_traceback(s)
        assert "not UTF-8" in s.text()
