"""Shared fixtures: node samplers, a free loopback port, and a real ``hvstat serve`` subprocess."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import WAIT_SECS, clean_env, hvstat_exe
from hvstat._core import NodeSampler


@pytest.fixture
def sampler() -> Callable[..., NodeSampler]:
    """Factory: ``sampler(config=None, prime=False)`` -> a NodeSampler bound to ``config`` (a dict
    or a JSON string; ``None`` takes the core's defaults, i.e. this machine's /proc and /sys)."""

    def make(config: dict[str, Any] | str | None = None, *, prime: bool = False) -> NodeSampler:
        if config is None:
            s = NodeSampler()
        else:
            s = NodeSampler(config if isinstance(config, str) else json.dumps(config))
        if prime:
            s.prime()
        return s

    return make


def free_port() -> int:
    """A TCP port nothing listens on right now on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    return free_port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process we started and reap it; kill it if it ignores SIGTERM."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=WAIT_SECS / 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT_SECS / 2)


@contextlib.contextmanager
def running_server(workdir: Path, config_text: str = "", env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``hvstat serve --config <file> --port <free port>``, wait until /health answers, yield
    the base URL; always terminate and reap the process, also when startup fails."""
    config = workdir / "hvstat.toml"
    config.write_text(config_text)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(**(env or {})),
        )
        try:
            deadline = time.monotonic() + WAIT_SECS
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"hvstat serve exited with {proc.returncode}:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{base}/health", timeout=2.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"hvstat serve did not answer /health within {WAIT_SECS}s:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield base
        finally:
            _stop(proc)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``hvstat serve`` on a free loopback port with a 1 s node interval; yields its base URL."""
    with running_server(
        tmp_path_factory.mktemp("serve"), env={"HVSTAT_MONITORING_NODE_METRICS_INTERVAL": "1"}
    ) as base:
        yield base
