"""Signals to a real ``hvstat serve`` process: SIGTERM is a clean shutdown with exit code 0, SIGHUP
reloads the keys that are safe to change (hvstat/reload.py) and never stops the service, whatever the
new config holds."""

from __future__ import annotations

import contextlib
import email.utils
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import free_port
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready

pytestmark = pytest.mark.server


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    config: Path
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, pattern: str, after: int = 0) -> str:
        """The first line matching ``pattern`` past character ``after`` of the log."""
        m = wait_ready(lambda: re.search(pattern, self.text()[after:]), f"a log line matching {pattern!r}",
                       timeout=WAIT_SECS / 4, every=0.05, proc=self.proc, log=self.text)  # fmt: skip
        return m.group(0)

    def reload(self, config_text: str, expect: str) -> str:
        """Write the config, send SIGHUP, and return the log line matching ``expect``."""
        self.config.write_text(config_text)
        mark = len(self.text())
        self.proc.send_signal(signal.SIGHUP)
        self.wait_for_log(r"SIGHUP: reloading the configuration", mark)
        line = self.wait_for_log(expect, mark)
        assert httpx.get(f"{self.base}/health", timeout=10).status_code == 200
        assert self.proc.poll() is None
        return line


@contextlib.contextmanager
def serve(workdir: Path, config_text: str) -> Iterator[Served]:
    """``hvstat serve`` as in conftest.running_server, but handing the test its process."""
    config = workdir / "hvstat.toml"
    config.write_text(config_text)
    port = free_port()
    log = workdir / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
        )
    served = Served(proc, f"http://127.0.0.1:{port}", config, log)
    try:
        served.wait_for_log(r"SIGHUP reloads the configuration")
        wait_ready(http_ok(f"{served.base}/health"), "hvstat serve answering /health", proc=proc, log=log)
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=WAIT_SECS)


# Node only, so that the tests do not wait on this machine's containers and VMs.
BASE = """
[containers]
enabled = false
[vms]
enabled = false
"""


def test_sigterm_is_a_clean_shutdown_with_exit_code_0(tmp_path: Path) -> None:
    with serve(tmp_path, BASE) as s:
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=WAIT_SECS) == 0, s.text()
        took = time.monotonic() - t0
        log = s.text()
    assert took < 5, f"SIGTERM took {took:.1f}s"
    # The lifespan's shutdown ran: the sources' tasks were cancelled and awaited.
    assert "Application shutdown complete" in log and "sources stopped" in log, log
    assert "Traceback" not in log, log


def test_sighup_applies_the_safe_keys_and_keeps_the_others_for_a_restart(tmp_path: Path) -> None:
    start = BASE + "[monitoring]\nmax_ws_clients = 5\nnode_metrics_interval = 5\n[logging]\nlevel = \"info\"\n"
    with serve(tmp_path, start) as s:
        # Nothing changed: nothing applied.
        s.reload(start, r"config reloaded: nothing changed")

        changed = BASE + "[monitoring]\nmax_ws_clients = 1\nnode_metrics_interval = 2\n[logging]\nlevel = \"debug\"\n"
        s.reload(changed, r"changed keys that take effect only after a restart: monitoring\.node_metrics_interval\n")
        log = s.text()
        assert "config reloaded: logging.level 'info' -> 'debug'" in log, log
        assert "config reloaded: monitoring.max_ws_clients 5 -> 1" in log, log
        # The restart-only key kept its running value.
        node = next(x for x in httpx.get(f"{s.base}/health", timeout=10).json()["sources"] if x["name"] == "node")
        assert node["interval_secs"] == 5.0
        # The new client limit is in force: one client, the second is refused with 1013.
        ws = s.base.replace("http://", "ws://") + "/ws"
        with connect(ws, open_timeout=10) as first:
            first.recv(timeout=10)
            with connect(ws, open_timeout=10) as second, pytest.raises(ConnectionClosed) as closed:
                second.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert "max_ws_clients = 1" in closed.value.rcvd.reason
        # A second SIGHUP with the same file: the applied keys are in effect, the other still waits.
        s.reload(changed, r"changed keys that take effect only after a restart: monitoring\.node_metrics_interval\n")


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("[monitoring\nmax_ws_clients = 1\n", r"config not reloaded.*hvstat\.toml"),
        ("[monitoring]\nmax_ws_clients = -1\n", r"config not reloaded.*monitoring\.max_ws_clients"),
        ("[monitoring]\nmax_ws_clent = 1\n", r"config not reloaded.*monitoring\.max_ws_clent.*unknown key"),
        ('[node]\ndisk_exclude = ["sd[a"]\n', r"config not reloaded.*node\.disk_exclude"),
    ],
    ids=["toml", "value", "unknown-key", "core-check"],
)
def test_sighup_with_an_invalid_config_is_logged_and_ignored(tmp_path: Path, bad: str, why: str) -> None:
    start = BASE + "[monitoring]\nmax_ws_clients = 5\n"
    with serve(tmp_path, start) as s:
        s.reload(BASE + bad, why)
        # The running config is untouched: putting the old file back changes nothing.
        s.reload(start, r"config reloaded: nothing changed")
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=WAIT_SECS) == 0, s.text()


def _wakeups(pid: int) -> int:
    """Context switches of every thread of ``pid`` so far: each time one went to sleep or was
    preempted. A thread that sleeps until there is work adds none while there is none."""
    n = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    n += int(line.split()[1])
    return n


def test_an_idle_server_sleeps_keeps_its_date_header_current_and_stops_at_once(tmp_path: Path) -> None:
    """Nothing to sample for a minute: no thread wakes up (uvicorn's own server wakes 10 times a
    second; api/transport.QuietServer does not), yet the Date header is current and SIGTERM is
    acted on at once (it may land on a sleeping worker thread; the loop is woken anyway)."""
    idle = BASE + "[processes]\nenabled = false\n[monitoring]\nnode_metrics_interval = 60\n"
    with serve(tmp_path, idle) as s:
        pid = s.proc.pid
        time.sleep(1)
        before = _wakeups(pid)
        time.sleep(3)
        woke = _wakeups(pid) - before
        assert woke <= 3, f"{woke} context switches in 3 s of nothing to do"
        first = httpx.get(f"{s.base}/health", timeout=10).headers["date"]
        time.sleep(1.1)
        second = httpx.get(f"{s.base}/health", timeout=10).headers["date"]
        assert first != second
        assert abs(email.utils.parsedate_to_datetime(second).timestamp() - time.time()) < 5
        time.sleep(1)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=WAIT_SECS) == 0, s.text()
        took = time.monotonic() - t0
    assert took < 5, f"SIGTERM took {took:.1f}s"
