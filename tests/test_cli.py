"""The ``hvstat`` command line, run as a real subprocess."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import time
from pathlib import Path

import msgspec
import pytest

from helpers import WAIT_SECS, clean_env, hvstat_exe
from hvstat.models import NodeMetrics

pytestmark = pytest.mark.unit


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*hvstat_exe(), *args], capture_output=True, text=True, timeout=WAIT_SECS, env=clean_env(), stdin=subprocess.DEVNULL
    )


def test_snapshot_prints_one_node_sample(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("")
    t0 = time.time()
    r = run_cli("snapshot", "--config", str(config))
    t1 = time.time()
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, "one JSON document on one line"
    sample = msgspec.json.decode(r.stdout, type=NodeMetrics)
    assert sample.cpu_usage is not None, sample.unavailable
    assert sample.interval_secs is not None and sample.interval_secs > 0
    assert "rates" not in sample.unavailable
    assert t0 <= sample.timestamp <= t1
    assert sample.cpu is not None and sample.cpu.count > 0


def test_snapshot_pretty_is_the_same_document(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("")
    r = run_cli("snapshot", "--config", str(config), "--pretty", "--interval", "0.2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") > 10
    msgspec.json.decode(r.stdout, type=NodeMetrics)
    assert set(json.loads(r.stdout)) == {f.name for f in msgspec.structs.fields(NodeMetrics)}


def test_version() -> None:
    r = run_cli("--version")
    assert r.returncode == 0
    # The installed distribution's version (from Cargo via maturin), not the module's own claim.
    assert r.stdout.strip() == f"hvstat {importlib.metadata.version('hvstat')}"


def test_help() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("serve", "snapshot", "check-config", "--version"):
        assert word in r.stdout
    r = run_cli("serve", "--help")
    assert r.returncode == 0
    for opt in ("--config", "--host", "--port"):
        assert opt in r.stdout


def test_no_command_is_a_usage_error() -> None:
    r = run_cli()
    assert r.returncode == 2
    assert "usage" in r.stderr.lower()
