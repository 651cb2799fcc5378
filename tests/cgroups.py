"""Real cgroups, processes, network namespaces and container runtimes for the container system tests.

Everything here is made by the test that uses it, under a unique name (random hex), and removed by
that test's teardown, also when the test fails (the fixtures in conftest.py call ``remove()`` in a
finalizer). Only processes the test itself started are ever moved into a cgroup: a shell we spawn
writes its *own* pid into the cgroups and then ``exec``s the workload (the self-move-then-exec of
/work/shared/TESTBED.md section 3(a)), so all of the workload's activity is charged there from its
first instruction. Memory and block I/O must be produced *after* the move: v1 memory charges stay
with the old cgroup (memory.move_charge_at_immigrate is off) and v1 has no cgroup writeback.

This machine (TESTBED section 0): cgroup v1 hierarchies with cpu and cpuacct mounted SEPARATELY,
plus a controller-less v2 tree at /sys/fs/cgroup/unified; PID 1 is not systemd.

Importable as ``cgroups`` (pytest puts tests/ on sys.path, see helpers.py).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import random
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import WAIT_SECS

MiB = 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The hierarchies hvstat reads a container from on this machine (cpu and cpuacct are separate
# mounts here; "unified" is the controller-less v2 tree that still has cpu.stat and PSI).
CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids", "unified")
# Parent directories that runtimes (or our fake containers) leave behind; TESTBED section 5.
LEFTOVER_PARENTS = ("docker", "system.slice", "libpod_parent", "lxc.pivot", "machine", "kubepods")
NETNS_DIR = Path("/run/netns")


def hex_id(nbytes: int = 32) -> str:
    """A random lowercase hex string; 32 bytes give a docker-style 64-hex container id."""
    return secrets.token_hex(nbytes)


def why_no_cgroups() -> str | None:
    """Why this machine cannot run the cgroup tests (None when it can)."""
    if os.geteuid() != 0:
        return "needs root to create cgroups"
    missing = [c for c in CONTROLLERS if not (CGROUP_ROOT / c / "cgroup.procs").exists()]
    if missing:
        return f"no cgroup hierarchy mounted at {', '.join(str(CGROUP_ROOT / c) for c in missing)}"
    return None


def write_file(path: Path, value: str | int) -> None:
    """One write(2) of ``value``: cgroup files take one value per write."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def pids_in(procs_file: Path) -> list[int]:
    try:
        return [int(x) for x in procs_file.read_text().split()]
    except FileNotFoundError:
        return []


def read_line(proc: subprocess.Popen[bytes], timeout: float = WAIT_SECS) -> str:
    """The next line the process writes to stdout; fails (never hangs) when it exits or stays silent."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"pid {proc.pid}: no line on stdout within {timeout}s (got {buf!r})")
        # poll, not select: a sampler holds many fds open, and select() fails past fd 1023.
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        if not poller.poll(int(left * 1000) + 1):
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr and proc.poll() is not None else ""
            raise AssertionError(f"pid {proc.pid} closed stdout (exit {proc.poll()}) before a line; got {buf!r}; stderr: {err}")
        buf += chunk
    return buf.decode().strip()


def expect_line(proc: subprocess.Popen[bytes], prefix: str, timeout: float = WAIT_SECS) -> str:
    line = read_line(proc, timeout)
    assert line.startswith(prefix), f"expected {prefix!r} from pid {proc.pid}, got {line!r}"
    return line


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Kill a process we started (its whole session: it was started with start_new_session) and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=WAIT_SECS)
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()


def run(argv: Sequence[str], *, check: bool = True, timeout: float = WAIT_SECS, **kw: Any) -> subprocess.CompletedProcess[str]:
    """A command to completion, with a timeout, its output captured; a failure shows both streams."""
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


# --- workloads: small Python programs the container's process execs -------------------------------
# Each prints one "ready ..." line once its work is done (or, for the busy loop, about to start),
# then keeps running until killed, so the test samples a live container.

BUSY = "import sys; print('ready', flush=True)\nwhile True: pass"

# Allocates and touches argv[1] MiB: a bytes object made by multiplication is written (memset) in
# full, so every page is faulted in and charged to the cgroup the process is in now.
ALLOC = """
import sys, time
n = int(sys.argv[1]) << 20
block = b'\\x01' * n
print('ready', len(block), flush=True)
while True: time.sleep(60)
"""

# Writes argv[2] MiB to the file argv[1] with O_DIRECT (page-cache bypass: each write is a bio
# submitted by this process, charged to its blkio cgroup at submission), fsyncs, reads it all back
# with O_DIRECT, and reports the bytes each way.
DIRECT_IO = """
import mmap, os, sys, time
path, mib = sys.argv[1], int(sys.argv[2])
buf = mmap.mmap(-1, 1 << 20)          # page-aligned, as O_DIRECT needs
buf.write(os.urandom(1 << 20))
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
wrote = sum(os.write(fd, buf) for _ in range(mib))
os.fsync(fd); os.close(fd)
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
read = 0
while True:
    n = os.readv(fd, [buf])
    if n <= 0: break
    read += n
os.close(fd)
print('ready', wrote, read, flush=True)
while True: time.sleep(60)
"""

# Listens on UDP port argv[1]; prints "ready" once bound, then "got <datagrams> <bytes>" after
# every argv[2] datagrams. The receive buffer is forced to 8 MiB (root: SO_RCVBUFFORCE): with the
# default (~208 KiB, about 90 datagrams of 1000 bytes at their skb truesize) a burst sent while this
# process waits for a CPU would overflow it and the sink would never see all datagrams.
UDP_SINK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, getattr(socket, 'SO_RCVBUFFORCE', 33), 8 << 20)
s.bind(('0.0.0.0', int(sys.argv[1])))
every = int(sys.argv[2])
print('ready', flush=True)
n = size = 0
while True:
    size += len(s.recv(65536)); n += 1
    if n % every == 0: print('got', n, size, flush=True)
"""

SLEEP = "import time; print('ready', flush=True)\nwhile True: time.sleep(60)"


def py(code: str, *args: object) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


# --- fake containers: cgroups named as each runtime names them ---------------------------------------


@dataclass
class FakeContainer:
    """A cgroup at ``rel`` (e.g. ``docker/<64hex>``) in every hierarchy of CONTROLLERS, made by the
    test, with processes the test starts in it. ``remove()`` kills them and removes every directory
    this object made (sub-cgroups, the container, and parents such as ``docker`` that did not exist
    before), also after a partial ``create()``."""

    rel: str
    runtime: str = "docker"
    id: str = ""
    controllers: tuple[str, ...] = CONTROLLERS
    made: list[Path] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def cgroup_path(self) -> str:
        """The path as /proc/<pid>/cgroup shows it, which is what hvstat reports."""
        return "/" + self.rel

    def dir(self, controller: str, sub: str = "") -> Path:
        d = CGROUP_ROOT / controller / self.rel
        return d / sub if sub else d

    def create(self) -> FakeContainer:
        for c in self.controllers:
            self._mkdirs(CGROUP_ROOT / c, self.rel)
        return self

    def _mkdirs(self, base: Path, rel: str) -> None:
        d = base
        for part in Path(rel).parts:
            d = d / part
            try:
                d.mkdir()
            except FileExistsError:
                continue
            self.made.append(d)

    def add_sub(self, sub: str) -> None:
        """A nested cgroup inside the container (what systemd or a runtime makes inside)."""
        for c in self.controllers:
            self._mkdirs(self.dir(c), sub)

    def write(self, controller: str, file: str, value: str | int) -> None:
        write_file(self.dir(controller) / file, value)

    def read(self, controller: str, file: str) -> str:
        return (self.dir(controller) / file).read_text()

    def pids(self, controller: str = "memory", sub: str = "") -> list[int]:
        return pids_in(self.dir(controller, sub) / "cgroup.procs")

    def spawn(self, argv: Sequence[str], *, netns: str | None = None, sub: str = "") -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the container: a shell we start writes its own pid into
        ``cgroup.procs`` of every hierarchy (or of the sub-cgroup ``sub``), then execs ``argv``
        (through ``nsenter --net`` when ``netns`` is given, after the move, so /sys stays the
        host's for the writes)."""
        targets = [self.dir(c, sub) / "cgroup.procs" for c in self.controllers]
        script = " && ".join(f"echo $$ > {t}" for t in targets) + ' && exec "$@"'
        if netns is not None:
            argv = ["nsenter", f"--net={NETNS_DIR / netns}", "--", *argv]
        proc = subprocess.Popen(
            ["sh", "-c", script, "sh", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop_processes(self) -> None:
        for p in self.procs:
            stop_process(p)
        self.procs.clear()
        # Wait until the kernel has taken the dead tasks out of the cgroup (rmdir needs it empty).
        deadline = time.monotonic() + WAIT_SECS
        while any(pids_in(d / "cgroup.procs") for d in self.made):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill our processes and rmdir what we made, deepest first. A parent we made that some
        other cgroup now uses (rmdir: EBUSY/ENOTEMPTY) is left for whoever uses it."""
        self.stop_processes()
        errors = []
        own = self._own_dirs()
        for d in sorted(self.made, key=lambda p: len(p.parts), reverse=True):
            mine = any(d == o or o in d.parents for o in own)
            for attempt in range(100):
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as e:
                    if not mine and e.errno in (errno.ENOTEMPTY, errno.EBUSY):
                        pass  # a parent we made that another cgroup now lives in: theirs to remove
                    elif e.errno == errno.EBUSY and attempt < 99:
                        time.sleep(0.05)  # our killed tasks are still leaving the cgroup
                        continue
                    else:
                        errors.append(f"{d}: {e}")
                break
        self.made.clear()
        if errors:
            raise AssertionError("could not remove: " + "; ".join(errors))

    def _own_dirs(self) -> set[Path]:
        return {CGROUP_ROOT / c / self.rel for c in self.controllers}


# --- network namespaces with a veth pair ---------------------------------------------------------------


def _used_ipv4_networks() -> list[ipaddress.IPv4Network]:
    out = run(["ip", "-j", "-4", "addr", "show"]).stdout
    nets = []
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            nets.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return nets


@dataclass
class Netns:
    """``ip netns add hvt-<hex>`` plus a veth pair (host side ``hv<hex>h``, container side ``hv<hex>c``)
    on a random /30 of 10.0.0.0/8 that no local interface uses. IPv6 is disabled on both ends and the
    neighbours are static, so the link carries only what the test sends (no NDP, MLD or ARP)."""

    name: str = field(default_factory=lambda: f"hvt-{hex_id(4)}")
    tag: str = field(default_factory=lambda: hex_id(4))
    made_run_netns: bool = False
    created: bool = False
    host_ip: str = ""
    guest_ip: str = ""

    @property
    def host_if(self) -> str:
        return f"hv{self.tag}h"  # 11 characters: under IFNAMSIZ (16 with the NUL)

    @property
    def guest_if(self) -> str:
        return f"hv{self.tag}c"

    def create(self) -> Netns:
        used = _used_ipv4_networks()
        for _ in range(100):
            net = ipaddress.ip_network(f"10.{random.randint(64, 250)}.{random.randint(0, 255)}.{random.randrange(0, 256, 4)}/30")
            if not any(net.overlaps(u) for u in used):
                break
        else:
            raise AssertionError("no free /30 in 10.0.0.0/8 for the test's veth pair")
        self.host_ip, self.guest_ip = (str(h) for h in net.hosts())
        self.made_run_netns = not NETNS_DIR.exists()
        run(["ip", "netns", "add", self.name])
        self.created = True
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.guest_if])
        self._sysctl_v6_off(None, self.host_if)
        run(["ip", "link", "set", self.guest_if, "netns", self.name])
        self._sysctl_v6_off(self.name, self.guest_if)
        host_mac = json.loads(run(["ip", "-j", "link", "show", self.host_if]).stdout)[0]["address"]
        guest_mac = json.loads(run(["ip", "-n", self.name, "-j", "link", "show", self.guest_if]).stdout)[0]["address"]
        run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
        run(["ip", "-n", self.name, "addr", "add", f"{self.guest_ip}/30", "dev", self.guest_if])
        run(["ip", "neigh", "replace", self.guest_ip, "lladdr", guest_mac, "dev", self.host_if, "nud", "permanent"])
        run(["ip", "-n", self.name, "neigh", "replace", self.host_ip, "lladdr", host_mac, "dev", self.guest_if, "nud", "permanent"])
        run(["ip", "link", "set", self.host_if, "up"])
        run(["ip", "-n", self.name, "link", "set", self.guest_if, "up"])
        run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        return self

    @staticmethod
    def _sysctl_v6_off(ns: str | None, ifname: str) -> None:
        """net.ipv6.conf.<if>.disable_ipv6 = 1 (before the link is up: no autoconf, NDP or MLD)."""
        knob = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
        if ns is None:
            if Path(knob).exists():  # absent: no IPv6 in this kernel, nothing to disable
                write_file(Path(knob), 1)
            return
        run(["ip", "netns", "exec", ns, "sh", "-c", f"[ ! -e {knob} ] || echo 1 > {knob}"])

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def remove(self) -> None:
        """Delete the namespace (which deletes the veth pair) and, when no other namespace is left
        and it was us who made it, the /run/netns bind mount that ``ip netns add`` sets up."""
        if self.created:
            run(["ip", "netns", "del", self.name], check=False)
            self.created = False
        run(["ip", "link", "del", self.host_if], check=False)
        if self.made_run_netns and NETNS_DIR.exists() and not any(NETNS_DIR.iterdir()):
            mounted = run(["findmnt", "-n", str(NETNS_DIR)], check=False).returncode == 0
            if mounted:
                run(["umount", str(NETNS_DIR)])
            NETNS_DIR.rmdir()


# Ethernet (14) + IPv4 without options (20) + UDP (8): what a veth counts per datagram on top of the
# payload (it counts skb->len including the Ethernet header and, being virtual, adds no FCS or padding).
UDP_FRAME_OVERHEAD = 14 + 20 + 8


def send_udp(dest: str, port: int, count: int, size: int) -> int:
    """Send ``count`` datagrams of ``size`` bytes from the host; returns the payload bytes sent."""
    import socket

    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        payload = os.urandom(size)
        for _ in range(count):
            sent += s.sendto(payload, (dest, port))
    return sent


# --- block devices --------------------------------------------------------------------------------------


def whole_disk_of(path: Path) -> str:
    """``major:minor`` of the whole disk holding ``path`` (blk-throttle rules take whole disks)."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    sysdir = Path("/sys/dev/block", dev).resolve()
    if (sysdir / "partition").exists():
        dev = (sysdir.parent / "dev").read_text().strip()
    return dev


# No-op throttle rule: 1 TiB/s. Any rule on a device makes v1 blk-throttle start counting
# blkio.throttle.io_service_bytes (lazy init on 6.x, TESTBED section 3(a) gotcha).
HUGE_BPS = 1 << 40


def activate_blkio_accounting(c: FakeContainer, disk: str) -> None:
    c.write("blkio", "blkio.throttle.read_bps_device", f"{disk} {HUGE_BPS}")
    c.write("blkio", "blkio.throttle.write_bps_device", f"{disk} {HUGE_BPS}")


# --- leftovers -------------------------------------------------------------------------------------------


def leftovers(names: Iterable[str]) -> list[str]:
    """Anything carrying one of ``names`` (our unique ids) still in a cgroup hierarchy, in /run/netns
    or among the links: what a test must not leave behind."""
    names = [n for n in names if n]
    out = []
    for h in CGROUP_ROOT.iterdir():
        for parent in ("", *LEFTOVER_PARENTS):
            d = h / parent
            if not d.is_dir():
                continue
            for child in d.iterdir():
                if child.is_dir() and any(n in child.name for n in names):
                    out.append(str(child))
    if NETNS_DIR.is_dir():
        out += [str(p) for p in NETNS_DIR.iterdir() if any(n in p.name for n in names)]
    links = run(["ip", "-o", "link", "show"], check=False).stdout
    out += [line.split(":")[1].strip() for line in links.splitlines() if any(n in line for n in names)]
    return out


# --- container runtimes ------------------------------------------------------------------------------------


def have(*tools: str) -> str | None:
    """Why the tools are unusable (None when all are on PATH)."""
    missing = [t for t in tools if shutil.which(t) is None]
    return f"not installed: {', '.join(missing)} (scripts/setup installs them)" if missing else None


BUSYBOX_APPLETS = ("sh", "sleep", "ls", "cat", "ps", "ip", "dd", "true")


def busybox_rootfs(root: Path) -> Path:
    """A minimal rootfs with the host's static busybox (busybox-static)."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox not installed"
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for a in BUSYBOX_APPLETS:
        (root / "bin" / a).symlink_to("busybox")
    return root


# How long teardown waits for a runtime's helper (podman's conmon, LXC's monitor) to leave the
# parent cgroup it made before giving up on removing it.
PARENT_RELEASE_SECS = 10.0


@contextlib.contextmanager
def parents_cleaned(*names: str) -> Iterator[None]:
    """Remove, afterwards, the parent cgroups ``names`` that a runtime made and left behind (runc
    leaves /docker, podman /libpod_parent{,/conmon}, LXC /lxc.pivot): only those that did not exist
    before, and only as rmdir can (never a cgroup with processes in it). A helper that is still
    exiting (conmon) keeps its cgroup busy for a moment: retried for PARENT_RELEASE_SECS."""
    before = {(h, n) for h in CGROUP_ROOT.iterdir() for n in names if (h / n).is_dir()}
    try:
        yield
    finally:
        deadline = time.monotonic() + PARENT_RELEASE_SECS
        while True:
            left = []
            for h in CGROUP_ROOT.iterdir():
                for n in names:
                    d = h / n
                    if (h, n) in before or not d.is_dir():
                        continue
                    try:
                        subs = sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
                    except OSError:  # a sub-cgroup went away while we listed: list again
                        left.append(d)
                        continue
                    for sub in [*subs, d]:
                        try:
                            sub.rmdir()
                        except FileNotFoundError:
                            pass
                        except OSError:
                            left.append(sub)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)


# State directories the runtimes make under /run: podman's runc leaves /run/runc, LXC leaves
# /run/lxc/lock/<lxcpath>/.<name> (TESTBED section 5).
RUN_STATE_DIRS = (Path("/run/runc"), Path("/run/libpod"), Path("/run/crun"), Path("/run/lxc"))


@contextlib.contextmanager
def run_state_cleaned(lxc_path: Path | None = None) -> Iterator[None]:
    """Afterwards: remove LXC's lock directory for our own ``-P`` path, then every directory in
    RUN_STATE_DIRS that did not exist before and is (now) empty, deepest first."""
    before = {d for d in RUN_STATE_DIRS if d.exists()}
    try:
        yield
    finally:
        if lxc_path is not None:
            lock = Path("/run/lxc/lock") / str(lxc_path).lstrip("/")
            shutil.rmtree(lock, ignore_errors=True)
            # and the now-empty directories between it and /run/lxc/lock
            for parent in lock.parents:
                if parent == Path("/run/lxc/lock") or Path("/run/lxc/lock") not in parent.parents:
                    break
                with contextlib.suppress(OSError):
                    parent.rmdir()
        for d in RUN_STATE_DIRS:
            if d in before or not d.is_dir():
                continue
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()


# Runs as PID 1 of a new PID namespace (unshare --pid --fork --mount-proc): starts one process in
# the container, samples it with a ContainerSampler on that namespace's /proc, starts a second one,
# then samples every argv[4] seconds for argv[5] seconds, printing one JSON line per sample:
# [processes, pids_current]. The kernel keys cgroup v1 pid lists by the reader's PID namespace, so
# no reader outside (another hvstat on this machine, the test itself) shares or refreshes this one's.
# Everything it starts dies with it (PID 1 of the namespace).
FAST_SAMPLER = """
import json, subprocess, sys, time
from hvstat._core import ContainerSampler
procs_files, cid, config, every, window = sys.argv[1].split(','), sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
move = ' && '.join(f'echo $$ > {f}' for f in procs_files)
def start():
    p = subprocess.Popen(['sh', '-c', move + ' && exec sleep 600'], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while str(p.pid) not in open(procs_files[-1]).read().split():
        assert p.poll() is None and time.monotonic() < deadline, 'could not move a process'
        time.sleep(0.01)
    return p
def sample(s):
    c = next(c for c in json.loads(s.sample())['containers'] if c['id'] == cid)
    return [c['processes'], c['pids_current']]
kids = [start()]
s = ContainerSampler(config)
print(json.dumps(sample(s)), flush=True)
kids.append(start())
end = time.monotonic() + window
while time.monotonic() < end:
    print(json.dumps(sample(s)), flush=True)
    time.sleep(every)
for k in kids:
    k.kill(); k.wait()
print('done', flush=True)
"""


def wait_gone(marker: str, timeout: float = WAIT_SECS) -> None:
    """Wait until no process has ``marker`` (a unique path of ours) in its command line."""
    deadline = time.monotonic() + timeout
    me = os.getpid()
    while True:
        alive = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == me:
                continue
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    alive.append(int(d.name))
            except OSError:
                continue
        if not alive or time.monotonic() > deadline:
            return
        time.sleep(0.1)
