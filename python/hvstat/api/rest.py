"""REST routes: the node's latest sample and the service's health."""

from __future__ import annotations

import time
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.responses import ApiError, MsgspecResponse, check_params
from hvstat.models import Health, NodeMetrics
from hvstat.state import AppState

NODE_FIELDS = frozenset(f.name for f in msgspec.structs.fields(NodeMetrics))


async def node_metrics(request: Request) -> MsgspecResponse:
    """The latest node sample; ``?fields=a,b`` returns only those top-level fields."""
    check_params(request, {"fields"})
    state: AppState = request.app.state.hvstat
    sample = state.store.node
    if sample is None:
        raise ApiError(503, "no node sample yet", state.sources["node"].health().error)
    fields = request.query_params.get("fields")
    if fields is None:
        return MsgspecResponse(sample)
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    if not wanted:
        raise ApiError(400, "'fields' is empty", {"allowed": sorted(NODE_FIELDS)})
    unknown = sorted(set(wanted) - NODE_FIELDS)
    if unknown:
        raise ApiError(400, "unknown field in 'fields'", {"unknown": unknown, "allowed": sorted(NODE_FIELDS)})
    return MsgspecResponse({f: getattr(sample, f) for f in wanted})


async def health(request: Request) -> MsgspecResponse:
    check_params(request, set())
    state: AppState = request.app.state.hvstat
    sources = [s.health() for s in state.sources.values()]
    remote_write = state.remote_write.health() if state.remote_write is not None else None
    statuses: list[Literal["ok", "degraded", "error"]] = [s.status for s in sources]
    if remote_write is not None:
        statuses.append(remote_write.status)
    # The on-disk history: degraded while the disk refuses it (history goes on in memory).
    storage = state.rollups.health() if state.rollups is not None else None
    if storage is not None:
        statuses.append(storage.status)
    # The wall clock: degraded after a step or while it drifts (hvstat/clock.py).
    clock = state.clock.health()
    statuses.append(clock.status)
    status: Literal["ok", "degraded", "error"] = max(statuses, key=["ok", "degraded", "error"].index, default="ok")
    body = Health(
        status=status,
        version=state.version,
        uptime_secs=time.monotonic() - state.started,
        node=state.identity.info(),
        sources=sources,
        remote_write=remote_write,
        storage=storage,
        clock=clock,
    )
    return MsgspecResponse(body, status_code=200 if status != "error" else 503)


routes = [
    Route("/api/monitoring/node/metrics", node_metrics, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]
