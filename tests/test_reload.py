"""The parts of a SIGHUP reload that can be checked in-process (hvstat/reload.py): which keys apply and
which need a restart, the settings in effect afterwards, the store's rings resized for a new
interval, the alert engine's rules swapped with their alerts kept or resolved, remote write's
batches moved to a new buffer. tests/test_signals.py does the same through a real ``hvstat serve``."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from hvstat.alerts.engine import AlertEngine
from hvstat.alerts.rules import compile_rules
from hvstat.models import AlertResolvedMessage, AlertTriggeredMessage, NodeMetrics, WsMessage
from hvstat.reload import changed_keys, merge, move_batches, reloadable
from hvstat.remote_write import Buffer
from hvstat.settings import AlertRuleSettings, Settings, read_settings
from hvstat.store import HistoryConfig, Store

pytestmark = pytest.mark.unit


def settings(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "hvstat.toml"
    path.write_text(toml)
    return read_settings(path, environ={})


def test_keys_that_apply_and_keys_that_need_a_restart() -> None:
    applied = [
        "logging.level", "monitoring.node_metrics_interval", "monitoring.vm_metrics_interval", "processes.interval",
        "node.disk_exclude", "containers.max_containers", "processes.top", "alerts.rules", "alerts.webhook",
        "remote_write.url", "remote_write.buffer_dir", "outputs.file", "labels.rack",
    ]  # fmt: skip
    restart = [
        "server.port", "server.node_name", "server.tokens", "monitoring.history_bucket", "monitoring.ws_queue_size",
        "node.proc_root", "node.rootfs", "containers.enabled", "processes.enabled", "vms.libvirt_uri",
        "logging.format", "alerts.enabled", "storage.path",
    ]  # fmt: skip
    assert [k for k in applied if not reloadable(k)] == []
    assert [k for k in restart if reloadable(k)] == []


def test_the_settings_in_effect_keep_the_restart_keys_running_values(tmp_path: Path) -> None:
    old = settings(tmp_path, '[server]\nport = 9200\n[monitoring]\nnode_metrics_interval = 5\n[labels]\nrack = "a"\nsite = "x"\n')
    new = settings(tmp_path, '[server]\nport = 9300\n[monitoring]\nnode_metrics_interval = 1\n[labels]\nrack = "b"\n')
    changed = changed_keys(old, new)
    assert changed == ["labels.rack", "labels.site", "monitoring.node_metrics_interval", "server.port"]
    effective = merge(old, new, [k for k in changed if reloadable(k)])
    assert effective.server.port == 9200  # a restart applies it
    assert effective.monitoring.node_metrics_interval == 1.0
    assert effective.labels == {"rack": "b"}  # a label removed is gone
    # Loading the same file again changes nothing but what is still waiting for the restart.
    assert changed_keys(effective, new) == ["server.port"]


def test_a_shorter_interval_resizes_the_full_resolution_rings_keeping_the_newest() -> None:
    store = Store(HistoryConfig(full_resolution=20, retention=600, bucket=60), node_interval=5.0)
    sample = NodeMetrics(timestamp=0.0, cpu_usage=None, memory_usage=None, disk_usage=None, load_average_1m=None, load_average_5m=None, load_average_15m=None)
    for i in range(1, 12):  # 5 slots (20 s / 5 s + 1): a full ring that has wrapped
        store.put(msgspec.structs.replace(sample, timestamp=5.0 * i, cpu_usage=float(i)))
    store.set_interval(store.node_kind, 1.0)  # 21 slots now
    for i in range(1, 4):
        store.put(msgspec.structs.replace(sample, timestamp=55.0 + i, cpu_usage=100.0 + i))
    series = store.series("node")
    assert series is not None and series.full_cap == 21
    cpu = store.node_kind.field_index["cpu_usage"]
    ts, [values] = series.full_copy([cpu])
    assert list(ts) == [35.0, 40.0, 45.0, 50.0, 55.0, 56.0, 57.0, 58.0]
    assert list(values) == [7.0, 8.0, 9.0, 10.0, 11.0, 101.0, 102.0, 103.0]
    store.set_interval(store.node_kind, 10.0)  # 3 slots: the newest 3 stay, and the ring goes on
    store.put(msgspec.structs.replace(sample, timestamp=70.0, cpu_usage=104.0))
    ts, [values] = series.full_copy([cpu])
    assert list(ts) == [57.0, 58.0, 70.0] and list(values) == [102.0, 103.0, 104.0]


def rule(threshold: float, name: str = "busy") -> AlertRuleSettings:
    return AlertRuleSettings(name=name, metric="node.cpu_usage", op=">", threshold=threshold, severity="high")


def test_rules_swapped_keep_the_alerts_of_a_kept_rule_and_resolve_a_removed_ones() -> None:
    sent: list[WsMessage] = []
    clock = [1000.0]
    engine = AlertEngine(compile_rules([rule(50)]), node_id="n", publish=sent.append, clock=lambda: clock[0])
    base = NodeMetrics(timestamp=0.0, cpu_usage=80.0, memory_usage=None, disk_usage=None, load_average_1m=None, load_average_5m=None, load_average_15m=None)
    engine.on_sample(base)
    assert [type(m) for m in sent] == [AlertTriggeredMessage]
    # A new threshold that still holds: the same alert goes on, nothing is sent.
    engine.set_rules(compile_rules([rule(70), rule(10, "other")]))
    clock[0] += 1
    engine.on_sample(base)
    assert [(a.rule, a.state, a.threshold) for a in engine.active()] == [("busy", "firing", 70.0), ("other", "firing", 10.0)]
    assert len(sent) == 2  # only "other" fired
    # One that no longer holds: resolved as cleared by the next sample.
    engine.set_rules(compile_rules([rule(90), rule(10, "other")]))
    engine.on_sample(base)
    assert isinstance(sent[-1], AlertResolvedMessage) and sent[-1].rule == "busy" and sent[-1].reason == "cleared"
    # A rule that is gone: its alert resolves at once, reason rule_removed.
    engine.set_rules(compile_rules([]))
    last = sent[-1]
    assert isinstance(last, AlertResolvedMessage) and last.rule == "other" and last.reason == "rule_removed"
    assert engine.active() == [] and [a.reason for a in engine.history()] == ["rule_removed", "cleared"]


def test_batches_move_to_a_new_buffer_after_the_ones_there(tmp_path: Path) -> None:
    old, new = Buffer(tmp_path / "a", 1 << 20), Buffer(tmp_path / "b", 1 << 20)
    for i in range(3):
        old.append(f"old-{i}".encode(), 1)
    new.append(b"there-before", 1)
    assert move_batches(tmp_path / "a", tmp_path / "b") == 3
    assert not list((tmp_path / "a").glob("*.batch"))
    moved = Buffer(tmp_path / "b", 1 << 20)
    payloads = []
    while (b := moved.claim_oldest()) is not None:
        payloads.append(moved.read(b))
        moved.remove(b)
    assert payloads == [b"there-before", b"old-0", b"old-1", b"old-2"]
    assert move_batches(tmp_path / "missing", tmp_path / "b") == 0


@pytest.mark.unit
def test_reload_keeps_and_switches_the_built_in_clock_rules() -> None:
    """[alerts] clock_rules applies on SIGHUP; a reload that changes the other rules keeps the
    built-in ones (the reloader's own alerts step, on an engine of its state)."""
    import asyncio
    import types

    from hvstat.alerts.engine import AlertEngine
    from hvstat.alerts.rules import compile_rules, every_rule
    from hvstat.reload import Reloader, reloadable
    from hvstat.settings import Settings

    assert reloadable("alerts.clock_rules")
    cpu = {"name": "cpu", "metric": "node.cpu_usage", "op": ">", "threshold": 90, "severity": "high"}
    on = msgspec.convert({"alerts": {"clock_rules": True, "rules": [cpu]}}, Settings)
    engine = AlertEngine(compile_rules(every_rule(on.alerts)), node_id="hv1")
    reloader = Reloader(lambda: on, types.SimpleNamespace(alerts=engine), None, [])  # type: ignore[arg-type]
    built_in = {"clock-stepped", "clock-unsynchronised"}

    def apply(old: Settings, new: Settings) -> set[str]:
        asyncio.run(reloader._alerts(old, new))
        return {r.name for r in engine.rules}

    fewer = msgspec.convert({"alerts": {"clock_rules": True, "rules": []}}, Settings)
    assert apply(on, fewer) == built_in
    off = msgspec.convert({"alerts": {"clock_rules": False, "rules": []}}, Settings)
    assert apply(fewer, off) == set()
    assert apply(off, on) == built_in | {"cpu"}
