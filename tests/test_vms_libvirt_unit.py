"""The libvirt collector's mapping of getAllDomainStats records, on records taken from real domains
on the test machine (libvirt 9.0, QEMU 7.2): a TCG guest with a booted kernel and balloon driver,
a KVM firmware-only guest (vcpu.<n>.<kvm stat> keys), a shut-off domain, and a user-mode NIC."""

from __future__ import annotations

import pytest

from hvstat.sources.vms_libvirt import observation

pytestmark = pytest.mark.unit

UUID = "c537f88a-aacc-45da-abe4-258e270bff29"

# `virsh domstats` of TESTBED 1.6's booted TCG guest, as getAllDomainStats returns it.
BOOTED_TCG = {
    "state.state": 1, "state.reason": 1,
    "cpu.time": 9461682000, "cpu.user": 6632534000, "cpu.system": 2314147000,
    "cpu.cache.monitor.count": 0, "cpu.haltpoll.success.time": 0, "cpu.haltpoll.fail.time": 0,
    "balloon.current": 131072, "balloon.maximum": 131072, "balloon.swap_in": 0, "balloon.swap_out": 0,
    "balloon.major_fault": 0, "balloon.minor_fault": 1761, "balloon.unused": 66664, "balloon.available": 94908,
    "balloon.usable": 72300, "balloon.last-update": 1795313182, "balloon.disk_caches": 2488,
    "balloon.hugetlb_pgalloc": 0, "balloon.hugetlb_pgfail": 0, "balloon.rss": 240024,
    "vcpu.current": 2, "vcpu.maximum": 2,
    "vcpu.0.state": 1, "vcpu.0.time": 5160000000, "vcpu.0.wait": 0, "vcpu.0.delay": 11445021,
    "vcpu.1.state": 2, "vcpu.1.time": 160000000, "vcpu.1.wait": 7, "vcpu.1.delay": 45021,
    "net.count": 1, "net.0.name": "vnet3", "net.0.rx.bytes": 586, "net.0.rx.pkts": 7, "net.0.rx.errs": 0,
    "net.0.rx.drop": 0, "net.0.tx.bytes": 684, "net.0.tx.pkts": 10, "net.0.tx.errs": 0, "net.0.tx.drop": 1,
    "block.count": 1, "block.0.name": "vda", "block.0.path": "/var/lib/libvirt/images/g.qcow2",
    "block.0.backingIndex": 1, "block.0.rd.reqs": 29, "block.0.rd.bytes": 3543552, "block.0.rd.times": 52000000,
    "block.0.wr.reqs": 6, "block.0.wr.bytes": 3145728, "block.0.wr.times": 9000000, "block.0.fl.reqs": 3,
    "block.0.fl.times": 100000, "block.0.allocation": 1376256, "block.0.capacity": 16777216, "block.0.physical": 1376256,
    "dirtyrate.calc_status": 0, "dirtyrate.calc_start_time": 0, "dirtyrate.calc_period": 0,
    "dirtyrate.calc_mode": "page-sampling",
}


def test_booted_guest_maps_every_group() -> None:
    o = observation(UUID, "g", BOOTED_TCG, 4242)
    assert (o.id, o.name, o.origin, o.status, o.status_reason, o.pid) == (UUID, "g", "libvirt", "running", "booted", 4242)
    assert (o.vcpus_current, o.vcpus_max, o.memory_max_bytes) == (2, 2, 131072 * 1024)
    assert (o.cpu_time_ns, o.cpu_user_ns, o.cpu_system_ns) == (9461682000, 6632534000, 2314147000)
    assert [(v.index, v.state, v.time_ns, v.wait_ns, v.delay_ns) for v in o.vcpus] == [
        (0, "running", 5160000000, 0, 11445021),
        (1, "blocked", 160000000, 7, 45021),
    ]
    (d,) = o.disks
    assert (d.name, d.path, d.read_bytes, d.write_bytes, d.read_ops, d.write_ops, d.flush_ops) == (
        "vda", "/var/lib/libvirt/images/g.qcow2", 3543552, 3145728, 29, 6, 3
    )
    assert (d.read_time_ns, d.write_time_ns, d.flush_time_ns, d.capacity_bytes) == (52000000, 9000000, 100000, 16777216)
    (n,) = o.nics
    assert (n.name, n.rx_bytes, n.tx_bytes, n.rx_packets, n.tx_packets, n.tx_dropped) == ("vnet3", 586, 684, 7, 10, 1)
    b = o.balloon
    assert b is not None
    # KiB in libvirt, bytes on the wire.
    assert (b.current_bytes, b.available_bytes, b.usable_bytes, b.unused_bytes) == (131072 * 1024, 94908 * 1024, 72300 * 1024, 66664 * 1024)
    assert (b.last_update, b.minor_faults, b.disk_caches_bytes) == (1795313182, 1761, 2488 * 1024)
    assert o.unavailable == {}


def test_firmware_only_guest_has_no_balloon_stats_and_kvm_counters() -> None:
    stats = {
        "state.state": 3, "state.reason": 1, "cpu.time": 1, "balloon.current": 65536, "balloon.maximum": 65536,
        "balloon.last-update": 0, "balloon.rss": 48060, "vcpu.current": 1, "vcpu.maximum": 1, "vcpu.0.state": 1,
        "vcpu.0.time": 5, "vcpu.0.exits.sum": 1234, "vcpu.0.halt_exits.sum": 56, "vcpu.0.blocking.cur": False,
        "net.count": 0, "block.count": 0,
    }
    o = observation(UUID, "fw", stats, None)
    assert (o.status, o.status_reason) == ("paused", "user")
    assert o.balloon is not None and o.balloon.last_update == 0 and o.balloon.available_bytes is None
    assert (o.vcpus[0].kvm_exits, o.vcpus[0].kvm_halt_exits) == (1234, 56)
    assert o.disks == [] and o.nics == []


def test_shut_off_domain_has_only_its_state() -> None:
    o = observation(UUID, "off", {"state.state": 5, "state.reason": 2}, None)
    assert (o.status, o.status_reason, o.pid) == ("shutoff", "destroyed", None)
    assert o.vcpus == [] and o.disks == [] and o.nics == [] and o.balloon is None
    assert o.cpu_time_ns is None and o.memory_max_bytes is None


def test_user_mode_nic_without_counters_is_explained() -> None:
    o = observation(UUID, "u", {"state.state": 1, "state.reason": 1, "net.count": 1}, 1)
    assert o.nics == []
    assert "user-mode" in o.unavailable["nics"]


def test_out_of_range_and_odd_values_do_not_crash() -> None:
    o = observation(UUID, "x", {"state.state": 99, "state.reason": -1, "vcpu.maximum": 1, "vcpu.0.state": 9, "block.count": 1, "cpu.time": True}, None)
    assert o.status == "nostate" and o.status_reason is None
    assert o.vcpus[0].state is None
    assert o.disks == []  # block.0.name is missing: the entry is skipped
    assert o.cpu_time_ns is None  # a bool is not a counter
