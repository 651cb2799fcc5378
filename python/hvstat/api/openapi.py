"""``GET /openapi.json``: the OpenAPI document, with schemas generated from the msgspec models."""

from __future__ import annotations

from functools import cache

import msgspec
from starlette.requests import Request

from hvstat.api.responses import MsgspecResponse, check_params
from hvstat.models import ErrorBody, Health, NodeMetrics


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, object], description: str) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@cache
def document(version: str) -> dict[str, object]:
    (node, health, error), components = msgspec.json.schema_components(
        [NodeMetrics, Health, ErrorBody], ref_template="#/components/schemas/{name}"
    )
    err = _json(error, "error")
    return {
        "openapi": "3.1.0",
        "info": {"title": "hvstat", "version": version},
        "paths": {
            "/api/monitoring/node/metrics": {
                "get": {
                    "summary": "The latest node sample",
                    "parameters": [
                        {
                            "name": "fields",
                            "in": "query",
                            "required": False,
                            "description": "Comma-separated top-level fields to return",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": _json(node, "node sample"), "400": err, "503": err},
                }
            },
            "/health": {
                "get": {
                    "summary": "Health of the service and of each source",
                    "responses": {"200": _json(health, "healthy or degraded"), "503": _json(health, "error")},
                }
            },
        },
        "components": {"schemas": components},
    }


async def openapi(request: Request) -> MsgspecResponse:
    check_params(request, set())
    return MsgspecResponse(document(request.app.state.hvstat.version))
