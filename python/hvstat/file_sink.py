"""The file output (``[outputs.file]``): every published sample as one JSON line, in files rotated by
size and age (docs/operations.md "Outputs").

A sink on the sample bus like rollups.py: ``on_sample`` (event loop) only puts the sample on a
bounded queue; one thread encodes each sample with the API's encoder and appends it to the file.

A line is ``{"kind": "node", "node_id": "hv1", "sample": {...}}``: ``sample`` is the body the API
serves for it (``GET /api/monitoring/node/metrics`` for ``node``; the whole ``ContainersSample``,
``VmsSample``, ``ProcessesSample`` as the sources produce them; a ``VmStatusChanged`` message).

Rotation: before a line would take the file past ``max_bytes``, or when its first line is older
than ``max_age`` (by ``clock``, injectable: tests turn it instead of the machine's clock), the file
is renamed to ``<stem>-<UTC time>Z<suffix>`` (gzipped when ``compress``) and a new one started;
rotated files beyond the newest ``keep`` are deleted. A file holds at least one line, so a line
longer than ``max_bytes`` gets a file of its own.

Faults: a write that fails (ENOSPC, EROFS, EACCES...) is undone to the last whole line (the file
never holds half a line), the sample is dropped and counted, ``health()`` is degraded with the
reason, and the next sample tries again; nothing is buffered past the queue, since a full disk can
last for hours. A full queue (the thread is behind: a slow disk, a gzip) drops the new sample and
counts it. Either way the live service (store, /ws, /metrics) never waits for this file.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from hvstat.models import (
    ContainersSample,
    FileOutputHealth,
    NodeMetrics,
    ProcessesSample,
    VmsSample,
    VmStatusChangedMessage,
    encoder,
)
from hvstat.settings import FileOutputSettings

log = logging.getLogger(__name__)

# The ``kind`` of each sample type (also the names [outputs.file] kinds takes).
KINDS: dict[type, str] = {
    NodeMetrics: "node",
    ContainersSample: "containers",
    VmsSample: "vms",
    VmStatusChangedMessage: "vm_status",
    ProcessesSample: "processes",
}
# A first line read back at start (to know a file's age) is looked for in at most this many bytes.
HEAD_BYTES = 64 << 20

_STOP = object()


class _Time(msgspec.Struct):
    timestamp: float


class _Head(msgspec.Struct):
    """What a line says about when it was written: its sample's timestamp."""

    sample: _Time


def encode_line(kind: str, node_id: str, sample: object) -> bytes:
    """One line: the wrapper around the sample as the API's encoder writes it."""
    return b'{"kind":' + encoder.encode(kind) + b',"node_id":' + encoder.encode(node_id) + b',"sample":' + encoder.encode(sample) + b"}\n"


def rotated_pattern(path: str) -> re.Pattern[str]:
    """Names of the rotated files of ``path`` (``samples-20261207T202003.123Z.jsonl[.gz]``)."""
    stem, suffix = _split(path)
    return re.compile(rf"^{re.escape(stem)}-\d{{8}}T\d{{6}}\.\d{{3}}Z{re.escape(suffix)}(\.gz)?$")


def _split(path: str) -> tuple[str, str]:
    name = os.path.basename(path)
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if stem else (name, "")


class FileSink:
    """A listener on the sample bus that appends every sample of the chosen kinds to a file."""

    def __init__(self, settings: FileOutputSettings, *, node_id: str, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.path = settings.path
        self.node_id = node_id
        self.clock = clock
        self._kinds = frozenset(settings.kinds)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=settings.queue_size)
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._size = 0
        self._first_at: float | None = None  # when the current file's first line was written
        self._pattern = rotated_pattern(self.path)
        self.samples_written = 0
        self.samples_dropped = 0
        self.rotations = 0
        self.last_write: float | None = None
        self.error: str | None = None
        self._dropped_since_error = 0
        self._queue_full = False

    def carry_counts(self, before: FileSink) -> None:
        """A reload replaced ``before`` with this sink: its counts go on here."""
        self.samples_written += before.samples_written
        self.samples_dropped += before.samples_dropped
        self.rotations += before.rotations

    # --- lifecycle ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hvstat-file-output", daemon=True)
        self._thread.start()
        log.info(
            "file output: %s (%s), rotated at %d bytes%s, %d kept%s",
            self.path,
            ", ".join(self.settings.kinds),
            self.settings.max_bytes,
            f" or {self.settings.max_age:g}s" if self.settings.max_age else "",
            self.settings.keep,
            ", gzipped" if self.settings.compress else "",
        )

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then close the file (blocks: call it from a worker thread)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests)."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout)
        return done.wait(timeout)

    # --- the listener (event loop): O(1) ---

    def on_sample(self, sample: object) -> None:
        kind = KINDS.get(type(sample))
        if kind is None or kind not in self._kinds:
            return
        try:
            self._queue.put_nowait((kind, sample))
            self._queue_full = False
        except queue.Full:
            self.samples_dropped += 1
            if not self._queue_full:
                self._queue_full = True
                log.warning("file output: %d samples wait for the writer (queue_size): dropping new ones until it catches up", self.settings.queue_size)

    # --- health and metrics ---

    @property
    def size_bytes(self) -> int:
        """Of the file being written."""
        return self._size

    def health(self) -> FileOutputHealth:
        return FileOutputHealth(
            status="degraded" if self.error else "ok",
            path=self.path,
            error=self.error,
            samples_written=self.samples_written,
            samples_dropped=self.samples_dropped,
            bytes=self.size_bytes,
            rotations=self.rotations,
            last_write=self.last_write,
        )

    # --- the thread ---

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._close_file()
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            assert isinstance(item, tuple)
            kind, sample = item
            try:
                self._write(encode_line(kind, self.node_id, sample))
            except OSError as e:
                self._failed(f"cannot write {self.path}: {e.strerror or e}")
            except Exception as e:  # noqa: BLE001 - the thread must outlive one bad sample
                log.exception("file output: failed on a %s sample", kind)
                self._failed(f"{type(e).__name__}: {e}")

    def _failed(self, why: str) -> None:
        self.samples_dropped += 1
        self._dropped_since_error += 1
        if why != self.error:
            log.error("file output: %s; samples are dropped (counted in /health) until it can write again", why)
        self.error = why

    def _write(self, line: bytes) -> None:
        now = self.clock()
        if self._fd is None:
            self._open(now)
        assert self._fd is not None
        s = self.settings
        if self._size and (self._size + len(line) > s.max_bytes or (s.max_age and self._first_at is not None and now - self._first_at >= s.max_age)):
            self._rotate(now)
            self._open(now)
            assert self._fd is not None
        self._append(line)
        if self._first_at is None or self._size == 0:
            self._first_at = now
        self._size += len(line)
        self.samples_written += 1
        self.last_write = now
        if self.error is not None:
            log.warning("file output: writing to %s again; %d samples were dropped meanwhile", self.path, self._dropped_since_error)
            self.error = None
            self._dropped_since_error = 0

    def _append(self, line: bytes) -> None:
        """All of ``line`` or none of it: a failed write is cut back to the last whole line."""
        assert self._fd is not None
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise

    def _open(self, now: float) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        size = os.fstat(fd).st_size
        self._fd, self._size = fd, size
        self._first_at = self._first_line_time() if size else None

    def _first_line_time(self) -> float | None:
        """The timestamp of the first line of a file an earlier run left (its age counts from it),
        or None (then from this run's first line)."""
        try:
            with open(self.path, "rb") as fh:
                head = fh.readline(HEAD_BYTES)
            return msgspec.json.decode(head, type=_Head).sample.timestamp
        except (OSError, msgspec.DecodeError) as e:
            log.warning("file output: no timestamp in the first line of %s (%s): its age counts from now", self.path, e)
            return None

    def _close_file(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _rotate(self, now: float) -> None:
        self._close_file()
        stem, suffix = _split(self.path)
        directory = os.path.dirname(self.path) or "."
        ms = int(now * 1000)
        while True:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
            target = os.path.join(directory, f"{stem}-{stamp}{suffix}")
            if not os.path.exists(target) and not os.path.exists(target + ".gz"):
                break
            ms += 1
        os.rename(self.path, target)
        self.rotations += 1
        self._size, self._first_at = 0, None
        if self.settings.compress and self.settings.keep > 0:  # keep = 0 deletes it at once
            self._compress(target)
        self._prune(directory)

    def _compress(self, target: str) -> None:
        """``target`` -> ``target.gz`` (written beside it, then renamed); left as it is when the disk
        cannot take the compressed copy."""
        tmp = target + ".gz.tmp"
        try:
            with open(target, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.rename(tmp, target + ".gz")
            os.unlink(target)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            log.warning("file output: could not gzip %s (%s): kept uncompressed", target, e.strerror or e)

    def _prune(self, directory: str) -> None:
        """Delete the rotated files beyond the newest ``keep`` (the names sort by time)."""
        rotated = sorted(n for n in os.listdir(directory) if self._pattern.match(n))
        for name in rotated[: max(0, len(rotated) - self.settings.keep)]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
