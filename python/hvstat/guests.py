"""Containers and VMs: one code path for every kind of guest.

A ``GuestKind`` says what differs between kinds (names, the fields a list can be filtered by, how a
reference is matched, the wire types of its lists and messages, where the store keeps it); the
REST routes (api/guests.py), the WebSocket hub's topics (hub.py) and history (api/history.py) take
a kind and never branch on which one it is.

A reference that matches nothing or more than one guest raises ``GuestLookupError``: a domain
error, which REST answers as 404/409 and the hub as a topic error.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hvstat.models import (
    ContainerList,
    ContainerMetrics,
    ContainerMetricsMessage,
    ContainersSample,
    ContainersSummaryMessage,
    ContainerSummary,
    Runtime,
    VmList,
    VmMetrics,
    VmMetricsMessage,
    VmOrigin,
    VmsSample,
    VmsSummaryMessage,
    VmStatus,
    VmSummary,
    Wire,
    WsMessage,
)
from hvstat.store import Kind, Store

# A container id prefix shorter than Docker's short id is too likely to match by accident.
MIN_PREFIX = 12

G = TypeVar("G", ContainerMetrics, VmMetrics)
S = TypeVar("S", ContainersSample, VmsSample)


class GuestLookupError(LookupError):
    """``ref`` names no guest (``ambiguous`` False) or several (True); ``error`` and ``detail``
    are what the API says about it."""

    def __init__(self, error: str, detail: dict[str, Any], *, ambiguous: bool) -> None:
        super().__init__(error)
        self.error, self.detail, self.ambiguous = error, detail, ambiguous


@dataclass(frozen=True)
class Filter:
    """A query parameter of the list that keeps the guests whose ``param`` field equals it."""

    param: str
    allowed: frozenset[str]


@dataclass(frozen=True)
class GuestKind(Generic[G, S]):
    name: str  # "container": topics container:<id>, history entity container:<id>
    plural: str  # "containers": the topic of every guest, the REST path, the source's name
    label: str  # how messages call one ("container", "VM")
    setting: str  # the setting that turns its source off
    filters: tuple[Filter, ...]
    # Whether ``guest`` is what ``ref`` names, besides its exact id.
    matches: Callable[[G, str], bool]
    hint: str  # what a reference may be, for the 404
    sample_type: type[S]
    guests_type: type[G]
    summary_type: type[Wire]
    list_type: type[Wire]
    summary_message_type: type[WsMessage]
    # The store's latest guests by id, its latest sample, and the history kind.
    latest: Callable[[Store], Mapping[str, G]]
    latest_sample: Callable[[Store], S | None]
    history: Callable[[Store], Kind]
    # The ``<plural>`` topic's message(s) for a sample: one message with every guest, or (None)
    # one ``guest_message`` per guest, sent together.
    all_message: Callable[[str, S], WsMessage] | None
    # The ``<name>:<id>`` topic's message for a guest (None if it has none for a vanished one).
    guest_message: Callable[[str, S, G | None, str], WsMessage | None]

    def summary(self, guest: G) -> Wire:
        """A guest's list entry: the fields of ``summary_type``, copied from its sample."""
        return self.summary_type(**{n: getattr(guest, n) for n in self.summary_type.__struct_fields__})

    def guests(self, sample: S) -> Sequence[G]:
        return typing.cast(Sequence[G], getattr(sample, self.plural))

    def resolve(self, guests: Mapping[str, G], ref: str) -> G:
        """The guest ``ref`` names: its id, or what ``matches`` accepts. Several matches are a
        conflict, not a guess."""
        if ref in guests:
            return guests[ref]
        found = {g.id: g for g in guests.values() if self.matches(g, ref)}
        if len(found) == 1:
            return next(iter(found.values()))
        if found:
            raise GuestLookupError(f"ambiguous {self.label} reference", {"ref": ref, "matches": sorted(found)}, ambiguous=True)
        raise GuestLookupError(f"no such {self.label}", {"ref": ref, "hint": self.hint}, ambiguous=False)

    def listing(self, sample: S, wanted: Mapping[str, str] | None = None) -> Wire:
        """The list body (``GET /api/<plural>``, the hello): every guest, or those whose fields
        equal ``wanted`` (filter param -> value, already checked against ``filters``)."""
        summary = self.summary
        items = [summary(g) for g in self.guests(sample) if not wanted or all(getattr(g, k) == v for k, v in wanted.items())]
        return self.list_type(
            timestamp=sample.timestamp,
            interval_secs=sample.interval_secs,
            host_cpus=sample.host_cpus,
            unavailable=sample.unavailable,
            **{self.plural: items},
        )

    def summary_message(self, node_id: str, sample: S) -> WsMessage:
        """The ``<plural>.summary`` topic's message: the list, as a message."""
        summary = self.summary
        return self.summary_message_type(
            node_id=node_id,
            timestamp=sample.timestamp,
            interval_secs=sample.interval_secs,
            host_cpus=sample.host_cpus,
            unavailable=sample.unavailable,
            **{self.plural: [summary(g) for g in self.guests(sample)]},
        )


def _enum(tp: Any) -> frozenset[str]:
    return frozenset(typing.get_args(tp))


# --- containers -------------------------------------------------------------------------------------


def _container_matches(c: ContainerMetrics, ref: str) -> bool:
    return c.name == ref or (len(ref) >= MIN_PREFIX and c.id.startswith(ref))


def _all_containers(node_id: str, s: ContainersSample) -> WsMessage:
    return ContainerMetricsMessage(
        node_id=node_id,
        timestamp=s.timestamp,
        interval_secs=s.interval_secs,
        host_cpus=s.host_cpus,
        containers=s.containers,
        vanished=s.vanished,
        unavailable=s.unavailable,
    )


def _one_container(node_id: str, s: ContainersSample, c: ContainerMetrics | None, cid: str) -> WsMessage | None:
    """The container's sample; in the sample where it vanished, none and its id in ``vanished``."""
    if c is None and cid not in s.vanished:
        return None  # not there now (it vanished earlier and has not come back)
    return ContainerMetricsMessage(
        node_id=node_id,
        timestamp=s.timestamp,
        interval_secs=s.interval_secs,
        host_cpus=s.host_cpus,
        containers=[c] if c is not None else [],
        vanished=[] if c is not None else [cid],
    )


CONTAINERS: GuestKind[ContainerMetrics, ContainersSample] = GuestKind(
    name="container",
    plural="containers",
    label="container",
    setting="containers.enabled",
    filters=(
        Filter("runtime", _enum(Runtime)),
        Filter("state", _enum(typing.get_type_hints(ContainerMetrics)["state"])),
    ),
    matches=_container_matches,
    hint=f"use an id, a unique id prefix of at least {MIN_PREFIX} characters, or a name",
    sample_type=ContainersSample,
    guests_type=ContainerMetrics,
    summary_type=ContainerSummary,
    list_type=ContainerList,
    summary_message_type=ContainersSummaryMessage,
    latest=lambda store: store.containers,
    latest_sample=lambda store: store.containers_sample,
    history=lambda store: store.container_kind,
    all_message=_all_containers,
    guest_message=_one_container,
)


# --- VMs --------------------------------------------------------------------------------------------


def _vm_matches(v: VmMetrics, ref: str) -> bool:
    """UUIDs in any letter case (libvirt prints them lower case, dmidecode upper case)."""
    lowered = ref.lower()
    return v.id.lower() == lowered or (v.uuid or "").lower() == lowered or v.name == ref


def _one_vm(node_id: str, s: VmsSample, v: VmMetrics | None, vid: str) -> WsMessage | None:
    """A VM's message; none for a VM that vanished (its VmStatusChanged says so)."""
    if v is None:
        return None
    return VmMetricsMessage(
        node_id=node_id,
        timestamp=v.timestamp,
        vm_id=v.id,
        name=v.name,
        cpu_usage=v.cpu_usage_percent,
        memory_usage=v.memory_usage_percent,
        disk_read=v.disk_read_bytes_per_sec,
        disk_write=v.disk_write_bytes_per_sec,
        network_rx=v.network_rx_bytes_per_sec,
        network_tx=v.network_tx_bytes_per_sec,
        sample=v,
    )


VMS: GuestKind[VmMetrics, VmsSample] = GuestKind(
    name="vm",
    plural="vms",
    label="VM",
    setting="vms.enabled",
    filters=(Filter("origin", _enum(VmOrigin)), Filter("status", _enum(VmStatus))),
    matches=_vm_matches,
    hint="use the libvirt UUID, the QMP id or the name",
    sample_type=VmsSample,
    guests_type=VmMetrics,
    summary_type=VmSummary,
    list_type=VmList,
    summary_message_type=VmsSummaryMessage,
    latest=lambda store: store.vms,
    latest_sample=lambda store: store.vms_sample,
    history=lambda store: store.vm_kind,
    all_message=None,
    guest_message=_one_vm,
)

KINDS: tuple[GuestKind[Any, Any], ...] = (CONTAINERS, VMS)

__all__ = ["CONTAINERS", "KINDS", "VMS", "Filter", "GuestKind", "GuestLookupError"]
