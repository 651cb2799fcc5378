"""What hvstat says about its own collection, node_exporter-style (docs/prometheus.md, "hvstat
itself"): a histogram of durations, a source's counters and the health of each of its readers, and
the build. Plain data, filled by the sources and remote write, read by hvstat.exposition."""

from __future__ import annotations

import bisect
import platform
from collections.abc import Sequence
from dataclasses import dataclass

from hvstat._native import __version__ as CORE_VERSION

# Seconds. A node tick takes about a millisecond, a container tick of 1000 guests about 0.1 s, a
# libvirt call that hangs up to the tick timeout (5 s or more): buckets from 0.5 ms to 10 s.
TICK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One remote-write POST: a few ms on a LAN, up to remote_write.timeout (10 s by default, at most 300).
SEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class HistogramSnapshot:
    """A histogram as exposed: cumulative counts per upper bound (the +Inf bucket is ``count``)."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    sum: float
    count: int


class Histogram:
    """A Prometheus histogram of fixed buckets. ``observe`` from one thread (the event loop)."""

    __slots__ = ("bounds", "_counts", "_sum", "_count")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._counts = [0] * len(self.bounds)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)  # the first bound >= value: le is inclusive
        if i < len(self._counts):
            self._counts[i] += 1
        self._sum += value
        self._count += 1

    def snapshot(self) -> HistogramSnapshot:
        cumulative, total = [], 0
        for c in self._counts:
            total += c
            cumulative.append(total)
        return HistogramSnapshot(self.bounds, tuple(cumulative), self._sum, self._count)


@dataclass(frozen=True)
class SourceStats:
    """One source's collection since the start: ticks that stored a sample, ticks that failed, how
    long ticks took, and each reader's state in the last tick (None: fine; else why it failed)."""

    name: str
    samples: int
    failures: int
    duration: HistogramSnapshot
    readers: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class BuildInfo:
    """hvstat_build_info's labels: hvstat's version (what /health says), the compiled core's own
    (``hvstat._core.__version__``: the same in a wheel; a stale extension in a development tree
    shows here), and the Python that runs it."""

    version: str
    core_version: str = CORE_VERSION
    python: str = platform.python_version()
