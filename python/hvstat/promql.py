"""A client of the Prometheus HTTP query API (``/api/v1/query``, ``/api/v1/query_range``), as
Prometheus and VictoriaMetrics both serve it (https://prometheus.io/docs/prometheus/latest/querying/api/).

Every failure is an ``EngineError`` that names what went wrong and carries the HTTP status the
fleet routes answer with: 503 when the engine cannot be reached, 504 when it does not answer in
``timeout``, 502 when it answers with an error or with something that is not the query API's
JSON. The answer is read up to ``MAX_ANSWER_BYTES``: a wrong URL pointing at a large download
cannot fill the memory. Values the engine writes as "NaN" or "+Inf" (a division by zero) are None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from hvstat.remote_write import url_without_credentials
from hvstat.settings import FleetSettings

MAX_ANSWER_BYTES = 32 << 20

Labels = dict[str, str]


class EngineError(Exception):
    """The engine could not answer a query: ``status`` for the route's answer, ``error`` and
    ``detail`` for its body."""

    def __init__(self, status: int, error: str, detail: dict[str, Any]) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


class _Result(msgspec.Struct, kw_only=True):
    metric: dict[str, str] = {}
    value: tuple[float, str] | None = None
    values: list[tuple[float, str]] = []


class _Data(msgspec.Struct, kw_only=True, rename="camel"):
    result_type: str
    result: list[_Result]


class _Answer(msgspec.Struct, kw_only=True):
    status: str
    data: _Data | None = None
    errorType: str | None = None  # noqa: N815 - the API's name
    error: str | None = None


_decoder = msgspec.json.Decoder(_Answer)


def number(raw: str) -> float | None:
    """A sample value as the API writes it (a string); NaN and infinities are None."""
    try:
        v = float(raw)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Point:
    labels: Labels
    value: float | None


@dataclass(frozen=True)
class Range:
    labels: Labels
    values: list[tuple[float, float | None]]


class QueryClient:
    """One engine, one connection pool; ``aclose`` at the end."""

    def __init__(self, settings: FleetSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert settings.query_url is not None
        self.base = settings.query_url.rstrip("/")
        self.shown_url = url_without_credentials(self.base)
        verify: Any = settings.ca_file if settings.ca_file is not None else settings.tls_verify
        self._client = httpx.AsyncClient(
            headers={"Accept": "application/json", **settings.headers}, timeout=settings.timeout, verify=verify, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def query(self, expr: str, at: float) -> list[Point]:
        """An instant query at unix time ``at``: one point per series (the API's vector)."""
        data = await self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, expr)
        if data.result_type == "scalar":
            return []
        self._expect(data, "vector", expr)
        return [Point(r.metric, number(r.value[1]) if r.value is not None else None) for r in data.result]

    async def query_range(self, expr: str, start: float, end: float, step: float) -> list[Range]:
        """A range query: every series' points at ``start``, ``start + step``... up to ``end``
        (points where the series had no value are missing, as in the API)."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:.3f}"}
        data = await self._get("/api/v1/query_range", params, expr)
        self._expect(data, "matrix", expr)
        return [Range(r.metric, [(t, number(v)) for t, v in r.values]) for r in data.result]

    def _expect(self, data: _Data, kind: str, expr: str) -> None:
        if data.result_type != kind:
            raise EngineError(502, "fleet engine answered an unexpected result type", {"url": self.shown_url, "query": expr, "result_type": data.result_type})

    async def _get(self, path: str, params: dict[str, str], expr: str) -> _Data:
        url = self.base + path
        where: dict[str, Any] = {"url": self.shown_url, "query": expr}
        try:
            async with self._client.stream("GET", url, params=params) as r:
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise EngineError(502, "fleet engine answer too large", {**where, "limit_bytes": MAX_ANSWER_BYTES})
                status = r.status_code
        except httpx.TimeoutException as e:
            raise EngineError(504, "fleet engine timed out", {**where, "reason": f"{type(e).__name__}: {e}"}) from None
        except (httpx.TransportError, httpx.InvalidURL) as e:
            raise EngineError(503, "fleet engine unreachable", {**where, "reason": f"{type(e).__name__}: {e}"}) from None
        try:
            answer = _decoder.decode(body)
        except msgspec.DecodeError as e:
            text = bytes(body[:200]).decode("utf-8", "replace")
            raise EngineError(502, "fleet engine answered something other than the Prometheus query API", {**where, "status": status, "reason": str(e), "body": text}) from None
        if status != 200 or answer.status != "success" or answer.data is None:
            raise EngineError(502, "fleet engine refused the query", {**where, "status": status, "error_type": answer.errorType, "error": answer.error})
        return answer.data
