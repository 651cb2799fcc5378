"""Process and user routes: ``GET /api/processes``, ``/api/processes/{pid}``, ``/api/users``,
``/api/users/{name}/metrics``, ``/api/users/{name}/history`` and ``/status`` (SysMedic's question in one object: the load status
with its rule, the top users, the persistent heavy users, the active alerts).

The users, the host and the status are read from the store's latest ``ProcessesSample``; the
processes, which the sample carries only the top of, are asked of the source's core table (filtered,
sorted and cut there, in a thread: the core releases the GIL).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.history import PARAMS as HISTORY_PARAMS
from hvstat.api.history import answer_history, history_service, history_store
from hvstat.api.responses import ApiError, MsgspecResponse, check_params
from hvstat.guests import CONTAINERS, VMS, GuestLookupError
from hvstat.models import Alert, LoadStatus, ProcessesSample, ProcessHost, ProcessMetrics, ProcessView, UserMetrics, Wire
from hvstat.sources.processes import ProcessSource
from hvstat.state import AppState

# The core's sorts (ProcessQuery): cpu, the sample's order (CPU, then RSS, highest first, unknown
# last); memory (RSS, then CPU) and io (read + write bytes/s, then CPU), highest first, ties in the
# CPU order; pid, lowest first.
SORTS = ("cpu", "io", "memory", "pid")
PROCESS_FIELDS = tuple(f.name for f in msgspec.structs.fields(ProcessMetrics))
DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000
STATUS_TOP_USERS = 5


class ProcessList(Wire, frozen=True, kw_only=True):
    """``GET /api/processes``."""

    timestamp: float
    interval_secs: float | None = None
    total: int  # processes matching the filters, before ``limit``
    # ProcessMetrics objects; with ?fields=, objects with just those keys.
    processes: list[Any]


class UserList(Wire, frozen=True, kw_only=True):
    """``GET /api/users``: users at or above ``min_uid`` and not excluded, highest CPU first."""

    timestamp: float
    users: list[UserMetrics]


class UserDetail(Wire, frozen=True, kw_only=True):
    """``GET /api/users/{name}/metrics``: the user's sums and its processes, highest CPU first."""

    timestamp: float
    user: UserMetrics
    processes: list[ProcessMetrics]


class StatusBody(Wire, frozen=True, kw_only=True):
    """``GET /status``: is the host loaded, and by whom."""

    timestamp: float
    status: LoadStatus
    host: ProcessHost
    top_users: list[UserMetrics]
    persistent_users: list[UserMetrics]
    # Pending and firing alerts (every kind), firing first; empty when [alerts] enabled = false.
    alerts: list[Alert]


def _sample(request: Request) -> tuple[AppState, ProcessesSample]:
    state: AppState = request.app.state.hvstat
    source = state.sources.get("processes")
    if source is None:
        raise ApiError(404, "process monitoring is disabled", {"setting": "processes.enabled"})
    sample = state.store.processes_sample
    if sample is None:
        raise ApiError(503, "no process sample yet", source.health().error)
    return state, sample


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(400, f"bad {name}", {name: raw, "expected": f"an integer from {lo} to {hi}"}) from None
    if not lo <= v <= hi:
        raise ApiError(400, f"bad {name}", {name: raw, "expected": f"an integer from {lo} to {hi}"})
    return v


def _container_filter(state: AppState, ref: str) -> dict[str, Any]:
    """A container by id, unique 12+ character id prefix or name (as /api/containers/{ref}), else
    by the id the process's cgroup gives (any prefix of 12+ characters)."""
    try:
        cid = CONTAINERS.resolve(state.store.containers, ref).id
    except GuestLookupError as e:
        if e.ambiguous:
            raise
        cid = ref
    return {"container": cid, "container_prefix": len(cid) >= 12}


def _vm_filter(state: AppState, ref: str) -> dict[str, Any]:
    """A VM by UUID, id or name (as /api/vms/{ref}): the processes in its cgroup scope, or its QEMU
    process; else by the scope's id the process's cgroup gives (libvirt's machine, Proxmox's vmid)."""
    try:
        vm = VMS.resolve(state.store.vms, ref)
    except GuestLookupError as e:
        if e.ambiguous:
            raise
        return {"vm": ref}
    scope = vm.cgroup.cgroup_path if vm.cgroup is not None else None
    pid = vm.process.pid if vm.process is not None else None
    if scope is None and pid is None:
        return {"vm_pid": 0}  # a VM with neither: no process matches (pid 0 is never listed)
    return {"vm_pid": pid, "vm_scope": scope}


async def _query(state: AppState, **query: Any) -> ProcessView:
    source = state.sources["processes"]
    assert isinstance(source, ProcessSource)
    return await asyncio.to_thread(source.query, **query)


async def list_processes(request: Request) -> MsgspecResponse:
    """Every process but the ignored ones; ``sort``, ``limit``, ``user``, ``container``, ``vm``, ``fields``."""
    check_params(request, {"sort", "limit", "user", "container", "vm", "fields"})
    state, sample = _sample(request)
    sort = request.query_params.get("sort", "cpu")
    if sort not in SORTS:
        raise ApiError(400, "unknown sort", {"sort": sort, "allowed": list(SORTS)})
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    fields: list[str] | None = None
    if "fields" in request.query_params:
        fields = request.query_params["fields"].split(",")
        unknown = sorted({f for f in fields if f not in PROCESS_FIELDS})
        if unknown or not all(fields):
            raise ApiError(400, "unknown field", {"unknown": unknown or [""], "allowed": list(PROCESS_FIELDS)})
    query: dict[str, Any] = {"sort": sort, "limit": limit, "user": request.query_params.get("user")}
    if (container := request.query_params.get("container")) is not None:
        query |= _container_filter(state, container)
    if (vm := request.query_params.get("vm")) is not None:
        query |= _vm_filter(state, vm)
    view = await _query(state, **query)
    body: list[Any] = view.processes
    if fields is not None:
        body = [{f: getattr(p, f) for f in fields} for p in view.processes]
    return MsgspecResponse(ProcessList(timestamp=view.timestamp, interval_secs=view.interval_secs, total=view.total, processes=body))


async def one_process(request: Request) -> MsgspecResponse:
    check_params(request, set())
    state, _ = _sample(request)
    raw = request.path_params["pid"]
    if raw.isascii() and raw.isdigit() and str(int(raw)) == raw and int(raw) < 1 << 32:
        view = await _query(state, pid=int(raw), limit=1)
        if view.processes:
            return MsgspecResponse(view.processes[0])
    raise ApiError(404, "no such process", {"pid": raw, "hint": "a pid from GET /api/processes (ignored processes are not listed)"})


async def list_users(request: Request) -> MsgspecResponse:
    check_params(request, set())
    _, sample = _sample(request)
    return MsgspecResponse(UserList(timestamp=sample.timestamp, users=sample.users))


async def user_metrics(request: Request) -> MsgspecResponse:
    """One user by name (or uid)."""
    check_params(request, set())
    state, sample = _sample(request)
    ref = request.path_params["name"]
    for u in sample.users:
        if u.user == ref or str(u.uid) == ref:
            view = await _query(state, uid=u.uid)
            return MsgspecResponse(UserDetail(timestamp=sample.timestamp, user=u, processes=view.processes))
    raise ApiError(
        404,
        "no such user",
        {"user": ref, "hint": "a user with processes now, at or above processes.min_uid and not in processes.exclude_users"},
    )


async def user_history(request: Request) -> MsgspecResponse:
    """One user's history by name (the uid when /etc/passwd has no name): a user with processes
    now, or one that had some within ``history_retention`` (or on disk)."""
    check_params(request, HISTORY_PARAMS)
    state: AppState = request.app.state.hvstat
    if "processes" not in state.sources:
        raise ApiError(404, "process monitoring is disabled", {"setting": "processes.enabled"})
    store = history_store(request)
    name = request.path_params["name"]
    series = store.series("user", name)
    if series is None:
        sample = store.processes_sample
        live = sample is not None and any(u.user == name for u in sample.users)
        if not live and await asyncio.to_thread(history_service(request).on_disk, "user", name) is None:
            raise ApiError(404, "no such user", {"user": name, "hint": "a user name of GET /api/users, now or within monitoring.history_retention"})
    return await answer_history(request, store, store.user_kind, series, f"user:{name}", name)


async def status(request: Request) -> MsgspecResponse:
    check_params(request, set())
    state, sample = _sample(request)
    alerts = state.alerts.active() if state.alerts is not None else []
    return MsgspecResponse(
        StatusBody(
            timestamp=time.time(),
            status=sample.status,
            host=sample.host,
            top_users=sample.users[:STATUS_TOP_USERS],
            persistent_users=[u for u in sample.users if u.persistent_heavy],
            alerts=alerts,
        )
    )


routes = [
    Route("/api/processes", list_processes, methods=["GET"]),
    Route("/api/processes/{pid}", one_process, methods=["GET"]),
    Route("/api/users", list_users, methods=["GET"]),
    Route("/api/users/{name}/metrics", user_metrics, methods=["GET"]),
    Route("/api/users/{name}/history", user_history, methods=["GET"]),
    Route("/status", status, methods=["GET"]),
]


def openapi_paths(
    ref_template: str, error: dict[str, Any], history: dict[str, Any], history_parameters: list[dict[str, object]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The routes' OpenAPI path items and the schemas they refer to (api/openapi.py merges them)."""
    (plist, proc, ulist, udetail, stat), components = msgspec.json.schema_components(
        [ProcessList, ProcessMetrics, UserList, UserDetail, StatusBody], ref_template=ref_template
    )
    components["ProcessList"]["properties"]["processes"] = {
        "description": "ProcessMetrics objects; with ?fields=, objects with just those keys",
        "type": "array",
        "items": {"anyOf": [proc, {"type": "object"}]},
    }

    def js(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def q(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    disabled = js(error, "process monitoring is disabled ([processes] enabled = false)")
    not_yet = js(error, "no process sample yet")
    fields = q("fields", "Process fields; each process then holds only those keys", {"type": "array", "minItems": 1, "items": {"enum": list(PROCESS_FIELDS)}})
    fields |= {"style": "form", "explode": False}
    paths = {
        "/api/processes": {
            "get": {
                "summary": "Every process (but processes.ignore_processes), sorted and filtered",
                "parameters": [
                    q("sort", "cpu (default), memory, io (read+write bytes/s): highest first; pid: lowest first", {"enum": list(SORTS)}),
                    q("limit", f"At most this many (default {DEFAULT_LIMIT})", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                    q("user", "A user name or uid", {"type": "string"}),
                    q("container", "A container id, 12+ character id prefix or name", {"type": "string"}),
                    q("vm", "A VM UUID, id or name, or the id its cgroup scope gives", {"type": "string"}),
                    fields,
                ],
                "responses": {
                    "200": js(plist, "the processes"),
                    "400": js(error, "unknown parameter, sort or field, bad limit"),
                    "404": disabled,
                    "409": js(error, "an ambiguous container or VM reference"),
                    "503": not_yet,
                },
            }
        },
        "/api/processes/{pid}": {
            "get": {
                "summary": "One process",
                "parameters": [{"name": "pid", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": js(proc, "the process"), "400": js(error, "unknown parameter"), "404": js(error, "no such process, or process monitoring is disabled"), "503": not_yet},
            }
        },
        "/api/users": {
            "get": {
                "summary": "Every user with processes (at or above processes.min_uid, not excluded), highest CPU first",
                "responses": {"200": js(ulist, "the users"), "400": js(error, "unknown parameter"), "404": disabled, "503": not_yet},
            }
        },
        "/api/users/{name}/metrics": {
            "get": {
                "summary": "One user (by name or uid) and its processes",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": js(udetail, "the user"), "400": js(error, "unknown parameter"), "404": js(error, "no such user, or process monitoring is disabled"), "503": not_yet},
            }
        },
        "/api/users/{name}/history": {
            "get": {
                "summary": "One user's history (by name): every sample, or min/avg/max per step; a user without processes now for as long as its history is kept",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}, *history_parameters],
                "responses": {
                    "200": js(history, "the history"),
                    "400": js(error, "unknown parameter, bad range, bad step, step too fine for the range, too many points, unknown field"),
                    "404": js(error, "no such user, process monitoring is disabled, or history disabled"),
                },
            }
        },
        "/status": {
            "get": {
                "summary": "The load status (light, medium, heavy, with the rule that gave it), top and persistent heavy users, active alerts",
                "responses": {"200": js(stat, "the status"), "400": js(error, "unknown parameter"), "404": disabled, "503": not_yet},
            }
        },
    }
    return paths, components
