"""``GET /metrics``: the store's latest samples in the Prometheus text format 0.0.4, or OpenMetrics
1.0.0 when the scraper's Accept header asks for ``application/openmetrics-text`` (Prometheus itself
does). The families and the walks are hvstat.exposition's, shared with remote write.

The text is rendered in a worker thread: with 1000 guests it takes milliseconds of Python that
would otherwise hold every request and the fan-out behind it. What lives on the event loop (the
alert engine's state, the hub's clients, the sources' health) is copied first, on the loop; the
samples are immutable and swapped whole by the store, so the thread reads them as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from hvstat.api.responses import check_params
from hvstat.exposition import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, AlertCounts, HubCounts, render
from hvstat.models import NotifierStatus
from hvstat.state import AppState


@dataclass(frozen=True)
class _Alerts:
    """The alert engine's numbers, copied on the event loop (the engine changes them there)."""

    firing: list[tuple[str, str, int]]
    notifiers: list[NotifierStatus]

    @classmethod
    def of(cls, alerts: AlertCounts) -> _Alerts:
        return cls(alerts.firing_by_rule(), alerts.notifier_status())

    def firing_by_rule(self) -> list[tuple[str, str, int]]:
        return self.firing

    def notifier_status(self) -> list[NotifierStatus]:
        return self.notifiers


@dataclass
class _Hub:
    """The hub's counters, copied on the event loop."""

    clients: Sequence[object]
    dropped_slow: int
    refused: int
    frames_encoded: int

    @classmethod
    def of(cls, hub: HubCounts) -> _Hub:
        return cls(list(hub.clients), hub.dropped_slow, hub.refused, hub.frames_encoded)


def wants_openmetrics(accept: str) -> bool:
    """True when the Accept header lists application/openmetrics-text with a q above 0. Prometheus
    sends ``application/openmetrics-text;version=1.0.0,...;q=0.75,text/plain;version=0.0.4;q=0.5,...``;
    any OpenMetrics version it asks for is answered with 1.0.0 (0.0.1 is the same text format)."""
    for media_range in accept.split(","):
        media_type, *params = (p.strip() for p in media_range.split(";"))
        if media_type.lower() != "application/openmetrics-text":
            continue
        q = 1.0
        for p in params:
            key, _, val = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


async def metrics(request: Request) -> Response:
    check_params(request, set())
    state: AppState = request.app.state.hvstat
    om = wants_openmetrics(request.headers.get("accept", ""))
    body = await asyncio.to_thread(
        render,
        state.store.node,
        state.store.containers.values(),
        [s.health() for s in state.sources.values()],
        state.version,
        vms=state.store.vms.values(),
        processes=state.store.processes_sample,
        processes_top=state.settings.processes.prometheus_top,
        alerts=None if state.alerts is None else _Alerts.of(state.alerts),
        remote_write=None if state.remote_write is None else state.remote_write.status(),
        hub=_Hub.of(state.hub),
        storage=None if state.rollups is None else state.rollups.counts,
        file_output=state.file_output,
        identity=state.identity,
        stats=[s.stats() for s in state.sources.values()],
        clock=state.clock,
        openmetrics=om,
    )
    return Response(body, media_type=CONTENT_TYPE_OPENMETRICS if om else CONTENT_TYPE_TEXT)
