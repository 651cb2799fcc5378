"""Guest routes, for every kind (hvstat.guests): the list, and one guest's latest sample.

``GET /api/containers``, ``GET /api/containers/{ref}/metrics``, ``GET /api/vms``,
``GET /api/vms/{ref}/metrics``; history is api/history.py's, VM status events api/vms.py's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.responses import ApiError, MsgspecResponse, check_params
from hvstat.guests import CONTAINERS, KINDS, VMS, GuestKind
from hvstat.sources.base import Source
from hvstat.state import AppState

Endpoint = Callable[[Request], Awaitable[MsgspecResponse]]
AnyKind = GuestKind[Any, Any]

# How a reference sits in the path: `path` for containers, so that names with a slash
# (Kubernetes' namespace/pod/container) can be looked up; a VM's never has one.
REF = {CONTAINERS.name: "{ref:path}", VMS.name: "{ref}"}


def source_of(request: Request, kind: AnyKind) -> tuple[AppState, Source]:
    """The app's state and the kind's source; 404 when its monitoring is off."""
    state: AppState = request.app.state.hvstat
    source = state.sources.get(kind.plural)
    if source is None:
        raise ApiError(404, f"{kind.label} monitoring is disabled", {"setting": kind.setting})
    return state, source


def _list(kind: AnyKind) -> Endpoint:
    async def list_guests(request: Request) -> MsgspecResponse:
        """Every guest; each of the kind's filters (``?runtime=``, ``?status=``...) narrows the list."""
        check_params(request, {f.param for f in kind.filters})
        state, source = source_of(request, kind)
        wanted: dict[str, str] = {}
        for f in kind.filters:
            value = request.query_params.get(f.param)
            if value is None:
                continue
            if value not in f.allowed:
                raise ApiError(400, f"unknown {f.param}", {f.param: value, "allowed": sorted(f.allowed)})
            wanted[f.param] = value
        sample = kind.latest_sample(state.store)
        if sample is None:
            raise ApiError(503, f"no {kind.label} sample yet", source.health().error)
        return MsgspecResponse(kind.listing(sample, wanted))

    list_guests.__name__ = f"list_{kind.plural}"
    return list_guests


def _metrics(kind: AnyKind) -> Endpoint:
    async def guest_metrics(request: Request) -> MsgspecResponse:
        check_params(request, set())
        state, _ = source_of(request, kind)
        return MsgspecResponse(kind.resolve(kind.latest(state.store), request.path_params["ref"]))

    guest_metrics.__name__ = f"{kind.name}_metrics"
    return guest_metrics


def routes_of(kind: AnyKind) -> list[Route]:
    return [
        Route(f"/api/{kind.plural}", _list(kind), methods=["GET"]),
        Route(f"/api/{kind.plural}/{REF[kind.name]}/metrics", _metrics(kind), methods=["GET"]),
    ]


routes = [r for kind in KINDS for r in routes_of(kind)]
