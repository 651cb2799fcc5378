"""The hostile-input suite (issue 17): what the probes did, kept running, bounded in count and time,
against a real ``hvstat serve`` on loopback. Parts: REST parameter, path, header, body and method
abuse on every route of the routing table (from ``GET /openapi.json``); WebSocket frame abuse
(malformed, binary, nested, oversized, protocol violations, bursts, huge topic lists, stalled
readers with a small receive buffer); the token, Origin and Host matrices; config abuse generated
from the msgspec Structs of ``hvstat.settings`` (every key); SIGHUP storms while serving.

Every part asserts: no 5xx; every refusal the JSON error body (``{"error", "detail"}``) with the
documented code (docs/api.md "Errors", "Authentication"; docs/websocket.md); no traceback in the
server's log; and, after the part, the server's file descriptors and RSS back near the baseline
measured before it. The fds counted are the ones hostile input can make the server hold (sockets,
pipes, files: every fd except the samplers' kept-open /proc and /sys files, whose number follows
the machine's processes and cgroups, not the input). Margins: ``FD_MARGIN`` fds (a connection of
the test's own still closing), ``RSS_MARGIN`` of RSS (allocator high-water marks: CPython and the
allocator keep freed arenas; a leak of the part's size is far above it). Both are polled for up to
``SETTLE_SECS``, since a loaded machine takes its time to close sockets.

``pytest tests/test_hostile.py`` (marker ``server``; the config part is ``unit``): about a minute.
One defect each part found is a regression test in tests/test_hostile_regressions.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from helpers import WAIT_SECS, clean_env, hvstat_exe, wait_ready
from test_hostile_regressions import TOKEN, UPGRADE, Served, next_of, no_traceback, served, ws_url

FD_MARGIN = 4
RSS_MARGIN = 48 << 20
SETTLE_SECS = 20.0

# The server of the REST, WebSocket and signal parts: fast node ticks and a small queue, so that a
# stalled reader is dropped within a second; the process source slow (at the node's 0.2 s it would
# walk every /proc/<pid> five times a second and take the machine's CPU from everything else).
CONFIG = """
[monitoring]
node_metrics_interval = 0.2
ws_queue_size = 4
[processes]
interval = 5
[server]
request_timeout = 3
"""


# --- measuring the server ---


def own_fds(pid: int) -> int:
    """The server's fds other than the samplers' kept-open /proc and /sys files."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            n += not target.startswith(("/proc/", "/sys/"))
    return n


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Baseline:
    def __init__(self, s: Served) -> None:
        self.s = s
        self.fds = own_fds(s.proc.pid)
        self.rss = rss(s.proc.pid)

    def back(self, part: str) -> None:
        """fds and RSS back near the baseline (polled: sockets take a moment to close), the process
        alive and answering, and no traceback in its log."""
        pid = self.s.proc.pid

        def settled() -> bool:
            return own_fds(pid) <= self.fds + FD_MARGIN and rss(pid) <= self.rss + RSS_MARGIN

        wait_ready(settled, f"{part}: fds and RSS back near the baseline ({self.fds} fds, {self.rss >> 20} MiB)", timeout=SETTLE_SECS,
                   proc=self.s.proc, log=lambda: f"now {own_fds(pid)} fds, {rss(pid) >> 20} MiB\n{self.s.text()[-2000:]}")  # fmt: skip
        assert httpx.get(f"{self.s.base}/health", timeout=WAIT_SECS).status_code == 200
        no_traceback(self.s)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("hostile"), CONFIG) as s:
        yield s


# --- raw HTTP: what httpx would normalise or refuse to send ---


def raw(port: int, request: bytes, *, timeout: float = WAIT_SECS) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a new connection and read the answer until the server closes it (every
    request here says ``Connection: close`` or is refused with it)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(timeout)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(request)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), (request[:200], data[:300])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(port: int, target: str, *, headers: str = "", method: str = "GET", body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{headers}\r\n"
    return raw(port, head.encode("latin-1") + body)


def check_answer(
    what: str, status: int, headers: dict[str, str], body: bytes, *, error: str | None = None, code: int | None = None, method: str = "GET"
) -> dict[str, Any] | None:
    """No 5xx; a refusal is the JSON error body; ``error``/``code`` when given are the documented ones."""
    assert status < 500, (what, status, body[:500])
    if code is not None:
        assert status == code, (what, status, body[:500])
    if status < 400:
        return None
    if method == "HEAD":
        return None
    assert headers.get("content-type", "").startswith("application/json"), (what, status, headers, body[:300])
    doc = json.loads(body)
    assert isinstance(doc, dict) and set(doc) == {"error", "detail"} and isinstance(doc["error"], str), (what, doc)
    if error is not None:
        assert doc["error"] == error, (what, status, doc)
    return doc


# --- REST ---

BAD_VALUES = [
    "abc", "NaN", "nan", "inf", "-inf", "Infinity", "1e309", "-1e309", "-1", "-0", "0", "1e-320", "4.9e-324",
    "99999999999999999999999999999", "-99999999999999999999999", "0x10", "1_000", "%201", "1%20", "", ",", ",,,",
    "%00", "%ff%fe", "%E2%80%AE", "%F0%9F%92%A9", "%C0%AF", "%", "%zz", "a" * 3000, "..%2F..%2Fetc%2Fpasswd",
    "cpu_usage,cpu_usage", "%5B%5D", "%7B%7D", "null", "true",
]  # fmt: skip
BAD_SEGMENTS = [
    "%00", "%2F", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "%ff%fe", "%E2%80%AE", "%F0%9F%92%A9", "%C0%AF", "a" * 4000,
    "%25", "%", "%zz", "-1", "0", "99999999999999999999999", "NaN", "%20", "x%0d%0aSet-Cookie:%20a=b", "\u00e9".encode().decode("latin-1"),
]  # fmt: skip


def routes(s: Served) -> list[tuple[str, list[str]]]:
    """Every GET route of the routing table with its query parameters, from the OpenAPI document."""
    doc = httpx.get(f"{s.base}/openapi.json", timeout=WAIT_SECS).json()
    out = []
    for path, ops in doc["paths"].items():
        params = [p["name"] for p in ops["get"].get("parameters", []) if p["in"] == "query"]
        out.append((path, params))
    assert len(out) >= 20, out
    return out


def concrete(template: str, value: str = "x") -> str:
    return "/".join(value if part.startswith("{") else part for part in template.split("/"))


@pytest.mark.server
def test_rest_parameters_paths_headers_bodies_and_methods(hostile: Served) -> None:
    s, port = hostile, hostile.port
    table = routes(s)
    base = Baseline(s)
    count = 0
    for template, params in table:
        path = concrete(template, "app.js" if template.startswith("/ui/") else "x")
        # An unknown parameter, on every route (the dashboard's static files ignore a query, as a
        # cache-busting ?v= wants).
        if template.startswith("/ui/"):
            check_answer(template, *get(port, f"{path}?zzz=1"), code=200)
        else:
            check_answer(template, *get(port, f"{path}?zzz=1"), error="unknown query parameter", code=400)
        # Every parameter given twice, and with every bad value.
        for p in params:
            check_answer(template, *get(port, f"{path}?{p}=1&{p}=2"), error="query parameter given more than once", code=400)
            for v in BAD_VALUES:
                check_answer(f"{template}?{p}={v[:40]}", *get(port, f"{path}?{p}={v}"))
                count += 1
        # Odd path segments where the route takes one.
        if "{" in template:
            for seg in BAD_SEGMENTS:
                status, headers, body = get(port, concrete(template, seg))
                check_answer(f"{template} <- {seg[:40]}", status, headers, body)
                assert b"Set-Cookie" not in b"\r\n".join(f"{k}: {v}".encode() for k, v in headers.items()), headers
                count += 1
        # A body on a GET (every route is a GET: max_body_bytes 0), by length and chunked.
        check_answer(template, *get(port, path, headers="Content-Length: 5\r\n", body=b"hello"), error="request body too large", code=413)
        check_answer(
            template,
            *get(port, path, headers="Transfer-Encoding: chunked\r\n", body=b"5\r\nhello\r\n0\r\n\r\n"),
            error="request body too large",
            code=413,
        )
        # Every method but GET and HEAD.
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"):
            check_answer(f"{method} {template}", *get(port, path, method=method), error="method not allowed", code=405)
        status, headers, body = get(port, path, method="HEAD")
        assert status < 500 and body == b"", (template, status, body[:200])
        count += 10 + len(params)
    # Paths no route has, long and odd; request heads h11 cannot take (JSON 400s, not text/plain).
    for target in ("/nope", "/api/%00", "//", "/api//vms", "/api/vms/", "/%2e%2e/%2e%2e/etc/passwd", "/" + "a" * 8000,
                   "/api/containers/" + "%F0%9F%92%A9" * 300 + "/metrics", "http://evil.example/health", "*", "/health#frag"):  # fmt: skip
        check_answer(target[:60], *get(port, target))
    for request, why in (
        (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n", "an unfinished head over h11's 16 KiB"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 100_000, "an unfinished header over h11's 16 KiB"),
        (b"GET /health HTTP/1.1\r\n\r\n", "no Host"),
        (b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Host headers"),
        (b"G\x01T /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a control byte in the method"),
        (b"GET /h\xe9alth HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a non-ASCII target"),
        (b"GET /health HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", "HTTP/9.9"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n", "a negative Content-Length"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n", "a Content-Length not a number"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "two Content-Lengths"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", "an unknown Transfer-Encoding"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n", "a space in a header name"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64), "a TLS ClientHello on plain HTTP"),
        (b"\r\n\r\n\r\n", "blank lines"),
    ):
        status, headers, body = raw(port, request)
        doc = check_answer(why, status, headers, body)  # a JSON body, not uvicorn's text/plain
        assert why == "HTTP/9.9" or (status == 400 and doc is not None and doc["error"] in ("bad request", "bad Content-Length")), (
            why,
            status,
            doc,
        )
    # Long and many headers under the limit, non-ASCII header values: answered.
    many = "".join(f"X-H{i}: {i}\r\n" for i in range(300))
    for extra in ("X-Long: " + "l" * 12000 + "\r\n", many, "X-Latin: caf\xe9\r\n", "Accept: */*;q=NaN\r\n", "Authorization: Bearer x\r\n"):
        check_answer(extra[:30], *get(port, "/health", headers=extra), code=200)
    # The same over one kept-alive connection, quickly, for the allocator's sake.
    with httpx.Client(base_url=s.base, timeout=WAIT_SECS) as client:
        for template, params in table:
            for p in params or ["zzz"]:
                for v in BAD_VALUES[:12]:
                    r = client.get(concrete(template), params={p: v})
                    check_answer(template, r.status_code, dict(r.headers), r.content)
    base.back("REST abuse")
    assert count > 400


# --- WebSocket ---


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    """One client frame by hand (RFC 6455 5.2), masked unless told not to."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    length = (
        bytes([n | (0x80 if mask else 0)])
        if n < 126
        else (
            bytes([126 | (0x80 if mask else 0)]) + struct.pack("!H", n)
            if n < 65536
            else bytes([127 | (0x80 if mask else 0)]) + struct.pack("!Q", n)
        )
    )
    if not mask:
        return bytes([first]) + length + payload
    key = os.urandom(4)
    return bytes([first]) + length + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgraded(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(UPGRADE.format(port=port).encode())
    sock.settimeout(WAIT_SECS)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def close_code(sock: socket.socket) -> int | None:
    """Read server frames until a close frame (its code) or the end of the connection (None)."""
    buf = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while True:
            while len(buf) >= 2:
                n, at = buf[1] & 0x7F, 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, at = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n, at = struct.unpack("!Q", buf[2:10])[0], 10
                if len(buf) < at + n:
                    break
                if buf[0] & 0x0F == 0x8:
                    return int(struct.unpack("!H", buf[at : at + 2])[0]) if n >= 2 else 1005
                buf = buf[at + n :]
            chunk = sock.recv(1 << 20)
            if not chunk:
                return None
            buf += chunk
    return None


WS_ERRORS = {"malformed JSON", "unknown message type", "invalid message", "unknown topic", "too many topics", "message too large",
             "no such container", "no such VM", "container monitoring is disabled", "VM monitoring is disabled"}  # fmt: skip


@pytest.mark.server
def test_websocket_frames_messages_bursts_and_stalled_readers(hostile: Served) -> None:
    s, port = hostile, hostile.port
    base = Baseline(s)
    messages: list[str | bytes] = [
        "{", "", " ", "\x00", "nul\x00l", "[", '"str"', "1", "null", "true", "{}", "[]", "NaN", "1e999", '{"type": 1}',
        '{"type": null}', '{"type": "subscribe"}', '{"type": "subscribe", "topics": "node"}', '{"type": "subscribe", "topics": [1]}',
        '{"type": "subscribe", "topics": [null]}', '{"type": "subscribe", "topics": {"a": 1}}', '{"type": "auth", "token": "x"}',
        '{"type": "subscribe", "topics": ["node"], "type": "x"}', '{"type": "subscribe", "topics": ["node"], "extra": 1}',
        '{"type": "SUBSCRIBE", "topics": ["node"]}', '{"type": "subscribe\\u0000", "topics": []}', '{"type": "\\ud800"}',
        json.dumps({"type": "subscribe", "topics": ["container:" + "x" * 60_000]}), json.dumps({"type": "subscribe", "topics": ["vm:%00", "container:", ":", "vm:"]}),
        json.dumps({"type": "subscribe", "topics": ["node"] * 1001}), json.dumps({"type": "subscribe", "topics": [f"t{i}" for i in range(1000)]}),
        json.dumps({"type": "subscribe", "topics": ["€" * 16_000]}, ensure_ascii=False), "x" * 65_537, "[" * 100_000, '{"a":' * 20_000,
        b"\xff\xfe\x00", b"", b'{"type": "subscribe", "topics": ["node"]}', b"\x80" * 70_000,
    ]  # fmt: skip
    with connect(ws_url(s.base), max_queue=None, max_size=None) as ws:
        for m in messages:
            ws.send(m)
            answer = next_of_any(ws)
            assert answer["type"] in ("error", "subscribed"), (m[:80], answer)
            if answer["type"] == "error":
                assert answer["error"] in WS_ERRORS and set(answer) == {"type", "error", "detail"}, (m[:80], answer)
        # A burst of 300 messages provoking the largest replies, without reading in between.
        big = json.dumps({"type": "subscribe", "topics": [f"nope-{i:04}-" + "y" * 40 for i in range(1000)]})
        for _ in range(300):
            ws.send(big)
        got = 0
        while got < 300:
            if next_of_any(ws)["type"] == "error":
                got += 1
        ws.send(json.dumps({"type": "subscribe", "topics": ["node"]}))
        assert next_of(ws, "subscribed")["topics"] == ["node"]
        next_of(ws, "NodeMetrics")
    # Over 1 MiB: not even read, closed 1009.
    with connect(ws_url(s.base), max_size=None) as ws:
        ws.send("x" * ((1 << 20) + 1))
        with pytest.raises(ConnectionClosed) as e:
            while True:
                ws.recv(timeout=WAIT_SECS)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009, e.value
    # Protocol violations by hand: closed with a protocol error (1002) or invalid data (1007).
    for bad, codes in (
        (frame(0x1, b"\xff\xfe"), {1007}),  # a text frame that is not UTF-8
        (frame(0x1, b"{}", mask=False), {1002}),  # unmasked
        (frame(0x1, b"{}", rsv=0b100), {1002}),  # a reserved bit
        (frame(0x3, b"x"), {1002}),  # a reserved opcode
        (frame(0x9, b"p" * 200), {1002}),  # a control frame over 125 bytes
        (frame(0x9, b"p", fin=False), {1002}),  # a fragmented control frame
        (frame(0x0, b"x"), {1002}),  # a continuation without a start
        (frame(0x8, b"\x03\xe8" + b"\xff"), {1002, 1007}),  # a close with a reason not UTF-8
        (frame(0x8, b"\x00\x05"), {1002}),  # a close with a code no one may send
        (frame(0x1, b"[", fin=False) + frame(0x2, b"1"), {1002}),  # a new message inside a fragmented one
    ):
        with upgraded(port) as sock:
            sock.sendall(bad)
            assert close_code(sock) in codes | {None}, bad[:20]
    # Fragmented messages, pings and pongs of a well-behaved but odd client: answered.
    with upgraded(port) as sock:
        sock.sendall(
            frame(0x1, b'{"type": "sub', fin=False)
            + frame(0xA, b"unsolicited")
            + frame(0x9, b"hi")
            + frame(0x0, b'scribe", "topics": ["node"]}')
        )
        sock.settimeout(WAIT_SECS)
        seen = b""
        while b'"subscribed"' not in seen:
            seen += sock.recv(65536)
    base.back("WebSocket messages and frames")

    # Stalled readers: a small receive buffer, a burst of messages whose error replies are large
    # (filling the socket buffers in a fraction of a second instead of the node stream's minutes),
    # then no more reading. Past ws_queue_size (4) node messages they are dropped 1008 and, the
    # close frame unable to leave, reset 5 s later: their sockets and buffers freed.
    dropped_before = s.text().count("dropped (1008)")
    stalled = []
    for _ in range(6):
        sock = upgraded(port, rcvbuf=2048)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            for _ in range(200):  # until the server stops reading (32 replies waiting) and TCP pushes back
                sock.send(frame(0x1, big.encode()))
        stalled.append(sock)
    # And clients that vanish mid-burst with an RST.
    for _ in range(4):
        sock = upgraded(port)
        sock.sendall(frame(0x1, big.encode()) * 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    try:
        wait_ready(
            lambda: s.text().count("dropped (1008)") >= dropped_before + len(stalled),
            "every stalled reader dropped as too slow",
            timeout=SETTLE_SECS,
            proc=s.proc,
            log=s.log,
        )
        base.back("stalled readers")  # within SETTLE_SECS: the reset comes 5 s after the drop
    finally:
        for sock in stalled:
            sock.close()
    base.back("stalled readers closed")


def next_of_any(ws: Any) -> dict[str, Any]:
    """The next reply (a data message of the stream in between is skipped)."""
    while True:
        msg = json.loads(ws.recv(timeout=WAIT_SECS))
        if msg["type"] in ("error", "subscribed"):
            return msg


# --- tokens, Origin, Host ---


def handshake(
    port: int, host: str, origin: str | None, headers: str = "", query: str = ""
) -> tuple[int, dict[str, str], bytes, socket.socket | None]:
    head = UPGRADE.format(port=port).replace("GET /ws ", f"GET /ws{query} ").replace(f"Host: 127.0.0.1:{port}", f"Host: {host}")
    head = head.replace("\r\n\r\n", "\r\n" + (f"Origin: {origin}\r\n" if origin is not None else "") + headers + "\r\n")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(WAIT_SECS)
    sock.sendall(head.encode("latin-1"))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head_part, _, rest = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    status = int(lines[0].split()[1])
    if status == 101:
        return status, hdrs, rest, sock
    while len(rest) < int(hdrs.get("content-length", "0")):
        rest += sock.recv(65536)
    sock.close()
    return status, hdrs, rest, None


def first_server_message(sock: socket.socket, pending: bytes, send: bytes = b"") -> tuple[str, Any]:
    """After the upgrade: ("hello", msg) or ("close", code)."""
    if send:
        sock.sendall(send)
    buf = pending
    while True:
        if len(buf) >= 2:
            n, at = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, at = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, at = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) >= at + n and n < 126 or (n >= 126 and len(buf) >= at + n):
                payload = buf[at : at + n]
                if buf[0] & 0x0F == 0x8:
                    return "close", struct.unpack("!H", payload[:2])[0] if n >= 2 else None
                return "message", json.loads(payload)["type"]
        chunk = sock.recv(65536)
        if not chunk:
            return "close", None
        buf += chunk


@pytest.mark.server
def test_token_origin_and_host_matrices(tmp_path: Path) -> None:
    config = f'[server]\ntokens = ["{TOKEN}"]\nallowed_hosts = ["hv1.example.net"]\nws_auth_timeout = 1\n[processes]\nenabled = false\n[containers]\nenabled = false\n'
    with served(tmp_path, config) as s:
        port = s.port
        base = Baseline(s)
        hosts = {f"127.0.0.1:{port}": True, f"localhost:{port}": True, f"hv1.example.net:{port}": True, f"evil.example:{port}": False,
                 "evil.example": False, f"127.0.0.1.evil.example:{port}": False, f"user@evil.example:{port}": False, "": False}  # fmt: skip
        auths = {
            None: (401, "authentication required"), f"Bearer {TOKEN}": (200, None), f"bearer {TOKEN}": (200, None), f"BEARER {TOKEN}": (200, None),
            "Bearer wrong-token-0123456789abcdef": (401, "invalid token"), f"Bearer {TOKEN}x": (401, "invalid token"), f"Bearer {TOKEN[:-1]}": (401, "invalid token"),
            f"Basic {TOKEN}": (401, "not a Bearer token"), "Bearer ": (401, "not a Bearer token"), "Bearer": (401, "not a Bearer token"),
            f"Token {TOKEN}": (401, "not a Bearer token"),
        }  # fmt: skip
        for path, public in (
            ("/api/monitoring/node/metrics", False),
            ("/metrics", False),
            ("/openapi.json", False),
            ("/api", False),
            ("/health", True),
        ):
            for host, host_ok in hosts.items():
                for auth, (code, error) in auths.items():
                    headers = f"Host: {host}\r\n" + (f"Authorization: {auth}\r\n" if auth is not None else "")
                    status, hdrs, body = raw(port, f"GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n".encode("latin-1"))
                    what = f"{path} Host={host!r} auth={auth!r}"
                    if not host_ok:
                        check_answer(what, status, hdrs, body, error="host not allowed", code=403)
                    elif public or code == 200:
                        check_answer(what, status, hdrs, body, code=200)
                    else:
                        check_answer(what, status, hdrs, body, error=error, code=code)
                        assert hdrs.get("www-authenticate", "").startswith('Bearer realm="hvstat"'), (what, hdrs)
            # REST takes no token in the query.
            if not public:
                check_answer(path, *get(port, f"{path}?token={TOKEN}"), error="authentication required", code=401)
        # /ws: the Host check, then the Origin, then the token (header, query or first message).
        origins = {None: True, f"http://127.0.0.1:{port}": True, f"http://localhost:{port}": True, "http://evil.example": False, "null": False,
                   f"http://127.0.0.1:{port}.evil.example": False, f"https://127.0.0.1:{port + 1}": False}  # fmt: skip
        ways = {
            "header": lambda t: (f"Authorization: Bearer {t}\r\n", "", b""),
            "query": lambda t: ("", f"?token={urllib.parse.quote(t)}", b""),
            "message": lambda t: ("", "", frame(0x1, json.dumps({"type": "auth", "token": t}).encode())),
            "other first message": lambda t: ("", "", frame(0x1, b'{"type": "subscribe", "topics": ["node"]}')),
        }
        for host, host_ok in hosts.items():
            for origin, origin_ok in origins.items():
                for way, make in ways.items():
                    for token in (TOKEN, "wrong-token-0123456789abcdef"):
                        headers, query, first = make(token)
                        # The same-host rule compares the Origin with the Host the request names.
                        same_host_origin = origin is None or origin_ok and urllib.parse.urlsplit(origin).netloc == host
                        status, hdrs, rest, sock = handshake(port, host, origin, headers, query)
                        what = f"/ws Host={host!r} Origin={origin!r} {way} {token[:6]}"
                        if not host_ok:
                            check_answer(what, status, hdrs, rest, error="host not allowed", code=403)
                            continue
                        if not same_host_origin:
                            check_answer(what, status, hdrs, rest, error="origin not allowed", code=403)
                            continue
                        assert status == 101 and sock is not None, (what, status, rest[:300])
                        with sock:
                            kind, value = first_server_message(sock, rest, first)
                        if token == TOKEN and way != "other first message":
                            assert (kind, value) == ("message", "hello"), (what, kind, value)
                        else:
                            assert (kind, value) == ("close", 4401), (what, kind, value)
        # No token at all and nothing sent: 4401 after ws_auth_timeout (1 s).
        status, _, rest, sock = handshake(port, f"127.0.0.1:{port}", None)
        assert status == 101 and sock is not None
        with sock:
            assert first_server_message(sock, rest) == ("close", 4401)
        base.back("token, Origin and Host matrices")


# --- config abuse: every key of Settings, generated from the Structs ---

# Valid tables for the Structs that have required keys, so that each of their other keys can be
# tried alone. A Struct with a required key missing here fails the test (and names itself).
REQUIRED_BASES: dict[str, dict[str, Any]] = {
    "alerts.rules": {"name": "r", "metric": "container.cpu_usage", "op": ">", "threshold": 90, "severity": "high"},
    "alerts.webhook": {"url": "http://127.0.0.1:9/hook"},
    "alerts.email": {"host": "127.0.0.1", "from": "hvstat@example.net", "to": ["ops@example.net"], "username": "u"},
    "storage.tiers": {"bucket": 60, "span": 3600},
}
LIST_TABLES = {"alerts.rules", "storage.tiers"}  # arrays of tables
MAP_TABLES = {"processes.users"}  # tables of tables keyed by a name


def keys(info: msgspec.inspect.StructType, prefix: str = "") -> Iterator[tuple[str, msgspec.inspect.Type]]:
    """(dotted key, type) of every leaf key, through nested tables, arrays of tables and maps."""
    for f in info.fields:
        path = f"{prefix}{f.encode_name}"
        t = f.type
        inner = [a for a in t.types if not isinstance(a, msgspec.inspect.NoneType)] if isinstance(t, msgspec.inspect.UnionType) else [t]
        struct = next((a for a in inner if isinstance(a, msgspec.inspect.StructType)), None)
        if isinstance(t, msgspec.inspect.ListType) and isinstance(t.item_type, msgspec.inspect.StructType):
            struct = t.item_type
        if isinstance(t, msgspec.inspect.DictType) and isinstance(t.value_type, msgspec.inspect.StructType):
            struct = t.value_type
        yield path, t
        if struct is not None:
            yield from keys(struct, path + ".")


def bad_values(t: msgspec.inspect.Type) -> list[tuple[str, bool]]:
    """(TOML value, must be refused) for a key of type ``t``; not-must values are odd but may be valid."""
    inner = [a for a in t.types if not isinstance(a, msgspec.inspect.NoneType)] if isinstance(t, msgspec.inspect.UnionType) else [t]
    out: list[tuple[str, bool]] = [
        (
            "{ zz = 1 }",
            not any(isinstance(a, (msgspec.inspect.DictType, msgspec.inspect.StructType, msgspec.inspect.AnyType)) for a in inner),
        )
    ]
    out.append(("[[1], {a = 1}]", not any(isinstance(a, msgspec.inspect.AnyType) for a in inner)))
    per_type: list[tuple[str, bool]] = []
    for a in inner:
        if isinstance(a, (msgspec.inspect.IntType, msgspec.inspect.FloatType)):
            per_type += [
                ('"abc"', True),
                ("true", False),
                ('"1e999"', False),
                ("9223372036854775807", False),
                ("-9223372036854775808", False),
            ]
            lo = a.ge if a.ge is not None else a.gt
            hi = a.le if a.le is not None else a.lt
            if lo is not None:
                per_type.append(
                    (
                        repr(
                            lo - (1 if a.ge is not None else 0)
                            if isinstance(a, msgspec.inspect.IntType)
                            else (lo - 1e-9 if a.ge is not None else lo)
                        ),
                        True,
                    )
                )
            if hi is not None:
                per_type.append((repr(hi + 1 if a.le is not None else hi), True))
            if isinstance(a, msgspec.inspect.FloatType):
                per_type += [("nan", True), ("inf", True), ("-inf", True), ("1e308", hi is not None)]
            else:
                per_type.append(("1.5", True))
        elif isinstance(a, msgspec.inspect.BoolType):
            per_type += [('"maybe"', True), ("2", True)]
        elif isinstance(a, msgspec.inspect.LiteralType):
            per_type += [('"nope"', True), ('""', True), (f'"{str(a.values[0]).upper()}x"', True)]
        elif isinstance(a, msgspec.inspect.StrType):
            per_type += [
                ('""', False),
                ('"\\u0000"', True),
                ('"a\\nb"', False),
                (f'"{"x" * 5000}"', False),
                ('"\\u202e\\ud7ff\\U0001F4A9"', False),
                ('"../../../etc/passwd"', False),
                ("1", True),
            ]
        elif isinstance(a, msgspec.inspect.ListType):
            per_type += [
                ('"a,b"', False),
                ("[1, 2]", True),
                ('["", "\\u0000", "[", "**/***"]', True),
                ("[" + ", ".join(['"a"'] * 2000) + "]", False),
            ]
        elif isinstance(a, msgspec.inspect.DictType):
            per_type += [("{ a = 1 }", True), ('{ "" = "" }', False), ('{ "a\\nb" = "c" }', False)]
    # With several types (a number or a string) a value one of them takes is not refused.
    out += [(v, must and len(inner) == 1) for v, must in per_type]
    return out


def toml_for(key: str, value: str) -> str:
    """A config file setting ``key`` (dotted, through the tables above) to the TOML ``value``."""
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        table = ".".join(parts[:n])
        if table in REQUIRED_BASES or table in LIST_TABLES or table in MAP_TABLES:
            rest = parts[n:]
            if table in MAP_TABLES:
                head, rest = f"[{table}.someone]", rest[1:] if rest and rest[0] == "someone" else rest
            else:
                head = f"[[{table}]]" if table in LIST_TABLES else f"[{table}]"
            if not rest:
                break
            outer = toml_for(table, "") if "." in table and ".".join(table.split(".")[:-1]) in REQUIRED_BASES else ""
            base = {k: v for k, v in REQUIRED_BASES.get(table, {}).items() if k != rest[0]}
            lines = [head, *(f"{k} = {json.dumps(v)}" for k, v in base.items())]
            if len(rest) > 1:
                lines.append(f"[{head.strip('[]')}.{'.'.join(rest[:-1])}]")
            lines.append(f'"{rest[-1]}" = {value}')
            return outer + "\n".join(lines) + "\n"
    return f'[{".".join(parts[:-1])}]\n"{parts[-1]}" = {value}\n' if len(parts) > 1 else f'"{parts[0]}" = {value}\n'


def check_config(path: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``hvstat check-config --config path`` in this process (the CLI's own code; a subprocess per
    case would take minutes): its exit code and stderr. Any exception but the documented exit is a
    traceback the operator would see."""
    from hvstat import cli

    err, out = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean_env(**(env or {})))
    if "HVSTAT_STORAGE_PATH" not in (env or {}):
        del os.environ["HVSTAT_STORAGE_PATH"]  # clean_env's; [storage] path is the file's here
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = cli.main(["check-config", "--config", str(path)])
            except SystemExit as e:  # argparse
                code = int(e.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, err.getvalue()


@pytest.mark.unit
def test_every_config_key_refuses_bad_values_naming_the_key(tmp_path: Path) -> None:
    from hvstat.settings import Settings

    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    all_keys = list(keys(info))
    assert len(all_keys) > 120, len(all_keys)
    for key, t in all_keys:
        struct = t.item_type if isinstance(t, msgspec.inspect.ListType) else t.value_type if isinstance(t, msgspec.inspect.DictType) else t
        for s in [struct, *(getattr(struct, "types", ()))]:
            if isinstance(s, msgspec.inspect.StructType) and any(f.required for f in s.fields):
                assert key in REQUIRED_BASES, f"{key}: a table with required keys; add a valid one to REQUIRED_BASES"
    path = tmp_path / "hvstat.toml"
    cases, failures = 0, []
    for key, t in all_keys:
        for value, must in bad_values(t):
            path.write_text(toml_for(key, value))
            what = f"{key} = {value[:60]}"
            try:
                code, err = check_config(path)
            except Exception as e:  # noqa: BLE001 - a traceback check-config would print; every case is tried
                failures.append(f"{what}: {type(e).__name__}: {e}")
                continue
            cases += 1
            if code not in (0, 2) or (must and code != 2):
                failures.append(f"{what}: exit {code} {err[-300:]}\n{path.read_text()[:300]}")
            elif code == 2 and not (err.startswith("hvstat: ") and key.split(".")[-1] in err):
                failures.append(f"{what}: the message does not name the key: {err[-300:]}")
    # Environment overrides of every top-level table's keys: bad strings.
    for key, _t in all_keys:
        if key.count(".") != 1 or key in ("alerts.rules", "alerts.webhook", "alerts.email"):
            continue
        var = "HVSTAT_" + key.replace(".", "_").upper()
        for raw_value in ("{", "[1,", "caf\xe9\u202e", "x" * 5000, "nan", "-1", "", " "):
            path.write_text("")
            try:
                code, err = check_config(path, {var: raw_value})
            except Exception as e:  # noqa: BLE001
                failures.append(f"{var}={raw_value[:40]!r}: {type(e).__name__}: {e}")
                continue
            cases += 1
            if code not in (0, 2) or (code == 2 and var not in err and "server.tokens" not in err):
                failures.append(f"{var}={raw_value[:40]!r}: exit {code} {err[-300:]}")
    assert not failures, f"{len(failures)} of {cases}:\n" + "\n".join(failures[:60])
    assert cases > 1000, cases


CONFIG_FILES: list[tuple[bytes, str]] = [
    (b"\xef\xbb\xbf[server]\nport = 1\n", "config file"),  # a UTF-8 BOM: TOML does not allow it
    ("[server]\nport = 1\n".encode("utf-16"), "not UTF-8 text"),
    (b'[server]\nhost = "a\x00b"\n', "config file"),
    (b'[server]\nhost = "\\ud800"\n', "config file"),
    (b"[server\n", "config file"),
    (b"[[server]]\n", "config key server"),
    (b"server = 1\n", "config key server"),
    (b"[monitoring]\nnode_metrics_interval = 0.2\nnode_metrics_interval = 0.3\n", "config file"),
    (b"a = " + b"[" * 2000 + b"]" * 2000 + b"\n", "config"),
    (b"[" + b"a." * 3000 + b"b]\n", "config"),
    (b"[server]\nport = 99999999999999999999999\n", "config key server.port"),
    (b"x" * (1 << 20), "config file"),
]


@pytest.mark.unit
def test_bad_config_files_and_encodings_are_exit_2_in_a_real_process(tmp_path: Path) -> None:
    """Whole files (encodings, TOML abuse) through the real console script: exit 2, one line, no traceback."""
    import subprocess

    procs = []
    for i, (content, needle) in enumerate(CONFIG_FILES):
        path = tmp_path / f"c{i}.toml"
        path.write_bytes(content)
        procs.append((content, needle, subprocess.Popen([*hvstat_exe(), "check-config", "--config", str(path)], stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.PIPE, text=True, env=clean_env())))  # fmt: skip
    for content, needle, proc in procs:
        _, err = proc.communicate(timeout=WAIT_SECS)
        assert proc.returncode == 2 and needle in err and "Traceback" not in err, (content[:60], proc.returncode, err[-2000:])


# --- signals ---


@pytest.mark.server
def test_sighup_storms_while_serving(hostile: Served) -> None:
    s = hostile
    base = Baseline(s)
    stop = threading.Event()
    failures: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=s.base, timeout=WAIT_SECS) as client:
            while not stop.is_set():
                for path in ("/health", "/api/monitoring/node/metrics?fields=cpu_usage", "/metrics", "/nope?x=1"):
                    r = client.get(path)
                    if r.status_code >= 500:
                        failures.append(f"{path}: {r.status_code} {r.text[:200]}")

    reloads = s.text().count("reload")
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        with connect(ws_url(s.base), max_queue=None) as ws:
            for _ in range(4):
                for _ in range(50):
                    s.proc.send_signal(signal.SIGHUP)
                time.sleep(0.3)
                assert s.proc.poll() is None, s.text()[-2000:]
            next_of(ws, "NodeMetrics")  # the stream goes on
    finally:
        stop.set()
        worker.join(WAIT_SECS)
    assert not failures, failures[:5]
    assert s.proc.poll() is None
    wait_ready(lambda: s.text().count("reload") > reloads, "the storm's reloads logged", timeout=10, log=s.log)
    base.back("SIGHUP storms")
