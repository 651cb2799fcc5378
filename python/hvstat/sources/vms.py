"""VmSource: every VM on the node, from libvirt (bulk domain stats) and from QEMU's QMP sockets,
with the QEMU process's side (/proc/<pid>, vCPU threads, taps) and the counter math done by the
Rust core's VmSampler (which reads each VM's cgroup too).

A tick: the QMP poll runs on the event loop (asyncio sockets), then a worker thread does the
libvirt call and the core's sample. Status changes become VmStatusChanged messages, at once for
libvirt lifecycle events and otherwise when a tick sees them; each change is published once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from hvstat._native import VmSampler
from hvstat.identity import node_id
from hvstat.models import (
    SourceHealth,
    VmObservation,
    VmObservations,
    VmOrigin,
    VmsSample,
    VmStatus,
    VmStatusChangedMessage,
    encoder,
    vms_sample_decoder,
)
from hvstat.settings import NodeSettings, VmSettings
from hvstat.sources.base import Sample, Source
from hvstat.sources.node import PRIME_SECS
from hvstat.sources.vms_libvirt import LibvirtCollector

log = logging.getLogger(__name__)


@dataclass
class _Known:
    name: str
    origin: VmOrigin
    status: VmStatus


class VmSource(Source):
    name = "vms"

    def __init__(
        self,
        settings: VmSettings,
        node: NodeSettings,
        interval_secs: float,
        node_name: str | None = None,
    ) -> None:
        super().__init__(interval_secs)
        self._sampler = VmSampler(settings.core_config_json(node))
        # The node_id of VmStatusChanged: [server] node_name, else the hostname.
        self._node_id = node_name or node_id()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Last known status per VM id, written by ticks (worker thread) and lifecycle events (loop).
        self._known: dict[str, _Known] = {}
        self._known_lock = threading.Lock()
        self.libvirt: LibvirtCollector | None = None
        self.libvirt_note: str | None = None
        if settings.libvirt != "off":
            if LibvirtCollector.available():
                self.libvirt = LibvirtCollector(
                    settings.libvirt_uri,
                    settings.libvirt_pid_dir,
                    required=settings.libvirt == "on",
                    on_lifecycle=self._lifecycle,
                    timeout=settings.libvirt_timeout,
                )
            elif settings.libvirt == "on":
                raise RuntimeError("vms.libvirt = \"on\" but libvirt-python is not installed (pip install 'hvstat[libvirt]')")
            else:
                self.libvirt_note = "libvirt-python is not installed (pip install 'hvstat[libvirt]'); libvirt VMs are not monitored"
                log.info(self.libvirt_note)
        self.qmp = None
        if settings.qmp:
            from hvstat.sources.vms_qmp import QmpCollector

            self.qmp = QmpCollector(
                settings.qmp_sockets,
                settings.qmp_timeout,
                keep_open=settings.qmp_keep_open,
                proc_root=settings.proc_root or node.proc_root or "/proc",
            )
        self._qmp_timeout = settings.qmp_timeout
        self._qmp_observations: list[VmObservation] = []
        self._qmp_problems: dict[str, str] = {}

    # --- lifecycle ---

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.libvirt is not None:
            # libvirt's QEMU pids first, so that the first QMP poll already leaves their sockets alone.
            await self.prepare(self.libvirt.observe)
        await self._poll_qmp()
        await self.prepare(self._first_reading)
        await asyncio.sleep(PRIME_SECS)
        await super().start()

    async def close(self) -> None:
        if self.qmp is not None:
            await self.qmp.close()
        if self.libvirt is not None:
            await asyncio.to_thread(self.libvirt.close)
        await super().close()

    def _first_reading(self) -> None:
        first = self.sample()
        self._changes(first)  # the VMs present at start are known, not "appeared"
        log.info("tracking %d VMs: %s", len(first.vms), ", ".join(f"{v.name} ({v.status})" for v in first.vms) or "none")

    async def tick(self) -> None:
        await self._poll_qmp()
        await super().tick()

    async def _poll_qmp(self) -> None:
        if self.qmp is None:
            return
        exclude = self.libvirt.pids() if self.libvirt is not None else set()
        try:
            # The collector bounds each socket by qmp_timeout; this bounds the whole poll.
            self._qmp_observations, self._qmp_problems = await asyncio.wait_for(
                self.qmp.poll(exclude_pids=exclude), self._qmp_timeout * 2 + 1
            )
        except TimeoutError:
            self._qmp_observations, self._qmp_problems = [], {"qmp": f"the QMP poll did not finish within {self._qmp_timeout * 2 + 1:.0f}s"}

    # --- one tick, in a worker thread ---

    def collect(self) -> list[VmsSample | VmStatusChangedMessage]:
        """The status changes this tick saw, then the sample."""
        sample = self.sample()
        for vid in sample.appeared:
            log.info("VM appeared: %s", vid)
        for vid in sample.vanished:
            log.info("VM vanished: %s", vid)
        return [*self._changes(sample), sample]

    def sample(self) -> VmsSample:
        notes: dict[str, str] = {}
        observations: list[VmObservation] = []
        if self.libvirt is not None:
            observations = self.libvirt.observe()
            problem = self.libvirt.problem()
            if problem is not None:
                notes["libvirt"] = problem
        elif self.libvirt_note is not None:
            notes["libvirt"] = self.libvirt_note
        seen = {o.id for o in observations}
        # A VM both collectors report (a QMP socket of a libvirt domain that slipped through the
        # path and pid checks) is libvirt's.
        observations += [o for o in self._qmp_observations if o.id not in seen]
        for path, problem in self._qmp_problems.items():
            notes[f"qmp:{path}" if not path.startswith("qmp") else path] = problem
        raw = self._sampler.sample(encoder.encode(VmObservations(vms=observations)))
        sample = vms_sample_decoder.decode(raw)
        if notes:
            sample = msgspec.structs.replace(sample, unavailable={**sample.unavailable, **notes})
        return sample

    def readers(self, samples: Sequence[Sample]) -> dict[str, str | None]:
        """libvirt (the connection, when it is in use) and QMP (every socket polled, when on)."""
        out: dict[str, str | None] = {}
        if self.libvirt is not None:
            out["libvirt"] = self.libvirt.problem()
        if self.qmp is not None:
            out["qmp"] = next((f"{path}: {why}" for path, why in sorted(self._qmp_problems.items())), None)
        return out

    def problem(self) -> str | None:
        """libvirt unreachable (when it matters) is a degraded source even though ticks succeed."""
        return self.libvirt.problem() if self.libvirt is not None else None

    def health(self) -> SourceHealth:
        h = super().health()
        problem = self.problem()
        if problem is not None and h.status == "ok":
            h = msgspec.structs.replace(h, status="degraded", error=problem)
        return h

    # --- status changes ---

    def _changes(self, sample: VmsSample) -> list[VmStatusChangedMessage]:
        """Compare with the last known status of every VM; return (and remember) what changed."""
        out = []
        now = sample.timestamp
        with self._known_lock:
            current = {v.id: v for v in sample.vms}
            for v in sample.vms:
                known = self._known.get(v.id)
                if known is None or known.status != v.status:
                    out.append(self._message(now, v.id, v.name, v.origin, known.status if known else None, v.status, v.status_reason))
                self._known[v.id] = _Known(v.name, v.origin, v.status)
            for vid in [k for k in self._known if k not in current]:
                known = self._known.pop(vid)
                out.append(self._message(now, vid, known.name, known.origin, known.status, known.status, None, vanished=True))
        return out

    def _message(
        self, now: float, vid: str, name: str, origin: VmOrigin, previous: VmStatus | None, status: VmStatus, reason: str | None, vanished: bool = False
    ) -> VmStatusChangedMessage:
        return VmStatusChangedMessage(
            node_id=self._node_id,
            timestamp=now,
            vm_id=vid,
            name=name,
            origin=origin,
            previous=previous,
            status=status,
            reason=reason,
            vanished=vanished,
        )

    def _lifecycle(self, uuid: str, name: str, status: VmStatus | None, event: str) -> None:
        """From libvirt's event thread: hop onto the event loop."""
        log.info("libvirt event: %s %s", name, event)
        if self._loop is not None and status is not None:
            self._loop.call_soon_threadsafe(self._on_lifecycle, uuid, name, status, event)

    def _on_lifecycle(self, uuid: str, name: str, status: VmStatus, event: str) -> None:
        with self._known_lock:
            known = self._known.get(uuid)
            if known is None or known.status == status:
                return  # unknown yet (the next tick reports it as it appears) or no change
            previous = known.status
            known.status = status
        message = self._message(time.time(), uuid, name, "libvirt", previous, status, event)
        if self.bus is not None:
            self.bus.deliver([message])

