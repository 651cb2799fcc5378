"""The container sampler against this machine's real kernel: cgroups the test creates (named as each
runtime names them), processes the test starts in them, a network namespace with a veth pair, and
real runc, podman and LXC containers.

The oracles are independent of hvstat: what the test itself did (the MiB it allocated and touched,
the bytes it wrote and read with O_DIRECT, the datagrams it sent, the processes it forked), the
kernel's per-task CPU time in /proc/<pid>/schedstat, and the runtimes' own tools (`runc events
--stats`, `podman stats`, `lxc-info`), read right before and right after hvstat's sample so that
counters can be bracketed. This machine (TESTBED.md section 0): cgroup v1 with cpu and cpuacct
mounted separately, plus a controller-less v2 tree; hvstat reads CPU time from the v2 cpu.stat and
everything else from v1.

Every cgroup, namespace, veth, process and container is made here under a unique name and removed
by the fixture's teardown, also when a test fails (tests/cgroups.py, conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

import cgroups
from cgroups import (
    ALLOC,
    BUSY,
    DIRECT_IO,
    SLEEP,
    UDP_FRAME_OVERHEAD,
    UDP_SINK,
    MiB,
    activate_blkio_accounting,
    expect_line,
    hex_id,
    py,
    run,
    send_udp,
    whole_disk_of,
)
from helpers import WAIT_SECS
from hvstat.models import ContainersSample

pytestmark = [pytest.mark.skipif(cgroups.why_no_cgroups() is not None, reason=str(cgroups.why_no_cgroups())), pytest.mark.cgroups]

# --- tolerances ------------------------------------------------------------------------------------

# Wall time between the two samples of a rate measurement.
WINDOW_SECS = 2.0
# cpu.shares (v1 cpu controller, docker --cpu-shares) of every container running a busy loop: this
# 2-CPU machine is shared (builds, other test runs), and at the root of the cpu hierarchy the
# container's weight against each competing nice-0 task is then 256:1, so the loop gets its core.
CPU_SHARES_MAX = 262144
# The CPU tests do not assume what share of this shared 2-CPU machine a busy loop gets (other work,
# steal and IRQ time take what they take): the oracle is what the loop got, its own schedstat over
# hvstat's interval. The least a top-weight busy loop gets over the window for the check to mean
# anything (a bracket around ~0 would not catch a unit error); far below what it gets even on a
# busy machine (0.72 core seen with both CPUs busy elsewhere).
MIN_BUSY_CORES = 0.1
# One thread cannot use more than one core. The counters and the instant hvstat divides by are read
# microseconds apart; 0.02 core over a 2 s window is 40 ms, far above that and far below any unit
# error (a ms/us or ns/us mix-up is off by 1000x).
ONE_THREAD_MAX_SLACK = 0.02
# user and system time are sampled at ticks and scaled to the precise total (cputime_adjust in
# kernel/sched/cputime.c), so their sum equals usage up to that scaling's rounding and the last tick:
# a few ms; 50 ms is far above it and far below a missing or doubled half.
USER_SYSTEM_SPLIT_TOL = 0.05
# v2 cpu.stat is in whole microseconds; hvstat's reading and the task's schedstat (ns) differ by the
# truncation at each end.
USEC_EPS_SECS = 2e-6
# CFS bandwidth: quota 50 ms per 100 ms period. A 2 s window can hold 21 refills instead of 20 at its
# edges (+0.025 core) and the per-CPU runtime slices (5 ms, sched_cfs_bandwidth_slice_us) can overrun
# a period a little: 0.05 core above the limit is the most a correct reading can show.
QUOTA_SLACK_CORES = 0.05

ALLOC_MIB = 64
# Charged to the container besides the test's allocation: the Python interpreter's own heap, stack,
# page tables and kernel objects (about 9 MiB per interpreter measured here). Far below a second
# copy of the allocation, which a double count would show.
MEMORY_OVERHEAD = 32 * MiB
# memory.stat's rss and the task's RssAnon come from different counters (memcg stats are flushed in
# per-CPU batches of 64 pages, mm counters are per-CPU too): 2 MiB covers both batches on 2 CPUs.
RSS_TOL = 2 * MiB
MEMORY_LIMIT = 256 * MiB

IO_MIB = 16
# Block I/O charged besides the test's O_DIRECT data: the inode and extent updates that fsync forces
# in the writer's context (8 KiB here) and any page of the interpreter not yet in the page cache. The
# journal is written by jbd2 in its own cgroup. A double count would be off by IO_MIB.
BLOCK_MARGIN = 4 * MiB

DATAGRAMS = 100
DATAGRAM_BYTES = 1000

# A quiet container's memory.usage_in_bytes moves by the per-CPU charge stock (MEMCG_CHARGE_BATCH =
# 64 pages, 256 KiB per CPU) between two readings even when no process allocates.
MEMORY_DRIFT = 2 * 64 * 4096
# runc, hvstat and lxc-info read the same kernel counters; the container's init joins the v1 cpuacct
# and the v2 cgroup at slightly different moments (runc writes its pid into each hierarchy in turn),
# so the two CPU counters can differ by the CPU time spent between those writes. 10 ms is far above
# that and far below the 0.5 s a busy loop accrues per second.
CPU_JOIN_SKEW_SECS = 0.01
# podman stats prints sizes with 4 significant digits in SI units ("413.7kB"): up to 0.05% off.
PODMAN_ROUNDING_REL = 5e-4

# Fast sampling (below the kernel's 1 s cgroup v1 pid-list cache, CGROUP_PIDLIST_DESTROY_DELAY).
FAST_INTERVAL_SECS = 0.25
# How long such sampling must see a new process within: three times that cache's lifetime.
FAST_WINDOW_SECS = 3.0

RATE_FIELDS = (
    "cpu_cores",
    "cpu_usage_percent",
    "cpu_limit_percent",
    "cpu_throttled_percent",
    "block_read_bytes_per_sec",
    "block_write_bytes_per_sec",
    "block_read_ops_per_sec",
    "block_write_ops_per_sec",
    "network_rx_bytes_per_sec",
    "network_tx_bytes_per_sec",
    "network_rx_packets_per_sec",
    "network_tx_packets_per_sec",
)
NETWORK_FIELDS = tuple(
    f"network_{d}_{k}" for d in ("rx", "tx") for k in ("bytes", "packets", "errors", "dropped", "bytes_per_sec", "packets_per_sec")
)


# --- helpers ----------------------------------------------------------------------------------------


def sample(s: Any) -> dict[str, Any]:
    """One sample as plain JSON data, after checking it against the documented wire types."""
    raw = s.sample()
    msgspec.json.decode(raw, type=ContainersSample)
    return json.loads(raw)


def find(d: dict[str, Any], cid: str) -> dict[str, Any] | None:
    return next((c for c in d["containers"] if c["id"] == cid), None)


def one(d: dict[str, Any], cid: str) -> dict[str, Any]:
    c = find(d, cid)
    assert c is not None, f"{cid} not in the sample: {[x['cgroup_path'] for x in d['containers']]}"
    return c


def rss_anon(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise KeyError("RssAnon")


def nic_counters(ifname: str, netns: str | None = None) -> dict[str, int]:
    """rx/tx bytes and packets of one interface from /proc/net/dev (of a namespace, via ip netns)."""
    argv = ["cat", "/proc/net/dev"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    for line in run(argv).stdout.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == ifname:
            v = [int(x) for x in rest.split()]
            return {"rx_bytes": v[0], "rx_packets": v[1], "tx_bytes": v[8], "tx_packets": v[9]}
    raise KeyError(ifname)


def docker_id() -> str:
    return hex_id()


def short_name() -> str:
    return f"hvt-{hex_id(4)}"


def spawn_busy(c: Any, sub: str = "") -> Any:
    """A busy loop in container ``c``, which gets the top CPU weight (CPU_SHARES_MAX)."""
    c.write("cpu", "cpu.shares", CPU_SHARES_MAX)
    p = c.spawn(py(BUSY), sub=sub)
    expect_line(p, "ready")
    return p


def _bracket(lo: float, value: float, hi: float, what: str, eps: float = 0.0) -> None:
    assert lo - eps <= value <= hi + eps, f"{what}: {value} not within [{lo}, {hi}] (eps {eps})"


# --- 1. discovery: every runtime's naming -------------------------------------------------------------


def _layout(kind: str) -> tuple[str, str, str, str]:
    """(cgroup path relative to a hierarchy, runtime, id, name) as each runtime names its cgroup
    (the cgroupfs driver without systemd, or the systemd driver's scopes)."""
    cid, name = docker_id(), short_name()
    if kind == "docker-cgroupfs":
        return f"docker/{cid}", "docker", cid, cid[:12]
    if kind == "docker-systemd":
        return f"system.slice/docker-{cid}.scope", "docker", cid, cid[:12]
    if kind == "podman-cgroupfs":
        return f"libpod_parent/libpod-{cid}", "podman", cid, cid[:12]
    if kind == "lxc":
        return f"lxc.payload.{name}", "lxc", name, name
    if kind == "libvirt-lxc":
        # A libvirt LXC machine is a container; a libvirt QEMU machine is a VM (see below).
        n = random.randint(1, 99999)
        return f"machine/lxc-{n}-{name}.libvirt-lxc", "libvirt", f"lxc-{n}-{name}", name
    if kind == "kubernetes":
        return f"kubepods/burstable/pod{uuid.uuid4()}/{cid}", "kubernetes", cid, cid[:12]
    raise ValueError(kind)


LAYOUTS = ["docker-cgroupfs", "docker-systemd", "podman-cgroupfs", "lxc", "libvirt-lxc", "kubernetes"]


@pytest.mark.parametrize("kind", LAYOUTS)
def test_discovered_with_runtime_id_and_name(kind: str, fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    rel, runtime, cid, name = _layout(kind)
    c = fake_containers(rel, runtime=runtime, id=cid)
    # What runtimes and the payload make inside a container: plain sub-cgroups, libvirt's emulator
    # and vcpu threads, and ones that look like guests themselves (a 64-hex id, a docker scope).
    nested_ids = [hex_id(), hex_id()]
    for sub in ("inner", "emulator", "vcpu0", nested_ids[0], f"system.slice/docker-{nested_ids[1]}.scope"):
        c.add_sub(sub)
    expect_line(c.spawn(py(SLEEP)), "ready")

    d = sample(container_sampler())
    x = one(d, cid)
    assert cid in d["appeared"]
    assert (x["runtime"], x["name"], x["cgroup_path"]) == (runtime, name, c.cgroup_path)
    assert x["state"] == "running"
    assert x["processes"] == 1
    # Nested cgroups belong to the container: none is reported on its own.
    inside = [g["cgroup_path"] for g in d["containers"] if g["cgroup_path"].startswith(c.cgroup_path + "/")]
    assert inside == []
    assert not {g["id"] for g in d["containers"]} & set(nested_ids)


@pytest.mark.parametrize("rel", ["machine/qemu-{n}-{name}.libvirt-qemu", "machine.slice/machine-qemu\\x2d{n}\\x2d{name}.scope", "qemu.slice/{n}.scope"])
def test_a_qemu_vm_scope_is_not_a_container(rel: str, fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    """A QEMU VM's scope (libvirt's machine, with or without systemd; Proxmox's qemu.slice) is the
    VM's: the VM sampler reads it, and the containers list leaves it and its sub-cgroups out."""
    rel = rel.format(n=random.randint(1, 99999), name=short_name())
    c = fake_containers(rel, runtime="libvirt")
    c.add_sub("emulator")
    c.add_sub("vcpu0")
    # No process in it: an empty cgroup of a guest would still be listed (state "empty").
    d = sample(container_sampler())
    assert not [g for g in d["containers"] if g["cgroup_path"].startswith(c.cgroup_path)], d["containers"]


def test_empty_container_is_listed_as_empty(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    x = one(sample(container_sampler()), cid)
    assert (x["state"], x["processes"]) == ("empty", 0)
    assert x["network_mode"] == "unknown" and x["network_rx_bytes"] is None
    assert x["unavailable"].get("network")
    # No I/O yet and no throttle rule: v1 lists no device, which is "unknown", not 0.
    assert x["block_read_bytes"] is None and x["block_write_bytes"] is None and x["block_devices"] == []
    assert x["unavailable"].get("block")
    assert c.pids() == []


def test_services_only_when_asked(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    unit = f"hvt-{hex_id(4)}"
    c = fake_containers(f"system.slice/{unit}.service", runtime="systemd", id=unit)
    expect_line(c.spawn(py(SLEEP)), "ready")
    assert not [g for g in sample(container_sampler())["containers"] if g["cgroup_path"] == c.cgroup_path]
    x = one(sample(container_sampler(include_services=True)), unit)
    assert (x["runtime"], x["name"], x["cgroup_path"], x["processes"]) == ("systemd", unit, c.cgroup_path, 1)


# --- 2. CPU -------------------------------------------------------------------------------------------


def schedstat(pid: int) -> tuple[float, float]:
    """(CPU time, time runnable but waiting for a CPU) of a task in seconds, from /proc/<pid>/schedstat
    (sum_exec_runtime and run_delay, ns): the scheduler's own accounting, read without hvstat."""
    run_ns, wait_ns, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def _cpu_window(s: Any, cid: str, pid: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], tuple[float, float]]:
    """Two samples WINDOW_SECS apart, each bracketed by the task's schedstat and the monotonic
    clock; checks the CPU seconds and the rate against those brackets. Returns the second sample,
    the container in the first and in the second, and (least, most) cores the task can have used
    over hvstat's interval by its schedstat: what it got, whatever else this machine was doing."""
    t0, (a0, _) = time.monotonic(), schedstat(pid)
    x1 = one(sample(s), cid)
    (a1, _), t1 = schedstat(pid), time.monotonic()
    time.sleep(WINDOW_SECS)
    t2, (b0, _) = time.monotonic(), schedstat(pid)
    d2 = sample(s)
    (b1, _), t3 = schedstat(pid), time.monotonic()
    x2 = one(d2, cid)
    delta = x2["cpu_usage_secs_total"] - x1["cpu_usage_secs_total"]
    # The task is the only one in the cgroup: the cgroup's CPU time moved as the task's did.
    _bracket(b0 - a1, delta, b1 - a0, "cgroup CPU seconds vs the task's schedstat", USEC_EPS_SECS)
    # hvstat divides by the time between the instants it read this container's counters, which lie
    # inside [t0, t1] and [t2, t3].
    _bracket(delta / (t3 - t0), x2["cpu_cores"], delta / (t2 - t1), "cpu_cores vs CPU seconds / wall time")
    _bracket(t2 - t1, d2["interval_secs"], t3 - t0, "interval_secs")
    got = ((b0 - a1 - USEC_EPS_SECS) / (t3 - t0), (b1 - a0 + USEC_EPS_SECS) / (t2 - t1))
    _bracket(got[0], x2["cpu_cores"], got[1], "cpu_cores vs the task's own schedstat over the interval")
    assert got[0] >= MIN_BUSY_CORES, f"the busy loop got {got} cores over the window: too little to check a rate against"
    return d2, x1, x2, got


def test_busy_loop_uses_one_core(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    p = spawn_busy(c)
    d, _, x, _ = _cpu_window(container_sampler(), cid, p.pid)
    # What the loop got by its schedstat (checked in _cpu_window), and never more than one core.
    assert x["cpu_cores"] <= 1.0 + ONE_THREAD_MAX_SLACK
    assert d["host_cpus"] == psutil.cpu_count(logical=True)
    assert x["cpu_usage_percent"] == pytest.approx(x["cpu_cores"] / d["host_cpus"] * 100, rel=1e-9)
    # No quota: no limit, nothing throttled, and each null says why.
    assert x["cpu_limit_cores"] is None and x["cpu_limit_percent"] is None
    assert "quota" in x["unavailable"]["cpu_limit_cores"]
    assert x["cpu_throttled_periods_total"] == 0
    assert x["cpu_user_secs_total"] + x["cpu_system_secs_total"] == pytest.approx(x["cpu_usage_secs_total"], abs=USER_SYSTEM_SPLIT_TOL)


def test_cfs_quota_caps_at_half_a_core(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    c.write("cpu", "cpu.cfs_period_us", 100_000)
    c.write("cpu", "cpu.cfs_quota_us", 50_000)
    p = spawn_busy(c)
    d, x1, x, _ = _cpu_window(container_sampler(), cid, p.pid)
    assert x["cpu_limit_cores"] == 0.5
    # What the loop got by its schedstat (checked in _cpu_window), and never more than the quota.
    assert x["cpu_cores"] <= 0.5 + QUOTA_SLACK_CORES
    assert x["cpu_limit_percent"] == pytest.approx(x["cpu_cores"] / 0.5 * 100, rel=1e-9)
    assert x["cpu_limit_percent"] <= (0.5 + QUOTA_SLACK_CORES) / 0.5 * 100
    assert x["cpu_usage_percent"] == pytest.approx(x["cpu_cores"] / d["host_cpus"] * 100, rel=1e-9)
    # The share of the interval's periods that were throttled, from the kernel's counters (bounded by
    # cpu.stat below): not a share assumed from an idle machine (a loop that other work keeps from
    # its quota is throttled in fewer periods).
    periods = x["cpu_periods_total"] - x1["cpu_periods_total"]
    throttled = x["cpu_throttled_periods_total"] - x1["cpu_throttled_periods_total"]
    assert periods > 0 and x["cpu_throttled_percent"] == pytest.approx(throttled / periods * 100, rel=1e-9)
    assert x["cpu_throttled_periods_total"] > 0 and x["cpu_throttled_secs_total"] > 0
    # The counters are the kernel's own (cpu.stat of the v1 cpu controller), read just after.
    stat = dict(line.split() for line in c.read("cpu", "cpu.stat").splitlines())
    assert x["cpu_periods_total"] <= int(stat["nr_periods"])
    assert x["cpu_throttled_periods_total"] <= int(stat["nr_throttled"])


def _pressure_totals(c: Any) -> dict[tuple[str, str], int]:
    out = {}
    for kind in ("cpu", "memory", "io"):
        for line in c.read("unified", f"{kind}.pressure").splitlines():
            words = line.split()
            out[(kind, words[0])] = int(dict(w.split("=") for w in words[1:])["total"])
    return out


def test_pressure_totals_bracketed_by_the_cgroup_files(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    """PSI of the container from the v2 tree (it exists even without v2 controllers here): a busy
    loop under a quota stalls on CPU, so cpu 'some' moves."""
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    c.write("cpu", "cpu.cfs_quota_us", 50_000)
    spawn_busy(c)
    s = container_sampler()
    sample(s)
    time.sleep(1.0)
    before = _pressure_totals(c)
    x = one(sample(s), cid)
    after = _pressure_totals(c)
    for (kind, line), b in before.items():
        _bracket(b, x[f"pressure_{kind}"][line]["total_usec"], after[(kind, line)], f"pressure_{kind}.{line}")
    assert x["pressure_cpu"]["some"]["total_usec"] > 0
    assert 0 <= x["pressure_cpu"]["some"]["stall_percent"] <= 100


# --- 3. memory -----------------------------------------------------------------------------------------


def test_memory_usage_follows_an_allocation(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    p = c.spawn(py(ALLOC, ALLOC_MIB))
    assert expect_line(p, "ready") == f"ready {ALLOC_MIB * MiB}"
    anon = rss_anon(p.pid)
    x = one(sample(container_sampler()), cid)
    assert ALLOC_MIB * MiB <= x["memory_usage_bytes"] <= ALLOC_MIB * MiB + MEMORY_OVERHEAD
    assert x["memory_rss_bytes"] == pytest.approx(anon, abs=RSS_TOL)
    assert x["memory_working_set_bytes"] <= x["memory_usage_bytes"]
    # No limit: "max" (never a huge number or -1), and no percentage of it, with the reason.
    assert x["memory_limit_bytes"] == "max"
    assert x["memory_usage_percent"] is None
    assert x["unavailable"]["memory_usage_percent"]


def test_memory_limit_and_percent(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    c.write("memory", "memory.limit_in_bytes", MEMORY_LIMIT)
    p = c.spawn(py(ALLOC, ALLOC_MIB))
    expect_line(p, "ready")
    x = one(sample(container_sampler()), cid)
    assert x["memory_limit_bytes"] == MEMORY_LIMIT == int(c.read("memory", "memory.limit_in_bytes"))
    assert x["memory_usage_bytes"] >= ALLOC_MIB * MiB
    assert x["memory_usage_percent"] == pytest.approx(x["memory_usage_bytes"] / MEMORY_LIMIT * 100, rel=1e-9)
    assert "memory_usage_percent" not in x["unavailable"]


# --- 4. block I/O ----------------------------------------------------------------------------------------


@pytest.fixture
def io_dir(tmp_path: Path) -> Path:
    """A directory on a real block device: O_DIRECT needs one, and tmpfs has no disk to count."""
    try:
        whole_disk_of(tmp_path)
    except OSError:
        pytest.skip(f"{tmp_path} is not on a block device (tmpfs?): O_DIRECT I/O cannot be counted")
    return tmp_path


def test_block_io_counts_direct_writes_and_reads(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any], io_dir: Path) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    disk = whole_disk_of(io_dir)
    activate_blkio_accounting(c, disk)
    s = container_sampler()
    first = one(sample(s), cid)
    assert first["block_write_bytes"] == first["block_read_bytes"] == 0
    p = c.spawn(py(DIRECT_IO, io_dir / "direct.bin", IO_MIB))
    assert expect_line(p, "ready") == f"ready {IO_MIB * MiB} {IO_MIB * MiB}"
    x = one(sample(s), cid)
    assert IO_MIB * MiB <= x["block_write_bytes"] <= IO_MIB * MiB + BLOCK_MARGIN
    assert IO_MIB * MiB <= x["block_read_bytes"] <= IO_MIB * MiB + BLOCK_MARGIN
    # Each 1 MiB write(2) or read is at least one request (the block layer may split it, never
    # merge O_DIRECT requests of separate calls beyond it); no request is smaller than a 4 KiB page.
    assert IO_MIB <= x["block_write_ops"] <= (IO_MIB * MiB + BLOCK_MARGIN) // 4096
    assert IO_MIB <= x["block_read_ops"] <= (IO_MIB * MiB + BLOCK_MARGIN) // 4096
    major, minor = (int(v) for v in disk.split(":"))
    dev = {(b["major"], b["minor"]): b for b in x["block_devices"]}[(major, minor)]
    assert dev["write_bytes"] >= IO_MIB * MiB and dev["read_bytes"] >= IO_MIB * MiB
    assert x["block_write_bytes"] == sum(b["write_bytes"] for b in x["block_devices"])
    # Second reading: rates over the interval, from the bytes the test moved.
    assert x["block_write_bytes_per_sec"] > 0 and x["block_read_bytes_per_sec"] > 0


# --- 5. network --------------------------------------------------------------------------------------------


@pytest.mark.network
def test_own_netns_counts_exactly_the_frames_sent(
    fake_containers: Callable[..., Any], container_sampler: Callable[..., Any], netns_factory: Callable[[], Any]
) -> None:
    ns = netns_factory()
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    port = random.randint(20000, 60000)
    sink = c.spawn(py(UDP_SINK, port, DATAGRAMS), netns=ns.name)
    expect_line(sink, "ready")
    s = container_sampler()
    before = one(sample(s), cid)
    host_before = nic_counters(ns.host_if)
    assert before["network_mode"] == "own"
    assert before["network_interfaces"] == [ns.guest_if]
    sent = send_udp(ns.guest_ip, port, DATAGRAMS, DATAGRAM_BYTES)
    assert sent == DATAGRAMS * DATAGRAM_BYTES
    # The container's process received every datagram: the frames have crossed the veth.
    assert expect_line(sink, "got") == f"got {DATAGRAMS} {sent}"
    after = one(sample(s), cid)
    host_after = nic_counters(ns.host_if)
    # IPv6 is off and the neighbours are static: the link carried our datagrams and nothing else,
    # each counted with its Ethernet, IPv4 and UDP headers.
    frames = DATAGRAMS * (DATAGRAM_BYTES + UDP_FRAME_OVERHEAD)
    assert after["network_rx_bytes"] - before["network_rx_bytes"] == frames
    assert after["network_rx_packets"] - before["network_rx_packets"] == DATAGRAMS
    assert after["network_tx_bytes"] == before["network_tx_bytes"]
    # The host's end of the pair saw the mirror image.
    assert host_after["tx_bytes"] - host_before["tx_bytes"] == frames
    assert after["network_rx_bytes_per_sec"] > 0
    assert after["network_rx_errors"] == after["network_rx_dropped"] == 0


def test_host_netns_has_no_network_counters(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    expect_line(c.spawn(py(SLEEP)), "ready")
    s = container_sampler()
    sample(s)
    x = one(sample(s), cid)
    assert x["network_mode"] == "host"
    assert all(x[k] is None for k in NETWORK_FIELDS), {k: x[k] for k in NETWORK_FIELDS}
    assert x["network_interfaces"] == []
    assert "host" in x["unavailable"]["network"]


# --- 6. pids ------------------------------------------------------------------------------------------------

FORKED = 3


def test_pids_current_and_max(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    c.write("pids", "pids.max", 16)
    # A shell that forks FORKED sleepers before saying ready: 1 + FORKED single-threaded tasks.
    sh = c.spawn(["sh", "-c", "for i in " + " ".join(["1"] * FORKED) + "; do sleep 600 & done; echo ready; wait"])
    expect_line(sh, "ready")
    pids = c.pids()
    assert len(pids) == 1 + FORKED and sh.pid in pids
    x = one(sample(container_sampler()), cid)
    assert x["pids_max"] == 16
    assert x["pids_current"] == 1 + FORKED == int(c.read("pids", "pids.current"))
    assert x["processes"] == 1 + FORKED


def test_pids_max_unset_is_max(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    expect_line(c.spawn(py(SLEEP)), "ready")
    x = one(sample(container_sampler()), cid)
    assert x["pids_max"] == "max"
    assert x["pids_current"] == 1


# --- 7. lifecycle ------------------------------------------------------------------------------------------------


def test_appears_then_vanishes(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    s = container_sampler()
    cid = docker_id()
    d = sample(s)
    assert find(d, cid) is None
    assert d["interval_secs"] is None, "the sampler's first sample has no interval"
    c = fake_containers(f"docker/{cid}")
    spawn_busy(c)

    d = sample(s)
    x = one(d, cid)
    assert cid in d["appeared"] and cid not in d["vanished"]
    # First sample of this container: no rate yet, and the reason says so.
    assert all(x[k] is None for k in RATE_FIELDS), {k: x[k] for k in RATE_FIELDS}
    assert "first sample" in x["unavailable"]["rates"]
    assert x["cpu_usage_secs_total"] is not None and x["memory_usage_bytes"] is not None

    time.sleep(0.5)
    d = sample(s)
    x = one(d, cid)
    assert cid not in d["appeared"]
    assert x["cpu_cores"] is not None and x["cpu_cores"] > 0
    assert "rates" not in x["unavailable"]

    c.remove()
    d = sample(s)
    assert cid in d["vanished"]
    assert find(d, cid) is None
    assert d["unavailable"] == {}, "a container removed between samples is not an error"
    d = sample(s)
    assert cid not in d["vanished"] and find(d, cid) is None


def _recreate(c: Any) -> None:
    """The container restarts: its cgroup is removed and made again under the same path, so every
    counter starts from zero."""
    c.remove()
    c.create()
    expect_line(c.spawn(py(SLEEP)), "ready")


def test_counter_reset_gives_no_negative_rate(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    spawn_busy(c)
    s = container_sampler()
    sample(s)
    time.sleep(1.0)
    busy = one(sample(s), cid)
    assert busy["cpu_usage_secs_total"] > 0.5
    _recreate(c)
    for _ in range(3):
        d = sample(s)
        x = find(d, cid)
        if x is not None:
            assert x["cpu_usage_secs_total"] < busy["cpu_usage_secs_total"], "the counter did restart"
            for k in RATE_FIELDS:
                assert x[k] is None or x[k] >= 0, f"{k} = {x[k]}"
            if x["cpu_cores"] is None:
                assert x["unavailable"].get("cpu_cores") or x["unavailable"].get("rates")
        time.sleep(0.5)
    assert find(d, cid) is not None, "the re-created container is listed again"


def test_recreated_container_stays_listed(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    spawn_busy(c)
    s = container_sampler()
    sample(s)
    time.sleep(0.5)
    one(sample(s), cid)
    _recreate(c)
    d = sample(s)
    assert cid not in d["vanished"], "the container exists: it did not vanish"
    x = one(d, cid)
    assert x["state"] == "running"
    assert x["cpu_cores"] is None and (x["unavailable"].get("cpu_cores") or x["unavailable"].get("rates"))


def test_recreated_container_on_a_pure_v1_host_reads_again(
    fake_containers: Callable[..., Any], container_sampler: Callable[..., Any], tmp_path: Path
) -> None:
    """A host without cgroup2 (this one is hybrid: the sampler is shown only the v1 mounts, through a
    proc root whose mountinfo lists nothing else). After a removal and re-creation between two samples
    the container's files are read again, not dropped as "never there"."""
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    v1 = [l for l in Path("/proc/self/mountinfo").read_text().splitlines() if " - cgroup " in l]
    (proc / "1" / "mountinfo").write_text("\n".join(v1) + "\n")
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    spawn_busy(c)
    s = container_sampler(proc_root=str(proc))
    sample(s)
    time.sleep(0.5)
    assert one(sample(s), cid)["memory_usage_bytes"] is not None
    _recreate(c)
    sample(s)  # the stale descriptors fail once and are re-opened on the new cgroup
    time.sleep(0.5)
    x = one(sample(s), cid)
    assert x["memory_usage_bytes"] is not None and x["cpu_usage_secs_total"] is not None
    assert x["pids_current"] is not None and x["pids_current"] >= 1


def test_new_process_seen_when_sampling_fast(fake_containers: Callable[..., Any], tmp_path: Path) -> None:
    """Sampling faster than once a second still sees a process start. The sampler runs in its own PID
    namespace (as hvstat in a container would), where no other reader of this cgroup's pid list can
    refresh the kernel's cached copy for it (see cgroups.FAST_SAMPLER)."""
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    # The last file is the one the script polls to see a move done: pids, whose cgroup (and so pid
    # list) is not the one hvstat reads cgroup.procs of (memory, the primary hierarchy).
    files = [c.dir(h) / "cgroup.procs" for h in cgroups.CONTROLLERS if h != "pids"] + [c.dir("pids") / "cgroup.procs"]
    config = json.dumps({k: str(tmp_path / k) for k in ("docker_root", "podman_root", "pods_log_root", "pve_root")})
    argv = [
        "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
        *py(cgroups.FAST_SAMPLER, ",".join(map(str, files)), cid, config, FAST_INTERVAL_SECS, FAST_WINDOW_SECS),
    ]  # fmt: skip
    out = run(argv, timeout=WAIT_SECS).stdout.split("\n")
    assert "done" in out, out
    seen = [tuple(json.loads(line)) for line in out if line.startswith("[")]
    assert seen[0] == (1, 1), f"first sample, one process: {seen}"
    # pids.current (read fresh each time) sees the second process at once; processes must follow.
    assert all(p == 2 for _, p in seen[1:]), seen
    assert seen[-1] == (2, 2), f"(processes, pids_current), one sample per {FAST_INTERVAL_SECS}s: {seen}"


@pytest.mark.network
def test_processes_in_nested_cgroups_count(
    fake_containers: Callable[..., Any], container_sampler: Callable[..., Any], netns_factory: Callable[[], Any]
) -> None:
    """A guest that keeps every process in sub-cgroups (systemd inside LXC: init.scope, system.slice)
    is running with those processes, and its network is read through them."""
    ns = netns_factory()
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    c.add_sub("init.scope")
    expect_line(c.spawn(py(SLEEP), netns=ns.name, sub="init.scope"), "ready")
    x = one(sample(container_sampler()), cid)
    assert x["pids_current"] == 1 and x["state"] == "running"
    assert x["processes"] == 1
    assert x["network_mode"] == "own" and x["network_interfaces"] == [ns.guest_if]


def test_block_io_of_nested_cgroups_counts(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any], io_dir: Path) -> None:
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    c.add_sub("init.scope")
    activate_blkio_accounting(c, whole_disk_of(io_dir))
    p = c.spawn(py(DIRECT_IO, io_dir / "nested.bin", IO_MIB), sub="init.scope")
    expect_line(p, "ready")
    x = one(sample(container_sampler()), cid)
    assert IO_MIB * MiB <= x["block_write_bytes"] <= IO_MIB * MiB + BLOCK_MARGIN
    assert IO_MIB * MiB <= x["block_read_bytes"] <= IO_MIB * MiB + BLOCK_MARGIN


def test_memory_and_cpu_of_nested_cgroups_count(fake_containers: Callable[..., Any], container_sampler: Callable[..., Any]) -> None:
    """v1 memory.usage_in_bytes and the v2 cpu.stat are hierarchical: nested work is the container's."""
    cid = docker_id()
    c = fake_containers(f"docker/{cid}")
    c.add_sub("init.scope")
    expect_line(c.spawn(py(ALLOC, ALLOC_MIB), sub="init.scope"), "ready")
    p = spawn_busy(c, sub="init.scope")
    # The allocator sleeps: the busy loop is the only task using CPU, as _cpu_window assumes.
    # The nested loop's CPU is the container's: _cpu_window checks cpu_cores against what the loop
    # got by its own schedstat (not against a core assumed free: 0.72 core when both CPUs were busy).
    _, _, x, _ = _cpu_window(container_sampler(), cid, p.pid)
    assert x["memory_usage_bytes"] >= ALLOC_MIB * MiB
    assert x["cpu_cores"] <= 1.0 + ONE_THREAD_MAX_SLACK


# --- 8. real runtimes ------------------------------------------------------------------------------------------


def runc_events(root: Path, name: str) -> dict[str, Any]:
    """`runc events --stats`: one JSON stats object of the container, read from the cgroups by runc."""
    out = run(["runc", "--root", str(root), "events", "--stats", name]).stdout
    return json.loads(out.splitlines()[0])["data"]


@pytest.fixture
def runc_container(tmp_path: Path, netns_factory: Callable[[], Any]) -> Iterator[dict[str, Any]]:
    """A runc container (TESTBED 3(c)): busybox rootfs, cgroupsPath /docker/<id>, limits of 128 MiB,
    half a CPU and 64 pids, a busy loop, and a netns with a veth pair. Torn down with runc kill and
    delete; runc leaves /docker, removed if it was not there before."""
    reason = cgroups.have("runc", "busybox")
    if reason:
        pytest.skip(reason)
    cid = docker_id()
    name = f"hvt-{cid[:12]}"
    ns = netns_factory()
    bundle, state = tmp_path / "bundle", tmp_path / "runc-state"
    cgroups.busybox_rootfs(bundle / "rootfs")
    run(["runc", "spec"], cwd=bundle)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sh", "-c", "while :; do :; done"]
    spec["root"]["readonly"] = False
    spec["linux"]["cgroupsPath"] = f"/docker/{cid}"
    spec["linux"]["namespaces"] = [
        n if n["type"] != "network" else {"type": "network", "path": str(ns.path)} for n in spec["linux"]["namespaces"]
    ]
    spec["linux"]["resources"] = {"memory": {"limit": 128 * MiB}, "cpu": {"quota": 50_000, "period": 100_000, "shares": CPU_SHARES_MAX}, "pids": {"limit": 64}}
    (bundle / "config.json").write_text(json.dumps(spec))
    R = ["runc", "--root", str(state)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(cgroups.parents_cleaned("docker"))
        stack.callback(lambda: run([*R, "delete", "-f", name], check=False))
        stack.callback(lambda: run([*R, "kill", name, "KILL"], check=False))
        with open(tmp_path / "runc.log", "wb") as log:
            # -d with terminal false needs its stdio redirected (TESTBED 3(c)).
            subprocess.run([*R, "run", "-d", name], cwd=bundle, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=WAIT_SECS, check=False)
        st = run([*R, "state", name], check=False)
        assert st.returncode == 0, f"runc run failed: {(tmp_path / 'runc.log').read_text()}"
        yield {"id": cid, "name": name, "root": state, "netns": ns, "pid": json.loads(st.stdout)["pid"]}
    left = [str(h / "docker" / cid) for h in cgroups.CGROUP_ROOT.iterdir() if (h / "docker" / cid).exists()]
    assert not left, f"runc left {left}"


@pytest.mark.containers
@pytest.mark.network
def test_runc_container_matches_runc_events(runc_container: dict[str, Any], container_sampler: Callable[..., Any]) -> None:
    cid, root = runc_container["id"], runc_container["root"]
    s = container_sampler()
    sample(s)
    time.sleep(WINDOW_SECS)
    e0 = runc_events(root, runc_container["name"])
    d = sample(s)
    e1 = runc_events(root, runc_container["name"])
    x = one(d, cid)
    assert (x["runtime"], x["name"], x["cgroup_path"], x["state"]) == ("docker", cid[:12], f"/docker/{cid}", "running")
    assert x["processes"] == 1
    # CPU: runc reads cpuacct.usage (ns), hvstat the v2 cpu.stat (us); same scheduler accounting.
    _bracket(e0["cpu"]["usage"]["total"] / 1e9, x["cpu_usage_secs_total"], e1["cpu"]["usage"]["total"] / 1e9, "cpu total", CPU_JOIN_SKEW_SECS)
    _bracket(e0["cpu"]["throttling"]["periods"], x["cpu_periods_total"], e1["cpu"]["throttling"]["periods"], "periods")
    _bracket(e0["cpu"]["throttling"]["throttledPeriods"], x["cpu_throttled_periods_total"], e1["cpu"]["throttling"]["throttledPeriods"], "throttled")
    assert x["cpu_limit_cores"] == 0.5
    # The quota holds (how close to it the loop gets depends on other work on this machine).
    assert 0 < x["cpu_cores"] <= 0.5 + QUOTA_SLACK_CORES
    # Memory: the same memory.usage_in_bytes, moving only by the per-CPU charge stock.
    lo, hi = sorted((e0["memory"]["usage"]["usage"], e1["memory"]["usage"]["usage"]))
    _bracket(lo, x["memory_usage_bytes"], hi, "memory usage", MEMORY_DRIFT)
    assert x["memory_limit_bytes"] == e0["memory"]["usage"]["limit"] == 128 * MiB
    assert x["pids_current"] == e0["pids"]["current"] == e1["pids"]["current"] == 1
    assert x["pids_max"] == e0["pids"]["limit"] == 64


@pytest.mark.containers
@pytest.mark.network
def test_runc_container_network(runc_container: dict[str, Any], container_sampler: Callable[..., Any]) -> None:
    ns = runc_container["netns"]
    cid = runc_container["id"]
    s = container_sampler()
    before = one(sample(s), cid)
    assert before["network_mode"] == "own" and before["network_interfaces"] == [ns.guest_if]
    guest_before = nic_counters(ns.guest_if, ns.name)
    # Nobody listens in the container: the frames are still received (and counted) by its NIC.
    send_udp(ns.guest_ip, random.randint(20000, 60000), DATAGRAMS, DATAGRAM_BYTES)
    frames = DATAGRAMS * (DATAGRAM_BYTES + UDP_FRAME_OVERHEAD)
    deadline = time.monotonic() + WAIT_SECS
    while nic_counters(ns.guest_if, ns.name)["rx_bytes"] - guest_before["rx_bytes"] < frames:
        assert time.monotonic() < deadline, "the datagrams never reached the container's NIC"
        time.sleep(0.05)
    after = one(sample(s), cid)
    assert after["network_rx_bytes"] - before["network_rx_bytes"] == frames
    assert after["network_rx_packets"] - before["network_rx_packets"] == DATAGRAMS


@pytest.mark.containers
@pytest.mark.network
def test_runc_paused_container_is_paused(runc_container: dict[str, Any], container_sampler: Callable[..., Any]) -> None:
    R = ["runc", "--root", str(runc_container["root"])]
    name = runc_container["name"]
    run([*R, "pause", name])
    try:
        assert json.loads(run([*R, "state", name]).stdout)["status"] == "paused"
        x = one(sample(container_sampler()), runc_container["id"])
        assert x["state"] == "paused"
    finally:
        run([*R, "resume", name], check=False)


def _podman_size(text: str) -> float:
    """podman's human sizes: SI units ("413.7kB", "100.7MB", "0B")."""
    m = re.fullmatch(r"([\d.]+)\s*([kMGT]?)B", text.strip())
    assert m, text
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]


def _podman_secs(text: str) -> float:
    """podman's Go durations ("1.560391235s", "950.1ms", "2m3.5s")."""
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)(h|ms|µs|us|ns|m|s)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}[unit]
    return total


def _mounts_under(base: Path) -> list[str]:
    return [m for m in run(["findmnt", "-rn", "-o", "TARGET"]).stdout.splitlines() if m.startswith(str(base) + "/")]


@pytest.fixture
def podman_container() -> Iterator[dict[str, Any]]:
    """A podman container (TESTBED 3(c) flags: runtime runc, cgroupfs, lowered ulimits since root
    lacks CAP_SYS_RESOURCE) with its own --root/--runroot in a temporary directory, a busybox
    --rootfs, limits of 96 MiB, half a CPU and 32 pids, running a busy loop. The directory is short
    and not pytest's tmp_path: podman refuses a runroot longer than 50 characters."""
    reason = cgroups.have("podman", "runc", "busybox")
    if reason:
        pytest.skip(reason)
    name = short_name()
    base = Path(tempfile.mkdtemp(prefix="hvt-"))
    root = base / "storage"
    PO = [
        "podman", "--root", str(root), "--runroot", str(base / "run"), "--tmpdir", str(base / "tmp"),
        "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc",
    ]  # fmt: skip
    left: list[str] = []

    def remove_base() -> None:
        # Never rmtree through a mount podman left; unmount those (all ours, under base) first.
        left.extend(_mounts_under(base))
        for m in sorted(left, key=len, reverse=True):
            run(["umount", m], check=False)
        if not _mounts_under(base):
            shutil.rmtree(base, ignore_errors=True)

    with contextlib.ExitStack() as stack:
        stack.callback(remove_base)
        stack.enter_context(cgroups.run_state_cleaned())
        stack.enter_context(cgroups.parents_cleaned("libpod_parent"))
        # conmon and the `podman container cleanup` it runs at the container's exit outlive `podman
        # rm` for a moment, in /libpod_parent/conmon: wait for every process that names our root.
        stack.callback(lambda: cgroups.wait_gone(str(base)))
        # -t 0: sh as PID 1 ignores SIGTERM; without it rm waits 10 s.
        stack.callback(lambda: run([*PO, "rm", "-f", "-t", "0", name], check=False, timeout=2 * WAIT_SECS))
        rootfs = cgroups.busybox_rootfs(base / "rootfs")
        r = run(
            [
                *PO, "run", "-d", "--name", name, "--network", "none",
                "--memory", "96m", "--cpus", "0.5", "--cpu-shares", str(CPU_SHARES_MAX), "--pids-limit", "32",
                "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
                "--rootfs", str(rootfs), "/bin/sh", "-c", "while :; do :; done",
            ],
            timeout=2 * WAIT_SECS,
        )  # fmt: skip
        cid = r.stdout.strip().splitlines()[-1]
        yield {"id": cid, "name": name, "podman": PO, "root": root}
    # containers/storage keeps its overlay home (<root>/overlay) bind-mounted private after podman
    # exits, by design; any other mount (a container's rootfs or shm) would be a leak of `podman rm`.
    assert not [m for m in left if m != str(root / "overlay")], f"podman left mounts: {left}"
    assert not _mounts_under(base) and not base.exists(), f"{base} not removed"
    assert not list(cgroups.CGROUP_ROOT.glob(f"*/libpod_parent/libpod-{cid}")), "podman left its cgroup"


def podman_stats(po: list[str], name: str) -> dict[str, Any]:
    rows = json.loads(run([*po, "stats", "--no-stream", "--format", "json", name]).stdout)
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.containers
def test_podman_container_named_and_matches_podman_stats(podman_container: dict[str, Any], container_sampler: Callable[..., Any]) -> None:
    cid, name, po = podman_container["id"], podman_container["name"], podman_container["podman"]
    s = container_sampler(podman_root=str(podman_container["root"]))
    d = sample(s)
    assert cid in d["appeared"]
    time.sleep(WINDOW_SECS)
    p0 = podman_stats(po, name)
    d = sample(s)
    p1 = podman_stats(po, name)
    x = one(d, cid)
    assert (x["runtime"], x["name"], x["cgroup_path"], x["state"]) == ("podman", name, f"/libpod_parent/libpod-{cid}", "running")
    assert p0["id"] == cid[:12]
    _bracket(_podman_secs(p0["cpu_time"]), x["cpu_usage_secs_total"], _podman_secs(p1["cpu_time"]), "cpu time", CPU_JOIN_SKEW_SECS)
    lo, hi = sorted(_podman_size(p["mem_usage"].split("/")[0]) for p in (p0, p1))
    _bracket(lo * (1 - PODMAN_ROUNDING_REL), x["memory_usage_bytes"], hi * (1 + PODMAN_ROUNDING_REL), "memory", MEMORY_DRIFT)
    limit = _podman_size(p0["mem_usage"].split("/")[1])
    assert x["memory_limit_bytes"] == 96 * MiB
    assert x["memory_limit_bytes"] == pytest.approx(limit, rel=PODMAN_ROUNDING_REL)
    assert x["pids_current"] == int(p0["pids"]) == int(p1["pids"]) == 1
    assert x["pids_max"] == 32
    assert x["cpu_limit_cores"] == 0.5
    # The quota holds (how close to it the loop gets depends on other work on this machine).
    assert 0 < x["cpu_cores"] <= 0.5 + QUOTA_SLACK_CORES
    # --network none: its own namespace with only loopback.
    assert x["network_mode"] == "own" and x["network_interfaces"] == []


@pytest.mark.containers
def test_podman_name_falls_back_to_short_id_without_metadata(podman_container: dict[str, Any], container_sampler: Callable[..., Any]) -> None:
    x = one(sample(container_sampler()), podman_container["id"])
    assert x["name"] == podman_container["id"][:12]


@pytest.fixture
def lxc_container(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An LXC busybox container (TESTBED 3(c)) in its own -P directory, no network (lxcbr0 does not
    exist here) and unconfined (no AppArmor). lxc-stop -k and lxc-destroy at teardown; LXC's
    lxc.pivot cgroups and /run/lxc lock directory are removed if they were not there before."""
    reason = cgroups.have("lxc-create", "lxc-start", "lxc-info", "busybox")
    if reason:
        pytest.skip(reason)
    name = short_name()
    lxcpath = tmp_path / "lxc"
    lxcpath.mkdir()
    conf = tmp_path / "lxc.conf"
    conf.write_text("lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n")
    P = ["-P", str(lxcpath), "-n", name]
    with contextlib.ExitStack() as stack:
        stack.enter_context(cgroups.run_state_cleaned(lxc_path=lxcpath))
        stack.enter_context(cgroups.parents_cleaned("lxc.pivot"))
        stack.callback(lambda: run(["lxc-destroy", *P], check=False))
        run(["lxc-create", *P, "-t", "busybox", "-f", str(conf)], timeout=2 * WAIT_SECS)
        stack.callback(lambda: run(["lxc-stop", *P, "-k"], check=False))
        run(["lxc-start", *P, "-d"])
        run(["lxc-wait", *P, "-s", "RUNNING", "-t", str(int(WAIT_SECS))])
        _settle(cgroups.CGROUP_ROOT / "pids" / f"lxc.payload.{name}" / "pids.current")
        yield {"name": name, "P": P}
    left = [str(h) for h in cgroups.CGROUP_ROOT.glob(f"*/lxc.*.{name}")]
    assert not left, f"lxc left {left}"


def _settle(pids_current: Path, quiet_secs: float = 1.0) -> None:
    """Wait until a container's init has started what it starts: pids.current unchanged for
    ``quiet_secs`` (busybox init forks syslogd and gettys right after lxc-start returns)."""
    deadline = time.monotonic() + WAIT_SECS
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = pids_current.read_text().strip()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_secs:
            return
        time.sleep(0.1)
    raise AssertionError(f"{pids_current} never settled (last {last})")


def lxc_info(P: list[str]) -> dict[str, int]:
    """lxc-info -H: raw numbers (CPU use in ns, memory in bytes) read by LXC from the cgroups."""
    out = {}
    for line in run(["lxc-info", *P, "-H"]).stdout.splitlines():
        key, _, value = line.partition(":")
        if value.strip().isdigit():
            out[key.strip()] = int(value)
    return out


@pytest.mark.containers
def test_lxc_container_matches_lxc_info(lxc_container: dict[str, Any], container_sampler: Callable[..., Any]) -> None:
    name, P = lxc_container["name"], lxc_container["P"]
    s = container_sampler()
    assert name in sample(s)["appeared"]
    # Longer than the kernel's 1 s cache of v1 pid lists (see test_new_process_seen_when_sampling_fast).
    time.sleep(WINDOW_SECS)
    i0 = lxc_info(P)
    d = sample(s)
    i1 = lxc_info(P)
    x = one(d, name)
    assert (x["runtime"], x["name"], x["cgroup_path"], x["state"]) == ("lxc", name, f"/lxc.payload.{name}", "running")
    # Its own monitor process sits in lxc.monitor.<name>: not a guest.
    assert not [g for g in d["containers"] if g["cgroup_path"] == f"/lxc.monitor.{name}"]
    _bracket(i0["CPU use"] / 1e9, x["cpu_usage_secs_total"], i1["CPU use"] / 1e9, "cpu", CPU_JOIN_SKEW_SECS)
    lo, hi = sorted((i0["Memory use"], i1["Memory use"]))
    _bracket(lo, x["memory_usage_bytes"], hi, "memory", MEMORY_DRIFT)
    # The busybox template runs init, syslogd and getty(s); all of them are the container's.
    procs = cgroups.pids_in(cgroups.CGROUP_ROOT / "memory" / f"lxc.payload.{name}" / "cgroup.procs")
    assert i0["PID"] in procs
    assert x["processes"] == len(procs) == x["pids_current"]
    assert x["network_mode"] == "own" and x["network_interfaces"] == []
