"""JSON responses encoded by msgspec, and the one way every error is answered."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from hvstat.models import ErrorBody, encoder


class MsgspecResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encoder.encode(content)


class ApiError(Exception):
    """Raised by a route to answer with ``{"error": ..., "detail": ...}`` and a 4xx/5xx code."""

    def __init__(self, status: int, error: str, detail: object | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


def error_response(
    status: int, error: str, detail: object | None = None, headers: Mapping[str, str] | None = None
) -> MsgspecResponse:
    return MsgspecResponse(ErrorBody(error=error, detail=detail), status_code=status, headers=headers)


async def on_api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    detail: dict[str, object] = {"path": request.url.path}
    if exc.status_code == 405:
        detail["method"] = request.method
    # Starlette puts the Allow header of a 405 in exc.headers; HTTP requires it on the response.
    return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)), detail, exc.headers)


async def on_unexpected(_: Request, exc: Exception) -> Response:
    return error_response(500, "internal error", f"{type(exc).__name__}: {exc}")


def check_params(request: Request, allowed: set[str]) -> None:
    """Unknown or repeated query parameters are a client error, not something to ignore."""
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ApiError(400, "unknown query parameter", {"unknown": unknown, "allowed": sorted(allowed)})
    repeated = sorted(k for k in allowed if len(request.query_params.getlist(k)) > 1)
    if repeated:
        raise ApiError(400, "query parameter given more than once", {"parameters": repeated})


def number_param(request: Request, name: str, error: str) -> float | None:
    """The query parameter ``name`` as a finite number, None when absent; anything else is a 400
    ``error`` saying why (unix seconds and steps: NaN and infinity mean nothing there)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, error, {name: raw, "reason": "not a number"}) from None
    if not math.isfinite(value):
        raise ApiError(400, error, {name: raw, "reason": "not a finite number"})
    return value
