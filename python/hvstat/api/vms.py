"""VM routes: the list, one VM's latest sample by UUID, name or QMP id, and recent status changes."""

from __future__ import annotations

import math
import typing

from starlette.requests import Request
from starlette.routing import Route

from hvstat.api.responses import ApiError, MsgspecResponse, check_params
from hvstat.models import VmList, VmMetrics, VmOrigin, VmStatus, VmStatusChangedMessage, vm_summary
from hvstat.state import AppState

ORIGINS = frozenset(typing.get_args(VmOrigin))
STATUSES = frozenset(typing.get_args(VmStatus))


def resolve(vms: typing.Mapping[str, VmMetrics], ref: str) -> VmMetrics:
    """The VM whose id (libvirt UUID, QMP id) or UUID is `ref` (UUIDs in any letter case), or
    whose name is `ref`. Two VMs of the same name (libvirt and a bare QEMU) are a conflict, not a guess."""
    if ref in vms:
        return vms[ref]
    lowered = ref.lower()
    matches = {v.id: v for v in vms.values() if v.id.lower() == lowered or (v.uuid or "").lower() == lowered or v.name == ref}
    if len(matches) == 1:
        return next(iter(matches.values()))
    if matches:
        raise ApiError(409, "ambiguous VM reference", {"ref": ref, "matches": sorted(matches)})
    raise ApiError(404, "no such VM", {"ref": ref, "hint": "use the libvirt UUID, the QMP id or the name"})


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.hvstat
    if state.vm_source is None:
        raise ApiError(404, "VM monitoring is disabled", {"setting": "vms.enabled"})
    return state


async def list_vms(request: Request) -> MsgspecResponse:
    """Every VM; `?origin=` and `?status=` narrow the list."""
    check_params(request, {"origin", "status"})
    state = _state(request)
    origin, status = request.query_params.get("origin"), request.query_params.get("status")
    if origin is not None and origin not in ORIGINS:
        raise ApiError(400, "unknown origin", {"origin": origin, "allowed": sorted(ORIGINS)})
    if status is not None and status not in STATUSES:
        raise ApiError(400, "unknown status", {"status": status, "allowed": sorted(STATUSES)})
    sample = state.store.vms_sample
    if sample is None:
        raise ApiError(503, "no VM sample yet", state.vm_source.health().error)
    items = [vm_summary(v) for v in sample.vms if (origin is None or v.origin == origin) and (status is None or v.status == status)]
    return MsgspecResponse(
        VmList(timestamp=sample.timestamp, interval_secs=sample.interval_secs, host_cpus=sample.host_cpus, vms=items, unavailable=sample.unavailable)
    )


async def vm_metrics(request: Request) -> MsgspecResponse:
    check_params(request, set())
    state = _state(request)
    return MsgspecResponse(resolve(state.store.vms, request.path_params["ref"]))


async def vm_events(request: Request) -> MsgspecResponse:
    """Recent VmStatusChanged events (the same messages /ws sends), oldest first; `?since=`."""
    check_params(request, {"since"})
    state = _state(request)
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


routes = [
    Route("/api/vms", list_vms, methods=["GET"]),
    Route("/api/vms/events", vm_events, methods=["GET"]),
    Route("/api/vms/{ref}/metrics", vm_metrics, methods=["GET"]),
]
