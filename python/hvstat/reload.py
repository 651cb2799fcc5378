"""SIGHUP: re-read the configuration and apply what a running service can change.

The configuration is loaded and checked as at start; one that does not load (bad TOML, a bad
value, a failing core check) is logged and ignored: a reload never stops the service, and the
running configuration stays. Of a config that loads, every changed key is either applied
(``RELOADABLE``) or logged as "takes effect after a restart" (its running value stays):

- ``logging.level``; ``monitoring.max_ws_clients`` (the next client); ``monitoring.history_max_points``
  (the next request);
- the intervals (``monitoring.node_metrics_interval``, ``vm_metrics_interval``, ``processes.interval``):
  the source's next tick comes one new interval after the reload, and its entities' full-resolution
  history rings are resized for the new interval;
- the samplers' settings (``node.*`` but the roots, ``containers.*`` and ``processes.*`` but
  ``enabled``): a new sampler of that source is built and primed in a worker thread and takes over
  at the next tick (rates go on from the priming; a process's CPU rate and the heavy-user timers
  start over);
- ``alerts.rules``, ``alerts.clock_rules``, ``alerts.webhook``, ``alerts.email``, ``alerts.history_size``: the engine's rules
  (a rule kept by name keeps its firing alerts; a removed rule's resolve), new notifiers (the old
  ones get their shutdown grace to send what they hold);
- ``remote_write.*``: the writer is stopped (what it queued goes into its on-disk buffer), the
  buffer's batches move to the new ``buffer_dir`` if that changed, and a new writer sends them
  first, to the new receiver; on/off too. A batch being sent at that moment may be sent twice;
- ``outputs.file``: the file sink is stopped (what it queued is written) and a new one started; on/off;
- ``[labels]``: on hvstat_node_info and /health at once, on remote write's next batch.

Everything else is baked in at start: the bound sockets, TLS and tokens (server.*), the store's
history sizes, the storage path, which sources run (``*.enabled``), the sampler roots, the VM
collectors' connections (vms.*), the log format. See docs/operations.md, "Reloading the configuration".
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from hvstat.alerts.notify import QueueNotifier, build_notifiers
from hvstat.alerts.rules import compile_rules, every_rule
from hvstat.file_sink import FileSink
from hvstat.remote_write import SUFFIX, RemoteWriter, check_buffer_dir
from hvstat.settings import Settings
from hvstat.sources.base import Source
from hvstat.sources.processes import ProcessSource
from hvstat.sources.registry import REGISTRY, process_rules
from hvstat.state import AppState
from hvstat.store import Kind

log = logging.getLogger(__name__)

# Keys applied on SIGHUP: "table.key", or "table.*" for every key of a table but those in RESTART.
RELOADABLE = (
    "logging.level",
    "monitoring.max_ws_clients",
    "monitoring.history_max_points",
    "monitoring.node_metrics_interval",
    "monitoring.vm_metrics_interval",
    "node.*",
    "containers.*",
    "processes.*",
    "alerts.rules",
    "alerts.webhook",
    "alerts.email",
    "alerts.history_size",
    "alerts.clock_rules",
    "remote_write.*",
    "outputs.*",
    "labels.*",
)
INTERVAL_KEYS = frozenset(("monitoring.node_metrics_interval", "monitoring.vm_metrics_interval", "processes.interval"))
# Keys whose old and new values are logged (never a secret; the others are only named).
SHOWN = ("logging.", "monitoring.", "processes.interval")
# Keys of those tables that still need a restart: the roots every sampler shares (the VM sampler
# cannot be rebuilt without losing its VMs' state), and whether a source runs at all.
RESTART = frozenset(("node.proc_root", "node.sys_root", "node.rootfs", "containers.enabled", "processes.enabled"))

# uvicorn.run(log_level=...) sets these besides the root logger hvstat's own loggers inherit from.
_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def flatten(settings: Settings) -> dict[str, Any]:
    """``{"table.key": value}`` of every key, as plain data (nested tables compare as a whole)."""
    return {f"{table}.{key}": value for table, values in msgspec.to_builtins(settings).items() for key, value in values.items()}


def changed_keys(old: Settings, new: Settings) -> list[str]:
    a, b = flatten(old), flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def reloadable(key: str) -> bool:
    if key in RESTART:
        return False
    table = key.split(".", 1)[0]
    return key in RELOADABLE or f"{table}.*" in RELOADABLE


def merge(old: Settings, new: Settings, keys: list[str]) -> Settings:
    """``old`` with the values of ``keys`` taken from ``new``."""
    data = msgspec.to_builtins(old)
    fresh = msgspec.to_builtins(new)
    for key in keys:
        table, name = key.split(".", 1)
        if name in fresh[table]:
            data[table][name] = fresh[table][name]
        else:
            data[table].pop(name, None)
    return msgspec.convert(data, Settings)


@dataclass(frozen=True)
class Builders:
    """How the wiring (hvstat/app.py) makes the sinks a reload may replace, from settings."""

    remote_writer: Callable[[Settings], RemoteWriter | None]
    file_sink: Callable[[Settings], FileSink | None]
    version: str


class Reloader:
    """Owns the SIGHUP handler of a running service. ``load`` reads and validates the config the
    way ``hvstat serve`` did at start (the same file, environment and command-line overrides), and
    raises on anything invalid; ``current`` is what is in effect (``state.settings``)."""

    def __init__(self, load: Callable[[], Settings], state: AppState, builders: Builders, notifiers: list[QueueNotifier]) -> None:
        self._load = load
        self._state = state
        self._builders = builders
        # The notifiers the lifespan closes at shutdown: replaced in place.
        self._notifiers = notifiers
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def current(self) -> Settings:
        return self._state.settings

    def install(self) -> bool:
        """Handle SIGHUP on the running loop (only possible in the main thread: a TestClient's
        portal thread gets no handler)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        return True

    def uninstall(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGHUP)
            # remove_signal_handler restores SIG_DFL, which would kill the shutting-down process.
            signal.signal(signal.SIGHUP, lambda signum, frame: log.warning("SIGHUP while stopping: ignored"))
            self._loop = None
        for t in self._tasks:
            t.cancel()

    def _on_sighup(self) -> None:
        self._spawn(self.reload())

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> list[str]:
        """Load the config again and apply it; returns the keys applied."""
        async with self._lock:
            log.info("SIGHUP: reloading the configuration")
            try:
                # Reads a file and builds throw-away samplers (the core's own checks): off the loop.
                new = await asyncio.to_thread(self._load)
            except Exception as e:  # noqa: BLE001 - whatever is wrong, the running config stays
                log.error("config not reloaded, the running configuration stays in effect: %s", e)
                return []
            return await self.apply(new)

    async def apply(self, new: Settings) -> list[str]:
        old = self.current
        changed = changed_keys(old, new)
        if not changed:
            log.info("config reloaded: nothing changed")
            return []
        applied = [k for k in changed if reloadable(k)]
        later = [k for k in changed if not reloadable(k)]
        target = merge(old, new, applied)
        failed: list[str] = []
        for keys, step in self._steps(old, target, applied):
            try:
                await step()
            except Exception as e:  # noqa: BLE001 - one part that cannot change keeps its config; the others go on
                log.error("config reloaded: could not apply %s (the settings in effect keep their old values): %s: %s", ", ".join(keys), type(e).__name__, e)
                failed.extend(keys)
        applied = [k for k in applied if k not in failed]
        self._state.settings = merge(old, new, applied)
        # Values are not logged: they may be secrets (alerts.email, webhook and remote-write headers).
        old_values, new_values = flatten(old), flatten(new)
        for key in applied:
            if key.startswith(SHOWN):
                log.info("config reloaded: %s %r -> %r", key, old_values.get(key), new_values.get(key))
            else:
                log.info("config reloaded: %s changed", key)
        if later:
            log.warning("config reloaded: changed keys that take effect only after a restart: %s", ", ".join(later))
        return applied

    def _steps(self, old: Settings, new: Settings, applied: list[str]) -> list[tuple[list[str], Callable[[], Awaitable[None]]]]:
        """The parts to change, each with the applied keys it covers, in order."""
        steps: list[tuple[list[str], Callable[[], Awaitable[None]]]] = []

        def keys(*prefixes: str) -> list[str]:
            return [k for k in applied if any(k == p or (p.endswith(".") and k.startswith(p)) for p in prefixes)]

        def add(covered: list[str], step: Callable[[], Awaitable[None]]) -> None:
            if covered:
                steps.append((covered, step))

        add(keys("logging.level"), partial(self._logging, new))
        add(keys("monitoring.max_ws_clients"), partial(self._ws_clients, new))
        add(keys("monitoring.history_max_points"), _nothing)  # read per request from state.settings
        add(keys("labels."), partial(self._labels, new))  # before remote write: a new writer takes them
        intervals = [k for k in applied if k in INTERVAL_KEYS]
        samplers = [k for k in applied if k.split(".")[0] in ("node", "containers", "processes") and k not in INTERVAL_KEYS]
        for kind in REGISTRY:
            source = self._state.sources.get(kind.name)
            if source is None:
                continue
            if kind.interval(new) != kind.interval(old):
                add(intervals, partial(self._reschedule, kind.name, source, kind.interval(new)))
            if kind.sampler_config(new) != kind.sampler_config(old):
                add(samplers, partial(self._resample, kind.name, source, kind.sampler_config(new)))
        if isinstance(self._state.sources.get("processes"), ProcessSource):
            add(keys("processes.top", "processes.prometheus_top", "alerts.rules"), partial(self._process_view, new))
        add(keys("alerts."), partial(self._alerts, old, new))
        if keys("remote_write."):
            add(keys("remote_write."), partial(self._remote_write, old, new))
        elif self._state.remote_write is not None and _rw_interval(new) != _rw_interval(old):
            add(intervals, partial(self._remote_write_interval, _rw_interval(new)))
        add(keys("outputs."), partial(self._file_output, new))
        return steps

    # --- the parts ---

    async def _logging(self, new: Settings) -> None:
        for name in _LOGGERS:
            logging.getLogger(name).setLevel(new.logging.level.upper())

    async def _ws_clients(self, new: Settings) -> None:
        self._state.hub.max_clients = new.monitoring.max_ws_clients

    async def _labels(self, new: Settings) -> None:
        """``[labels]``: hvstat_node_info and /health from the next request, remote write from its
        next batch (batches already in its buffer keep the labels they were written with)."""
        state = self._state
        state.identity = dataclasses.replace(state.identity, labels=tuple(sorted(new.labels.items())))
        if state.remote_write is not None:
            state.remote_write.external_labels = state.identity.external_labels()

    async def _remote_write_interval(self, interval: float) -> None:
        """Only the batch interval changed (it follows the node's): the next batch comes on it."""
        if self._state.remote_write is not None:
            self._state.remote_write.interval = interval

    async def _reschedule(self, name: str, source: Source, interval: float) -> None:
        log.info("config reloaded: source %s samples every %gs (was %gs)", name, interval, source.interval_secs)
        source.reschedule(interval)
        store = self._state.store
        kinds: dict[str, list[Kind]] = {
            "node": [store.node_kind],
            "containers": [store.container_kind],
            "vms": [store.vm_kind],
            "processes": [store.user_kind],
        }
        for kind in kinds.get(name, []):
            store.set_interval(kind, interval)

    async def _resample(self, name: str, source: Source, config_json: str) -> None:
        if not await source.reconfigure(config_json):
            raise RuntimeError(f"source {name} cannot change its sampler while running")
        log.info("config reloaded: source %s samples with its new settings from its next tick", name)

    async def _process_view(self, new: Settings) -> None:
        source = self._state.sources["processes"]
        assert isinstance(source, ProcessSource)
        source.set_view(new.processes, every_process=process_rules(new))
        if self._state.hub.processes_top is not None:
            self._state.hub.processes_top = new.processes.top

    async def _alerts(self, old: Settings, new: Settings) -> None:
        engine = self._state.alerts
        if engine is None:
            return  # alerts are off: the rules are kept for when a restart turns them on
        a, b = old.alerts, new.alerts
        # The configured rules and the built-in ones [alerts] clock_rules turns on.
        if every_rule(a) != every_rule(b):
            engine.set_rules(compile_rules(every_rule(b)))
            log.info("config reloaded: %d alert rules: %s", len(engine.rules), ", ".join(r.name for r in engine.rules) or "none")
        if a.history_size != b.history_size:
            engine.set_history_size(b.history_size)
        if a.webhook != b.webhook or a.email != b.email:
            fresh = build_notifiers(b, version=self._builders.version)
            for n in fresh:
                n.start()
            stale = list(self._notifiers)
            engine.notifiers = list(fresh)
            self._notifiers[:] = fresh
            # What the old ones hold gets their shutdown grace to go out, in the background.
            self._spawn(asyncio.gather(*(n.aclose() for n in stale), return_exceptions=True))

    async def _remote_write(self, old: Settings, new: Settings) -> None:
        state, bus = self._state, self._state.bus
        before = state.remote_write
        if new.remote_write.enabled:
            problem = await asyncio.to_thread(check_buffer_dir, new.remote_write)
            if problem is not None:
                raise ValueError(f"remote_write.buffer_dir: {problem}")
        held: list[Any] = []
        if before is not None:
            # Samples published while the old writer stops wait here for the new one.
            bus.unsubscribe("remote_write")
            bus.subscribe("remote_write", _Holder(held))
            try:
                await before.aclose()  # what it queued becomes a batch in its buffer
            finally:
                bus.unsubscribe("remote_write")
                state.remote_write = None
            log.info("config reloaded: remote write to %s stopped", before.shown_url)
            if new.remote_write.enabled and new.remote_write.buffer_dir != old.remote_write.buffer_dir:
                moved = await asyncio.to_thread(move_batches, Path(old.remote_write.buffer_dir), Path(new.remote_write.buffer_dir))
                if moved:
                    log.info("config reloaded: %d remote-write batches moved to %s", moved, new.remote_write.buffer_dir)
        after = await asyncio.to_thread(self._builders.remote_writer, new)  # scans its buffer
        if after is None:
            if held:
                log.warning("config reloaded: remote write is off; %d samples taken meanwhile are not sent", len(held))
            return
        if before is not None:
            after.carry_counts(before)
        for s in held:
            after.on_sample(s)
        bus.subscribe("remote_write", after)
        after.start()
        state.remote_write = after

    async def _file_output(self, new: Settings) -> None:
        state, bus = self._state, self._state.bus
        before = state.file_output
        after = self._builders.file_sink(new)
        # The new sink takes the samples from now on; the old one writes what it queued, then closes.
        bus.unsubscribe("file_output")
        if after is not None:
            after.start()
            bus.subscribe("file_output", after)
        state.file_output = after
        if before is not None:
            await asyncio.to_thread(before.close)
            log.info("config reloaded: file output to %s stopped", before.path)
            if after is not None:
                after.carry_counts(before)


async def _nothing() -> None:
    return None


def _rw_interval(s: Settings) -> float:
    return s.remote_write.interval if s.remote_write.interval is not None else s.monitoring.node_metrics_interval


class _Holder:
    """A stand-in listener: keeps what is published while remote write is being replaced."""

    def __init__(self, into: list[Any]) -> None:
        self._into = into

    def on_sample(self, sample: Any) -> None:
        self._into.append(sample)


def move_batches(src: Path, dst: Path) -> int:
    """The remote-write batches of ``src`` into ``dst``, after any already there (renumbered, in
    order), so that the new writer sends them first. Returns how many moved."""
    batches = sorted(src.glob(f"*{SUFFIX}")) if src.is_dir() else []
    if not batches:
        return 0
    dst.mkdir(parents=True, exist_ok=True, mode=0o700)
    present = [int(p.name[: -len(SUFFIX)]) for p in dst.glob(f"*{SUFFIX}") if p.name[: -len(SUFFIX)].isdigit()]
    seq = max(present, default=0) + 1
    for p in batches:
        shutil.move(str(p), str(dst / f"{seq:016d}{SUFFIX}"))
        seq += 1
    return len(batches)
