"""What the lifespan hands to the routes."""

from __future__ import annotations

from dataclasses import dataclass

from hvstat.config import Settings
from hvstat.hub import Hub
from hvstat.sources.base import Source
from hvstat.sources.containers import ContainerSource
from hvstat.sources.node import NodeSource
from hvstat.store import Store


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
