"""What every source shares: a drift-free schedule, collection in a worker thread, and health.

A source only reads: ``collect`` returns what one tick produced, and the tick hands it to the
sample bus (hvstat.bus), which stores it (in the worker thread) and publishes it (on the event
loop). A source knows neither the store nor who listens."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, Protocol

from hvstat.meta import TICK_BUCKETS, Histogram, SourceStats
from hvstat.models import ContainersSample, NodeMetrics, ProcessesSample, SourceHealth, VmsSample, VmStatusChangedMessage

# What a source produces (the sample bus carries exactly these).
Sample = NodeMetrics | ContainersSample | VmsSample | VmStatusChangedMessage | ProcessesSample


class Bus(Protocol):
    """Where a source's samples go (hvstat.bus.Bus): sources sit below the store and the bus
    and know them only by this."""

    def record(self, samples: Sequence[Sample]) -> None: ...

    def publish(self, samples: Sequence[Sample]) -> None: ...

    def deliver(self, samples: Sequence[Sample]) -> None: ...

log = logging.getLogger(__name__)

# Consecutive failures after which a source reports "error" rather than "degraded".
ERROR_AFTER = 3
# A tick gets at least this long before it counts as stuck (and at least one interval).
MIN_TICK_TIMEOUT_SECS = 5.0


def is_read_failure(reason: str) -> bool:
    """Whether an ``unavailable`` reason says a file could not be read or parsed. The core writes
    those as ``<path>: <error>``, ``<path>:<line>: <message>`` or ``<path> does not exist on this
    system`` (docs/api.md, "unavailable"), and a guest's network namespace as ``cannot read ...``;
    every other reason is a fixed text about the system, not a failure (no PSI, no limit, a cap,
    a counter reset, a first sample). A file that vanished under a guest that went away
    (``...: not present``) is that guest's end, not a reader's failure."""
    if reason.endswith(": not present"):
        return False
    return reason.startswith(("/", "cannot read", "discovery failed"))


# A reader's keys in an ``unavailable`` map: "k" the key itself, "k.*" every key under it, "*" any.
ReaderKeys = Mapping[str, tuple[str, ...]]


def reader_failures(readers: ReaderKeys, unavailable: Iterable[Mapping[str, str]]) -> dict[str, str | None]:
    """Each reader and the first read failure under its keys in any of the ``unavailable`` maps
    (None: it read fine, or had nothing to read)."""
    out: dict[str, str | None] = dict.fromkeys(readers)
    owner: dict[str, str] = {}
    prefixes: list[tuple[str, str]] = []
    anything: list[str] = []
    for reader, keys in readers.items():
        for k in keys:
            if k == "*":
                anything.append(reader)
            elif k.endswith(".*"):
                prefixes.append((k[:-1], reader))
            else:
                owner[k] = reader
    for m in unavailable:
        for key, reason in m.items():
            if not is_read_failure(reason):
                continue
            hit = [owner[key]] if key in owner else [r for p, r in prefixes if key.startswith(p)]
            for reader in (*hit, *anything):
                if out[reader] is None:
                    out[reader] = f"{key}: {reason}"
    return out


class _Worker:
    """The thread a source's ticks run in: one per source, started on the first tick, asleep on a
    queue between ticks. Cheaper per tick than the default executor (asyncio.to_thread: a work
    item, a concurrent Future with its locks, a chained asyncio Future): a tick is one queue put
    here and one ``call_soon_threadsafe`` back, which matters at a 100 µs sample (bench/README.md,
    "Whole service")."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[object], Callable[[], object]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[], object]) -> asyncio.Future[object]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[object] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"source:{self._name}", daemon=True)
            self._thread.start()
        self._jobs.put((loop, fut, fn))
        return fut

    def stop(self) -> None:
        """The thread ends after the job it runs (if any); ``submit`` starts a new one."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, fut, fn = job
            try:
                result, error = fn(), None
            except BaseException as e:  # noqa: BLE001 - handed to the tick, which reports it
                result, error = None, e
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for this tick any more
            del job, fut, fn, result, error


def _settle(fut: asyncio.Future[object], result: object, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


async def _wait(fut: asyncio.Future[object], timeout: float) -> bool:
    """Wait for ``fut`` at most ``timeout`` seconds without cancelling it (what
    ``wait_for(shield(fut))`` does, without its two extra tasks); True if it is done."""
    if not fut.done():
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(timeout, wake)
        fut.add_done_callback(wake)
        try:
            await waiter
        finally:
            timer.cancel()
            fut.remove_done_callback(wake)
    return fut.done()


class Source(ABC):
    name: str
    # The readers of this source and their keys in its samples' ``unavailable`` (hvstat_reader_up).
    READERS: ReaderKeys = {}

    def __init__(self, interval_secs: float) -> None:
        self.interval_secs = interval_secs
        # Where the samples go (``attach``); None: a source used on its own (tests, benchmarks).
        self.bus: Bus | None = None
        self.tick_timeout_secs = max(interval_secs, MIN_TICK_TIMEOUT_SECS)
        self._last_success: float | None = None
        self._last_attempt: float | None = None
        self._last_duration: float | None = None
        self._failures = 0
        self._error: str | None = None
        # The first reading's (``prepare``) or the last tick's collection, while it may still run.
        self._inflight: asyncio.Future[Sequence[Sample]] | asyncio.Future[object] | None = None
        self._inflight_since = 0.0
        # Set by ``reschedule``: the run loop starts its grid over with the new interval.
        self._rescheduled = asyncio.Event()
        # Counters and the duration histogram of hvstat_source_* (hvstat/meta.py).
        self._samples = 0
        self._failures_total = 0
        self._durations = Histogram(TICK_BUCKETS)
        self._readers: dict[str, str | None] = {}
        self._worker = _Worker(type(self).__name__)

    def attach(self, bus: Bus) -> None:
        self.bus = bus

    def reschedule(self, interval_secs: float) -> None:
        """A new interval (SIGHUP): the next tick comes one new interval from now, then every
        interval; a tick in progress finishes."""
        self.interval_secs = interval_secs
        self.tick_timeout_secs = max(interval_secs, MIN_TICK_TIMEOUT_SECS)
        self._rescheduled.set()

    async def reconfigure(self, config_json: str) -> bool:
        """Sample with a sampler built from ``config_json`` (the core's settings of this source)
        from the next tick on; False when this source cannot (a restart applies it). A source that
        can builds and primes the new sampler in a worker thread (raising the core's ConfigError
        for a bad config) and swaps it in: a tick in progress keeps the old one."""
        return False

    async def close(self) -> None:
        """The service is stopping: let go of the sampler (``_sampler``, where the source has one),
        and with it the files its readers keep open, hundreds of descriptors with many processes
        or guests. The source object may outlive the service (a test's app, a restarted lifespan
        in one process): it must not keep them. A subclass that opened more (connections) closes
        that too and calls this. A tick still running in a worker thread holds its own reference
        and finishes first; the source's worker thread ends after it."""
        self._worker.stop()
        vars(self).pop("_sampler", None)

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
    def collect(self) -> Sequence[Sample]:
        """Read one tick's worth: its samples, in the order listeners get them. Runs in a worker
        thread: it may block on files."""

    def _collect_and_record(self) -> Sequence[Sample]:
        samples = self.collect()
        self._note_readers(self.readers(samples))
        if self.bus is not None:
            self.bus.record(samples)
        return samples

    def readers(self, samples: Sequence[Sample]) -> dict[str, str | None]:
        """Each reader's failure in this tick (None: fine), from the samples' ``unavailable``."""
        if not self.READERS:
            return {}
        maps = [m for s in samples for m in _unavailable_maps(s)]
        return reader_failures(self.READERS, maps)

    def _note_readers(self, now: dict[str, str | None]) -> None:
        """Keep the readers' state; log a reader that starts or stops failing (once per change)."""
        for reader, problem in now.items():
            before = self._readers.get(reader)
            if problem is not None and before is None:
                log.warning("source %s: reader %s failing: %s", self.name, reader, problem)
            elif problem is None and before is not None:
                log.info("source %s: reader %s reads again", self.name, reader)
        self._readers = now

    async def tick(self) -> None:
        now = time.monotonic()
        if self._inflight is not None and not self._inflight.done():
            # A collection can block in the kernel (statvfs of a hung NFS mount, a stuck daemon):
            # report it and wait for it instead of stacking up threads behind it.
            self._failed(f"the previous tick is still running after {now - self._inflight_since:.1f}s")
            return
        self._last_attempt = time.time()
        self._inflight_since = now
        self._inflight = inflight = self._worker.submit(self._collect_and_record)
        if self.bus is not None:
            # On completion, not after the await below: a tick that outlived its timeout still
            # wrote the store when it finished, and is published then.
            inflight.add_done_callback(self._published)
        try:
            if not await _wait(inflight, self.tick_timeout_secs):
                self._failed(f"tick did not finish within {self.tick_timeout_secs:.0f}s")
                return
            inflight.result()
        except Exception as e:  # noqa: BLE001 - a failing tick is reported, never fatal
            self._failed(f"{type(e).__name__}: {e}")
        else:
            if self._failures:
                log.info("source %s: recovered after %d failed ticks", self.name, self._failures)
            self._failures = 0
            self._error = None
            self._last_success = time.time()
            self._samples += 1
        finally:
            self._last_duration = time.monotonic() - now
            self._durations.observe(self._last_duration)

    def _published(self, done: asyncio.Future[object]) -> None:
        if done.cancelled() or done.exception() is not None or self.bus is None:
            return
        self.bus.publish(done.result())  # type: ignore[arg-type]  # _collect_and_record's

    def _failed(self, error: str) -> None:
        self._failures += 1
        self._failures_total += 1
        self._error = error
        log.warning("source %s: tick failed (%d in a row): %s", self.name, self._failures, error)

    async def run(self) -> None:
        """Tick every interval on a fixed grid; a slow tick skips the slots it overran."""
        next_at = time.monotonic() + self.interval_secs
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_at - time.monotonic())):
                    await self._rescheduled.wait()
            except TimeoutError:
                pass
            else:
                self._rescheduled.clear()
                next_at = time.monotonic() + self.interval_secs
                continue
            await self.tick()
            now = time.monotonic()
            next_at += self.interval_secs
            if next_at <= now:
                skipped = int((now - next_at) // self.interval_secs) + 1
                log.warning("source %s: tick took %.3fs, skipping %d slot(s)", self.name, self._last_duration or 0, skipped)
                next_at += skipped * self.interval_secs

    def health(self) -> SourceHealth:
        status: Literal["ok", "degraded", "error"]
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

    def stats(self) -> SourceStats:
        """For /metrics and remote write: hvstat_source_samples_total, _failures_total, the
        duration histogram, hvstat_reader_up."""
        return SourceStats(
            name=self.name,
            samples=self._samples,
            failures=self._failures_total,
            duration=self._durations.snapshot(),
            readers=tuple(sorted(self._readers.items())),
        )


def _unavailable_maps(sample: Sample) -> Iterable[Mapping[str, str]]:
    """A sample's ``unavailable`` maps: its own, and each guest's."""
    if isinstance(sample, VmStatusChangedMessage):
        return
    yield sample.unavailable
    if isinstance(sample, ContainersSample):
        for c in sample.containers:
            yield c.unavailable
    elif isinstance(sample, VmsSample):
        for v in sample.vms:
            yield v.unavailable
