"""The sample bus: a tick's samples reach the store (in the worker thread) before any listener (on
the event loop), in order; a failed tick publishes nothing; a failing listener keeps the sample
from nobody else."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from hvstat.bus import Sample, SampleBus
from hvstat.models import NodeMetrics
from hvstat.sources.base import Source
from hvstat.store import Store

pytestmark = pytest.mark.unit


def node(ts: float) -> NodeMetrics:
    return NodeMetrics(timestamp=ts, cpu_usage=1.0, memory_usage=2.0, disk_usage=3.0, load_average_1m=0.0, load_average_5m=0.0, load_average_15m=0.0)


class Ticker(Source):
    """A source whose tick produces the next of ``timestamps`` (or fails)."""

    name = "ticker"

    def __init__(self, fail: bool = False) -> None:
        super().__init__(1.0)
        self.fail = fail
        self.n = 0
        self.threads: list[str] = []

    def collect(self) -> list[NodeMetrics]:
        self.threads.append(threading.current_thread().name)
        if self.fail:
            raise OSError("no such file")
        self.n += 1
        return [node(float(self.n))]


class Recorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: list[tuple[float, float | None, str]] = []

    def on_sample(self, sample: Sample) -> None:
        assert isinstance(sample, NodeMetrics)
        stored = self.store.node
        self.seen.append((sample.timestamp, stored.timestamp if stored else None, threading.current_thread().name))


def test_samples_are_stored_in_the_worker_then_published_on_the_loop_in_order() -> None:
    store = Store()
    bus = SampleBus(store)
    recorder = Recorder(store)
    bus.subscribe("recorder", recorder)
    source = Ticker()
    source.attach(bus)

    async def run() -> None:
        await source.tick()
        await source.tick()
        await asyncio.sleep(0)

    asyncio.run(run())
    main = threading.current_thread().name
    assert [(ts, stored) for ts, stored, _ in recorder.seen] == [(1.0, 1.0), (2.0, 2.0)]
    assert {thread for _, _, thread in recorder.seen} == {main}
    assert main not in source.threads  # collected in a worker thread


def test_a_failed_tick_publishes_nothing_and_a_failing_listener_fails_nothing(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    bus = SampleBus(store)

    class Broken:
        def on_sample(self, sample: Sample) -> None:
            raise RuntimeError("listener bug")

    recorder = Recorder(store)
    bus.subscribe("broken", Broken())
    bus.subscribe("recorder", recorder)
    failing, working = Ticker(fail=True), Ticker()
    failing.attach(bus)
    working.attach(bus)

    async def run() -> None:
        await failing.tick()
        await working.tick()
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())
    assert failing.health().status != "ok" and working.health().status == "ok"
    assert [ts for ts, _, _ in recorder.seen] == [1.0], "the broken listener did not keep the sample from the recorder"
    assert bus.failures == {"broken": 1, "recorder": 0}
    assert "listener broken failed on a NodeMetrics" in caplog.text


def test_deliver_stores_and_publishes_what_arrives_between_ticks() -> None:
    store = Store()
    bus = SampleBus(store)
    recorder = Recorder(store)
    bus.subscribe("recorder", recorder)
    bus.deliver([node(7.0)])
    assert store.node is not None and store.node.timestamp == 7.0
    assert [ts for ts, _, _ in recorder.seen] == [7.0]


def test_the_store_refuses_what_it_does_not_keep() -> None:
    with pytest.raises(TypeError, match="keeps no int"):
        Store().put(3)  # type: ignore[arg-type]


class Stuck(Ticker):
    """A tick that blocks (a hung mount) until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def collect(self) -> list[NodeMetrics]:
        self.release.wait(10)
        return super().collect()


def test_a_tick_past_its_timeout_is_reported_waited_for_and_published_when_it_ends() -> None:
    """The source's own worker thread (sources/base._Worker): a tick that outlives its timeout is a
    failure, the next tick does not start a second collection behind it, and the late sample is
    still stored and published; the thread ends when the source closes."""
    store = Store()
    bus = SampleBus(store)
    recorder = Recorder(store)
    bus.subscribe("recorder", recorder)
    source = Stuck()
    source.attach(bus)
    source.tick_timeout_secs = 0.2

    async def run() -> None:
        await source.tick()
        assert "did not finish within" in (source.health().error or "")
        await source.tick()
        assert "previous tick is still running" in (source.health().error or "")
        assert source.health().consecutive_failures == 2
        source.release.set()
        for _ in range(100):
            if recorder.seen:
                break
            await asyncio.sleep(0.02)
        assert [ts for ts, _, _ in recorder.seen] == [1.0]
        await source.tick()
        assert source.health().status == "ok" and source.n == 2
        worker = [t for t in threading.enumerate() if t.name == "source:Stuck"]
        assert len(worker) == 1
        await source.close()
        worker[0].join(5)
        assert not worker[0].is_alive()

    asyncio.run(run())


@pytest.mark.parametrize(("vanished", "trims"), [(49, 0), (50, 1)])
def test_the_c_heap_is_trimmed_after_many_guests_vanished(monkeypatch: pytest.MonkeyPatch, vanished: int, trims: int) -> None:
    """sources/containers: after a tick where TRIM_AFTER_VANISHED guests or more left, the memory
    the core freed goes back to the kernel (malloc_trim); a few leaving costs nothing."""
    import msgspec

    from hvstat.models import ContainersSample
    from hvstat.settings import ContainerSettings, NodeSettings
    from hvstat.sources import containers

    calls: list[int] = []
    monkeypatch.setattr(containers, "_malloc_trim", lambda pad: calls.append(pad) or 1)
    source = containers.ContainerSource(ContainerSettings(), NodeSettings(), 10.0)

    class Sampler:
        def sample(self) -> bytes:
            return msgspec.json.encode(ContainersSample(timestamp=1.0, vanished=[f"{i:064x}" for i in range(vanished)]))

    # A stand-in for the core's sample: 50 real guests leaving in one tick is bench/service.py's churn.
    source._sampler = Sampler()  # type: ignore[assignment]
    [sample] = source.collect()
    assert len(sample.vanished) == vanished and len(calls) == trims
