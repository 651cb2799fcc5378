"""The wall clock, watched: steps, drift and the kernel's NTP state (docs/operations.md, "Clock").

Every timestamp hvstat serves, stores and writes is wall-clock time (``time.time()``, the core's
``SystemTime``), while rates and schedules use the monotonic clock. On Linux CLOCK_REALTIME is
CLOCK_MONOTONIC plus an offset, and NTP's slewing changes the rate of both alike; the offset moves
only when something *sets* the clock (``settimeofday``, ``clock_settime``, chrony's or ntpd's step,
a VM guest agent, a resume from suspend). So between two node ticks ``(wall - monotonic)`` should
not move at all:

- a change of ``STEP_SECS`` or more is a **step**: counted, logged as a warning, and ``/health``
  is degraded for ``STEP_DEGRADED_SECS`` after it (timestamps before and after it are not
  comparable, and a receiver refuses samples older than those it has);
- smaller changes that add up are **drift**: the sum of the changes below ``STEP_SECS`` over the
  last ``DRIFT_WINDOW_SECS``, per second of monotonic time, in ppm (``hvstat_clock_drift_ppm``);
  something nudges the clock in small steps (a guest agent syncing every few seconds). Past
  ``DRIFT_DEGRADED_PPM`` ``/health`` is degraded. Null until the window spans ``DRIFT_MIN_SECS``.

The kernel's own view comes from ``adjtimex(2)`` (read-only, ``modes = 0``; what node_exporter's
timex collector reads): whether NTP has the clock synchronised, and its maximum and estimated
error. An unsynchronised clock is reported (``synchronized: false``, ``hvstat_clock_synchronized``
0) but does not degrade ``/health``: hosts without NTP are common and their clock may be right.

With remote write on, each answer's ``Date`` header is a second opinion: the receiver's clock
minus this one (``hvstat_clock_receiver_offset_seconds``), known to ``0.5 s + RTT/2`` (the header
has whole seconds). Off by more than ``RECEIVER_DEGRADED_SECS`` beyond that, one of the two clocks is
wrong, and the receiver files the samples at the wrong time: ``/health`` is degraded.

The clock is injected (``Clock``): the service uses ``SystemClock``; tests hand ``create_app`` a
clock whose wall time they step, and never touch the machine's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import email.utils
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from hvstat.models import ClockHealth, NodeMetrics

if TYPE_CHECKING:
    from hvstat.bus import Sample

log = logging.getLogger(__name__)

# (wall - monotonic) moving by this much between two checks is a step. Two readings of the clocks
# are taken within READ_BRACKET_SECS of each other, so the jitter of one check is far below this.
STEP_SECS = 0.1
READ_BRACKET_SECS = 0.01
STEP_DEGRADED_SECS = 600.0
DRIFT_WINDOW_SECS = 600.0
DRIFT_MIN_SECS = 60.0
# The kernel slews at most 500 ppm; 100 ppm is 8.6 s a day, far past any crystal's error.
DRIFT_DEGRADED_PPM = 100.0
RECEIVER_DEGRADED_SECS = 2.0


@dataclass(frozen=True)
class SyncState:
    """adjtimex(2)'s view: synchronised (None: unknown, ``error`` says why), the kernel's maximum
    and estimated error of the clock, seconds."""

    synchronized: bool | None
    max_error_secs: float | None = None
    estimated_error_secs: float | None = None
    error: str | None = None


class Clock(Protocol):
    """What the watch reads: one reading of both clocks, and the kernel's NTP state."""

    def read(self) -> tuple[float, float] | None:
        """(wall, monotonic) read together, or None when the two could not be read close enough."""
        ...

    def sync(self) -> SyncState: ...


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux, glibc and musl alike), with its trailing padding."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


# adjtimex(2): the return value TIME_ERROR and the status bit STA_UNSYNC both say "not synchronised".
TIME_ERROR = 5
STA_UNSYNC = 0x0040


class SystemClock:
    """The machine's clocks: ``time.time`` and ``time.monotonic``, and ``adjtimex`` via libc."""

    def __init__(self) -> None:
        self._adjtimex = None
        self._why_not: str | None = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            self._adjtimex = libc.adjtimex
        except (OSError, AttributeError) as e:
            self._why_not = f"adjtimex is not available: {e}"

    def read(self) -> tuple[float, float] | None:
        before = time.monotonic()
        wall = time.time()
        after = time.monotonic()
        if after - before > READ_BRACKET_SECS:  # preempted between the reads: no reading this time
            return None
        return wall, (before + after) / 2

    def sync(self) -> SyncState:
        if self._adjtimex is None:
            return SyncState(None, error=self._why_not)
        tx = _Timex()  # modes = 0: read only, needs no privilege
        state = self._adjtimex(ctypes.byref(tx))
        if state < 0:
            err = ctypes.get_errno()
            return SyncState(None, error=f"adjtimex: {errno_text(err)}")
        return SyncState(
            synchronized=state != TIME_ERROR and not tx.status & STA_UNSYNC,
            max_error_secs=tx.maxerror / 1e6,  # microseconds
            estimated_error_secs=tx.esterror / 1e6,
        )


def errno_text(err: int) -> str:
    return os.strerror(err) if err else "unknown error"


@dataclass(frozen=True)
class Step:
    at: float  # wall time after the step, unix seconds
    seconds: float  # how far the wall clock moved beyond the monotonic clock (negative: back)


class ClockWatch:
    """A listener on the sample bus: each node sample is a check of the clocks (no timer of its
    own). ``check`` can be called directly too."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._last: tuple[float, float] | None = None  # (monotonic, wall - monotonic)
        self.steps = 0
        self.last_step: Step | None = None
        self._last_step_mono: float | None = None
        # (monotonic, the sum of the sub-step changes of wall - monotonic so far), oldest first.
        self._creep = 0.0
        self._window: deque[tuple[float, float]] = deque()
        self._sync = SyncState(None, error="not read yet")
        self._drifting = False
        # The remote-write receiver's Date minus this clock, and how well that is known (seconds).
        self.receiver_offset: tuple[float, float] | None = None

    def on_sample(self, sample: Sample) -> None:
        if isinstance(sample, NodeMetrics):
            self.check()

    def check(self) -> None:
        self._sync = self.clock.sync()
        reading = self.clock.read()
        if reading is None:
            return
        wall, mono = reading
        offset = wall - mono
        if self._last is not None:
            last_mono, last_offset = self._last
            moved = offset - last_offset
            if abs(moved) >= STEP_SECS:
                self.steps += 1
                self.last_step = Step(wall, moved)
                self._last_step_mono = mono
                log.warning(
                    "the wall clock stepped %s by %.3f s (%.3f s of monotonic time since the last check, %.3f s of wall time): "
                    "timestamps before and after it are not comparable",
                    "forward" if moved > 0 else "back",
                    abs(moved),
                    mono - last_mono,
                    mono - last_mono + moved,
                )
            else:
                self._creep += moved
        self._last = (mono, offset)
        self._window.append((mono, self._creep))
        while len(self._window) > 2 and mono - self._window[1][0] >= DRIFT_WINDOW_SECS:
            self._window.popleft()
        drift = self.drift_ppm()
        drifting = drift is not None and abs(drift) > DRIFT_DEGRADED_PPM
        if drifting != self._drifting:
            self._drifting = drifting
            if drifting:
                log.warning("the wall clock drifts from the monotonic clock by %.0f ppm (small steps adding up)", drift)
            else:
                log.info("the wall clock no longer drifts from the monotonic clock")

    def note_receiver_date(self, date: str, rtt: float) -> None:
        """A receiver answered with ``Date: date`` after ``rtt`` seconds (remote write calls this)."""
        try:
            theirs = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        reading = self.clock.read()
        if reading is None:
            return
        # The header is the receiver's time truncated to the second, taken about RTT/2 ago.
        offset = theirs + 0.5 - (reading[0] - rtt / 2)
        before = self.receiver_offset
        self.receiver_offset = (offset, 0.5 + rtt / 2)
        off = abs(offset) - self.receiver_offset[1] > RECEIVER_DEGRADED_SECS
        was_off = before is not None and abs(before[0]) - before[1] > RECEIVER_DEGRADED_SECS
        if off and not was_off:
            log.warning("the remote-write receiver's clock (its Date header) is %+.1f s from this one", offset)
        elif was_off and not off:
            log.info("the remote-write receiver's clock agrees with this one again (%+.1f s)", offset)

    def drift_ppm(self) -> float | None:
        """The sub-step changes of (wall - monotonic) over the window, per second, in ppm; None
        until the window spans DRIFT_MIN_SECS."""
        if len(self._window) < 2:
            return None
        (m0, c0), (m1, c1) = self._window[0], self._window[-1]
        if m1 - m0 < DRIFT_MIN_SECS:
            return None
        return (c1 - c0) / (m1 - m0) * 1e6

    def sync(self) -> SyncState:
        return self._sync

    def health(self) -> ClockHealth:
        reading = self.clock.read()
        now_mono = reading[1] if reading is not None else (self._last[0] if self._last is not None else None)
        problems = []
        step = self.last_step
        stepped = step is not None and self._last_step_mono is not None and now_mono is not None and now_mono - self._last_step_mono < STEP_DEGRADED_SECS
        if step is not None and stepped:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(step.at))
            problems.append(f"the wall clock stepped {'forward' if step.seconds > 0 else 'back'} by {abs(step.seconds):.3f} s at {when}")
        drift = self.drift_ppm()
        if drift is not None and abs(drift) > DRIFT_DEGRADED_PPM:
            problems.append(f"the wall clock drifts from the monotonic clock by {drift:.0f} ppm")
        rx = self.receiver_offset
        if rx is not None and abs(rx[0]) - rx[1] > RECEIVER_DEGRADED_SECS:
            problems.append(f"the remote-write receiver's clock (its Date header) is {rx[0]:+.1f} s from this one")
        sync = self._sync
        unavailable = {}
        if drift is None:
            unavailable["drift_ppm"] = f"needs {DRIFT_MIN_SECS:.0f} s of checks (one per node tick)"
        if sync.synchronized is None:
            unavailable["synchronized"] = sync.error or "unknown"
        status: Literal["ok", "degraded"] = "degraded" if problems else "ok"
        return ClockHealth(
            status=status,
            error="; ".join(problems) or None,
            steps=self.steps,
            stepped=stepped,
            last_step_seconds=None if step is None else step.seconds,
            last_step_at=None if step is None else step.at,
            drift_ppm=None if drift is None or not math.isfinite(drift) else drift,
            synchronized=sync.synchronized,
            max_error_secs=sync.max_error_secs,
            estimated_error_secs=sync.estimated_error_secs,
            receiver_offset_secs=None if rx is None else rx[0],
            unavailable=unavailable,
        )
