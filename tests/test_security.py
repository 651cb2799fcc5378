"""Security (issue 6, part 5) against a real ``hvstat serve`` on loopback, with real clients (httpx,
the ``websockets`` package): every refusal (no token, wrong token, a token of the token file, wrong
Origin, request limits, oversized history ranges, WebSocket slots), TLS with a self-signed
certificate made here (``cryptography``), and JSON logs.

Servers (each ``hvstat serve`` as an operator runs it):
- ``secured``: tokens from the config and from a token file, small limits, JSON logs at debug
  level (so the access log is on);
- ``origins``: no tokens, ``allowed_origins`` set;
- a TLS server, per test.
The max_ws_clients refusal itself (1013) is tests/test_ws.py's; here: that a peer still
authenticating takes no slot.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from conftest import _stop, free_port, running_server
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready
from hvstat.api.auth import Tokens, origin_allowed
from hvstat.config import ConfigError, ServerSettings, check_bind, load_settings
from hvstat.tokens import read_token_file, redact

TOKEN = "cfg-token-" + "a" * 32
FILE_TOKEN = "file-token-" + "b" * 32
WRONG = "wrong-token-" + "c" * 32
NODE = "/api/monitoring/node/metrics"
AUTH_TIMEOUT = 1.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http", "ws", 1) + "/ws" + query


def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    with pytest.raises(ConnectionClosed) as e:
        while True:
            msg = json.loads(ws.recv(timeout=WAIT_SECS))
            assert msg.get("type") != "hello", "the server sent hello to a client it should refuse"
    assert e.value.rcvd is not None, "closed without a close frame"
    return e.value.rcvd.code, e.value.rcvd.reason


def hello(ws: ClientConnection) -> dict[str, Any]:
    msg = json.loads(ws.recv(timeout=WAIT_SECS))
    assert msg["type"] == "hello", msg
    return msg


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("secured")
    token_file = workdir / "tokens"
    token_file.write_text(f"# hvstat tokens, one per line\n\n  {FILE_TOKEN}  \n# old: {WRONG}\n")
    token_file.chmod(0o600)
    config = f"""
[server]
tokens = ["{TOKEN}"]
token_file = "{token_file}"
ws_auth_timeout = {AUTH_TIMEOUT}
max_query_bytes = 512

[monitoring]
node_metrics_interval = 0.5
history_max_points = 3
max_ws_clients = 2

[containers]
enabled = false

[vms]
enabled = false

[logging]
level = "debug"
format = "json"
"""
    with running_server(workdir, config) as base:
        yield base, workdir / f"serve-{base.rsplit(':', 1)[1]}.log"


# --- REST --------------------------------------------------------------------------------------


@pytest.mark.server
def test_no_token_is_401_with_bearer_challenge(secured: tuple[str, Path]) -> None:
    base, _ = secured
    for path in (NODE, "/api/containers", "/metrics", "/openapi.json", "/api", "/api/monitoring/node/history"):
        r = httpx.get(base + path)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"] == "authentication required"


@pytest.mark.server
@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (f"Bearer {WRONG}", "invalid token"),
        (f"Bearer {TOKEN[:-1]}", "invalid token"),  # a prefix of a real one
        (f"Bearer {TOKEN}x", "invalid token"),
        ("Bearer", "not a Bearer token"),
        (f"Basic {TOKEN}", "not a Bearer token"),
    ],
)
def test_wrong_token_is_401(secured: tuple[str, Path], authorization: str, error: str) -> None:
    base, _ = secured
    r = httpx.get(base + NODE, headers={"Authorization": authorization})
    assert r.status_code == 401 and r.json()["error"] == error, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.server
@pytest.mark.parametrize("token", [TOKEN, FILE_TOKEN], ids=["config", "token_file"])
def test_configured_tokens_are_accepted(secured: tuple[str, Path], token: str) -> None:
    base, _ = secured
    r = httpx.get(base + NODE, headers=bearer(token))
    assert r.status_code == 200 and r.json()["cpu_usage"] is not None
    # The scheme is case-insensitive (RFC 7235 2.1).
    assert httpx.get(base + "/metrics", headers={"Authorization": f"bearer {token}"}).status_code == 200


@pytest.mark.server
def test_a_commented_out_line_of_the_token_file_is_no_token(secured: tuple[str, Path]) -> None:
    base, _ = secured
    assert httpx.get(base + NODE, headers=bearer(WRONG)).status_code == 401


@pytest.mark.server
def test_public_paths_and_the_dashboard_shell_need_no_token(secured: tuple[str, Path]) -> None:
    base, _ = secured
    assert httpx.get(base + "/health").status_code == 200
    page = httpx.get(base + "/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(base + "/ui/app.js").status_code == 200
    # The JSON index at the same path is data: it needs the token.
    assert httpx.get(base + "/", headers={"Accept": "application/json"}).status_code == 401


@pytest.mark.server
def test_a_request_body_is_413(secured: tuple[str, Path]) -> None:
    base, _ = secured
    r = httpx.request("GET", base + NODE, headers=bearer(TOKEN), content=b"x")
    assert r.status_code == 413, r.text
    assert r.json() == {"error": "request body too large", "detail": {"bytes": 1, "max_bytes": 0, "setting": "server.max_body_bytes"}}
    # Chunked (no Content-Length): read up to the limit, then refused.
    r = httpx.request("GET", base + NODE, headers=bearer(TOKEN), content=iter([b"a" * 1000, b"b" * 1000]))
    assert r.status_code == 413, r.text
    # Also before the token check: a body is refused whoever sends it.
    assert httpx.request("GET", base + NODE, content=b"{}").status_code == 413
    # An empty body is no body.
    assert httpx.request("GET", base + NODE, headers={**bearer(TOKEN), "Content-Length": "0"}).status_code == 200


@pytest.mark.server
def test_a_long_query_string_is_414(secured: tuple[str, Path]) -> None:
    base, _ = secured
    fields = ",".join(["cpu_usage"] * 60)  # 599 bytes with "fields="
    r = httpx.get(base + "/api/monitoring/node/history", params={"fields": fields}, headers=bearer(TOKEN))
    assert r.status_code == 414 and r.json()["detail"]["max_bytes"] == 512, r.text
    r = httpx.get(base + "/api/monitoring/node/history", params={"fields": "cpu_usage"}, headers=bearer(TOKEN))
    assert r.status_code == 200, r.text


@pytest.mark.server
def test_an_oversized_history_range_is_400(secured: tuple[str, Path]) -> None:
    """history_max_points = 3 and a sample every 0.5 s: the last hour at full resolution holds more."""
    base, _ = secured
    url = base + "/api/monitoring/node/history"
    deadline = time.monotonic() + WAIT_SECS
    while len((r := httpx.get(url, headers=bearer(TOKEN))).json().get("timestamps", [])) in (1, 2, 3) or r.status_code == 200:
        assert time.monotonic() < deadline, "no four node samples"
        time.sleep(0.2)
    r = httpx.get(url, params={"since": str(time.time() - 3600)}, headers=bearer(TOKEN))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "too many points" and body["detail"]["max_points"] == 3
    assert "hint" in body["detail"]
    # The same range in min/avg/max buckets is small enough.
    assert httpx.get(url, params={"since": str(time.time() - 3600), "step": "60"}, headers=bearer(TOKEN)).status_code == 200


# --- WebSocket ---------------------------------------------------------------------------------


@pytest.mark.server
def test_ws_without_token_is_closed_4401_after_the_auth_timeout(secured: tuple[str, Path]) -> None:
    base, _ = secured
    t0 = time.monotonic()
    with connect(ws_url(base)) as ws:
        code, reason = closed_with(ws)
    assert code == 4401 and "authentication required" in reason and '"auth"' in reason
    assert time.monotonic() - t0 >= AUTH_TIMEOUT * 0.9


@pytest.mark.server
@pytest.mark.parametrize("how", ["header", "query", "message"])
def test_ws_wrong_token_is_closed_4401(secured: tuple[str, Path], how: str) -> None:
    base, _ = secured
    kw: dict[str, Any] = {"additional_headers": bearer(WRONG)} if how == "header" else {}
    with connect(ws_url(base, f"?token={WRONG}" if how == "query" else ""), **kw) as ws:
        if how == "message":
            ws.send(json.dumps({"type": "auth", "token": WRONG}))
        assert closed_with(ws) == (4401, "invalid token")


@pytest.mark.server
def test_ws_first_message_other_than_auth_is_closed_4401(secured: tuple[str, Path]) -> None:
    base, _ = secured
    with connect(ws_url(base)) as ws:
        ws.send(json.dumps({"type": "subscribe", "topics": ["node"]}))
        code, reason = closed_with(ws)
    assert code == 4401 and "first message must be" in reason


@pytest.mark.server
@pytest.mark.parametrize("how", ["header", "query", "message"])
@pytest.mark.parametrize("token", [TOKEN, FILE_TOKEN], ids=["config", "token_file"])
def test_ws_valid_token_gets_hello_and_data(secured: tuple[str, Path], how: str, token: str) -> None:
    base, _ = secured
    kw: dict[str, Any] = {"additional_headers": bearer(token)} if how == "header" else {}
    with connect(ws_url(base, f"?token={token}" if how == "query" else ""), **kw) as ws:
        if how == "message":
            ws.send(json.dumps({"type": "auth", "token": token}))
        hello(ws)
        ws.send(json.dumps({"type": "subscribe", "topics": ["node"]}))
        types = {json.loads(ws.recv(timeout=WAIT_SECS))["type"] for _ in range(2)}
        assert types <= {"subscribed", "NodeMetrics"} and "subscribed" in types


@pytest.mark.server
def test_ws_peer_still_authenticating_takes_no_slot(secured: tuple[str, Path]) -> None:
    """max_ws_clients = 2: a peer that has not authenticated yet does not count; a third
    authenticated one is refused with 1013 (tests/test_ws.py tests the refusal itself)."""
    base, _ = secured
    with contextlib.ExitStack() as stack:
        pending = stack.enter_context(connect(ws_url(base)))
        for _ in range(2):
            hello(stack.enter_context(connect(ws_url(base), additional_headers=bearer(TOKEN))))
        with connect(ws_url(base), additional_headers=bearer(TOKEN)) as third:
            code, reason = closed_with(third)
        assert code == 1013 and "max_ws_clients = 2" in reason
        assert closed_with(pending)[0] == 4401


@pytest.mark.server
def test_ws_foreign_origin_is_403_at_the_handshake(secured: tuple[str, Path]) -> None:
    base, _ = secured
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url(base, f"?token={TOKEN}"), origin="https://evil.example")  # type: ignore[arg-type]
    assert e.value.response.status_code == 403
    assert json.loads(e.value.response.body)["error"] == "origin not allowed"
    # The page's own origin (same host and port) is allowed; so is no Origin (tests above).
    with connect(ws_url(base, f"?token={TOKEN}"), origin=base) as ws:  # type: ignore[arg-type]
        hello(ws)
    # Same host name, another port: another origin.
    with pytest.raises(InvalidStatus):
        connect(ws_url(base, f"?token={TOKEN}"), origin="http://127.0.0.1:1")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = '[server]\nallowed_origins = ["https://dash.example.net"]\n[containers]\nenabled = false\n[vms]\nenabled = false\n'
    with running_server(tmp_path_factory.mktemp("origins"), config) as base:
        yield base


@pytest.mark.server
def test_allowed_origins_replace_same_host(origins: str) -> None:
    with connect(ws_url(origins), origin="https://dash.example.net") as ws:  # type: ignore[arg-type]
        hello(ws)  # no tokens configured: no auth step
    for origin in (origins, "https://dash.example.net.evil", "http://dash.example.net"):
        with pytest.raises(InvalidStatus) as e:
            connect(ws_url(origins), origin=origin)  # type: ignore[arg-type]
        assert e.value.response.status_code == 403, origin
    # Without tokens, REST needs none on loopback.
    assert httpx.get(origins + NODE).status_code == 200


# --- logs --------------------------------------------------------------------------------------


@pytest.mark.server
def test_json_logs_one_object_per_line_tokens_redacted(secured: tuple[str, Path]) -> None:
    base, log_path = secured
    httpx.get(base + NODE, headers=bearer(TOKEN))
    httpx.get(base + "/health?x=1")
    with connect(ws_url(base, f"?token={FILE_TOKEN}")) as ws:
        hello(ws)
    deadline = time.monotonic() + WAIT_SECS
    while '"path":"/health?x=1"' not in log_path.read_text() or "WebSocket /ws?token=***" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.1)
    text = log_path.read_text()
    assert TOKEN not in text and FILE_TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line), line
        assert line["ts"].endswith("Z")
        datetime.datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access", "hvstat.app"} <= loggers, loggers
    access = [line for line in lines if line["logger"] == "uvicorn.access" and line["path"] == NODE and line["status"] == 200]
    assert access and access[-1]["method"] == "GET" and access[-1]["client"].startswith("127.0.0.1:")
    refused = [line for line in lines if line["logger"] == "uvicorn.access" and line["status"] == 401]
    assert refused, "refusals are in the access log"


@pytest.mark.server
def test_text_logs_are_unchanged_and_redacted(tmp_path: Path) -> None:
    """The default format: hvstat's "LEVEL name: msg" lines and uvicorn's own."""
    config = f'[server]\ntokens = ["{TOKEN}"]\n[containers]\nenabled = false\n[vms]\nenabled = false\n'
    with running_server(tmp_path, config) as base:
        with connect(ws_url(base, f"?token={TOKEN}")) as ws:
            hello(ws)
        log_path = tmp_path / f"serve-{base.rsplit(':', 1)[1]}.log"
        deadline = time.monotonic() + WAIT_SECS
        while "WebSocket /ws?token=***" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    text = log_path.read_text()
    assert TOKEN not in text
    assert "INFO hvstat.app: hvstat" in text and "Uvicorn running on" in text


@pytest.mark.unit
def test_redact() -> None:
    assert redact('"WebSocket /ws?token=abc&x=1" [accepted]') == '"WebSocket /ws?token=***&x=1" [accepted]'
    assert redact("/ws?a=1&TOKEN=abc") == "/ws?a=1&TOKEN=***"
    assert redact("/ws?mytoken=abc") == "/ws?mytoken=abc"
    # The websockets package logs handshake headers at debug level.
    assert redact("< authorization: Bearer abc") == "< authorization: Bearer ***"
    assert redact("< Authorization: abc") == "< Authorization: ***"


# --- TLS ---------------------------------------------------------------------------------------


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN) and its key, made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hvstat test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@contextlib.contextmanager
def server(workdir: Path, config_text: str, *, ca: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """``hvstat serve`` as conftest.running_server starts it, but bound to ``host`` and, with
    ``ca``, waiting for /health over HTTPS; the log is ``workdir/serve.log``."""
    config = workdir / "hvstat.toml"
    config.write_text(config_text)
    port = free_port()
    base = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
    log_path = workdir / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(config), "--host", host, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
        )
        try:
            wait_ready(http_ok(f"{base}/health", verify=ca or True), f"hvstat serve answering {base}/health", proc=proc, log=log_path)
            yield base
        finally:
            _stop(proc)


@pytest.mark.server
def test_tls_serves_https_and_wss_and_refuses_plain_http(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    ca = ssl.create_default_context(cafile=str(cert))
    config = f"""
[server]
tokens = ["{TOKEN}"]
tls_cert = "{cert}"
tls_key = "{key}"
[containers]
enabled = false
[vms]
enabled = false
"""
    with server(tmp_path, config, ca=ca) as base:
        r = httpx.get(base + NODE, headers=bearer(TOKEN), verify=ca)
        assert r.status_code == 200 and r.json()["cpu_usage"] is not None
        assert httpx.get(base + NODE, verify=ca).status_code == 401
        with connect(base.replace("https", "wss", 1) + "/ws", ssl=ca, additional_headers=bearer(TOKEN)) as ws:
            hello(ws)
        # Plain HTTP to the TLS port: no HTTP answer comes back.
        with pytest.raises(httpx.TransportError):
            httpx.get(base.replace("https", "http", 1) + "/health", timeout=5.0)
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=5.0) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = s.recv(4096)
        assert not answer.startswith(b"HTTP/"), answer
        # A client that does not trust the certificate refuses it.
        with pytest.raises(httpx.ConnectError):
            httpx.get(base + "/health")


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.unit
def test_non_loopback_bind_needs_a_token_or_the_opt_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server.host"):
        check_bind(ServerSettings(host="0.0.0.0"))
    check_bind(ServerSettings(host="0.0.0.0", tokens=[TOKEN]))
    token_file = tmp_path / "tokens"
    token_file.write_text(FILE_TOKEN + "\n")
    check_bind(ServerSettings(host="192.0.2.1", token_file=str(token_file)))
    check_bind(ServerSettings(host="0.0.0.0", allow_unauthenticated_remote=True))
    check_bind(ServerSettings(host="::1"))


@pytest.mark.server
def test_opt_out_serves_remote_without_token_and_warns(tmp_path: Path) -> None:
    """allow_unauthenticated_remote still works (bound to 0.0.0.0 for the few seconds of the test)."""
    config = "[server]\nallow_unauthenticated_remote = true\n[containers]\nenabled = false\n[vms]\nenabled = false\n"
    with server(tmp_path, config, host="0.0.0.0") as base:
        assert httpx.get(base + NODE).status_code == 200
    assert "WARNING hvstat: serving on 0.0.0.0 without authentication (server.allow_unauthenticated_remote)" in (tmp_path / "serve.log").read_text()


@pytest.mark.server
def test_remote_bind_with_a_token_needs_it_and_does_not_warn(tmp_path: Path) -> None:
    config = f'[server]\ntokens = ["{TOKEN}"]\nallow_unauthenticated_remote = true\n[containers]\nenabled = false\n[vms]\nenabled = false\n'
    with server(tmp_path, config, host="0.0.0.0") as base:
        assert httpx.get(base + NODE).status_code == 401
        assert httpx.get(base + NODE, headers=bearer(TOKEN)).status_code == 200
    assert "without authentication" not in (tmp_path / "serve.log").read_text()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[server]\ntokens = ["short"]\n', "server.tokens[0]"),
        ('[server]\ntokens = ["has a space in it, long enough"]\n', "server.tokens[0]"),
        ('[server]\ntoken_file = "/nonexistent/tokens"\n', "server.token_file"),
        ('[server]\ntls_cert = "/etc/hostname"\n', "server.tls_key"),
        ('[server]\ntls_cert = "/nonexistent.pem"\ntls_key = "/nonexistent.key"\n', "server.tls_cert"),
        ('[server]\nallowed_origins = ["dash.example.net"]\n', "server.allowed_origins"),
        ('[server]\nallowed_origins = ["https://dash.example.net/path"]\n', "server.allowed_origins"),
        ('[server]\npublic_paths = ["health"]\n', "server.public_paths"),
        ("[server]\nmax_body_bytes = -1\n", "server.max_body_bytes"),
        ("[monitoring]\nhistory_max_points = 0\n", "monitoring.history_max_points"),
        ('[logging]\nformat = "xml"\n', "logging.format"),
    ],
)
def test_bad_security_settings_name_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    p = tmp_path / "hvstat.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_settings(p, environ={})
    assert needle in str(e.value), str(e.value)


@pytest.mark.unit
def test_token_file_rules(tmp_path: Path) -> None:
    p = tmp_path / "tokens"
    p.write_text("# only a comment\n\n")
    with pytest.raises(ConfigError, match="holds no token"):
        read_token_file(str(p))
    p.write_text(f"{TOKEN}\nshort\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_token_file(str(p))
    p.write_text(f"# a comment\n {TOKEN} \n\n{FILE_TOKEN}\n")
    assert read_token_file(str(p)) == [TOKEN, FILE_TOKEN]


@pytest.mark.unit
def test_environment_overrides(tmp_path: Path) -> None:
    s = load_settings(
        None,
        environ={
            "HVSTAT_SERVER_TOKENS": f"{TOKEN},{FILE_TOKEN}",
            "HVSTAT_SERVER_ALLOWED_ORIGINS": '["https://a.example", "https://b.example:8443"]',
            "HVSTAT_SERVER_MAX_QUERY_BYTES": "1024",
            "HVSTAT_MONITORING_HISTORY_MAX_POINTS": "50",
            "HVSTAT_LOGGING_FORMAT": "json",
        },
    )
    assert s.server.tokens == [TOKEN, FILE_TOKEN] and s.server.allowed_origins == ["https://a.example", "https://b.example:8443"]
    assert s.server.max_query_bytes == 1024 and s.monitoring.history_max_points == 50 and s.logging.format == "json"


@pytest.mark.unit
def test_check_config_masks_tokens(tmp_path: Path) -> None:
    p = tmp_path / "hvstat.toml"
    p.write_text(f'[server]\ntokens = ["{TOKEN}"]\n')
    r = subprocess.run([*hvstat_exe(), "check-config", "--config", str(p)], capture_output=True, text=True, env=clean_env(), timeout=WAIT_SECS)
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout and json.loads(r.stdout)["server"]["tokens"] == ["***"]


@pytest.mark.unit
def test_origin_rules() -> None:
    assert origin_allowed(None, "h:9106", ())
    assert origin_allowed("http://h:9106", "h:9106", ())
    assert origin_allowed("HTTP://H:9106", "h:9106", ())
    assert origin_allowed("https://h", "h", ()) and origin_allowed("https://h", "h:443", ())
    assert not origin_allowed("http://h:9107", "h:9106", ())
    assert not origin_allowed("null", "h:9106", ())
    assert not origin_allowed("http://[bad", "[bad", ()) and not origin_allowed("http://h:x", "h:x", ())
    assert not origin_allowed("http://h:9106", "h:9106", ("https://dash.example",))
    assert origin_allowed("https://dash.example/", "h:9106", ("https://dash.example",))
    assert origin_allowed("https://anything", "h", ("*",))


@pytest.mark.unit
def test_tokens_compare_every_entry() -> None:
    t = Tokens([TOKEN, FILE_TOKEN])
    assert t.valid(TOKEN) and t.valid(FILE_TOKEN)
    assert not t.valid(WRONG) and not t.valid("") and not t.valid(TOKEN + "\u00e9")
    assert not Tokens([])


@pytest.mark.unit
def test_log_filter_redacts_secrets_split_over_arguments() -> None:
    import logging

    from hvstat.logs import RedactTokens

    record = logging.LogRecord("uvicorn.error", logging.DEBUG, "", 0, "< %s: %s", ("authorization", f"Bearer {TOKEN}"), None)
    RedactTokens().filter(record)
    assert record.getMessage() == "< authorization: Bearer ***"
    record = logging.LogRecord("uvicorn.error", logging.DEBUG, "", 0, "< TEXT %s", (json.dumps({"type": "auth", "token": TOKEN}),), None)
    RedactTokens().filter(record)
    assert TOKEN not in record.getMessage() and '"token": "***"' in record.getMessage()
