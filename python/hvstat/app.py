"""create_app(settings): the routing table plus a lifespan that owns every background task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hvstat import __version__
from hvstat.alerts.engine import AlertEngine
from hvstat.alerts.notify import QueueNotifier, build_notifiers
from hvstat.alerts.rules import compile_rules, every_rule
from hvstat.api import alerts as alert_routes
from hvstat.api import fleet as fleet_routes
from hvstat.api import guests, history, processes, prometheus, rest, ui, vms, ws
from hvstat.api.auth import SecurityMiddleware, security_middleware_options
from hvstat.api.openapi import openapi
from hvstat.api.responses import ApiError, MsgspecResponse, check_params, error_response, on_api_error, on_http_exception, on_unexpected
from hvstat.bus import SampleBus
from hvstat.clock import Clock, ClockWatch, SystemClock
from hvstat.file_sink import FileSink
from hvstat.fleet import FleetView
from hvstat.guests import KINDS, GuestLookupError
from hvstat.history import HistoryService
from hvstat.hub import Hub
from hvstat.identity import NodeIdentity
from hvstat.meta import SourceStats
from hvstat.models import SourceHealth
from hvstat.reload import Builders, Reloader
from hvstat.remote_write import RemoteWriter
from hvstat.rollups import RollupWriter
from hvstat.settings import Settings
from hvstat.sources.registry import build_sources
from hvstat.state import AppState
from hvstat.store import VM_EVENTS_KEPT, Store
from hvstat.tokens import load_tokens, warn_if_readable_by_others

log = logging.getLogger(__name__)


async def index(request: Request) -> MsgspecResponse:
    """What this service is and its endpoints: the paths of the routing table."""
    check_params(request, set())
    endpoints = [r.path for r in request.app.routes if r.path != "/" and not r.path.startswith("/ui/")]
    return MsgspecResponse({"service": "hvstat", "version": __version__, "endpoints": endpoints})


async def on_lookup_error(_: Request, exc: Exception) -> Response:
    """A guest reference that names none (404) or several (409)."""
    assert isinstance(exc, GuestLookupError)
    return error_response(409 if exc.ambiguous else 404, exc.error, exc.detail)


def raise_fd_limit() -> None:
    """Kept-open readers take about 20 descriptors per guest; systemd's default soft limit (1024)
    runs out at ~50 guests. Raise the soft limit to the hard one, as Go programs do at start."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.info("raised the open-file limit from %d to %d", soft, hard)
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-file limit from %d: %s", soft, e)


def alert_engine(settings: Settings, hub: Hub, notifiers: list[QueueNotifier], clock: ClockWatch | None = None) -> AlertEngine | None:
    """The rules of ``[alerts]`` (validated by load_settings already), publishing their messages on
    the hub's ``alerts`` topic and handing them to ``notifiers``; None when alerts are disabled."""
    a = settings.alerts
    if not a.enabled:
        return None
    rules = compile_rules(every_rule(a))
    off = {"container": not settings.containers.enabled, "vm": not settings.vms.enabled}
    for r in rules:
        if off.get(r.kind):
            log.warning("alert rule %r is never evaluated: %s monitoring is disabled ([%ss] enabled = false)", r.name, r.kind, r.kind)
    return AlertEngine(
        rules,
        node_id=hub.node_id,
        publish=lambda message: hub.publish(message, ("alerts",)),
        notifiers=notifiers,
        history_size=a.history_size,
        clock_health=None if clock is None else clock.health,
    )


def remote_writer(
    settings: Settings,
    sources: Callable[[], list[SourceHealth]],
    alerts: AlertEngine | None,
    rollups: RollupWriter | None = None,
    identity: NodeIdentity | None = None,
    stats: Callable[[], list[SourceStats]] = list,
    clock: ClockWatch | None = None,
) -> RemoteWriter | None:
    """``[remote_write]``'s writer, or None when it is off. Its batches come every
    ``remote_write.interval`` seconds (default: the node's interval)."""
    rw = settings.remote_write
    if not rw.enabled:
        return None
    interval = rw.interval if rw.interval is not None else settings.monitoring.node_metrics_interval
    writer = RemoteWriter(
        rw,
        interval,
        version=__version__,
        sources=sources,
        alerts=alerts,
        storage=None if rollups is None else rollups.counts,
        identity=identity,
        stats=stats,
        clock=clock,
        on_date=None if clock is None else clock.note_receiver_date,
    )
    log.info("remote write to %s every %gs, buffered in %s", rw.url, interval, rw.buffer_dir)
    return writer


def file_sink(settings: Settings, node_id: str) -> FileSink | None:
    """``[outputs.file]``'s sink, or None when it is off."""
    f = settings.outputs.file
    return FileSink(f, node_id=node_id) if f.enabled else None


def create_app(settings: Settings, reload_settings: Callable[[], Settings] | None = None, *, clock: Clock | None = None) -> Starlette:
    """``reload_settings`` (``hvstat serve`` passes it) loads the config again on SIGHUP (hvstat/reload.py).
    ``clock``: the clocks the service watches (hvstat/clock.py; tests step a fake one), else the machine's."""
    # Tokens are read once, here (load_settings validated them already); the middleware checks
    # every request before any route runs (hvstat/api/auth.py).
    tokens = load_tokens(settings.server)
    if settings.server.token_file is not None:
        warn_if_readable_by_others(settings.server.token_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise_fd_limit()
        async with running(settings, reload_settings, clock) as state:
            app.state.hvstat = state
            yield

    return Starlette(
        routes=[
            *ui.make_routes(index),  # "/": the dashboard for browsers, this JSON index otherwise
            *rest.routes,
            *guests.routes,
            *vms.routes,
            *processes.routes,
            *history.routes,
            *alert_routes.routes,
            *fleet_routes.routes,
            *ws.routes,
            Route("/metrics", prometheus.metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=lifespan,
        middleware=[Middleware(SecurityMiddleware, **security_middleware_options(settings.server, tokens))],
        exception_handlers={ApiError: on_api_error, GuestLookupError: on_lookup_error, HTTPException: on_http_exception, Exception: on_unexpected},
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, reload_settings: Callable[[], Settings] | None = None, clock: Clock | None = None) -> AsyncIterator[AppState]:
    """The whole data path, running: sources -> store -> bus -> hub, alerts, remote write; every
    source has its first sample when this yields, and everything is stopped when it returns."""
    m = settings.monitoring
    identity = NodeIdentity.of(settings.server.node_name, settings.labels)
    clock_watch = ClockWatch(clock or SystemClock())
    if identity.machine_id.error is not None:
        log.warning("no machine id: %s", identity.machine_id.error)
    store = Store.from_settings(m, user_interval=settings.processes.interval_secs(m))
    sources = build_sources(settings)
    hub = Hub(
        store,
        version=__version__,
        max_clients=m.max_ws_clients,
        queue_size=m.ws_queue_size,
        kinds=[k for k in KINDS if k.plural in sources],
        processes_top=settings.processes.top if "processes" in sources else None,
        node_name=identity.name,
        fleet=settings.fleet.query_url is not None,
    )
    notifiers = build_notifiers(settings.alerts, version=__version__) if settings.alerts.enabled else []
    alerts = alert_engine(settings, hub, notifiers, clock_watch)
    # [storage] path: the on-disk history, one more listener (hvstat/rollups.py); "" or unset
    # (Settings() built in code; load_settings fills in the default path) keeps history in memory.
    rollups = RollupWriter(settings.storage, node_interval=m.node_metrics_interval) if settings.storage.path else None
    if rollups is not None:
        rollups.start()  # StorageLockedError when another process holds the path: no start
        if alerts is not None:
            alerts.on_resolved = rollups.record_alert
    health = lambda: [s.health() for s in sources.values()]  # noqa: E731 - handed to remote write, now and after a reload
    stats = lambda: [s.stats() for s in sources.values()]  # noqa: E731
    remote_write = remote_writer(settings, health, alerts, rollups, identity, stats, clock_watch)
    file_output = file_sink(settings, hub.node_id)
    bus = SampleBus(store)
    bus.subscribe("hub", hub)
    bus.subscribe("clock", clock_watch)  # each node sample checks the clocks
    if rollups is not None:
        bus.subscribe("rollups", rollups)  # queued for its thread
    if alerts is not None:
        bus.subscribe("alerts", alerts)
    if remote_write is not None:
        bus.subscribe("remote_write", remote_write)  # queued for its next batch
    if file_output is not None:
        file_output.start()
        bus.subscribe("file_output", file_output)  # queued for its thread
    for s in sources.values():
        s.attach(bus)
    # Every source takes its first sample before the server accepts requests.
    await asyncio.gather(*(s.start() for s in sources.values()))
    for n in notifiers:
        n.start()
    if remote_write is not None:
        remote_write.start()
    history = HistoryService(store, rollups)
    if rollups is not None and rollups.reader is not None:
        # What earlier runs kept: GET /api/alerts and GET /api/vms/events survive a restart.
        if alerts is not None:
            alerts.restore_history(history.resolved_alerts([], settings.alerts.history_size))
        for event in history.vm_events([], None, VM_EVENTS_KEPT):
            store.put_vm_event(event)
    fleet = FleetView(settings.fleet) if settings.fleet.query_url is not None else None
    state = AppState(
        settings, store, sources, __version__, time.monotonic(), hub, bus, identity, clock_watch,
        alerts=alerts, remote_write=remote_write, history=history, rollups=rollups, file_output=file_output, fleet=fleet,
    )  # fmt: skip
    tasks = [asyncio.create_task(s.run(), name=f"source:{s.name}") for s in sources.values()]
    tasks.append(asyncio.create_task(hub.pace_gc(), name="hub:gc"))  # full GCs between fan-outs
    log.info("hvstat %s on node %s: sources started: %s", __version__, identity.name, ", ".join(sources))
    builders = Builders(
        remote_writer=lambda s: remote_writer(s, health, alerts, rollups, state.identity, stats, clock_watch),  # [labels] as reloaded
        file_sink=lambda s: file_sink(s, hub.node_id),
        version=__version__,
    )
    reloader = Reloader(reload_settings, state, builders, notifiers) if reload_settings is not None else None
    if reloader is not None and reloader.install():
        log.info("SIGHUP reloads the configuration")
    try:
        yield state
    finally:
        if reloader is not None:
            reloader.uninstall()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sources.values()), return_exceptions=True)
        # A reload may have replaced remote write and the file output: the state has the ones running.
        if state.remote_write is not None:
            await state.remote_write.aclose()  # what is still queued goes to the buffer, for the next start
        if state.file_output is not None:
            await asyncio.to_thread(state.file_output.close)  # what is queued is written
        if rollups is not None:
            await asyncio.to_thread(rollups.close)  # pending and open buckets to disk
        if fleet is not None:
            await fleet.aclose()
        # Queued notifications get a short grace to go out.
        await asyncio.gather(*(n.aclose() for n in notifiers), return_exceptions=True)
        log.info("sources stopped")
