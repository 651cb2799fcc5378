"""The on-disk history with a real ``hvstat serve``: history from before a SIGKILL read back through
the REST API after a restart; a second process on the same path refused; a full disk (a small
tmpfs) and a read-only path make /health degraded while live metrics and in-memory history go on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready

# 1 s buckets so that a test sees buckets close every second; the containers and VMs stay off
# (the node is enough, and the test does not depend on this machine's guests).
CONFIG = """
[containers]
enabled = false
[vms]
enabled = false
[storage]
tiers = [{bucket = 1, span = 600}, {bucket = 5, span = 3600}, {bucket = 60, span = 86400}]
"""


@contextlib.contextmanager
def serve(workdir: Path, db: Path, config: str = CONFIG) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    (workdir / "hvstat.toml").write_text(config)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / f"serve-{port}.log"
    env = clean_env(HVSTAT_STORAGE_PATH=str(db), HVSTAT_MONITORING_NODE_METRICS_INTERVAL="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(workdir / "hvstat.toml"), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        try:
            wait_ready(http_ok(f"{base}/health"), "hvstat serve answering /health", proc=proc, log=log_path)
            yield base, proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(WAIT_SECS)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def node_history(base: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{base}/api/monitoring/node/history", params={"fields": "cpu_usage,memory_usage", **params}, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def storage(base: str) -> dict[str, Any]:
    h = httpx.get(f"{base}/health", timeout=5).json()
    s: dict[str, Any] = h["storage"]
    return {**s, "overall": h["status"]}


@pytest.mark.server
def test_history_from_before_a_sigkill_is_read_back_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state" / "history.db"
    with serve(tmp_path, db) as (base, proc):
        start = time.time()  # memory holds every sample from here (earlier: the disk only)
        # Let a few 1 s buckets close and be written.
        wait_ready(lambda: (s := storage(base))["last_write"] and s["status"] == "ok" and time.time() > start + 6, "buckets written", proc=proc)
        before = node_history(base, since=start)
        assert before["tier"] == "memory" and len(before["timestamps"]) >= 4
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT_SECS)
    assert db.exists() and Path(f"{db}.lock").exists()
    with serve(tmp_path, db) as (base, proc):
        after = node_history(base, since=start, until=killed_at)
        assert after["tier"] == "1s" and after["resolution"] == "min/avg/max"
        # Every sample of the first run up to its last closed bucket is there, one per 1 s bucket,
        # with its value (float32 on disk).
        kept = {int(t): i for i, t in enumerate(after["timestamps"])}
        first = dict(zip(before["timestamps"], before["series"]["cpu_usage"]))
        checked = 0
        for ts, value in first.items():
            if ts < killed_at - 2 and value is not None:  # the open bucket may be lost
                i = kept[int(ts)]
                assert after["series"]["cpu_usage"]["avg"][i] == pytest.approx(value, rel=1e-6)
                checked += 1
        assert checked >= 3
        # A step of 5 s comes from the 5 s tier, across the kill and this run, without an error.
        coarse = node_history(base, since=start, step=5)
        assert coarse["tier"] == "5s" and coarse["timestamps"]


@pytest.mark.server
@pytest.mark.qemu
def test_resolved_alerts_and_vm_events_survive_a_restart(tmp_path: Path) -> None:
    """A bare QEMU (tests/virt.py) appears over QMP and an alert rule on it fires; the QEMU is
    killed: the VM vanishes (a VmStatusChanged event) and the alert resolves. hvstat stops on
    SIGTERM and starts again on the same database: GET /api/alerts still lists the resolved alert
    and GET /api/vms/events the VM's events, from disk."""
    import virt

    config = CONFIG.replace("[vms]\nenabled = false\n", "") + (
        "[monitoring]\nvm_metrics_interval = 1\n"
        '[vms]\nlibvirt = "off"\nqmp_sockets = ["/tmp/hvstat-vm-*/hvstat-qmp-*.qmp"]\n'
        '[[alerts.rules]]\nname = "vm-up"\nmetric = "vm.vcpus"\nop = ">="\nthreshold = 1\nseverity = "low"\n'
    )
    db = tmp_path / "history.db"
    with serve(tmp_path, db, config) as (base, proc):
        with virt.qmp_qemu(vcpus=1) as qemu:
            vms = wait_ready(lambda: [v for v in httpx.get(f"{base}/api/vms", timeout=5).json()["vms"] if v["name"] == qemu.name], "the QEMU listed", proc=proc)
            vm_id = vms[0]["id"]
            wait_ready(lambda: any(a["rule"] == "vm-up" and a["state"] == "firing" for a in httpx.get(f"{base}/api/alerts", timeout=5).json()["active"]), "vm-up firing", proc=proc)
        # The QEMU is gone: the VM vanishes and its alert resolves.
        resolved = wait_ready(
            lambda: [a for a in httpx.get(f"{base}/api/alerts", timeout=5).json()["history"] if a["rule"] == "vm-up"], "vm-up resolved", proc=proc
        )
        events = wait_ready(lambda: [e for e in httpx.get(f"{base}/api/vms/events", timeout=5).json() if e["vm_id"] == vm_id and e["vanished"]] and [
            e for e in httpx.get(f"{base}/api/vms/events", timeout=5).json() if e["vm_id"] == vm_id
        ], "the VM's vanished event", proc=proc)
        assert len(events) >= 2 and events[0]["previous"] is None and events[-1]["vanished"], events
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_SECS) == 0
    with serve(tmp_path, db, config) as (base, proc):
        after = httpx.get(f"{base}/api/alerts", timeout=5).json()
        assert [a for a in after["history"] if a["rule"] == "vm-up"] == resolved
        assert not after["active"]
        assert [e for e in httpx.get(f"{base}/api/vms/events", timeout=5).json() if e["vm_id"] == vm_id] == events


@pytest.mark.server
def test_a_second_process_on_the_same_path_refuses_to_start(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    with serve(tmp_path, db) as (base, proc):
        second = subprocess.run(
            [*hvstat_exe(), "serve", "--config", str(tmp_path / "hvstat.toml"), "--port", str(free_port())],
            env=clean_env(HVSTAT_STORAGE_PATH=str(db)), capture_output=True, text=True, timeout=WAIT_SECS,
        )  # fmt: skip
        assert second.returncode == 2
        assert f"{db} is in use by another hvstat process (pid {proc.pid}" in second.stderr
        assert storage(base)["status"] == "ok"


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def live_metrics_go_on(base: str) -> None:
    r = httpx.get(f"{base}/api/monitoring/node/metrics", timeout=5)
    assert r.status_code == 200 and r.json()["cpu_usage"] is not None
    mem = node_history(base, since=time.time() - 2.5)  # this run recorded it: memory
    assert mem["tier"] == "memory" and len(mem["timestamps"]) >= 1


@pytest.mark.server
@pytest.mark.root
def test_a_full_disk_degrades_health_and_live_metrics_go_on(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "512k") as mnt:
        db = mnt / "history.db"
        with serve(tmp_path, db) as (base, proc):
            wait_ready(lambda: storage(base)["last_write"], "first write", proc=proc)
            time.sleep(3)  # a few samples into memory
            # Fill what is left of the filesystem; the next growth of the database or its log fails.
            filler = mnt / "filler"
            with contextlib.suppress(OSError), open(filler, "wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            s = wait_ready(lambda: (s := storage(base))["status"] == "degraded" and s, "storage degraded by ENOSPC", proc=proc)
            assert "full" in s["error"] and s["overall"] == "degraded" and s["pending_buckets"] >= 0
            live_metrics_go_on(base)
            time.sleep(2)
            live_metrics_go_on(base)
            # Room again: the waiting buckets are written and health comes back.
            filler.unlink()
            wait_ready(lambda: (s := storage(base))["status"] == "ok" and s["pending_buckets"] == 0, "storage ok again", proc=proc)
            assert node_history(base, since=time.time() - 20, step=5)["timestamps"]


@pytest.mark.server
@pytest.mark.root
def test_a_read_only_path_degrades_health_and_live_metrics_go_on(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", "ro") as mnt:
        with serve(tmp_path, mnt / "hvstat" / "history.db") as (base, proc):
            s = storage(base)
            assert s["status"] == "degraded" and s["overall"] == "degraded"
            assert "Read-only file system" in s["error"], s
            time.sleep(3)  # a few samples into memory
            live_metrics_go_on(base)
            assert proc.poll() is None
            assert os.listdir(mnt) == []
