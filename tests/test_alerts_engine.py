"""The alert engine's state machine, driven sample by sample with an injected clock: pending to
firing only after ``for``, one AlertTriggered per alert (no duplicates), resolve, re-fire with a new
id, hysteresis and ``resolve_for`` against flapping, a vanished entity resolves, nulls hold the state
until they are NO_DATA_EVALUATIONS in a row; plus the hub's ``alerts`` topic, the history bound and
the REST and /metrics views of the engine."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

import procsamples
from hvstat import exposition as P
from hvstat.alerts.engine import NO_DATA_EVALUATIONS, AlertEngine
from hvstat.alerts.rules import Rule, compile_rules
from hvstat.app import create_app
from hvstat.config import AlertRuleSettings, MonitoringSettings, Settings
from hvstat.hub import Hub
from hvstat.models import (
    AlertResolvedMessage,
    AlertTriggeredMessage,
    ContainersSample,
    NotifierStatus,
    VmsSample,
    WsMessage,
)
from hvstat.store import Store
from test_alerts_rules import container, fs, node, vm

pytestmark = pytest.mark.unit

Message = AlertTriggeredMessage | AlertResolvedMessage


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, secs: float) -> None:
        self.t += secs


class Recorder:
    """A notifier that keeps what it is handed (the engine's side of the interface only)."""

    name = "webhook"

    def __init__(self) -> None:
        self.got: list[Message] = []

    def submit(self, message: Message) -> bool:
        self.got.append(message)
        return True

    def status(self) -> NotifierStatus:
        return NotifierStatus(name="webhook", sent=len(self.got), failed=0, dropped=0, retries=0, queued=0, queue_size=10)


def rules(*specs: dict[str, Any]) -> list[Rule]:
    base = {"op": ">", "threshold": 90, "severity": "high"}
    return compile_rules([msgspec.convert({"name": f"r{i}", **base, **s}, AlertRuleSettings) for i, s in enumerate(specs)])


def engine(*specs: dict[str, Any], history_size: int = 500) -> tuple[AlertEngine, Clock, list[WsMessage], Recorder]:
    clock, published, rec = Clock(), [], Recorder()
    e = AlertEngine(rules(*specs), node_id="hv1", publish=published.append, notifiers=[rec], clock=clock, history_size=history_size)
    return e, clock, published, rec


def kinds(messages: list[Any]) -> list[str]:
    return [m.__struct_config__.tag for m in messages]


def feed_node(e: AlertEngine, clock: Clock, values: list[float | None], step: float = 5.0) -> None:
    for v in values:
        e.on_node(node(cpu=v))
        clock.advance(step)


# --- pending, firing, resolved ----------------------------------------------------------------------------


def test_for_zero_fires_on_the_first_sample_and_only_once() -> None:
    e, clock, published, rec = engine({"metric": "node.cpu_usage"})
    feed_node(e, clock, [50, 95])
    assert kinds(published) == ["AlertTriggered"]
    m = published[0]
    assert isinstance(m, AlertTriggeredMessage)
    assert (m.rule, m.entity, m.entity_name, m.item, m.value, m.threshold, m.severity, m.op, m.node_id) == ("r0", "node", "hv1", None, 95.0, 90.0, "high", ">", "hv1")
    assert m.since == m.timestamp == clock.t - 5
    assert m.message == "r0: node.cpu_usage = 95 (> 90) on hv1"
    feed_node(e, clock, [96, 99, 100, 91] * 10)
    assert kinds(published) == ["AlertTriggered"], "no duplicates while firing"
    assert rec.got == published
    (a,) = e.active()
    assert (a.state, a.value, a.alert_id) == ("firing", 91.0, m.alert_id)


def test_pending_until_for_has_passed() -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage", "for": "60s"})
    t0 = clock.t
    feed_node(e, clock, [95] * 12, step=5.0)  # t0 .. t0+55: held for 55 s
    assert published == []
    (a,) = e.active()
    assert (a.state, a.since, a.fired_at, a.message) == ("pending", t0, None, None)
    assert e.counts("r0") == (1, 0)
    feed_node(e, clock, [95])  # t0+60
    (m,) = published
    assert isinstance(m, AlertTriggeredMessage) and m.since == t0 and m.timestamp == t0 + 60
    assert e.counts("r0") == (0, 1)


def test_pending_that_clears_is_dropped_silently_and_the_clock_restarts() -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage", "for": "30s"})
    feed_node(e, clock, [95, 95, 95, 50], step=10.0)  # held 20 s, then cleared
    assert published == [] and e.active() == []
    t1 = clock.t
    feed_node(e, clock, [95, 95, 95], step=10.0)  # 20 s since the new start: still pending
    assert published == [] and e.active()[0].since == t1
    feed_node(e, clock, [95], step=10.0)
    assert kinds(published) == ["AlertTriggered"] and published[0].since == t1  # type: ignore[attr-defined]


def test_resolve_then_refire_with_a_new_id() -> None:
    e, clock, published, rec = engine({"metric": "node.cpu_usage"})
    feed_node(e, clock, [95, 97])
    fired_at = published[0].timestamp  # type: ignore[attr-defined]
    feed_node(e, clock, [80])
    assert kinds(published) == ["AlertTriggered", "AlertResolved"]
    trig, res = published
    assert isinstance(res, AlertResolvedMessage) and isinstance(trig, AlertTriggeredMessage)
    assert res.alert_id == trig.alert_id and res.fired_at == fired_at and res.since == trig.since
    assert (res.reason, res.value, res.threshold, res.timestamp) == ("cleared", 80.0, 90.0, clock.t - 5)
    assert res.message == f"resolved (cleared): {trig.message}"
    assert e.active() == []
    (h,) = e.history()
    assert (h.state, h.reason, h.alert_id, h.resolved_at, h.value) == ("resolved", "cleared", trig.alert_id, res.timestamp, 80.0)
    feed_node(e, clock, [80, 85, 99])
    assert kinds(published) == ["AlertTriggered", "AlertResolved", "AlertTriggered"]
    assert published[2].alert_id != trig.alert_id  # type: ignore[attr-defined]
    assert rec.got == published


def test_hysteresis_no_flapping_around_the_threshold() -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage", "resolve_threshold": 80})
    feed_node(e, clock, [91, 89, 91, 85, 95, 81, 90.5])
    assert kinds(published) == ["AlertTriggered"]
    feed_node(e, clock, [80])  # no longer > 80: resolved
    assert kinds(published) == ["AlertTriggered", "AlertResolved"]


def test_without_hysteresis_each_crossing_is_an_alert() -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage"})
    feed_node(e, clock, [91, 89, 91, 89])
    assert kinds(published) == ["AlertTriggered", "AlertResolved"] * 2


def test_resolve_for_needs_the_condition_cleared_that_long() -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage", "resolve_for": "30s"})
    feed_node(e, clock, [95, 50, 50, 50, 95, 50, 50, 50], step=10.0)  # cleared 20 s, back, cleared 20 s
    assert kinds(published) == ["AlertTriggered"]
    feed_node(e, clock, [50], step=10.0)  # cleared 30 s
    assert kinds(published) == ["AlertTriggered", "AlertResolved"]
    assert published[1].value == 50.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("op", "threshold", "values", "fires"),
    [
        (">=", 90, [90], True),
        (">", 90, [90], False),
        ("<", 10, [9.99], True),
        ("<=", 10, [10], True),
        ("==", 0, [0], True),
        ("!=", 0, [0], False),
        ("!=", 0, [0.5], True),
    ],
)
def test_every_comparison(op: str, threshold: float, values: list[float], fires: bool) -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage", "op": op, "threshold": threshold})
    feed_node(e, clock, values)
    assert kinds(published) == (["AlertTriggered"] if fires else [])


# --- nulls and vanished entities ------------------------------------------------------------------------------


def test_nulls_hold_the_state_then_resolve_as_no_data() -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage"})
    feed_node(e, clock, [95] + [None] * (NO_DATA_EVALUATIONS - 1) + [96])
    assert kinds(published) == ["AlertTriggered"], "a null is not 0: it did not resolve"
    feed_node(e, clock, [None] * NO_DATA_EVALUATIONS)
    assert kinds(published) == ["AlertTriggered", "AlertResolved"]
    assert (published[1].reason, published[1].value) == ("no_data", None)  # type: ignore[attr-defined]


def test_a_null_never_fires() -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage", "op": "<", "threshold": 5})
    feed_node(e, clock, [None] * 10)
    assert published == [] and e.active() == []


def test_vanished_container_resolves_its_alert_and_drops_its_pending_one() -> None:
    e, clock, published, _ = engine({"metric": "container.cpu_usage", "threshold": 50}, {"metric": "container.cpu_usage", "threshold": 50, "for": "1h"})

    def tick(*cs: Any) -> None:
        e.on_containers(ContainersSample(timestamp=clock.t, containers=list(cs)))
        clock.advance(10)

    tick(container("a", "web", cpu_usage_percent=80.0), container("b", "db", cpu_usage_percent=10.0))
    assert [(m.rule, m.entity, m.entity_name) for m in published] == [("r0", "container:a", "web")]  # type: ignore[attr-defined]
    assert {(a.rule, a.state) for a in e.active()} == {("r0", "firing"), ("r1", "pending")}
    tick(container("b", "db", cpu_usage_percent=10.0))
    assert kinds(published) == ["AlertTriggered", "AlertResolved"]
    res = published[1]
    assert (res.entity, res.reason, res.value, res.rule) == ("container:a", "vanished", None, "r0")  # type: ignore[attr-defined]
    assert e.active() == [], "the pending alert of r1 went with its container, without a message"


def test_vanished_list_item_resolves() -> None:
    e, clock, published, _ = engine({"metric": "node.filesystems[*].used_percent", "message": "{item} on {name}: {value:.0f}%"})
    e.on_node(node(filesystems=[fs("/", 95, 100), fs("/var", 10, 100), fs("/mnt", 99, 100)]))
    assert sorted((m.item, m.message) for m in published) == [("/", "/ on hv1: 95%"), ("/mnt", "/mnt on hv1: 99%")]  # type: ignore[attr-defined]
    clock.advance(5)
    e.on_node(node(filesystems=[fs("/", 96, 100), fs("/var", 10, 100)]))
    assert kinds(published) == ["AlertTriggered", "AlertTriggered", "AlertResolved"]
    assert (published[2].item, published[2].reason, published[2].entity) == ("/mnt", "vanished", "node")  # type: ignore[attr-defined]
    assert [(a.item, a.state) for a in e.active()] == [("/", "firing")]


def test_selector_limits_the_guests_and_a_guest_leaving_it_resolves() -> None:
    e, clock, published, _ = engine({"metric": "container.memory_usage_bytes / memory_limit_bytes", "threshold": 0.5, "select": {"name": "web-*", "runtime": ["docker"]}})
    e.on_containers(
        ContainersSample(
            timestamp=clock.t,
            containers=[
                container("a", "web-1"),
                container("b", "db"),
                container("c", "web-2", runtime="podman"),
                container("d", "web-3", memory_limit_bytes="max"),
            ],
        )
    )
    assert [(m.entity, round(m.value, 3)) for m in published] == [("container:a", 0.8)]  # type: ignore[attr-defined]
    clock.advance(10)
    e.on_containers(ContainersSample(timestamp=clock.t, containers=[container("a", "renamed")]))
    assert kinds(published) == ["AlertTriggered", "AlertResolved"] and published[1].reason == "vanished"  # type: ignore[attr-defined]


def test_vm_rules_run_on_vm_samples_only() -> None:
    e, clock, published, _ = engine({"metric": "vm.memory_usage", "select": {"runtime": "libvirt"}}, {"metric": "node.cpu_usage"})
    e.on_vms(VmsSample(timestamp=clock.t, vms=[vm("u1", "prod-db"), vm("u2", "qmp-one", origin="qmp"), vm("u3", "idle", memory_usage_percent=3.0)]))
    assert [(m.rule, m.entity, m.entity_name, m.value) for m in published] == [("r0", "vm:u1", "prod-db", 91.0)]  # type: ignore[attr-defined]
    e.on_containers(ContainersSample(timestamp=clock.t, containers=[]))
    assert len(published) == 1, "a container sample does not touch VM alerts"


# --- several entities, the views, the bounds ---------------------------------------------------------------------


def test_user_and_process_rules_on_process_samples() -> None:
    """Per-user alerts (entity user:<name>), persistent heavy users, one PID's alert; a user leaving
    the view resolves its alert; node and guest samples do not touch them."""
    e, clock, _, rec = engine(
        {"metric": "user[*].cpu_percent", "threshold": 100, "for": "10s"},
        {"metric": "user.persistent_heavy", "op": "==", "threshold": 1, "for": "0"},
        {"metric": "process.rss_bytes", "threshold": 1 << 30, "for": "0", "select": {"name": "backup*"}},
    )

    def feed(alice_cpu: float, *, bob: bool = True, bob_heavy: bool = False, backup_rss: int = 1 << 20) -> None:
        users = [procsamples.user("alice", 1000, cpu=alice_cpu)]
        if bob:
            users.append(procsamples.user("bob", 1001, cpu=5.0, heavy=bob_heavy))
        procs = [procsamples.process(7, "backup.sh", "bob", 1001, rss=backup_rss), procsamples.process(8, "bash", "alice", 1000, rss=4 << 30)]
        e.on_sample(procsamples.sample(clock(), users, procs))
        clock.advance(5)

    feed(150.0)
    feed(150.0)
    assert rec.got == [] and [(a.entity, a.state) for a in e.active()] == [("user:alice", "pending")]
    feed(150.0, bob_heavy=True, backup_rss=2 << 30)
    fired = {(m.rule, m.entity, m.entity_name) for m in rec.got}
    assert fired == {("r0", "user:alice", "alice"), ("r1", "user:bob", "bob"), ("r2", "process:7", "backup.sh")}
    assert all(m.__struct_config__.tag == "AlertTriggered" for m in rec.got)
    rec.got.clear()
    e.on_node(node(cpu=99.0))
    assert rec.got == []
    feed(10.0, bob=False, backup_rss=1 << 20)  # alice cleared, bob left the per-user view, backup shrank
    assert {(m.rule, m.entity, m.reason) for m in rec.got if isinstance(m, AlertResolvedMessage)} == {
        ("r0", "user:alice", "cleared"),
        ("r1", "user:bob", "vanished"),
        ("r2", "process:7", "cleared"),
    }
    assert [i.kind for i in e.rule_infos()] == ["user", "user", "process"]


def test_counts_rule_infos_and_metrics_series() -> None:
    e, clock, _, _ = engine({"metric": "container.cpu_usage", "threshold": 50}, {"metric": "node.cpu_usage", "severity": "low"})
    e.on_containers(ContainersSample(timestamp=clock.t, containers=[container(str(i), f"c{i}", cpu_usage_percent=60.0 + i) for i in range(3)]))
    assert e.firing_by_rule() == [("r0", "high", 3), ("r1", "low", 0)]
    infos = {r.name: r for r in e.rule_infos()}
    assert (infos["r0"].kind, infos["r0"].firing, infos["r1"].firing, infos["r1"].severity) == ("container", 3, 0, "low")
    text = P.render(None, [], [], "1.0", alerts=e).decode()
    assert 'hvstat_alerts_firing{rule="r0",severity="high"} 3\n' in text
    assert 'hvstat_alerts_firing{rule="r1",severity="low"} 0\n' in text
    assert 'hvstat_alert_notifications_sent_total{notifier="webhook"} 3\n' in text
    assert 'hvstat_alert_notification_retries_total{notifier="webhook"} 0\n' in text
    assert "hvstat_alerts_firing" not in P.render(None, [], [], "1.0").decode(), "no engine, no alert series"


def test_history_is_bounded_and_newest_first() -> None:
    e, clock, _, _ = engine({"metric": "node.cpu_usage"}, history_size=3)
    feed_node(e, clock, [95, 50] * 5)
    h = e.history()
    assert len(h) == 3 and [x.resolved_at for x in h] == sorted((x.resolved_at for x in h), reverse=True)  # type: ignore[misc]
    assert e.resolved == 5 and e.triggered == 5


def test_a_broken_rule_does_not_stop_the_others() -> None:
    e, clock, published, _ = engine({"metric": "node.cpu_usage"}, {"metric": "node.memory_usage", "threshold": 10})

    class Boom:
        def values(self, obj: Any) -> Any:
            raise RuntimeError("boom")

    object.__setattr__(e.rules[0], "expr", Boom())
    feed_node(e, clock, [95])
    assert [m.rule for m in published] == ["r1"] and e.evaluation_errors == 1  # type: ignore[attr-defined]


def test_messages_reach_the_alerts_topic_of_the_hub() -> None:
    hub = Hub(Store(), version="t", max_clients=5, queue_size=16, node_name="hv1")
    on_alerts, on_node_only = hub.connect("a"), hub.connect("b")
    assert on_alerts is not None and on_node_only is not None
    hub.subscribe(on_alerts, ["alerts"])
    hub.subscribe(on_node_only, ["node"])
    for c in (on_alerts, on_node_only):
        while not c.queue.empty():
            c.queue.get_nowait()  # hello, subscribed
    clock = Clock()
    e = AlertEngine(rules({"metric": "node.cpu_usage"}), node_id=hub.node_id, publish=lambda m: hub.publish(m, ("alerts",)), clock=clock)
    e.on_node(node(cpu=99.0))
    clock.advance(5)
    e.on_node(node(cpu=1.0))
    frames = [msgspec.json.decode(on_alerts.queue.get_nowait().data) for _ in range(on_alerts.queue.qsize())]
    assert [f["type"] for f in frames] == ["AlertTriggered", "AlertResolved"]
    msgspec.convert(frames[0], AlertTriggeredMessage)
    msgspec.convert(frames[1], AlertResolvedMessage)
    assert on_node_only.queue.empty()


# --- REST, through the app (lifespan running, real node source) ------------------------------------------------------


def test_rest_endpoints() -> None:
    from hvstat.config import AlertSettings

    settings = Settings(
        monitoring=MonitoringSettings(node_metrics_interval=0.5),
        alerts=AlertSettings(
            rules=[
                msgspec.convert({"name": "always", "metric": "node.memory_usage", "op": ">=", "threshold": 0, "severity": "low"}, AlertRuleSettings),
                msgspec.convert({"name": "never", "metric": "node.memory_usage", "op": "<", "threshold": 0, "severity": "critical"}, AlertRuleSettings),
            ]
        ),
    )
    with TestClient(create_app(settings)) as client:
        body = client.get("/api/alerts").json()
        assert [(a["rule"], a["state"], a["entity"]) for a in body["active"]] == [("always", "firing", "node")]
        assert body["history"] == [] and body["notifiers"] == []
        assert client.get("/api/alerts", params={"severity": "critical"}).json()["active"] == []
        assert len(client.get("/api/alerts", params={"rule": "always", "state": "firing", "limit": "0"}).json()["active"]) == 1
        rules_body = client.get("/api/alerts/rules").json()["rules"]
        assert [(r["name"], r["firing"], r["kind"]) for r in rules_body] == [("always", 1, "node"), ("never", 0, "node")]
        for query, error in (
            ({"severity": "warning"}, "unknown severity"),
            ({"rule": "nope"}, "unknown rule"),
            ({"state": "resolved"}, "unknown state"),
            ({"limit": "x"}, "bad limit"),
            ({"bogus": "1"}, "unknown query parameter"),
        ):
            r = client.get("/api/alerts", params=query)
            assert r.status_code == 400 and r.json()["error"] == error, r.text
        assert client.get("/api/alerts/rules", params={"x": "1"}).status_code == 400
        assert client.post("/api/alerts").status_code == 405
        assert "/api/alerts" in client.get("/").json()["endpoints"]
        metrics = client.get("/metrics").text
        assert 'hvstat_alerts_firing{rule="always",severity="low"} 1' in metrics
        assert 'hvstat_alerts_firing{rule="never",severity="critical"} 0' in metrics
        doc = client.get("/openapi.json").json()
        assert {"/api/alerts", "/api/alerts/rules"} <= set(doc["paths"])


def test_rest_when_alerts_are_disabled() -> None:
    from hvstat.config import AlertSettings

    settings = Settings(monitoring=MonitoringSettings(node_metrics_interval=0.5), alerts=AlertSettings(enabled=False))
    with TestClient(create_app(settings)) as client:
        for path in ("/api/alerts", "/api/alerts/rules"):
            r = client.get(path)
            assert r.status_code == 404 and r.json() == {"error": "alerts are disabled", "detail": {"setting": "alerts.enabled"}}
        assert "hvstat_alerts_firing" not in client.get("/metrics").text

