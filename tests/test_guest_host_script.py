"""scripts/guest-host without a guest: what it answers when nothing runs (no QEMU, no root needed).
The guest itself is tested by tests/test_guest_host.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

GUEST_HOST = Path(__file__).resolve().parent.parent / "scripts" / "guest-host"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "GUEST_HOST_RUN": str(tmp_path / "g")}
    return subprocess.run([str(GUEST_HOST), *args], capture_output=True, text=True, timeout=30, env=env)


def test_run_without_a_guest_is_255_like_ssh_failing(tmp_path: Path) -> None:
    p = _run(tmp_path, "run", "--", "true")
    assert p.returncode == 255 and "no guest running" in p.stderr


def test_status_and_stop_without_a_guest(tmp_path: Path) -> None:
    assert _run(tmp_path, "status").returncode == 1
    p = _run(tmp_path, "stop")
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / "g").exists()


def test_unknown_command_prints_the_usage(tmp_path: Path) -> None:
    p = _run(tmp_path, "bogus")
    assert p.returncode == 2 and "scripts/guest-host start" in p.stderr
