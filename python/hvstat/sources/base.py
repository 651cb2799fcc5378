"""What every source shares: a drift-free schedule, collection in a worker thread, and health."""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from hvstat.models import SourceHealth

log = logging.getLogger(__name__)

# Consecutive failures after which a source reports "error" rather than "degraded".
ERROR_AFTER = 3
# A tick gets at least this long before it counts as stuck (and at least one interval).
MIN_TICK_TIMEOUT_SECS = 5.0


class Source(ABC):
    name: str

    def __init__(self, interval_secs: float, publish: Callable[[Any], None] | None = None) -> None:
        self.interval_secs = interval_secs
        # Called on the event loop with what `collect` returned, once it is in the store (the hub's
        # publish_* method); the source knows nothing of who listens.
        self._publish = publish
        self.tick_timeout_secs = max(interval_secs, MIN_TICK_TIMEOUT_SECS)
        self._last_success: float | None = None
        self._last_attempt: float | None = None
        self._last_duration: float | None = None
        self._failures = 0
        self._error: str | None = None
        self._inflight: asyncio.Future[object] | None = None
        self._inflight_since = 0.0

    async def start(self) -> None:
        """Prepare and take the first sample, so the API never serves an empty store."""
        await self.tick()

    async def prepare(self, first_reading: Callable[[], object]) -> None:
        """Run a first reading (priming rates) in a worker thread, bounded like a tick: a reading
        that blocks (a hung mount) must not keep the service from starting; it shows in /health."""
        self._inflight_since = time.monotonic()
        self._inflight = asyncio.ensure_future(asyncio.to_thread(first_reading))
        try:
            await asyncio.wait_for(asyncio.shield(self._inflight), self.tick_timeout_secs)
        except TimeoutError:
            self._failed(f"the first reading did not finish within {self.tick_timeout_secs:.0f}s")
        except Exception as e:  # noqa: BLE001 - reported by the first tick's health too
            self._failed(f"first reading: {type(e).__name__}: {e}")

    @abstractmethod
    def collect(self) -> object:
        """Read and store one sample, and return it for ``publish``. Runs in a worker thread: it
        may block on files."""

    async def tick(self) -> None:
        now = time.monotonic()
        if self._inflight is not None and not self._inflight.done():
            # A collection can block in the kernel (statvfs of a hung NFS mount, a stuck daemon):
            # report it and wait for it instead of stacking up threads behind it.
            self._failed(f"the previous tick is still running after {now - self._inflight_since:.1f}s")
            return
        self._last_attempt = time.time()
        self._inflight_since = now
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self.collect))
        if self._publish is not None:
            # On completion, not after the await below: a tick that outlived its timeout still
            # wrote the store when it finished, and is published then.
            self._inflight.add_done_callback(self._published)
        try:
            await asyncio.wait_for(asyncio.shield(self._inflight), self.tick_timeout_secs)
        except TimeoutError:
            self._failed(f"tick did not finish within {self.tick_timeout_secs:.0f}s")
        except Exception as e:  # noqa: BLE001 - a failing tick is reported, never fatal
            self._failed(f"{type(e).__name__}: {e}")
        else:
            if self._failures:
                log.info("source %s: recovered after %d failed ticks", self.name, self._failures)
            self._failures = 0
            self._error = None
            self._last_success = time.time()
        finally:
            self._last_duration = time.monotonic() - now

    def _published(self, done: asyncio.Future[object]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        try:
            self._publish(done.result())  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - a listener's failure must not stop the source
            log.exception("source %s: publishing the sample failed", self.name)

    def _failed(self, error: str) -> None:
        self._failures += 1
        self._error = error
        log.warning("source %s: tick failed (%d in a row): %s", self.name, self._failures, error)

    async def run(self) -> None:
        """Tick every interval on a fixed grid; a slow tick skips the slots it overran."""
        next_at = time.monotonic() + self.interval_secs
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await self.tick()
            now = time.monotonic()
            next_at += self.interval_secs
            if next_at <= now:
                skipped = int((now - next_at) // self.interval_secs) + 1
                log.warning("source %s: tick took %.3fs, skipping %d slot(s)", self.name, self._last_duration or 0, skipped)
                next_at += skipped * self.interval_secs

    def health(self) -> SourceHealth:
        if self._failures == 0 and self._last_success is not None:
            status = "ok"
        elif self._last_success is not None and self._failures < ERROR_AFTER:
            status = "degraded"
        else:
            status = "error"
        return SourceHealth(
            name=self.name,
            status=status,
            interval_secs=self.interval_secs,
            last_success=self._last_success,
            last_attempt=self._last_attempt,
            last_duration_secs=self._last_duration,
            consecutive_failures=self._failures,
            error=self._error,
        )
