"""The Rust core's VmSampler (hvstat._core) on this machine's real processes, without libvirt: bare
QEMUs (TCG, 2 vCPUs, ``debug-threads=on``) from tests/virt.py, one on a tap of ours and one on
user-mode networking, and a busy Python process standing in as "the QEMU pid" for the process
fields. The observations are what a QMP collector would hand over: the pid, no NIC counters.

Oracles independent of hvstat: /proc/<pid>/stat and /proc/<pid>/task/*/comm read by the test right
before and right after the sample (so counters are bracketed), psutil for the start time and RSS,
/proc/net/dev for the tap (whose counters hvstat must report swapped: the host's transmit is the
guest's receive), and the raw Ethernet frames the test itself writes into the tap. Every sample is
decoded with a strict copy of the models (unknown fields forbidden) and its keys compared with the
Struct fields both ways (tests/test_models.py's helpers)."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

import virt
from helpers import WAIT_SECS
from hvstat import models
from hvstat._core import ConfigError, CoreError, VmSampler
from test_models import key_set_mismatches, strict

STRICT_DECODER = msgspec.json.Decoder(strict(models.VmsSample))
DECODER = msgspec.json.Decoder(models.VmsSample)
NO_TAP = "no tap interface: QEMU user-mode networking has no counters on the host"
HZ = os.sysconf("SC_CLK_TCK")
# Raw frames the test writes into the tap: broadcast, a locally administered source, the IEEE
# "local experimental" EtherType, so nothing on the host or in the guest answers them.
FRAMES, FRAME_SIZE = 50, 1000


def why_no_qemu() -> str | None:
    if os.geteuid() != 0:
        return "needs root (taps, /proc/<pid>/io of another user's process)"
    if shutil.which(virt.QEMU) is None and not Path(virt.QEMU).exists():
        return f"{virt.QEMU} is not installed (scripts/setup installs it)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    return None


needs_qemu = pytest.mark.skipif(why_no_qemu() is not None, reason=str(why_no_qemu()))


# --- oracles -------------------------------------------------------------------------------------------


def decode(raw: bytes) -> dict[str, Any]:
    """The sample as JSON data, after the strict decode and the key check both ways."""
    STRICT_DECODER.decode(raw)
    DECODER.decode(raw)
    data = json.loads(raw)
    assert key_set_mismatches(data, models.VmsSample) == []
    return data


def observations(*vms: dict[str, Any]) -> bytes:
    return json.dumps({"vms": list(vms)}).encode()


def qmp_vm(vm_id: str, pid: int | None, **more: Any) -> dict[str, Any]:
    """A VM as the QMP collector observes it: the pid from SO_PEERCRED, no NIC counters."""
    return {"id": vm_id, "name": vm_id, "origin": "qmp", "status": "running", "pid": pid, "nics": None, **more}


def proc_stat(pid: int) -> tuple[int, float]:
    """(num_threads, utime + stime in seconds) of /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # fields[0] is field 3 (state) of proc(5).
    return int(fields[17]), (int(fields[11]) + int(fields[12])) / HZ


def thread_names(pid: int) -> dict[int, str]:
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out[int(t.name)] = (t / "comm").read_text().rstrip("\n")
    return out


def tap_counters(ifname: str) -> dict[str, int]:
    """The host's view of ``ifname`` in /proc/net/dev."""
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == ifname:
            v = [int(x) for x in rest.split()]
            return {"rx_bytes": v[0], "rx_packets": v[1], "rx_dropped": v[3], "tx_bytes": v[8], "tx_packets": v[9], "tx_dropped": v[11]}
    raise AssertionError(f"{ifname} not in /proc/net/dev")


def expected_cgroup(pid: int) -> str:
    """The rule of docs and models: the unified line unless it is "/", else the cpu/cpuacct v1 line,
    else the first line."""
    lines = [ln.split(":", 2) for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    for hid, ctrl, path in lines:
        if hid == "0" and ctrl == "" and path != "/":
            return path
    for _, ctrl, path in lines:
        if {"cpu", "cpuacct"} & set(ctrl.split(",")):
            return path
    return lines[0][2]


def send_frames(ifname: str, count: int, size: int) -> None:
    frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", 0x88B5) + bytes(size - 14)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((ifname, 0))
        for _ in range(count):
            assert s.send(frame) == size


def wait_for(what: str, ok: Callable[[], Any], timeout: float = WAIT_SECS) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := ok()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.05)
    return value


def vcpu_threads(pid: int, n: int) -> dict[int, int]:
    """vCPU index -> tid from the threads' names, once all ``n`` exist."""

    def found() -> dict[int, int] | None:
        names = thread_names(pid)
        got = {int(c[4:].split("/")[0]): t for t, c in names.items() if c.startswith("CPU ") and c.endswith("/TCG")}
        return got if len(got) == n else None

    return wait_for(f"{n} vCPU threads of {pid}", found)


def sample_bracketed(s: VmSampler, obs: bytes, pid: int, tap: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One sample with the oracles read right before and right after it; retried (a few times) until
    QEMU's thread count held still across it, so that the thread count is exact."""
    for _ in range(10):
        before = {"stat": proc_stat(pid), "rss": psutil.Process(pid).memory_info().rss, "tap": tap and tap_counters(tap)}
        data = decode(s.sample(obs))
        after = {"stat": proc_stat(pid), "rss": psutil.Process(pid).memory_info().rss, "tap": tap and tap_counters(tap)}
        if before["stat"][0] == after["stat"][0]:
            return data, {"before": before, "after": after}
        time.sleep(0.05)
    raise AssertionError("QEMU's thread count never held still across a sample")


def check_process(v: dict[str, Any], pid: int, o: dict[str, Any]) -> None:
    p = v["process"]
    assert p["pid"] == pid
    assert p["threads"] == o["before"]["stat"][0]
    assert o["before"]["stat"][1] <= p["cpu_secs_total"] <= o["after"]["stat"][1]
    lo, hi = sorted((o["before"]["rss"], o["after"]["rss"]))
    assert p["rss_bytes"] > 0 and lo - (1 << 20) <= p["rss_bytes"] <= hi + (1 << 20), (p["rss_bytes"], lo, hi)
    assert v["memory_rss_bytes"] == p["rss_bytes"]
    # psutil computes the same btime + starttime / CLK_TCK from the same files.
    assert p["started_at"] == pytest.approx(psutil.Process(pid).create_time(), abs=1.0 / HZ)
    assert p["cgroup_path"] == expected_cgroup(pid)
    assert isinstance(p["read_bytes"], int) and isinstance(p["write_bytes"], int)
    # The test's QEMU runs in the test's own cgroup, in no VM scope: no cgroup, and the reason.
    assert v["cgroup"] is None and "is not in a VM scope" in v["unavailable"]["cgroup"], v["unavailable"]


# --- a bare QEMU on a tap --------------------------------------------------------------------------------


@pytest.mark.qemu
@needs_qemu
def test_real_qemu_on_a_tap() -> None:
    with virt.qmp_qemu(vcpus=2, tap=True) as vm:
        assert vm.tap is not None
        vm_id = f"vm-{vm.token}"
        tids = vcpu_threads(vm.pid, 2)
        assert thread_names(vm.pid)[tids[0]] == "CPU 0/TCG" and thread_names(vm.pid)[tids[1]] == "CPU 1/TCG"
        obs = observations(qmp_vm(vm_id, vm.pid))
        s = VmSampler()

        # Frames into the tap: counted as the host's transmit once QEMU reads them (its NIC is up once
        # the firmware's network boot opens it), which is the guest's receive.
        start = tap_counters(vm.tap)
        send_frames(vm.tap, FRAMES, FRAME_SIZE)
        wait_for("QEMU to read the frames", lambda: tap_counters(vm.tap)["tx_packets"] >= start["tx_packets"] + FRAMES)

        data, o = sample_bracketed(s, obs, vm.pid, vm.tap)
        assert data["appeared"] == [vm_id] and data["vanished"] == []
        assert data["host_cpus"] == os.cpu_count()
        v = data["vms"][0]
        assert (v["id"], v["origin"], v["status"]) == (vm_id, "qmp", "running")
        check_process(v, vm.pid, o)

        # vCPUs: found by their thread names, timed from their threads.
        assert v["vcpus"] == 2
        assert [(c["index"], c["tid"], c["origin"]) for c in v["vcpu"]] == [(0, tids[0], "thread"), (1, tids[1], "thread")]
        assert all(c["cpu_secs_total"] is not None and c["steal_secs_total"] is not None for c in v["vcpu"])

        # The tap, in the guest's view: rx and tx swapped against the host's /proc/net/dev.
        assert [n["name"] for n in v["nics"]] == [vm.tap]
        nic = v["nics"][0]
        assert nic["origin"] == "tap"
        b, a = o["before"]["tap"], o["after"]["tap"]
        for guest, host in [("rx_bytes", "tx_bytes"), ("tx_bytes", "rx_bytes"), ("rx_packets", "tx_packets"), ("tx_packets", "rx_packets"), ("rx_dropped", "tx_dropped"), ("tx_dropped", "rx_dropped")]:
            assert b[host] <= nic[guest] <= a[host], (guest, nic[guest], host, b[host], a[host])
        assert nic["rx_bytes"] >= start["tx_bytes"] + FRAMES * FRAME_SIZE, "the frames we sent are what the guest received"
        assert (v["network_rx_bytes"], v["network_tx_bytes"]) == (nic["rx_bytes"], nic["tx_bytes"])

        # First sample: no rates, each null headline field with its reason.
        assert v["cpu_usage_percent"] is None and v["cpu_cores"] is None and nic["rx_bytes_per_sec"] is None
        assert v["unavailable"]["rates"] == "first sample of this VM: a rate needs two readings"
        for k in ("cpu_usage_percent", "memory_usage_percent", "disk_read_bytes", "disk_write_bytes"):
            assert v[k] is None and k in v["unavailable"], k

        paths = s.paths()
        for tid in tids.values():
            assert f"/proc/{vm.pid}/task/{tid}/stat" in paths and f"/proc/{vm.pid}/task/{tid}/schedstat" in paths
        assert f"/proc/{vm.pid}/net/dev" in paths

        # Second sample, after more frames: every rate is there.
        time.sleep(0.5)
        start = tap_counters(vm.tap)
        send_frames(vm.tap, FRAMES, FRAME_SIZE)
        wait_for("QEMU to read the frames", lambda: tap_counters(vm.tap)["tx_packets"] >= start["tx_packets"] + FRAMES)
        data, o = sample_bracketed(s, obs, vm.pid, vm.tap)
        assert data["appeared"] == [] and data["interval_secs"] > 0.5
        v = data["vms"][0]
        check_process(v, vm.pid, o)
        assert "rates" not in v["unavailable"], v["unavailable"]
        assert v["cpu_cores"] > 0 and v["cpu_usage_percent"] == pytest.approx(v["cpu_cores"] / os.cpu_count() * 100)
        assert v["cpu_vcpu_percent"] is not None and v["cpu_vcpu_percent"] >= 0
        assert all(c["cpu_percent"] is not None and c["steal_percent"] is not None for c in v["vcpu"])
        assert v["process"]["read_bytes_per_sec"] is not None
        nic = v["nics"][0]
        assert nic["rx_bytes_per_sec"] >= FRAMES * FRAME_SIZE / data["interval_secs"] / 2
        assert v["network_rx_bytes_per_sec"] == nic["rx_bytes_per_sec"]

        # Paused (QMP stop on the helper socket): the process stays, rates go.
        vm.qmp("stop")
        v = decode(s.sample(observations(qmp_vm(vm_id, vm.pid, status="paused"))))["vms"][0]
        assert v["process"]["pid"] == vm.pid
        assert v["cpu_usage_percent"] is None
        assert v["unavailable"]["rates"] == "the VM is paused: rates are reported only while it runs"
        vm.qmp("cont")
        pid = vm.pid

    # The QEMU is gone (killed and reaped by the context manager).
    assert virt.leftovers(vm.token) == []
    v = decode(s.sample(obs))["vms"][0]
    assert v["process"] is None
    assert v["unavailable"]["process"] == f"the QEMU process {pid} is gone"
    assert v["nics"] == [] and v["network_rx_bytes"] is None
    assert s.paths() == ["/sys/devices/system/cpu/online"], "its readers are closed"
    assert decode(s.sample(observations()))["vanished"] == [vm_id]


@pytest.mark.qemu
@needs_qemu
def test_real_qemu_on_user_networking_has_no_tap() -> None:
    with virt.qmp_qemu(vcpus=1) as vm:
        tids = vcpu_threads(vm.pid, 1)
        s = VmSampler()
        data, o = sample_bracketed(s, observations(qmp_vm("u", vm.pid)), vm.pid)
        v = data["vms"][0]
        check_process(v, vm.pid, o)
        assert [(c["index"], c["tid"]) for c in v["vcpu"]] == [(0, tids[0])]
        assert v["nics"] == []
        assert v["network_rx_bytes"] is None and v["network_tx_bytes"] is None
        assert v["unavailable"]["network_rx_bytes"] == NO_TAP
        assert v["unavailable"]["nics"] == NO_TAP
    assert virt.leftovers(vm.token) == []


# --- a busy Python process standing in for QEMU ----------------------------------------------------------


@pytest.fixture
def busy_process() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        yield p
    finally:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=WAIT_SECS)
        if p.stdout is not None:
            p.stdout.close()


@pytest.mark.live
def test_stand_in_process_fields_rates_and_exit(busy_process: subprocess.Popen[bytes]) -> None:
    pid = busy_process.pid
    s = VmSampler()
    obs = observations(qmp_vm("py", pid))
    data, o = sample_bracketed(s, obs, pid)
    v = data["vms"][0]
    check_process(v, pid, o)
    assert v["process"]["threads"] == 1
    # Not a QEMU: no vCPU threads by name, no taps; each says why.
    assert v["vcpu"] == [] and v["vcpus"] is None
    assert "debug-threads=on" in v["unavailable"]["vcpu"]
    assert v["nics"] == [] and v["unavailable"]["network_rx_bytes"] == NO_TAP

    time.sleep(0.5)
    data, o = sample_bracketed(s, obs, pid)
    v = data["vms"][0]
    check_process(v, pid, o)
    # A busy loop on a 2-CPU machine: most of one core (other tests may run beside it).
    assert 0.2 < v["cpu_cores"] <= 1.05
    assert v["cpu_usage_percent"] == pytest.approx(v["cpu_cores"] / data["host_cpus"] * 100)
    assert v["cpu_secs_total"] == v["process"]["cpu_secs_total"]
    assert v["cpu_vcpu_percent"] is None and v["unavailable"]["cpu_vcpu_percent"] == "the number of vCPUs is unknown"
    assert v["process"]["read_bytes_per_sec"] == 0.0

    # With a vCPU count from the collector, the whole process stands in for the vCPUs.
    v = decode(s.sample(observations(qmp_vm("py", pid, vcpus_current=2))))["vms"][0]
    assert v["cpu_vcpu_percent"] == pytest.approx(v["cpu_cores"] / 2 * 100)

    os.killpg(pid, signal.SIGKILL)
    busy_process.wait(timeout=WAIT_SECS)
    v = decode(s.sample(obs))["vms"][0]
    assert v["process"] is None and v["unavailable"]["process"] == f"the QEMU process {pid} is gone"
    assert v["cpu_usage_percent"] is None and "cpu_usage_percent" in v["unavailable"]


@pytest.mark.unit
def test_shutoff_libvirt_vm_and_collector_values_pass_through() -> None:
    """No process to read: everything comes from the observation, unknowns stay null with reasons."""
    s = VmSampler()
    off = {
        "id": "c537f88a",
        "name": "db",
        "origin": "libvirt",
        "status": "shutoff",
        "status_reason": "shutdown",
        "vcpus_max": 4,
        "memory_max_bytes": 1 << 30,
        "nics": [],
        "unavailable": {"balloon": "not running"},
    }
    data = decode(s.sample(observations(off)))
    v = data["vms"][0]
    assert (v["status"], v["status_reason"], v["vcpus_max"], v["memory_max_bytes"]) == ("shutoff", "shutdown", 4, 1 << 30)
    assert v["process"] is None and v["unavailable"]["process"] == "no QEMU process: the VM is shutoff"
    assert v["unavailable"]["balloon"] == "not running", "the collector's reasons are kept"
    assert v["unavailable"]["memory_usage_percent"] == "not running"
    for k in ("cpu_usage_percent", "memory_usage_percent", "disk_read_bytes", "disk_write_bytes", "network_rx_bytes", "network_tx_bytes"):
        assert v[k] is None and k in v["unavailable"], k
    assert s.paths() == ["/sys/devices/system/cpu/online"]


# --- the binding's surface ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_bad_input_raises_core_error() -> None:
    s = VmSampler()
    for bad, words in [
        (b"{", "EOF while parsing"),
        (b'{"vms": [{"id": "a"}]}', "missing field `name`"),
        (b'{"vms": [{"id": "a", "name": "a", "origin": "qmp", "status": "running", "surprise": 1}]}', "unknown field `surprise`"),
        (b'{"vms": [{"id": "a", "name": "a", "origin": "qmp", "status": "running", "cpu_time_ns": -1}]}', "invalid value"),
        (b'{"vms": [{"id": "a", "name": "a", "origin": "xen", "status": "running"}]}', "unknown variant `xen`"),
    ]:
        with pytest.raises(CoreError, match=words):
            s.sample(bad)
    # What the service encodes is accepted (every field, defaults included).
    enc = msgspec.json.encode(models.VmObservations(vms=[models.VmObservation(id="a", name="a", origin="qmp", status="running")]))
    assert decode(s.sample(enc))["vms"][0]["id"] == "a"


@pytest.mark.unit
def test_config() -> None:
    assert json.loads(VmSampler().config_json()) == {"proc_root": "/proc", "sys_root": "/sys", "rootfs": "/"}
    assert json.loads(VmSampler('{"proc_root": "/host/proc"}').config_json())["proc_root"] == "/host/proc"
    with pytest.raises(ConfigError, match="unknown field `proc_rot`"):
        VmSampler('{"proc_rot": "/x"}')
    assert issubclass(ConfigError, CoreError)


@pytest.mark.unit
def test_stub_matches_the_extension() -> None:
    stub = ast.parse((Path(models.__file__).parent / "_core.pyi").read_text())
    cls = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "VmSampler")
    stubbed = {f.name for f in cls.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("_")}
    assert stubbed == {n for n in dir(VmSampler) if not n.startswith("_")} == {"sample", "paths", "config_json"}
