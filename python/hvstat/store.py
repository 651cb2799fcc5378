"""The Store: the latest sample of every entity, written by sources and read by the API.

History (bounded, per entity) comes with the streaming work; until then the store keeps the latest
sample only, which is what ``enable_history = false`` means anyway."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hvstat.models import ContainerMetrics, ContainersSample, NodeMetrics


class Store:
    def __init__(self) -> None:
        self._node: NodeMetrics | None = None
        self._containers: Mapping[str, ContainerMetrics] = MappingProxyType({})
        self._containers_sample: ContainersSample | None = None

    def put_node(self, sample: NodeMetrics) -> None:
        self._node = sample

    @property
    def node(self) -> NodeMetrics | None:
        return self._node

    def put_containers(self, sample: ContainersSample) -> None:
        # One new mapping per tick, swapped in whole: readers never see a half-updated set, and
        # containers that vanished are simply not in it.
        self._containers = MappingProxyType({c.id: c for c in sample.containers})
        self._containers_sample = sample

    @property
    def containers(self) -> Mapping[str, ContainerMetrics]:
        return self._containers

    @property
    def containers_sample(self) -> ContainersSample | None:
        return self._containers_sample
