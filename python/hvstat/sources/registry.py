"""Every source hvstat can run, and which of them a configuration turns on.

The lifespan builds its sources from here and nothing else; a new source (processes, say) is one
more entry. Each entry names the source, says whether the settings enable it, and builds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hvstat.settings import Settings
from hvstat.sources.base import Source
from hvstat.sources.containers import ContainerSource
from hvstat.sources.node import NodeSource
from hvstat.sources.processes import ProcessSource
from hvstat.sources.vms import VmSource


@dataclass(frozen=True)
class SourceKind:
    name: str
    # The setting that turns it off ("" for a source that always runs).
    setting: str
    enabled: Callable[[Settings], bool]
    build: Callable[[Settings], Source]


REGISTRY: tuple[SourceKind, ...] = (
    SourceKind("node", "", lambda s: True, lambda s: NodeSource(s.node, s.monitoring.node_metrics_interval)),
    SourceKind(
        "containers",
        "containers.enabled",
        lambda s: s.containers.enabled,
        lambda s: ContainerSource(s.containers, s.node, s.monitoring.vm_metrics_interval),
    ),
    SourceKind("vms", "vms.enabled", lambda s: s.vms.enabled, lambda s: VmSource(s.vms, s.node, s.monitoring.vm_metrics_interval, s.server.node_name)),
    SourceKind(
        "processes",
        "processes.enabled",
        lambda s: s.processes.enabled,
        lambda s: ProcessSource(s.processes, s.node, s.processes.interval_secs(s.monitoring), every_process=_process_rules(s)),
    ),
)


def _process_rules(settings: Settings) -> bool:
    """Whether an alert rule judges processes (``process.<field>``, ``process[<pid>].<field>``): then
    the process source hands every process to Python each tick, not only the top ones."""
    return settings.alerts.enabled and any(re.match(r"\s*process\b", r.metric) for r in settings.alerts.rules)


def build_sources(settings: Settings) -> dict[str, Source]:
    """The enabled sources, by name, in registry order."""
    return {k.name: k.build(settings) for k in REGISTRY if k.enabled(settings)}
