"""The container API (/api/containers, /api/containers/{ref}/metrics, /health) over real cgroups the
test creates: through Starlette's TestClient (lifespan running) and through a real ``hvstat serve``
subprocess on loopback.

The module's containers (made once, removed at the end, also after a failure):
  web    docker/<id>             a process that touched ALLOC_MIB MiB, in its own network namespace,
                                 named by a Docker config.v2.json the test writes under docker_root
  twin1  docker/<P><52 hex>      two empty containers whose ids share the 12-character prefix P
  twin2  docker/<P><52 hex>
  pod    libpod_parent/libpod-<id>  a podman-style container with a sleeping process
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from starlette.testclient import TestClient

import cgroups
from cgroups import ALLOC, SLEEP, FakeContainer, MiB, Netns, expect_line, hex_id, py
from conftest import _stop, free_port, running_server
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready
from hvstat.app import create_app
from hvstat.config import ContainerSettings, MonitoringSettings, Settings
from hvstat.models import ContainerList, ContainerMetrics, Health

pytestmark = [pytest.mark.skipif(cgroups.why_no_cgroups() is not None, reason=str(cgroups.why_no_cgroups())), pytest.mark.cgroups, pytest.mark.network]

LIST = "/api/containers"
# The sampling loops' interval in these tests (both sources).
LOOP_INTERVAL = 1.0
# The fields every consumer may rely on (the contract): present in every metrics answer.
CONTRACT = (
    "cpu_usage_percent",
    "memory_usage_bytes",
    "memory_limit_bytes",
    "block_read_bytes",
    "block_write_bytes",
    "network_rx_bytes",
    "network_tx_bytes",
)
ALLOC_MIB = 8
# As test_api.FRESH_SECS: a sample served now was taken at most one loop interval ago.
FRESH_SECS = 5.0


def metrics(ref: str) -> str:
    return f"{LIST}/{ref}/metrics"


def _check_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body


class World:
    """The module's containers and the metadata roots hvstat is pointed at."""

    def __init__(self, meta: Path) -> None:
        self.meta = meta
        self.web_id = hex_id()
        self.web_name = f"hvt-web-{hex_id(4)}"
        self.prefix = hex_id(6)  # 12 hex characters
        self.twin_ids = sorted(self.prefix + hex_id(26) for _ in range(2))
        self.pod_id = hex_id()
        self.containers: list[FakeContainer] = []
        self.netns = Netns()

    def roots(self) -> dict[str, str]:
        return {k: str(self.meta / k) for k in ("docker_root", "podman_root", "pods_log_root", "pve_root")}

    def settings(self, **containers: Any) -> Settings:
        # Built directly (not from /etc/hvstat or the environment) so the test is hermetic.
        return Settings(
            monitoring=MonitoringSettings(node_metrics_interval=LOOP_INTERVAL, vm_metrics_interval=LOOP_INTERVAL),
            containers=ContainerSettings(**{**self.roots(), **containers}),
        )

    def toml(self) -> str:
        roots = "\n".join(f'{k} = "{v}"' for k, v in self.roots().items())
        return f"[monitoring]\nnode_metrics_interval = {LOOP_INTERVAL}\nvm_metrics_interval = {LOOP_INTERVAL}\n\n[containers]\n{roots}\n"

    def add(self, rel: str) -> FakeContainer:
        c = FakeContainer(rel)
        self.containers.append(c)
        return c.create()

    def create(self) -> None:
        # Docker's own metadata file, as hvstat reads it for the name (names.rs).
        cfg = self.meta / "docker_root" / "containers" / self.web_id / "config.v2.json"
        cfg.parent.mkdir(parents=True)
        cfg.write_text(json.dumps({"ID": self.web_id, "Name": f"/{self.web_name}", "State": {"Running": True}}))
        self.netns.create()
        web = self.add(f"docker/{self.web_id}")
        # A throttle rule makes v1 count block I/O (TESTBED 3(a)): the device is listed, with zeros.
        cgroups.activate_blkio_accounting(web, cgroups.whole_disk_of(self.meta))
        expect_line(web.spawn(py(ALLOC, ALLOC_MIB), netns=self.netns.name), "ready")
        for t in self.twin_ids:
            self.add(f"docker/{t}")
        pod = self.add(f"libpod_parent/libpod-{self.pod_id}")
        expect_line(pod.spawn(py(SLEEP)), "ready")

    def remove(self) -> None:
        errors = []
        for c in reversed(self.containers):
            try:
                c.remove()
            except Exception as e:  # noqa: BLE001 - remove everything before reporting
                errors.append(str(e))
        self.netns.remove()
        left = cgroups.leftovers([self.web_id, self.pod_id, *self.twin_ids, self.netns.name, self.netns.tag])
        assert not errors and not left, f"cleanup: {errors} left: {left}"

    @property
    def ours(self) -> set[str]:
        return {self.web_id, self.pod_id, *self.twin_ids}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("meta"))
    try:
        w.create()
        yield w
    finally:
        w.remove()


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings())) as c:
        yield c


def _listed(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in body["containers"]}


# --- TestClient --------------------------------------------------------------------------------------


def test_list_shows_each_container(client: TestClient, world: World) -> None:
    r = client.get(LIST)
    assert r.status_code == 200
    body = r.json()
    msgspec.convert(body, ContainerList)
    assert abs(body["timestamp"] - time.time()) < FRESH_SECS
    got = _listed(body)
    assert world.ours <= set(got)
    web = got[world.web_id]
    assert (web["name"], web["runtime"], web["cgroup_path"], web["state"]) == (
        world.web_name,
        "docker",
        f"/docker/{world.web_id}",
        "running",
    )
    assert web["memory_usage_bytes"] >= ALLOC_MIB * MiB
    for t in world.twin_ids:
        assert (got[t]["runtime"], got[t]["state"], got[t]["name"]) == ("docker", "empty", t[:12])
    assert (got[world.pod_id]["runtime"], got[world.pod_id]["cgroup_path"]) == ("podman", f"/libpod_parent/libpod-{world.pod_id}")


def test_list_filters_by_runtime_and_state(client: TestClient, world: World) -> None:
    docker = _listed(client.get(LIST, params={"runtime": "docker"}).json())
    assert {world.web_id, *world.twin_ids} <= set(docker) and world.pod_id not in docker
    assert {c["runtime"] for c in docker.values()} == {"docker"}
    podman = _listed(client.get(LIST, params={"runtime": "podman"}).json())
    assert world.pod_id in podman and not {world.web_id, *world.twin_ids} & set(podman)
    empty = _listed(client.get(LIST, params={"state": "empty"}).json())
    assert set(world.twin_ids) <= set(empty) and world.web_id not in empty


@pytest.mark.parametrize(("query", "what"), [("runtime=nope", "runtime"), ("state=nope", "state"), ("bogus=1", "unknown")])
def test_list_bad_query_is_400_json(client: TestClient, query: str, what: str) -> None:
    body = _check_error(client.get(f"{LIST}?{query}"), 400)
    assert what in json.dumps(body["detail"])
    if query.startswith("runtime"):
        assert "docker" in body["detail"]["allowed"]


@pytest.mark.parametrize("how", ["id", "prefix", "name"])
def test_metrics_by_id_prefix_and_name(client: TestClient, world: World, how: str) -> None:
    ref = {"id": world.web_id, "prefix": world.web_id[:12], "name": world.web_name}[how]
    r = client.get(metrics(ref))
    assert r.status_code == 200, r.text
    body = r.json()
    msgspec.convert(body, ContainerMetrics)
    assert body["id"] == world.web_id and body["name"] == world.web_name
    missing = [k for k in CONTRACT if k not in body]
    assert not missing, missing
    # The container existed before the app started: the source primed, so even the first answer
    # has a rate; it has its own network namespace, so its counters are there too.
    assert isinstance(body["cpu_usage_percent"], float) and 0 <= body["cpu_usage_percent"] <= 100
    assert body["memory_usage_bytes"] >= ALLOC_MIB * MiB
    assert body["memory_limit_bytes"] == "max"
    for k in ("block_read_bytes", "block_write_bytes", "network_rx_bytes", "network_tx_bytes"):
        assert isinstance(body[k], int) and body[k] >= 0, k
    assert body["network_mode"] == "own" and body["network_interfaces"] == [world.netns.guest_if]


def test_unknown_container_is_404_json(client: TestClient) -> None:
    ref = hex_id()
    body = _check_error(client.get(metrics(ref)), 404)
    assert body["detail"]["ref"] == ref


def test_short_prefix_is_not_a_match(client: TestClient, world: World) -> None:
    # Shorter than docker's 12-character short id: too likely to match by accident.
    _check_error(client.get(metrics(world.web_id[:8])), 404)


def test_shared_prefix_is_409_json(client: TestClient, world: World) -> None:
    body = _check_error(client.get(metrics(world.prefix)), 409)
    assert body["detail"]["matches"] == world.twin_ids
    # One more character tells them apart (the two ids differ there with probability 15/16; when
    # they do not, take the first position where they differ).
    n = next(i for i, (a, b) in enumerate(zip(*world.twin_ids)) if a != b) + 1
    for t in world.twin_ids:
        r = client.get(metrics(t[:n]))
        assert r.status_code == 200 and r.json()["id"] == t


def test_health_lists_the_containers_source(client: TestClient) -> None:
    health = msgspec.convert(client.get("/health").json(), Health)
    src = {s.name: s for s in health.sources}
    assert "containers" in src
    c = src["containers"]
    assert c.status == "ok" and c.error is None and c.interval_secs == LOOP_INTERVAL
    assert c.last_success is not None and time.time() - c.last_success < FRESH_SECS


def test_container_appears_and_vanishes_while_running(
    client: TestClient, world: World, fake_containers: Callable[..., Any]
) -> None:
    cid = hex_id()
    c = fake_containers(f"docker/{cid}")
    expect_line(c.spawn(py(SLEEP)), "ready")
    deadline = time.monotonic() + WAIT_SECS
    while cid not in _listed(client.get(LIST).json()):
        assert time.monotonic() < deadline, f"{cid} never listed"
        time.sleep(0.2)
    assert client.get(metrics(cid)).status_code == 200
    c.remove()
    while cid in _listed(client.get(LIST).json()):
        assert time.monotonic() < deadline, f"{cid} still listed after removal"
        time.sleep(0.2)
    _check_error(client.get(metrics(cid)), 404)
    assert msgspec.convert(client.get("/health").json(), Health).status == "ok"


def test_disabled_containers_are_404_with_a_clear_error(world: World) -> None:
    with TestClient(create_app(world.settings(enabled=False))) as c:
        for path in (LIST, metrics(world.web_id)):
            body = _check_error(c.get(path), 404)
            assert body["error"] == "container monitoring is disabled"
            assert body["detail"] == {"setting": "containers.enabled"}
        names = [s["name"] for s in c.get("/health").json()["sources"]]
        assert "containers" not in names and "node" in names


# --- the real server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("serve-containers"), world.toml()) as base:
        yield base


@pytest.mark.server
def test_served_list_and_lookups(served: str, world: World) -> None:
    r = httpx.get(f"{served}{LIST}", timeout=10)
    assert r.status_code == 200
    got = _listed(r.json())
    assert world.ours <= set(got)
    assert got[world.web_id]["name"] == world.web_name
    docker = _listed(httpx.get(f"{served}{LIST}", params={"runtime": "docker"}, timeout=10).json())
    assert world.pod_id not in docker and world.web_id in docker
    for ref in (world.web_id, world.web_id[:12], world.web_name):
        r = httpx.get(f"{served}{metrics(ref)}", timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == world.web_id
        assert not [k for k in CONTRACT if k not in body]
        assert body["memory_usage_bytes"] >= ALLOC_MIB * MiB


@pytest.mark.server
def test_served_errors(served: str, world: World) -> None:
    _check_error(httpx.get(f"{served}{LIST}?runtime=nope", timeout=10), 400)
    _check_error(httpx.get(f"{served}{metrics(hex_id())}", timeout=10), 404)
    body = _check_error(httpx.get(f"{served}{metrics(world.prefix)}", timeout=10), 409)
    assert body["detail"]["matches"] == world.twin_ids


@pytest.mark.server
def test_served_health_lists_containers(served: str) -> None:
    health = httpx.get(f"{served}/health", timeout=10).json()
    src = {s["name"]: s for s in health["sources"]}
    assert src["containers"]["status"] == "ok"
    assert src["containers"]["interval_secs"] == LOOP_INTERVAL, "vm_metrics_interval from the config file not applied"


@pytest.mark.server
def test_served_disabled(world: World, tmp_path: Path) -> None:
    with running_server(tmp_path, world.toml() + "enabled = false\n") as base:
        body = _check_error(httpx.get(f"{base}{LIST}", timeout=10), 404)
        assert body["error"] == "container monitoring is disabled"



# A host with this many guests is ordinary (a Kubernetes node runs up to 110 pods, each with a pause
# container besides its own).
MANY = 100
# systemd's default soft RLIMIT_NOFILE for services (LimitNOFILE=1024:524288): kept at 1024 for
# select(); programs that need more are to raise their soft limit up to the hard one themselves
# (systemd.exec(5), LimitNOFILE=).
SERVICE_SOFT_NOFILE = 1024
# hvstat serve answers /health about a second after it starts here; 20 s is generous, and keeps the
# test short while the bug makes it wait for an answer that never comes.
STARTUP_SECS = 20.0


@pytest.mark.server
@pytest.mark.parametrize("limit", ["systemd", "hard-512"])
def test_served_with_many_guests_under_an_fd_limit(world: World, fake_containers: Callable[..., Any], tmp_path: Path, limit: str) -> None:
    """``systemd``: the limits a service gets by default (soft 1024, the hard limit high), which
    hvstat serve raises. ``hard-512``: a hard limit it cannot raise, below what the guests' kept
    files need (~18 each): the samplers keep what the keep budget allows and open the rest per read,
    a reserve stays free, so the listening socket exists and every guest is read. (Before the
    budget, the first samples took every fd, asyncio created no listening socket and said nothing:
    a deaf service.)"""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limit == "systemd" and hard != resource.RLIM_INFINITY and hard < 30 * MANY:
        pytest.skip(f"the hard fd limit ({hard}) is too low for {MANY} guests even when raised")
    nofile = f"{SERVICE_SOFT_NOFILE}:{hard}" if limit == "systemd" else "512:512"
    ids = sorted(hex_id() for _ in range(MANY))
    for cid in ids:
        fake_containers(f"docker/{cid}")
    config = tmp_path / "hvstat.toml"
    config.write_text(world.toml())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    # prlimit(1) sets the limits for the server only.
    argv = ["prlimit", f"--nofile={nofile}", "--", *hvstat_exe(), "serve", "--config", str(config), "--port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    try:
        wait_ready(http_ok(f"{base}/health"), f"hvstat serve with {MANY} guests ({nofile} fds) answering /health", timeout=STARTUP_SECS, every=0.2, proc=proc, log=log_path)
        if limit == "hard-512":
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            assert fds <= 512 - 128, f"{fds} fds open: the reserve is taken"
        listed = _listed(httpx.get(f"{base}{LIST}", timeout=10).json())
        assert set(ids) <= set(listed)
        no_memory = [cid for cid in ids if listed[cid]["memory_usage_bytes"] is None]
        body = httpx.get(f"{base}{metrics(ids[-1])}", timeout=10).json()
        assert not no_memory, f"{len(no_memory)} of {MANY} guests without memory; e.g. {body['unavailable']}"
        assert not [v for v in body["unavailable"].values() if "Too many open files" in v], body["unavailable"]
    finally:
        _stop(proc)
