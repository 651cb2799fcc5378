"""create_app(settings): the routing table plus a lifespan that owns every background task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from hvstat import __version__
from hvstat.api import containers, history, prometheus, rest, ws
from hvstat.api.openapi import openapi
from hvstat.api.responses import ApiError, MsgspecResponse, check_params, on_api_error, on_http_exception, on_unexpected
from hvstat.config import Settings
from hvstat.hub import Hub
from hvstat.sources.base import Source
from hvstat.sources.containers import ContainerSource
from hvstat.sources.node import NodeSource
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
                "/api/containers/{ref}/history",
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


def create_app(settings: Settings) -> Starlette:
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
            resolve_container=ws.container_resolver(store),
        )
        # Sources write the store, then hand the sample to the hub (on the event loop).
        node = NodeSource(settings.node, m.node_metrics_interval, store, publish=hub.publish_node)
        guests = (
            ContainerSource(settings.containers, settings.node, m.vm_metrics_interval, store, publish=hub.publish_containers)
            if settings.containers.enabled
            else None
        )
        sources: tuple[Source, ...] = tuple(s for s in (node, guests) if s is not None)
        # Every source takes its first sample before the server accepts requests.
        await asyncio.gather(*(s.start() for s in sources))
        app.state.hvstat = AppState(settings, store, node, guests, sources, __version__, time.monotonic(), hub)
        tasks = [asyncio.create_task(s.run(), name=f"source:{s.name}") for s in sources]
        log.info("hvstat %s: sources started: %s", __version__, ", ".join(s.name for s in sources))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            *rest.routes,
            *containers.routes,
            *history.routes,
            *ws.routes,
            Route("/metrics", prometheus.metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_exception, Exception: on_unexpected},
    )
