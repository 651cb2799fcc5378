"""Signals to a real ``hvstat serve`` process: SIGTERM is a clean shutdown with exit code 0, SIGHUP
reloads the configuration (hvstat/reload.py) and never stops the service, whatever the new config
holds. Each reloadable part is seen taking effect: a source's interval in its samples' timestamps,
new filters in its next sample, an alert rule firing and resolving, the file output writing and
stopping, remote write moving to a new receiver with its buffer."""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from conftest import free_port
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready
from test_remote_write import Receiver, node_history

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
        assert "Traceback" not in served.text(), served.text()[-5000:]
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


def node_timestamps(ws: ClientConnection, n: int) -> list[float]:
    """The timestamps of the next ``n`` NodeMetrics messages on ``ws``."""
    out: list[float] = []
    while len(out) < n:
        message = json.loads(ws.recv(timeout=WAIT_SECS / 4))
        if message["type"] == "NodeMetrics":
            out.append(message["timestamp"])
    return out


def test_sighup_applies_the_reloadable_keys_and_lists_the_others_for_a_restart(tmp_path: Path) -> None:
    start = BASE + "[monitoring]\nmax_ws_clients = 5\nnode_metrics_interval = 5\n[logging]\nlevel = \"info\"\n"
    with serve(tmp_path, start) as s:
        # Nothing changed: nothing applied.
        s.reload(start, r"config reloaded: nothing changed")

        changed = (
            BASE
            + "[monitoring]\nmax_ws_clients = 1\nnode_metrics_interval = 1\nhistory_bucket = 30\n"
            + "[logging]\nlevel = \"debug\"\n[server]\nrequest_timeout = 20\n"
        )
        restart = r"changed keys that take effect only after a restart: monitoring\.history_bucket, server\.request_timeout\n"
        s.reload(changed, restart)
        log = s.text()
        assert "config reloaded: logging.level 'info' -> 'debug'" in log, log
        assert "config reloaded: monitoring.max_ws_clients 5 -> 1" in log, log
        assert "config reloaded: monitoring.node_metrics_interval 5.0 -> 1.0" in log, log
        assert "config reloaded: source node samples every 1s (was 5s)" in log, log
        node = next(x for x in httpx.get(f"{s.base}/health", timeout=10).json()["sources"] if x["name"] == "node")
        assert node["interval_secs"] == 1.0
        # The new client limit is in force: one client, the second is refused with 1013.
        ws = s.base.replace("http://", "ws://") + "/ws"
        with connect(ws, open_timeout=10) as first:
            # The node source was rescheduled: its samples now come a second apart.
            ts = node_timestamps(first, 4)
            gaps = [b - a for a, b in zip(ts, ts[1:])]
            assert all(0.8 < g < 1.2 for g in gaps), gaps
            with connect(ws, open_timeout=10) as second, pytest.raises(ConnectionClosed) as closed:
                second.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert "max_ws_clients = 1" in closed.value.rcvd.reason
        # The restart-only keys kept their running values: the same file again lists them again.
        s.reload(changed, restart)
        assert s.text().count("source node samples every") == 1


def test_sighup_swaps_the_node_sampler_for_new_filters(tmp_path: Path) -> None:
    with serve(tmp_path, BASE + "[monitoring]\nnode_metrics_interval = 1\n") as s:

        def interfaces() -> list[dict[str, Any]]:
            r = httpx.get(f"{s.base}/api/monitoring/node/metrics", params={"fields": "timestamp,interfaces"}, timeout=10).json()
            return r["interfaces"]

        assert any(i["name"] == "lo" for i in interfaces())
        s.reload(BASE + "[monitoring]\nnode_metrics_interval = 1\n[node]\ninterface_exclude = [\"*\"]\n", r"source node samples with its new settings")
        wait_ready(lambda: interfaces() == [], "no interface after interface_exclude = ['*']", timeout=10, proc=s.proc, log=s.text)
        s.reload(BASE + "[monitoring]\nnode_metrics_interval = 1\n[node]\ninterface_include = [\"lo\"]\n", r"source node samples with its new settings")
        lo = wait_ready(lambda: (i := interfaces()) and i, "lo back after interface_include = ['lo']", timeout=10, proc=s.proc, log=s.text)
        assert [i["name"] for i in lo] == ["lo"]
        # The new sampler was primed at the reload: its first sample already has rates.
        assert lo[0]["rx_bytes_per_sec"] is not None, lo


def test_sighup_adds_changes_and_removes_an_alert_rule(tmp_path: Path) -> None:
    rule = '[[alerts.rules]]\nname = "mem-any"\nmetric = "node.memory_usage"\nop = ">"\nthreshold = {}\nseverity = "low"\n'
    with serve(tmp_path, BASE + "[monitoring]\nnode_metrics_interval = 1\n") as s:
        ws = s.base.replace("http://", "ws://") + "/ws"
        with connect(ws, open_timeout=10) as client:
            client.send(json.dumps({"type": "subscribe", "topics": ["alerts"]}))

            def next_alert() -> dict[str, Any]:
                while True:
                    message = json.loads(client.recv(timeout=WAIT_SECS / 4))
                    if message["type"].startswith("Alert"):
                        return message

            s.reload(BASE + "[monitoring]\nnode_metrics_interval = 1\n" + rule.format(0), r"config reloaded: 1 alert rules: mem-any")
            fired = next_alert()
            assert fired["type"] == "AlertTriggered" and fired["rule"] == "mem-any", fired
            # The same rule with a new threshold that still holds: it keeps firing, nothing is sent.
            s.reload(BASE + "[monitoring]\nnode_metrics_interval = 1\n" + rule.format(0.5), r"config reloaded: 1 alert rules: mem-any")
            active = httpx.get(f"{s.base}/api/alerts", timeout=10).json()
            assert [(a["alert_id"], a["state"], a["threshold"]) for a in active["active"]] == [(fired["alert_id"], "firing", 0.5)], active
            # Gone from the config: its alert resolves at once.
            s.reload(BASE + "[monitoring]\nnode_metrics_interval = 1\n", r"config reloaded: 0 alert rules")
            resolved = next_alert()
            assert resolved["type"] == "AlertResolved" and resolved["alert_id"] == fired["alert_id"] and resolved["reason"] == "rule_removed", resolved
        assert httpx.get(f"{s.base}/api/alerts", timeout=10).json()["active"] == []


def lines_of(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def test_sighup_turns_the_file_output_on_moves_it_and_turns_it_off(tmp_path: Path) -> None:
    config = BASE + "[monitoring]\nnode_metrics_interval = 0.5\n"
    output = '[outputs.file]\nenabled = true\npath = "{}"\nkinds = ["node"]\n'
    a, b = tmp_path / "a" / "samples.jsonl", tmp_path / "b" / "samples.jsonl"
    with serve(tmp_path, config) as s:
        assert httpx.get(f"{s.base}/health", timeout=10).json()["file_output"] is None
        s.reload(config + output.format(a), r"config reloaded: outputs\.file changed")
        wait_ready(lambda: lines_of(a) >= 2, "lines in the file", timeout=10, proc=s.proc, log=s.text)
        assert httpx.get(f"{s.base}/health", timeout=10).json()["file_output"]["path"] == str(a)
        s.reload(config + output.format(b), r"file output to .*/a/samples\.jsonl stopped")
        wait_ready(lambda: lines_of(b) >= 2, "lines in the new file", timeout=10, proc=s.proc, log=s.text)
        in_a = lines_of(a)
        s.reload(config, r"file output to .*/b/samples\.jsonl stopped")
        in_b = lines_of(b)
        time.sleep(1.5)
        assert (lines_of(a), lines_of(b)) == (in_a, in_b)
        health = httpx.get(f"{s.base}/health", timeout=10).json()
        assert health["file_output"] is None and health["status"] == "ok"
    # One sample after the other, none twice: the node's timestamps across both files only grow.
    stamps = [json.loads(line)["sample"]["timestamp"] for p in (a, b) for line in p.read_bytes().splitlines()]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_sighup_moves_remote_write_to_a_new_receiver_with_its_buffer(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api/v1/write"
    old_dir, new_dir = tmp_path / "buffer-a", tmp_path / "buffer-b"
    rw = '[remote_write]\nenabled = true\nurl = "{}"\nbuffer_dir = "{}"\nbackoff = 0.2\nbackoff_max = 0.5\n'
    config = BASE + "[monitoring]\nnode_metrics_interval = 0.5\n"
    with Receiver() as rx, serve(tmp_path, config + rw.format(dead, old_dir)) as s:
        # Nothing listens: batches pile up in the buffer.
        wait_ready(lambda: len(list(old_dir.glob("*.batch"))) >= 3, "batches in the buffer", timeout=20, proc=s.proc, log=s.text)
        before = node_history(s.base)
        s.reload(config + rw.format(rx.url, new_dir), r"remote-write batches moved to")
        assert not list(old_dir.glob("*.batch"))
        wait_ready(lambda: set(before) <= set(rx.timestamps("hvstat_node_cpu_seconds_total", cpu="0", mode="user")),
                   "the samples buffered before the reload at the new receiver", timeout=20, proc=s.proc, log=s.text)  # fmt: skip
        got = rx.timestamps("hvstat_node_cpu_seconds_total", cpu="0", mode="user")
        assert got == sorted(got), "batches arrived out of order"
        health = httpx.get(f"{s.base}/health", timeout=10).json()["remote_write"]
        assert health["url"] == rx.url
        # The counters went on from the old writer (its retries), they did not start over.
        text = httpx.get(f"{s.base}/metrics", timeout=10).text
        retries = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("hvstat_remote_write_retries_total"))
        assert retries >= 1
        # Turned off: the writer stops; what it queued stays in its buffer for a later start.
        s.reload(config, r"remote write to .* stopped")
        assert httpx.get(f"{s.base}/health", timeout=10).json()["remote_write"] is None


def test_sighup_applies_labels_to_node_info_and_remote_write(tmp_path: Path) -> None:
    rw = '[remote_write]\nenabled = true\nurl = "{}"\nbuffer_dir = "{}"\n'
    config = BASE + "[monitoring]\nnode_metrics_interval = 0.5\n"
    with Receiver() as rx, serve(tmp_path, config + rw.format(rx.url, tmp_path / "buffer") + '[labels]\nrack = "r1"\n') as s:

        def racks() -> set[str | None]:
            with rx.lock:
                return {ls.get("rack") for request in rx.accepted for ls, _ in request if ls["__name__"] == "hvstat_node_load1"}

        wait_ready(lambda: "r1" in racks(), "a batch labelled rack=r1", timeout=20, proc=s.proc, log=s.text)
        s.reload(config + rw.format(rx.url, tmp_path / "buffer") + '[labels]\nrack = "r2"\nsite = "s1"\n', r"config reloaded: labels\.site changed")
        assert httpx.get(f"{s.base}/health", timeout=10).json()["node"]["labels"] == {"rack": "r2", "site": "s1"}
        info = [line for line in httpx.get(f"{s.base}/metrics", timeout=10).text.splitlines() if line.startswith("hvstat_node_info{")]
        assert len(info) == 1 and 'rack="r2"' in info[0] and 'site="s1"' in info[0], info
        wait_ready(lambda: "r2" in racks(), "a batch labelled rack=r2", timeout=20, proc=s.proc, log=s.text)
        assert "config reloaded: labels.rack changed" in s.text()


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("[monitoring\nmax_ws_clients = 1\n", r"config not reloaded.*hvstat\.toml"),
        ("[monitoring]\nmax_ws_clients = -1\n", r"config not reloaded.*monitoring\.max_ws_clients"),
        ("[monitoring]\nmax_ws_clent = 1\n", r"config not reloaded.*monitoring\.max_ws_clent.*unknown key"),
        ('[node]\ndisk_exclude = ["sd[a"]\n', r"config not reloaded.*node\.disk_exclude"),
        ('[outputs.file]\nenabled = true\nkinds = []\n', r"config not reloaded.*outputs\.file\.kinds"),
        ('[[alerts.rules]]\nname = "x"\nmetric = "node.nope"\nop = ">"\nthreshold = 1\nseverity = "low"\n', r"config not reloaded.*alerts\.rules\[0\]"),
    ],
    ids=["toml", "value", "unknown-key", "core-check", "file-output", "alert-rule"],
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
