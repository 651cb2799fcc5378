"""The QMP collector: QEMU processes that libvirt does not manage (Proxmox VE's, hand-started ones),
read over their QMP sockets, one VmObservation per VM per poll.

Sockets are found by globs (Proxmox's ``/run/qemu-server/<vmid>.qmp`` by default). QEMU serves one
client per monitor socket and queues the next connection until the current client leaves, so a
socket that belongs to libvirt is never connected to, not even to ask its peer's pid: connecting
would put us in line for the monitor, and we would take it from libvirtd when it reconnects. Such a
socket is recognised before any connect() by its directory (libvirt's own) or by the listening
socket being an open file of one of libvirt's QEMU pids (``exclude_pids``; /proc/<pid>/fd and
/proc/<pid>/net/unix). The same holds for any other manager that keeps a persistent monitor
connection: point the globs only at sockets nobody else holds open.

Connections stay open across polls (``keep_open``), each with a reader task that drops events as
they come. That holds the monitor: a socket that others also use one request at a time (Proxmox's
own ``<vmid>.qmp``, used by qm and pvestatd) needs ``keep_open=False``, which connects for each
poll and leaves the monitor free in between. Once per QEMU process: query-name, query-uuid,
query-memory-size-summary, query-hotpluggable-cpus, the balloon device's QOM path and whether KVM
offers query-stats. Once per QEMU process and then every IMAGE_REFRESH_SECS: query-block (each
disk's image: path, capacity, size on the host). Per poll: query-status, query-cpus-fast,
query-stats (KVM), query-blockstats, query-balloon and the balloon's guest-stats. Every socket is
polled concurrently and the whole poll is bounded; a socket that fails is retried with jittered
exponential backoff and reported in the problems, never raised.

hvstat is read-only here too: it never sets ``guest-stats-polling-interval`` (or anything else).
The guest's balloon statistics (the guest's own view of its memory) exist only when whoever runs
the VM enabled that polling, for example ``qom-set <balloon path> guest-stats-polling-interval 10``
(Proxmox does for VMs with a balloon device; libvirt does with ``<stats period=.../>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import logging
import os
import random
import re
import stat
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvstat.models import BalloonObservation, DiskObservation, VcpuObservation, VmObservation, VmStatus
from hvstat.qmp import QmpClient, QmpConnectionError, QmpError, QmpTimeout

log = logging.getLogger(__name__)

DEFAULT_GLOBS = ["/run/qemu-server/*.qmp", "/var/run/qemu-server/*.qmp"]
# libvirt's monitor sockets live under these (qemu:///system: /var/lib/libvirt/qemu/domain-*/;
# qemu:///session and older layouts: /run/libvirt/qemu/). Never touched, whatever the globs say.
LIBVIRT_DIRS = ("/var/lib/libvirt/", "/run/libvirt/", "/var/run/libvirt/")
BACKOFF_MIN_SECS, BACKOFF_MAX_SECS = 1.0, 60.0
# virtio-balloon reports a statistic the guest did not send as (uint64) -1 (QEMU
# hw/virtio/virtio-balloon.c: stats are reset to -1 and only overwritten by the guest's report).
NOT_REPORTED = 2**64 - 1
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
KVM_VCPU_STATS = ["exits", "halt_exits"]
GUEST_STATS_RECHECK_SECS = 60.0
# query-block is asked when a QEMU process is first seen and then at most this often (its answer
# changes only when a disk is resized, hot-plugged or grows on the host; each command costs QEMU
# ~0.5 ms, bench/README.md "VMs"), its last answer used in between.
IMAGE_REFRESH_SECS = 60.0
# The `unavailable` key for query-block's fields: disks[].path, capacity_bytes, physical_bytes.
IMAGE_KEY = "disks.image"
# Types of a virtio-balloon's QOM child: virtio-balloon-pci (and its -transitional and
# -non-transitional variants), -ccw (s390x), -device (virtio-mmio, no proxy).
_BALLOON_TYPE = re.compile(r"child<virtio-balloon(-[a-z-]+)?>")

# QEMU's RunState (qapi/run-state.json) -> libvirt-style status. The QEMU state is kept as the
# reason for every state that is not plain running.
RUN_STATES: dict[str, VmStatus] = {
    "running": "running",
    "paused": "paused",
    "suspended": "paused",
    "inmigrate": "paused",
    "postmigrate": "paused",
    "prelaunch": "paused",
    "finish-migrate": "paused",
    "restore-vm": "paused",
    "save-vm": "paused",
    "debug": "paused",
    "colo": "paused",
    "shutdown": "shutdown",
    "guest-panicked": "crashed",
    "internal-error": "crashed",
    "io-error": "crashed",
    "watchdog": "crashed",
}


# --- pure mapping of QMP answers (tested on recorded answers) ---


def vm_status(run_state: str) -> tuple[VmStatus, str | None]:
    """query-status's ``status`` as (status, reason): the reason is QEMU's own state name."""
    status = RUN_STATES.get(run_state)
    if status is None:
        return "nostate", f"unknown QEMU run state {run_state!r}"
    return status, None if run_state == "running" else run_state


def _object(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a member that is absent or not an object)."""
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def kvm_vcpu_stats(answer: Any) -> dict[str, dict[str, int]]:
    """query-stats target=vcpu -> {qom-path: {stat name: value}} (the kvm provider's, ints only)."""
    out: dict[str, dict[str, int]] = {}
    for entry in answer if isinstance(answer, list) else ():
        if not isinstance(entry, dict) or entry.get("provider") != "kvm" or not isinstance(entry.get("qom-path"), str):
            continue
        stats = out.setdefault(entry["qom-path"], {})
        for s in entry.get("stats") or ():
            if isinstance(s, dict) and isinstance(s.get("name"), str) and _int(s.get("value")) is not None:
                stats[s["name"]] = s["value"]
    return out


def vcpus_from(cpus_fast: list[Any], kvm: Mapping[str, Mapping[str, int]] | None = None) -> list[VcpuObservation]:
    """query-cpus-fast (one entry per present vCPU; thread-id is the host TID), joined by qom-path
    with the KVM counters of query-stats."""
    out = []
    for cpu in cpus_fast:
        index = _int(cpu.get("cpu-index")) if isinstance(cpu, dict) else None
        if index is None:
            continue
        stats = (kvm or {}).get(cpu.get("qom-path", ""), {})
        out.append(
            VcpuObservation(
                index=index,
                tid=_int(cpu.get("thread-id")),
                kvm_exits=stats.get("exits"),
                kvm_halt_exits=stats.get("halt_exits"),
            )
        )
    return sorted(out, key=lambda v: v.index)


def _disk_name(entry: Mapping[str, Any]) -> str | None:
    """A block backend's name in query-blockstats and query-block alike: its drive id (``device``)
    or, for a -blockdev disk without one, ``qdev`` (the device's id, or its QOM path when it has
    none). None for a node no device uses."""
    name = entry.get("device") or entry.get("qdev")
    return name if isinstance(name, str) and name else None


@dataclass(frozen=True)
class DiskImage:
    """One disk's image as query-block describes it, meaning what libvirt's ``block.<n>.*`` means."""

    path: str | None = None
    capacity_bytes: int | None = None
    physical_bytes: int | None = None


def disk_images(query_block: list[Any]) -> dict[str, DiskImage]:
    """query-block -> {disk name: DiskImage}; a drive without a medium (an empty CD-ROM) maps to
    an empty DiskImage. From ``inserted`` (the top node of the disk's chain, whose ``image`` is
    ImageInfo, qapi/block-core.json):

    - path: ``inserted.file``, the top image's file name, as libvirt's block.<n>.path is the disk's
      source (not a backing file). Only a local file or device (an absolute path): libvirt reports
      no path for network storage, whose QEMU name is a URL (``nbd://``, ``rbd:``): null. A node
      with options a file name cannot express (a -blockdev throttle filter on top, say) is called
      ``json:{...}`` by QEMU: its nested ``file`` options are followed down to the protocol
      node's ``filename`` (``_json_filename``).
    - capacity_bytes: ``image.virtual-size``, the size the guest sees.
    - physical_bytes: ``image.actual-size``, the space the image takes on the host (allocated
      blocks, st_blocks x 512). QEMU says 0 for a block device (a device node has no blocks) and
      leaves it out where the driver cannot tell (network storage). libvirt then measures the
      device itself (qemuDomainStorageUpdatePhysical), or takes the capacity when it is left out
      (qemuMonitorJSONBlockStatsUpdateCapacityData: "not thin provisioned"); QMP tells neither,
      so both are null here."""
    out: dict[str, DiskImage] = {}
    for entry in query_block:
        name = _disk_name(entry) if isinstance(entry, dict) else None
        if name is None:
            continue
        inserted = entry.get("inserted")
        if not isinstance(inserted, dict):
            out[name] = DiskImage()
            continue
        image = _object(inserted.get("image"))
        file = inserted.get("file", image.get("filename"))
        if isinstance(file, str) and file.startswith("json:"):
            file = _json_filename(file)
        physical = _int(image.get("actual-size"))
        out[name] = DiskImage(
            path=file if isinstance(file, str) and file.startswith("/") else None,
            capacity_bytes=_int(image.get("virtual-size")),
            physical_bytes=physical if physical else None,
        )
    return out


def _json_filename(name: str) -> str | None:
    """The protocol node's ``filename`` inside QEMU's ``json:{...}`` node name, following the
    nested ``file`` options (throttle -> qcow2 -> file); None when a level names its child by
    node name (a string) instead, or the text is not such JSON."""
    try:
        node = json.loads(name[len("json:") :])
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None
    for _ in range(16):  # a chain is a few levels deep; never loop on a malformed one
        if not isinstance(node, dict):
            return None
        filename = node.get("filename")
        if isinstance(filename, str):
            return filename
        node = node.get("file")
    return None


def _highest_offset(entry: Mapping[str, Any]) -> int | None:
    """libvirt's block.<n>.allocation: ``wr_highest_offset`` of the node under the disk's format
    node, i.e. how far into the image file (or device) this QEMU process has written, which is
    what a thin volume under a qcow2 needs (qemuMonitorJSONBlockStatsCollectData reads
    ``parent.stats``). The top-level ``stats`` have the guest's offset instead. ``parent`` nests
    (BlockStats.parent, qapi/block-core.json): below a filter on top (throttle) the first parent
    is the format node, so the innermost one is taken, which is the file or device."""
    parent = entry.get("parent")
    if not isinstance(parent, dict):
        return None
    while isinstance(parent.get("parent"), dict):
        parent = parent["parent"]
    stats = parent.get("stats")
    return _int(stats.get("wr_highest_offset")) if isinstance(stats, dict) else None


def disks_from(blockstats: list[Any], images: Mapping[str, DiskImage] | None = None) -> list[DiskObservation]:
    """query-blockstats: one entry per block backend (named as _disk_name says), joined by name
    with query-block's ``images``. The top-level ``stats`` are the guest's requests; the
    allocation comes from the innermost ``parent`` (see _highest_offset)."""
    out = []
    for entry in blockstats:
        if not isinstance(entry, dict):
            continue
        name = _disk_name(entry)
        if name is None:
            continue
        s = _object(entry.get("stats"))
        image = (images or {}).get(name, DiskImage())
        out.append(
            DiskObservation(
                name=name,
                path=image.path,
                read_bytes=_int(s.get("rd_bytes")),
                write_bytes=_int(s.get("wr_bytes")),
                read_ops=_int(s.get("rd_operations")),
                write_ops=_int(s.get("wr_operations")),
                flush_ops=_int(s.get("flush_operations")),
                read_time_ns=_int(s.get("rd_total_time_ns")),
                write_time_ns=_int(s.get("wr_total_time_ns")),
                flush_time_ns=_int(s.get("flush_total_time_ns")),
                capacity_bytes=image.capacity_bytes,
                allocation_bytes=_highest_offset(entry),
                physical_bytes=image.physical_bytes,
            )
        )
    return out


def _stat(stats: Mapping[str, Any], key: str) -> int | None:
    v = _int(stats.get(key))
    return None if v is None or v == NOT_REPORTED else v


def balloon_from(actual: int | None, guest_stats: Any, maximum_bytes: int | None) -> BalloonObservation:
    """query-balloon ``actual`` (bytes) plus the balloon device's ``guest-stats`` property. The
    guest's stat-total-memory is what libvirt calls "available", stat-available-memory "usable",
    stat-free-memory "unused" (virDomainMemoryStatTags); QMP reports them in bytes."""
    g = guest_stats if isinstance(guest_stats, dict) else {}
    s = _object(g.get("stats"))
    return BalloonObservation(
        current_bytes=actual,
        maximum_bytes=maximum_bytes,
        available_bytes=_stat(s, "stat-total-memory"),
        usable_bytes=_stat(s, "stat-available-memory"),
        unused_bytes=_stat(s, "stat-free-memory"),
        disk_caches_bytes=_stat(s, "stat-disk-caches"),
        swap_in_bytes=_stat(s, "stat-swap-in"),
        swap_out_bytes=_stat(s, "stat-swap-out"),
        major_faults=_stat(s, "stat-major-faults"),
        minor_faults=_stat(s, "stat-minor-faults"),
        last_update=_int(g.get("last-update")),
    )


def under_libvirt(path: str) -> bool:
    return any(path.startswith(d) for d in LIBVIRT_DIRS)


# --- which listening sockets belong to excluded processes ---


def listened_by(paths: Mapping[str, os.stat_result], pids: Collection[int], proc_root: str = "/proc") -> tuple[set[str], str | None]:
    """Which of ``paths`` (socket files, with their stat) are listened on by one of ``pids``,
    decided without connecting: the pid's open sockets (/proc/<pid>/fd -> socket:[inode]) looked up
    in its network namespace's /proc/<pid>/net/unix (inode -> bound path). The listening fd is
    there also when a manager created the socket and handed it to QEMU (libvirt does).

    Returns (owned paths, error): error is set when a pid could not be checked (not a vanished
    pid: a permission problem), and then the caller must not connect to any unknown socket."""
    by_file = {(st.st_dev, st.st_ino): p for p, st in paths.items()}
    owned: set[str] = set()
    tables: dict[int, dict[int, str]] = {}  # net namespace inode -> {socket inode: bound path}
    for pid in pids:
        base = f"{proc_root}/{pid}"
        try:
            inodes = set()
            for fd in os.listdir(f"{base}/fd"):
                with contextlib.suppress(FileNotFoundError):
                    link = os.readlink(f"{base}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(int(link[8:-1]))
            if not inodes:
                continue
            ns = os.stat(f"{base}/ns/net").st_ino
            table = tables.get(ns)
            if table is None:
                table = tables[ns] = _unix_table(f"{base}/net/unix")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process is gone: it owns nothing any more
        except OSError as e:
            return owned, f"cannot tell whether the socket belongs to excluded QEMU pid {pid} ({e.strerror or e}): not connecting"
        for inode in inodes & table.keys():
            bound = table[inode]
            with contextlib.suppress(OSError):
                st = os.stat(bound)
                p = by_file.get((st.st_dev, st.st_ino))
                if p is not None:
                    owned.add(p)
    return owned, None


def _unix_table(path: str) -> dict[int, str]:
    """/proc/net/unix: ``Num RefCount Protocol Flags Type St Inode Path``; sockets without a path
    (unbound, or abstract ones starting with @) are left out."""
    out = {}
    with open(path) as f:
        next(f, None)
        for line in f:
            parts = line.split(None, 7)
            if len(parts) == 8 and parts[7].startswith("/"):
                out[int(parts[6])] = parts[7].rstrip("\n")
    return out


# --- the collector ---


@dataclass
class _Static:
    """What does not change while a connection lives."""

    id: str
    name: str
    uuid: str | None = None
    memory_max_bytes: int | None = None
    vcpus_max: int | None = None
    balloon_path: str | None = None
    kvm_stats: bool = False
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass
class _Images:
    """query-block for one QEMU process: the last answer (None before the first), when it was
    last asked (monotonic) and, while there is no answer, why."""

    by_disk: dict[str, DiskImage] | None = None
    asked_at: float | None = None
    error: str | None = None


@dataclass
class _Socket:
    path: str
    inode: int = 0
    # Its QEMU turned out to be an excluded one after all (seen by SO_PEERCRED): left alone for as
    # long as this socket file exists.
    excluded: bool = False
    # Another socket in the globs reaches the same VM (its second monitor): this one is left
    # alone, so that whoever uses that monitor can.
    duplicate_of: str | None = None
    client: QmpClient | None = None
    static: _Static | None = None
    static_pid: int | None = None
    failures: int = 0
    retry_at: float = 0.0
    error: str | None = None
    # (until when, why): the guest reported no balloon stats and polling is off; not asked again
    # before then (see _why_no_guest_stats).
    no_guest_stats: tuple[float, str] | None = None
    # Kept per QEMU process, like static (see _observe).
    images: _Images = field(default_factory=_Images)


@dataclass
class _Found:
    sockets: dict[str, os.stat_result]
    problems: dict[str, str]
    owned: set[str]
    owner_error: str | None


class _Skipped(Exception):
    pass


class QmpCollector:
    """Polls every QMP socket matching ``globs``. ``command_timeout`` bounds each command (and the
    connect and greeting); ``poll_timeout`` (default twice that) bounds a whole poll."""

    def __init__(
        self,
        globs: list[str] | None = None,
        command_timeout: float = 2.0,
        *,
        poll_timeout: float | None = None,
        keep_open: bool = True,
        proc_root: str = "/proc",
    ) -> None:
        self.globs = list(DEFAULT_GLOBS if globs is None else globs)
        self.command_timeout = command_timeout
        # False: disconnect after every poll, so that the monitor is free between polls for
        # whoever else uses it one connection at a time (Proxmox's qm and pvestatd connect to
        # <vmid>.qmp per request, and would wait behind a connection we keep). The once-per-
        # connection facts are then kept per QEMU process (same socket file, same pid).
        self.keep_open = keep_open
        self.poll_timeout = poll_timeout if poll_timeout is not None else 2 * command_timeout
        self.proc_root = proc_root
        self._sockets: dict[str, _Socket] = {}
        self._lock = asyncio.Lock()

    @property
    def connections(self) -> dict[str, int | None]:
        """Socket path -> QEMU pid of every live connection."""
        return {p: s.client.pid for p, s in self._sockets.items() if s.client is not None and s.client.dead is None}

    async def poll(self, exclude_pids: Collection[int] = frozenset()) -> tuple[list[VmObservation], dict[str, str]]:
        """One observation per reachable VM, and socket path -> reason for each socket that could
        not be read. Never raises for a socket's sake; ``exclude_pids``: QEMU pids whose sockets
        must not be touched (libvirt's domains)."""
        async with self._lock:
            return await self._poll(frozenset(exclude_pids))

    async def _poll(self, exclude: frozenset[int]) -> tuple[list[VmObservation], dict[str, str]]:
        deadline = time.monotonic() + self.poll_timeout
        connected = set(self.connections)
        found = await asyncio.to_thread(self._discover, connected, exclude)
        problems = dict(found.problems)
        for path in [p for p in self._sockets if p not in found.sockets]:
            await self._forget(path)  # the socket is gone: so is the VM

        now = time.monotonic()
        tasks: dict[str, asyncio.Task[VmObservation]] = {}
        for path, st in found.sockets.items():
            s = self._sockets.get(path)
            if s is not None and s.inode != st.st_ino:
                await self._forget(path)  # a new socket file at the same path: a new QEMU
                s = None
            if s is None:
                s = self._sockets[path] = _Socket(path, st.st_ino)
            if s.excluded:
                continue
            if s.duplicate_of is not None:
                problems[path] = f"the same VM as {s.duplicate_of}: not polled twice, and this monitor is left free"
                continue
            if s.client is not None and s.client.dead is None:
                if s.client.pid in exclude:  # libvirt claims this QEMU now: let go of it
                    await self._forget(path)
                    continue
            elif path in found.owned:
                await self._forget(path)
                continue
            elif found.owner_error is not None:
                problems[path] = found.owner_error
                continue
            elif s.failures and now < s.retry_at:
                problems[path] = f"{s.error} (next attempt in {s.retry_at - now:.0f}s)"
                continue
            tasks[path] = asyncio.create_task(self._poll_one(s, exclude), name=f"qmp-poll {path}")
        if not tasks:
            return [], problems

        try:
            _done, pending = await asyncio.wait(tasks.values(), timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.CancelledError:  # our caller gave up: leave no task behind
            for t in tasks.values():
                t.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        observations: list[tuple[str, VmObservation]] = []
        for path, t in tasks.items():
            s = self._sockets[path]
            if t in pending:
                problems[path] = await self._failed(s, f"no complete answer within the poll's {self.poll_timeout:g}s")
                continue
            try:
                observations.append((path, t.result()))
            except _Skipped:
                pass
            except (QmpConnectionError, QmpTimeout, QmpError) as e:
                problems[path] = await self._failed(s, str(e))
            except Exception as e:  # noqa: BLE001 - one socket's surprise must not sink the poll
                log.exception("QMP %s: polling failed", path)
                problems[path] = await self._failed(s, f"{type(e).__name__}: {e}")
        if not self.keep_open:
            for s in self._sockets.values():
                if s.client is not None:
                    client, s.client = s.client, None
                    await client.close()
        unique, duplicates = _unique(observations)
        for path, other in duplicates.items():
            s = self._sockets[path]
            s.duplicate_of = other
            if s.client is not None:
                await s.client.close()
            s.client, s.static = None, None
            problems[path] = f"the same VM as {other}: not polled twice, and this monitor is left free"
        return unique, problems

    async def _poll_one(self, s: _Socket, exclude: frozenset[int]) -> VmObservation:
        if s.client is None or s.client.dead is not None:
            if s.client is not None:
                client, s.client = s.client, None
                await client.close()
            client = await QmpClient.connect(s.path, timeout=self.command_timeout)
            if client.pid in exclude:
                s.excluded = True
                await client.close()
                log.warning("QMP %s: the peer is excluded QEMU pid %s (libvirt's): disconnected at once", s.path, client.pid)
                raise _Skipped
            if s.static is None or s.static_pid != client.pid:  # a new QEMU (or never asked)
                s.static, s.no_guest_stats, s.images = None, None, _Images()
                try:
                    static = await self._static(client, s.path)
                except BaseException:
                    await client.close()
                    raise
                s.static, s.static_pid = static, client.pid
                log.info("QMP %s: connected to %s (pid %s, QEMU %s)", s.path, static.name, client.pid, client.version)
            s.client = client
        observation = await self._observe(s)
        if s.failures:
            log.info("QMP %s: recovered after %d failed attempts", s.path, s.failures)
        s.failures, s.retry_at, s.error = 0, 0.0, None
        return observation

    async def _static(self, c: QmpClient, path: str) -> _Static:
        """The once-per-connection facts. A refused command leaves its field unknown (noted); a
        timeout or a broken connection fails the connection."""
        unavailable: dict[str, str] = {}

        async def ask(key: str, command: str, arguments: dict[str, Any] | None = None) -> Any:
            try:
                return await c.execute(command, arguments, timeout=self.command_timeout)
            except QmpError as e:
                unavailable[key] = str(e)
                return None

        stem = Path(path).stem
        named = await ask("name", "query-name")
        name = named.get("name") if isinstance(named, dict) else None
        uuid = await ask("id", "query-uuid")
        uuid = uuid.get("UUID") if isinstance(uuid, dict) else None
        # The id is the socket's name: Proxmox's vmid (which its UUID does not carry), stable
        # whatever QEMU was started with; the UUID is kept beside it.
        uuid = uuid.lower() if isinstance(uuid, str) and uuid and uuid != ZERO_UUID else None
        memory = await ask("memory_max_bytes", "query-memory-size-summary")
        memory_max = None
        if isinstance(memory, dict) and _int(memory.get("base-memory")) is not None:
            # plugged-memory: DIMMs and virtio-mem added at run time (absent when there are none).
            memory_max = memory["base-memory"] + (_int(memory.get("plugged-memory")) or 0)
        slots = await ask("vcpus_max", "query-hotpluggable-cpus")
        vcpus_max = sum(_int(x.get("vcpus-count")) or 1 for x in slots if isinstance(x, dict)) if isinstance(slots, list) else None

        balloon_path = None
        for parent in ("/machine/peripheral", "/machine/peripheral-anon"):
            children = await ask("balloon.guest_stats", "qom-list", {"path": parent})
            for child in children if isinstance(children, list) else ():
                if isinstance(child, dict) and _BALLOON_TYPE.fullmatch(str(child.get("type", ""))):
                    balloon_path = f"{parent}/{child.get('name')}"
                    break
            if balloon_path is not None:
                break

        # query-stats (QEMU >= 7.1) has a kvm provider only when the VM runs under KVM.
        kvm = False
        try:
            schemas = await c.execute("query-stats-schemas", {"provider": "kvm"}, timeout=self.command_timeout)
        except QmpError as e:
            log.debug("QMP %s: no query-stats-schemas: %s", path, e)
        else:
            kvm = any(
                isinstance(x, dict) and x.get("target") == "vcpu" and {s.get("name") for s in x.get("stats") or () if isinstance(s, dict)} >= set(KVM_VCPU_STATS)
                for x in schemas or ()
            )
        return _Static(
            id=stem,
            uuid=uuid,
            name=name if isinstance(name, str) and name else stem,
            memory_max_bytes=memory_max,
            vcpus_max=vcpus_max,
            balloon_path=balloon_path,
            kvm_stats=kvm,
            unavailable=unavailable,
        )

    async def _observe(self, s: _Socket) -> VmObservation:
        """This poll's commands. A refused command makes its field unavailable; after a timeout
        nothing more is sent (it would only queue behind the unanswered one)."""
        c, st = s.client, s.static
        assert c is not None and st is not None
        unavailable = dict(st.unavailable)
        behind: str | None = None
        late = c.unanswered()
        if late is not None:
            behind = f"not asked: QEMU has not answered {late[0]} sent {late[1]:.1f}s ago"

        async def ask(key: str, command: str, arguments: dict[str, Any] | None = None) -> Any:
            nonlocal behind
            if behind is not None:
                unavailable[key] = behind
                return None
            try:
                return await c.execute(command, arguments, timeout=self.command_timeout)
            except QmpError as e:
                unavailable[key] = str(e)
            except QmpTimeout as e:
                unavailable[key] = str(e)
                behind = f"not asked: QEMU did not answer {command} within {self.command_timeout:g}s"
            return None

        state = await ask("status", "query-status")
        if isinstance(state, dict) and isinstance(state.get("status"), str):
            status, reason = vm_status(state["status"])
        else:
            status, reason = "nostate", unavailable.get("status", "query-status gave no status")

        cpus = await ask("vcpus", "query-cpus-fast")
        cpus = cpus if isinstance(cpus, list) else None
        kvm = None
        if st.kvm_stats and cpus:
            answer = await ask("vcpus.kvm", "query-stats", {"target": "vcpu", "providers": [{"provider": "kvm", "names": KVM_VCPU_STATS}]})
            kvm = kvm_vcpu_stats(answer) if answer is not None else None

        blocks = await ask("disks", "query-blockstats")
        images = s.images
        if images.asked_at is None or time.monotonic() >= images.asked_at + IMAGE_REFRESH_SECS:
            if behind is None:  # else nothing is sent (ask notes why): due again at the next poll
                images.asked_at = time.monotonic()
            answer = await ask(IMAGE_KEY, "query-block")
            if isinstance(answer, list):
                images.by_disk, images.error = disk_images(answer), None
            elif images.by_disk is None:
                images.error = unavailable.setdefault(IMAGE_KEY, "query-block: the answer is not a list")
            else:  # a failed refresh: the previous answer stands until the next attempt
                log.debug("QMP %s: query-block: %s; keeping its previous answer", s.path, unavailable.pop(IMAGE_KEY, "not a list"))
        elif images.by_disk is None and images.error is not None:
            unavailable[IMAGE_KEY] = images.error

        balloon = None
        size = await ask("balloon", "query-balloon")
        if isinstance(size, dict):
            guest = None
            if st.balloon_path is None:
                unavailable.setdefault("balloon.guest_stats", "no virtio-balloon device found under /machine/peripheral{,-anon}")
            elif s.no_guest_stats is not None and time.monotonic() < s.no_guest_stats[0]:
                # The guest had no stats and polling is off: nothing to read until the recheck.
                unavailable["balloon.guest_stats"] = s.no_guest_stats[1]
            else:
                guest = await ask("balloon.guest_stats", "qom-get", {"path": st.balloon_path, "property": "guest-stats"})
                if isinstance(guest, dict) and not _int(guest.get("last-update")):
                    unavailable.setdefault("balloon.guest_stats", await self._why_no_guest_stats(s, ask))
            balloon = balloon_from(_int(size.get("actual")), guest, st.memory_max_bytes)

        return VmObservation(
            id=st.id,
            uuid=st.uuid,
            name=st.name,
            origin="qmp",
            status=status,
            status_reason=reason,
            pid=c.pid,
            vcpus_current=len(cpus) if cpus is not None else None,
            vcpus_max=st.vcpus_max,
            memory_max_bytes=st.memory_max_bytes,
            vcpus=vcpus_from(cpus, kvm) if cpus is not None else [],
            disks=disks_from(blocks, images.by_disk) if isinstance(blocks, list) else [],
            nics=None,  # QMP has no NIC counters; the core reads the QEMU process's taps
            balloon=balloon,
            unavailable=unavailable,
        )

    async def _why_no_guest_stats(self, s: _Socket, ask: Any) -> str:
        """Tell "polling is off" from "the guest sends nothing" by reading the polling interval.
        When it is off, neither it nor the stats are read again for a minute (they cost a
        command each, ~0.5 ms, and the interval rarely changes)."""
        path = s.static.balloon_path if s.static is not None else None
        interval = await ask("balloon.guest_stats", "qom-get", {"path": path, "property": "guest-stats-polling-interval"})
        if interval == 0:
            why = (
                f"the guest reports no balloon statistics: polling is off ({path} guest-stats-polling-interval = 0); "
                "hvstat never changes it, whoever runs the VM can enable it"
            )
            s.no_guest_stats = (time.monotonic() + GUEST_STATS_RECHECK_SECS, why)
            return why
        if isinstance(interval, int):
            return f"the guest has not reported balloon statistics yet (polling every {interval}s; is there a balloon driver in the guest?)"
        return "the guest reports no balloon statistics"  # the qom-get failed (noted already)

    async def _failed(self, s: _Socket, reason: str) -> str:
        """Close the connection and schedule the next attempt: 1 s, 2 s, 4 s ... 60 s, +-25 %."""
        if s.client is not None:
            await s.client.close()
        s.client, s.static, s.no_guest_stats, s.images = None, None, None, _Images()
        s.failures += 1
        delay = min(BACKOFF_MAX_SECS, BACKOFF_MIN_SECS * 2 ** (s.failures - 1)) * random.uniform(0.75, 1.25)
        s.retry_at = time.monotonic() + delay
        s.error = reason
        log.log(logging.WARNING if s.failures == 1 else logging.DEBUG, "QMP %s: %s (attempt %d; next in %.1fs)", s.path, reason, s.failures, delay)
        return f"{reason} (next attempt in {delay:.0f}s)"

    async def _forget(self, path: str) -> None:
        s = self._sockets.pop(path, None)
        if s is not None and s.client is not None:
            log.info("QMP %s: closing (socket gone or excluded)", path)
            await s.client.close()

    def _discover(self, connected: set[str], exclude: frozenset[int]) -> _Found:
        """In a worker thread: the sockets the globs match (by real path, so /var/run and /run are
        one), minus libvirt's; and, for sockets not connected yet, which an excluded pid owns."""
        sockets: dict[str, os.stat_result] = {}
        problems: dict[str, str] = {}
        for pattern in self.globs:
            for p in sorted(glob.glob(pattern)):
                real = os.path.realpath(p)
                if under_libvirt(p) or under_libvirt(real) or real in sockets:
                    continue
                try:
                    st = os.stat(real)
                except OSError:
                    continue  # vanished while we looked
                if stat.S_ISSOCK(st.st_mode):
                    sockets[real] = st
                else:
                    problems[real] = "matches a QMP socket glob but is not a unix socket"
        new = {p: st for p, st in sockets.items() if p not in connected}
        owned: set[str] = set()
        error = None
        if new and exclude:
            owned, error = listened_by(new, exclude, self.proc_root)
        return _Found(sockets, problems, owned, error)

    async def close(self) -> None:
        for path in list(self._sockets):
            await self._forget(path)


def _unique(observations: list[tuple[str, VmObservation]]) -> tuple[list[VmObservation], dict[str, str]]:
    """Two sockets of one QEMU process (a VM's second monitor in the globs): the first path by name
    keeps it. The same process is the same peer pid (else the same UUID, else the same id).
    Returns (observations, {other path: the path kept})."""
    seen: dict[object, str] = {}
    out = []
    duplicates = {}
    for path, o in sorted(observations, key=lambda x: x[0]):
        key: object = ("pid", o.pid) if o.pid is not None else ("uuid", o.uuid) if o.uuid else ("id", o.id)
        if key in seen:
            duplicates[path] = seen[key]
            continue
        seen[key] = path
        out.append(o)
    return out, duplicates
