"""NodeSource: the node's /proc and /sys, sampled by the Rust core."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hvstat._native import NodeSampler
from hvstat.config import NodeSettings
from hvstat.models import NodeMetrics, node_metrics_decoder
from hvstat.sources.base import Source
from hvstat.store import Store

# How long the first interval lasts, so that the very first sample already has real rates. CPU
# time is counted in 10 ms ticks: half a second gives 1% resolution per CPU.
PRIME_SECS = 0.5


class NodeSource(Source):
    name = "node"

    def __init__(
        self, settings: NodeSettings, interval_secs: float, store: Store, publish: Callable[[NodeMetrics], None] | None = None
    ) -> None:
        super().__init__(interval_secs, publish)
        self._sampler = NodeSampler(settings.core_config_json())
        self._store = store

    async def start(self) -> None:
        await self.prepare(self._sampler.prime)
        await asyncio.sleep(PRIME_SECS)
        await super().start()

    def collect(self) -> NodeMetrics:
        sample = self.sample()
        self._store.put_node(sample)
        return sample

    def sample(self) -> NodeMetrics:
        return node_metrics_decoder.decode(self._sampler.sample())
