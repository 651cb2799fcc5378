"""History routes: ``GET /api/monitoring/node/history``, ``GET /api/containers/{ref}/history`` and
``GET /api/vms/{ref}/history``.

Query parameters (docs/api.md, "History"): ``since`` and ``until`` (unix seconds; default the hour
up to now), ``step`` (seconds; default: every sample in the full-resolution window, else the
min/avg/max buckets), ``fields`` (comma-separated; default all of the kind's history fields).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.guests import REF, source_of
from hvstat.api.responses import ApiError, MsgspecResponse, check_params, number_param
from hvstat.guests import KINDS, GuestKind
from hvstat.history import HistoryService
from hvstat.models import History
from hvstat.state import AppState
from hvstat.store import HistoryQueryError, Kind, Series, Store

PARAMS = {"since", "until", "step", "fields"}
# The range when `since` is not given: this long before `until`.
DEFAULT_RANGE_SECS = 3600.0


def _fields(request: Request, kind: Kind) -> list[str]:
    allowed = sorted(kind.field_index)
    raw = request.query_params.get("fields")
    if raw is None:
        return [f.name for f in kind.fields]
    wanted = list(dict.fromkeys(f.strip() for f in raw.split(",") if f.strip()))
    if not wanted:
        raise ApiError(400, "'fields' is empty", {"allowed": allowed})
    unknown = [f for f in wanted if f not in kind.field_index]
    if unknown:
        raise ApiError(400, "unknown field in 'fields'", {"unknown": unknown, "allowed": allowed})
    return wanted


async def answer_history(request: Request, store: Store, kind: Kind, series: Series | None, entity: str, name: str | None) -> MsgspecResponse:
    """The History body of one entity (``entity`` "node" or "<kind>:<key>") from the request's
    range, step and fields: memory or disk, as the HistoryService decides."""
    fields = _fields(request, kind)
    since = number_param(request, "since", "bad range")
    until = number_param(request, "until", "bad range")
    step = number_param(request, "step", "bad step")
    if until is None:
        until = store.clock()
    if since is None:
        since = max(0.0, until - DEFAULT_RANGE_SECS)
    for key, value in (("since", since), ("until", until)):
        if value < 0:
            raise ApiError(400, "bad range", {key: value, "reason": "since and until are unix seconds, >= 0"})
    if since > until:
        raise ApiError(400, "bad range", {"since": since, "until": until, "reason": "since is after until"})
    history = history_service(request)
    key = entity.partition(":")[2] or "node"
    try:
        # monitoring.history_max_points (default 10000: about 1.5 MB of JSON with every container field).
        max_points = request.app.state.hvstat.settings.monitoring.history_max_points
        if history.uses_memory(series, since, step):
            answer = history.query(kind, key, series, since=since, until=until, step=step, fields=fields, max_points=max_points)
        else:  # the disk: off the event loop
            answer = await asyncio.to_thread(history.query, kind, key, series, since=since, until=until, step=step, fields=fields, max_points=max_points)
    except HistoryQueryError as e:
        raise ApiError(400, e.error, e.detail) from None
    result = answer.result
    return MsgspecResponse(
        History(
            entity=entity,
            name=name,
            resolution=result.resolution,
            step=result.step,
            tier=answer.tier,
            since=since,
            until=until,
            timestamps=result.timestamps,
            series=result.series,
        )
    )


def history_service(request: Request) -> HistoryService:
    state: AppState = request.app.state.hvstat
    return state.history if state.history is not None else HistoryService(state.store)


def history_store(request: Request) -> Store:
    """The store, or 404 when no history is kept (neither memory nor disk)."""
    state: AppState = request.app.state.hvstat
    if not history_service(request).enabled:
        raise ApiError(404, "history is disabled", {"setting": "monitoring.enable_history"})
    return state.store


async def node_history(request: Request) -> MsgspecResponse:
    check_params(request, PARAMS)
    store = history_store(request)
    return await answer_history(request, store, store.node_kind, store.series("node"), "node", None)


def _guest_history(kind: GuestKind[Any, Any]) -> Callable[[Request], Awaitable[MsgspecResponse]]:
    async def guest_history(request: Request) -> MsgspecResponse:
        """A guest's history: by any reference its ``/metrics`` route takes, or, once it vanished,
        by its full id for as long as its history is kept."""
        check_params(request, PARAMS)
        state, _ = source_of(request, kind)
        store = history_store(request)
        guests = kind.latest(store)
        ref = request.path_params["ref"]
        series = store.series(kind.name, ref)
        name = series.name if series is not None else None
        if series is not None and ref not in guests:
            gid = ref  # vanished, still in history
        elif ref not in guests and (disk := await asyncio.to_thread(history_service(request).on_disk, kind.name, ref)) is not None:
            gid, name = ref, disk[0]  # vanished and gone from memory (or from before a restart): on disk
        else:
            gid = kind.resolve(guests, ref).id
            series = store.series(kind.name, gid)
            name = series.name if series is not None else None
        return await answer_history(request, store, kind.history(store), series, f"{kind.name}:{gid}", name)

    guest_history.__name__ = f"{kind.name}_history"
    return guest_history


routes = [
    Route("/api/monitoring/node/history", node_history, methods=["GET"]),
    *(Route(f"/api/{k.plural}/{REF[k.name]}/history", _guest_history(k), methods=["GET"]) for k in KINDS),
]
