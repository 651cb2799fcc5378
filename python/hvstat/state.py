"""What the lifespan hands to the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hvstat.alerts.engine import AlertEngine
from hvstat.config import Settings
from hvstat.hub import Hub
from hvstat.sources.base import Source
from hvstat.sources.containers import ContainerSource
from hvstat.sources.node import NodeSource
from hvstat.sources.vms import VmSource
from hvstat.store import Store

if TYPE_CHECKING:
    from hvstat.remote_write import RemoteWriter


@dataclass(frozen=True)
class AppState:
    settings: Settings
    store: Store
    node_source: NodeSource
    container_source: ContainerSource | None
    sources: tuple[Source, ...]
    version: str
    started: float
    hub: Hub
    # None when [alerts] enabled = false.
    alerts: AlertEngine | None = None
    # None when [vms] enabled = false.
    vm_source: VmSource | None = None
    # None when [remote_write] enabled = false.
    remote_write: RemoteWriter | None = None
