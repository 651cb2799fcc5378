"""The libvirt collector: one bulk ``getAllDomainStats`` call per tick over a read-only connection,
turned into a VmObservation per domain.

The connection is opened lazily from the VM source's worker thread and re-opened with backoff when
libvirtd goes away (the close callback and keepalive tell us). Lifecycle events (libvirt's default
event loop, run in one daemon thread per process) invalidate the per-domain cache (its QEMU pid)
and are handed to ``on_lifecycle`` so that a pause or a stop is published at once, not a tick later.
libvirt-python is an optional dependency (``hvstat[libvirt]``); without it this collector says so.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from hvstat.models import (
    BalloonObservation,
    DiskObservation,
    NicObservation,
    VcpuObservation,
    VmObservation,
    VmStatus,
)

log = logging.getLogger(__name__)

try:
    import libvirt
except ImportError:  # the optional extra is not installed
    libvirt = None  # mypy: untyped (ignore_missing_imports), so Any, and None fits

# virDomainState, in order.
STATES: tuple[VmStatus, ...] = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended")
# virDomain<State>Reason, in order, for the states that have reasons worth showing.
REASONS: dict[str, tuple[str, ...]] = {
    "running": ("unknown", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration canceled",
                "save canceled", "wakeup", "crashed", "post-copy", "post-copy failed"),
    "blocked": ("unknown",),
    "paused": ("unknown", "user", "migration", "save", "dump", "I/O error", "watchdog", "from snapshot",
               "shutting down", "snapshot", "crashed", "starting up", "post-copy", "post-copy failed"),
    "shutdown": ("unknown", "user", "daemon"),
    "shutoff": ("unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot", "daemon"),
    "crashed": ("unknown", "panicked"),
    "pmsuspended": ("unknown",),
    "nostate": ("unknown",),
}
# virDomainEventType -> the state the domain is in after it (None: not a state change we report).
EVENT_STATES: dict[int, VmStatus | None] = {
    0: "shutoff",  # DEFINED: a new (inactive) domain
    1: None,  # UNDEFINED: gone (the next tick reports it vanished)
    2: "running",  # STARTED
    3: "paused",  # SUSPENDED
    4: "running",  # RESUMED
    5: "shutoff",  # STOPPED
    6: "shutdown",  # SHUTDOWN (the guest is shutting down; STOPPED follows)
    7: "pmsuspended",  # PMSUSPENDED
    8: "crashed",  # CRASHED
}
EVENT_NAMES = ("defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown", "pmsuspended", "crashed")
VCPU_STATES: tuple[Literal["offline", "running", "blocked"], ...] = ("offline", "running", "blocked")
KIB = 1024
# The stat groups hvstat reads. Not "all" (0): the iothread, dirtyrate, perf and vm groups cost QEMU
# monitor commands on every tick and give nothing hvstat reports; asking for all of them made a
# tick 27 % slower at 50 domains (bench/README.md, "VMs"). KVM's per-vCPU exit counters come with
# the vcpu group.
STATS_GROUPS = (
    (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON
     | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK)
    if libvirt is not None
    else 0
)
BACKOFF_MIN_SECS, BACKOFF_MAX_SECS = 1.0, 60.0
# Only once per process: libvirt's event loop implementation is global.
_event_loop_lock = threading.Lock()
_event_loop_started = False

Lifecycle = Callable[[str, str, "VmStatus | None", str], None]
"""(uuid, name, new status or None when undefined, event name) from libvirt's event thread."""


def _libvirt_error(ctx: object, err: Any) -> None:
    """libvirt's error callback: the error as a debug record (the caller's exception says the same)."""
    log.debug("libvirt error: %s", err[2] if isinstance(err, (list, tuple)) and len(err) > 2 else err)


def _start_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread: it carries keepalive,
    the close callback and domain events. Must happen before the first connection is opened."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        # libvirt's default error handler writes every error to fd 2 ("libvirt: XML-RPC error :
        # ..."), beside the warning hvstat logs for the same failure: into the journal as a stray
        # line, and over the screen of `hvstat top`. Its errors go to this logger instead.
        libvirt.registerErrorHandler(_libvirt_error, None)

        def run() -> None:
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except Exception:  # noqa: BLE001 - the loop must outlive any one callback
                    log.exception("libvirt event loop iteration failed")
                    time.sleep(1)

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def _int(stats: dict[str, Any], key: str, scale: int = 1) -> int | None:
    v = stats.get(key)
    return v * scale if isinstance(v, int) and not isinstance(v, bool) else None


def observation(uuid: str, name: str, stats: dict[str, Any], pid: int | None, unavailable: dict[str, str] | None = None) -> VmObservation:
    """One domain's getAllDomainStats record as a VmObservation. Pure: tested on recorded records."""
    state_no = stats.get("state.state")
    status: VmStatus = STATES[state_no] if isinstance(state_no, int) and 0 <= state_no < len(STATES) else "nostate"
    reasons = REASONS.get(status, ())
    reason_no = stats.get("state.reason")
    reason = reasons[reason_no] if isinstance(reason_no, int) and 0 <= reason_no < len(reasons) else None
    unavailable = dict(unavailable or {})

    vcpus = []
    for i in range(_int(stats, "vcpu.maximum") or 0):
        if f"vcpu.{i}.state" not in stats and f"vcpu.{i}.time" not in stats:
            continue  # an offline vCPU of a running domain has no entries
        state = _int(stats, f"vcpu.{i}.state")
        vcpus.append(
            VcpuObservation(
                index=i,
                state=VCPU_STATES[state] if state is not None and 0 <= state < len(VCPU_STATES) else None,
                time_ns=_int(stats, f"vcpu.{i}.time"),
                wait_ns=_int(stats, f"vcpu.{i}.wait"),
                delay_ns=_int(stats, f"vcpu.{i}.delay"),
                kvm_exits=_int(stats, f"vcpu.{i}.exits.sum"),
                kvm_halt_exits=_int(stats, f"vcpu.{i}.halt_exits.sum"),
            )
        )

    disks = []
    for i in range(_int(stats, "block.count") or 0):
        p = f"block.{i}."
        dev = stats.get(p + "name")
        if not isinstance(dev, str):
            continue
        disks.append(
            DiskObservation(
                name=dev,
                path=stats.get(p + "path") if isinstance(stats.get(p + "path"), str) else None,
                read_bytes=_int(stats, p + "rd.bytes"),
                write_bytes=_int(stats, p + "wr.bytes"),
                read_ops=_int(stats, p + "rd.reqs"),
                write_ops=_int(stats, p + "wr.reqs"),
                flush_ops=_int(stats, p + "fl.reqs"),
                read_time_ns=_int(stats, p + "rd.times"),
                write_time_ns=_int(stats, p + "wr.times"),
                flush_time_ns=_int(stats, p + "fl.times"),
                capacity_bytes=_int(stats, p + "capacity"),
                allocation_bytes=_int(stats, p + "allocation"),
                physical_bytes=_int(stats, p + "physical"),
            )
        )

    nics: list[NicObservation] = []
    nic_count = _int(stats, "net.count") or 0
    for i in range(nic_count):
        p = f"net.{i}."
        dev = stats.get(p + "name")
        if not isinstance(dev, str):
            # A NIC with no host-side device (type='user'): libvirt has no counters for it.
            unavailable.setdefault("nics", f"NIC {i} has no host interface (user-mode networking): libvirt reports no counters for it")
            continue
        nics.append(
            NicObservation(
                name=dev,
                rx_bytes=_int(stats, p + "rx.bytes"),
                tx_bytes=_int(stats, p + "tx.bytes"),
                rx_packets=_int(stats, p + "rx.pkts"),
                tx_packets=_int(stats, p + "tx.pkts"),
                rx_errors=_int(stats, p + "rx.errs"),
                tx_errors=_int(stats, p + "tx.errs"),
                rx_dropped=_int(stats, p + "rx.drop"),
                tx_dropped=_int(stats, p + "tx.drop"),
            )
        )

    balloon = None
    if any(k.startswith("balloon.") for k in stats):
        # libvirt reports balloon sizes in KiB; "available" is the guest's total, "usable" what it
        # could still use without swapping (virDomainMemoryStatTags).
        balloon = BalloonObservation(
            current_bytes=_int(stats, "balloon.current", KIB),
            maximum_bytes=_int(stats, "balloon.maximum", KIB),
            available_bytes=_int(stats, "balloon.available", KIB),
            usable_bytes=_int(stats, "balloon.usable", KIB),
            unused_bytes=_int(stats, "balloon.unused", KIB),
            disk_caches_bytes=_int(stats, "balloon.disk_caches", KIB),
            swap_in_bytes=_int(stats, "balloon.swap_in", KIB),
            swap_out_bytes=_int(stats, "balloon.swap_out", KIB),
            major_faults=_int(stats, "balloon.major_fault"),
            minor_faults=_int(stats, "balloon.minor_fault"),
            last_update=_int(stats, "balloon.last-update"),
        )
    return VmObservation(
        id=uuid,
        name=name,
        uuid=uuid,
        origin="libvirt",
        status=status,
        status_reason=reason,
        pid=pid,
        vcpus_current=_int(stats, "vcpu.current"),
        vcpus_max=_int(stats, "vcpu.maximum"),
        memory_max_bytes=_int(stats, "balloon.maximum", KIB),
        cpu_time_ns=_int(stats, "cpu.time"),
        cpu_user_ns=_int(stats, "cpu.user"),
        cpu_system_ns=_int(stats, "cpu.system"),
        vcpus=vcpus,
        disks=disks,
        nics=nics,
        balloon=balloon,
        unavailable=unavailable,
    )


class LibvirtCollector:
    """Owns the libvirt connection. ``observe`` runs in a worker thread (one at a time)."""

    def __init__(self, uri: str, pid_dir: str, required: bool, on_lifecycle: Lifecycle | None = None, timeout: float = 10.0) -> None:
        self.uri = uri
        self.timeout = timeout
        self.pid_dir = Path(pid_dir)
        # "on": an unreachable libvirtd is a problem from the start; "auto": only once it had worked.
        self.required = required
        self._on_lifecycle = on_lifecycle
        self._conn: Any = None
        self._lost: str | None = None
        self._ever_connected = False
        self._retry_at = 0.0
        self._backoff = BACKOFF_MIN_SECS
        self._pids: dict[str, int | None] = {}  # uuid -> QEMU pid, dropped on lifecycle events
        # The running domains' pids as of the latest observe(), swapped in whole: read on the
        # event loop (the QMP poll) while a worker thread observes.
        self._pid_set: frozenset[int] = frozenset()
        self._names: dict[str, str] = {}
        self.last_error: str | None = None
        self.connected_at: float | None = None

    @staticmethod
    def available() -> bool:
        return libvirt is not None

    # --- connection ---

    def _connect(self) -> Any:
        _start_event_loop()
        conn = libvirt.openReadOnly(self.uri)
        # Keepalive: a libvirtd that stops answering for `timeout` seconds (interval x (count + 1))
        # closes the connection, instead of leaving a call hung until TCP gives up. Needs the
        # event loop above.
        interval = max(1, round(self.timeout / 3))
        conn.setKeepAlive(interval, 2)
        conn.registerCloseCallback(self._closed, None)
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None)
        return conn

    def _closed(self, conn: Any, reason: int, opaque: object) -> None:
        # virConnectCloseReason: 0 error, 1 end of file, 2 keepalive, 3 client.
        why = ("error", "libvirtd closed the connection", "keepalive timeout", "closed by the client")
        self._lost = why[reason] if 0 <= reason < len(why) else f"reason {reason}"
        log.warning("libvirt %s: connection lost: %s", self.uri, self._lost)

    def _lifecycle(self, conn: Any, dom: Any, event: int, detail: int, opaque: object) -> None:
        try:
            uuid, name = dom.UUIDString(), dom.name()
        except Exception:  # noqa: BLE001 - the domain may be gone already
            return
        self._pids.pop(uuid, None)
        status = EVENT_STATES.get(event)
        label = EVENT_NAMES[event] if 0 <= event < len(EVENT_NAMES) else f"event {event}"
        if self._on_lifecycle is not None:
            self._on_lifecycle(uuid, name, status, label)

    def _drop(self, error: str) -> None:
        conn, self._conn = self._conn, None
        self.connected_at = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
        self._pids.clear()
        self.last_error = error
        self._retry_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_SECS)

    def problem(self) -> str | None:
        """Why there are no libvirt VMs right now, if that is a problem worth a degraded health."""
        if self._conn is not None or self.last_error is None:
            return None
        if self.required or self._ever_connected:
            return f"libvirt {self.uri}: {self.last_error}"
        return None

    # --- one tick ---

    def observe(self) -> list[VmObservation]:
        """Every domain libvirt knows, or [] when libvirtd is unreachable (``problem()`` says why)."""
        if self._conn is not None and self._lost is not None:
            self._drop(f"connection lost ({self._lost})")
        if self._conn is None:
            if time.monotonic() < self._retry_at:
                return []
            try:
                self._conn = self._connect()
            except libvirt.libvirtError as e:
                error = f"cannot connect: {e.get_error_message() or e}"
                # Logged once per new error (not at every retry), when it is a problem: "on", or
                # a libvirtd that had answered ("auto" on a host without one stays quiet).
                if error != self.last_error and (self.required or self._ever_connected):
                    log.warning("libvirt %s: %s; retrying with backoff", self.uri, error)
                self._drop(error)
                return []
            self._lost = None
            self._backoff = BACKOFF_MIN_SECS
            self.last_error = None
            self.connected_at = time.time()
            if self._ever_connected:
                log.info("libvirt %s: reconnected", self.uri)
            self._ever_connected = True
        try:
            records = self._conn.getAllDomainStats(STATS_GROUPS, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)
            out = [self._observation(dom, stats) for dom, stats in records]
            self._pid_set = frozenset(o.pid for o in out if o.pid is not None)
        except libvirt.libvirtError as e:
            # A failed bulk call on a live connection is libvirtd's problem this tick; a dead
            # connection is re-opened with backoff.
            alive = False
            try:
                alive = bool(self._conn.isAlive())
            except libvirt.libvirtError:
                pass
            message = e.get_error_message() or str(e)
            if not alive:
                self._drop(f"connection lost: {message}")
                return []
            raise RuntimeError(f"getAllDomainStats: {message}") from None
        return out

    def _observation(self, dom: Any, stats: dict[str, Any]) -> VmObservation:
        uuid = dom.UUIDString()
        name = self._names.get(uuid)
        if name is None:
            name = self._names[uuid] = dom.name()
        running = stats.get("state.state") in (1, 2, 3, 4, 7)  # running, blocked, paused, shutdown, pmsuspended
        pid = self._pid(uuid, name) if running else None
        missing = {"process": f"no readable pid file {self.pid_dir / (name + '.pid')}"} if running and pid is None else None
        return observation(uuid, name, stats, pid, missing)

    def _pid(self, uuid: str, name: str) -> int | None:
        """The QEMU pid from libvirt's pid file, cached until a lifecycle event for the domain."""
        if uuid in self._pids:
            return self._pids[uuid]
        try:
            pid: int | None = int((self.pid_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            pid = None
        self._pids[uuid] = pid
        return pid

    def pids(self) -> frozenset[int]:
        """QEMU pids of libvirt's running domains: the QMP collector must never touch them."""
        return self._pid_set

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

