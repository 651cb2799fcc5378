"""NodeSource: the node's /proc and /sys, sampled by the Rust core."""

from __future__ import annotations

import asyncio

from hvstat._native import NodeSampler
from hvstat.models import NodeMetrics, node_metrics_decoder
from hvstat.settings import NodeSettings
from hvstat.sources.base import Source

# How long the first interval lasts, so that the very first sample already has real rates. CPU
# time is counted in 10 ms ticks: half a second gives 1% resolution per CPU.
PRIME_SECS = 0.5


class NodeSource(Source):
    name = "node"
    # Each file (or call) the node sampler reads and the ``unavailable`` keys its failure writes
    # (docs/api.md, "unavailable"); a read failure there makes hvstat_reader_up 0.
    READERS = {
        "stat": ("cpu",),
        "meminfo": ("memory",),
        "loadavg": ("load_average_1m",),
        "uptime": ("uptime_secs",),
        "vmstat": ("vm",),
        "pressure": ("pressure", "pressure.*"),
        "diskstats": ("disks",),
        "net_dev": ("interfaces",),
        "mountinfo": ("filesystems",),
        "statvfs": ("disk_usage", "filesystems.*"),
        "ksm": ("ksm",),
        "thermal": ("temperatures", "temperatures.*"),
    }

    def __init__(self, settings: NodeSettings, interval_secs: float) -> None:
        super().__init__(interval_secs)
        self._sampler = NodeSampler(settings.core_config_json())

    async def start(self) -> None:
        await self.prepare(self._sampler.prime)
        await asyncio.sleep(PRIME_SECS)
        await super().start()

    def collect(self) -> list[NodeMetrics]:
        return [self.sample()]

    def sample(self) -> NodeMetrics:
        return node_metrics_decoder.decode(self._sampler.sample())
