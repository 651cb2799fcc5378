"""ContainerSource: every cgroup guest (Docker, Podman, LXC, Kubernetes, libvirt, Proxmox, plain
OCI) found and sampled by the Rust core."""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

from hvstat._native import ContainerSampler
from hvstat.models import ContainersSample, containers_sample_decoder
from hvstat.settings import ContainerSettings, NodeSettings
from hvstat.sources.base import Source
from hvstat.sources.node import PRIME_SECS

log = logging.getLogger(__name__)

# Guests that must vanish in one tick before the C heap is trimmed (see _give_back).
TRIM_AFTER_VANISHED = 50
_malloc_trim: Callable[[int], int] | None
try:
    _malloc_trim = ctypes.CDLL(None).malloc_trim  # glibc; absent elsewhere (musl)
except (OSError, AttributeError):
    _malloc_trim = None


def _give_back() -> None:
    """Return the freed C heap to the kernel. The core frees a vanished guest's readers and
    buffers, but glibc keeps freed memory in the arena of the thread that used it (this source's
    worker) for reuse; after a burst of guests left, that was tens of MB of RSS that never came
    back (bench/README.md, "Whole service": churn)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


class ContainerSource(Source):
    name = "containers"
    # Discovery (mountinfo and the cgroup walk) and each cgroup controller's files, with their keys
    # in the sample's and every container's ``unavailable`` (docs/api.md, "Container unavailable
    # keys"): a reader is failing when it failed for any container this tick.
    READERS = {
        "discovery": ("containers",),
        "cpu": ("cpu", "cpu_limit", "cpu_throttled_percent"),
        "memory": ("memory", "memory_limit", "memory_swap"),
        "io": ("block", "block_ops"),
        "pids": ("pids",),
        "procs": ("processes",),
        "state": ("state",),
        "pressure": ("pressure",),
        "network": ("network",),
    }

    def __init__(
        self,
        settings: ContainerSettings,
        node: NodeSettings,
        interval_secs: float,
    ) -> None:
        super().__init__(interval_secs)
        self._sampler = ContainerSampler(settings.core_config_json(node))

    async def start(self) -> None:
        # A first sample discovers the guests and gives rates a base; the real first one follows.
        await self.prepare(self._first_reading)
        await asyncio.sleep(PRIME_SECS)
        await super().start()

    def _first_reading(self) -> None:
        first = self.sample()
        log.info("tracking %d containers: %s", len(first.containers), ", ".join(c.name for c in first.containers) or "none")

    async def reconfigure(self, config_json: str) -> bool:
        self._sampler = await asyncio.to_thread(self._discovered, config_json)
        return True

    @staticmethod
    def _discovered(config_json: str) -> ContainerSampler:
        """A new sampler after its first reading: the guests found (not reported as appeared by
        the next tick) and its rates based."""
        sampler = ContainerSampler(config_json)
        sampler.sample()
        return sampler

    def collect(self) -> list[ContainersSample]:
        sample = self.sample()
        for cid in sample.appeared:
            log.info("container appeared: %s", cid)
        for cid in sample.vanished:
            log.info("container vanished: %s", cid)
        if len(sample.vanished) >= TRIM_AFTER_VANISHED:
            _give_back()
        return [sample]

    def sample(self) -> ContainersSample:
        return containers_sample_decoder.decode(self._sampler.sample())
