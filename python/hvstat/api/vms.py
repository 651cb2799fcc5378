"""``GET /api/vms/events``: recent VM status changes (the list and one VM are api/guests.py's)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.guests import source_of
from hvstat.api.responses import MsgspecResponse, check_params, number_param
from hvstat.guests import VMS
from hvstat.models import VmStatusChangedMessage


async def vm_events(request: Request) -> MsgspecResponse:
    """Recent VmStatusChanged events (the same messages /ws sends), oldest first; `?since=`."""
    check_params(request, {"since"})
    state, _ = source_of(request, VMS)
    since = number_param(request, "since", "bad since")
    events: list[VmStatusChangedMessage] = state.store.vm_events()
    if since is not None:
        events = [e for e in events if e.timestamp >= since]
    return MsgspecResponse(events)


routes = [Route("/api/vms/events", vm_events, methods=["GET"])]
