"""The alert engine: every rule evaluated for every matching entity on every sample, a small state
machine per (rule, entity, item), and the AlertTriggered / AlertResolved messages it emits.

States (docs/alerts.md, "States")::

    inactive --condition--> pending --held for `for`--> firing --cleared (resolve_threshold,
       ^                       |                          |        for resolve_for)--> resolved
       +----condition gone-----+                          +--entity vanished / no value x3--> resolved

- ``for = 0`` fires on the first sample that meets the condition (pending is skipped).
- A firing alert sends one AlertTriggered, then nothing until it resolves: no duplicates.
- Hysteresis: with ``resolve_threshold`` a firing alert stays firing until the value no longer
  passes that threshold; with ``resolve_for`` the condition must stay cleared that long.
- A null value (the kernel could not say; a limit of "max") is not 0 and not a verdict: it leaves
  the state as it is. NO_DATA_EVALUATIONS nulls in a row end the alert (reason ``no_data``), so that
  a metric that went away for good does not keep an alert firing forever.
- An entity (or ``[*]`` item) that is no longer in its kind's sample, or no longer matches the rule's
  selector, ends its alerts at once (reason ``vanished``).
- After it resolved, the same condition starts a new alert (new ``alert_id``, pending first).

Everything runs on the event loop, a listener on the sample bus (after the store was written);
the engine never waits: messages go to the hub (non-blocking) and to the notifiers' bounded queues.
Time comes from ``clock`` (unix seconds), injected by the tests.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hvstat.alerts.rules import Rule, format_duration, render
from hvstat.models import (
    Alert,
    AlertEndReason,
    AlertResolvedMessage,
    AlertRuleInfo,
    AlertTriggeredMessage,
    ClockHealth,
    ContainersSample,
    NodeMetrics,
    NotifierStatus,
    ProcessesSample,
    VmsSample,
    WsMessage,
)

log = logging.getLogger(__name__)

# Evaluations in a row without a value after which an alert ends (reason "no_data").
NO_DATA_EVALUATIONS = 3

Key = tuple[str, str | None]  # (entity, item)


class Notifier(Protocol):
    @property
    def name(self) -> str: ...  # read only: a notifier may narrow it ("webhook" | "email")

    def submit(self, message: AlertTriggeredMessage | AlertResolvedMessage) -> bool: ...

    def status(self) -> NotifierStatus: ...


@dataclass
class _Track:
    """One (rule, entity, item) that is pending or firing."""

    alert_id: str
    entity_name: str | None
    state: Literal["pending", "firing"]
    since: float
    value: float | None
    fired_at: float | None = None
    message: str | None = None
    clearing_since: float | None = None
    nulls: int = 0


class AlertEngine:
    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        node_id: str,
        publish: Callable[[WsMessage], None] | None = None,
        notifiers: Sequence[Notifier] = (),
        clock: Callable[[], float] = time.time,
        history_size: int = 500,
        clock_health: Callable[[], ClockHealth] | None = None,
    ) -> None:
        self.node_id = node_id
        self._publish = publish
        self.notifiers = list(notifiers)
        self.clock = clock
        # The clock watch's state for "clock" rules (hvstat/clock.py), read at every node sample.
        self.clock_health = clock_health
        self.rules: list[Rule] = []
        self._by_kind: dict[str, list[Rule]] = {}
        self._tracks: dict[str, dict[Key, _Track]] = {}
        self.set_rules(rules)
        self._history: deque[Alert] = deque(maxlen=history_size)
        # Called with each resolved alert as it enters the history (the on-disk history keeps it).
        self.on_resolved: Callable[[Alert], None] | None = None
        # Counters, for tests and logs.
        self.triggered = 0
        self.resolved = 0
        self.evaluation_errors = 0

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """The rules to evaluate from now on (at start, and on SIGHUP). A rule kept by name keeps its
        pending and firing alerts, judged by its new definition from the next sample on (a firing
        alert whose new threshold no longer holds resolves as ``cleared``); the firing alerts of a
        rule that is gone resolve at once, reason ``rule_removed``."""
        names = {r.name for r in rules}
        now = self.clock()
        for old in self.rules:
            if old.name not in names:
                tracks = self._tracks[old.name]
                for key in list(tracks):
                    self._end(old, tracks, key, now, "rule_removed", None)
        self.rules = list(rules)
        self._by_kind = {"node": [], "container": [], "vm": [], "user": [], "process": [], "clock": []}
        for r in self.rules:
            self._by_kind[r.kind].append(r)
        self._tracks = {r.name: self._tracks.get(r.name, {}) for r in self.rules}

    def set_history_size(self, size: int) -> None:
        """Resolved alerts kept (SIGHUP): the newest stay."""
        self._history = deque(self._history, maxlen=size)

    # --- a listener on the sample bus (on the event loop) ---

    def on_sample(self, sample: object) -> None:
        if isinstance(sample, NodeMetrics):
            self.on_node(sample)
        elif isinstance(sample, ContainersSample):
            self.on_containers(sample)
        elif isinstance(sample, VmsSample):
            self.on_vms(sample)
        elif isinstance(sample, ProcessesSample):
            self.on_processes(sample)

    # Each builds the entity list only when a rule of its kind exists: the defaults have none, and
    # 1000 containers are 1000 strings a tick.
    def on_node(self, sample: NodeMetrics) -> None:
        if self._by_kind["node"]:
            self._evaluate("node", [("node", self.node_id, sample)])
        if self._by_kind["clock"] and self.clock_health is not None:
            self._evaluate("clock", [("clock", self.node_id, self.clock_health())])

    def on_containers(self, sample: ContainersSample) -> None:
        if self._by_kind["container"]:
            self._evaluate("container", [(f"container:{c.id}", c.name, c) for c in sample.containers])

    def on_vms(self, sample: VmsSample) -> None:
        if self._by_kind["vm"]:
            self._evaluate("vm", [(f"vm:{v.id}", v.name, v) for v in sample.vms])

    def on_processes(self, sample: ProcessesSample) -> None:
        """User rules on every user of the per-user view (``user:<name>``), process rules on every
        process of the sample (``process:<pid>``, named by its command)."""
        if self._by_kind["user"]:
            self._evaluate("user", [(f"user:{u.user}", u.user, u) for u in sample.users])
        if self._by_kind["process"]:
            self._evaluate("process", [(f"process:{p.pid}", p.name, p) for p in sample.processes])

    # --- evaluation ---

    def _evaluate(self, kind: str, entities: Sequence[tuple[str, str | None, Any]]) -> None:
        rules = self._by_kind[kind]
        if not rules:
            return
        now = self.clock()
        for rule in rules:
            try:
                self._evaluate_rule(rule, entities, now)
            except Exception:  # noqa: BLE001 - one broken rule must not stop the others or the source
                self.evaluation_errors += 1
                log.exception("alerts: evaluating rule %r failed", rule.name)

    def _evaluate_rule(self, rule: Rule, entities: Sequence[tuple[str, str | None, Any]], now: float) -> None:
        tracks = self._tracks[rule.name]
        seen: set[Key] = set()
        for entity, name, obj in entities:
            if not rule.selects(obj):
                continue
            for item, value in rule.expr.values(obj):
                key = (entity, item)
                seen.add(key)
                self._step(rule, tracks, key, name, value, now)
        for key in [k for k in tracks if k not in seen]:
            self._end(rule, tracks, key, now, "vanished", None)

    def _step(self, rule: Rule, tracks: dict[Key, _Track], key: Key, name: str | None, value: float | None, now: float) -> None:
        t = tracks.get(key)
        if value is None:
            if t is not None:
                t.nulls += 1
                t.value = None
                if t.nulls >= NO_DATA_EVALUATIONS:
                    self._end(rule, tracks, key, now, "no_data", None)
            return
        if t is not None:
            t.nulls = 0
            t.value = value
            t.entity_name = name
        if t is None or t.state == "pending":
            if not rule.fires(value):
                if t is not None:
                    del tracks[key]  # cleared before `for`: never notified, so nothing to resolve
                return
            if t is None:
                t = tracks[key] = _Track(secrets.token_hex(8), name, "pending", now, value)
            if now - t.since >= rule.for_secs:
                self._fire(rule, key, t, now)
            return
        if rule.holds(value):
            t.clearing_since = None
            return
        if t.clearing_since is None:
            t.clearing_since = now
        if now - t.clearing_since >= rule.resolve_for_secs:
            self._end(rule, tracks, key, now, "cleared", value)

    def _fire(self, rule: Rule, key: Key, t: _Track, now: float) -> None:
        entity, item = key
        assert t.value is not None
        t.state, t.fired_at = "firing", now
        t.message = render(rule.message, self._context(rule, entity, t.entity_name, item, t.value))
        self.triggered += 1
        log.warning("alert %s firing on %s%s: %s", rule.name, entity, f" [{item}]" if item else "", t.message)
        self._emit(
            AlertTriggeredMessage(
                node_id=self.node_id,
                timestamp=now,
                alert_id=t.alert_id,
                rule=rule.name,
                severity=rule.severity,
                entity=entity,
                entity_name=t.entity_name,
                item=item,
                metric=rule.metric,
                op=rule.op,
                value=t.value,
                threshold=rule.threshold,
                since=t.since,
                message=t.message,
            )
        )

    def _end(self, rule: Rule, tracks: dict[Key, _Track], key: Key, now: float, reason: AlertEndReason, value: float | None) -> None:
        t = tracks.pop(key)
        if t.state != "firing":
            return  # a pending alert that vanished or lost its value: it was never notified
        assert t.fired_at is not None and t.message is not None
        entity, item = key
        self.resolved += 1
        log.warning("alert %s resolved on %s%s (%s)", rule.name, entity, f" [{item}]" if item else "", reason)
        resolved = Alert(
            alert_id=t.alert_id,
            rule=rule.name,
            severity=rule.severity,
            state="resolved",
            entity=entity,
            entity_name=t.entity_name,
            item=item,
            metric=rule.metric,
            op=rule.op,
            threshold=rule.threshold,
            value=value,
            since=t.since,
            fired_at=t.fired_at,
            resolved_at=now,
            reason=reason,
            message=t.message,
        )
        self._history.append(resolved)
        if self.on_resolved is not None:
            self.on_resolved(resolved)
        self._emit(
            AlertResolvedMessage(
                node_id=self.node_id,
                timestamp=now,
                alert_id=t.alert_id,
                rule=rule.name,
                severity=rule.severity,
                entity=entity,
                entity_name=t.entity_name,
                item=item,
                metric=rule.metric,
                op=rule.op,
                value=value,
                threshold=rule.threshold,
                since=t.since,
                fired_at=t.fired_at,
                reason=reason,
                message=f"resolved ({reason.replace('_', ' ')}): {t.message}",
            )
        )

    def _context(self, rule: Rule, entity: str, name: str | None, item: str | None, value: float) -> dict[str, Any]:
        shown = name or entity
        return {
            "rule": rule.name,
            "severity": rule.severity,
            "entity": entity,
            "name": shown,
            "item": item or "",
            "target": f"{shown} {item}" if item else shown,
            "metric": rule.metric,
            "op": rule.op,
            "threshold": rule.threshold,
            "value": value,
            "for": format_duration(rule.for_secs),
            "node": self.node_id,
        }

    def _emit(self, message: AlertTriggeredMessage | AlertResolvedMessage) -> None:
        if self._publish is not None:
            try:
                self._publish(message)
            except Exception:  # noqa: BLE001 - the notifiers still get it
                log.exception("alerts: publishing %s to the hub failed", type(message).__name__)
        for n in self.notifiers:
            n.submit(message)

    # --- reading (REST, /metrics) ---

    def active(self) -> list[Alert]:
        """Pending and firing alerts, firing first, then by rule and entity."""
        out = []
        for rule in self.rules:
            for (entity, item), t in self._tracks[rule.name].items():
                out.append(
                    Alert(
                        alert_id=t.alert_id,
                        rule=rule.name,
                        severity=rule.severity,
                        state=t.state,
                        entity=entity,
                        entity_name=t.entity_name,
                        item=item,
                        metric=rule.metric,
                        op=rule.op,
                        threshold=rule.threshold,
                        value=t.value,
                        since=t.since,
                        fired_at=t.fired_at,
                        message=t.message,
                    )
                )
        out.sort(key=lambda a: (a.state != "firing", a.rule, a.entity, a.item or ""))
        return out

    def restore_history(self, alerts: list[Alert]) -> None:
        """Resolved alerts of earlier runs (newest first, from the on-disk history), before this run's."""
        room = (self._history.maxlen or 0) - len(self._history)
        for a in alerts[: max(0, room)]:
            self._history.appendleft(a)

    def history(self) -> list[Alert]:
        """Resolved alerts, newest first (at most ``history_size``)."""
        return list(reversed(self._history))

    def counts(self, rule: str) -> tuple[int, int]:
        """(pending, firing) of a rule."""
        tracks = self._tracks[rule].values()
        firing = sum(1 for t in tracks if t.state == "firing")
        return len(tracks) - firing, firing

    def firing_by_rule(self) -> list[tuple[str, str, int]]:
        """(rule, severity, firing alerts) for every rule, 0 included."""
        return [(r.name, r.severity, self.counts(r.name)[1]) for r in self.rules]

    def rule_infos(self) -> list[AlertRuleInfo]:
        out = []
        for r in self.rules:
            pending, firing = self.counts(r.name)
            out.append(
                AlertRuleInfo(
                    name=r.name,
                    kind=r.kind,  # type: ignore[arg-type]  # a key of rules.KINDS (AlertRuleInfo.kind's Literal); the parser types it str
                    metric=r.metric,
                    op=r.op,
                    threshold=r.threshold,
                    for_secs=r.for_secs,
                    severity=r.severity,
                    message=r.message,
                    resolve_threshold=r.resolve_threshold,
                    resolve_for_secs=r.resolve_for_secs,
                    select_name=list(r.select_names),
                    select_runtime=list(r.select_runtimes),
                    pending=pending,
                    firing=firing,
                )
            )
        return out

    def notifier_status(self) -> list[NotifierStatus]:
        return [n.status() for n in self.notifiers]

