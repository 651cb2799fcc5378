"""The VM test bed (tests/virt.py) works: real TCG guests under a libvirtd we start, a bare QEMU
answering QMP, and a libvirtd restart that running domains survive. Each test also checks that
the VM left nothing behind. Guests boot to READY in about 3 s; destroying a libvirt domain takes
about 2 s here (libvirt waits until this machine's PID 1 reaps QEMU)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import virt

WINDOW_SECS = 2.0  # how long a rate is measured over
GROW_SECS = 15.0  # how long a counter gets to start growing (the io guest acts once a second)


def _grown(
    sample: Callable[[], dict[str, Any]], keys: tuple[str, ...], timeout: float = GROW_SECS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first sample, and the first later one in which every key in ``keys`` has grown."""
    first = sample()
    deadline = time.monotonic() + timeout
    while True:
        now = sample()
        if all(now.get(k, 0) > first.get(k, 0) for k in keys) or time.monotonic() > deadline:
            return first, now
        time.sleep(0.5)


@pytest.mark.libvirt
def test_busy_tcg_guest_burns_vcpu_time(libvirt_uri: str) -> None:
    with virt.libvirt_domain("busy") as dom:
        assert "mode=busy" in dom.wait_ready()
        before, t0 = dom.virsh_domstats(), time.monotonic()
        time.sleep(WINDOW_SECS)
        after, t1 = dom.virsh_domstats(), time.monotonic()
        assert after["state.state"] == 1  # running
        per_sec = (after["vcpu.0.time"] - before["vcpu.0.time"]) / 1e9 / (t1 - t0)
        assert per_sec > 0.5, f"vcpu.0.time grew {per_sec:.2f} s/s: {before['vcpu.0.time']} -> {after['vcpu.0.time']}"
        token, tap = dom.token, dom.tap
    assert virt.leftovers(token) == []
    assert tap and not Path("/sys/class/net", tap).exists()


@pytest.mark.libvirt
def test_io_guest_writes_its_disk_sends_on_its_nic_and_reports_balloon_stats(libvirt_uri: str) -> None:
    with virt.libvirt_domain("io") as dom:
        dom.wait_ready()
        keys = ("block.0.wr.bytes", "block.0.rd.bytes", "net.0.tx.bytes")
        before, after = _grown(dom.virsh_domstats, keys)
        assert {k: (before.get(k), after.get(k)) for k in keys if after.get(k, 0) <= before.get(k, 0)} == {}
        assert after["block.0.name"] == "vda" and after["net.0.name"] == dom.tap
        # virtio_balloon is loaded in the guest: the guest's own memory stats arrive
        _, stats = _grown(dom.virsh_domstats, ("balloon.last-update",))
        assert stats["balloon.last-update"] > 0 and 0 < stats["balloon.available"] <= 128 * 1024, stats
        token = dom.token
    assert virt.leftovers(token) == []


@pytest.mark.qemu
def test_bare_qemu_answers_qmp() -> None:
    with virt.qmp_qemu(vcpus=1, tap=True) as vm:
        assert vm.qmp("query-status")["status"] == "running"
        # the main socket is free for the code under test (the helper uses a second one)
        assert virt.qmp_call(vm.qmp_path, "query-name") == {"name": vm.name}
        threads = {p.read_text().strip() for p in Path(f"/proc/{vm.pid}/task").glob("*/comm")}
        assert "CPU 0/TCG" in threads  # -name ...,debug-threads=on
        assert Path("/sys/class/net", str(vm.tap)).exists()
        token = vm.token
    assert virt.leftovers(token) == []


@pytest.mark.libvirt
def test_running_domain_survives_libvirtd_restart(libvirt_uri: str) -> None:
    with virt.libvirt_domain(None) as dom:  # firmware only: nothing to boot, fast
        pid, daemon = dom.pid, Path("/run/libvirtd.pid").read_text().strip()
        virt.restart_libvirtd()
        assert Path("/run/libvirtd.pid").read_text().strip() != daemon
        assert dom.state() == "running"
        assert dom.pid == pid
        assert dom.virsh_domstats()["state.state"] == 1
        token = dom.token
    assert virt.leftovers(token) == []
