"""The Store: the latest sample of every entity, written by sources and read by the API.

History (bounded, per entity) comes with the streaming work; until then the store keeps the latest
sample only, which is what ``enable_history = false`` means anyway."""

from __future__ import annotations

from hvstat.models import NodeMetrics


class Store:
    def __init__(self) -> None:
        self._node: NodeMetrics | None = None

    def put_node(self, sample: NodeMetrics) -> None:
        self._node = sample

    @property
    def node(self) -> NodeMetrics | None:
        return self._node
