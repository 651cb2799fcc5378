"""The fleet routes (docs/api.md, "Fleet"): ``GET /api/fleet/nodes`` and
``GET /api/fleet/nodes/{name}/history``, answered by hvstat/fleet.py's PromQL queries against the
engine of ``[fleet] query_url``. 404 while no query_url is set; the engine's failures are 502
(an error or a foreign answer), 503 (unreachable) or 504 (too slow), each with the JSON error body.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.responses import ApiError, MsgspecResponse, check_params, number_param
from hvstat.fleet import HISTORY_FIELDS, MAX_POINTS, FleetQueryError, FleetView
from hvstat.identity import node_name_problem
from hvstat.models import FleetHistory, FleetNodeList
from hvstat.promql import EngineError
from hvstat.state import AppState

HISTORY_PARAMS = {"since", "until", "step", "fields"}
# The range when `since` is not given: this long before `until`.
DEFAULT_RANGE_SECS = 3600.0
MAX_WITHIN_SECS = 30 * 86400.0
# The engines' durations are int64 nanoseconds (about 292 years): a range, and so each query's
# window, stays well inside; times end with the year 9999.
MAX_SPAN_SECS = 20 * 366 * 86400.0
MAX_TIME = 253402300799.0


def fleet_view(request: Request) -> FleetView:
    state: AppState = request.app.state.hvstat
    if state.fleet is None:
        raise ApiError(404, "the fleet view is disabled", {"setting": "fleet.query_url"})
    return state.fleet


async def fleet_nodes(request: Request) -> MsgspecResponse:
    check_params(request, {"within", "time"})
    fleet = fleet_view(request)
    at = number_param(request, "time", "bad time")
    if at is None:
        at = time.time()
    elif not 0 <= at <= MAX_TIME:
        raise ApiError(400, "bad time", {"time": at, "reason": f"unix seconds, from 0 to {MAX_TIME:.0f}"})
    within = number_param(request, "within", "bad within")
    if within is None:
        within = fleet.settings.within
    elif not 1 <= within <= MAX_WITHIN_SECS:
        raise ApiError(400, "bad within", {"within": within, "reason": f"seconds, from 1 to {MAX_WITHIN_SECS:.0f}"})
    try:
        return MsgspecResponse(await fleet.nodes(at, within))
    except EngineError as e:
        raise ApiError(e.status, e.error, e.detail) from None


def _fields(request: Request) -> list[str]:
    allowed = sorted(HISTORY_FIELDS)
    raw = request.query_params.get("fields")
    if raw is None:
        return list(HISTORY_FIELDS)
    wanted = list(dict.fromkeys(f.strip() for f in raw.split(",") if f.strip()))
    if not wanted:
        raise ApiError(400, "'fields' is empty", {"allowed": allowed})
    unknown = [f for f in wanted if f not in HISTORY_FIELDS]
    if unknown:
        raise ApiError(400, "unknown field in 'fields'", {"unknown": unknown, "allowed": allowed})
    return wanted


async def fleet_node_history(request: Request) -> MsgspecResponse:
    check_params(request, HISTORY_PARAMS)
    fleet = fleet_view(request)
    name = request.path_params["name"]
    problem = node_name_problem(name)
    if problem is not None:
        raise ApiError(404, "no such node", {"node": name, "reason": f"not a node name: {problem}"})
    fields = _fields(request)
    since = number_param(request, "since", "bad range")
    until = number_param(request, "until", "bad range")
    step = number_param(request, "step", "bad step")
    if until is None:
        until = time.time()
    if since is None:
        since = max(0.0, until - DEFAULT_RANGE_SECS)
    for key, value in (("since", since), ("until", until)):
        if not 0 <= value <= MAX_TIME:
            raise ApiError(400, "bad range", {key: value, "reason": f"since and until are unix seconds, from 0 to {MAX_TIME:.0f}"})
    if since > until:
        raise ApiError(400, "bad range", {"since": since, "until": until, "reason": "since is after until"})
    if until - since > MAX_SPAN_SECS:
        raise ApiError(400, "bad range", {"since": since, "until": until, "reason": f"longer than {MAX_SPAN_SECS:.0f} seconds (20 years)"})
    if step is not None and not 0.001 <= step <= 86400 * 366:
        raise ApiError(400, "bad step", {"step": step, "reason": "seconds, from 0.001 to a year"})
    try:
        return MsgspecResponse(await fleet.history(name, since, until, step, fields))
    except FleetQueryError as e:
        raise ApiError(e.status, e.error, e.detail) from None
    except EngineError as e:
        raise ApiError(e.status, e.error, e.detail) from None


routes = [
    Route("/api/fleet/nodes", fleet_nodes, methods=["GET"]),
    Route("/api/fleet/nodes/{name}/history", fleet_node_history, methods=["GET"]),
]


def openapi_paths(ref_template: str, error: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The routes' OpenAPI path items and the schemas they refer to (api/openapi.py merges them)."""
    (nodes, history), components = msgspec.json.schema_components([FleetNodeList, FleetHistory], ref_template=ref_template)

    def js(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def q(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    number = {"type": "number", "minimum": 0, "maximum": MAX_TIME}
    engine = {
        "502": js(error, "the engine answered with an error, or not as the Prometheus query API"),
        "503": js(error, "the engine is unreachable"),
        "504": js(error, "the engine did not answer within fleet.timeout"),
    }
    fields = q("fields", "History fields; default: all", {"type": "array", "minItems": 1, "items": {"enum": sorted(HISTORY_FIELDS)}})
    fields |= {"style": "form", "explode": False}
    paths = {
        "/api/fleet/nodes": {
            "get": {
                "summary": "Every node that wrote to the fleet's engine recently, with its newest numbers (docs/operations.md, Fleet)",
                "parameters": [
                    q("within", "Seconds: nodes whose newest sample is at most this old; default fleet.within", {"type": "number", "minimum": 1, "maximum": MAX_WITHIN_SECS}),
                    q("time", "Unix seconds: the fleet as it was then; default now", number),
                ],
                "responses": {"200": js(nodes, "the nodes"), "400": js(error, "unknown parameter, bad within, bad time"), "404": js(error, "the fleet view is disabled (no fleet.query_url)"), **engine},
            }
        },
        "/api/fleet/nodes/{name}/history": {
            "get": {
                "summary": "One node's history from the fleet's engine: its newest sample at each step",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    q("since", "Unix seconds; default: one hour before `until`", number),
                    q("until", "Unix seconds; default: now", number),
                    q("step", f"Seconds per point; default: about 300 points; at most {MAX_POINTS} points", {"type": "number", "minimum": 0.001, "maximum": 86400 * 366}),
                    fields,
                ],
                "responses": {
                    "200": js(history, "the history"),
                    "400": js(error, "unknown parameter, bad range (also: longer than 20 years, no step multiple in it), bad step, too many points, unknown field"),
                    "404": js(error, "the fleet view is disabled, or no such node in the range"),
                    **engine,
                },
            }
        },
    }
    return paths, components
