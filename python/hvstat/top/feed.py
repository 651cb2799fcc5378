"""Where ``hvstat top`` gets its numbers: a running ``hvstat serve`` over ``/ws`` (ServerFeed), or
this process sampling the machine itself with the same sources the service runs (DirectFeed).
Both run on the app's event loop, write ``State`` and call ``changed(kinds)`` with what changed
("node", "containers", "vms", "processes", "users", "alerts", "banner", "detail")."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from hvstat.guests import CONTAINERS, VMS
from hvstat.models import (
    SERVER_MESSAGES,
    AlertList,
    AlertResolvedMessage,
    AlertTriggeredMessage,
    ContainerMetricsMessage,
    ContainersSample,
    ContainersSummaryMessage,
    ContainerSummary,
    ErrorMessage,
    HelloMessage,
    History,
    NodeMetrics,
    NodeMetricsMessage,
    ProcessesMessage,
    ProcessesSample,
    SeriesStats,
    SubscribedMessage,
    UsersMessage,
    VmMetricsMessage,
    VmsSample,
    VmsSummaryMessage,
    VmStatusChangedMessage,
    VmSummary,
)
from hvstat.settings import Settings
from hvstat.top.model import State

Changed = Callable[[set[str]], None]

BASE_TOPICS = ["node", "containers.summary", "vms.summary", "alerts"]
PROCESS_TOPICS = ["processes", "users"]
# Seconds of a guest's history fetched for its sparkline when its detail view opens.
BACKFILL_SECS = 600.0
RECONNECT_MAX_SECS = 10.0

def _server_decoder() -> msgspec.json.Decoder[Any]:
    import functools
    import operator

    union = functools.reduce(operator.or_, SERVER_MESSAGES)
    return msgspec.json.Decoder(union)


def default_url(settings: Settings) -> str:
    """The local service's /ws, from the config it would run with (a wildcard bind is reached on
    loopback)."""
    host = settings.server.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "wss" if settings.server.tls_cert else "ws"
    return f"{scheme}://{host}:{settings.server.port}/ws"


def http_base(ws_url: str) -> str:
    u = urllib.parse.urlsplit(ws_url)
    scheme = "https" if u.scheme == "wss" else "http"
    return f"{scheme}://{u.netloc}"


def ssl_context(url: str, cafile: str | None, insecure: bool) -> ssl.SSLContext | None:
    if not url.startswith("wss:"):
        return None
    ctx = ssl.create_default_context(cafile=cafile)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def server_answers(url: str, token: str | None, ctx: ssl.SSLContext | None, timeout: float = 1.0) -> str | None:
    """None when a server answers the handshake at ``url``, else why not."""
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        async with asyncio.timeout(timeout), connect(url, additional_headers=headers, ssl=ctx, max_size=None, compression=None) as ws:
            await ws.recv()
    except Exception as e:  # noqa: BLE001 - any failure means: no usable server
        return f"{type(e).__name__}: {e}"
    return None


class ServerFeed:
    """A ``/ws`` client on the dashboard's topics (docs/websocket.md, "Topics for a dashboard"),
    plus ``processes`` and ``users`` when the server has them, plus ``container:<id>`` or
    ``vm:<id>`` while a detail view is open. Reconnects with a growing delay after any loss."""

    def __init__(self, url: str, token: str | None, ctx: ssl.SSLContext | None) -> None:
        self.url, self.token, self.ctx = url, token, ctx
        self.http = http_base(url)
        self._decoder = _server_decoder()
        self._ws: Any = None
        self._processes_ok = True
        self._focus: str | None = None
        self._pending: list[list[str]] = []

    @property
    def label(self) -> str:
        return f"server {self.url}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def run(self, state: State, changed: Changed) -> None:
        from websockets.asyncio.client import connect

        delay = 1.0
        while True:
            reason = "closed"
            try:
                async with connect(
                    self.url, additional_headers=self._headers() or None, ssl=self.ctx, max_size=None, compression=None, open_timeout=5
                ) as ws:
                    self._ws = ws
                    self._pending = []
                    self._processes_ok = True
                    delay = 1.0
                    await self._session(ws, state, changed)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure is shown in the banner and retried
                reason = str(e) or type(e).__name__
            finally:
                self._ws = None
            state.banner = f"connection to {self.url} lost ({reason}); reconnecting in {delay:.0f}s; showing the last data"
            changed({"banner"})
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECS)

    def _topics(self) -> list[str]:
        topics = list(BASE_TOPICS)
        if self._processes_ok:
            topics += PROCESS_TOPICS
        if self._focus is not None:
            topics.append(self._focus)
        return topics

    async def _subscribe(self, topics: list[str]) -> None:
        if self._ws is None:
            return
        self._pending.append(topics)
        await self._ws.send(msgspec.json.encode({"type": "subscribe", "topics": topics}).decode())

    async def focus(self, entity: str | None, state: State, changed: Changed) -> None:
        """Follow ``entity``'s full sample (None: no detail view)."""
        self._focus = entity
        await self._subscribe(self._topics())
        if entity is not None:
            asyncio.get_running_loop().create_task(self._backfill(entity, state, changed))

    async def _backfill(self, entity: str, state: State, changed: Changed) -> None:
        import httpx

        kind, _, gid = entity.partition(":")
        url = f"{self.http}/api/{kind}s/{urllib.parse.quote(gid, safe='')}/history"
        try:
            async with httpx.AsyncClient(verify=self.ctx if self.ctx is not None else True, timeout=5) as client:
                r = await client.get(url, params={"since": f"{time.time() - BACKFILL_SECS:.0f}", "fields": "cpu_usage_percent"}, headers=self._headers())
            if r.status_code != 200:
                return
            h = msgspec.json.decode(r.content, type=History)
        except (httpx.HTTPError, msgspec.DecodeError):
            return
        series = h.series.get("cpu_usage_percent")
        values = series.avg if isinstance(series, SeriesStats) else series or []
        # The live points since the last history point are already in the sparkline.
        state.backfill(entity, [None if v is None else float(v) for v in values[:-1]])
        changed({"detail"})

    async def _alerts(self, state: State, changed: Changed) -> None:
        import httpx

        try:
            async with httpx.AsyncClient(verify=self.ctx if self.ctx is not None else True, timeout=5) as client:
                r = await client.get(f"{self.http}/api/alerts", headers=self._headers())
            if r.status_code != 200:
                state.alerts_note = f"GET /api/alerts: {r.status_code}"
                return
            body = msgspec.json.decode(r.content, type=AlertList)
        except (httpx.HTTPError, msgspec.DecodeError) as e:
            state.alerts_note = f"GET /api/alerts: {e}"
            return
        for a in body.active:
            if a.state == "firing" and a.fired_at is not None and a.value is not None:
                state.alerts.setdefault(
                    a.alert_id,
                    AlertTriggeredMessage(
                        node_id="",
                        timestamp=a.fired_at,
                        alert_id=a.alert_id,
                        rule=a.rule,
                        severity=a.severity,
                        entity=a.entity,
                        entity_name=a.entity_name,
                        item=a.item,
                        metric=a.metric,
                        op=a.op,
                        value=a.value,
                        threshold=a.threshold,
                        since=a.since,
                        message=a.message or "",
                    ),
                )
        changed({"alerts"})

    async def _session(self, ws: Any, state: State, changed: Changed) -> None:
        first = True
        async for raw in ws:
            m = self._decoder.decode(raw)
            if first:
                first = False
                if not isinstance(m, HelloMessage):
                    raise RuntimeError(f"expected hello, got {type(m).__name__}")
                state.banner = None
                state.source = self.label
                state.alerts = {}
                state.alerts_note = None
                if m.node is not None:
                    state.node = m.node
                if m.containers is not None:
                    state.set_containers(m.containers.containers)
                if m.vms is not None:
                    state.set_vms(m.vms.vms)
                changed({"banner", "node", "containers", "vms", "alerts"})
                await self._subscribe(self._topics())
                asyncio.get_running_loop().create_task(self._alerts(state, changed))
                continue
            self.handle(m, state, changed)
            if isinstance(m, ErrorMessage) and self._processes_ok and self._last_error_was_processes(m):
                self._processes_ok = False
                state.processes_note = f"the server has no process data ({m.error})"
                changed({"processes", "users"})
                await self._subscribe(self._topics())

    def _last_error_was_processes(self, m: ErrorMessage) -> bool:
        d = m.detail if isinstance(m.detail, dict) else {}
        if m.error == "unknown topic":
            return any(t in PROCESS_TOPICS for t in d.get("unknown", []))
        return "process" in m.error

    def handle(self, m: Any, state: State, changed: Changed) -> None:
        if isinstance(m, NodeMetricsMessage):
            state.node = m.sample
            changed({"node"})
        elif isinstance(m, ContainersSummaryMessage):
            state.set_containers(m.containers)
            changed({"containers"})
        elif isinstance(m, VmsSummaryMessage):
            state.set_vms(m.vms)
            changed({"vms"})
        elif isinstance(m, ContainerMetricsMessage):
            for c in m.containers:
                state.container_detail[c.id] = c
            for gone in m.vanished:
                state.container_detail.pop(gone, None)
            changed({"detail"})
        elif isinstance(m, VmMetricsMessage):
            state.vm_detail[m.vm_id] = m.sample
            changed({"detail"})
        elif isinstance(m, VmStatusChangedMessage):
            state.vm_status(m.vm_id, m.status, m.vanished)
            changed({"vms"})
        elif isinstance(m, ProcessesMessage):
            state.processes, state.processes_total, state.process_host = m.processes, m.total, m.host
            state.load_status = m.status
            state.processes_note = None
            changed({"processes", "node"})
        elif isinstance(m, UsersMessage):
            state.users, state.load_status = m.users, m.status
            state.processes_note = None
            changed({"users", "node"})
        elif isinstance(m, AlertTriggeredMessage | AlertResolvedMessage):
            state.alert(m)
            changed({"alerts"})
        elif isinstance(m, SubscribedMessage | ErrorMessage):
            if self._pending:
                self._pending.pop(0)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()


class _Bus:
    """What the sources publish to (sources/base.py's Bus protocol): straight into the state, on
    the event loop; nothing is stored (the sources' samples are the state)."""

    def __init__(self, feed: DirectFeed) -> None:
        self.feed = feed

    def record(self, samples: Sequence[Any]) -> None:
        pass

    def publish(self, samples: Sequence[Any]) -> None:
        for s in samples:
            self.feed.take(s)

    def deliver(self, samples: Sequence[Any]) -> None:
        self.publish(samples)


def raise_fd_limit() -> tuple[int, int]:
    """The soft RLIMIT_NOFILE raised to the hard one, as ``hvstat serve`` does at start (app.py):
    the container sampler keeps ~20 files per guest open, so a shell's usual soft limit of 1024
    runs out at ~50 guests. Returns (before, now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# Descriptors held back from the samplers for this process (Textual, imports, the samplers' own
# per-tick opens): released one at a time when an open fails for want of them.
FD_RESERVE = 32


class DirectFeed:
    """The machine sampled by this process: the service's own sources (node, containers, VMs,
    processes, as the config enables them), every ``interval`` seconds, without a server.

    The samplers keep files open (about 20 per container, 1-2 per process within half the soft
    RLIMIT_NOFILE): with as many guests as the limit allows, nothing else in this process could
    open a file, and guests past it read as empty. So the soft limit is raised to the hard one, a
    reserve of descriptors is kept, and when the samplers run out a banner says so."""

    def __init__(self, settings: Settings, interval: float) -> None:
        self.settings, self.interval = settings, interval
        self._state: State | None = None
        self._changed: Changed | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sources: dict[str, Any] = {}
        self._reserve: list[int] = []
        self.fd_note: str | None = None

    @property
    def label(self) -> str:
        return f"direct sampling every {self.interval:g}s (no server)"

    async def run(self, state: State, changed: Changed) -> None:
        from hvstat.sources.registry import build_sources

        self._state, self._changed = state, changed
        state.source = self.label
        state.alerts_note = "evaluated by hvstat serve only"
        state.processes_note = "process monitoring is off ([processes] enabled)" if not self.settings.processes.enabled else "waiting for the first process sample"
        raise_fd_limit()
        with contextlib.suppress(OSError):
            for _ in range(FD_RESERVE):
                self._reserve.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        self._sources = build_sources(self.settings)
        bus = _Bus(self)
        for src in self._sources.values():
            src.interval_secs = self.interval
            src.tick_timeout_secs = max(self.interval, 5.0)
            src.attach(bus)
        await asyncio.gather(*(self._start(name, src) for name, src in self._sources.items()))
        try:
            await asyncio.gather(*(src.run() for src in self._sources.values()))
        finally:
            for src in self._sources.values():
                with contextlib.suppress(Exception):
                    await src.close()
            for fd in self._reserve:
                os.close(fd)
            self._reserve = []

    def _check_fds(self, state: State) -> None:
        """After a sample: can this process still open a file? If not, the samplers took every
        descriptor (guests past that point read as empty): say so, and give back part of the
        reserve so that the terminal side keeps working."""
        try:
            os.close(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            return
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                return
        for _ in range(min(8, len(self._reserve))):
            os.close(self._reserve.pop())
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        note = (
            f"out of file descriptors (limit {soft}): the samplers keep ~20 files per container open, "
            f"so some guests read as empty; raise the hard limit (ulimit -Hn) or use hvstat serve"
        )
        if state.banner is None or state.banner == self.fd_note:
            state.banner = note
        self.fd_note = note

    async def _start(self, name: str, src: Any) -> None:
        try:
            await src.start()
        except Exception as e:  # noqa: BLE001 - one source that cannot start leaves the others
            if self._state is not None and self._changed is not None:
                self._state.banner = f"{name}: {type(e).__name__}: {e}"
                self._changed({"banner"})

    async def focus(self, entity: str | None, state: State, changed: Changed) -> None:
        """Every guest's full sample is already here."""

    def take(self, s: Any) -> None:
        state, changed = self._state, self._changed
        if state is None or changed is None:
            return
        if isinstance(s, NodeMetrics):
            state.node = s
            changed({"node"})
        elif isinstance(s, ContainersSample):
            summaries: list[ContainerSummary] = [CONTAINERS.summary(c) for c in s.containers]  # type: ignore[misc]
            state.set_containers(summaries)
            state.container_detail = {c.id: c for c in s.containers}
            banner = state.banner
            self._check_fds(state)
            changed({"containers", "detail"} | ({"banner"} if state.banner != banner else set()))
        elif isinstance(s, VmsSample):
            vms: list[VmSummary] = [VMS.summary(v) for v in s.vms]  # type: ignore[misc]
            state.set_vms(vms)
            state.vm_detail = {v.id: v for v in s.vms}
            changed({"vms", "detail"})
        elif isinstance(s, ProcessesSample):
            state.processes, state.processes_total, state.process_host = s.processes, s.total, s.host
            state.users, state.load_status = s.users, s.status
            state.processes_note = None
            changed({"processes", "users", "node"})

    async def close(self) -> None:
        pass
