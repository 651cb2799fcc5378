"""Tokens, WebSocket Origin checks and request limits: one pure ASGI middleware in front of every
route, plus the WebSocket's first-message authentication (called by ws.py after the accept).

Policy (docs/operations.md, "Security"; docs/api.md, "Authentication"):

- Tokens come from ``[server] tokens`` and ``[server] token_file`` (one per line, ``#`` comments).
  With at least one token every request needs one, whatever the bind address; without any, only a
  loopback bind (or ``allow_unauthenticated_remote``) is allowed at all (settings.check_bind).
- REST: ``Authorization: Bearer <token>``; a missing or wrong one is a 401 with the JSON error body
  and ``WWW-Authenticate: Bearer``. ``[server] public_paths`` (default ``/health``, for load
  balancers) and the dashboard's static shell (``/ui/<file>`` and ``/`` answered as HTML: the same
  bytes for every hvstat of a version, no data) need none.
- WebSocket: the same header, or ``?token=`` (browsers cannot set headers on a WebSocket), or a
  first message ``{"type": "auth", "token": "..."}`` within ``ws_auth_timeout`` seconds. A refusal
  is accept-then-close with code 4401 and a reason, which a browser can read (it cannot read the
  body of an HTTP answer to its upgrade). A wrong Origin is refused at the handshake (403).
- Every token given is compared with every configured one by ``hmac.compare_digest`` (constant
  time for equal lengths), without stopping at the first match: how long the check takes says
  nothing about which token matched or how much of one did.
- Host check (DNS rebinding): a request that came in on a loopback address must name in its
  ``Host`` header localhost (or a ``*.localhost`` name), an IP address, this machine's host name,
  the bind address or an entry of ``[server] allowed_hosts``; anything else is a 403 (REST and the
  WebSocket handshake alike), before the token is looked at. A page on a rebinding domain
  (``evil.example`` made to resolve to 127.0.0.1) sends ``Host: evil.example``. On other addresses
  the check applies once ``allowed_hosts`` is set; ``["*"]`` turns it off.
- Limits: a request body over ``max_body_bytes`` is a 413 (hvstat only has GET routes: a body is
  never needed), a query string over ``max_query_bytes`` a 414.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import socket
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from hvstat.api.ui import _wants_html
from hvstat.models import ErrorBody, encoder
from hvstat.settings import ServerSettings, is_loopback

log = logging.getLogger(__name__)

# WebSocket close code for "authentication failed": 4000-4999 are the application's (RFC 6455
# 7.4.2); 4401 mirrors HTTP 401, as several WebSocket APIs do.
CLOSE_UNAUTHORIZED = 4401
# The scope key under which the middleware leaves a _WsAuth for ws.py.
WS_AUTH_KEY = "hvstat.ws_auth"


class _AuthMessage(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    token: str | None = None


_auth_decoder = msgspec.json.Decoder(_AuthMessage)


@dataclass(frozen=True)
class _WsAuth:
    # "ok" (no token needed, or a valid one in the handshake), "pending" (none given: the first
    # message must carry it), "invalid" (a wrong one given).
    state: str
    tokens: Tokens
    timeout: float


class Tokens:
    """The configured tokens, as bytes, compared in constant time."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(t.encode() for t in tokens)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def valid(self, given: str) -> bool:
        candidate = given.encode("utf-8", "replace")
        found = False
        for t in self._tokens:
            # No early exit: every configured token is compared whatever the outcome.
            found |= hmac.compare_digest(candidate, t)
        return found


def bearer(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; "" for another scheme, None
    when there is no Authorization header."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


def _header(scope: Scope, wanted: bytes) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope["headers"]  # ASGI: (name, value) byte pairs
    for name, value in headers:
        if name == wanted:
            return value.decode("latin-1")
    return None


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    default = {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
    try:
        parts = urllib.parse.urlsplit(f"//{netloc}")
        return (parts.hostname or "").lower(), parts.port or default
    except ValueError:
        return "", None


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """No Origin (not a browser) is allowed. Otherwise: any if ``"*"`` is allowed, else an exact
    entry of ``allowed``, else (the default) the Origin's host and port must be the Host header's."""
    if origin is None:
        return True
    if "*" in allowed:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in allowed:
        return True
    if allowed or host is None:
        return False
    try:
        parts = urllib.parse.urlsplit(origin)
    except ValueError:  # e.g. "http://[bad": not an origin a browser sends
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    # The Host header carries no scheme: the Origin's decides the default port of both.
    theirs = _host_port(parts.netloc, parts.scheme)
    return bool(theirs[0]) and theirs == _host_port(host, parts.scheme)


class HostCheck:
    """Which ``Host`` headers a request may carry (see the module docstring); ``None`` names
    accept every host."""

    def __init__(self, bind: str, allowed: Iterable[str]) -> None:
        allowed = tuple(h.strip().lower().rstrip(".") for h in allowed)
        self.off = "*" in allowed
        self.always = bool(allowed)
        names = {bind.strip("[]").lower(), "localhost", *allowed}
        with contextlib.suppress(OSError):
            names.add(socket.gethostname().lower())
        self.names = frozenset(names)

    def allows(self, host: str | None, server: Any = None) -> bool:
        """``host``: the Host header; ``server``: the ASGI scope's (address, port) it came in on."""
        if self.off or host is None:  # no Host header: HTTP/1.0, not a browser
            return True
        if not self.always and not (server and is_loopback(str(server[0]))):
            return True
        name = _host_port(host.strip(), "http")[0].rstrip(".")
        if not name:
            return False
        if name in self.names or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True  # an address: no name that could be rebound


class SecurityMiddleware:
    """Request limits, Origin checks and tokens, before any route runs (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Tokens,
        public_paths: Iterable[str] = ("/health",),
        allowed_origins: Iterable[str] = (),
        max_body_bytes: int = 0,
        max_query_bytes: int = 4096,
        ws_auth_timeout: float = 5.0,
        hosts: HostCheck | None = None,
    ) -> None:
        self.app = app
        self.hosts = hosts or HostCheck("*", ("*",))
        self.tokens = tokens
        self.public_paths = frozenset(public_paths)
        self.allowed_origins = tuple(o.rstrip("/").lower() for o in allowed_origins)
        self.max_body_bytes = max_body_bytes
        self.max_query_bytes = max_query_bytes
        self.ws_auth_timeout = ws_auth_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _public(self, scope: Scope) -> bool:
        path = scope["path"]
        if path in self.public_paths or path.startswith("/ui/"):
            return True
        # The dashboard's page itself; the JSON index at the same path needs a token.
        return path == "/" and _wants_html(Request(scope))

    def _host_refused(self, scope: Scope) -> dict[str, Any] | None:
        host = _header(scope, b"host")
        if self.hosts.allows(host, scope.get("server")):
            return None
        log.info("request refused: Host %r not allowed (server.allowed_hosts)", host)
        return {"host": host, "setting": "server.allowed_hosts", "hint": "connect by localhost or an address, or list the name in server.allowed_hosts"}

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self._host_refused(scope)
        if refused is not None:
            await _error(send, 403, "host not allowed", refused)
            return
        query = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            await _error(send, 414, "query string too long", {"bytes": len(query), "max_bytes": self.max_query_bytes, "setting": "server.max_query_bytes"})
            return
        length = _header(scope, b"content-length")
        chunked = _header(scope, b"transfer-encoding") is not None
        too_large = {"max_bytes": self.max_body_bytes, "setting": "server.max_body_bytes"}
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await _error(send, 400, "bad Content-Length", {"content-length": length})
                return
            if n > self.max_body_bytes:
                await _error(send, 413, "request body too large", {"bytes": n, **too_large}, close=True)
                return
        elif chunked:
            # No length up front: read it (no route reads bodies), at most max_body_bytes + 1.
            body, more = b"", True
            while more and len(body) <= self.max_body_bytes:
                message = await receive()
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await _error(send, 413, "request body too large", too_large, close=True)
                return
            receive = _replay(body, receive)
        if self.tokens and not self._public(scope):
            given = bearer(scope["headers"])
            if not given:
                error = "authentication required" if given is None else "not a Bearer token"
                await _error(send, 401, error, {"hint": "send Authorization: Bearer <token>"}, {"WWW-Authenticate": 'Bearer realm="hvstat"'})
                return
            if not self.tokens.valid(given):
                await _error(send, 401, "invalid token", None, {"WWW-Authenticate": 'Bearer realm="hvstat", error="invalid_token"'})
                return
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self._host_refused(scope)
        if refused is not None:
            await _deny(scope, send, 403, "host not allowed", refused)
            return
        query = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            await _deny(scope, send, 414, "query string too long", {"bytes": len(query), "max_bytes": self.max_query_bytes})
            return
        origin = _header(scope, b"origin")
        if not origin_allowed(origin, _header(scope, b"host"), self.allowed_origins):
            log.info("WebSocket refused: Origin %r not allowed (server.allowed_origins)", origin)
            await _deny(scope, send, 403, "origin not allowed", {"origin": origin, "setting": "server.allowed_origins"})
            return
        state = "ok"
        if self.tokens:
            given = bearer(scope["headers"])
            if not given:
                values = urllib.parse.parse_qs(query.decode("latin-1")).get("token")
                given = values[-1] if values else None
            state = "pending" if not given else ("ok" if self.tokens.valid(given) else "invalid")
        scope[WS_AUTH_KEY] = _WsAuth(state, self.tokens, self.ws_auth_timeout)
        await self.app(scope, receive, _routed_websocket(scope, send))


def _routed_websocket(scope: Scope, send: Send) -> Send:
    """``send`` for a WebSocket handshake, where a close before the accept (the router's answer to
    a path with no WebSocket route: /ws accepts first, and refuses after) is a 404 with the JSON
    error body rather than uvicorn's bare 403."""
    answered = False

    async def routed(message: Message) -> None:
        nonlocal answered
        if not answered and message["type"] == "websocket.close":
            answered = True
            await _deny(scope, send, 404, "not found", {"path": scope["path"], "hint": "the WebSocket endpoint is /ws"})
            return
        answered = answered or message["type"] in ("websocket.accept", "websocket.http.response.start")
        await send(message)

    return routed


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _error(
    send: Send, status: int, error: str, detail: Any, headers: dict[str, str] | None = None, *, close: bool = False
) -> None:
    body = encoder.encode(ErrorBody(error=error, detail=detail))
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        # The unread body would otherwise be read (and thrown away) to reuse the connection.
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _deny(scope: Scope, send: Send, status: int, error: str, detail: Any) -> None:
    """Refuse a WebSocket handshake with an HTTP answer (JSON body where the server supports the
    ASGI denial-response extension, as uvicorn does; else a bare 403)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = encoder.encode(ErrorBody(error=error, detail=detail))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": error})


async def authenticate_websocket(websocket: WebSocket) -> bool:
    """Called by ws.py right after the accept: True when the client may go on. A client that gave
    no token in the handshake has ``ws_auth_timeout`` seconds to send ``{"type": "auth", "token":
    ...}`` as its first message; anything else is closed with 4401 and a reason."""
    auth: _WsAuth | None = websocket.scope.get(WS_AUTH_KEY)
    if auth is None or auth.state == "ok":
        return True
    tokens, timeout = auth.tokens, auth.timeout
    if auth.state == "invalid":
        await _refuse(websocket, "invalid token")
        return False
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout)
    except TimeoutError:
        await _refuse(websocket, f'authentication required: send {{"type": "auth", "token": ...}} within {timeout:g} s')
        return False
    if message["type"] == "websocket.disconnect":
        return False
    raw = message.get("text") or message.get("bytes") or b""
    try:
        first: _AuthMessage | None = _auth_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # not JSON, not this shape, or nested too deeply
        first = None
    if first is None or first.type != "auth" or not first.token:
        await _refuse(websocket, 'authentication required: the first message must be {"type": "auth", "token": ...}')
        return False
    if not tokens.valid(first.token):
        await _refuse(websocket, "invalid token")
        return False
    return True


async def _refuse(websocket: WebSocket, reason: str) -> None:
    peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    log.info("WebSocket client %s refused: %s", peer, reason)
    try:
        await asyncio.wait_for(websocket.close(CLOSE_UNAUTHORIZED, reason), 5.0)
    except Exception:  # noqa: BLE001 - the peer may be gone already; nothing to do about it
        pass


def security_middleware_options(server: ServerSettings, tokens: tuple[str, ...]) -> dict[str, Any]:
    """The middleware's keyword arguments from ``[server]``."""
    return {
        "tokens": Tokens(tokens),
        "public_paths": server.public_paths,
        "allowed_origins": server.allowed_origins,
        "max_body_bytes": server.max_body_bytes,
        "max_query_bytes": server.max_query_bytes,
        "ws_auth_timeout": server.ws_auth_timeout,
        "hosts": HostCheck(server.host, server.allowed_hosts),
    }
