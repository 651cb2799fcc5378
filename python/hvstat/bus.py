"""The sample bus: the one path every sample takes from its source to whoever uses it.

```
source.collect()  (worker thread)  ->  store.put()  (same thread)  ->  bus.publish()  (event loop)
                                                                        -> hub, alerts, remote write, ...
```

- A source's tick returns what it produced (a node sample; the containers' sample; the VMs' status
  changes, then their sample). ``record`` writes each into the store in the worker thread, so the
  REST routes see it as soon as it exists; ``publish`` then hands each, in order, to every listener
  on the event loop.
- A listener implements one method, ``on_sample``, and picks the kinds it wants (``match``); it
  must not block (the event loop) and must not read another listener's state. A listener that
  raises is logged and counted; the sample still reaches the others.
- Events that happen between ticks (a libvirt lifecycle event) take the same path: ``deliver``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from hvstat.sources.base import Sample
from hvstat.store import Store

log = logging.getLogger(__name__)

__all__ = ["Listener", "Sample", "SampleBus"]


class Listener(Protocol):
    def on_sample(self, sample: Sample) -> None: ...


class SampleBus:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[tuple[str, Listener]] = []
        # Per listener: how many samples it failed on (a bug, logged with its traceback).
        self.failures: dict[str, int] = {}

    def subscribe(self, name: str, listener: Listener) -> None:
        self._listeners.append((name, listener))
        self.failures.setdefault(name, 0)

    def unsubscribe(self, name: str) -> None:
        """Stop handing samples to ``name`` (a sink a reload turned off or replaced)."""
        self._listeners = [(n, listener) for n, listener in self._listeners if n != name]

    @property
    def listeners(self) -> list[str]:
        return [name for name, _ in self._listeners]

    def record(self, samples: Sequence[Sample]) -> None:
        """Into the store, from the source's worker thread."""
        for s in samples:
            self.store.put(s)

    def publish(self, samples: Sequence[Sample]) -> None:
        """To every listener, in order, on the event loop."""
        for s in samples:
            for name, listener in self._listeners:
                try:
                    listener.on_sample(s)
                except Exception:  # noqa: BLE001 - one listener's bug must not starve the others
                    self.failures[name] += 1
                    log.exception("listener %s failed on a %s", name, type(s).__name__)

    def deliver(self, samples: Sequence[Sample]) -> None:
        """``record`` then ``publish``, for what arrives on the event loop between ticks."""
        self.record(samples)
        self.publish(samples)
