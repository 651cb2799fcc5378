"""The clock watch (hvstat/clock.py): wall-clock steps and drift against the monotonic clock, and the
kernel's NTP state. The machine's clock is never changed: the service is handed a clock (its
boundary, ``create_app(..., clock=...)``) whose monotonic time is the machine's and whose wall time
is the machine's plus an offset the test moves; the kernel's NTP state is read for real once."""

from __future__ import annotations

import ctypes
import logging
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.testclient import TestClient

from helpers import WAIT_SECS
from hvstat import exposition as P
from hvstat._core import NodeSampler
from hvstat.alerts.engine import AlertEngine
from hvstat.alerts.rules import RulesError, clock_rules, compile_rules, every_rule
from hvstat.app import create_app
from hvstat.clock import DRIFT_MIN_SECS, STA_UNSYNC, STEP_DEGRADED_SECS, TIME_ERROR, ClockWatch, SyncState, SystemClock, _Timex
from hvstat.models import NodeMetrics, node_metrics_decoder
from hvstat.settings import (
    AlertRuleSelect,
    AlertRuleSettings,
    AlertSettings,
    ContainerSettings,
    MonitoringSettings,
    ProcessSettings,
    RemoteWriteSettings,
    Settings,
    StorageSettings,
    VmSettings,
)
from test_remote_write import Receiver

# A real node sample: what the alert engine is handed with each tick (its clock rules do not read it).
NODE: NodeMetrics = node_metrics_decoder.decode(NodeSampler().sample())


class SteppedClock:
    """The machine's clocks, with ``offset`` seconds added to the wall clock (the test's step)."""

    def __init__(self, synced: SyncState | None = None) -> None:
        self.offset = 0.0
        self.synced = synced or SyncState(True, 0.01, 0.001)

    def read(self) -> tuple[float, float]:
        return time.time() + self.offset, time.monotonic()

    def sync(self) -> SyncState:
        return self.synced


class ScriptedClock:
    """Clocks that show exactly what the test sets: for the arithmetic of steps and drift."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def advance(self, mono: float, wall: float | None = None) -> None:
        self.mono += mono
        self.wall += mono if wall is None else wall

    def read(self) -> tuple[float, float]:
        return self.wall, self.mono

    def sync(self) -> SyncState:
        return SyncState(False, 16.0, 16.0)


def series(text: str) -> dict[str, float]:
    return {s.name: s.value for f in parse_text(text) for s in f.samples if s.name.startswith("hvstat_clock")}


@pytest.mark.unit
def test_steps_forward_and_back(caplog: pytest.LogCaptureFixture) -> None:
    c = ScriptedClock()
    w = ClockWatch(c)
    w.check()
    for _ in range(3):
        c.advance(5.0)  # wall and monotonic agree: nothing
        w.check()
    assert w.steps == 0 and w.health().status == "ok"
    with caplog.at_level(logging.WARNING, logger="hvstat.clock"):
        c.advance(5.0, 5.0 + 3.25)  # the wall clock jumped 3.25 s ahead within one tick
        w.check()
    assert w.steps == 1 and w.last_step is not None and w.last_step.seconds == pytest.approx(3.25)
    assert "stepped forward by 3.250 s" in caplog.text
    h = w.health()
    assert h.status == "degraded" and "stepped forward by 3.250 s" in (h.error or "")
    assert h.last_step_at == pytest.approx(c.wall) and h.last_step_seconds == pytest.approx(3.25)
    c.advance(5.0, 5.0 - 60.0)  # and back a minute
    w.check()
    assert w.steps == 2 and w.last_step is not None and w.last_step.seconds == pytest.approx(-60.0)
    assert "stepped back by 60.000 s" in (w.health().error or "")
    # A step is news for STEP_DEGRADED_SECS, then /health is ok again; the count stays.
    c.advance(STEP_DEGRADED_SECS + 1)
    w.check()
    assert w.health().status == "ok" and w.health().steps == 2
    # Below the step size nothing is a step.
    c.advance(5.0, 5.0 + 0.05)
    w.check()
    assert w.steps == 2


@pytest.mark.unit
def test_drift_is_small_steps_adding_up(caplog: pytest.LogCaptureFixture) -> None:
    c = ScriptedClock()
    w = ClockWatch(c)
    w.check()
    assert w.drift_ppm() is None and "drift_ppm" in w.health().unavailable
    # 300 ppm: every 5 s tick the wall clock gains 1.5 ms (a guest agent nudging it).
    with caplog.at_level(logging.WARNING, logger="hvstat.clock"):
        for _ in range(int(DRIFT_MIN_SECS / 5) + 1):
            c.advance(5.0, 5.0015)
            w.check()
    drift = w.drift_ppm()
    assert drift == pytest.approx(300.0, rel=1e-3) and w.steps == 0
    h = w.health()
    assert h.status == "degraded" and "drifts" in (h.error or "") and h.drift_ppm == pytest.approx(300.0, rel=1e-3)
    assert "drifts from the monotonic clock by 300 ppm" in caplog.text
    # The clock holds still again: after a window (10 minutes) without nudges the drift is 0.
    for _ in range(130):
        c.advance(5.0)
        w.check()
    assert w.drift_ppm() == pytest.approx(0.0, abs=0.1) and w.health().status == "ok"
    # A step is not drift.
    c.advance(5.0, 65.0)
    w.check()
    for _ in range(13):
        c.advance(5.0)
        w.check()
    assert w.steps == 1 and w.drift_ppm() == pytest.approx(0.0, abs=0.1)


@pytest.mark.unit
def test_unsynchronised_is_reported_not_degraded() -> None:
    c = ScriptedClock()
    w = ClockWatch(c)
    w.check()
    h = w.health()
    assert h.synchronized is False and h.max_error_secs == 16.0 and h.status == "ok"
    text = P.render(None, [], [], "1", clock=w).decode()
    got = series(text)
    assert got["hvstat_clock_synchronized"] == 0 and got["hvstat_clock_steps_total"] == 0
    assert "hvstat_clock_step_seconds" not in got and "hvstat_clock_drift_ppm" not in got  # unknown: left out


@pytest.mark.unit
def test_the_kernels_ntp_state_is_read() -> None:
    """adjtimex(2) with modes 0, as the watch reads it, against the same call made here: the sync
    flag follows the return value and STA_UNSYNC, the errors are microseconds."""
    sync = SystemClock().sync()
    tx = _Timex()
    state = ctypes.CDLL("libc.so.6").adjtimex(ctypes.byref(tx))
    assert sync.synchronized is (state != TIME_ERROR and not tx.status & STA_UNSYNC)
    assert sync.max_error_secs is not None and abs(sync.max_error_secs - tx.maxerror / 1e6) < 1.0
    reading = SystemClock().read()
    assert reading is None or abs(reading[0] - time.time()) < 1


# --- at the service's boundary ---------------------------------------------------------------------


def _settings() -> Settings:
    return Settings(
        monitoring=MonitoringSettings(node_metrics_interval=0.2),
        containers=ContainerSettings(enabled=False),
        vms=VmSettings(enabled=False),
        processes=ProcessSettings(enabled=False),
        storage=StorageSettings(path=""),
    )


@pytest.mark.unit
def test_a_step_of_the_services_clock_degrades_health_and_shows_in_metrics(caplog: pytest.LogCaptureFixture) -> None:
    clock = SteppedClock()
    with TestClient(create_app(_settings(), clock=clock)) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["clock"]["status"] == "ok" and health["clock"]["synchronized"] is True
        assert series(client.get("/metrics").text)["hvstat_clock_steps_total"] == 0
        with caplog.at_level(logging.WARNING, logger="hvstat.clock"):
            clock.offset = -30.0  # someone set the clock half a minute back
            deadline = time.monotonic() + WAIT_SECS
            while (clock_health := client.get("/health").json()["clock"])["steps"] == 0:
                assert time.monotonic() < deadline, "no node tick saw the step"
                time.sleep(0.05)
        assert clock_health["status"] == "degraded" and "stepped back by 30.0" in clock_health["error"], clock_health
        health = client.get("/health").json()
        assert health["status"] == "degraded" and all(s["status"] == "ok" for s in health["sources"])
        got = series(client.get("/metrics").text)
        assert got["hvstat_clock_steps_total"] == 1 and got["hvstat_clock_step_seconds"] == pytest.approx(-30.0, abs=0.05)
        assert got["hvstat_clock_synchronized"] == 1
        assert "stepped back by 30.0" in caplog.text
        # Node samples keep coming with their own (real) timestamps: collection is not disturbed.
        t0 = client.get("/api/monitoring/node/metrics").json()["timestamp"]
        time.sleep(0.5)
        assert client.get("/api/monitoring/node/metrics").json()["timestamp"] > t0


@pytest.mark.unit
def test_the_remote_write_receivers_date_is_a_second_opinion(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A real HTTP receiver on loopback answers with its Date (the machine's clock); the service's
    clock is 30 s behind it from the start (no step to see): the offset shows, /health is degraded."""
    clock = SteppedClock()
    clock.offset = -30.0
    with Receiver() as rx:
        settings = msgspec.structs.replace(
            _settings(), remote_write=RemoteWriteSettings(enabled=True, url=rx.url, buffer_dir=str(tmp_path), interval=0.2)
        )
        with caplog.at_level(logging.WARNING, logger="hvstat.clock"), TestClient(create_app(settings, clock=clock)) as client:
            deadline = time.monotonic() + WAIT_SECS
            while (c := client.get("/health").json()["clock"])["receiver_offset_secs"] is None:
                assert time.monotonic() < deadline, "no answer of the receiver was seen"
                time.sleep(0.05)
            assert c["receiver_offset_secs"] == pytest.approx(30.0, abs=1.0) and c["steps"] == 0, c
            assert c["status"] == "degraded" and "receiver's clock (its Date header) is +" in c["error"], c
            got = series(client.get("/metrics").text)
            assert got["hvstat_clock_receiver_offset_seconds"] == pytest.approx(30.0, abs=1.0)
            # The two clocks agree again: the next answers clear it.
            clock.offset = 0.0
            deadline = time.monotonic() + WAIT_SECS
            # The next answer clears the offset; the next node tick sees the correction as a step.
            while (c := client.get("/health").json()["clock"])["receiver_offset_secs"] > 5 or c["steps"] == 0:
                assert time.monotonic() < deadline, c
                time.sleep(0.05)
            assert abs(c["receiver_offset_secs"]) <= 1.5 and c["steps"] == 1
        assert "receiver's clock (its Date header) is +" in caplog.text


# --- alerts on the clock ---------------------------------------------------------------------------


@pytest.mark.unit
def test_clock_rules_compile_and_refuse_what_they_cannot_read() -> None:
    rules = compile_rules(every_rule(AlertSettings(clock_rules=True)))
    assert [(r.name, r.expr.kind, r.for_secs) for r in rules] == [("clock-stepped", "clock", 0.0), ("clock-unsynchronised", "clock", 600.0)]
    assert every_rule(AlertSettings()) == []
    for metric, problem in (("clock.status", "number"), ("clock.nope", "no field 'nope'")):
        with pytest.raises(RulesError) as e:
            compile_rules([AlertRuleSettings(name="x", metric=metric, op="==", threshold=1, severity="low")])
        assert problem in str(e.value), str(e.value)
    with pytest.raises(RulesError) as e:
        compile_rules([AlertRuleSettings(name="x", metric="clock.steps", op=">", threshold=0, severity="low", select=AlertRuleSelect(name="a"))])
    assert "there is one clock" in str(e.value)


@pytest.mark.unit
def test_built_in_rules_fire_on_a_step_and_on_a_lasting_unsynchronised_clock() -> None:
    c = ScriptedClock()  # adjtimex says: not synchronised
    watch = ClockWatch(c)
    now = [1_800_000_000.0]
    published: list[Any] = []
    engine = AlertEngine(
        compile_rules(clock_rules()), node_id="hv1", publish=published.append, clock=lambda: now[0], clock_health=watch.health
    )

    def tick(wall_extra: float = 0.0) -> None:
        c.advance(5.0, 5.0 + wall_extra)
        now[0] += 5.0
        watch.check()
        engine.on_node(NODE)

    tick()
    assert not published
    tick(wall_extra=42.0)  # a step: clock-stepped fires at once
    (fired,) = published
    assert fired.rule == "clock-stepped" and fired.entity == "clock" and "wall clock of hv1 was set" in fired.message
    for _ in range(int(600 / 5)):  # 10 minutes of an unsynchronised clock, and the step grows old
        tick()
    names = [(type(m).__name__, m.rule) for m in published]
    assert ("AlertTriggeredMessage", "clock-unsynchronised") in names
    assert ("AlertResolvedMessage", "clock-stepped") in names


@pytest.mark.unit
def test_the_service_alerts_on_a_step_of_its_clock() -> None:
    clock = SteppedClock()
    settings = msgspec.structs.replace(_settings(), alerts=AlertSettings(clock_rules=True))
    with TestClient(create_app(settings, clock=clock)) as client:
        rules = {r["name"]: r for r in client.get("/api/alerts/rules").json()["rules"]}
        assert rules["clock-stepped"]["kind"] == "clock" and rules["clock-unsynchronised"]["kind"] == "clock"
        clock.offset = 120.0
        deadline = time.monotonic() + WAIT_SECS
        while not (active := client.get("/api/alerts").json()["active"]):
            assert time.monotonic() < deadline, "clock-stepped did not fire"
            time.sleep(0.05)
        assert [(a["rule"], a["state"], a["entity"]) for a in active] == [("clock-stepped", "firing", "clock")], active
