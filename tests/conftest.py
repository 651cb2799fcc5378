"""Shared fixtures: node samplers, a free loopback port, and a real ``hvstat serve`` subprocess;
and the markers every test must carry (pyproject.toml lists them)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready
from hvstat._core import NodeSampler

# --- markers: `unit`, or what the test needs (pyproject.toml [tool.pytest.ini_options] says what
# each means). `pytest -m unit` runs anywhere, unprivileged, in seconds.

UNIT = "unit"
NEEDS = frozenset({"root", "cgroups", "network", "containers", "libvirt", "qemu", "server", "browser", "prometheus", "victoriametrics", "live", "terminal", "guest_host"})
# Needs that only root has on a test machine: a test marked with one of them is also marked `root`
# here, so that `-m "not root"` leaves it out and an unprivileged run skips it.
IMPLY_ROOT = frozenset({"cgroups", "network", "containers", "libvirt", "qemu", "guest_host"})
# A fixture that makes a test need something: a test using it must carry the marker.
FIXTURE_NEEDS = {"fake_containers": "cgroups", "netns_factory": "network", "libvirt_uri": "libvirt", "serve": "server", "guest": "guest_host"}


def _marker_errors(item: pytest.Item) -> list[str]:
    names = {m.name for m in item.iter_markers()}
    needs = names & NEEDS
    if UNIT in names and needs:
        return [f"{item.nodeid}: marked `unit` and also {sorted(needs)}; a unit test needs none of them"]
    if UNIT not in names and not needs:
        return [f"{item.nodeid}: no marker; mark it `unit` or with what it needs: {sorted(NEEDS)}"]
    fixtures = set(getattr(item, "fixturenames", ()))
    if "fake_containers" in fixtures:
        fixtures.discard("netns_factory")  # fake_containers depends on it only for teardown order
    return [
        f"{item.nodeid}: uses the fixture {fx!r} but is not marked `{mark}`"
        for fx, mark in FIXTURE_NEEDS.items()
        if fx in fixtures and mark not in names
    ]


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `pytest -m unit` also refuses an unmarked test
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    errors = [e for item in items for e in _marker_errors(item)]
    if errors:
        raise pytest.UsageError("tests without the right markers (see [tool.pytest.ini_options] markers in pyproject.toml):\n" + "\n".join(errors))
    unprivileged = os.geteuid() != 0
    for item in items:
        names = {m.name for m in item.iter_markers()}
        if names & IMPLY_ROOT and "root" not in names:
            item.add_marker(pytest.mark.root)
            names.add("root")
        if unprivileged and "root" in names:
            item.add_marker(pytest.mark.skip(reason="needs root (marked `root`)"))


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
def running_server(workdir: Path, config_text: str = "", env: dict[str, str] | None = None, exe: list[str] | None = None) -> Iterator[str]:
    """Start ``hvstat serve --config <file> --port <free port>`` (``exe``, default the installed
    console script), wait until /health answers, yield the base URL; always terminate and reap the
    process, also when startup fails."""
    config = workdir / "hvstat.toml"
    config.write_text(config_text)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*(exe or hvstat_exe()), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(**(env or {})),
        )
        try:
            wait_ready(http_ok(f"{base}/health"), "hvstat serve answering /health", proc=proc, log=log_path)
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


# --- containers: real cgroups, processes and network namespaces made by the test (tests/cgroups.py) ---


@pytest.fixture
def fake_containers(netns_factory: Callable[[], Any]) -> Iterator[Callable[..., Any]]:
    """Factory: ``make(rel, runtime="docker", id="")`` -> a ``cgroups.FakeContainer`` created at
    ``rel`` in every hierarchy hvstat reads. At teardown (also after a failure) its processes are
    killed and every directory it made is removed; a leftover fails the test. (It depends on
    netns_factory only so that namespaces are deleted after the processes in them are gone.)"""
    import cgroups

    reason = cgroups.why_no_cgroups()
    if reason:
        pytest.skip(reason)
    made: list[cgroups.FakeContainer] = []

    def make(rel: str, runtime: str = "docker", id: str = "") -> cgroups.FakeContainer:
        c = cgroups.FakeContainer(rel, runtime=runtime, id=id)
        made.append(c)
        return c.create()

    yield make
    errors = []
    for c in reversed(made):
        try:
            c.remove()
        except Exception as e:  # noqa: BLE001 - every container is removed before reporting
            errors.append(str(e))
    left = [str(cgroups.CGROUP_ROOT / h / c.rel) for c in made for h in cgroups.CONTROLLERS if (cgroups.CGROUP_ROOT / h / c.rel).exists()]
    assert not errors and not left, f"cleanup failed: {errors} left: {left}"


@pytest.fixture
def netns_factory() -> Iterator[Callable[[], Any]]:
    """Factory: ``make()`` -> a ``cgroups.Netns`` (namespace plus veth pair, unique names), deleted
    at teardown together with the /run/netns mount if it was the test that made it."""
    import cgroups

    made: list[cgroups.Netns] = []

    def make() -> cgroups.Netns:
        n = cgroups.Netns()
        made.append(n)
        return n.create()

    yield make
    errors = []
    for n in reversed(made):
        try:
            n.remove()
        except Exception as e:  # noqa: BLE001 - every namespace is removed before reporting
            errors.append(str(e))
    left = cgroups.leftovers([x for n in made for x in (n.name, n.tag)])
    assert not errors and not left, f"cleanup failed: {errors} left behind: {left}"


class _Released:
    """A ContainerSampler handed to a test, released at the test's teardown: a sampler keeps an fd
    open per cgroup file (about 20 per guest), and a failing test's traceback would otherwise keep
    them open through the teardown that has to remove its cgroups."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if self._inner is None:
            raise RuntimeError("the sampler was released at the end of its test")
        return getattr(self._inner, name)

    def release(self) -> None:
        self._inner = None


@pytest.fixture
def container_sampler(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory: ``make(**config)`` -> a ``hvstat._core.ContainerSampler`` on this machine's /proc and
    /sys, with every runtime's metadata root pointed at an empty directory of this test (so names
    come from what the test writes there, not from whatever this machine has installed)."""
    from hvstat._core import ContainerSampler

    meta = tmp_path / "meta"
    made: list[_Released] = []

    def make(**config: Any) -> Any:
        roots = {k: str(meta / k) for k in ("docker_root", "podman_root", "pods_log_root", "pve_root")}
        made.append(_Released(ContainerSampler(json.dumps({**roots, **config}))))
        return made[-1]

    yield make
    for s in made:
        s.release()


@pytest.fixture(scope="session", autouse=True)
def runtime_parents_removed() -> Iterator[None]:
    """A container's teardown leaves a shared parent (``/docker``, ``/system.slice``...) when
    another test's container still uses it at that moment; remove, at the end of the session, every
    such parent that did not exist before it and is empty by then."""
    import cgroups

    with cgroups.parents_cleaned("docker", "system.slice", "machine", "machine.slice", "kubepods", "lxc"):
        yield


# --- VMs: a libvirtd started by hand, real TCG/KVM domains, bare QEMU with QMP (tests/virt.py) ---


@pytest.fixture(scope="session")
def libvirt_uri() -> str:
    """The URI of a running, answering libvirtd ("qemu:///system"): virt.ensure_libvirtd() starts
    virtlogd and libvirtd when they are not running (no systemd here) and leaves them running.
    Never skips: the VM tests run in CI, whose setup installs libvirt and builds the test guest."""
    import virt

    return virt.ensure_libvirtd()
