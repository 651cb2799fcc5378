"""``GET /api/alerts`` (active alerts, recent history, notifier counters) and
``GET /api/alerts/rules`` (the rules as compiled from the config). See docs/api.md and docs/alerts.md."""

from __future__ import annotations

import time
from typing import get_args

from starlette.requests import Request
from starlette.routing import Route

from hvstat.alerts.engine import AlertEngine
from hvstat.api.responses import ApiError, MsgspecResponse, check_params
from hvstat.models import AlertList, AlertRuleList, AlertSeverity
from hvstat.state import AppState

SEVERITIES = get_args(AlertSeverity)
STATES = ("pending", "firing")


def _engine(request: Request) -> AlertEngine:
    state: AppState = request.app.state.hvstat
    if state.alerts is None:
        raise ApiError(404, "alerts are disabled", {"setting": "alerts.enabled"})
    return state.alerts


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise ApiError(400, f"unknown {name}", {name: value, "allowed": list(allowed)})
    return value


async def alerts(request: Request) -> MsgspecResponse:
    """Active alerts and the history of resolved ones, newest first. ``?severity=``, ``?rule=`` and
    ``?state=`` (pending, firing) narrow both; ``?limit=`` caps the history."""
    check_params(request, {"severity", "rule", "state", "limit"})
    engine = _engine(request)
    severity = _choice(request, "severity", SEVERITIES)
    rule = _choice(request, "rule", tuple(r.name for r in engine.rules))
    state = _choice(request, "state", STATES)
    raw_limit = request.query_params.get("limit")
    limit: int | None = None
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = -1
        if limit < 0:
            raise ApiError(400, "bad limit", {"limit": raw_limit, "reason": "an integer >= 0"})
    active = [
        a
        for a in engine.active()
        if (severity is None or a.severity == severity) and (rule is None or a.rule == rule) and (state is None or a.state == state)
    ]
    history = (
        []
        if state is not None
        else [a for a in engine.history() if (severity is None or a.severity == severity) and (rule is None or a.rule == rule)]
    )
    if limit is not None:
        history = history[:limit]
    return MsgspecResponse(AlertList(timestamp=time.time(), active=active, history=history, notifiers=engine.notifier_status()))


async def rules(request: Request) -> MsgspecResponse:
    check_params(request, set())
    return MsgspecResponse(AlertRuleList(rules=_engine(request).rule_infos()))


routes = [
    Route("/api/alerts", alerts, methods=["GET"]),
    Route("/api/alerts/rules", rules, methods=["GET"]),
]
