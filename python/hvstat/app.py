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
from starlette.routing import Route

from hvstat import __version__
from hvstat.api import alerts as alert_routes
from hvstat.api import containers, history, prometheus, rest, ui, vms, ws
from hvstat.api.auth import SecurityMiddleware, load_tokens, security_middleware_options, warn_if_readable_by_others
from hvstat.api.openapi import openapi
from hvstat.api.responses import ApiError, MsgspecResponse, check_params, on_api_error, on_http_exception, on_unexpected
from hvstat.alerts.engine import AlertEngine, both
from hvstat.alerts.notify import QueueNotifier, build_notifiers
from hvstat.alerts.rules import compile_rules
from hvstat.config import Settings
from hvstat.hub import Hub
from hvstat.models import SourceHealth
from hvstat.reload import Reloader
from hvstat.remote_write import RemoteWriter
from hvstat.sources.base import Source
from hvstat.sources.containers import ContainerSource
from hvstat.sources.node import NodeSource
from hvstat.sources.vms import VmSource
from hvstat.state import AppState
from hvstat.store import Store

log = logging.getLogger(__name__)


async def index(request: Request) -> MsgspecResponse:
    check_params(request, set())
    return MsgspecResponse(
        {
            "service": "hvstat",
            "version": __version__,
            "endpoints": [
                "/api/monitoring/node/metrics",
                "/api/containers",
                "/api/containers/{ref}/metrics",
                "/api/monitoring/node/history",
                "/api/alerts",
                "/api/alerts/rules",
                "/api/containers/{ref}/history",
                "/api/vms",
                "/api/vms/events",
                "/api/vms/{ref}/metrics",
                "/api/vms/{ref}/history",
                "/ws",
                "/health",
                "/metrics",
                "/openapi.json",
            ],
        }
    )


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


def alert_engine(settings: Settings, hub: Hub, notifiers: list[QueueNotifier]) -> AlertEngine | None:
    """The rules of ``[alerts]`` (validated by load_settings already), publishing their messages on
    the hub's ``alerts`` topic and handing them to ``notifiers``; None when alerts are disabled."""
    a = settings.alerts
    if not a.enabled:
        return None
    rules = compile_rules(a.rules)
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
    )


def remote_writer(settings: Settings, sources: Callable[[], list[SourceHealth]], alerts: AlertEngine | None) -> RemoteWriter | None:
    """``[remote_write]``'s writer, or None when it is off. Its batches come every
    ``remote_write.interval`` seconds (default: the node's interval)."""
    rw = settings.remote_write
    if not rw.enabled:
        return None
    interval = rw.interval if rw.interval is not None else settings.monitoring.node_metrics_interval
    writer = RemoteWriter(rw, interval, version=__version__, sources=sources, alerts=alerts)
    log.info("remote write to %s every %gs, buffered in %s", rw.url, interval, rw.buffer_dir)
    return writer


def create_app(settings: Settings, reload_settings: Callable[[], Settings] | None = None) -> Starlette:
    """``reload_settings`` (``hvstat serve`` passes it) loads the config again on SIGHUP (hvstat/reload.py)."""
    # Tokens are read once, here (load_settings validated them already); the middleware checks
    # every request before any route runs (hvstat/api/auth.py).
    tokens = load_tokens(settings.server)
    if settings.server.token_file is not None:
        warn_if_readable_by_others(settings.server.token_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise_fd_limit()
        m = settings.monitoring
        store = Store.from_settings(m)
        hub = Hub(
            store,
            version=__version__,
            max_clients=m.max_ws_clients,
            queue_size=m.ws_queue_size,
            containers_enabled=settings.containers.enabled,
            vms_enabled=settings.vms.enabled,
            resolve_container=ws.container_resolver(store),
            resolve_vm=ws.vm_resolver(store),
        )
        notifiers = build_notifiers(settings.alerts, version=__version__) if settings.alerts.enabled else []
        alerts = alert_engine(settings, hub, notifiers)
        # Sources write the store, then hand the sample to the hub and to the alert engine (on the
        # event loop; one failing does not keep the sample from the other).
        on_node = hub.publish_node if alerts is None else both(hub.publish_node, alerts.on_node)
        on_containers = hub.publish_containers if alerts is None else both(hub.publish_containers, alerts.on_containers)
        on_vms = hub.publish_vms if alerts is None else both(hub.publish_vms, alerts.on_vms)
        # Remote write queues every published sample for its next batch (hvstat/remote_write.py).
        source_list: list[Source] = []
        remote_write = remote_writer(settings, lambda: [s.health() for s in source_list], alerts)
        if remote_write is not None:
            on_node = both(on_node, remote_write.on_node)
            on_containers = both(on_containers, remote_write.on_containers)
            on_vms = both(on_vms, remote_write.on_vms)
        node = NodeSource(settings.node, m.node_metrics_interval, store, publish=on_node)
        guests = (
            ContainerSource(settings.containers, settings.node, m.vm_metrics_interval, store, publish=on_containers)
            if settings.containers.enabled
            else None
        )
        vm_source = (
            VmSource(settings.vms, settings.node, m.vm_metrics_interval, store, publish=on_vms, publish_status=hub.publish_vm_status)
            if settings.vms.enabled
            else None
        )
        sources: tuple[Source, ...] = tuple(s for s in (node, guests, vm_source) if s is not None)
        source_list.extend(sources)
        # Every source takes its first sample before the server accepts requests.
        await asyncio.gather(*(s.start() for s in sources))
        for n in notifiers:
            n.start()
        if remote_write is not None:
            remote_write.start()
        app.state.hvstat = AppState(
            settings, store, node, guests, sources, __version__, time.monotonic(), hub, alerts=alerts, vm_source=vm_source, remote_write=remote_write
        )
        tasks = [asyncio.create_task(s.run(), name=f"source:{s.name}") for s in sources]
        tasks.append(asyncio.create_task(hub.pace_gc(), name="hub:gc"))  # full GCs between fan-outs
        log.info("hvstat %s: sources started: %s", __version__, ", ".join(s.name for s in sources))
        reloader = Reloader(reload_settings, settings, hub) if reload_settings is not None else None
        if reloader is not None and reloader.install():
            log.info("SIGHUP reloads the configuration")
        try:
            yield
        finally:
            if reloader is not None:
                reloader.uninstall()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if vm_source is not None:
                await vm_source.close()
            if remote_write is not None:
                await remote_write.aclose()  # what is still queued goes to the buffer, for the next start
            # Queued notifications get a short grace to go out.
            await asyncio.gather(*(n.aclose() for n in notifiers), return_exceptions=True)
            log.info("sources stopped")

    return Starlette(
        routes=[
            *ui.make_routes(index),  # "/": the dashboard for browsers, this JSON index otherwise
            *rest.routes,
            *containers.routes,
            *vms.routes,
            *history.routes,
            *alert_routes.routes,
            *ws.routes,
            Route("/metrics", prometheus.metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=lifespan,
        middleware=[Middleware(SecurityMiddleware, **security_middleware_options(settings.server, tokens))],
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_exception, Exception: on_unexpected},
    )
