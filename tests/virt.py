"""Real VMs for the VM tests: a libvirtd we start by hand, transient TCG/KVM domains, a bare QEMU with QMP.

How this machine runs them is in /work/shared/TESTBED.md sections 1 and 2 (no systemd, so the
daemons are started by hand; TCG for booted guests, KVM only firmware-only). Importable as ``virt``
(pytest puts tests/ on sys.path, see helpers.py).

API (everything else here is private):

``ensure_libvirtd() -> str``
    Makes /dev/kvm usable by libvirt-qemu, starts virtlogd and libvirtd when they are not running,
    waits until ``virsh version`` answers; returns ``URI`` ("qemu:///system"). Idempotent, cheap
    once up (about 30 ms). The daemons stay running after the tests (other sessions share them).
``restart_libvirtd() -> None``
    SIGTERM libvirtd, wait for it to exit, start it again, wait until it answers. Running domains
    survive (libvirt reconnects to their QEMU monitors).
``guest_files() -> tuple[Path, Path]``
    (vmlinuz, initrd.gz) of the tiny test guest, built by scripts/build-test-guest when missing.
``libvirt_domain(mode=None, *, vcpus=1, memory_mib=128, kind="qemu", tap=True, disk=True, balloon_period=1)``
    Context manager -> ``Domain``: a transient libvirt domain, running on entry, destroyed and
    cleaned up on exit.
``qmp_qemu(mode=None, *, vcpus=2, tap=False, memory_mib=128, kind="qemu")``
    Context manager -> ``QemuVm``: a bare ``qemu-system-x86_64 -daemonize`` with a QMP socket,
    killed and cleaned up on exit.
``leftovers(token) -> list[str]``
    Anything still carrying a VM's unique token (processes, taps, cgroups, files): what a test
    asserts is empty after the context manager exits.

Guest modes (the kernel cmdline ``hvstat.mode=``, read by the guest's /init, see
scripts/build-test-guest): ``None`` = no kernel at all (SeaBIOS only, finds no boot disk and sits
there; the only kind that is practical under KVM here), ``"idle"`` = boots, prints READY, sleeps;
``"busy"`` = prints READY, then spins on every vCPU; ``"io"`` = prints READY, then every second
writes+fsyncs and reads 1 MiB of /dev/vda and pings/wgets the gateway 10.0.2.2 (on a libvirt tap
nothing answers, so the traffic is ARP requests that never leave the tap). Guests boot to READY in
about 3 s under TCG.

Every VM has a unique token (8 hex digits) in its name, tap name and file paths, and its files live
in one directory /tmp/hvstat-vm-<token>. Cleanup runs in ``finally``, so also when the test fails;
a cleanup error fails the test (or is added as a note to the test's own exception).

Deliberately NOT undone: the /dev/kvm group and mode change (``chgrp kvm``, ``chmod 0660``, what
Debian's udev rule would have done; harmless and needed by every later libvirt call), and the
running daemons.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from helpers import WAIT_SECS, wait_ready

URI = "qemu:///system"
REPO = Path(__file__).resolve().parent.parent
BUILD_GUEST = REPO / "scripts" / "build-test-guest"
# The guest's /init prints this line (plus " mode=<mode> cpus=<n>") on ttyS0 once its virtio
# modules are loaded and eth0 is up.
READY = "HVSTAT READY"
QEMU = "/usr/bin/qemu-system-x86_64"
CGROUP_ROOT = Path("/sys/fs/cgroup")
LIBVIRT_SOCK = Path("/run/libvirt/libvirt-sock")
LIBVIRT_QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")
LIBVIRT_QEMU_RUN_DIR = Path("/run/libvirt/qemu")
DAEMONS = {  # name -> (binary, pidfile); virtlogd first: libvirtd hands it QEMU's stderr
    "virtlogd": ("/usr/sbin/virtlogd", Path("/run/virtlogd.pid")),
    "libvirtd": ("/usr/sbin/libvirtd", Path("/run/libvirtd.pid")),
}
# The first libvirt call after a start probes QEMU's capabilities (8-11 s here; 72 s when /dev/kvm
# is not accessible to libvirt-qemu, TESTBED 1.2).
LIBVIRTD_READY_SECS = 180.0
DISK_MIB = 16
# The daemons and the tools get a plain environment: nothing of the test's (HVSTAT_*, pyenv,
# LD_PRELOAD) leaks into a daemon that outlives the test session.
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "HOME": "/root"}


class VirtError(AssertionError):
    """A VM or daemon of the test bed did not do what it should (an AssertionError: fails the test)."""


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float = WAIT_SECS, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env or _ENV)
    if check and p.returncode != 0:
        raise VirtError(f"{' '.join(argv)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def _virsh(*args: str, check: bool = True, timeout: float = WAIT_SECS) -> subprocess.CompletedProcess[str]:
    return _run(["virsh", "-q", "-c", URI, *args], check=check, timeout=timeout)


def virsh(*args: str, check: bool = True) -> str:
    """``virsh -c qemu:///system <args>``; its stdout. Raises VirtError when it fails (check)."""
    return _virsh(*args, check=check).stdout


def _token() -> str:
    return secrets.token_hex(4)


def _alive(pid: int, comm: str | None = None) -> bool:
    """The process exists, is not a zombie and (when given) is named ``comm``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    name, _, rest = stat.partition("(")[2].rpartition(")")
    if rest.split()[0] in ("Z", "X"):
        return False
    return comm is None or name == comm


def _pid_from(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _wait(what: str, ok: Any, timeout: float, interval: float = 0.05, details: Any = None) -> None:
    """helpers.wait_ready, raising VirtError (callers tell a test bed failure from a test's)."""
    try:
        wait_ready(ok, what, timeout=timeout, every=interval, log=details)
    except AssertionError as e:
        raise VirtError(str(e)) from None


def _kill_and_wait(pid: int, comm: str | None, timeout: float = WAIT_SECS) -> None:
    """SIGTERM, wait for the process to be gone (it is PID 1's child: PID 1 reaps it), SIGKILL
    after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid, comm):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait(f"pid {pid} to die after SIGKILL", lambda: not _alive(pid, comm), 10)
            return
        time.sleep(0.05)


def _tail(path: Path | None, n: int = 4000) -> str:
    if path is None:
        return ""
    try:
        return f"--- {path} (tail) ---\n{path.read_bytes()[-n:].decode(errors='replace')}"
    except OSError as e:
        return f"--- {path}: {e}"


# --- libvirtd ---------------------------------------------------------------------------------------


def _fix_dev_kvm() -> None:
    """/dev/kvm is root:root 0600 here (no udev). libvirt then finds KVM at its capability probe
    but not accessible to libvirt-qemu, and re-probes QEMU on every API call (``virsh define``
    takes 72 s, TESTBED 1.2). Debian's udev rule would make it root:kvm 0660; do that."""
    kvm = Path("/dev/kvm")
    if not kvm.exists():
        return
    import grp

    try:
        gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return  # no kvm group: libvirt-qemu could not use it either way (TCG still works)
    st = kvm.stat()
    if st.st_gid != gid:
        os.chown(kvm, -1, gid)
    if st.st_mode & 0o060 != 0o060:
        kvm.chmod((st.st_mode & 0o7777) | 0o060)


def _daemon_pid(name: str) -> int | None:
    """The pid of the running daemon ``name`` per its pidfile, None when it is not running (a
    stale pidfile, a reused pid or a zombie does not count)."""
    pid = _pid_from(DAEMONS[name][1])
    return pid if pid is not None and _alive(pid, name) else None


def _start_daemon(name: str) -> None:
    binary, pidfile = DAEMONS[name]
    if not Path(binary).exists():
        raise VirtError(f"{binary} is not installed: run scripts/setup")
    # -d daemonizes (and writes the pidfile); no pipes of ours, or a capture would wait on it forever
    subprocess.run(
        [binary, "-d"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=_ENV, timeout=WAIT_SECS, check=True, start_new_session=True,
    )
    _wait(f"{name} to write {pidfile}", lambda: _daemon_pid(name) is not None, WAIT_SECS)


def _wait_libvirtd_ready() -> None:
    """Until ``virsh version`` works: retried, since a crashed daemon's socket file can be there
    before the new daemon listens on it."""
    deadline = time.monotonic() + LIBVIRTD_READY_SECS
    while True:
        p = _virsh("version", check=False, timeout=LIBVIRTD_READY_SECS)
        if p.returncode == 0:
            return
        if time.monotonic() > deadline or _daemon_pid("libvirtd") is None:
            log = _tail(Path("/var/log/libvirt/libvirtd.log"))
            raise VirtError(f"libvirtd does not answer: `virsh version`: {p.stderr}\n{log}")
        time.sleep(0.2)


def ensure_libvirtd() -> str:
    """Make /dev/kvm usable by libvirt-qemu, start virtlogd and libvirtd unless they run (no
    systemd here), wait until libvirtd answers (the first call after a start probes QEMU, ~8 s).
    Returns the URI to connect to, "qemu:///system". Idempotent."""
    _fix_dev_kvm()
    for name in DAEMONS:
        if _daemon_pid(name) is None:
            _start_daemon(name)
    _wait_libvirtd_ready()
    return URI


def restart_libvirtd() -> None:
    """Stop libvirtd (SIGTERM, wait until it has exited) and start it again, then wait until it
    answers. Domains keep running across it. Other connections to libvirtd (another test's, a
    running hvstat's) are cut: the code under test must reconnect."""
    ensure_libvirtd()
    pid = _daemon_pid("libvirtd")
    assert pid is not None
    _kill_and_wait(pid, "libvirtd")
    # it removes its pidfile and socket on a clean exit; wait for the socket to go so that the
    # readiness check below cannot see the old daemon's
    _wait(f"{LIBVIRT_SOCK} to go", lambda: not LIBVIRT_SOCK.exists(), 10)
    ensure_libvirtd()


# --- the guest ----------------------------------------------------------------------------------------


def guest_dir() -> Path:
    return Path(os.environ.get("HVSTAT_TEST_GUEST_DIR", "/var/cache/hvstat-test/guest"))


@functools.cache
def guest_files() -> tuple[Path, Path]:
    """(vmlinuz, initrd.gz) of the test guest. Runs scripts/build-test-guest (once per process),
    which returns at once when they are built and current (the network is needed only to build)."""
    env = {**_ENV, "HVSTAT_TEST_GUEST_DIR": str(guest_dir())}
    out = _run([str(BUILD_GUEST)], timeout=600, env=env).stdout.split()
    vmlinuz, initrd = Path(out[-2]), Path(out[-1])
    assert vmlinuz.is_file() and initrd.is_file(), out
    return vmlinuz, initrd


_MODES = (None, "idle", "busy", "io")


def _cmdline(mode: str) -> str:
    return f"console=ttyS0 quiet panic=-1 hvstat.mode={mode}"


def _vm_dir(token: str) -> Path:
    d = Path(f"/tmp/hvstat-vm-{token}")
    d.mkdir(mode=0o755)
    d.chmod(0o755)  # QEMU under libvirt runs as libvirt-qemu and must reach the disk in here
    return d


def _make_disk(d: Path) -> Path:
    disk = d / "disk.qcow2"
    _run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), f"{DISK_MIB}M"])
    return disk


def _copy_guest(d: Path) -> tuple[Path, Path]:
    """A private copy of kernel and initrd per VM: libvirt chowns what a domain uses while it runs
    and restores the owner afterwards, which shared files across concurrent domains don't need."""
    vmlinuz, initrd = guest_files()
    return Path(shutil.copy(vmlinuz, d / "vmlinuz")), Path(shutil.copy(initrd, d / "initrd.gz"))


def _wait_serial(log: Path, timeout: float, alive: Any, describe: Any) -> str:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            for line in log.read_bytes().decode(errors="replace").splitlines():
                if READY in line:
                    return line.strip()
        if not alive():
            raise VirtError(f"the VM died before {READY!r}\n{describe()}")
        if time.monotonic() > deadline:
            raise VirtError(f"no {READY!r} on the serial console within {timeout}s\n{describe()}")
        time.sleep(0.1)


def _cgroup_leftovers(name: str) -> list[Path]:
    """libvirt's per-VM cgroups (``machine/qemu-<id>-<name>.libvirt-qemu``) of ``name``."""
    out = []
    for h in CGROUP_ROOT.iterdir():
        m = h / "machine"
        if m.is_dir():
            out += [c for c in m.iterdir() if c.is_dir() and c.name.endswith(f"-{name}.libvirt-qemu")]
    return out


def _remove_cgroups(name: str) -> list[str]:
    """Remove our domain's empty cgroup dirs if libvirt left any, and ``/sys/fs/cgroup/*/machine``
    when it is empty now (libvirt makes it and never removes it, TESTBED 1.5)."""
    errors = []
    for d in _cgroup_leftovers(name):
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [d]:
            try:
                sub.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                errors.append(f"rmdir {sub}: {e}")
    for h in CGROUP_ROOT.iterdir():
        with contextlib.suppress(OSError):  # not there, or another VM's cgroups are in it
            (h / "machine").rmdir()
    return errors


def _links() -> str:
    return _run(["ip", "-o", "link", "show"], check=False).stdout


def _link_exists(ifname: str) -> bool:
    return Path("/sys/class/net", ifname).exists()


def leftovers(token: str) -> list[str]:
    """Everything still carrying ``token`` (a VM's unique hex token): processes (by command line),
    network links, cgroup dirs, files and dirs in /tmp and libvirt's run, log and lib dirs."""
    out = []
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != me:
            with contextlib.suppress(OSError):
                if token.encode() in (d / "cmdline").read_bytes() and _alive(int(d.name)):
                    out.append(f"process {d.name}: {(d / 'cmdline').read_bytes()[:200]!r}")
    out += [f"link {line.split(':')[1].strip()}" for line in _links().splitlines() if token in line]
    for h in CGROUP_ROOT.iterdir():
        for parent in (h, h / "machine"):
            if parent.is_dir():
                out += [f"cgroup {c}" for c in parent.iterdir() if c.is_dir() and token in c.name]
    for parent in (Path("/tmp"), LIBVIRT_QEMU_LOG_DIR, LIBVIRT_QEMU_RUN_DIR, Path("/var/lib/libvirt/qemu")):
        if parent.is_dir():
            out += [f"file {p}" for p in parent.iterdir() if token in p.name]
    return out


def _finish(errors: list[str], body_error: BaseException | None, what: str) -> None:
    """Report cleanup errors: as a failure when the test body passed, as a note on its exception
    when it failed (so the test's own failure stays the one shown)."""
    if not errors:
        return
    msg = f"cleanup of {what} failed: " + "; ".join(errors)
    if body_error is not None:
        body_error.add_note(msg)
    else:
        raise VirtError(msg)


# --- bare QEMU with QMP -------------------------------------------------------------------------------


class QmpError(VirtError):
    """QEMU answered a QMP command with an error."""


QMP_TIMEOUT_SECS = 30.0


def qmp_call(path: Path | str, command: str, /, **args: Any) -> Any:
    """One QMP command on a fresh connection to the socket ``path`` (greeting, qmp_capabilities,
    the command, close): returns the command's ``return`` value, raises QmpError on ``error``.
    Async events are skipped. Argument names with a hyphen: ``qmp_call(p, "cmd", **{"a-b": 1})``.
    A QMP socket serves one client at a time: this one is closed when it returns."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(QMP_TIMEOUT_SECS)
        s.connect(str(path))
        f = s.makefile("rwb", buffering=0)

        def reply() -> dict[str, Any]:
            while True:
                line = f.readline()
                if not line:
                    raise VirtError(f"QMP {path}: connection closed while waiting for the reply to {command}")
                r = json.loads(line)
                if "event" not in r:
                    return r

        def send(name: str, arguments: dict[str, Any]) -> Any:
            f.write((json.dumps({"execute": name, **({"arguments": arguments} if arguments else {})}) + "\n").encode())
            r = reply()
            if "error" in r:
                raise QmpError(f"QMP {name} {arguments}: {r['error']}")
            return r["return"]

        greeting = json.loads(f.readline())
        assert "QMP" in greeting, greeting
        send("qmp_capabilities", {})
        return send(command, args)


@dataclass
class QemuVm:
    """A running bare QEMU (see ``qmp_qemu``)."""

    name: str  # "hvstat-qmp-<token>", also QEMU's -name (so /proc/<pid>/cmdline carries it)
    token: str
    dir: Path  # /tmp/hvstat-vm-<token>: disk, sockets, pidfile, serial log, QEMU's own log
    pid: int  # the QEMU process (daemonized: a child of PID 1, not of the test)
    qmp_path: Path  # the QMP socket for the code under test: <dir>/<name>.qmp
    helper_qmp_path: Path  # a second QMP socket that ``qmp()`` uses, so the first stays free
    disk: Path  # qcow2, 16 MiB, the guest's /dev/vda (QMP device "disk0")
    serial_log: Path  # ttyS0
    tap: str | None  # host-side tap name (tap=True), else None (-netdev user, no host counters)
    mode: str | None
    kind: str

    def qmp(self, command: str, /, **args: Any) -> Any:
        """Run one QMP command on the helper socket and return its ``return`` value."""
        return qmp_call(self.helper_qmp_path, command, **args)

    def wait_ready(self, timeout: float = WAIT_SECS) -> str:
        """Wait for the guest's READY line on the serial console and return it."""
        if self.mode is None:
            raise ValueError("a firmware-only VM (mode=None) never prints READY")
        describe = lambda: _tail(self.serial_log) + "\n" + _tail(self.dir / "qemu.log")  # noqa: E731
        return _wait_serial(self.serial_log, timeout, lambda: _alive(self.pid), describe)


@contextlib.contextmanager
def qmp_qemu(
    mode: str | None = None, *, vcpus: int = 2, tap: bool = False, memory_mib: int = 128, kind: str = "qemu"
) -> Iterator[QemuVm]:
    """Start a bare QEMU (TESTBED 2): ``-name <name>,debug-threads=on`` (threads named ``CPU 0/TCG``
    ...), a QMP socket, a 16 MiB virtio disk (id disk0), a virtio-balloon (id bal0, QOM path
    ``/machine/peripheral/bal0``), a virtio NIC on ``-netdev user`` or, with ``tap=True``, on a tap
    of ours (host counters in /proc/net/dev; IPv6 off on it, so the host adds no traffic), the
    serial console to a file, and with ``mode`` the test guest kernel. ``kind="kvm"`` uses KVM
    (query-stats has data only then; boot no kernel under it). Yields a ``QemuVm``; on exit the
    process is killed and reaped, the tap deleted and the directory removed.

    ``-daemonize`` makes QEMU a child of PID 1, like a VM of a real node. ``-no-reboot``: a guest
    that panics (panic=-1 reboots) makes QEMU exit, so ``wait_ready`` fails at once."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}")
    if kind not in ("qemu", "kvm"):
        raise ValueError("kind must be 'qemu' (TCG) or 'kvm'")
    token = _token()
    name = f"hvstat-qmp-{token}"
    tap_name = f"hvq{token}" if tap else None
    d = _vm_dir(token)
    pid: int | None = None
    tap_made = False
    body_error: BaseException | None = None
    try:
        disk = _make_disk(d)
        qmp_path, helper = d / f"{name}.qmp", d / f"{name}.helper.sock"  # only <name>.qmp matches a *.qmp glob
        serial = d / "serial.log"
        argv = [
            QEMU, "-name", f"{name},debug-threads=on",
            "-machine", f"q35,accel={'kvm' if kind == 'kvm' else 'tcg'}",
            "-m", str(memory_mib), "-smp", str(vcpus), "-nodefaults", "-display", "none", "-no-reboot",
            "-qmp", f"unix:{qmp_path},server=on,wait=off",
            "-qmp", f"unix:{helper},server=on,wait=off",
            "-drive", f"file={disk},if=virtio,format=qcow2,id=disk0",
            "-device", "virtio-balloon-pci,id=bal0",
            "-serial", f"file:{serial}",
            "-daemonize", "-pidfile", str(d / "qemu.pid"),
        ]
        if tap_name:
            _run(["ip", "tuntap", "add", tap_name, "mode", "tap"])
            tap_made = True
            knob = Path(f"/proc/sys/net/ipv6/conf/{tap_name}/disable_ipv6")
            if knob.exists():
                knob.write_text("1")
            _run(["ip", "link", "set", tap_name, "up"])
            argv += ["-netdev", f"tap,id=n0,ifname={tap_name},script=no,downscript=no"]
        else:
            argv += ["-netdev", "user,id=n0"]
        argv += ["-device", "virtio-net-pci,netdev=n0,id=nic0"]
        if mode is not None:
            vmlinuz, initrd = _copy_guest(d)
            argv += ["-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", _cmdline(mode)]
        # QEMU's own messages go to a file, not a pipe: a daemon holding our pipe would hang us
        with open(d / "qemu.log", "wb") as log:
            rc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_ENV, timeout=WAIT_SECS
            ).returncode
        pid = _pid_from(d / "qemu.pid")
        if rc != 0 or pid is None:
            raise VirtError(f"{' '.join(argv)} exited {rc}\n{_tail(d / 'qemu.log')}")
        _wait(f"{qmp_path}", lambda: qmp_path.exists() and helper.exists(), WAIT_SECS)
        yield QemuVm(name=name, token=token, dir=d, pid=pid, qmp_path=qmp_path, helper_qmp_path=helper, disk=disk,
                     serial_log=serial, tap=tap_name, mode=mode, kind=kind)
    except BaseException as e:
        body_error = e
        raise
    finally:
        errors = []
        if pid is not None:
            try:
                _kill_and_wait(pid, None)
            except Exception as e:  # noqa: BLE001 - the rest is cleaned up before reporting
                errors.append(f"kill {pid}: {e}")
        if tap_made and _link_exists(tap_name or ""):
            p = _run(["ip", "link", "del", str(tap_name)], check=False)
            if p.returncode != 0:
                errors.append(f"ip link del {tap_name}: {p.stderr.strip()}")
        shutil.rmtree(d, ignore_errors=True)
        _finish(errors, body_error, name)


# --- libvirt domains ----------------------------------------------------------------------------------


def parse_domstats(text: str) -> dict[str, Any]:
    """``virsh domstats --raw`` output of one domain -> {key: value}, values int when numeric."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, eq, value = line.strip().partition("=")
        if not eq:
            continue  # "Domain: 'name'" and blank lines
        try:
            out[key] = int(value)
        except ValueError:
            out[key] = value
    return out


@dataclass
class Domain:
    """A running transient libvirt domain (see ``libvirt_domain``)."""

    name: str  # "hvstat-test-<token>"
    uuid: str
    token: str
    uri: str
    dir: Path  # /tmp/hvstat-vm-<token>: disk, serial log, kernel/initrd copies, the XML
    tap: str | None  # host-side tap "hvt<token>" (libvirt makes and deletes it), None with tap=False
    disk: Path | None  # qcow2 16 MiB, the guest's vda; None with disk=False
    serial_log: Path
    mode: str | None
    kind: str
    xml: str = field(repr=False)

    @property
    def pid(self) -> int:
        """The domain's QEMU process (runs as libvirt-qemu)."""
        pid = _pid_from(LIBVIRT_QEMU_RUN_DIR / f"{self.name}.pid")
        if pid is None:
            raise VirtError(f"{self.name}: no pidfile in {LIBVIRT_QEMU_RUN_DIR}")
        return pid

    def state(self) -> str:
        """``virsh domstate``: "running", "paused", ... (raises when the domain is gone)."""
        return _virsh("domstate", self.name).stdout.strip()

    def virsh_domstats(self) -> dict[str, Any]:
        """``virsh domstats --raw <name>`` as {key: value}, values int when numeric."""
        return parse_domstats(_virsh("domstats", "--raw", self.name).stdout)

    def wait_ready(self, timeout: float = WAIT_SECS) -> str:
        """Wait for the guest's READY line on the serial console and return it."""
        if self.mode is None:
            raise ValueError("a firmware-only domain (mode=None) never prints READY")
        return _wait_serial(self.serial_log, timeout, self._running, self._describe)

    def _running(self) -> bool:
        return _virsh("domstate", self.name, check=False).stdout.strip() == "running"

    def _describe(self) -> str:
        return "\n".join([_tail(self.serial_log), _tail(LIBVIRT_QEMU_LOG_DIR / f"{self.name}.log")])


def _domain_xml(*, name: str, uuid: str, kind: str, vcpus: int, memory_mib: int, mode: str | None,
                kernel: tuple[Path, Path] | None, disk: Path | None, tap: str | None, serial: Path, balloon_period: int) -> str:
    q = quoteattr
    os_extra = ""
    if kernel is not None:
        assert mode is not None
        os_extra = (f"<kernel>{escape(str(kernel[0]))}</kernel><initrd>{escape(str(kernel[1]))}</initrd>"
                    f"<cmdline>{escape(_cmdline(mode))}</cmdline>")
    devices = [f"<emulator>{QEMU}</emulator>"]
    if disk is not None:
        devices.append(f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file={q(str(disk))}/>"
                       "<target dev='vda' bus='virtio'/></disk>")
    if tap is not None:
        # type='ethernet': libvirt creates the tap (no bridge, no dnsmasq: TESTBED 1.5) and deletes it
        devices.append(f"<interface type='ethernet'><target dev={q(tap)} managed='yes'/><model type='virtio'/></interface>")
    devices.append(f"<serial type='file'><source path={q(str(serial))}/><target port='0'/></serial>")
    stats = f"<stats period='{balloon_period}'/>" if balloon_period else ""
    devices.append(f"<memballoon model='virtio'>{stats}</memballoon>")
    return f"""<domain type={q(kind)}>
  <name>{escape(name)}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>{os_extra}</os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    {chr(10).join('    ' + x for x in devices).strip()}
  </devices>
</domain>
"""


@contextlib.contextmanager
def libvirt_domain(mode: str | None = None, *, vcpus: int = 1, memory_mib: int = 128, kind: str = "qemu",
                   tap: bool = True, disk: bool = True, balloon_period: int = 1) -> Iterator[Domain]:
    """A running transient domain (``virsh create``: nothing stays defined) of TESTBED 1.5/1.6:
    q35, a 16 MiB qcow2 disk on virtio (vda), a virtio NIC on a tap libvirt makes (``hvt<token>``,
    no bridge), a virtio balloon polling guest stats every ``balloon_period`` s (0: no polling),
    ttyS0 to a file, and with ``mode`` the test guest kernel (TCG boots it in ~3 s; under
    ``kind="kvm"`` use ``mode=None``: a Linux guest is unusably slow on this machine's KVM).

    Calls ensure_libvirtd(). Yields a ``Domain``, running (``wait_ready`` waits for the guest's
    READY). On exit: destroy, remove libvirt's per-VM log, any per-VM cgroup it left and
    ``/sys/fs/cgroup/*/machine`` when empty, the tap if still there, and the VM's directory."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}")
    if kind not in ("qemu", "kvm"):
        raise ValueError("kind must be 'qemu' (TCG) or 'kvm'")
    uri = ensure_libvirtd()
    token = _token()
    name = f"hvstat-test-{token}"
    tap_name = f"hvt{token}" if tap else None
    uuid = str(uuidlib.uuid4())
    d = _vm_dir(token)
    created = False
    body_error: BaseException | None = None
    try:
        disk_path = _make_disk(d) if disk else None
        kernel = _copy_guest(d) if mode is not None else None
        serial = d / "serial.log"
        xml = _domain_xml(name=name, uuid=uuid, kind=kind, vcpus=vcpus, memory_mib=memory_mib, mode=mode, kernel=kernel,
                          disk=disk_path, tap=tap_name, serial=serial, balloon_period=balloon_period)
        (d / "domain.xml").write_text(xml)
        p = _virsh("create", str(d / "domain.xml"), check=False)
        created = p.returncode == 0 or _virsh("domstate", name, check=False).returncode == 0
        if p.returncode != 0:
            raise VirtError(f"virsh create {name} failed: {p.stderr}\n{xml}\n{_tail(LIBVIRT_QEMU_LOG_DIR / f'{name}.log')}")
        yield Domain(name=name, uuid=uuid, token=token, uri=uri, dir=d, tap=tap_name, disk=disk_path, serial_log=serial,
                     mode=mode, kind=kind, xml=xml)
    except BaseException as e:
        body_error = e
        raise
    finally:
        errors = []
        if created:
            # ~2 s here: QEMU dies at once, but libvirt waits until PID 1 reaps it, and this
            # machine's minimal init reaps orphans only every second or two
            p = _virsh("destroy", name, check=False)
            gone = lambda: _virsh("domstate", name, check=False).returncode != 0  # noqa: E731
            if p.returncode != 0 and not gone():  # failing because it is gone already is fine
                errors.append(f"virsh destroy {name}: {p.stderr.strip()}")
            try:
                _wait(f"{name} to be gone", gone, WAIT_SECS)
            except VirtError as e:
                errors.append(str(e))
        if tap_name and _link_exists(tap_name):
            p = _run(["ip", "link", "del", tap_name], check=False)
            if p.returncode != 0:
                errors.append(f"ip link del {tap_name}: {p.stderr.strip()}")
        errors += _remove_cgroups(name)
        for f in (LIBVIRT_QEMU_LOG_DIR / f"{name}.log",):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        shutil.rmtree(d, ignore_errors=True)
        _finish(errors, body_error, name)


__all__ = [
    "URI", "READY", "Domain", "QemuVm", "QmpError", "VirtError",
    "ensure_libvirtd", "restart_libvirtd", "guest_files", "guest_dir", "libvirt_domain", "qmp_qemu", "qmp_call",
    "parse_domstats", "leftovers",
]
