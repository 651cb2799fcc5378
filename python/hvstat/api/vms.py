"""``GET /api/vms/events``: recent VM status changes (the list and one VM are api/guests.py's)."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.guests import source_of
from hvstat.api.responses import ApiError, MsgspecResponse, check_params
from hvstat.guests import VMS
from hvstat.models import VmStatusChangedMessage


async def vm_events(request: Request) -> MsgspecResponse:
    """Recent VmStatusChanged events (the same messages /ws sends), oldest first; `?since=`."""
    check_params(request, {"since"})
    state, _ = source_of(request, VMS)
    raw = request.query_params.get("since")
    events: list[VmStatusChangedMessage] = state.store.vm_events()
    if raw is not None:
        try:
            since = float(raw)
        except ValueError:
            raise ApiError(400, "bad since", {"since": raw, "reason": "not a number"}) from None
        if not math.isfinite(since):
            raise ApiError(400, "bad since", {"since": raw, "reason": "not a finite number"})
        events = [e for e in events if e.timestamp >= since]
    return MsgspecResponse(events)


routes = [Route("/api/vms/events", vm_events, methods=["GET"])]
