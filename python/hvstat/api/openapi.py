"""``GET /openapi.json``: the OpenAPI document, with schemas generated from the msgspec models."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request

from hvstat.api import fleet, processes
from hvstat.api.responses import MsgspecResponse, check_params
from hvstat.api.rest import NODE_FIELDS
from hvstat.guests import CONTAINERS, KINDS, VMS, GuestKind
from hvstat.models import AlertList, AlertRuleList, ErrorBody, Health, History, NodeMetrics, VmStatusChangedMessage
from hvstat.store import CONTAINER_HISTORY_FIELDS, NODE_HISTORY_FIELDS, USER_HISTORY_FIELDS, VM_HISTORY_FIELDS, HistoryField

Schema = dict[str, Any]
Paths = dict[str, Any]
REF_SCHEMA = "#/components/schemas/{name}"
HISTORY_400 = "unknown parameter, bad range, bad step, step too fine for the range, too many points, unknown field"
# What the document says of each guest kind: what the list holds, how a reference names one, and
# how a vanished one's history is found.
GUEST_TEXT = {
    CONTAINERS.name: ("Every container (cgroup guest)", "by id, unique id prefix (12+ characters) or name", "by its full id"),
    VMS.name: ("Every VM (libvirt domains and bare QEMUs over QMP)", "by libvirt UUID (any letter case), QMP id or name", "by its id"),
}
GUEST_HISTORY_FIELDS = {CONTAINERS.name: CONTAINER_HISTORY_FIELDS, VMS.name: VM_HISTORY_FIELDS}


def _json(schema: dict[str, object], description: str) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _field_list(description: str, fields: Iterable[str]) -> dict[str, object]:
    """``?fields=a,b``: a comma-separated list of known names (OpenAPI's form style, not exploded)."""
    return {
        "name": "fields",
        "in": "query",
        "required": False,
        "description": description,
        "style": "form",
        "explode": False,
        "schema": {"type": "array", "minItems": 1, "items": {"enum": sorted(fields)}},
    }


def _history_parameters(fields: Iterable[HistoryField]) -> list[dict[str, object]]:
    number = {"type": "number", "minimum": 0}
    return [
        {"name": "since", "in": "query", "required": False, "description": "Unix seconds; default: one hour before `until`", "schema": number},
        {"name": "until", "in": "query", "required": False, "description": "Unix seconds; default: now", "schema": number},
        {
            "name": "step",
            "in": "query",
            "required": False,
            "description": "Seconds per point; below history_bucket only within the full-resolution window, from history_bucket up a multiple of it",
            "schema": {"type": "number", "exclusiveMinimum": 0},
        },
        _field_list("History fields; default: all", (f.name for f in fields)),
    ]


@cache
def document(version: str) -> dict[str, object]:
    """The document: every route of the routing table (a test holds the two together)."""
    (node, health, error, history, alert_list, alert_rules, vm_events), components = msgspec.json.schema_components(
        [NodeMetrics, Health, ErrorBody, History, AlertList, AlertRuleList, list[VmStatusChangedMessage]], ref_template=REF_SCHEMA
    )
    paths: Paths = {**_node_paths(node, history, error)}
    for kind in KINDS:
        (listing, guest), kind_components = msgspec.json.schema_components([kind.list_type, kind.guests_type], ref_template=REF_SCHEMA)
        components.update(kind_components)
        paths.update(_guest_paths(kind, listing, guest, history, error))
    paths["/api/vms/events"] = {
        "get": {
            "summary": "Recent VmStatusChanged events (started, stopped, paused, vanished), oldest first",
            "parameters": [{"name": "since", "in": "query", "required": False, "description": "Unix seconds", "schema": {"type": "number"}}],
            "responses": {
                "200": _json(vm_events, "the events"),
                "400": _json(error, "unknown parameter, bad since"),
                "404": _json(error, "VM monitoring is disabled"),
            },
        }
    }
    process_paths, process_components = processes.openapi_paths(REF_SCHEMA, error, history, _history_parameters(USER_HISTORY_FIELDS))
    paths.update(process_paths)
    components.update(process_components)
    paths.update(_alert_paths(alert_list, alert_rules, error))
    fleet_paths, fleet_components = fleet.openapi_paths(REF_SCHEMA, error)
    paths.update(fleet_paths)
    components.update(fleet_components)
    paths.update(_service_paths(health, error))
    # What the request guard (hvstat/api/auth.py) may answer on any route, before the route runs.
    for path_item in paths.values():
        responses = path_item["get"]["responses"]
        responses.setdefault("401", _json(error, "a token is configured and the request has none, or a wrong one ([server] tokens)"))
        responses.setdefault("413", _json(error, "request body larger than server.max_body_bytes"))
        responses.setdefault("414", _json(error, "query string longer than server.max_query_bytes"))
    return {"openapi": "3.1.0", "info": {"title": "hvstat", "version": version}, "paths": paths, "components": {"schemas": components}}


def _node_paths(node: Schema, history: Schema, error: Schema) -> Paths:
    return {
        "/api/monitoring/node/metrics": {
            "get": {
                "summary": "The latest node sample",
                "parameters": [_field_list("Top-level fields; the response then holds only those keys", NODE_FIELDS)],
                "responses": {
                    "200": _json(
                        {"anyOf": [node, {"type": "object", "description": "with ?fields=: an object with just those keys of NodeMetrics"}]},
                        "the node sample (or, with ?fields=, an object with just those keys)",
                    ),
                    "400": _json(error, "unknown parameter, empty or unknown field"),
                    "503": _json(error, "no node sample yet"),
                },
            }
        },
        "/api/monitoring/node/history": {
            "get": {
                "summary": "The node's history: every sample, or min/avg/max per step",
                "parameters": _history_parameters(NODE_HISTORY_FIELDS),
                "responses": {
                    "200": _json(history, "the history"),
                    "400": _json(error, HISTORY_400),
                    "404": _json(error, "history is disabled"),
                },
            }
        },
    }


def _guest_paths(kind: GuestKind[Any, Any], listing: Schema, guest: Schema, history: Schema, error: Schema) -> Paths:
    """The list, one guest, and one guest's history, for one kind."""
    every, by_ref, vanished = GUEST_TEXT[kind.name]
    label, plural = kind.label, f"{kind.label}s"
    ref = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}}
    disabled = f"{label} monitoring disabled"
    return {
        f"/api/{kind.plural}": {
            "get": {
                "summary": f"{every} with its latest headline numbers",
                "parameters": [{"name": f.param, "in": "query", "required": False, "schema": {"enum": sorted(f.allowed)}} for f in kind.filters],
                "responses": {
                    "200": _json(listing, f"the {plural}"),
                    "400": _json(error, f"unknown parameter, {' or '.join(f.param for f in kind.filters)}"),
                    "404": _json(error, f"{label} monitoring is disabled"),
                    "503": _json(error, f"no {label} sample yet"),
                },
            }
        },
        f"/api/{kind.plural}/{{ref}}/metrics": {
            "get": {
                "summary": f"One {label}'s latest sample, {by_ref}",
                "parameters": [ref],
                "responses": {
                    "200": _json(guest, f"the {label}'s sample"),
                    "404": _json(error, f"no such {label}, or {disabled}"),
                    "409": _json(error, f"the reference matches several {plural}"),
                },
            }
        },
        f"/api/{kind.plural}/{{ref}}/history": {
            "get": {
                "summary": f"One {label}'s history, {by_ref}; a vanished {label}'s {vanished}",
                "parameters": [ref, *_history_parameters(GUEST_HISTORY_FIELDS[kind.name])],
                "responses": {
                    "200": _json(history, "the history"),
                    "400": _json(error, HISTORY_400),
                    "404": _json(error, f"no such {label}, {disabled}, or history disabled"),
                    "409": _json(error, f"the reference matches several {plural}"),
                },
            }
        },
    }


def _alert_paths(alert_list: Schema, alert_rules: Schema, error: Schema) -> Paths:
    bad_param = _json(error, "unknown or repeated query parameter")
    return {
        "/api/alerts": {
            "get": {
                "summary": "Active alerts (pending, firing), recently resolved ones, and the notifiers' counters (docs/alerts.md)",
                "parameters": [
                    {"name": "severity", "in": "query", "required": False, "schema": {"enum": ["critical", "high", "medium", "low"]}},
                    {"name": "rule", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "required": False, "description": "Only active alerts in this state (no history)", "schema": {"enum": ["pending", "firing"]}},
                    {"name": "limit", "in": "query", "required": False, "description": "At most this many history entries", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {
                    "200": _json(alert_list, "the alerts"),
                    "400": _json(error, "unknown parameter, severity, rule or state; bad limit"),
                    "404": _json(error, "alerts are disabled"),
                },
            }
        },
        "/api/alerts/rules": {
            "get": {
                "summary": "The alert rules as compiled from the config, with their pending and firing counts",
                "responses": {"200": _json(alert_rules, "the rules"), "400": bad_param, "404": _json(error, "alerts are disabled")},
            }
        },
    }


def _service_paths(health: Schema, error: Schema) -> Paths:
    bad_param = _json(error, "unknown or repeated query parameter")
    any_object = _json({"type": "object"}, "JSON object")
    return {
        "/health": {
            "get": {
                "summary": "Health of the service and of each source",
                "responses": {"200": _json(health, "ok or degraded"), "400": bad_param, "503": _json(health, "error")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of the latest samples (docs/prometheus.md)",
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when the Accept header asks for application/openmetrics-text",
                        "content": {
                            "text/plain; version=0.0.4": {"schema": {"type": "string"}},
                            "application/openmetrics-text; version=1.0.0": {"schema": {"type": "string"}},
                        },
                    },
                    "400": bad_param,
                },
            }
        },
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": any_object, "400": bad_param}}},
        "/": {
            "get": {
                "summary": "The dashboard for a browser (text/html ranked above application/json in Accept); else the same JSON index as /api",
                "responses": {
                    "200": {
                        "description": "the dashboard's page, or the JSON index",
                        "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}}},
                    },
                    "400": bad_param,
                },
            }
        },
        "/api": {"get": {"summary": "Service name, version and endpoints", "responses": {"200": any_object, "400": bad_param}}},
        "/ui/{name}": {
            "get": {
                "summary": "The dashboard's static files (ETag, Cache-Control: no-cache)",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file"}, "304": {"description": "not modified"}, "404": _json(error, "no such file")},
            }
        },
    }


async def openapi(request: Request) -> MsgspecResponse:
    check_params(request, set())
    return MsgspecResponse(document(request.app.state.hvstat.version))
