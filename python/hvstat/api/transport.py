"""uvicorn's HTTP and WebSocket protocols with two limits of hvstat's own, handed to ``uvicorn.run``
by ``hvstat serve`` (docs/operations.md, "Security"):

- **A request read time** (``server.request_timeout``). A connection must send its whole request
  (head and body) within that many seconds of its first byte (of the connection, or of the end of
  the previous answer on a kept-alive one). Past it the answer is a ``408`` with the JSON error body
  and the connection is closed. uvicorn alone waits for ever for a half-sent request (slowloris) or
  the body of a chunked ``GET``. An idle kept-alive connection is uvicorn's (``timeout_keep_alive``, 5 s).
- **A dropped WebSocket client lets go of its socket.** A client that stopped reading fills the
  kernel's send buffer and the transport's; uvicorn would wait for room to send the close frame,
  then close the transport, which keeps the socket (and the megabytes queued for it) until that
  data leaves, i.e. for as long as the peer keeps the connection open without reading. Here the
  close frame is queued after what is waiting, and if the close handshake has not ended
  ``CLOSE_TIMEOUT_SECS`` later (or the keepalive ping timed out), the connection is reset
  (``SO_LINGER`` 0): the fd and the buffers are freed at once.

And the server itself (``QuietServer``): uvicorn's ``Server`` wakes 10 times a second to look at
its exit flag and to renew the ``Date`` header, which was most of what an idle ``hvstat serve``
spent (bench/README.md, "Whole service"). Here the main loop sleeps until a signal (or code) sets
``should_exit``, and the ``Date`` header is renewed by the request that finds it a second old.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import StatusLike

from hvstat.models import ErrorBody, encoder

# Seconds a WebSocket close handshake may take before the connection is reset.
CLOSE_TIMEOUT_SECS = 5.0
# The ASGI scope extension under which WebSocketProtocol offers ``write_frame`` to the route.
WRITE_FRAME = "hvstat.write_frame"


def text_frame(payload: bytes) -> bytes:
    """``payload`` (UTF-8) as one whole WebSocket text frame as a server sends it (RFC 6455 5.2:
    FIN, opcode 1, no mask): built once per message, written as is to every client."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


def reset(transport: asyncio.BaseTransport) -> None:
    """Close ``transport`` now, throwing away what it has not sent: an RST, not a FIN after the data."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]  # every stream transport has it; BaseTransport's stub does not


def _write_error(transport: asyncio.WriteTransport, status: int, phrase: str, error: str, detail: Any) -> None:
    """A whole HTTP/1.1 answer with the JSON error body, written as bytes (for answers given
    outside h11's state machine: the request could not be parsed, or never arrived)."""
    body = encoder.encode(ErrorBody(error=error, detail=detail))
    head = f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    transport.write(head.encode() + body)


class _Date:
    """The ``Date`` header's value for the current second, made when a request finds it stale."""

    second = -1
    value = b""

    @classmethod
    def refresh(cls, headers: list[tuple[bytes, bytes]]) -> None:
        """Renew the ``date`` entry of uvicorn's default headers in place (every protocol object
        holds that very list; QuietServer sets it once and never replaces it)."""
        if not headers or headers[0][0] != b"date":
            return  # date_header off
        now = int(time.time())
        if now != cls.second:
            cls.second, cls.value = now, formatdate(now, usegmt=True).encode()
        if headers[0][1] is not cls.value:
            headers[0] = (b"date", cls.value)


class QuietServer(uvicorn.Server):
    """uvicorn's Server without its 10 Hz main-loop tick (see the module docstring): ``main_loop``
    awaits an event that setting ``should_exit`` sets (uvicorn's signal handler does, so does code
    that stops a server). A process-directed signal may land on a worker thread while the event
    loop sleeps in epoll: the loop is woken through ``signal.set_wakeup_fd`` (asyncio's own, when a
    ``loop.add_signal_handler`` installed one, as the SIGHUP reloader does; else a socket pair of
    this server's), so the Python handler runs at once. ``limit_max_requests`` and
    ``callback_notify``, which need the tick, are not supported (hvstat sets neither)."""

    _exit_event: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _exit_flag = False

    @property  # uvicorn's plain attribute, made a property that wakes the loop
    def should_exit(self) -> bool:
        return self._exit_flag

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit_flag = value
        if value and self._loop is not None and self._exit_event is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._exit_event.set)

    async def main_loop(self) -> None:
        assert self.config.limit_max_requests is None and self.config.callback_notify is None
        self._loop = asyncio.get_running_loop()
        self._exit_event = asyncio.Event()
        await self.on_tick(0)  # the default headers, once: _Date.refresh keeps their Date current
        with self._signal_wakeup():
            if not self.should_exit:
                await self._exit_event.wait()

    @contextlib.contextmanager
    def _signal_wakeup(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        assert self._loop is not None
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        old = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        if old != -1:  # asyncio's (loop.add_signal_handler): it wakes the loop already
            signal.set_wakeup_fd(old)
            r.close()
            w.close()
            yield
            return

        def drain() -> None:
            with contextlib.suppress(OSError):
                while r.recv(4096):
                    pass

        self._loop.add_reader(r.fileno(), drain)
        try:
            yield
        finally:
            current = signal.set_wakeup_fd(-1)
            if current != w.fileno():
                signal.set_wakeup_fd(current)  # somebody else's since: theirs stays
            self._loop.remove_reader(r.fileno())
            r.close()
            w.close()


def http_protocol(request_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline for each request (see the module docstring)."""

    class TimedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(request_timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            _Date.refresh(self.server_state.default_headers)
            super().data_received(data)
            # Upgraded to a WebSocket (the WebSocket protocol has its own timers), or the request is in.
            if self.transport.get_protocol() is not self or self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection has as long

        def send_400_response(self, msg: str) -> None:
            # uvicorn's answer to what h11 cannot parse (a bad request line, a header too long or
            # repeated, no Host) is text/plain; hvstat's every refusal is the JSON error body.
            # Called from uvicorn's `except h11.RemoteProtocolError`: the exception says what.
            exc = sys.exc_info()[1]
            _write_error(self.transport, 400, "Bad Request", "bad request", {"reason": str(exc) if exc is not None and str(exc) else msg})
            self.transport.close()

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
                return
            started = self.cycle is not None and not self.cycle.response_complete and self.cycle.response_started
            if not started and (self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]):
                detail = {"secs": request_timeout, "setting": "server.request_timeout", "hint": "send the whole request in time"}
                _write_error(self.transport, 408, "Request Timeout", "request timeout", detail)
            if self.cycle is not None and not self.cycle.response_complete:
                # The app (waiting for the body) gets http.disconnect, and what it sends is dropped.
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()

    return TimedH11Protocol


def _json_reject(reject: Callable[[StatusLike, str], Response]) -> Callable[[StatusLike, str], Response]:
    def json_reject(status: StatusLike, text: str) -> Response:
        response = reject(status, text)
        error = {403: "forbidden", 500: "internal error"}.get(response.status_code, response.reason_phrase.lower())
        body = encoder.encode(ErrorBody(error=error, detail={"reason": text.strip()} if text.strip() else None))
        del response.headers["Content-Type"], response.headers["Content-Length"]
        response.headers["Content-Type"] = "application/json"
        response.headers["Content-Length"] = str(len(body))
        return dataclasses.replace(response, body=body)

    return json_reject


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, resetting a connection whose close does not complete (see
    the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = CLOSE_TIMEOUT_SECS
        # Every handshake the websockets package refuses itself (no Sec-WebSocket-Key, a wrong
        # version, a head it cannot parse) or uvicorn refuses for the app is built by `reject`,
        # as text/plain: made the JSON error body here, like every other refusal of hvstat's.
        self.conn.reject = _json_reject(self.conn.reject)  # type: ignore[method-assign, assignment]  # per connection

    async def send(self, message: Any) -> None:
        if (
            message["type"] == "websocket.close"
            and self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
            and not self.writable.is_set()
        ):
            # The peer does not read (the transport paused writing): uvicorn would wait for room
            # first. Queue the close frame after what is waiting, and reset if it is not answered.
            code, reason = message.get("code", 1000), message.get("reason", "") or ""
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()
            self.close_timer = self.loop.call_later(self.close_timeout, self._reset)
            return
        await super().send(message)
        if message["type"] == "websocket.close" and self.close_timer is not None:
            # uvicorn's timer closes the transport, which waits for the unsent data to leave first.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self._reset)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # set unless the handshake was refused
        if scope is not None:
            scope["extensions"][WRITE_FRAME] = self.write_frame

    def write_frame(self, frame: bytes) -> bool:
        """Write a whole frame built by ``text_frame`` now, if the connection is open and its
        transport takes data without waiting (the route's fast path: no per-client encoding, no
        ASGI message); False: the caller sends it the ASGI way, which waits for room."""
        if (
            self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
            and self.writable.is_set()
            and self.conn.state is State.OPEN
            and not self.conn.extensions  # frames as built here: no permessage-deflate
            and not self.transport.is_closing()
        ):
            self.transport.write(frame)
            return True
        return False

    def send_receive_event_to_app(self) -> None:
        # A text message that is not UTF-8 is the client's error: closed 1007 (invalid data) as
        # uvicorn does, but without uvicorn's ERROR line and traceback in the log, which any
        # client could write there at will.
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError as e:
                self.frames = []
                self.logger.info("WebSocket client %s: a text message that is not UTF-8 (%s): closed 1007", self.client, e.reason)
                self.conn.send_close(1007, "text message not UTF-8")
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self._reset()

    def _reset(self) -> None:
        self.close_timer = None
        if not self.disconnected:
            reset(self.transport)
