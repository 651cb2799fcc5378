"""The lifespan gives back what it took: after a TestClient (or a restarted service in one process)
leaves, the samplers' kept-open files are closed. Each app's samplers keep hundreds of descriptors
(the process sampler one or two per process of the machine, the container sampler ~20 per guest);
a test process that creates dozens of apps ran out of them (EMFILE) before the sources dropped their
samplers on close."""

from __future__ import annotations

import gc
import os

import pytest
from starlette.testclient import TestClient

from hvstat.app import create_app
from hvstat.config import Settings

pytestmark = pytest.mark.unit


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_app_gives_its_descriptors_back_when_it_stops() -> None:
    before = open_fds()
    apps = []
    for _ in range(3):
        app = create_app(Settings())
        with TestClient(app):
            during = open_fds()
        apps.append(app)  # kept alive, as a test module's app is
    gc.collect()
    after = open_fds()
    # While running, the samplers hold many more (one per process at least: stat of each).
    assert during - before > 20, (before, during)
    # A few per app may remain (the event loop's own); the samplers' are gone.
    assert after - before <= 3 * 4, (before, during, after)
