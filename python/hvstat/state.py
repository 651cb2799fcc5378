"""What the lifespan hands to the routes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hvstat.alerts.engine import AlertEngine
from hvstat.bus import SampleBus
from hvstat.clock import ClockWatch
from hvstat.file_sink import FileSink
from hvstat.fleet import FleetView
from hvstat.history import HistoryService
from hvstat.hub import Hub
from hvstat.identity import NodeIdentity
from hvstat.remote_write import RemoteWriter
from hvstat.rollups import RollupWriter
from hvstat.settings import Settings
from hvstat.sources.base import Source
from hvstat.store import Store


@dataclass
class AppState:
    """Not frozen: a reload (hvstat/reload.py) swaps ``settings`` for the ones in effect and turns
    ``remote_write`` and ``file_output`` on, off or over to new ones; routes read them per request."""

    settings: Settings
    store: Store
    # The running sources by name (hvstat.sources.registry): "node", and "containers" and "vms"
    # unless [containers] / [vms] enabled = false.
    sources: Mapping[str, Source]
    version: str
    started: float
    hub: Hub
    bus: SampleBus
    # The node's name, [labels] and machine id (hvstat/identity.py).
    identity: NodeIdentity
    # The wall clock against the monotonic clock, checked at every node sample (hvstat/clock.py).
    clock: ClockWatch
    # None when [alerts] enabled = false.
    alerts: AlertEngine | None = None
    # None when [remote_write] enabled = false.
    remote_write: RemoteWriter | None = None
    # History across memory and disk (hvstat/history.py); the on-disk writer, None when
    # [storage] path = "".
    history: HistoryService | None = None
    rollups: RollupWriter | None = None
    # None when [outputs.file] enabled = false.
    file_output: FileSink | None = None
    # The fleet view's queries against the engine; None while [fleet] query_url is unset.
    fleet: FleetView | None = None
