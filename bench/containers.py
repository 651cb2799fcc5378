#!/usr/bin/env python3
"""Container benchmark: microseconds per full container sample and per container, hvstat against
the syscall floor of the same files, for N real cgroups, in one run.

For each N of --counts the bench makes N real cgroups named as runc names them
(`/docker/<64 hex>` in the v1 cpu, cpuacct, memory, blkio and pids hierarchies and in the v2 tree),
each holding ONE process the bench starts itself (a forked child that writes its own pid into each
of its cgroup.procs files, then execs `sleep infinity`). In the "netns" variant every K-th
container (--netns-every, default 10) also gets its own network namespace with lo and one veth
(eth0), as a container with its own network has, so /proc/<pid>/net/dev is part of the cost.

Lines (see bench/README.md, "Containers"):
  hvstat core          ContainerSampler.sample(): discovery walk + every read + parse + rates + JSON
  hvstat full          containers_sample_decoder.decode(sampler.sample()): typed msgspec Structs
  pure Python          open/read/close + parse to ints of the same files (plus os.stat of the
                       interior directories); no rates, no JSON
  floor (C)            the files of sampler.paths(), kept open, pread at 0 (Whole: one pread;
                       /proc/<pid>/net/dev: pread until 0): bench/floor.c
  floor (C) per tick   the same plus what discovery costs at minimum: a stat() of each interior
                       cgroup directory hvstat's walk checks, and a poll() of the kept-open
                       mountinfo (to notice a change of the cgroup mounts)

All lines are timed round-robin (every repeat runs each line in turn), as bench/node.py does. Best
and median are over the repeats of the mean per sample within a repeat; the garbage collector is
off while a line is timed.

Cleanup is unconditional: on success, failure, Ctrl-C, SIGTERM or SIGHUP the bench kills every
process it started, removes every veth it made, rmdirs every cgroup it made (children first, and
/docker only where it made it and it is empty). The children also die with the bench on SIGKILL
(PR_SET_PDEATHSIG); what a SIGKILLed bench leaves (empty cgroups) is removed by `--cleanup`, from
the state file bench/out/containers.state.json.

Usage: bench/setup && python bench/containers.py [--counts 10,100,1000] [--iterations I]
       [--repeats R] [--netns-every K] [--json out.json] [--no-strace] [--cpu C]
       python bench/containers.py --counts 1000 --exec 'CMD'   # run CMD against live containers
       python bench/containers.py --cleanup                    # leftovers of a SIGKILLed run
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import json
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
sys.path.insert(0, str(BENCH))
from node import build_floor, busy_secs, machine, own_secs, py_net_dev, py_pressure, run_floor, stats  # noqa: E402

CG = Path("/sys/fs/cgroup")
# Where runc puts a container whose cgroupsPath is /docker/<id> (TESTBED.md 3(c)): every v1
# hierarchy plus the v2 tree. These are the ones hvstat reads on a hybrid host.
HIERARCHIES = ("cpu", "cpuacct", "memory", "blkio", "pids", "unified")
STATE = OUT / "containers.state.json"
SLEEP = shutil.which("sleep") or "/bin/sleep"
# Headroom under RLIMIT_NOFILE for everything that is not a kept-open sample file: the
# interpreter's own fds, the pipes of the C floor and strace subprocesses, the pure-Python reader.
FD_MARGIN = 64

PR_SET_PDEATHSIG = 1
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# --------------------------------------------------------------------------------------------
# The containers


class Fleet:
    """The cgroups, processes and veths one run of the bench makes, and their removal.

    Everything is recorded before (cgroups, veths) or right after (pids) it is made, and saved
    to the state file, so a failure at any point leaves a complete list for destroy()."""

    def __init__(self):
        self.tag = secrets.token_hex(4)  # first 8 hex digits of every id and veth name
        self.bench_pid = os.getpid()
        self.parents: list[Path] = []  # /docker dirs this run made (rmdir'ed last, if empty)
        self.dirs: list[Path] = []  # container cgroup dirs, in creation order
        self.pids: list[int] = []  # our children (sleep)
        self.veths: list[str] = []  # host-side veth names
        self.ids: list[str] = []
        self.netns_ids: set[str] = set()

    # -- state file ---------------------------------------------------------------------------
    def save(self):
        OUT.mkdir(exist_ok=True)
        doc = {
            "tag": self.tag,
            "bench_pid": self.bench_pid,
            "parents": [str(p) for p in self.parents],
            "dirs": [str(d) for d in self.dirs],
            "pids": self.pids,
            "veths": self.veths,
        }
        tmp = STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, STATE)

    # -- create -------------------------------------------------------------------------------
    def create(self, n: int, netns_every: int):
        """n containers; every netns_every-th one (1-based: 10, 20, ...) with its own netns."""
        for h in HIERARCHIES:
            parent = CG / h / "docker"
            if not parent.is_dir():
                os.mkdir(parent)
                self.parents.append(parent)
        self.save()
        ids = [self.tag + secrets.token_hex(28) for _ in range(n)]
        for cid in ids:
            for h in HIERARCHIES:
                d = CG / h / "docker" / cid
                self.dirs.append(d)  # recorded first: a half-made container is still removed
                try:
                    os.mkdir(d)
                except FileNotFoundError:
                    # Someone else (a runc user) removed an empty /docker meanwhile: make it again.
                    try:
                        os.mkdir(d.parent)
                        self.parents.append(d.parent)
                        self.save()
                    except FileExistsError:
                        pass
                    os.mkdir(d)
            self.ids.append(cid)
        self.save()

        rfd, wfd = os.pipe()  # both O_CLOEXEC: exec'd children do not keep the write end
        started = 0
        want_netns: list[tuple[str, int]] = []
        try:
            for i, cid in enumerate(ids, 1):
                netns = netns_every > 0 and i % netns_every == 0
                procs = [str(CG / h / "docker" / cid / "cgroup.procs") for h in HIERARCHIES]
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child
                    _child(procs, netns, wfd, self.bench_pid)
                self.pids.append(pid)
                started += 1
                if netns:
                    want_netns.append((cid, pid))
                    self.netns_ids.add(cid)
            self.save()
        finally:
            os.close(wfd)
            got = b""
            while len(got) < started:
                chunk = os.read(rfd, 65536)
                if not chunk:
                    break
                got += chunk
            os.close(rfd)
        if got.count(b"+") != len(ids):
            raise RuntimeError(f"only {got.count(b'+')} of {len(ids)} container processes moved into their cgroups")
        if want_netns:
            names = []
            for _cid, pid in want_netns:
                name = f"hvb{self.tag}{len(self.veths):04x}"
                self.veths.append(name)  # recorded before it exists
                names.append((name, pid))
            self.save()
            batch = "".join(f"link add {name} type veth peer name eth0 netns {pid}\n" for name, pid in names)
            r = subprocess.run(["ip", "-batch", "-"], input=batch, text=True, capture_output=True)
            if r.returncode != 0:
                raise RuntimeError(f"ip -batch (veth pairs) failed: {r.stderr.strip()[:300]}")

    # -- destroy ------------------------------------------------------------------------------
    def destroy(self) -> list[str]:
        """Remove everything; returns what could not be removed (empty when all is gone)."""
        problems: list[str] = []
        problems_shared: list[str] = []
        if self.veths:
            batch = "".join(f"link del {v}\n" for v in self.veths if Path(f"/sys/class/net/{v}").exists())
            if batch:
                subprocess.run(["ip", "-force", "-batch", "-"], input=batch, text=True, capture_output=True)
            left = [v for v in self.veths if Path(f"/sys/class/net/{v}").exists()]
            if left:
                problems.append(f"veths still present: {left[:5]}")
            else:
                self.veths = []
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)  # our own child: not reaped yet, so the pid is still ours
            except ProcessLookupError:
                pass
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.pids = []
        for d in reversed(self.dirs):
            if not _rmdir(d):
                problems.append(f"cannot rmdir {d}")
        self.dirs = [d for d in self.dirs if d.exists()]
        for p in reversed(self.parents):
            try:
                if any(x.is_dir() for x in p.iterdir()):
                    # Other guests (another user's runc containers) live there now: it is shared,
                    # no longer ours to remove.
                    problems_shared.append(str(p))
                else:
                    _rmdir(p)
            except FileNotFoundError:
                pass
        self.parents = [p for p in self.parents if p.exists() and str(p) not in problems_shared]
        if problems_shared:
            print(f"note: left {', '.join(problems_shared)} in place: it holds other guests now", file=sys.stderr)
        self.ids = []
        self.netns_ids = set()
        if not (self.dirs or self.parents or self.veths):
            STATE.unlink(missing_ok=True)
        else:
            self.save()
        return problems


def _child(procs: list[str], netns: bool, wfd: int, bench_pid: int):  # pragma: no cover
    """In the forked child: die with the bench, optionally unshare the netns, move ourselves into
    every cgroup, report, exec sleep. Never returns into the bench's code."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != bench_pid:
            raise OSError("prctl or parent gone")
        if netns and _libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
        me = str(os.getpid()).encode()
        for p in procs:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)
        os.write(wfd, b"+")
        os.execv(SLEEP, ["sleep", "infinity"])
    except BaseException:
        try:
            os.write(wfd, b"!")
        except BaseException:
            pass
    finally:
        os._exit(127)


def _rmdir(d: Path, timeout: float = 5.0) -> bool:
    """rmdir a cgroup; EBUSY right after its last task exited is retried for a while."""
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
            time.sleep(0.01)


def cleanup_leftovers() -> int:
    """--cleanup: remove what a SIGKILLed run left, from the state file. Kills only processes that
    are `sleep` AND sit in one of that run's cgroups (its children die with it via PDEATHSIG, so
    normally there are none)."""
    if not STATE.exists():
        print("nothing to clean up (no bench/out/containers.state.json)")
        return 0
    doc = json.loads(STATE.read_text())
    bp = doc.get("bench_pid")
    try:
        cmd = Path(f"/proc/{bp}/cmdline").read_bytes()
        if b"containers.py" in cmd:
            print(f"the bench that wrote the state file (pid {bp}) is still running; stop it instead")
            return 1
    except OSError:
        pass
    tag = doc["tag"]
    for pid in doc.get("pids", []):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cg = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if comm == "sleep" and f"/docker/{tag}" in cg:
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    f = Fleet()
    f.tag = tag
    f.parents = [Path(p) for p in doc.get("parents", [])]
    f.dirs = [Path(d) for d in doc.get("dirs", [])]
    f.veths = [v for v in doc.get("veths", []) if v.startswith(f"hvb{tag}")]
    while time.monotonic() < deadline and any((d / "cgroup.procs").exists() and (d / "cgroup.procs").read_text().strip() for d in f.dirs if d.exists()):
        time.sleep(0.05)
    problems = f.destroy()
    print("cleaned up run", tag, "; problems:" if problems else "", "; ".join(problems))
    return 1 if problems else 0


# --------------------------------------------------------------------------------------------
# What hvstat's discovery walk touches: a port of rust/hvstat-core/src/cgroup/discover.rs
# (classify() and Walker::walk()): every directory of the primary hierarchy that is not a guest
# and not below one is an "interior" directory, stat'ed on every walk. A QEMU VM's scope is not a
# container (the VM sampler reads it) but the walk stops there too, so classify() is true for it.


def _is_hex64(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def classify(path: str, with_services: bool = False) -> bool:
    comps = [c for c in path.split("/") if c]
    if not comps:
        return False
    name = comps[-1]
    parent = comps[-2] if len(comps) > 1 else ""

    def scope(prefix):
        return name.startswith(prefix) and name.endswith(".scope") and _is_hex64(name[len(prefix):-6])

    if scope("docker-") or scope("libpod-") or scope("cri-containerd-") or scope("crio-"):
        return True
    if name.startswith("lxc.payload.") or (name.startswith("machine-") and name.endswith(".scope")):
        return True
    if parent == "machine" and (name.endswith((".libvirt-qemu", ".libvirt-lxc"))):
        return True
    if parent == "qemu.slice" and name.endswith(".scope") and name[:-6].isdigit():
        return True
    if parent == "lxc" and not name.startswith("lxc."):
        return True
    if _is_hex64(name):
        return True
    if parent == "libpod_parent" and name.startswith("libpod-") and _is_hex64(name[7:]):
        return True
    if with_services and parent == "system.slice" and name.endswith(".service"):
        return True
    return False


def cgroup_mounts() -> dict[str, tuple[str, str]]:
    """controller (or "unified") -> (mount point, root), from /proc/self/mountinfo."""
    out: dict[str, tuple[str, str]] = {}
    for line in open("/proc/self/mountinfo"):
        p = line.split()
        sep = p.index("-", 6)
        fstype, opts = p[sep + 1], p[sep + 3]
        if fstype == "cgroup2":
            out.setdefault("unified", (p[4], p[3]))
        elif fstype == "cgroup":
            for o in opts.split(","):
                out.setdefault(o, (p[4], p[3]))
    return out


def primary_hierarchy(mounts) -> tuple[str, str]:
    for c in ("memory", "cpu", "pids", "cpuacct", "unified"):
        if c in mounts:
            return mounts[c]
    raise SystemExit("no cgroup hierarchy mounted")


def interior_dirs(top: str, root: str) -> list[str]:
    out = []
    stack = [(top, root)]
    while stack:
        d, cg = stack.pop()
        try:
            kids = sorted(e.name for e in os.scandir(d) if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        out.append(d)
        for k in kids:
            cp = (cg.rstrip("/") + "/" + k)
            if not classify(cp):
                stack.append((os.path.join(d, k), cp))
    return out


# --------------------------------------------------------------------------------------------
# Pure-Python parsers of the cgroup files (binary mode: int() takes bytes)


def py_ints(b: bytes) -> list:
    return [int(x) for x in b.split()]


def py_int(b: bytes) -> int:
    return int(b)


def py_kv(b: bytes) -> dict:
    out = {}
    for line in b.splitlines():
        k, _, v = line.partition(b" ")
        out[k] = int(v)
    return out


def py_limit(b: bytes):
    b = b.strip()
    return None if b == b"max" else int(b)


def py_blkio(b: bytes) -> list:
    out = []
    for line in b.splitlines():
        p = line.split()
        if len(p) == 3:
            out.append((p[0], p[1], int(p[2])))
        elif len(p) == 2:  # "Total N"
            out.append((None, p[0], int(p[1])))
    return out


def py_freezer(b: bytes) -> bool:
    return b.startswith((b"FROZEN", b"FREEZING"))


PY_PARSERS = {
    "cgroup.procs": py_ints,
    "cgroup.events": py_kv,
    "cpu.stat": py_kv,
    "cpuacct.stat": py_kv,
    "memory.stat": py_kv,
    "memory.oom_control": py_kv,
    "cpu.pressure": py_pressure,
    "memory.pressure": py_pressure,
    "io.pressure": py_pressure,
    "pids.max": py_limit,
    "blkio.throttle.io_service_bytes": py_blkio,
    "blkio.throttle.io_serviced": py_blkio,
    "freezer.state": py_freezer,
}


def py_parser(path: str):
    if path.endswith("/net/dev"):
        return py_net_dev
    name = path.rsplit("/", 1)[-1]
    if name.startswith("blkio."):
        return py_blkio
    return PY_PARSERS.get(name, py_int)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# --------------------------------------------------------------------------------------------
# Measuring one N


# Diagnostic line: the floor per tick with a 4 KiB buffer per file (floor.c -P), as hvstat's
# FileReader has, instead of one shared buffer. Not a floor: it shows what the buffers cost.
FLOOR_BUFS = "floor tick, buf/file"


def steal_secs() -> float:
    """CPU time the hypervisor gave to others (all CPUs), from /proc/stat: noise no process here shows."""
    with open("/proc/stat", "rb") as f:
        v = f.readline().split()
    return int(v[8]) / os.sysconf("SC_CLK_TCK") if len(v) > 8 else 0.0


def fds_open() -> int:
    return len(os.listdir("/proc/self/fd"))


def strace_counts(sample, samples: int) -> dict | None:
    """Syscalls per sample of `sample()` in this process: strace -c attached for `samples` calls
    (outside the timed loops; strace slows each syscall down, the counts are what matters)."""
    exe = shutil.which("strace")
    if not exe:
        return None
    OUT.mkdir(exist_ok=True)
    out = OUT / "containers.strace.txt"
    p = subprocess.Popen([exe, "-c", "-o", str(out), "-p", str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # strace prints "Process N attached" once it is in; wait for it.
    line = p.stderr.readline()
    if b"attached" not in line:
        p.kill()
        p.wait()
        return None
    for _ in range(samples):
        sample()
    p.send_signal(signal.SIGINT)
    p.wait(30)
    p.stderr.close()
    counts = {}
    for line in out.read_text().splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)$", line)
        if m and m.group(3) != "total":
            counts[m.group(3)] = int(m.group(1)) / samples
            if m.group(2):
                counts[m.group(3) + " (errors)"] = int(m.group(2)) / samples
    # The wait4/kill/etc. of strace's own start and stop are not per sample: drop what is < 1.
    return {k: v for k, v in counts.items() if v >= 1}


def other_guests_now() -> int:
    """Guests of other users in the hierarchy hvstat walks (the walk's classification)."""
    d, root = primary_hierarchy(cgroup_mounts())
    n = 0
    stack = [(d, root)]
    while stack:
        p, cg = stack.pop()
        try:
            kids = [e.name for e in os.scandir(p) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for k in kids:
            cp = cg.rstrip("/") + "/" + k
            if classify(cp):
                n += 1
            else:
                stack.append((os.path.join(p, k), cp))
    return n


def wait_quiet(limit: float) -> str:
    """Up to `limit` seconds for a quiet machine: no other guests, other processes below 0.1 CPUs
    over 2 s. Returns what was waited for, for the output."""
    t0 = time.monotonic()
    while True:
        b0, o0, w0 = busy_secs(), own_secs(), time.monotonic()
        time.sleep(2)
        cpus = max(0.0, (busy_secs() - b0) - (own_secs() - o0)) / (time.monotonic() - w0)
        others = other_guests_now()
        waited = time.monotonic() - t0
        if (cpus < 0.1 and others == 0) or waited > limit:
            return f"waited {waited:.0f} s for quiet: other CPU {cpus:.2f}, other guests {others}"


def probe_fds(fleet: Fleet) -> tuple[int, int]:
    """(files hvstat keeps open per container of ours, files it keeps open for everything else:
    other guests on the machine, mountinfo, cpus online), from one container made for the purpose."""
    from hvstat._core import ContainerSampler

    fleet.create(1, 0)
    try:
        s = ContainerSampler()
        s.sample()
        paths = [p for p in s.paths() if os.path.exists(p)]
        mine = sum(1 for p in paths if fleet.ids[0] in p)
        return mine, len(paths) - mine + 2
    finally:
        s = None
        problems = _destroy(fleet)
        if problems:
            raise RuntimeError("cleanup failed: " + "; ".join(problems[:5]))


def measure(fleet: Fleet, n_req: int, variant: str, args, exe: Path) -> dict:
    from hvstat._core import ContainerSampler
    from hvstat.models import containers_sample_decoder

    n = len(fleet.ids)
    # One sampler for the core and the full line: hvstat keeps about 20 files per container open,
    # and two samplers would need twice the fds (see README: RLIMIT_NOFILE).
    s = ContainerSampler()
    fd0 = fds_open()
    s.sample()
    raw = s.sample()
    first = json.loads(raw)
    sample_bytes = len(raw)
    del raw
    fds_hvstat = fds_open() - fd0
    paths = s.paths()

    # Check the sample: all of ours there, one process each, no read errors.
    ours = set(fleet.ids)
    got = {c["id"]: c for c in first["containers"]}
    missing = [cid for cid in ours if cid not in got]
    others = [c for c in first["containers"] if c["id"] not in ours]
    bad = []
    for cid in ours & got.keys():
        c = got[cid]
        errs = {k: v for k, v in (c.get("unavailable") or {}).items() if "os error" in v or "cannot" in v or "parse" in v}
        if c["processes"] != 1 or errs:
            bad.append((cid[:12], c["processes"], errs))
        if cid in fleet.netns_ids and (c["network_mode"] != "own" or "eth0" not in c["network_interfaces"]):
            bad.append((cid[:12], "network", c["network_mode"], c["network_interfaces"]))
    if missing or bad:
        raise RuntimeError(f"N={n}: the sample misses {len(missing)} of our containers; problems: {bad[:3]}")

    # The floor's file list: what paths() lists AND hvstat has open. Readers open lazily, on their
    # first read, so an open fd is a file the sample reads; paths() also lists files a sample skips
    # on this layout or workload (for example the v1 blkio ops file, read only when the bytes file
    # lists a device, or a file that does not exist). Those are counted and left out: the floor
    # must not do work hvstat does not do. strace below cross-checks the pread count.
    open_now = set()
    for f in os.listdir("/proc/self/fd"):
        try:
            open_now.add(os.readlink(f"/proc/self/fd/{f}"))
        except OSError:
            pass
    floor_paths = [p for p in paths if p in open_now]
    absent = [p for p in paths if p not in open_now]
    absent_names = sorted({p.rsplit("/", 1)[-1] for p in absent})
    mounts = cgroup_mounts()
    prim_dir, prim_root = primary_hierarchy(mounts)
    interior = interior_dirs(prim_dir, prim_root)
    mountinfo = "/proc/1/mountinfo" if os.access("/proc/1/mountinfo", os.R_OK) else "/proc/self/mountinfo"

    OUT.mkdir(exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", variant)
    lst = OUT / f"containers.floor.{slug}.{n_req}.txt"
    lst.write_text("".join(f"{'r' if p.endswith('/net/dev') else 'w'} {p}\n" for p in floor_paths))
    lst_tick = OUT / f"containers.floor-tick.{slug}.{n_req}.txt"
    lst_tick.write_text(lst.read_text() + "".join(f"s {d}\n" for d in interior) + f"p {mountinfo}\n")

    it = max(3, args.iterations // max(n, 1))
    floor_cmd = [str(exe), "-n", str(it), "-R", "1", "-l", str(lst)]
    floor_tick_cmd = [str(exe), "-n", str(it), "-R", "1", "-l", str(lst_tick)]
    floor_bufs_cmd = [str(exe), "-n", str(it), "-R", "1", "-P", "-l", str(lst_tick)]
    floor_meta = run_floor([str(exe), "-n", "3", "-R", "1", "-l", str(lst_tick)])

    decode = containers_sample_decoder.decode
    sample = s.sample
    parsers = [(p, py_parser(p)) for p in floor_paths]
    stat = os.stat

    def hvstat_core():
        sample()

    def hvstat_full():
        decode(sample())

    def pure_python():
        for d in interior:
            try:
                stat(d)
            except FileNotFoundError:
                pass  # another user's guest went away meanwhile
        for p, parse in parsers:
            try:
                b = _read(p)
            except (FileNotFoundError, ProcessLookupError, OSError) as e:
                if e.errno in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
                    continue  # another user's guest went away meanwhile
                raise
            parse(b)

    lines = {"hvstat core": hvstat_core, "hvstat full": hvstat_full, "pure Python": pure_python}
    for fn in lines.values():  # each line works before it is timed
        fn()
    names = list(lines) + ["floor (C)", "floor (C) per tick", FLOOR_BUFS]
    per: dict[str, list[float]] = {k: [] for k in names}
    perf = time.perf_counter
    floor_vanished = 0
    wall0, busy0, own0, steal0 = time.monotonic(), busy_secs(), own_secs(), steal_secs()
    for _ in range(args.repeats):
        for name, fn in lines.items():
            gc.collect()
            gc.disable()
            try:
                t0 = perf()
                for _ in range(it):
                    fn()
                per[name].append((perf() - t0) / it * 1e6)
            finally:
                gc.enable()
        for name, cmd in (("floor (C)", floor_cmd), ("floor (C) per tick", floor_tick_cmd), (FLOOR_BUFS, floor_bufs_cmd)):
            fr = run_floor(cmd)
            per[name].append(fr["per_sample_us"][0])
            floor_vanished = max(floor_vanished, fr.get("vanished", 0))
    wall = time.monotonic() - wall0
    steal = (steal_secs() - steal0) / wall
    others_cpus = max(0.0, (busy_secs() - busy0) - (own_secs() - own0) - (steal_secs() - steal0)) / wall

    # The same sampler once more: nothing appeared or vanished meanwhile (other sessions' guests).
    last = json.loads(s.sample())
    others_after = [c for c in last["containers"] if c["id"] not in ours]

    syscalls = None if args.no_strace else strace_counts(sample, max(3, min(50, 2000 // max(n, 1))))
    groups = None
    if n_req == max(args.counts):
        g_it = max(3, args.iterations // max(n, 1) // 2)
        groups = run_floor([str(exe), "-n", str(g_it), "-R", str(min(args.repeats, 5)), "-g", "-l", str(lst_tick)])["groups"]
    del s, sample, hvstat_core, hvstat_full, lines  # close the sampler's fds before the next N
    gc.collect()

    # Per guest: hvstat samples every guest on the machine, and every line reads the same set, so
    # other users' guests (if any) count in the divisor too; the output flags such runs.
    guests = n + len(others)
    res = {k: stats(v) for k, v in per.items()}
    for _k, r in res.items():
        r["best_us_per_container"] = r["best_us"] / guests
        r["median_us_per_container"] = r["median_us"] / guests
    return {
        "variant": variant,
        "requested": n_req,
        "containers": n,
        "guests": guests,
        "own_netns": len(fleet.netns_ids),
        "other_guests": len(others),
        "other_guests_after": len(others_after),
        "floor_files_vanished": floor_vanished,
        "iterations": it,
        "files": len(floor_paths),
        "files_listed_absent": len(absent),
        "files_listed_absent_names": absent_names,
        "interior_dirs": len(interior),
        "primary_hierarchy": prim_dir,
        "fds_hvstat": fds_hvstat,
        "floor": {k: floor_meta[k] for k in ("preads_per_sample", "stat_per_sample", "poll_per_sample", "items")},
        "hvstat_syscalls_per_sample": syscalls,
        "sample_json_bytes": sample_bytes,
        "timing_wall_secs": wall,
        "other_processes_cpus": others_cpus,
        "steal_cpus": steal,
        "results": res,
        "floor_groups": groups,
    }



# --------------------------------------------------------------------------------------------
# --profile: where a container sample spends its time beyond the syscalls. A Rust driver over
# hvstat-core (no Python, no PyO3), built like bench/profile_core.sh builds bench/profile_core.rs
# (a throwaway cargo project under bench/out/, the workspace's release profile plus line tables),
# run against the live containers of each N.

PROFILE_RS = r"""
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hvstat_core::cgroup::discover::{Hierarchies, Walker};
use hvstat_core::cgroup::sampler::{ContainerConfig, ContainerSampler};
use hvstat_core::cgroup::{v1, v2};
use hvstat_core::parse::{single_u64, ParseError, ParseResult};
use hvstat_core::procfs::{mountinfo, net_dev, pid, pressure};
use hvstat_core::read::{FileReader, Shape};

fn time<F: FnMut()>(n: usize, r: usize, mut f: F) -> (f64, f64) {
    f();
    let mut per: Vec<f64> = (0..r)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    per.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (per[0], per[per.len() / 2])
}

type Parser = fn(&[u8]) -> bool;

fn ok<T>(r: ParseResult<T>) -> bool {
    black_box(r).is_ok()
}

// The parser the container sampler's cgroup reader (cgroup/reader.rs) uses for each file.
fn parser_for(path: &str) -> Option<(Shape, Parser)> {
    if path.ends_with("/net/dev") {
        return Some((Shape::Records, |b| ok(net_dev::parse(b))));
    }
    let v2 = path.contains("/unified/");
    let p: Parser = match path.rsplit('/').next()? {
        "cgroup.procs" => |b| ok(pid::parse_pid_list(b)),
        "cgroup.events" => |b| ok(v2::parse_events(b)),
        "cpu.stat" if v2 => |b| ok(v2::parse_cpu_stat(b)),
        "cpu.stat" => |b| ok(v1::parse_cpu_stat(b)),
        "cpu.pressure" | "memory.pressure" | "io.pressure" => |b| ok(pressure::parse(b)),
        "cpuacct.usage" | "cpu.cfs_period_us" | "memory.usage_in_bytes" | "memory.memsw.usage_in_bytes"
        | "pids.current" => |b| ok(single_u64(b)),
        "cpuacct.stat" => |b| ok(v1::parse_cpuacct_stat(b)),
        "cpu.cfs_quota_us" => |b| ok(v1::parse_cfs_quota(b)),
        "memory.limit_in_bytes" => |b| ok(v1::parse_memory_limit(b)),
        "memory.stat" => |b| ok(v1::parse_memory_stat(b)),
        "memory.oom_control" => |b| ok(v1::parse_oom_control(b)),
        n if n.starts_with("blkio.throttle.") => |b| ok(v1::parse_blkio(b)),
        "pids.max" => |b| ok(v2::parse_limit(b)),
        _ => return None,
    };
    Some((Shape::Whole, p))
}

fn label_of(path: &str) -> String {
    if path.ends_with("/net/dev") {
        return "net/dev".into();
    }
    let base = path.rsplit('/').next().unwrap_or("");
    if base == "cpu.stat" {
        return if path.contains("/unified/") { "cpu.stat (v2)".into() } else { "cpu.stat (v1)".into() };
    }
    base.into()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("phases");
    let mut s = ContainerSampler::new(ContainerConfig::default());
    s.sample();
    let guests = s.sample().containers.len();
    let n: usize = args.get(2).and_then(|x| x.parse().ok()).unwrap_or((20000 / guests.max(1)).max(3));
    let r: usize = args.get(3).and_then(|x| x.parse().ok()).unwrap_or(5);

    if mode == "loop" {
        let mut bytes = 0;
        for _ in 0..n {
            bytes += black_box(serde_json::to_vec(&s.sample()).unwrap()).len();
        }
        println!("{n} samples of {guests} guests, {} bytes each", bytes / n.max(1));
        return;
    }

    let row = |name: &str, (b, m): (f64, f64)| {
        println!("{name:<52} {b:10.1} {m:10.1} {:8.2}", b / guests.max(1) as f64)
    };
    println!("{guests} guests; µs per sample: best, median of {r} x {n}; best µs per guest");
    println!("{:<52} {:>10} {:>10} {:>8}", "phase", "best", "median", "/guest");
    row("sample + serde_json::to_vec (= core minus PyO3)", time(n, r, || {
        black_box(serde_json::to_vec(&s.sample()).unwrap());
    }));
    row("sample (discover, read, parse, model::build)", time(n, r, || {
        black_box(s.sample());
    }));
    let one = s.sample();
    let json_len = serde_json::to_vec(&one).unwrap().len();
    row(&format!("serde_json::to_vec of one sample ({} B/guest)", json_len / guests.max(1)), time(n, r, || {
        black_box(serde_json::to_vec(&one).unwrap());
    }));
    row("drop of one sample (the ContainerMetrics)", time(n, r, || {
        black_box(one.clone());
    }));
    println!("{:<52} (the line above is clone + drop)", "");

    let mut mi = FileReader::first_of(vec!["/proc/1/mountinfo".into(), "/proc/self/mountinfo".into()], Shape::Records);
    row("discover: mountinfo read + parse", time(n, r, || {
        black_box(mi.parse(mountinfo::parse).unwrap());
    }));
    let mounts = mi.parse(mountinfo::parse).unwrap();
    row("discover: Hierarchies::from_mounts", time(n, r, || {
        black_box(Hierarchies::from_mounts(&mounts, Path::new("/")));
    }));
    let h = Hierarchies::from_mounts(&mounts, Path::new("/"));
    let prim = h.primary().unwrap().clone();
    let mut w = Walker::default();
    w.walk(&prim, false);
    row("discover: Walker::walk (nothing changed)", time(n, r, || {
        black_box(w.walk(&prim, false));
    }));

    // Every file of the sample, grouped by name, each with the sampler's own parser. The sampler
    // is dropped first: its fds and these readers' would not fit under RLIMIT_NOFILE together.
    // Only the files the sampler has open: it opens a file on its first read, so those are the
    // ones a sample reads (paths() also lists files this layout or workload never reads).
    let open: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .map(|rd| rd.flatten().filter_map(|e| std::fs::read_link(e.path()).ok()).map(|p| p.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let paths: Vec<String> = s.paths().iter().map(|p| p.to_string_lossy().into_owned()).filter(|p| open.contains(p)).collect();
    drop(s);
    let mut groups: BTreeMap<String, Vec<(FileReader, Parser)>> = BTreeMap::new();
    let mut member_pids = Vec::new();
    for p in &paths {
        let Some((shape, parse)) = parser_for(p) else { continue };
        let mut fr = FileReader::new(p.as_str(), shape);
        if p.ends_with("/cgroup.procs") {
            if let Ok(Some(&first)) = fr.parse(pid::parse_pid_list).map(|v| v.first().copied()).as_ref().map(|o| o.as_ref()) {
                member_pids.push(first);
            }
        }
        groups.entry(label_of(p)).or_default().push((fr, parse));
    }
    // What read_net does every tick for a guest in the host's netns (ns_inode in sampler.rs).
    let proc_root = PathBuf::from("/proc");
    row(&format!("readlink /proc/<pid>/ns/net + parse ({} guests)", member_pids.len()), time(n, r, || {
        for pid in &member_pids {
            let l = std::fs::read_link(proc_root.join(pid.to_string()).join("ns/net")).ok();
            black_box(l.and_then(|l| pid::parse_ns_link(&l.to_string_lossy())));
        }
    }));
    println!();
    println!("{:<34} {:>6} {:>10} {:>11} {:>10} {:>9}   (best µs per sample; parse = read+parse - read)",
             "files", "count", "read", "read+parse", "parse", "parse/ctr");
    let (mut sr, mut sp) = (0.0, 0.0);
    for (label, fs) in groups.iter_mut() {
        let (rd, _) = time(n, r, || {
            for (fr, _) in fs.iter_mut() {
                black_box(fr.read().map(|b| b.len()).unwrap_or(0));
            }
        });
        let (rp, _) = time(n, r, || {
            for (fr, parse) in fs.iter_mut() {
                black_box(fr.parse(|b| Ok::<bool, ParseError>(parse(b))).unwrap_or(false));
            }
        });
        sr += rd;
        sp += rp;
        println!("{label:<34} {:>6} {rd:10.1} {rp:11.1} {:10.1} {:9.2}", fs.len(), rp - rd, (rp - rd) / fs.len() as f64);
    }
    println!("{:<34} {:>6} {sr:10.1} {sp:11.1} {:10.1} {:9.2}", "sum", paths.len(), sp - sr, (sp - sr) / guests.max(1) as f64);
}
"""

# (substring of the function, or of "file:function" for code inlined into sample()) -> group.
PROFILE_GROUPS = [
    ("serde_json", "serde_json::to_vec (the JSON)"), ("zmij", "serde_json::to_vec (the JSON)"),
    ("itoa", "serde_json::to_vec (the JSON)"), ("serialize", "serde_json::to_vec (the JSON)"),
    ("malloc.c:", "malloc/free/realloc"), ("__mem", "memcpy/memmove/memset/memcmp"),
    ("parse_memory_stat", "v1::parse_memory_stat (memory.stat)"),
    ("lossy", "String::from_utf8_lossy (parse::lossy, from store_once)"),
    ("Utf8Chunks", "String::from_utf8_lossy (parse::lossy, from store_once)"),
    ("from_utf8", "String::from_utf8_lossy (parse::lossy, from store_once)"),
    ("store_once", "store_once / u64_field / keyed_lines"), ("u64_field", "store_once / u64_field / keyed_lines"),
    ("keyed_lines", "store_once / u64_field / keyed_lines"), ("flat_keyed", "store_once / u64_field / keyed_lines"),
    ("pressure::parse", "pressure::parse (3 PSI files, f64 fields)"), ("f64_field", "pressure::parse (3 PSI files, f64 fields)"),
    ("dec2flt", "pressure::parse (3 PSI files, f64 fields)"), ("f64 as core::str", "pressure::parse (3 PSI files, f64 fields)"),
    ("cgroup::v1::", "other cgroup file parsers"), ("cgroup::v2::", "other cgroup file parsers"),
    ("parse_pid_list", "other cgroup file parsers"), ("net_dev", "other cgroup file parsers"),
    ("model.rs:", "model::build (rates, reasons, clones)"), ("rate.rs:", "model::build (rates, reasons, clones)"),
    ("model::", "model::build (rates, reasons, clones)"), ("pressure_of", "model::build (rates, reasons, clones)"),
    ("discover", "discovery (mountinfo, walk, classify, tracked maps)"), ("mountinfo", "discovery (mountinfo, walk, classify, tracked maps)"),
    ("btree", "BTreeMap (tracked, names, reasons)"), ("BTree", "BTreeMap (tracked, names, reasons)"),
    ("read_link", "readlink + PathBuf + fmt (ns_inode)"), ("PathBuf", "readlink + PathBuf + fmt (ns_inode)"),
    ("path::", "readlink + PathBuf + fmt (ns_inode)"), ("fmt", "readlink + PathBuf + fmt (ns_inode)"),
    ("read::", "FileReader::read (user side)"), ("pread", "FileReader::read (user side)"),
    ("single_u64", "other cgroup file parsers"), ("single_field", "other cgroup file parsers"), ("raw_vec", "Vec growth (RawVec)"),
    ("drop_in_place", "drop_in_place"), ("sampler", "sampler (read_container, sample: the rest)"),
]


def _callgrind_by_function(out: Path) -> dict[str, int]:
    ann = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=no", "--threshold=100", str(out)],
                         capture_output=True, text=True).stdout
    fns: dict[str, int] = {}
    started = False
    for line in ann.splitlines():
        if "file:function" in line:
            started = True
            continue
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if started and m:
            key = re.sub(r" \[.*\]$", "", m.group(2))
            fns[key] = fns.get(key, 0) + int(m.group(1).replace(",", ""))
    return fns


def _group(key: str) -> str:
    fn = key.split(":", 1)[1] if ":" in key and not key.startswith("???") else key
    if "ContainerSampler::sample" in fn or "read_container" in fn:  # inlined code: by its source file
        return next((lab for k, lab in PROFILE_GROUPS if k.endswith((".rs:", ".c:")) and k in key), "sampler (read_container, sample: the rest)")
    if "malloc.c:" in key:
        return "malloc/free/realloc"
    return next((lab for k, lab in PROFILE_GROUPS if not k.endswith((".rs:", ".c:")) and k in fn), "other")


def build_profile() -> Path:
    repo = BENCH.parent
    proj = OUT / "containers_profile"
    (proj / "src").mkdir(parents=True, exist_ok=True)
    main_rs = proj / "src" / "main.rs"
    if not main_rs.exists() or main_rs.read_text() != PROFILE_RS:
        main_rs.write_text(PROFILE_RS)
    shutil.copy(repo / "Cargo.lock", proj / "Cargo.lock")
    (proj / "Cargo.toml").write_text(f"""[package]
name = "containers_profile"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
hvstat-core = {{ path = "{repo / 'rust' / 'hvstat-core'}" }}
serde_json = "1"

[workspace]

[profile.release]
lto = true
codegen-units = 1
debug = "line-tables-only"
""")
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=proj, check=True)
    return proj / "target" / "release" / "containers_profile"


def run_profile(binary: Path, what: str, n: int):
    subprocess.run([str(binary), "phases"], check=True)
    if what != "callgrind":
        return
    print_callgrind(binary, n)


def print_callgrind(binary: Path | None, n: int, reuse: bool = False):
    # Two runs, k and 2k samples: the difference is k samples without the driver's start (the
    # first discovery, opening every file).
    k = max(3, 2000 // max(n, 1))
    runs = []
    for samples in (k, 2 * k):
        out = OUT / f"callgrind.containers.{n}.{samples}"
        if not reuse:
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(binary), "loop", str(samples)],
                           check=True, capture_output=True)
        runs.append(_callgrind_by_function(out))
    tot: dict[str, int] = {}
    for key in set(runs[0]) | set(runs[1]):
        d = runs[1].get(key, 0) - runs[0].get(key, 0)
        g = _group(key)
        tot[g] = tot.get(g, 0) + d
    total = sum(tot.values()) or 1
    samples = k
    print(f"\nuser-space instructions per guest and sample, exclusive, grouped (callgrind, {2 * k} minus {k} samples of {n} guests):")
    for label, v in sorted(tot.items(), key=lambda kv: -kv[1]):
        print(f"  {v / samples / n:9.0f} {100 * v / total:5.1f}%  {label}")
    print(f"  {total / samples / n:9.0f} 100.0%  total")
    if reuse:
        return
    heap = []
    for k in (samples, 2 * samples):
        r = subprocess.run(["valgrind", str(binary), "loop", str(k)], capture_output=True, text=True)
        m = re.search(r"total heap usage: ([\d,]+) allocs, [\d,]+ frees, ([\d,]+) bytes", r.stderr)
        if m:
            heap.append((k, int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))))
    if len(heap) == 2:
        (k1, a1, b1), (k2, a2, b2) = heap
        per_a, per_b = (a2 - a1) / (k2 - k1), (b2 - b1) / (k2 - k1)
        print(f"heap (valgrind memcheck, {k1} vs {k2} samples): {per_a:,.0f} allocations and {per_b / 1e6:.2f} MB per sample; "
              f"{per_a / n:.0f} allocations and {per_b / n:,.0f} B per guest")

# --------------------------------------------------------------------------------------------
# Output


def pr_run(r: dict, P=print):
    n = r["containers"]
    req = f"N={r['requested']}" + (f" (ran {n}: RLIMIT_NOFILE, see below)" if n != r["requested"] else "")
    P(f"-- {r['variant']}, {req}: {n} containers, {r['own_netns']} with their own netns; "
      f"{r['other_guests']} other guests on the machine (sampled too)"
      + (f", {r['other_guests_after']} after the timing" if r["other_guests_after"] != r["other_guests"] else "")
      + (f"; {r['floor_files_vanished']} of their files vanished during the floor runs" if r["floor_files_vanished"] else "")
      + ("  <-- NOT CLEAN: other users' guests are in every line; per-guest values divide by all guests" if r["other_guests"] or r["other_guests_after"] else ""))
    sc = r["hvstat_syscalls_per_sample"]
    fl = r["floor"]
    P(f"   files {r['files']} (+{r['files_listed_absent']} listed by paths() but not read: "
      f"{','.join(r['files_listed_absent_names']) or '-'}), interior dirs {r['interior_dirs']}; "
      f"floor per tick: {fl['preads_per_sample']} preads + {fl['stat_per_sample']} stat + {fl['poll_per_sample']} poll")
    P(f"   sample JSON {r['sample_json_bytes'] / r['guests']:.0f} B per guest ({r['sample_json_bytes'] / 1e3:.0f} kB); "
      f"hvstat keeps {r['fds_hvstat']} fds open ({r['fds_hvstat'] / r['guests']:.1f} per guest)")
    if sc:
        P("   hvstat syscalls per sample (strace -c): " + ", ".join(f"{k} {v:g}" for k, v in sorted(sc.items(), key=lambda kv: -kv[1])))
    noisy = r["other_processes_cpus"] + r["steal_cpus"] > 0.05
    P(f"   noise: other processes used {r['other_processes_cpus']:.2f} CPUs during the {r['timing_wall_secs']:.1f} s of timing"
      + f", steal {r['steal_cpus']:.2f} CPUs"
      + ("  <-- NOT QUIET: medians are unreliable" if noisy else " (quiet)")
      + f"; {r['iterations']} samples per line per repeat")
    P(f"   {'line':<20} {'best µs':>10} {'median µs':>10} {'best µs/ctr':>12} {'median µs/ctr':>14}")
    for k, v in r["results"].items():
        P(f"   {k:<20} {v['best_us']:10.1f} {v['median_us']:10.1f} {v['best_us_per_container']:12.2f} {v['median_us_per_container']:14.2f}")
    res = r["results"]
    for a, b in (("hvstat core", "floor (C) per tick"), ("hvstat full", "floor (C) per tick"),
                 ("hvstat core", "floor (C)"), ("hvstat full", "floor (C)"), ("hvstat core", FLOOR_BUFS),
                 ("pure Python", "hvstat full")):
        P(f"   {a + ' / ' + b:<40} {res[a]['best_us'] / res[b]['best_us']:6.2f}x best {res[a]['median_us'] / res[b]['median_us']:6.2f}x median")
    P()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="10,100,1000", help="container counts (default 10,100,1000)")
    ap.add_argument("--iterations", "-n", type=int, default=10000,
                    help="container-samples per line and repeat: each line runs max(3, I // N) samples per repeat (default 10000)")
    ap.add_argument("--repeats", "-r", type=int, default=7, help="repeats (default 7)")
    ap.add_argument("--netns-every", type=int, default=10,
                    help="also run a variant where every K-th container has its own netns (default 10; 0: cgroup-only only)")
    ap.add_argument("--cpu", type=int, default=None, help="pin the bench (and the C floor) to this CPU")
    ap.add_argument("--no-strace", action="store_true", help="skip the strace -c syscall count per run")
    ap.add_argument("--json", metavar="FILE", help="save all results as JSON")
    ap.add_argument("--exec", dest="exec_cmd", metavar="CMD",
                    help="instead of timing: for each N and variant, make the containers, run CMD (sh -c) "
                         "with HVSTAT_BENCH_N and HVSTAT_BENCH_VARIANT set, remove them")
    ap.add_argument("--profile", nargs="?", const="phases", choices=["phases", "callgrind"],
                    help="instead of timing: build a Rust driver over hvstat-core (bench/out/containers_profile) and "
                         "time the phases of a sample for each N; 'callgrind' adds instruction counts and heap totals")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECS",
                    help="before each N and variant, wait up to SECS for no other guests and < 0.1 CPUs of other load")
    ap.add_argument("--cleanup", action="store_true", help="remove what a SIGKILLed run left (from the state file), then exit")
    args = ap.parse_args(argv)
    args.counts = sorted({int(x) for x in args.counts.split(",") if x.strip()})

    if os.geteuid() != 0:
        raise SystemExit("needs root (mkdir in /sys/fs/cgroup, netns, veth)")
    if args.cleanup:
        return cleanup_leftovers()
    if STATE.exists():
        raise SystemExit(f"{STATE} exists: a previous run was killed; run with --cleanup first")
    missing_h = [h for h in HIERARCHIES if not (CG / h).is_dir()]
    if missing_h:
        raise SystemExit(f"this bench expects the hybrid layout of TESTBED.md; missing {missing_h} under {CG}")

    # Run the finally blocks on SIGTERM/SIGHUP too, not only on Ctrl-C.
    def _term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    # hvstat keeps every file of every container open: allow as many fds as the hard limit does
    # (root here lacks CAP_SYS_RESOURCE, so the hard limit itself cannot be raised).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    import msgspec

    import hvstat._core as core_mod

    exe = build_floor()
    profile_bin = build_profile() if args.profile else None
    variants = [("cgroup-only", 0)] + ([(f"netns 1/{args.netns_every}", args.netns_every)] if args.netns_every > 0 else [])
    runs: list[dict] = []
    notes: list[str] = []
    fleet = Fleet()
    t_start = time.monotonic()
    try:
        for n_req in args.counts:
            for variant, k in variants:
                # How many containers fit under the fd limit: hvstat keeps every file of every
                # guest open (probed above), the driver or interpreter needs its own fds.
                quiet = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
                if quiet:
                    print(f"[{time.monotonic() - t_start:6.1f} s] {variant} N={n_req}: {quiet}", file=sys.stderr, flush=True)
                # Probed again for each N: other users' guests come and go.
                per_file, others_fds = probe_fds(fleet)
                per_ctr = per_file + (1 / k if k else 0)
                budget = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - fds_open() - FD_MARGIN - others_fds
                n = min(n_req, int(budget // per_ctr))
                if n < n_req:
                    notes.append(f"{variant}, N={n_req}: ran {n} containers: hvstat keeps {per_ctr:.1f} fds per container open "
                                 f"and RLIMIT_NOFILE is {resource.getrlimit(resource.RLIMIT_NOFILE)[1]} (hard; root lacks "
                                 f"CAP_SYS_RESOURCE here), so {n_req} would hit EMFILE (checked: the last container's reads fail)")
                t0 = time.monotonic()
                fleet.create(n, k)
                setup_secs = time.monotonic() - t0
                if profile_bin:
                    print(f"== {variant}, N={n}: hvstat-core phases (no Python)", flush=True)
                    run_profile(profile_bin, args.profile, n)
                    print(flush=True)
                elif args.exec_cmd:
                    env = dict(os.environ, HVSTAT_BENCH_N=str(n), HVSTAT_BENCH_VARIANT=variant)
                    print(f"== {variant}, N={n}: {args.exec_cmd}", flush=True)
                    subprocess.run(["sh", "-c", args.exec_cmd], env=env)
                else:
                    r = measure(fleet, n_req, variant, args, exe)
                    r["setup_secs"] = setup_secs
                    r["quiet_wait"] = quiet
                    runs.append(r)
                    print(f"[{time.monotonic() - t_start:6.1f} s] {variant} N={n} done (setup {setup_secs:.1f} s)", file=sys.stderr, flush=True)
                t0 = time.monotonic()
                problems = _destroy(fleet)
                if problems:
                    raise RuntimeError("cleanup failed: " + "; ".join(problems[:5]))
                if runs:
                    runs[-1]["teardown_secs"] = time.monotonic() - t0
    finally:
        problems = _destroy(fleet)
        left = [str(p) for h in HIERARCHIES for p in (CG / h / "docker").glob(f"{fleet.tag}*")]
        if problems or left:
            print(f"CLEANUP PROBLEMS: {problems} {left[:5]}", file=sys.stderr)
    if args.exec_cmd or args.profile:
        return 0

    # ---------------------------------------------------------------- print
    m = machine()
    versions = {"hvstat_core": getattr(core_mod, "__version__", "?"), "msgspec": msgspec.__version__}
    P = print
    P("hvstat container benchmark")
    P(f"machine : kernel {m['kernel']}, {m['cpu_model']}, {m['cpu_count']} CPUs, Python {m['python']}")
    P(f"pinning : {'CPU ' + str(args.cpu) + ' (bench and C floor)' if args.cpu is not None else 'none (affinity ' + ','.join(map(str, m['affinity'])) + ')'}")
    so = Path(core_mod.__file__)
    P(f"versions: hvstat._core {versions['hvstat_core']} ({so.name} built {time.strftime('%Y-%m-%d %H:%M', time.gmtime(so.stat().st_mtime))} UTC), "
      f"msgspec {versions['msgspec']}")
    P(f"layout  : cgroup v1 {','.join(h for h in HIERARCHIES if h != 'unified')} + v2 at {CG / 'unified'}; "
      f"hvstat walks {runs[0]['primary_hierarchy'] if runs else '?'}")
    P(f"guests  : /docker/<64 hex> in {', '.join(HIERARCHIES)}; one `sleep infinity` each (the bench's own children)"
      + (f"; variant 'netns 1/{args.netns_every}': every {args.netns_every}th also in its own netns with lo + veth eth0" if args.netns_every else ""))
    P(f"timing  : {args.repeats} repeats, round-robin; per repeat each line runs max(3, {args.iterations} // N) samples; "
      "µs per full sample and per container")
    for note in notes:
        P(f"note    : {note}")
    P()
    for r in runs:
        pr_run(r)

    # Summary and scaling
    P("summary: best µs per guest (median in parentheses); N = guests sampled (ours, plus other users' if any)")
    P(f"{'variant':<13} {'N':>5}  {'hvstat core':>15} {'hvstat full':>15} {'pure Python':>15} {'floor (C)':>15} {'floor per tick':>15} {'tick, buf/file':>15}  {'full/tick':>9} {'core/tick':>9}")
    ratios = {}
    for r in runs:
        res = r["results"]

        def c(k):
            return f"{res[k]['best_us_per_container']:6.2f} ({res[k]['median_us_per_container']:6.2f})"

        fk, ck, tk = res["hvstat full"], res["hvstat core"], res["floor (C) per tick"]
        key = f"{r['variant']} {r['requested']}"
        ratios[key] = {
            "full/tick best": fk["best_us"] / tk["best_us"], "full/tick median": fk["median_us"] / tk["median_us"],
            "core/tick best": ck["best_us"] / tk["best_us"], "core/tick median": ck["median_us"] / tk["median_us"],
        }
        P(f"{r['variant']:<13} {r['guests']:>5}  {c('hvstat core'):>15} {c('hvstat full'):>15} {c('pure Python'):>15} "
          f"{c('floor (C)'):>15} {c('floor (C) per tick'):>15} {c(FLOOR_BUFS):>15}  {ratios[key]['full/tick best']:8.2f}x {ratios[key]['core/tick best']:8.2f}x")
    P()
    P("growth: marginal µs per added container between consecutive N (best, from the totals per sample)")
    gk = ("hvstat core", "hvstat full", "pure Python", "floor (C) per tick", FLOOR_BUFS)
    P(f"{'variant':<13} {'N':>11}  " + " ".join(f"{k:>15}" for k in gk))
    verdicts = []
    for variant, _ in variants:
        rs = [r for r in runs if r["variant"] == variant]
        for a, b in zip(rs, rs[1:]):
            dn = b["guests"] - a["guests"]
            P(f"{variant:<13} {str(a['guests']) + ' -> ' + str(b['guests']):>11}  "
              + " ".join(f"{(b['results'][k]['best_us'] - a['results'][k]['best_us']) / dn:15.2f}" for k in gk))
        if len(rs) >= 3:
            def marg(k, i):
                return (rs[i + 1]["results"][k]["best_us"] - rs[i]["results"][k]["best_us"]) / (rs[i + 1]["guests"] - rs[i]["guests"])
            lo, hi = marg("hvstat full", len(rs) - 3), marg("hvstat full", len(rs) - 2)
            flo, fhi = marg("floor (C) per tick", len(rs) - 3), marg("floor (C) per tick", len(rs) - 2)
            lin = hi <= 1.25 * lo
            verdicts.append((variant, "linear", lin, f"hvstat full: {hi:.2f} µs per added guest at the top against {lo:.2f} below "
                             f"({hi / lo:.2f}x); the floor per tick: {fhi:.2f} against {flo:.2f} ({fhi / flo:.2f}x); "
                             f"hvstat full minus the floor: {hi - fhi:.2f} against {lo - flo:.2f}"))
    P()
    P("targets (largest N of each variant; hvstat full and core against the floor per tick, best and median both <= 1.5)")
    for variant, _ in variants:
        rs = [r for r in runs if r["variant"] == variant]
        if not rs:
            continue
        r = rs[-1]
        q = ratios[f"{variant} {r['requested']}"]
        for what in ("full", "core"):
            ok = q[f"{what}/tick best"] <= 1.5 and q[f"{what}/tick median"] <= 1.5
            P(f"  {variant:<13} N={r['containers']:<5} hvstat {what} / floor per tick: {q[f'{what}/tick best']:.2f}x best, "
              f"{q[f'{what}/tick median']:.2f}x median   target <= 1.5: {'MET' if ok else 'NOT MET'}")
    for variant, _, ok, text in verdicts:
        P(f"  {variant:<13} linear growth (hvstat full's marginal cost at the top <= 1.25x the one below): {'MET' if ok else 'NOT MET'}")
        P(f"  {'':<13}   {text}")
    P()
    for r in runs:
        if not r["floor_groups"]:
            continue
        n = r["guests"]
        total = sum(g["best_us"] for g in r["floor_groups"])
        P(f"floor (C) per tick by file, {r['variant']}, N={n} (each group timed alone; best µs per sample, per container, share):")
        for g in sorted(r["floor_groups"], key=lambda g: -g["best_us"]):
            P(f"  {g['label']:<42} {g['count']:6d} {g['best_us']:10.1f} {g['best_us'] / n:8.2f} {100 * g['best_us'] / total:5.1f} %")
        P(f"  {'sum':<42} {'':6} {total:10.1f} {total / n:8.2f}")
        P()

    if args.json:
        doc = {
            "machine": m,
            "pinned_cpu": args.cpu,
            "versions": versions,
            "iterations": args.iterations,
            "repeats": args.repeats,
            "notes": notes,
            "runs": runs,
            "ratios": ratios,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        P(f"saved {args.json}")
    return 0


def _destroy(fleet: Fleet) -> list[str]:
    """destroy() with SIGINT/SIGTERM/SIGHUP held back, so a second signal cannot cut it short."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        return fleet.destroy()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


if __name__ == "__main__":
    sys.exit(main())
