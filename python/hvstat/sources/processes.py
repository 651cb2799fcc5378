"""ProcessSource: every process of the host, its users and the load status, sampled by the core.

Each tick the core's ProcessSampler reads every /proc/<pid> (kept-open stat, and io when the CPU time
moved or every 12th tick, within an fd budget of half the soft RLIMIT_NOFILE, which the app's lifespan
raises to the hard limit first),
and returns the per-user and per-guest sums, the persistent heavy users, the load status and the
top processes by CPU, as one ``ProcessesSample``. Only the processes something reads every tick are
handed to Python in full: the ``[processes] top`` of the /ws topic, the ``prometheus_top`` of
/metrics, or every process when an alert rule is on ``process.<field>``. The rest stay in the core's
table, which ``query`` filters, sorts and cuts on demand (``GET /api/processes``, ``/api/processes/{pid}``,
``/api/users/{name}/metrics``) with the GIL released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import msgspec

from hvstat._native import ProcessSampler
from hvstat.models import ProcessesSample, ProcessView, process_view_decoder, processes_sample_decoder
from hvstat.settings import NodeSettings, ProcessSettings
from hvstat.sources.base import Sample, Source

log = logging.getLogger(__name__)

# As the node source: the first sample already has rates (CPU ticks are 10 ms: 2% resolution).
PRIME_SECS = 0.5


class ProcessSource(Source):
    name = "processes"

    def __init__(self, settings: ProcessSettings, node: NodeSettings, interval_secs: float, *, every_process: bool = False) -> None:
        """``every_process``: hand every process to Python each tick (an alert rule on
        ``process.<field>`` judges each one); else only the top ``max(top, prometheus_top)``."""
        super().__init__(interval_secs)
        self.settings = settings
        self.top: int | None = None if every_process else max(settings.top, settings.prometheus_top)
        self._sampler = ProcessSampler(settings.core_config_json(node))

    async def start(self) -> None:
        await self.prepare(self._sampler.sample)
        await asyncio.sleep(PRIME_SECS)
        await super().start()

    def collect(self) -> list[ProcessesSample]:
        return [self.sample()]

    def readers(self, samples: Sequence[Sample]) -> dict[str, str | None]:
        """/proc (the process directories), /etc/passwd (user names), /proc/meminfo (the host's
        memory): each note the core writes under their keys is a read error."""
        notes = {k: v for s in samples if isinstance(s, ProcessesSample) for k, v in s.unavailable.items()}
        keys = {"proc": "processes", "passwd": "users.user", "meminfo": "host.memory_total_bytes"}
        return {reader: (f"{key}: {notes[key]}" if key in notes else None) for reader, key in keys.items()}

    def sample(self) -> ProcessesSample:
        return processes_sample_decoder.decode(self._sampler.sample(self.top))

    def query(self, **query: Any) -> ProcessView:
        """The latest sample's processes filtered, sorted and cut by the core (keys of its
        ``ProcessQuery``: sort, limit, pid, uid, user, container, container_prefix, vm, vm_pid,
        vm_scope; None values left out). Blocks on a sample in progress: call it in a thread."""
        body = msgspec.json.encode({k: v for k, v in query.items() if v is not None})
        return process_view_decoder.decode(self._sampler.query(body))

    def paths(self) -> list[str]:
        return self._sampler.paths()
