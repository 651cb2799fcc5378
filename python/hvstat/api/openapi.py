"""``GET /openapi.json``: the OpenAPI document, with schemas generated from the msgspec models."""

from __future__ import annotations

import typing
from collections.abc import Iterable
from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request

from hvstat.api.containers import RUNTIMES, STATES
from hvstat.api.responses import MsgspecResponse, check_params
from hvstat.api.rest import NODE_FIELDS
from hvstat.models import (
    AlertList,
    AlertRuleList,
    ContainerList,
    ContainerMetrics,
    ErrorBody,
    Health,
    History,
    NodeMetrics,
    VmList,
    VmMetrics,
    VmOrigin,
    VmStatus,
    VmStatusChangedMessage,
)
from hvstat.store import CONTAINER_HISTORY_FIELDS, NODE_HISTORY_FIELDS, VM_HISTORY_FIELDS, HistoryField


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
    (node, health, error, container_list, container, history), components = msgspec.json.schema_components(
        [NodeMetrics, Health, ErrorBody, ContainerList, ContainerMetrics, History], ref_template="#/components/schemas/{name}"
    )
    (alert_list, alert_rules), alert_components = msgspec.json.schema_components(
        [AlertList, AlertRuleList], ref_template="#/components/schemas/{name}"
    )
    (vm_list, vm, vm_events), vm_components = msgspec.json.schema_components(
        [VmList, VmMetrics, list[VmStatusChangedMessage]], ref_template="#/components/schemas/{name}"
    )
    components = {**components, **alert_components, **vm_components}
    bad_param = _json(error, "unknown or repeated query parameter")
    any_object = _json({"type": "object"}, "JSON object")
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "hvstat", "version": version},
        "paths": {
            "/api/monitoring/node/metrics": {
                "get": {
                    "summary": "The latest node sample",
                    "parameters": [
                        _field_list("Top-level fields; the response then holds only those keys", NODE_FIELDS)
                    ],
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
            "/api/containers": {
                "get": {
                    "summary": "Every container (cgroup guest) with its latest headline numbers",
                    "parameters": [
                        {"name": "runtime", "in": "query", "required": False, "schema": {"enum": sorted(RUNTIMES)}},
                        {"name": "state", "in": "query", "required": False, "schema": {"enum": sorted(STATES)}},
                    ],
                    "responses": {
                        "200": _json(container_list, "the containers"),
                        "400": _json(error, "unknown parameter, runtime or state"),
                        "404": _json(error, "container monitoring is disabled"),
                        "503": _json(error, "no container sample yet"),
                    },
                }
            },
            "/api/containers/{ref}/metrics": {
                "get": {
                    "summary": "One container's latest sample, by id, unique id prefix (12+ characters) or name",
                    "parameters": [{"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json(container, "the container's sample"),
                        "404": _json(error, "no such container, or container monitoring disabled"),
                        "409": _json(error, "the reference matches several containers"),
                    },
                }
            },
            "/api/monitoring/node/history": {
                "get": {
                    "summary": "The node's history: every sample, or min/avg/max per step",
                    "parameters": _history_parameters(NODE_HISTORY_FIELDS),
                    "responses": {
                        "200": _json(history, "the history"),
                        "400": _json(error, "unknown parameter, bad range, bad step, step too fine for the range, too many points, unknown field"),
                        "404": _json(error, "history is disabled"),
                    },
                }
            },
            "/api/containers/{ref}/history": {
                "get": {
                    "summary": "One container's history, by id, unique id prefix (12+ characters) or name; a vanished container's by its full id",
                    "parameters": [
                        {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}},
                        *_history_parameters(CONTAINER_HISTORY_FIELDS),
                    ],
                    "responses": {
                        "200": _json(history, "the history"),
                        "400": _json(error, "unknown parameter, bad range, bad step, step too fine for the range, too many points, unknown field"),
                        "404": _json(error, "no such container, container monitoring disabled, or history disabled"),
                        "409": _json(error, "the reference matches several containers"),
                    },
                }
            },
            "/api/vms": {
                "get": {
                    "summary": "Every VM (libvirt domains and bare QEMUs over QMP) with its latest headline numbers",
                    "parameters": [
                        {"name": "origin", "in": "query", "required": False, "schema": {"enum": sorted(typing.get_args(VmOrigin))}},
                        {"name": "status", "in": "query", "required": False, "schema": {"enum": sorted(typing.get_args(VmStatus))}},
                    ],
                    "responses": {
                        "200": _json(vm_list, "the VMs"),
                        "400": _json(error, "unknown parameter, origin or status"),
                        "404": _json(error, "VM monitoring is disabled"),
                        "503": _json(error, "no VM sample yet"),
                    },
                }
            },
            "/api/vms/events": {
                "get": {
                    "summary": "Recent VmStatusChanged events (started, stopped, paused, vanished), oldest first",
                    "parameters": [{"name": "since", "in": "query", "required": False, "description": "Unix seconds", "schema": {"type": "number"}}],
                    "responses": {
                        "200": _json(vm_events, "the events"),
                        "400": _json(error, "unknown parameter, bad since"),
                        "404": _json(error, "VM monitoring is disabled"),
                    },
                }
            },
            "/api/vms/{ref}/metrics": {
                "get": {
                    "summary": "One VM's latest sample, by libvirt UUID (any letter case), QMP id or name",
                    "parameters": [{"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json(vm, "the VM's sample"),
                        "404": _json(error, "no such VM, or VM monitoring disabled"),
                        "409": _json(error, "the reference matches several VMs"),
                    },
                }
            },
            "/api/vms/{ref}/history": {
                "get": {
                    "summary": "One VM's history, by UUID, QMP id or name; a vanished VM's by its id",
                    "parameters": [
                        {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}},
                        *_history_parameters(VM_HISTORY_FIELDS),
                    ],
                    "responses": {
                        "200": _json(history, "the history"),
                        "400": _json(error, "unknown parameter, bad range, bad step, step too fine for the range, too many points, unknown field"),
                        "404": _json(error, "no such VM, VM monitoring disabled, or history disabled"),
                        "409": _json(error, "the reference matches several VMs"),
                    },
                }
            },
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
            "/health": {
                "get": {
                    "summary": "Health of the service and of each source",
                    "responses": {
                        "200": _json(health, "ok or degraded"),
                        "400": bad_param,
                        "503": _json(health, "error"),
                    },
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
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": any_object, "400": bad_param}}
            },
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
        },
        "components": {"schemas": components},
    }
    # What the request guard (hvstat/api/auth.py) may answer on any route, before the route runs.
    for path_item in doc["paths"].values():
        responses = path_item["get"]["responses"]
        responses.setdefault("401", _json(error, "a token is configured and the request has none, or a wrong one ([server] tokens)"))
        responses.setdefault("413", _json(error, "request body larger than server.max_body_bytes"))
        responses.setdefault("414", _json(error, "query string longer than server.max_query_bytes"))
    return doc


async def openapi(request: Request) -> MsgspecResponse:
    check_params(request, set())
    return MsgspecResponse(document(request.app.state.hvstat.version))
