"""VMs end to end against real components: a real libvirtd with real QEMU/TCG guests (a tiny Linux
that spins, or does disk and network I/O), a bare QEMU with a QMP socket, and a real
``hvstat serve``. The oracle is ``virsh domstats`` of the same domain, read just before and just
after hvstat's sample (so that every cumulative value hvstat reports must lie between the two).
tests/virt.py makes and removes the guests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

import virt
from conftest import running_server
from helpers import WAIT_SECS, wait_ready

pytestmark = [pytest.mark.libvirt, pytest.mark.server]

INTERVAL = 1.0


def wait_for(predicate: Any, timeout: float = WAIT_SECS, every: float = 0.2) -> Any:
    return wait_ready(predicate, str(predicate), timeout=timeout, every=every)


# Where tests/virt.py's bare QEMUs put the QMP socket meant for the code under test.
QMP_GLOB = "/tmp/hvstat-vm-*/hvstat-qmp-*.qmp"


@pytest.fixture(scope="module")
def vm_server(tmp_path_factory: pytest.TempPathFactory, libvirt_uri: str) -> Iterator[str]:
    """hvstat serve with 1 s ticks and libvirt required (it must be reachable)."""
    config = f"""
[monitoring]
node_metrics_interval = 1
vm_metrics_interval = {INTERVAL}

[vms]
libvirt = "on"
libvirt_uri = "{libvirt_uri}"
qmp_sockets = ["{QMP_GLOB}"]
"""
    with running_server(tmp_path_factory.mktemp("vmserve"), config) as base:
        yield base


def vm(base: str, ref: str) -> dict[str, Any] | None:
    r = httpx.get(f"{base}/api/vms/{ref}/metrics", timeout=5)
    return r.json() if r.status_code == 200 else None


def fresh_vm(base: str, ref: str, after: float, pred: Any = lambda v: True) -> dict[str, Any]:
    """The VM's first sample taken after unix time ``after`` that satisfies ``pred``."""
    return wait_for(lambda: (v := vm(base, ref)) is not None and v["timestamp"] > after and pred(v) and v)


def test_busy_guest_against_virsh_domstats(vm_server: str) -> None:
    with virt.libvirt_domain(mode="busy", vcpus=1) as dom:
        dom.wait_ready(60)
        time.sleep(2 * INTERVAL)
        before = dom.virsh_domstats()
        t0 = time.time()
        v = fresh_vm(vm_server, dom.uuid, t0, lambda v: v["cpu_usage_percent"] is not None)
        after = dom.virsh_domstats()

        assert (v["id"], v["name"], v["origin"], v["status"]) == (dom.uuid, dom.name, "libvirt", "running")
        assert v["vcpus"] == 1 == after["vcpu.current"]
        assert before["cpu.time"] / 1e9 <= v["cpu_secs_total"] <= after["cpu.time"] / 1e9
        (vcpu,) = v["vcpu"]
        assert vcpu["origin"] == "libvirt"
        assert before["vcpu.0.time"] / 1e9 <= vcpu["cpu_secs_total"] <= after["vcpu.0.time"] / 1e9
        assert before["vcpu.0.delay"] / 1e9 <= vcpu["steal_secs_total"] <= after["vcpu.0.delay"] / 1e9
        # A guest whose every CPU spins: its one vCPU is busy (TCG on a shared 2-core machine, so
        # not exactly 100; the oracle is the vCPU time libvirt reports over the same seconds).
        assert vcpu["cpu_percent"] > 50, vcpu
        assert v["cpu_vcpu_percent"] > 50
        assert 0 < v["cpu_usage_percent"] <= 100
        assert v["memory_max_bytes"] == after["balloon.maximum"] * 1024
        # The host's side: the QEMU process libvirt started.
        pid = int(Path(f"/run/libvirt/qemu/{dom.name}.pid").read_text())
        p = v["process"]
        assert p["pid"] == pid and p["rss_bytes"] > 10 * 2**20 and p["threads"] >= 2
        assert v["memory_rss_bytes"] == p["rss_bytes"]
        assert "machine" in p["cgroup_path"]
        # Its cgroup: the machine's scope enclosing QEMU's emulator sub-cgroup, read by the VM
        # sampler in the VM's own tick, with real numbers.
        cg = v["cgroup"]
        assert cg is not None and p["cgroup_path"].startswith(cg["cgroup_path"] + "/"), (cg, p["cgroup_path"])
        assert cg["cgroup_path"].startswith("/machine/qemu-") and cg["cgroup_path"].endswith(f"-{dom.name}.libvirt-qemu"), cg
        assert "container_id" not in cg
        # The memory the kernel charges to the scope (not QEMU's RSS: shared pages are charged to
        # whoever touched them first), as its own file says a moment later.
        mem_dir = Path("/sys/fs/cgroup/memory") / cg["cgroup_path"].lstrip("/")
        assert cg["memory_usage_bytes"] > 32 * 2**20, cg
        assert abs(cg["memory_usage_bytes"] - int((mem_dir / "memory.usage_in_bytes").read_text())) < 64 * 2**20, cg
        # A busy vCPU: the scope's CPU is the guest's, as a share of the host like the VM's own.
        assert cg["cpu_usage_percent"] is not None and 0 < cg["cpu_usage_percent"] <= 100, cg
        assert cg["cpu_usage_percent"] == pytest.approx(v["cpu_usage_percent"], abs=25), (cg, v["cpu_usage_percent"])
        # One guest, one row: the VM's scope is not a container.
        containers = httpx.get(f"{vm_server}/api/containers").json()["containers"]
        assert not [c for c in containers if c["cgroup_path"].startswith(cg["cgroup_path"]) or dom.name in c["name"]], containers

        # Lookups by name and by upper-case UUID; unknown refs are a 404 with a JSON body.
        assert vm(vm_server, dom.name)["id"] == dom.uuid
        assert vm(vm_server, dom.uuid.upper())["id"] == dom.uuid
        r = httpx.get(f"{vm_server}/api/vms/no-such-vm/metrics")
        assert r.status_code == 404 and r.json()["error"] == "no such VM"
        listed = httpx.get(f"{vm_server}/api/vms").json()["vms"]
        assert dom.uuid in {x["id"] for x in listed}


def test_io_guest_disk_network_and_balloon(vm_server: str) -> None:
    with virt.libvirt_domain(mode="io", vcpus=1) as dom:
        dom.wait_ready(60)
        # Balloon stats come every second once the guest driver reports.
        wait_for(lambda: dom.virsh_domstats().get("balloon.last-update", 0) > 0, 30)
        time.sleep(3 * INTERVAL)
        before = dom.virsh_domstats()
        t0 = time.time()
        v = fresh_vm(vm_server, dom.uuid, t0, lambda v: v["disk_write_bytes_per_sec"] is not None)
        after = dom.virsh_domstats()

        (disk,) = v["disks"]
        assert disk["name"] == "vda"
        for ours, theirs in (("read_bytes", "rd.bytes"), ("write_bytes", "wr.bytes"), ("read_ops", "rd.reqs"), ("write_ops", "wr.reqs")):
            assert before[f"block.0.{theirs}"] <= disk[ours] <= after[f"block.0.{theirs}"], ours
        assert v["disk_write_bytes"] == disk["write_bytes"] and v["disk_read_bytes"] == disk["read_bytes"]
        assert disk["write_bytes"] > 0 and disk["capacity_bytes"] == after["block.0.capacity"]

        (nic,) = v["nics"]
        assert (nic["name"], nic["origin"]) == (dom.tap, "libvirt")
        assert before["net.0.tx.bytes"] <= nic["tx_bytes"] <= after["net.0.tx.bytes"]
        assert nic["tx_bytes"] > 0  # the guest pings and fetches from its gateway every second
        assert v["network_tx_bytes"] == nic["tx_bytes"]

        # The guest's own memory view.
        avail, usable = v["memory_available_bytes"], v["memory_usable_bytes"]
        assert avail is not None and usable is not None and 0 < usable <= avail
        assert v["memory_usage_percent"] == pytest.approx((avail - usable) / avail * 100)
        assert avail in {before["balloon.available"] * 1024, after["balloon.available"] * 1024}

        # The tap is the VM's: in the node's interfaces it is virtual, and not in the total.
        node = httpx.get(f"{vm_server}/api/monitoring/node/metrics").json()
        kinds = {i["name"]: i["kind"] for i in node["interfaces"]}
        assert kinds.get(dom.tap) == "virtual"
        assert dom.tap not in node["network"]["interfaces"]


def test_pause_resume_and_destroy_are_status_changes(vm_server: str) -> None:
    with virt.libvirt_domain(mode="idle", vcpus=1) as dom:
        dom.wait_ready(60)
        fresh_vm(vm_server, dom.uuid, time.time() - 60)
        t0 = time.time()
        virt.virsh("suspend", dom.name)
        v = fresh_vm(vm_server, dom.uuid, t0, lambda v: v["status"] == "paused")
        assert v["status_reason"] == "user"
        assert v["cpu_usage_percent"] is None or v["cpu_usage_percent"] < 5
        virt.virsh("resume", dom.name)
        fresh_vm(vm_server, dom.uuid, time.time(), lambda v: v["status"] == "running")
        uuid = dom.uuid
    # Out of the with: the transient domain is destroyed and gone.
    events = wait_for(
        lambda: [e for e in httpx.get(f"{vm_server}/api/vms/events", params={"since": t0}).json() if e["vm_id"] == uuid and e["vanished"]]
        and httpx.get(f"{vm_server}/api/vms/events", params={"since": t0}).json()
    )
    mine = [(e["previous"], e["status"], e["vanished"]) for e in events if e["vm_id"] == uuid]
    assert ("running", "paused", False) in mine
    assert ("paused", "running", False) in mine
    assert mine[-1][2] is True  # vanished, last
    # No change is reported twice (the libvirt event and the next tick see the same change).
    changes = [m for m in mine if not m[2]]
    assert len(changes) == len(set(changes)), mine
    assert vm(vm_server, uuid) is None


@pytest.mark.parametrize(
    ("path", "params", "error"),
    [
        ("/api/vms", {"origin": "xen"}, "unknown origin"),
        ("/api/vms", {"status": "asleep"}, "unknown status"),
        ("/api/vms", {"bogus": "1"}, "unknown query parameter"),
        ("/api/vms/events", {"since": "yesterday"}, "bad since"),
        ("/api/vms/events", {"since": "nan"}, "bad since"),
        ("/api/vms/no-such-vm/metrics", {"fields": "x"}, "unknown query parameter"),
    ],
)
def test_vm_routes_answer_bad_parameters_with_400(vm_server: str, path: str, params: dict[str, str], error: str) -> None:
    r = httpx.get(f"{vm_server}{path}", params=params, timeout=10)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json"), r.text
    assert r.json()["error"] == error, r.json()


def test_vm_list_filters(vm_server: str) -> None:
    with virt.libvirt_domain(mode="idle", vcpus=1) as dom:
        dom.wait_ready(60)
        fresh_vm(vm_server, dom.uuid, time.time() - 60)
        for params, present in (({"origin": "libvirt"}, True), ({"origin": "qmp"}, False), ({"status": "running"}, True), ({"status": "paused"}, False)):
            ids = {v["id"] for v in httpx.get(f"{vm_server}/api/vms", params=params, timeout=10).json()["vms"]}
            assert (dom.uuid in ids) is present, params


def history(base: str, ref: str, **params: str) -> httpx.Response:
    return httpx.get(f"{base}/api/vms/{ref}/history", params=params, timeout=10)


def test_history_by_every_reference_and_after_the_vm_vanished(vm_server: str) -> None:
    with virt.libvirt_domain(mode="busy", vcpus=1) as dom:
        dom.wait_ready(60)
        wait_for(lambda: len(history(vm_server, dom.uuid).json().get("timestamps", ())) >= 3)
        for ref in (dom.uuid, dom.uuid.upper(), dom.name):
            r = history(vm_server, ref)
            assert r.status_code == 200, r.text
            h = r.json()
            assert (h["entity"], h["name"], h["resolution"]) == (f"vm:{dom.uuid}", dom.name, "full")
        # The busy guest's CPU is in its history, as the metrics route served it.
        cpu = history(vm_server, dom.uuid, fields="cpu_vcpu_percent").json()
        assert list(cpu["series"]) == ["cpu_vcpu_percent"]
        assert max(x for x in cpu["series"]["cpu_vcpu_percent"] if x is not None) > 50
        latest = vm(vm_server, dom.uuid)
        assert latest is not None and latest["timestamp"] >= cpu["timestamps"][-1]
        stats = history(vm_server, dom.name, step="60", fields="memory_rss_bytes").json()
        assert stats["resolution"] == "min/avg/max" and type(stats["series"]["memory_rss_bytes"]["max"][-1]) is int
        for params, error in (({"fields": "cpu_usage"}, "unknown field in 'fields'"), ({"since": "9", "until": "1"}, "bad range"), ({"x": "1"}, "unknown query parameter")):
            r = history(vm_server, dom.uuid, **params)
            assert r.status_code == 400 and r.json()["error"] == error, r.text
        uuid, name = dom.uuid, dom.name
    # Destroyed (transient: gone): its history stays reachable by its id, and grows no more.
    wait_for(lambda: vm(vm_server, uuid) is None)
    gone = history(vm_server, uuid)
    assert gone.status_code == 200 and gone.json()["entity"] == f"vm:{uuid}"
    time.sleep(2 * INTERVAL)
    assert history(vm_server, uuid).json()["timestamps"] == gone.json()["timestamps"]
    r = history(vm_server, name)
    assert r.status_code == 404 and r.json()["error"] == "no such VM"


def test_pause_is_pushed_on_the_websocket(vm_server: str) -> None:
    ws_url = vm_server.replace("http", "ws", 1) + "/ws"

    async def run(dom: Any) -> list[dict[str, Any]]:
        async with websockets.connect(ws_url) as ws:
            json.loads(await ws.recv())  # hello
            await ws.send(json.dumps({"type": "subscribe", "topics": [f"vm:{dom.uuid}"]}))
            got: list[dict[str, Any]] = []
            t_pause = time.monotonic()
            await asyncio.to_thread(virt.virsh, "suspend", dom.name)
            while time.monotonic() - t_pause < 10:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                got.append(m)
                if m["type"] == "VmStatusChanged" and m["status"] == "paused":
                    # libvirt's lifecycle event: well before the next tick would have seen it.
                    assert time.monotonic() - t_pause < INTERVAL + 1
                    return got
            return got

    with virt.libvirt_domain(mode="idle", vcpus=1) as dom:
        dom.wait_ready(60)
        fresh_vm(vm_server, dom.uuid, time.time() - 60)
        got = asyncio.run(run(dom))
        changed = [m for m in got if m["type"] == "VmStatusChanged"]
        assert changed and changed[-1]["status"] == "paused" and changed[-1]["vm_id"] == dom.uuid, got
        metrics = [m for m in got if m["type"] == "VmMetrics"]
        assert all(m["vm_id"] == dom.uuid for m in metrics)


def test_libvirtd_restart_is_survived(vm_server: str) -> None:
    with virt.libvirt_domain(mode="idle", vcpus=1) as dom:
        dom.wait_ready(60)
        fresh_vm(vm_server, dom.uuid, time.time() - 60)
        virt.restart_libvirtd()
        t0 = time.time()
        # Samples of the same (still running) domain resume by themselves.
        v = fresh_vm(vm_server, dom.uuid, t0 + INTERVAL, lambda v: v["status"] == "running" and v["cpu_secs_total"] is not None)
        assert v["origin"] == "libvirt"
        health = wait_for(lambda: (h := httpx.get(f"{vm_server}/health").json()) and [s for s in h["sources"] if s["name"] == "vms" and s["status"] == "ok"] and h)
        assert health["status"] in {"ok", "degraded"}


@pytest.mark.qemu
def test_bare_qemu_over_qmp(vm_server: str) -> None:
    with virt.qmp_qemu(vcpus=2) as q:
        t0 = time.time()
        v = fresh_vm(vm_server, q.name, t0, lambda v: v["cpu_usage_percent"] is not None)
        assert (v["origin"], v["status"]) == ("qmp", "running")
        assert v["process"]["pid"] == q.pid
        assert v["vcpus"] == 2
        assert sorted(c["tid"] for c in v["vcpu"]) == sorted(c["thread-id"] for c in q.qmp("query-cpus-fast"))
        assert {c["origin"] for c in v["vcpu"]} == {"thread"}
        assert v["disks"] and v["memory_balloon_bytes"] == q.qmp("query-balloon")["actual"]
        # By its QMP id (the socket's name), in the REST routes and in history.
        h = wait_for(lambda: (r := history(vm_server, q.name)).status_code == 200 and len(r.json()["timestamps"]) >= 2 and r.json())
        assert h["entity"] == f"vm:{q.name}"



def test_kvm_guest_reports_kvm_exits(vm_server: str) -> None:
    """A firmware-only KVM domain (a booted Linux is too slow under this machine's nested KVM):
    libvirt's vcpu.<n>.exits.sum counters become per-second rates."""
    with virt.libvirt_domain(mode=None, kind="kvm", vcpus=1) as dom:
        v = fresh_vm(vm_server, dom.uuid, time.time(), lambda v: v["vcpu"] and v["vcpu"][0]["kvm_exits_per_sec"] is not None)
        stats = dom.virsh_domstats()
        assert "vcpu.0.exits.sum" in stats
        assert v["vcpu"][0]["kvm_exits_per_sec"] >= 0
        assert v["status"] == "running"
