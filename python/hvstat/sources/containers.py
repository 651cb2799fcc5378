"""ContainerSource: every cgroup guest (Docker, Podman, LXC, Kubernetes, libvirt, Proxmox, plain
OCI) found and sampled by the Rust core."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hvstat._native import ContainerSampler
from hvstat.config import ContainerSettings, NodeSettings
from hvstat.models import ContainersSample, containers_sample_decoder
from hvstat.sources.base import Source
from hvstat.sources.node import PRIME_SECS
from hvstat.store import Store

log = logging.getLogger(__name__)


class ContainerSource(Source):
    name = "containers"

    def __init__(
        self,
        settings: ContainerSettings,
        node: NodeSettings,
        interval_secs: float,
        store: Store,
        publish: Callable[[ContainersSample], None] | None = None,
    ) -> None:
        super().__init__(interval_secs, publish)
        self._sampler = ContainerSampler(settings.core_config_json(node))
        self._store = store

    async def start(self) -> None:
        # A first sample discovers the guests and gives rates a base; the real first one follows.
        await self.prepare(self._first_reading)
        await asyncio.sleep(PRIME_SECS)
        await super().start()

    def _first_reading(self) -> None:
        first = self.sample()
        log.info("tracking %d containers: %s", len(first.containers), ", ".join(c.name for c in first.containers) or "none")

    def collect(self) -> ContainersSample:
        sample = self.sample()
        for cid in sample.appeared:
            log.info("container appeared: %s", cid)
        for cid in sample.vanished:
            log.info("container vanished: %s", cid)
        self._store.put_containers(sample)
        return sample

    def sample(self) -> ContainersSample:
        return containers_sample_decoder.decode(self._sampler.sample())
