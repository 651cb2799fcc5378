"""What every source shares: a drift-free schedule, collection in a worker thread, and health."""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod

from hvstat.models import SourceHealth

log = logging.getLogger(__name__)

# Consecutive failures after which a source reports "error" rather than "degraded".
ERROR_AFTER = 3


class Source(ABC):
    name: str

    def __init__(self, interval_secs: float) -> None:
        self.interval_secs = interval_secs
        self._last_success: float | None = None
        self._last_attempt: float | None = None
        self._last_duration: float | None = None
        self._failures = 0
        self._error: str | None = None

    async def start(self) -> None:
        """Prepare and take the first sample, so the API never serves an empty store."""
        await self.tick()

    @abstractmethod
    def collect(self) -> None:
        """Read and store one sample. Runs in a worker thread: it may block on files."""

    async def tick(self) -> None:
        started = time.monotonic()
        self._last_attempt = time.time()
        try:
            await asyncio.to_thread(self.collect)
        except Exception as e:  # noqa: BLE001 - a failing tick is reported, never fatal
            self._failures += 1
            self._error = f"{type(e).__name__}: {e}"
            log.warning("source %s: tick failed (%d in a row): %s", self.name, self._failures, self._error)
        else:
            if self._failures:
                log.info("source %s: recovered after %d failed ticks", self.name, self._failures)
            self._failures = 0
            self._error = None
            self._last_success = time.time()
        finally:
            self._last_duration = time.monotonic() - started

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
        if self._last_attempt is None:
            status = "starting"
        elif self._failures == 0:
            status = "ok"
        elif self._failures < ERROR_AFTER and self._last_success is not None:
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
