"""A small asyncio client for QEMU's machine protocol (QMP) over a unix socket.

QMP is JSON, one message per line (docs/interop/qmp-spec.rst in QEMU): the server greets with
``{"QMP": {...}}``, the client leaves capabilities negotiation with ``qmp_capabilities``, then each
``{"execute": ..., "id": ...}`` gets exactly one ``{"return": ...}`` or ``{"error": {"class",
"desc"}}`` carrying the same id, in order. Asynchronous events (``{"event": ...}``) may arrive at any
time, also between a command and its answer.

One reader task per connection reads every line as it comes: events are dropped (so a monitor that
emits many of them between two polls never fills QEMU's output buffer), answers complete the
command waiting for their id, and an answer whose id nobody waits for (the late answer of a command
that timed out) is dropped, so a slow answer can never be taken for the next command's. EOF, a
broken socket or a message that is not QMP mark the connection dead: every waiting and later
command raises QmpConnectionError with the reason.

hvstat is read-only: this module sends what its caller asks for, and the VM collector only asks
``query-*``, ``qom-list`` and ``qom-get``. We chose this over PyPI's ``qemu.qmp`` (which is good)
because we need three things it does not make easy: the peer's pid (SO_PEERCRED), a per-command
timeout that leaves the connection usable, and no new dependency for the ~250 lines involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
import time
from typing import Any

import msgspec

log = logging.getLogger(__name__)

# Longest message we accept. query-blockstats is ~1.5 KiB per block node, query-stats with every
# KVM vCPU stat ~4 KiB per vCPU: 16 MiB leaves room for thousands of disks or vCPUs while still
# bounding what a broken peer can make us buffer.
LINE_LIMIT = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 2.0

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.encode
_ucred = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;} (socket(7), unix(7))


class QmpError(Exception):
    """QEMU answered ``{"error": {"class": ..., "desc": ...}}``; the connection is fine."""

    def __init__(self, error_class: str, desc: str, command: str | None = None) -> None:
        super().__init__(f"{command + ': ' if command else ''}{error_class}: {desc}")
        self.error_class = error_class
        self.desc = desc
        self.command = command


class QmpConnectionError(ConnectionError):
    """The connection is unusable (refused, closed, broken, or the peer does not speak QMP); the
    client is dead from then on and must be replaced by a new connection."""


class QmpTimeout(TimeoutError):
    """No answer within the timeout. The connection stays usable: the late answer is dropped by its
    id when it comes, and ``unanswered`` tells that the monitor has not caught up yet."""


class QmpClient:
    """One QMP connection. Make it with ``await QmpClient.connect(path)``; one command in flight at
    a time (QEMU runs a monitor's commands one after the other anyway)."""

    def __init__(self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line_limit: int = LINE_LIMIT) -> None:
        self.path = path
        self._line_limit = line_limit
        self._reader = reader
        self._writer = writer
        self.greeting: dict[str, Any] = {}
        # The QEMU process: the credentials of whoever called listen() on the socket (unix(7)
        # SO_PEERCRED), which is QEMU for its own -qmp/-chardev server sockets (also with
        # -daemonize, which forks before it creates them).
        self.pid: int | None = None
        self.uid: int | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        # id -> (command, monotonic time sent) of commands that timed out and were not answered yet.
        self._late: dict[int, tuple[str, float]] = {}
        self._dead: str | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.events = 0

    # --- connecting ---

    @classmethod
    async def connect(cls, path: str, *, timeout: float = DEFAULT_TIMEOUT, line_limit: int = LINE_LIMIT) -> QmpClient:
        """Connect, read the greeting and leave capabilities negotiation, all within ``timeout``.
        Raises QmpConnectionError (or QmpTimeout); nothing is left open when it raises."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path, limit=line_limit)
        except TimeoutError:
            raise QmpTimeout(f"connect did not finish within {timeout:g}s") from None
        except OSError as e:
            raise QmpConnectionError(f"connect: {e.strerror or e}") from None
        client = cls(path, reader, writer, line_limit)
        try:
            client._peer()
            try:
                async with asyncio.timeout(timeout):
                    line = await reader.readline()
            except TimeoutError:
                raise QmpTimeout(f"no QMP greeting within {timeout:g}s (not a QMP socket, or another client holds the monitor)") from None
            greeting = client._message(line)
            if not isinstance(greeting.get("QMP"), dict):
                raise QmpConnectionError(f"not a QMP greeting: {line[:120]!r}")
            client.greeting = greeting["QMP"]
            client._reader_task = asyncio.create_task(client._read_loop(), name=f"qmp-reader {path}")
            await client.execute("qmp_capabilities", timeout=timeout)
        except BaseException:
            await client.close()
            raise
        return client

    def _peer(self) -> None:
        sock = self._writer.get_extra_info("socket")
        if sock is None or not hasattr(socket, "SO_PEERCRED"):
            return
        try:
            self.pid, self.uid, _gid = _ucred.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _ucred.size))
        except OSError as e:
            log.debug("QMP %s: SO_PEERCRED failed: %s", self.path, e)
        if self.pid == 0:  # no credentials (the listener was made in another pid namespace)
            self.pid = None

    @property
    def version(self) -> tuple[int, int, int] | None:
        v = self.greeting.get("version", {}).get("qemu", {})
        try:
            return (int(v["major"]), int(v["minor"]), int(v["micro"]))
        except (KeyError, TypeError, ValueError):
            return None

    # --- state ---

    @property
    def dead(self) -> str | None:
        """Why the connection is unusable, or None while it is alive."""
        return self._dead

    def unanswered(self) -> tuple[str, float] | None:
        """(command, seconds ago) of the oldest command that timed out and that QEMU has still not
        answered: its monitor is stuck (or very slow), and a new command would only queue behind."""
        if not self._late:
            return None
        command, sent = next(iter(self._late.values()))
        return command, time.monotonic() - sent

    # --- commands ---

    async def execute(self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
        """Run one command and return its ``return`` value. Raises QmpError (QEMU refused it),
        QmpTimeout (no answer within ``timeout`` seconds, waiting for the connection included) or
        QmpConnectionError (the connection is dead)."""
        if self._dead is not None:
            raise QmpConnectionError(self._dead)
        # A small int, and no whitespace: QEMU's monitor reads its input one byte per iteration
        # of its I/O loop (monitor_can_read returns 1 in monitor/qmp.c), so every byte of a
        # request adds latency: ~5 us here (an "id":"hvstat-12" costs ~50 us more than none).
        cid = next(self._ids)
        message: dict[str, Any] = {"execute": command, "id": cid}
        if arguments:
            message["arguments"] = arguments
        data = _encode(message) + b"\n"
        sent = 0.0
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    if self._dead is not None:
                        raise QmpConnectionError(self._dead)
                    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                    self._pending[cid] = future
                    try:
                        sent = time.monotonic()
                        self._writer.write(data)
                        await self._writer.drain()
                        answer = await future
                    finally:
                        self._pending.pop(cid, None)
        except asyncio.CancelledError:
            if sent:  # its answer will come, late: drop it then, and know the monitor is behind
                self._late[cid] = (command, sent)
            raise
        except TimeoutError:
            if sent:
                self._late[cid] = (command, sent)
            raise QmpTimeout(f"{command}: no answer within {timeout:g}s") from None
        except (ConnectionError, OSError) as e:
            if not isinstance(e, QmpConnectionError):
                self._kill(f"sending {command}: {e}")
                raise QmpConnectionError(self._dead) from None
            raise
        if "error" in answer:
            error = answer["error"]
            if not isinstance(error, dict):
                error = {"desc": repr(error)}
            raise QmpError(str(error.get("class", "GenericError")), str(error.get("desc", "")), command)
        return answer.get("return")

    # --- reading ---

    def _message(self, line: bytes) -> dict[str, Any]:
        if not line:
            raise QmpConnectionError("the peer closed the connection")
        if not line.endswith(b"\n"):
            raise QmpConnectionError(f"the connection closed in the middle of a message ({len(line)} bytes without a newline)")
        try:
            message = _decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            raise QmpConnectionError(f"not JSON ({e}): {line[:120]!r}") from None
        if not isinstance(message, dict):
            raise QmpConnectionError(f"not a QMP message: {line[:120]!r}")
        return message

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    line = await self._reader.readline()
                except ValueError:  # LimitOverrunError, wrapped by readline: the rest is lost
                    raise QmpConnectionError(f"a message longer than {self._line_limit} bytes") from None
                except OSError as e:
                    raise QmpConnectionError(f"reading: {e.strerror or e}") from None
                message = self._message(line)
                if "event" in message:
                    # Asynchronous events (STOP, RESUME, BLOCK_IO_ERROR...) are not answers; we poll.
                    self.events += 1
                    continue
                if "return" not in message and "error" not in message:
                    raise QmpConnectionError(f"neither an answer nor an event: {line[:120]!r}")
                cid = message.get("id")
                if cid is None and "error" in message and len(self._pending) == 1:
                    # QEMU answers a request it could not parse with an id-less error; ours are
                    # always well formed, so this is for the one command in flight.
                    cid = next(iter(self._pending))
                future = self._pending.get(cid) if isinstance(cid, int) else None
                if future is None:
                    late = self._late.pop(cid, None) if isinstance(cid, int) else None
                    log.debug("QMP %s: dropped an answer nobody waits for (id %r, %s)", self.path, cid, late)
                    continue
                self._late.clear()  # answers come in order: every older late command was answered
                if not future.done():
                    future.set_result(message)
        except QmpConnectionError as e:
            self._kill(str(e))
        except asyncio.CancelledError:
            self._kill("the connection was closed")
            raise
        except Exception as e:  # noqa: BLE001 - any surprise kills this connection, not the caller
            self._kill(f"reading: {type(e).__name__}: {e}")

    def _kill(self, reason: str) -> None:
        if self._dead is None:
            self._dead = reason
            log.debug("QMP %s: connection dead: %s", self.path, reason)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(QmpConnectionError(reason))
        self._pending.clear()
        self._late.clear()
        self._writer.close()

    # --- closing ---

    async def close(self) -> None:
        """Close the connection (idempotent); waiting commands raise QmpConnectionError."""
        self._kill("the connection was closed")
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    async def __aenter__(self) -> QmpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
