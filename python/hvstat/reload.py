"""SIGHUP: re-read the configuration and apply what a running service can change safely.

Only keys that no running part keeps a copy of are applied (``RELOADABLE``). Every other key was
baked in at start: samplers hold their roots, filters and caps; the store sized its history from the
intervals; the sockets are bound; the alert engine keeps firing alerts per rule, and swapping its rules
or notifiers would have to resolve or carry those over. A change to any of them is logged as "takes
effect after a restart" and the running value stays. A config that does not load (bad TOML, a bad
value, a failing core check) is logged and ignored: a reload never stops the service.
See docs/operations.md, "Reloading the configuration".
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from hvstat.hub import Hub
from hvstat.settings import Settings

log = logging.getLogger(__name__)

# Keys applied on SIGHUP. logging.level: the level of hvstat's and uvicorn's loggers (the access log,
# switched on at start by level "debug", stays as it was). monitoring.max_ws_clients: checked when a
# client connects; lowering it does not close clients already connected.
RELOADABLE = ("logging.level", "monitoring.max_ws_clients")

# uvicorn.run(log_level=...) sets these besides the root logger hvstat's own loggers inherit from.
_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def flatten(settings: Settings) -> dict[str, Any]:
    """``{"table.key": value}`` of every key, as plain data (nested tables compare as a whole)."""
    return {f"{table}.{key}": value for table, values in msgspec.to_builtins(settings).items() for key, value in values.items()}


def changed_keys(old: Settings, new: Settings) -> list[str]:
    a, b = flatten(old), flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


class Reloader:
    """Owns the SIGHUP handler of a running service. ``load`` reads and validates the config the
    way ``hvstat serve`` did at start (the same file, environment and command-line overrides), and
    raises on anything invalid; ``current`` is what is in effect."""

    def __init__(self, load: Callable[[], Settings], current: Settings, hub: Hub) -> None:
        self._load = load
        self.current = current
        self._hub = hub
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[list[str]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

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
        task = asyncio.ensure_future(self.reload())
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
            return self.apply(new)

    def apply(self, new: Settings) -> list[str]:
        changed = changed_keys(self.current, new)
        if not changed:
            log.info("config reloaded: nothing changed")
            return []
        old_values, new_values = flatten(self.current), flatten(new)
        applied = [k for k in changed if k in RELOADABLE]
        for key in applied:
            log.info("config reloaded: %s %r -> %r", key, old_values[key], new_values[key])
        # Values of the other keys are not logged: they may be secrets (alerts.email, webhook headers).
        later = [k for k in changed if k not in RELOADABLE]
        if later:
            log.warning("config reloaded: changed keys that take effect only after a restart: %s", ", ".join(later))
        if "logging.level" in applied:
            for name in _LOGGERS:
                logging.getLogger(name).setLevel(new.logging.level.upper())
        if "monitoring.max_ws_clients" in applied:
            self._hub.max_clients = new.monitoring.max_ws_clients
        self.current = msgspec.structs.replace(
            self.current,
            logging=new.logging,
            monitoring=msgspec.structs.replace(self.current.monitoring, max_ws_clients=new.monitoring.max_ws_clients),
        )
        return applied
