"""Container routes: the list, and one guest's latest sample by id, id prefix or name."""

from __future__ import annotations

import typing

from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.responses import ApiError, MsgspecResponse, check_params
from hvstat.models import ContainerList, ContainerMetrics, Runtime, container_summary
from hvstat.state import AppState

# A prefix shorter than docker's short id is too likely to match by accident.
MIN_PREFIX = 12
RUNTIMES = frozenset(typing.get_args(Runtime))
STATES = frozenset(typing.get_args(typing.get_type_hints(ContainerMetrics)["state"]))


def resolve(containers: typing.Mapping[str, ContainerMetrics], ref: str) -> ContainerMetrics:
    """The container whose id is `ref`, whose id starts with `ref` (12+ characters), or whose name
    is `ref`. Several matches are a conflict, not a guess."""
    if ref in containers:
        return containers[ref]
    matches = {c.id: c for c in containers.values() if c.name == ref}
    if len(ref) >= MIN_PREFIX:
        matches.update({c.id: c for c in containers.values() if c.id.startswith(ref)})
    if len(matches) == 1:
        return next(iter(matches.values()))
    if matches:
        raise ApiError(409, "ambiguous container reference", {"ref": ref, "matches": sorted(matches)})
    raise ApiError(404, "no such container", {"ref": ref, "hint": f"use an id, a unique id prefix of at least {MIN_PREFIX} characters, or a name"})


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.hvstat
    if state.container_source is None:
        raise ApiError(404, "container monitoring is disabled", {"setting": "containers.enabled"})
    return state


async def list_containers(request: Request) -> MsgspecResponse:
    """Every guest; `?runtime=` and `?state=` narrow the list."""
    check_params(request, {"runtime", "state"})
    state = _state(request)
    runtime, wanted_state = request.query_params.get("runtime"), request.query_params.get("state")
    if runtime is not None and runtime not in RUNTIMES:
        raise ApiError(400, "unknown runtime", {"runtime": runtime, "allowed": sorted(RUNTIMES)})
    if wanted_state is not None and wanted_state not in STATES:
        raise ApiError(400, "unknown state", {"state": wanted_state, "allowed": sorted(STATES)})
    sample = state.store.containers_sample
    if sample is None:
        raise ApiError(503, "no container sample yet", state.container_source.health().error)
    items = [
        container_summary(c)
        for c in state.store.containers.values()
        if (runtime is None or c.runtime == runtime) and (wanted_state is None or c.state == wanted_state)
    ]
    return MsgspecResponse(
        ContainerList(
            timestamp=sample.timestamp,
            interval_secs=sample.interval_secs,
            host_cpus=sample.host_cpus,
            containers=items,
            unavailable=sample.unavailable,
        )
    )


async def container_metrics(request: Request) -> MsgspecResponse:
    check_params(request, set())
    state = _state(request)
    return MsgspecResponse(resolve(state.store.containers, request.path_params["ref"]))


routes = [
    Route("/api/containers", list_containers, methods=["GET"]),
    # `path`, so that names with a slash (Kubernetes' namespace/pod/container) can be looked up.
    Route("/api/containers/{ref:path}/metrics", container_metrics, methods=["GET"]),
]
