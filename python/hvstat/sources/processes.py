"""ProcessSource: every process of the host, its users and the load status, sampled by the core.

Each tick the core's ProcessSampler reads every /proc/<pid> (kept-open stat, and io when the CPU time
moved or every 12th tick, within an fd budget of half the soft RLIMIT_NOFILE, which the app's lifespan
raises to the hard limit first),
and returns the processes with their rates, the per-user and per-guest sums, the persistent heavy
users and the load status, as one ``ProcessesSample``.
"""

from __future__ import annotations

import asyncio
import logging

from hvstat._native import ProcessSampler
from hvstat.models import ProcessesSample, processes_sample_decoder
from hvstat.settings import NodeSettings, ProcessSettings
from hvstat.sources.base import Source

log = logging.getLogger(__name__)

# As the node source: the first sample already has rates (CPU ticks are 10 ms: 2% resolution).
PRIME_SECS = 0.5


class ProcessSource(Source):
    name = "processes"

    def __init__(self, settings: ProcessSettings, node: NodeSettings, interval_secs: float) -> None:
        super().__init__(interval_secs)
        self.settings = settings
        self._sampler = ProcessSampler(settings.core_config_json(node))

    async def start(self) -> None:
        await self.prepare(self._sampler.sample)
        await asyncio.sleep(PRIME_SECS)
        await super().start()

    def collect(self) -> list[ProcessesSample]:
        return [self.sample()]

    def sample(self) -> ProcessesSample:
        return processes_sample_decoder.decode(self._sampler.sample())

    def paths(self) -> list[str]:
        return self._sampler.paths()
