#!/usr/bin/env python3
"""VM benchmark: what one VM tick costs, per tick and per VM, for N real libvirt domains (and a few
bare QEMUs with QMP), with each part of hvstat's path and its peers side by side, in one run.

For each N of --counts (default 1, 10, 50; the fleet grows, nothing is re-created) the bench runs N
transient libvirt domains: TCG, 64 MiB, 1 vCPU, a 16 MiB qcow2 disk (vda) and a tap NIC each, a
virtio balloon with stats polling, started PAUSED (VIR_DOMAIN_START_PAUSED: a real QEMU process
with all its devices that never runs guest code, so 50 of them add no load to a 2-CPU machine).
Names are hvstat-bench-<run tag><n>, taps hvb<run tag><n>.

libvirt lines (see bench/README.md, "VMs"):
  bulk call            conn.getAllDomainStats(0, NOWAIT) on a read-only connection: what
                       LibvirtCollector.observe() asks libvirtd for (every stat group)
  bulk, used groups    the same call asking only for the groups the mapping reads (state, cpu,
                       balloon, vcpu, interface, block): what the collector could ask for
  mapping              LibvirtCollector._observation() over the records of one bulk call: the
                       libvirt record -> VmObservation mapping in Python
  per-domain           the peer way (libvirt exporters that predate the bulk API): listAllDomains,
                       then per domain info(), vcpus(), blockStats() per disk, interfaceStats()
                       per NIC, memoryStats(); disk and NIC names parsed once from the XML
  per-domain + XML     the same, parsing XMLDesc() every tick as kumina/libvirt_exporter does
  encode               msgspec: the observations -> JSON bytes for the core
  core                 VmSampler.sample(observations JSON): decode, /proc/<pid> reads, math, JSON
  core + decode        vms_sample_decoder.decode(VmSampler.sample(...)): typed Structs (the
                       core reads each VM's cgroup, the machine scope of its QEMU, itself)
  VmSource.sample()    the whole tick the service runs in its worker thread (QMP off)
  floor (C)            the files of VmSampler.paths(), kept open, pread (bench/floor.c -l)

QMP lines, for 1 and 4 bare QEMUs (tests/virt.py qmp_qemu: TCG, 1 vCPU, 64 MiB, a disk, a tap,
a balloon; stopped with QMP "stop" after start):
  poll (per-poll conn)    QmpCollector.poll() with keep_open=False (the service's default)
  poll (kept conn)        QmpCollector.poll() with keep_open=True (on each QEMU's second monitor)
  core / core + decode    VmSampler on those observations: vCPU threads, net/dev, taps
  floor (C)               the files of that sampler's paths()

Method as in node.py and containers.py: round-robin (every repeat runs each line in turn), best
and median over the repeats of the mean per tick, garbage collector off while a line is timed. A
libvirt call is mostly waiting for libvirtd and QEMU, which run on the other CPU: the CPU time
libvirtd and the bench's QEMUs spend per tick (from /proc/<pid>/task/*/schedstat) is reported
beside each line, and "noise" is the CPU of everything else.

Cleanup is unconditional (success, exception, Ctrl-C, SIGTERM, SIGHUP; signals held back while it
runs): every domain destroyed, taps, disks and the run's directory removed, libvirt's per-domain
logs and any per-VM cgroup it left, and /sys/fs/cgroup/*/machine only where it did not exist
before the run and is empty; the bare QEMUs are killed by tests/virt.py. What a run makes is
recorded in bench/out/vms.state.json first; `--cleanup` removes what a SIGKILLed run left.

Usage: python bench/vms.py [--counts 1,10,50] [--qmp-counts 1,4] [--repeats 5] [--json FILE]
       python bench/vms.py --cleanup
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import inspect
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(REPO / "tests"))  # tests/virt.py: libvirtd, bare QEMUs (and its helpers.py)
from node import build_floor, busy_secs, machine, own_secs, run_floor, stats  # noqa: E402

STATE = OUT / "vms.state.json"
PREFIX = "hvstat-bench-"
URI = "qemu:///system"
QEMU = "/usr/bin/qemu-system-x86_64"
CG = Path("/sys/fs/cgroup")
LIBVIRT_LOG_DIR = Path("/var/log/libvirt/qemu")
LIBVIRT_PID_DIR = Path("/run/libvirt/qemu")
LIBVIRTD_PIDFILE = Path("/run/libvirtd.pid")
DISK_MIB = 16
# A paused 64 MiB TCG domain's QEMU holds about 40 MiB RSS here; leave room for the rest.
MIB_PER_DOMAIN = 100
CREATE_WORKERS = 4  # libvirtd's default max_client_requests is 5 per connection


# --------------------------------------------------------------------------------------------
# CPU time of other processes (libvirtd, QEMU) and of the machine


def cpu_ns(pids) -> int:
    """Run time (ns) of every thread of ``pids``, from /proc/<pid>/task/<tid>/schedstat; threads and
    processes that are gone count 0."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def steal_secs() -> float:
    with open("/proc/stat", "rb") as f:
        v = f.readline().split()
    return int(v[8]) / os.sysconf("SC_CLK_TCK") if len(v) > 8 else 0.0


def libvirtd_pid() -> int | None:
    try:
        pid = int(LIBVIRTD_PIDFILE.read_text().split()[0])
        return pid if Path(f"/proc/{pid}").exists() else None
    except (OSError, ValueError, IndexError):
        return None


def other_domains() -> list[str]:
    """Running libvirt domains that are not this bench's (another session's tests)."""
    if libvirtd_pid() is None:
        return []
    r = subprocess.run(["virsh", "-q", "-c", URI, "list", "--name"], capture_output=True, text=True, timeout=60)
    return [n for n in r.stdout.split() if not n.startswith(PREFIX)]


def wait_quiet(limit: float) -> str:
    """Up to ``limit`` s for other processes to use < 0.1 CPUs over 2 s and for no other libvirt
    domain to run; says what it found."""
    t0 = time.monotonic()
    while True:
        b0, o0, w0 = busy_secs(), own_secs(), time.monotonic()
        time.sleep(2)
        cpus = max(0.0, (busy_secs() - b0) - (own_secs() - o0)) / (time.monotonic() - w0)
        others = other_domains()
        waited = time.monotonic() - t0
        quiet = cpus < 0.1 and not others
        if quiet or waited > limit:
            return (f"waited {waited:.0f} s for quiet: other CPU {cpus:.2f}, other domains {len(others)}"
                    + ("" if quiet else " (gave up: NOT QUIET)"))


# --------------------------------------------------------------------------------------------
# The domains and bare QEMUs one run makes, and their removal


def domain_xml(name: str, disk: Path, tap: str) -> str:
    """TESTBED.md 1.5's domain, smaller: no kernel (it never runs: started paused), a virtio disk,
    a tap libvirt makes (type='ethernet', no bridge), a virtio balloon with stats polling."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuidlib.uuid4()}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>{QEMU}</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
    <interface type='ethernet'><target dev='{tap}' managed='yes'/><model type='virtio'/></interface>
    <memballoon model='virtio'><stats period='10'/></memballoon>
  </devices>
</domain>
"""


class Fleet:
    """The transient domains (and bare QEMUs) of one run. Everything is recorded in the state
    file before it is made, so a failure at any point leaves a complete list for destroy()."""

    def __init__(self):
        self.tag = secrets.token_hex(4)
        self.bench_pid = os.getpid()
        self.dir = Path(f"/tmp/{PREFIX}{self.tag}")
        self.names: list[str] = []
        # /sys/fs/cgroup/<h>/machine dirs that existed before the run: never removed.
        self.machine_before = sorted(str(p) for p in CG.glob("*/machine") if p.is_dir())
        self.qemus: list[dict] = []  # bare QEMUs: token, pid, dir, tap (virt.qmp_qemu removes them)
        self._conn = None

    def save(self):
        OUT.mkdir(exist_ok=True)
        doc = {"tag": self.tag, "bench_pid": self.bench_pid, "dir": str(self.dir), "names": self.names,
               "machine_before": self.machine_before, "qemus": self.qemus}
        tmp = STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, STATE)

    def conn(self):
        import libvirt

        if self._conn is None:
            self._conn = libvirt.open(URI)
        return self._conn

    @staticmethod
    def tap(name: str) -> str:
        return "hvb" + name[len(PREFIX):]  # hvb + 8 hex tag + 2 hex: 13 of IFNAMSIZ's 15

    def grow(self, total: int):
        """Start domains until ``total`` of ours run (paused)."""
        import libvirt

        if not self.dir.exists():
            self.dir.mkdir(mode=0o755)
            self.dir.chmod(0o755)  # QEMU runs as libvirt-qemu and must reach the disks
        new = [f"{PREFIX}{self.tag}{i:02x}" for i in range(len(self.names), total)]
        self.names += new
        self.save()
        conn = self.conn()

        def start(name: str):
            disk = self.dir / f"{name}.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), f"{DISK_MIB}M"], check=True,
                           stdin=subprocess.DEVNULL, capture_output=True)
            conn.createXML(domain_xml(name, disk, self.tap(name)), libvirt.VIR_DOMAIN_START_PAUSED)

        with ThreadPoolExecutor(CREATE_WORKERS) as pool:
            for f in [pool.submit(start, n) for n in new]:
                f.result()

    def pids(self) -> list[int]:
        out = []
        for n in self.names:
            with contextlib.suppress(OSError, ValueError, IndexError):
                out.append(int((LIBVIRT_PID_DIR / f"{n}.pid").read_text().split()[0]))
        return out

    def destroy(self) -> list[str]:
        """Remove every domain and what it left; returns what could not be removed."""
        problems: list[str] = []
        if self.names:
            problems += _destroy_domains(self.names, self.conn() if self._conn or _libvirtd_up() else None)
            for n in self.names:
                t = self.tap(n)
                if Path(f"/sys/class/net/{t}").exists():
                    r = subprocess.run(["ip", "link", "del", t], capture_output=True, text=True)
                    if r.returncode != 0:
                        problems.append(f"ip link del {t}: {r.stderr.strip()}")
                with contextlib.suppress(FileNotFoundError):
                    (LIBVIRT_LOG_DIR / f"{n}.log").unlink()
            problems += _remove_cgroups(self.names, self.machine_before)
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if not problems and not self.qemus:
            self.names = []
            STATE.unlink(missing_ok=True)
        return problems


def _libvirtd_up() -> bool:
    return libvirtd_pid() is not None


def _destroy_domains(names: list[str], conn) -> list[str]:
    """Destroy each domain (in parallel: libvirt waits for init to reap each QEMU, 1-2 s here) and
    wait until none of them exists any more (a destroyed transient domain is gone)."""
    import libvirt

    if conn is None:
        return [f"libvirtd is not running: cannot destroy {len(names)} domains {names[:3]}..."]
    problems: list[str] = []

    def one(name: str):
        try:
            conn.lookupByName(name).destroy()
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                problems.append(f"destroy {name}: {e.get_error_message()}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, names))
    deadline = time.monotonic() + 60
    left = names
    while left and time.monotonic() < deadline:
        left = [n for n in left if _exists(conn, n)]
        if left:
            time.sleep(0.2)
    if left:
        problems.append(f"domains still there after 60 s: {left[:5]}")
    return problems


def _exists(conn, name: str) -> bool:
    import libvirt

    try:
        conn.lookupByName(name)
        return True
    except libvirt.libvirtError:
        return False


def _remove_cgroups(names: list[str], machine_before: list[str]) -> list[str]:
    """libvirt's per-VM cgroups (machine/qemu-<id>-<name>.libvirt-qemu and its emulator/vcpuN
    children) if it left any, then each /sys/fs/cgroup/*/machine that this run made and that is
    empty now (libvirt makes it and never removes it, TESTBED.md 1.5)."""
    problems = []
    suffixes = tuple(f"-{n}.libvirt-qemu" for n in names)
    for m in CG.glob("*/machine"):
        for d in [c for c in m.iterdir() if c.is_dir() and c.name.endswith(suffixes)]:
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [d]:
                if not _rmdir(sub):
                    problems.append(f"cannot rmdir {sub}")
    for m in CG.glob("*/machine"):
        if str(m) in machine_before:
            continue
        if any(c.is_dir() for c in m.iterdir()):
            print(f"note: left {m} in place: it holds other VMs' cgroups now", file=sys.stderr)
            continue
        if not _rmdir(m):
            problems.append(f"cannot rmdir {m}")
    return problems


def _rmdir(d: Path, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def _guarded(fn: Callable[[], Any]) -> Any:
    """fn() with SIGINT/SIGTERM/SIGHUP held back, so that a second signal cannot cut cleanup short."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        return fn()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def cleanup_leftovers() -> int:
    """--cleanup: what a SIGKILLed run left, from the state file."""
    if not STATE.exists():
        print("nothing to clean up (no bench/out/vms.state.json)")
        return 0
    doc = json.loads(STATE.read_text())
    with contextlib.suppress(OSError):
        if b"vms.py" in Path(f"/proc/{doc['bench_pid']}/cmdline").read_bytes():
            print(f"the bench that wrote the state file (pid {doc['bench_pid']}) is still running; stop it instead")
            return 1
    problems = []
    for q in doc.get("qemus", []):
        with contextlib.suppress(OSError):
            if q["token"].encode() in Path(f"/proc/{q['pid']}/cmdline").read_bytes():
                os.kill(q["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{q['pid']}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if q.get("tap") and Path(f"/sys/class/net/{q['tap']}").exists():
            subprocess.run(["ip", "link", "del", q["tap"]], capture_output=True)
        shutil.rmtree(q["dir"], ignore_errors=True)
    f = Fleet()
    f.tag, f.dir, f.names, f.machine_before = doc["tag"], Path(doc["dir"]), doc["names"], doc["machine_before"]
    problems += _guarded(f.destroy)
    if not problems:
        STATE.unlink(missing_ok=True)
    print("cleaned up run", doc["tag"], "; problems: " + "; ".join(problems) if problems else "")
    return 1 if problems else 0


# --------------------------------------------------------------------------------------------
# Timing: round-robin lines, best and median over repeats, CPU of libvirtd and QEMU beside each


class Watch:
    """CPU time of the helper processes a line makes work (libvirtd, the bench's QEMUs)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]):
        self.groups = groups

    def read(self) -> dict[str, int]:
        return {k: cpu_ns(f()) for k, f in self.groups.items()}


async def _call(fn, is_async: bool):
    if is_async:
        await fn()
    else:
        fn()


async def time_lines(lines: dict[str, Callable], floors: dict[str, list[str]], repeats: int, line_secs: float,
                     watch: Watch, max_iters: int = 20000) -> dict[str, Any]:
    """Every line in turn, ``repeats`` times. Each line runs as many ticks per repeat as fit in
    ``line_secs`` (at least 3), calibrated on one warm tick. Floors run as subprocesses timing their
    own loop (``-n`` set to the same time budget). Returns per line: stats over the repeats, the
    iterations, and the helper processes' CPU per tick (median over the repeats)."""
    iters: dict[str, int] = {}
    kinds = {n: inspect.iscoroutinefunction(fn) for n, fn in lines.items()}
    for name, fn in lines.items():
        await _call(fn, kinds[name])
        t0 = time.perf_counter()
        await _call(fn, kinds[name])
        dt = time.perf_counter() - t0
        iters[name] = max(3, min(max_iters, int(line_secs / max(dt, 1e-7))))
    for name, argv in floors.items():
        once = run_floor(argv[:argv.index("-n") + 1] + ["10"] + argv[argv.index("-n") + 2:])["per_sample_us"][0]
        iters[name] = max(3, min(10 * max_iters, int(line_secs / max(once * 1e-6, 1e-7))))
    per: dict[str, list[float]] = {n: [] for n in [*lines, *floors]}
    helpers: dict[str, dict[str, list[float]]] = {n: {k: [] for k in [*watch.groups, "bench"]} for n in lines}
    perf = time.perf_counter
    wall0, busy0, own0, steal0 = time.monotonic(), busy_secs(), own_secs(), steal_secs()
    helper_total = 0
    for _ in range(repeats):
        for name, fn in lines.items():
            n, is_async = iters[name], kinds[name]
            gc.collect()
            c0 = watch.read()
            own_t0 = time.process_time()
            gc.disable()
            try:
                t0 = perf()
                if is_async:
                    for _ in range(n):
                        await fn()
                else:
                    for _ in range(n):
                        fn()
                per[name].append((perf() - t0) / n * 1e6)
            finally:
                gc.enable()
            # This process's CPU (every thread: libvirt's client and event loop, asyncio's workers).
            helpers[name]["bench"].append((time.process_time() - own_t0) / n * 1e6)
            c1 = watch.read()
            for k in watch.groups:
                d = max(0, c1[k] - c0[k])
                helper_total += d
                helpers[name][k].append(d / n / 1e3)
        for name, argv in floors.items():
            a = list(argv)
            a[a.index("-n") + 1] = str(iters[name])
            per[name].append(run_floor(a)["per_sample_us"][0])
    wall = time.monotonic() - wall0
    steal = (steal_secs() - steal0) / wall
    others = max(0.0, (busy_secs() - busy0) - (own_secs() - own0) - helper_total / 1e9 - (steal_secs() - steal0)) / wall
    res = {}
    for name in per:
        r = stats(per[name])
        r["iterations"] = iters[name]
        if name in helpers:
            r["helper_cpu_us"] = {k: statistics.median(v) for k, v in helpers[name].items()}
        res[name] = r
    return {"results": res, "wall_secs": wall, "other_cpus": others, "steal_cpus": steal}


def floor_list(paths: list[str], path: Path) -> Path:
    """floor.c's -l file: every path a Whole file (one pread at 0), net/dev a Records file."""
    path.write_text("".join(f"{'r' if p.endswith('/net/dev') else 'w'} {p}\n" for p in paths))
    return path


def strace_preads(sample: Callable[[], Any], calls: int, out: Path) -> dict[str, float] | None:
    """Syscalls per call of ``sample`` in this thread (strace -c attached outside the timed loops)."""
    exe = shutil.which("strace")
    if not exe:
        return None
    p = subprocess.Popen([exe, "-c", "-o", str(out), "-p", str(threading.get_native_id())],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if b"attached" not in p.stderr.readline():
        p.kill()
        p.wait()
        return None
    for _ in range(calls):
        sample()
    p.send_signal(signal.SIGINT)
    p.wait(30)
    p.stderr.close()
    counts = {}
    for line in out.read_text().splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)$", line)
        if m and m.group(3) != "total":
            counts[m.group(3)] = int(m.group(1)) / calls
    return {k: v for k, v in counts.items() if v >= 1}


# --------------------------------------------------------------------------------------------
# libvirt: one N


def xml_devices(xml: str) -> tuple[list[str], list[str]]:
    """(disk target devs, interface target devs) of a domain XML, as libvirt_exporter reads them."""
    root = ET.fromstring(xml)
    disks = [t.get("dev") for t in root.findall("./devices/disk/target") if t.get("dev")]
    nics = [t.get("dev") for t in root.findall("./devices/interface/target") if t.get("dev")]
    return disks, nics  # type: ignore[return-value]


# The stat groups of virConnectGetAllDomainStats (flags 0 asks for every one the driver supports).
STAT_GROUPS = ("STATE", "CPU_TOTAL", "BALLOON", "VCPU", "INTERFACE", "BLOCK", "PERF", "IOTHREAD", "MEMORY", "DIRTYRATE", "VM")


def measure_libvirt(fleet: Fleet, n: int, ro, source, sampler, args, exe: Path, breakdown: bool) -> dict[str, Any]:
    import libvirt

    from hvstat.models import VmObservations, encoder, vms_sample_decoder

    NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
    USED = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON
            | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK)
    ACTIVE = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
    collector = source.libvirt

    # What is there: ours and anybody else's (the bulk call reports every domain).
    ours = set(fleet.names)
    doms = ro.listAllDomains(0)
    others = sorted(d.name() for d in doms if d.name() not in ours)
    records = ro.getAllDomainStats(0, NOWAIT)
    guests = len(records)
    if sum(1 for d, _ in records if d.name() in ours) != n:
        raise RuntimeError(f"N={n}: the bulk call reports {sum(1 for d, _ in records if d.name() in ours)} of our {n} domains")

    # Prime: the collector's pid cache and names, the core's readers, VmSource's own sampler.
    observations = collector.observe()
    obs_json = encoder.encode(VmObservations(vms=observations))
    sampler.sample(obs_json)
    sample = vms_sample_decoder.decode(sampler.sample(obs_json))
    source.sample()
    whole = source.sample()
    cgroups_read = sum(1 for v in whole.vms if v.cgroup is not None)
    problems = {v.name: v.unavailable for v in sample.vms if v.name in ours and any(
        k.startswith(("process", "memory_rss", "vcpu")) for k in v.unavailable)}
    if problems:
        raise RuntimeError(f"N={n}: the core could not read some QEMU processes: {list(problems.items())[:2]}")

    devices: dict[str, tuple[list[str], list[str]]] = {}
    for d in ro.listAllDomains(ACTIVE):
        devices[d.UUIDString()] = xml_devices(d.XMLDesc(0))

    def bulk():
        ro.getAllDomainStats(0, NOWAIT)

    def bulk_used():
        ro.getAllDomainStats(USED, NOWAIT)

    observe_one = collector._observation

    def mapping():
        [observe_one(d, s) for d, s in records]

    def calls(d, disks, nics):
        try:
            d.info()
            d.vcpus()
            for x in disks:
                d.blockStats(x)
            for x in nics:
                d.interfaceStats(x)
            d.memoryStats()
        except libvirt.libvirtError as e:
            # Another user's domain that stopped or vanished meanwhile; ours never do.
            if d.name() in ours or e.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                raise

    def per_domain():
        for d in ro.listAllDomains(ACTIVE):
            u = d.UUIDString()
            dev = devices.get(u)
            if dev is None:
                dev = devices[u] = xml_devices(d.XMLDesc(0))
            calls(d, *dev)

    def per_domain_xml():
        for d in ro.listAllDomains(ACTIVE):
            try:
                dev = xml_devices(d.XMLDesc(0))
            except libvirt.libvirtError:
                if d.name() in ours:
                    raise
                continue
            calls(d, *dev)

    def encode():
        encoder.encode(VmObservations(vms=observations))

    core_sample = sampler.sample
    decode = vms_sample_decoder.decode

    def core():
        core_sample(obs_json)

    def core_decode():
        decode(core_sample(obs_json))

    lines = {
        "bulk call": bulk,
        "bulk, used groups": bulk_used,
        "mapping": mapping,
        "per-domain": per_domain,
        "per-domain + XML": per_domain_xml,
        "encode": encode,
        "core": core,
        "core + decode": core_decode,
        "VmSource.sample()": source.sample,
    }
    if args.only:
        lines = {k: v for k, v in lines.items() if k in args.only}

    OUT.mkdir(exist_ok=True)
    paths = sampler.paths()
    lst = floor_list(paths, OUT / f"vms.floor.libvirt.{n}.txt")
    floors = {"floor (C)": [str(exe), "-n", "0", "-R", "1", "-l", str(lst)]}
    floor_meta = run_floor([str(exe), "-n", "3", "-R", "1", "-l", str(lst)])

    lvd = libvirtd_pid()
    watch = Watch({"libvirtd": lambda: [lvd] if lvd else [], "qemu": fleet.pids})
    timed = asyncio.run(time_lines(lines, floors, args.repeats, args.line_secs, watch))
    syscalls = None if args.no_strace else strace_preads(core, 20, OUT / "vms.strace.txt")

    # Where the bulk call's time goes: each stat group asked for alone (each call also pays the
    # fixed cost of one RPC and the per-domain state lookup, so the groups add up to more than
    # the whole), and the floor's kernel time per kind of file.
    by_group = floor_groups = None
    if breakdown:
        groups = {g.lower(): getattr(libvirt, f"VIR_DOMAIN_STATS_{g}") for g in STAT_GROUPS if hasattr(libvirt, f"VIR_DOMAIN_STATS_{g}")}
        glines = {g: (lambda f=f: ro.getAllDomainStats(f, NOWAIT)) for g, f in groups.items()}
        gt = asyncio.run(time_lines(glines, {}, min(3, args.repeats), args.line_secs, watch))
        by_group = gt["results"]
        for g, f in groups.items():
            recs = ro.getAllDomainStats(f, NOWAIT)
            by_group[g]["keys_per_domain"] = statistics.mean(len(s) for _, s in recs) if recs else 0
            by_group[g]["best_us_per_vm"] = by_group[g]["best_us"] / guests
        it = max(3, int(args.line_secs / max(floor_meta["per_sample_us"][0] * 1e-6, 1e-7)))
        floor_groups = run_floor([str(exe), "-n", str(it), "-R", "3", "-g", "-l", str(lst)])["groups"]

    r = timed["results"]
    for v in r.values():
        v["best_us_per_vm"] = v["best_us"] / guests
        v["median_us_per_vm"] = v["median_us"] / guests
    return {
        "n": n,
        "guests": guests,
        "other_domains": others,
        "files": len(paths),
        "floor": {k: floor_meta[k] for k in ("preads_per_sample", "items", "vanished")},
        "core_syscalls_per_sample": syscalls,
        "observations_json_bytes": len(obs_json),
        "sample_json_bytes": len(sampler.sample(obs_json)),
        "record_keys_per_domain": statistics.mean(len(s) for _, s in records),
        "cgroups_read": cgroups_read,
        "bulk_by_group": by_group,
        "floor_groups": floor_groups,
        **timed,
    }


# --------------------------------------------------------------------------------------------
# QMP: bare QEMUs


async def measure_qmp(vms: list, q: int, args, exe: Path) -> dict[str, Any]:
    from hvstat._core import VmSampler
    from hvstat.models import VmObservations, encoder, vms_sample_decoder
    from hvstat.sources.vms_qmp import QmpCollector

    mine = vms[:q]
    per_poll = QmpCollector([str(v.qmp_path) for v in mine], 2.0, keep_open=False)
    # The kept connection holds its monitor; QEMU would make the per-poll collector wait behind it
    # on the same socket, so it uses each QEMU's second monitor (qmp_qemu makes two).
    kept = QmpCollector([str(v.helper_qmp_path) for v in mine], 2.0, keep_open=True)
    try:
        for c in (per_poll, kept):
            obs, problems = await c.poll()
            if len(obs) != q or problems:
                raise RuntimeError(f"QMP poll of {q} QEMUs: {len(obs)} observations, problems {problems}")
        observations, _ = await per_poll.poll()
        obs_json = encoder.encode(VmObservations(vms=observations))
        sampler = VmSampler()
        sampler.sample(obs_json)
        first = json.loads(sampler.sample(obs_json))
        bad = {v["name"]: v.get("unavailable") for v in first["vms"] if v.get("unavailable") and any(
            k.startswith(("process", "vcpu", "memory_rss", "nics")) for k in v["unavailable"])}
        if bad:
            raise RuntimeError(f"the core could not read the QEMUs: {bad}")
        decode = vms_sample_decoder.decode
        core_sample = sampler.sample

        def core():
            core_sample(obs_json)

        def core_decode():
            decode(core_sample(obs_json))

        lines = {"poll (per-poll conn)": per_poll.poll, "poll (kept conn)": kept.poll, "core": core, "core + decode": core_decode}
        paths = sampler.paths()
        lst = floor_list(paths, OUT / f"vms.floor.qmp.{q}.txt")
        floors = {"floor (C)": [str(exe), "-n", "0", "-R", "1", "-l", str(lst)]}
        floor_meta = run_floor([str(exe), "-n", "3", "-R", "1", "-l", str(lst)])
        pids = [v.pid for v in mine]
        timed = await time_lines(lines, floors, args.repeats, args.line_secs, Watch({"qemu": lambda: pids}))
        syscalls = None if args.no_strace else strace_preads(core, 50, OUT / "vms.strace.qmp.txt")
        it = max(3, int(args.line_secs / max(floor_meta["per_sample_us"][0] * 1e-6, 1e-7)))
        floor_groups = run_floor([str(exe), "-n", str(it), "-R", "3", "-g", "-l", str(lst)])["groups"]
    finally:
        await per_poll.close()
        await kept.close()
    for v in timed["results"].values():
        v["best_us_per_vm"] = v["best_us"] / q
        v["median_us_per_vm"] = v["median_us"] / q
    return {
        "n": q,
        "guests": q,
        "files": len(paths),
        "floor": {k: floor_meta[k] for k in ("preads_per_sample", "items", "vanished")},
        "core_syscalls_per_sample": syscalls,
        "observations_json_bytes": len(obs_json),
        "floor_groups": floor_groups,
        **timed,
    }


# --------------------------------------------------------------------------------------------
# Output


def pr_step(title: str, r: dict, P=print):
    P(f"-- {title}")
    extra = ""
    if "other_domains" in r:
        extra = (f"; {len(r['other_domains'])} other domains on the machine ({', '.join(r['other_domains'][:3])}"
                 + ("..." if len(r["other_domains"]) > 3 else "") + ")  <-- NOT CLEAN: the bulk call and per-domain lines report them too"
                 if r["other_domains"] else "; no other domains")
    P(f"   {r['guests']} VMs{extra}")
    fl = r["floor"]
    P(f"   core reads {r['files']} files ({fl['preads_per_sample']} preads per tick in the floor); observations JSON "
      f"{r['observations_json_bytes'] / r['guests']:.0f} B per VM"
      + (f"; sample JSON {r['sample_json_bytes'] / r['guests']:.0f} B per VM" if "sample_json_bytes" in r else "")
      + (f"; {r['record_keys_per_domain']:.0f} keys per bulk record; VM cgroups read {r['cgroups_read']}" if "cgroups_read" in r else ""))
    sc = r.get("core_syscalls_per_sample")
    if sc:
        P("   core syscalls per tick (strace -c): " + ", ".join(f"{k} {v:g}" for k, v in sorted(sc.items(), key=lambda kv: -kv[1])))
    noisy = r["other_cpus"] + r["steal_cpus"] > 0.05
    P(f"   noise: other processes used {r['other_cpus']:.2f} CPUs during the {r['wall_secs']:.1f} s of timing (besides libvirtd and "
      f"the bench's QEMUs), steal {r['steal_cpus']:.2f}" + ("  <-- NOT QUIET: medians are unreliable" if noisy else " (quiet)"))
    res = r["results"]
    helpers = sorted({k for v in res.values() for k in v.get("helper_cpu_us", {})}, key=lambda k: (k != "bench", k))
    P(f"   {'line':<22} {'best µs':>10} {'median µs':>10} {'best µs/VM':>11} {'med µs/VM':>10} "
      + " ".join(f"{h + ' CPU µs':>15}" for h in helpers) + f" {'ticks/rep':>9}")
    for k, v in res.items():
        h = v.get("helper_cpu_us", {})
        P(f"   {k:<22} {v['best_us']:10.1f} {v['median_us']:10.1f} {v['best_us_per_vm']:11.2f} {v['median_us_per_vm']:10.2f} "
          + " ".join(f"{h[x]:15.1f}" if x in h else f"{'':>15}" for x in helpers) + f" {v['iterations']:9d}")
    if "VmSource.sample()" in res:
        parts = ("bulk call", "mapping", "encode", "core + decode")
        if all(k in res for k in parts):
            rest = res["VmSource.sample()"]["best_us"] - sum(res[k]["best_us"] for k in parts)
            P(f"   VmSource.sample() minus its parts ({' + '.join(parts)}): {rest:.1f} µs per tick (best values)")
    g = r.get("bulk_by_group")
    if g:
        P(f"   bulk call by stat group, each asked for alone ({next(iter(g.values()))['iterations']} ticks x "
          f"{len(next(iter(g.values()))['per_repeat_us'])} repeats; each also pays one RPC and the state lookup):")
        P(f"     {'group':<12} {'best µs':>10} {'µs/VM':>9} {'keys/VM':>8} " + " ".join(f"{h + ' CPU µs':>15}" for h in helpers))
        for k, v in g.items():
            h = v.get("helper_cpu_us", {})
            P(f"     {k:<12} {v['best_us']:10.1f} {v['best_us_per_vm']:9.1f} {v['keys_per_domain']:8.0f} "
              + " ".join(f"{h.get(x, 0):15.1f}" for x in helpers))
    fg = r.get("floor_groups")
    if fg:
        total = sum(x["best_us"] for x in fg)
        P("   floor (C) by file (each kind timed alone; best µs per tick, per VM, share):")
        for x in sorted(fg, key=lambda x: -x["best_us"]):
            P(f"     {x['label']:<28} {x['count']:5d} {x['best_us']:9.1f} {x['best_us'] / r['guests']:8.2f} {100 * x['best_us'] / total:5.1f} %")
    P()


def ratios_for(r: dict) -> dict[str, tuple[float, float]]:
    res = r["results"]
    out = {}

    def add(label, a, b):
        if a in res and b in res:
            out[label] = (res[a]["best_us"] / res[b]["best_us"], res[a]["median_us"] / res[b]["median_us"])

    add("per-domain / bulk call", "per-domain", "bulk call")
    add("per-domain / bulk, used groups", "per-domain", "bulk, used groups")
    add("per-domain + XML / bulk call", "per-domain + XML", "bulk call")
    add("bulk call / bulk, used groups", "bulk call", "bulk, used groups")
    add("core / floor (C)", "core", "floor (C)")
    add("core + decode / floor (C)", "core + decode", "floor (C)")
    add("VmSource.sample() / bulk call", "VmSource.sample()", "bulk call")
    add("poll per-poll / kept conn", "poll (per-poll conn)", "poll (kept conn)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="VM benchmark: one VM tick per N, per tick and per VM (bench/README.md, \"VMs\")")
    ap.add_argument("--counts", default="1,10,50", help="libvirt domain counts (default 1,10,50); 0 or '' skips libvirt")
    ap.add_argument("--qmp-counts", default="1,4", help="bare QEMU counts for the QMP lines (default 1,4); '' skips QMP")
    ap.add_argument("--repeats", "-r", type=int, default=5, help="repeats (default 5)")
    ap.add_argument("--line-secs", type=float, default=0.15, help="time per line per repeat (default 0.15 s; at least 3 ticks)")
    ap.add_argument("--only", type=lambda s: [x.strip() for x in s.split(",")], default=None, help="only these libvirt lines (comma-separated names)")
    ap.add_argument("--wait-quiet", type=float, default=60, metavar="SECS",
                    help="first wait up to SECS for < 0.1 CPUs of other load and no other libvirt domain (default 60)")
    ap.add_argument("--no-strace", action="store_true", help="skip the strace -c syscall count of the core")
    ap.add_argument("--json", metavar="FILE", help="save all results as JSON")
    ap.add_argument("--cleanup", action="store_true", help="remove what a SIGKILLed run left (from the state file), then exit")
    args = ap.parse_args(argv)
    counts = sorted({int(x) for x in args.counts.split(",") if x.strip() and int(x) > 0})
    qmp_counts = sorted({int(x) for x in args.qmp_counts.split(",") if x.strip() and int(x) > 0})

    if os.geteuid() != 0:
        raise SystemExit("needs root (libvirt qemu:///system, taps, cgroups)")
    if args.cleanup:
        return cleanup_leftovers()
    if STATE.exists():
        raise SystemExit(f"{STATE} exists: a previous run was killed; run with --cleanup first")
    try:
        import libvirt
    except ImportError:
        raise SystemExit("libvirt-python is not installed (scripts/setup installs libvirt, QEMU and it)") from None
    for tool in ("qemu-img", QEMU, "ip"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (scripts/setup installs libvirt and QEMU)")

    def _term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)
    # libvirt prints every error to stderr by default, also the expected "Domain not found" while
    # cleanup waits for destroyed domains to go; errors still raise libvirtError.
    libvirt.registerErrorHandler(lambda ctx, err: None, None)

    import msgspec

    import hvstat._core as core_mod
    import virt  # tests/virt.py

    t_start = time.monotonic()
    P = print
    load = os.getloadavg()
    quiet = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else "not waited"
    print(f"[{time.monotonic() - t_start:6.1f} s] load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {quiet}", file=sys.stderr, flush=True)
    exe = build_floor()
    virt.ensure_libvirtd()  # starts virtlogd and libvirtd when they are not running (no systemd here)

    # As many domains as memory holds.
    avail_mib = int(next(l for l in open("/proc/meminfo") if l.startswith("MemAvailable")).split()[1]) // 1024
    notes = []
    fit = max(1, (avail_mib - 2048) // MIB_PER_DOMAIN)
    if counts and counts[-1] > fit:
        notes.append(f"memory holds about {fit} domains ({avail_mib} MiB available, {MIB_PER_DOMAIN} MiB each): counts capped")
        counts = sorted({min(c, fit) for c in counts})

    fleet = Fleet()
    qmp_runs: list[dict] = []
    lv_runs: list[dict] = []
    leftovers: list[str] = []
    try:
        # ---------------------------------------------------------------- QMP
        if qmp_counts:
            # tests/virt.py's qmp_qemu kills each QEMU, deletes its tap and directory on exit.
            stack = contextlib.ExitStack()
            try:
                vms = []
                for _ in range(qmp_counts[-1]):
                    vm = stack.enter_context(virt.qmp_qemu(None, vcpus=1, memory_mib=64, tap=True))
                    fleet.qemus.append({"token": vm.token, "pid": vm.pid, "dir": str(vm.dir), "tap": vm.tap})
                    fleet.save()
                    vm.qmp("stop")  # paused, like the libvirt domains: no guest code runs
                    vms.append(vm)
                for q in qmp_counts:
                    qmp_runs.append(asyncio.run(measure_qmp(vms, q, args, exe)))
                    print(f"[{time.monotonic() - t_start:6.1f} s] QMP {q} QEMUs done", file=sys.stderr, flush=True)
            finally:
                _guarded(stack.close)
            fleet.qemus = []
            fleet.save()

        # ---------------------------------------------------------------- libvirt
        if counts:
            from hvstat._core import VmSampler
            from hvstat.config import NodeSettings, VmSettings
            from hvstat.sources.vms import VmSource

            ro = libvirt.openReadOnly(URI)
            source = None
            try:
                for n in counts:
                    t0 = time.monotonic()
                    fleet.grow(n)
                    setup = time.monotonic() - t0
                    if source is None:
                        source = VmSource(VmSettings(qmp=False, libvirt="on"), NodeSettings(), 10.0)
                        sampler = VmSampler()
                    r = measure_libvirt(fleet, n, ro, source, sampler, args, exe, breakdown=n == counts[-1])
                    r["setup_secs"] = setup
                    lv_runs.append(r)
                    print(f"[{time.monotonic() - t_start:6.1f} s] libvirt N={n} done (start {setup:.1f} s)", file=sys.stderr, flush=True)
            finally:
                if source is not None:
                    source.libvirt.close()
                ro.close()
    finally:
        t0 = time.monotonic()
        problems = _guarded(fleet.destroy)
        teardown = time.monotonic() - t0
        leftovers = virt.leftovers(fleet.tag)
        if problems or leftovers:
            print(f"CLEANUP PROBLEMS: {problems} {leftovers[:5]}", file=sys.stderr)
        else:
            print(f"[{time.monotonic() - t_start:6.1f} s] cleaned up in {teardown:.1f} s: no domain, tap, cgroup, process or file "
                  f"of run {fleet.tag} left", file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- print
    m = machine()
    so = Path(core_mod.__file__)
    conn_ver = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, text=True).stdout
    lib = re.search(r"Running against daemon: (\S+)", conn_ver) or re.search(r"Using library: libvirt (\S+)", conn_ver)
    hyp = re.search(r"Running hypervisor: (.+)", conn_ver)
    vers = {"hvstat_core": getattr(core_mod, "__version__", "?"), "msgspec": msgspec.__version__,
            "libvirtd": lib.group(1) if lib else "?", "hypervisor": hyp.group(1).strip() if hyp else "?"}
    P("hvstat VM benchmark")
    P(f"machine : kernel {m['kernel']}, {m['cpu_model']}, {m['cpu_count']} CPUs (shared with other work), Python {m['python']}")
    P(f"versions: hvstat._core {vers['hvstat_core']} ({so.name} built {time.strftime('%Y-%m-%d %H:%M', time.gmtime(so.stat().st_mtime))} UTC), "
      f"msgspec {vers['msgspec']}, libvirtd {vers['libvirtd']}, {vers['hypervisor']}")
    P(f"load    : {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min) at start; {quiet}")
    P("guests  : libvirt: transient, TCG, 64 MiB, 1 vCPU, qcow2 vda, tap NIC, virtio balloon (stats period 10 s), started paused; "
      "QMP: bare qemu-system-x86_64 (tests/virt.py qmp_qemu), same size, tap, stopped")
    P(f"timing  : {args.repeats} repeats, round-robin; each line runs as many ticks as fit in {args.line_secs:g} s per repeat (at least 3); "
      "µs per tick and per VM; 'CPU µs' columns: CPU time libvirtd / the QEMUs spent per tick (median)")
    for note in notes:
        P(f"note    : {note}")
    P()
    for r in qmp_runs:
        pr_step(f"QMP, {r['n']} bare QEMU{'s' if r['n'] > 1 else ''}", r)
    for r in lv_runs:
        pr_step(f"libvirt, N={r['n']} domains (started in {r['setup_secs']:.1f} s)", r)

    if lv_runs:
        P("summary, libvirt: best µs per tick (per VM in parentheses)")
        keys = list(lv_runs[0]["results"])
        P(f"{'line':<22} " + " ".join(f"{'N=' + str(r['guests']):>22}" for r in lv_runs))
        for k in keys:
            P(f"{k:<22} " + " ".join(f"{r['results'][k]['best_us']:11.1f} ({r['results'][k]['best_us_per_vm']:8.1f})" for r in lv_runs))
        P()
    P("ratios (best, median)")
    for r in qmp_runs + lv_runs:
        kind = "QMP" if r in qmp_runs else "libvirt"
        for label, (b, med) in ratios_for(r).items():
            P(f"  {kind:<7} N={r['guests']:<3} {label:<34} {b:7.2f}x {med:7.2f}x")
    if lv_runs and len(lv_runs) > 1:
        a, b = lv_runs[-2], lv_runs[-1]
        dn = b["guests"] - a["guests"]
        P()
        P(f"marginal µs per added VM, N={a['guests']} -> {b['guests']} (best)")
        for k in a["results"]:
            P(f"  {k:<22} {(b['results'][k]['best_us'] - a['results'][k]['best_us']) / dn:10.1f}")
    if leftovers:
        P(f"\nLEFTOVERS: {leftovers}")

    if args.json:
        doc = {"machine": m, "versions": vers, "load_at_start": load, "quiet": quiet, "repeats": args.repeats,
               "line_secs": args.line_secs, "notes": notes, "qmp": qmp_runs, "libvirt": lv_runs,
               "ratios": {f"{'qmp' if r in qmp_runs else 'libvirt'} {r['guests']}": ratios_for(r) for r in qmp_runs + lv_runs},
               "leftovers": leftovers}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        P(f"\nsaved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
