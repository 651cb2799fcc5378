"""``hvstat report`` from the history database of a real run: ``hvstat serve`` with 1-second
buckets ([[storage.tiers]]), a busy and an idle cgroup guest, an alert rule that fires on the busy
one and resolves when its process is killed; then the report, without a server, in all three
formats."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cgroups
from conftest import running_server
from helpers import WAIT_SECS, clean_env, hvstat_exe, wait_ready
from test_top import docker_guest, write_config


def report(config: Path, db: Path, fmt: str) -> str:
    p = subprocess.run(
        [*hvstat_exe(), "report", "--config", str(config), "--since", "1h", "--format", fmt],
        capture_output=True, text=True, timeout=WAIT_SECS, env=clean_env(HVSTAT_STORAGE_PATH=str(db)),
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.server
@pytest.mark.cgroups
def test_report_of_a_real_run(tmp_path: Path, fake_containers: Any) -> None:
    busy, idle = f"busy-{secrets.token_hex(3)}", f"idle-{secrets.token_hex(3)}"
    busy_id, busy_proc = docker_guest(tmp_path, fake_containers, busy, cgroups.BUSY)
    docker_guest(tmp_path, fake_containers, idle, cgroups.SLEEP)
    config = write_config(tmp_path)
    db = tmp_path / "history.db"
    with config.open("a") as f:
        f.write(
            "\n[[storage.tiers]]\nbucket = 1\nspan = 3600\n\n[[storage.tiers]]\nbucket = 60\nspan = 86400\n"
            f'\n[[alerts.rules]]\nname = "guest-busy"\nmetric = "container.cpu_usage_percent"\nop = ">"\nthreshold = 5\n'
            f'severity = "high"\nselect = {{ name = "{busy}" }}\n'
        )
    with running_server(tmp_path, config.read_text(), env={"HVSTAT_STORAGE_PATH": str(db)}) as base:
        wait_ready(lambda: any(a["rule"] == "guest-busy" for a in httpx.get(f"{base}/api/alerts").json()["active"]), "the alert firing")
        time.sleep(3)
        busy_proc.kill()
        busy_proc.wait(timeout=WAIT_SECS)
        wait_ready(lambda: any(a["rule"] == "guest-busy" for a in httpx.get(f"{base}/api/alerts").json()["history"]), "the alert resolved")
        time.sleep(2.5)  # a few more closed 1 s buckets on disk
    rep = json.loads(report(config, db, "json"))
    assert rep["tier"] == "1s"
    node = rep["node"]
    assert node["cpu_usage"]["avg"] is not None and node["cpu_usage"]["peak"] >= node["cpu_usage"]["avg"]
    by_name = {c["name"]: c for c in rep["containers"]}
    assert busy in by_name and idle in by_name, sorted(by_name)
    # The busy loop took most of a core while it ran (cpu_usage_percent is of the whole host).
    assert by_name[busy]["cpu"]["peak"] > 100 / (os.cpu_count() or 1) / 2, by_name[busy]
    assert by_name[busy]["cpu"]["avg"] > by_name[idle]["cpu"]["avg"]
    assert by_name[busy]["memory"]["peak"] > 0
    fired = [a for a in rep["alerts"] if a["rule"] == "guest-busy"]
    assert len(fired) == 1 and fired[0]["entity"] == f"container:{busy_id}", rep["alerts"]
    assert fired[0]["resolved_at"] is not None and 2.5 < fired[0]["duration_secs"] < WAIT_SECS

    text = report(config, db, "text")
    lines = text.splitlines()
    assert lines[0].startswith("hvstat report ") and "1s buckets" in lines[0]
    top_cpu = lines.index(next(line for line in lines if line.startswith("Containers: top 10 by CPU")))
    assert lines[top_cpu + 3].split()[0] == busy, text  # title, rule, header, then the busiest guest
    assert any(line.startswith("CPU %") for line in lines)
    alert_line = next(line for line in lines if "guest-busy" in line)
    assert "high" in alert_line and busy in alert_line
    assert max(len(line) for line in lines[2:]) <= 100, "text for an email: no line wider than 100 columns"

    md = report(config, db, "markdown")
    assert md.startswith("# hvstat report ")
    assert "## Node" in md and "| metric | average | peak |" in md and f"| {busy} |" in md


@pytest.mark.unit
def test_report_without_a_database(tmp_path: Path) -> None:
    p = subprocess.run(
        [*hvstat_exe(), "report", "--since", "24h"], capture_output=True, text=True, timeout=WAIT_SECS,
        env=clean_env(HVSTAT_STORAGE_PATH=str(tmp_path / "none.db")),
    )
    assert p.returncode == 1 and "does not exist" in p.stderr
