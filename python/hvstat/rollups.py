"""Durable history: min/avg/max rollups of every entity's history fields in an SQLite file, in tiers
like an RRD (``[storage]``; docs/operations.md "Storage").

A sink on the sample bus: ``RollupWriter.on_sample`` only puts the sample on a queue; one thread
owns the database connection, accumulates the samples into each tier's open bucket and writes
once per closed bucket of the finest tier, in one transaction with every entity's bucket
(1000 guests closing a 60 s bucket: one commit).

Layout (``SCHEMA``)
-------------------
- ``entities``: (kind, key) -> id, name, last seen. A guest that vanished keeps its rows for as
  long as its tiers keep its buckets.
- ``recent``: one row per (entity, tier, bucket) just closed, uncompressed. When the finest bucket
  crosses into a new *chunk* (``CHUNK`` buckets of that tier), the rows of every finished chunk are
  packed into ``chunks``: one row per (entity, tier, chunk), the ``CHUNK`` slots' sample counts
  (uint32) then min, avg and max per field (float32), byte-shuffled and zlib-compressed. So the
  database holds a bounded number of rows per entity and tier, never one row per number.
- ``open``: a checkpoint of the open buckets' accumulators (exact float64 sums), rewritten when the
  second tier closes a bucket and at a clean stop; loaded at start. A SIGKILL loses the finest
  tier's open bucket and at most one second-tier bucket of the coarser tiers' accumulation.
- ``layouts``: the field names of a row's values (a row keeps the layout it was written with, so a
  field added by an upgrade reads as null in older buckets instead of shifting the others).
- ``alerts``, ``vm_events``: resolved alerts and VM status changes, as their JSON.

Values are float32: 7 significant digits, enough for a rollup (a byte count of 8 GiB is kept to
within 512 bytes); a bucket's average over several finer buckets is weighted by their sample counts.

Faults: a database that cannot be opened because it is corrupt or truncated is moved aside
(``history.db.corrupt-<time>``) with an error log line and a fresh one is started; one that cannot
be written (ENOSPC, a read-only path) makes ``health()`` degraded with the reason; the buckets wait
in memory (``MAX_PENDING``) and are written at the next flush that succeeds. Live metrics and the
in-memory history never wait for the disk. A second process on the same path is refused
(``StorageLockedError``: an flock on ``<path>.lock``, released by the kernel when the holder dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import queue
import sqlite3
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from hvstat.models import Alert, ContainersSample, NodeMetrics, ProcessesSample, StorageHealth, VmsSample, VmStatusChangedMessage
from hvstat.settings import StorageSettings
from hvstat.store import (
    CONTAINER_HISTORY_FIELDS,
    NODE_HISTORY_FIELDS,
    USER_HISTORY_FIELDS,
    VM_HISTORY_FIELDS,
    HistoryField,
    Kind,
    accumulate,
)

log = logging.getLogger(__name__)

NAN = math.nan
# Buckets per chunk row (every tier): 64 minutes of the 60 s tier, 64 days of the 1 d tier.
CHUNK = 64
# Closed buckets kept in memory while the disk refuses them (a full disk, a read-only path), per flush.
MAX_PENDING = 100_000
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layouts (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, fields TEXT NOT NULL, UNIQUE (kind, fields));
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, name TEXT, last_seen REAL NOT NULL, UNIQUE (kind, key));
CREATE TABLE IF NOT EXISTS recent (
    entity INTEGER NOT NULL, tier INTEGER NOT NULL, bucket REAL NOT NULL, layout INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (entity, tier, bucket)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recent_by_time ON recent (tier, bucket);
CREATE TABLE IF NOT EXISTS chunks (
    entity INTEGER NOT NULL, tier INTEGER NOT NULL, chunk INTEGER NOT NULL, layout INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (entity, tier, chunk)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_time ON chunks (tier, chunk);
CREATE TABLE IF NOT EXISTS open (
    entity INTEGER NOT NULL, tier INTEGER NOT NULL, bucket REAL NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (entity, tier)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, resolved_at REAL NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS vm_events (id INTEGER PRIMARY KEY, timestamp REAL NOT NULL, body BLOB NOT NULL);
"""
# Resolved alerts and VM events kept on disk (the newest).
ALERTS_KEPT = 10_000
VM_EVENTS_KEPT = 10_000

KIND_FIELDS: dict[str, tuple[HistoryField, ...]] = {
    "node": NODE_HISTORY_FIELDS,
    "container": CONTAINER_HISTORY_FIELDS,
    "vm": VM_HISTORY_FIELDS,
    # Each user of a process sample's per-user view, by name (its processes are not kept: too many).
    "user": USER_HISTORY_FIELDS,
}


class StorageLockedError(RuntimeError):
    """Another process holds the database (its ``<path>.lock``)."""


class StorageCorruptError(RuntimeError):
    """The file is not a usable SQLite database (moved aside by ``open_database``)."""


@dataclass(frozen=True)
class Tier:
    index: int
    bucket: float
    span: float

    @property
    def name(self) -> str:
        """``1m``, ``5m``, ``1h``, ``1d``; ``90s`` when no unit divides it."""
        b = int(self.bucket)
        for unit, secs in (("d", 86400), ("h", 3600), ("m", 60)):
            if b % secs == 0:
                return f"{b // secs}{unit}"
        return f"{b}s"

    def chunk_of(self, bucket: float) -> int:
        return math.floor(bucket / (self.bucket * CHUNK))

    def chunk_start(self, chunk: int) -> float:
        return chunk * self.bucket * CHUNK


def tiers_of(storage: StorageSettings) -> list[Tier]:
    return [Tier(i, float(t.bucket), float(t.span)) for i, t in enumerate(storage.tiers)]


# --- encoding ---------------------------------------------------------------------------------------


def encode_bucket(n: int, mins: Sequence[float], avgs: Sequence[float], maxs: Sequence[float]) -> bytes:
    """One closed bucket: its sample count, then min, avg and max per field (float32, NaN for none)."""
    f = len(mins)
    return struct.pack(f"<I{3 * f}f", n, *mins, *avgs, *maxs)


def decode_bucket(data: bytes, nfields: int) -> tuple[int, array, array, array]:  # type: ignore[type-arg]
    vals = array("f", data[4:])
    return struct.unpack_from("<I", data)[0], vals[:nfields], vals[nfields : 2 * nfields], vals[2 * nfields :]


def _shuffle(raw: bytes, width: int) -> bytes:
    """Byte planes (all first bytes, then all second bytes...): the exponents of similar floats line
    up and compress far better (the blosc/HDF5 shuffle filter)."""
    return b"".join(raw[i::width] for i in range(width))


def _unshuffle(data: bytes, width: int) -> bytes:
    n = len(data) // width
    out = bytearray(len(data))
    for i in range(width):
        out[i::width] = data[i * n : (i + 1) * n]
    return bytes(out)


def encode_chunk(counts: array, values: array) -> bytes:  # type: ignore[type-arg]
    """``counts``: CHUNK uint32; ``values``: CHUNK * 3F float32, field-major (min of slot 0..63 of field 0, ...)."""
    return zlib.compress(_shuffle(counts.tobytes(), 4) + _shuffle(values.tobytes(), 4), 6)


def decode_chunk(data: bytes) -> tuple[array, array]:  # type: ignore[type-arg]
    raw = zlib.decompress(data)
    counts = array("I")
    counts.frombytes(_unshuffle(raw[: 4 * CHUNK], 4))
    values = array("f")
    values.frombytes(_unshuffle(raw[4 * CHUNK :], 4))
    return counts, values


# --- accumulators --------------------------------------------------------------------------------------


class Acc:
    """One tier's open bucket of one entity: exact float64 min, max and sum and a count per field."""

    __slots__ = ("at", "n", "mn", "mx", "sm", "ct")

    def __init__(self, at: float, f: int) -> None:
        self.at = at
        self.n = 0
        self.mn = array("d", [NAN]) * f
        self.mx = array("d", [NAN]) * f
        self.sm = array("d", [0.0]) * f
        self.ct = array("I", [0]) * f

    def add(self, values: Sequence[float]) -> None:
        self.n += 1
        accumulate(self.mn, self.mx, self.sm, self.ct, values)

    def fold(self, other: Acc) -> None:
        self.n += other.n
        for j, c in enumerate(other.ct):
            if c:
                if self.ct[j]:
                    self.mn[j] = min(self.mn[j], other.mn[j])
                    self.mx[j] = max(self.mx[j], other.mx[j])
                else:
                    self.mn[j], self.mx[j] = other.mn[j], other.mx[j]
                self.sm[j] += other.sm[j]
                self.ct[j] += c

    def closed(self) -> bytes:
        avgs = [s / c if c else NAN for s, c in zip(self.sm, self.ct)]
        return encode_bucket(self.n, self.mn, avgs, self.mx)

    def dump(self) -> bytes:
        return self.mn.tobytes() + self.mx.tobytes() + self.sm.tobytes() + self.ct.tobytes()

    @classmethod
    def load(cls, at: float, n: int, data: bytes, f: int) -> Acc:
        a = cls(at, f)
        a.n = n
        d = array("d", data[: 24 * f])
        a.mn, a.mx, a.sm = d[:f], d[f : 2 * f], d[2 * f :]
        a.ct = array("I", data[24 * f :])
        return a


@dataclass
class _Entity:
    kind: str
    key: str
    name: str | None
    nfields: int
    rowid: int | None = None
    accs: list[Acc | None] = field(default_factory=list)


@dataclass(frozen=True)
class Buckets:
    """An entity's buckets of one tier, oldest first: start, sample count, and per asked field the
    min, avg and max (None where the bucket had no value)."""

    tier: Tier
    ts: list[float]
    counts: list[int]
    mins: list[list[float | None]]
    avgs: list[list[float | None]]
    maxs: list[list[float | None]]


def _none(v: float) -> float | None:
    return None if v != v else v


# --- opening -------------------------------------------------------------------------------------------


def acquire_lock(path: str) -> int:
    """An exclusive flock on ``<path>.lock`` (the fd; the lock lives as long as it is open), or
    StorageLockedError naming the holder's pid."""
    lock_path = f"{path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StorageLockedError(f"{path} is in use by another hvstat process (pid {holder}, lock {lock_path}); give each its own [storage] path") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def check_lock(path: str) -> str | None:
    """Why ``hvstat serve`` cannot use ``path`` (another process holds it), or None. The lock is
    released again at once; the service takes it for good when it starts."""
    if not path or not os.path.exists(os.path.dirname(path) or "."):
        return None
    try:
        fd = acquire_lock(path)
    except StorageLockedError as e:
        return str(e)
    except OSError:
        return None  # a read-only directory: the service starts degraded and says why
    os.close(fd)
    return None


def _header_ok(path: str) -> str | None:
    """Why ``path`` is no SQLite database or is truncated (the header's page count against the file
    size), or None. Reads 100 bytes: no scan of the file."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        return "not an SQLite database"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the header's page count is current (SQLite >= 3.7.0)
    if valid and pages * page_size > size:
        return f"truncated: the header says {pages} pages of {page_size} bytes, the file has {size} bytes"
    return None


def move_aside(path: str, why: str) -> str:
    aside = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, aside + suffix)
    log.error("storage: %s is unusable (%s): moved aside to %s; starting a fresh database", path, why, aside)
    return aside


def connect(path: str, *, readonly: bool = False, max_bytes: int | None = None) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA query_only = 1")
        return db
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
    db.execute("PRAGMA journal_mode = WAL")
    # WAL with synchronous=NORMAL: a commit survives the process being killed (it is in the OS's
    # cache); a power cut may lose the last commits, never the file (sqlite.org/wal.html).
    db.execute("PRAGMA synchronous = NORMAL")
    if max_bytes is not None:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {max(16, max_bytes // page_size)}")
        db.execute(f"PRAGMA journal_size_limit = {min(64 << 20, max(1 << 20, max_bytes // 16))}")
    return db


def open_database(path: str, max_bytes: int) -> sqlite3.Connection:
    """The database at ``path``, made if missing; a corrupt or truncated one is moved aside first.
    Raises OSError / sqlite3.Error when the path cannot be written."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    why = _header_ok(path)
    if why is not None:
        move_aside(path, why)
    try:
        db = connect(path, max_bytes=max_bytes)
        db.executescript(SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.execute("SELECT count(*) FROM open").fetchone()
    except sqlite3.DatabaseError as e:
        if not _is_corrupt(e):
            raise
        with contextlib.suppress(Exception):
            db.close()
        move_aside(path, str(e))
        db = connect(path, max_bytes=max_bytes)
        db.executescript(SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    return db


def _is_corrupt(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    text = str(e).lower()
    return "malformed" in text or "not a database" in text


# --- reading (any thread: its own connection) --------------------------------------------------------


class RollupReader:
    """Reads buckets, alerts and events. Each call takes the reader's connection under a lock (the
    API runs queries in worker threads); WAL lets it read while the writer writes."""

    def __init__(self, path: str, tiers: Sequence[Tier], db: sqlite3.Connection | None = None) -> None:
        self.path, self.tiers = path, list(tiers)
        self._db = db
        self._lock = threading.Lock()
        self._layouts: dict[int, tuple[str, ...]] = {}

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect(self.path, readonly=True)
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _layout(self, db: sqlite3.Connection, lid: int) -> tuple[str, ...]:
        got = self._layouts.get(lid)
        if got is None:
            row = db.execute("SELECT fields FROM layouts WHERE id = ?", (lid,)).fetchone()
            got = tuple(msgspec.json.decode(row[0])) if row else ()
            self._layouts[lid] = got
        return got

    def entity(self, kind: str, key: str) -> tuple[int, str | None, float] | None:
        """(row id, name, last seen) of an entity with rows on disk."""
        with self._lock:
            row = self._conn().execute("SELECT id, name, last_seen FROM entities WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def entities(self, kind: str) -> list[tuple[str, str | None, float]]:
        with self._lock:
            rows = self._conn().execute("SELECT key, name, last_seen FROM entities WHERE kind = ? ORDER BY key", (kind,)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def buckets(self, kind: str, key: str, tier: Tier, since: float, until: float, fields: Sequence[str]) -> Buckets:
        """The persisted buckets of ``tier`` that overlap [since, until].

        Column by column: a chunk's values are field-major (``encode_chunk``), so each asked
        field's min, avg and max are array slices, turned into lists in C (``tolist``); per value
        only the NaN -> None test runs in Python (bench/history.py: the 30 d query)."""
        k = len(fields)
        ts: list[float] = []
        counts: list[int] = []
        cols: list[list[float | None]] = [[] for _ in range(3 * k)]  # min of each field, avg of each, max of each
        late: list[tuple[float, int, list[float], list[float], list[float]]] = []  # recent rows not after the chunks
        with self._lock:
            db = self._conn()
            row = db.execute("SELECT id FROM entities WHERE kind = ? AND key = ?", (kind, key)).fetchone()
            if row is not None:
                eid = row[0]
                lo = since - tier.bucket
                c0, c1 = tier.chunk_of(lo), tier.chunk_of(until)
                b = tier.bucket
                for chunk, lid, data in db.execute(
                    "SELECT chunk, layout, data FROM chunks WHERE entity = ? AND tier = ? AND chunk BETWEEN ? AND ? ORDER BY chunk", (eid, tier.index, c0, c1)
                ).fetchall():
                    names = self._layout(db, lid)
                    nf = len(names)
                    chunk_counts, values = decode_chunk(data)
                    if len(values) != 3 * nf * CHUNK:
                        continue  # not of its layout: unreadable, left out
                    base = tier.chunk_start(chunk)
                    slots = [i for i in range(CHUNK) if chunk_counts[i] and lo < base + i * b <= until]
                    if not slots:
                        continue
                    first, last = slots[0], slots[-1] + 1
                    contiguous = len(slots) == last - first
                    ts.extend(base + i * b for i in slots)
                    counts.extend(chunk_counts[i] for i in slots)
                    for stat in range(3):
                        for j, f in enumerate(fields):
                            out = cols[stat * k + j]
                            if f not in names:
                                out.extend([None] * len(slots))
                                continue
                            off = (stat * nf + names.index(f)) * CHUNK
                            if contiguous:
                                got = values[off + first : off + last].tolist()
                            else:
                                col = values[off : off + CHUNK]
                                got = [col[i] for i in slots]
                            out.extend([v if v == v else None for v in got])
                for bucket, lid, data in db.execute(
                    "SELECT bucket, layout, data FROM recent WHERE entity = ? AND tier = ? AND bucket > ? AND bucket <= ? ORDER BY bucket", (eid, tier.index, lo, until)
                ).fetchall():
                    at = float(bucket)
                    names = self._layout(db, lid)
                    n, mn, av, mx = decode_bucket(data, len(names))
                    idx = [names.index(f) if f in names else -1 for f in fields]
                    picked = ([mn[j] if j >= 0 else NAN for j in idx], [av[j] if j >= 0 else NAN for j in idx], [mx[j] if j >= 0 else NAN for j in idx])
                    if ts and at <= ts[-1]:
                        late.append((at, n, *picked))
                        continue
                    ts.append(at)
                    counts.append(n)
                    for stat in range(3):
                        for j in range(k):
                            cols[stat * k + j].append(_none(picked[stat][j]))
        if late:
            # A recent row of a chunk that is packed already (written after the chunk was packed;
            # the next pack merges it): it wins over the chunk's slot, as it is the newer write.
            rows = {t: (counts[i], [cols[c][i] for c in range(3 * k)]) for i, t in enumerate(ts)}
            for late_at, late_n, *stats in late:
                rows[late_at] = (late_n, [_none(v) for stat in stats for v in stat])
            ts = sorted(rows)
            counts = [rows[t][0] for t in ts]
            cols = [[rows[t][1][c] for t in ts] for c in range(3 * k)]
        return Buckets(tier, ts, counts, cols[:k], cols[k : 2 * k], cols[2 * k :])

    def alerts(self, limit: int) -> list[Alert]:
        with self._lock:
            rows = self._conn().execute("SELECT body FROM alerts ORDER BY resolved_at DESC, id DESC LIMIT ?", (limit,)).fetchall()
        return [msgspec.json.decode(r[0], type=Alert) for r in rows]

    def vm_events(self, since: float | None, limit: int) -> list[VmStatusChangedMessage]:
        """The newest ``limit`` events at or after ``since``, oldest first."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT body FROM vm_events WHERE timestamp >= ? ORDER BY timestamp DESC, id DESC LIMIT ?", (since if since is not None else -1.0, limit)
            ).fetchall()
        return [msgspec.json.decode(r[0], type=VmStatusChangedMessage) for r in reversed(rows)]


# --- writing (one thread) ------------------------------------------------------------------------------


@dataclass
class StorageCounts:
    """What /metrics and /health say about the database."""

    bytes: int = 0
    # Seconds spent in write transactions and how many were begun (committed or failed).
    write_seconds_sum: float = 0.0
    write_attempts: int = 0
    writes: int = 0
    errors: int = 0
    buckets_dropped: int = 0
    last_write: float | None = None
    error: str | None = None


_STOP = object()


class RollupWriter:
    """A listener on the sample bus that keeps the rollups on disk (module docstring)."""

    def __init__(self, storage: StorageSettings, *, node_interval: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        assert storage.path
        self.path = storage.path
        self.max_bytes = storage.max_bytes
        self.tiers = tiers_of(storage)
        self.clock = clock
        self.counts = StorageCounts()
        self.kinds = {k: Kind(k, f, node_interval) for k, f in KIND_FIELDS.items()}
        self._names = {k: tuple(f.name for f in v) for k, v in KIND_FIELDS.items()}
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self._layout_ids: dict[str, int] = {}
        self._entities: dict[tuple[str, str], _Entity] = {}
        # Per guest kind, the keys of its latest sample; and the entities that vanished from it,
        # kept until their open buckets closed (at their end, as if a sample had come) and dropped
        # then, so that a host with churning guests holds only the guests of the last day or so.
        self._live: dict[str, set[str]] = {}
        self._gone: dict[tuple[str, str], _Entity] = {}
        # Open buckets as the API sees them: guarded by _acc_lock (the writer changes them).
        self._acc_lock = threading.Lock()
        # Closed buckets not yet committed: (entity, tier, bucket, data).
        self._pending: list[tuple[_Entity, int, float, bytes]] = []
        self._pending_alerts: list[Alert] = []
        self._pending_events: list[VmStatusChangedMessage] = []
        self._packed: dict[int, int] = {}  # tier -> the chunk whose predecessors are packed
        self._last_retry = 0.0
        self.reader: RollupReader | None = None

    # --- lifecycle ---

    def start(self) -> None:
        """Take the lock (StorageLockedError if another process holds it), open the database
        (degraded, not fatal, when it cannot be written) and start the thread."""
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = acquire_lock(self.path)
        except StorageLockedError:
            raise
        except OSError as e:
            self._fail(f"cannot lock {self.path}.lock: {e.strerror or e}")
        self._open()
        self._thread = threading.Thread(target=self._run, name="hvstat-rollups", daemon=True)
        self._thread.start()

    def _open(self) -> bool:
        try:
            self._db = open_database(self.path, self.max_bytes)
            self._load_open()
            self.reader = RollupReader(self.path, self.tiers)
            self._refresh_bytes()
            self.counts.error = None
            log.info("storage: history in %s (tiers %s, at most %d bytes)", self.path, ", ".join(f"{t.name} for {t.span:g}s" for t in self.tiers), self.max_bytes)
            return True
        except (OSError, sqlite3.Error) as e:
            self._db = None
            self._fail(f"cannot open {self.path}: {getattr(e, 'strerror', None) or e}")
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending and the open buckets (a clean stop loses nothing), then release."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        if self.reader is not None:
            self.reader.close()
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- the listener (event loop): O(1) ---

    def on_sample(self, sample: object) -> None:
        self._queue.put(sample)

    def record_alert(self, alert: Alert) -> None:
        """A resolved alert (AlertEngine.on_resolved)."""
        self._queue.put(alert)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is processed (tests, backup)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    # --- health and metrics ---

    def health(self) -> StorageHealth:
        c = self.counts
        return StorageHealth(
            status="degraded" if c.error else "ok",
            path=self.path,
            error=c.error,
            bytes=c.bytes,
            max_bytes=self.max_bytes,
            tiers=[t.name for t in self.tiers],
            last_write=c.last_write,
            pending_buckets=len(self._pending),
        )

    def _fail(self, why: str) -> None:
        if why != self.counts.error:
            log.error("storage: %s; history goes on in memory, and is written when the disk takes it again", why)
        self.counts.error = why
        self.counts.errors += 1

    # --- the thread ---

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._checkpoint(all_tiers=True)
                return
            try:
                if isinstance(item, threading.Event):
                    self._write()
                    item.set()
                    continue
                self._take(item)
                if self._pending or self._pending_alerts or self._pending_events:
                    self._write()
            except Exception:  # noqa: BLE001 - the writer thread must outlive one bad sample
                log.exception("storage: failed on a %s", type(item).__name__)
                self.counts.errors += 1

    def _entity(self, kind: str, key: str, name: str | None) -> _Entity:
        e = self._entities.get((kind, key))
        if e is None:
            e = _Entity(kind, key, name, len(KIND_FIELDS[kind]), accs=[None] * len(self.tiers))
            self._entities[(kind, key)] = e
        elif name is not None:
            e.name = name
        return e

    def _take(self, item: object) -> None:
        if isinstance(item, NodeMetrics):
            self._add("node", [("node", None, item.timestamp, item)])
        elif isinstance(item, ContainersSample):
            self._add("container", [(c.id, c.name, c.timestamp, c) for c in item.containers])
        elif isinstance(item, VmsSample):
            self._add("vm", [(v.id, v.name, v.timestamp, v) for v in item.vms])
        elif isinstance(item, ProcessesSample):
            self._add("user", [(u.user, u.user, item.timestamp, u) for u in item.users])
        elif isinstance(item, VmStatusChangedMessage):
            self._pending_events.append(item)
        elif isinstance(item, Alert):
            self._pending_alerts.append(item)

    def _add(self, kind: str, rows: Sequence[tuple[str, str | None, float, Any]]) -> None:
        values = self.kinds[kind].values
        b0 = self.tiers[0].bucket
        with self._acc_lock:
            if kind != "node":
                self._vanished(kind, rows)
            for key, name, ts, sample in rows:
                e = self._entity(kind, key, name)
                at = math.floor(ts / b0) * b0
                acc = e.accs[0]
                if acc is None or acc.at != at:
                    if acc is not None and at < acc.at:
                        continue  # the clock went back: drop until it is past the open bucket again
                    if acc is not None:
                        self._close(e, 0, acc)
                    acc = e.accs[0] = Acc(at, e.nfields)
                acc.add(values(sample))

    def _vanished(self, kind: str, rows: Sequence[tuple[str, str | None, float, Any]]) -> None:
        """Note the entities of ``kind`` that left its sample, and close what is due of those that
        left before: a bucket whose time is over is written as if a sample had closed it; an
        entity without an open bucket is forgotten (caller holds _acc_lock)."""
        live = {r[0] for r in rows}
        before = self._live.get(kind)
        if before is None:  # the first sample since start: open buckets restored from disk too
            before = {key for k, key in self._entities if k == kind}
        self._live[kind] = live
        gone = self._gone
        for key in before - live:
            e = self._entities.get((kind, key))
            if e is not None:
                gone[(kind, key)] = e
        if not gone:
            return
        for key in live:
            gone.pop((kind, key), None)
        now = self.clock()
        for k, e in list(gone.items()):
            if k[0] != kind:
                continue
            for ti, tier in enumerate(self.tiers):
                acc = e.accs[ti]
                if acc is not None and now >= acc.at + tier.bucket:
                    e.accs[ti] = None
                    self._close(e, ti, acc)
            if all(a is None for a in e.accs):
                del gone[k]
                del self._entities[k]

    def _close(self, e: _Entity, tier: int, acc: Acc) -> None:
        """``acc`` of ``tier`` closed: pending for the disk, folded into the next tier's open bucket."""
        if acc.n:
            self._pending.append((e, tier, acc.at, acc.closed()))
        if tier + 1 >= len(self.tiers):
            return
        nxt = self.tiers[tier + 1]
        at = math.floor(acc.at / nxt.bucket) * nxt.bucket
        up = e.accs[tier + 1]
        if up is not None and up.at != at:
            if at < up.at:
                return
            self._close(e, tier + 1, up)
            up = None
        if up is None:
            up = e.accs[tier + 1] = Acc(at, e.nfields)
        up.fold(acc)

    # --- the database (thread only) ---

    def _layout_id(self, db: sqlite3.Connection, kind: str) -> int:
        lid = self._layout_ids.get(kind)
        if lid is None:
            names = msgspec.json.encode(list(self._names[kind])).decode()
            db.execute("INSERT OR IGNORE INTO layouts (kind, fields) VALUES (?, ?)", (kind, names))
            lid = db.execute("SELECT id FROM layouts WHERE kind = ? AND fields = ?", (kind, names)).fetchone()[0]
            self._layout_ids[kind] = lid
        return lid

    def _rowid(self, db: sqlite3.Connection, e: _Entity, now: float) -> int:
        if e.rowid is None:
            db.execute("INSERT OR IGNORE INTO entities (kind, key, name, last_seen) VALUES (?, ?, ?, ?)", (e.kind, e.key, e.name, now))
            e.rowid = db.execute("SELECT id FROM entities WHERE kind = ? AND key = ?", (e.kind, e.key)).fetchone()[0]
        return e.rowid

    def _write(self) -> None:
        """Commit the pending buckets (one transaction), pack finished chunks, expire, prune."""
        db = self._db
        if db is None:
            now = self.clock()
            if now - self._last_retry < 30:
                self._bound_pending()
                return
            self._last_retry = now
            if not self._open():
                self._bound_pending()
                return
            db = self._db
            assert db is not None
        t0 = time.perf_counter()
        self.counts.write_attempts += 1
        now = self.clock()
        pending, alerts, events = self._pending, self._pending_alerts, self._pending_events
        try:
            db.execute("BEGIN IMMEDIATE")
            seen: set[int] = set()
            rows = []
            for e, tier, at, data in pending:
                eid = self._rowid(db, e, now)
                if eid not in seen:
                    seen.add(eid)
                    db.execute("UPDATE entities SET name = ?, last_seen = max(last_seen, ?) WHERE id = ?", (e.name, at + self.tiers[tier].bucket, eid))
                rows.append((eid, tier, at, self._layout_id(db, e.kind), data))
            db.executemany("INSERT OR IGNORE INTO recent (entity, tier, bucket, layout, data) VALUES (?, ?, ?, ?, ?)", rows)
            if alerts:
                db.executemany("INSERT INTO alerts (resolved_at, body) VALUES (?, ?)", [(a.resolved_at or now, msgspec.json.encode(a)) for a in alerts])
                db.execute("DELETE FROM alerts WHERE id <= (SELECT max(id) FROM alerts) - ?", (ALERTS_KEPT,))
            if events:
                db.executemany("INSERT INTO vm_events (timestamp, body) VALUES (?, ?)", [(ev.timestamp, msgspec.json.encode(ev)) for ev in events])
                db.execute("DELETE FROM vm_events WHERE id <= (SELECT max(id) FROM vm_events) - ?", (VM_EVENTS_KEPT,))
            checkpoint = any(tier == 1 for _, tier, _, _ in pending) or len(self.tiers) == 1 and bool(pending)
            self._pack(db, pending, now)
            if checkpoint:
                self._dump_open(db)
            db.execute("COMMIT")
            self._pending, self._pending_alerts, self._pending_events = [], [], []
            self._prune(db)
            self.counts.writes += 1
            self.counts.last_write = now
            if self.counts.error is not None:
                log.warning("storage: %s is written again", self.path)
            self.counts.error = None
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if _is_corrupt(e):
                with contextlib.suppress(sqlite3.Error):
                    db.close()
                if self.reader is not None:
                    self.reader.close()
                self._db = None
                self._entities_forget_rowids()
                move_aside(self.path, str(e))
                self._last_retry = 0.0
            elif "full" in str(e).lower() and self._prune(db, force=True):
                pass  # room made under max_bytes: the next flush writes them
            self._fail(f"cannot write {self.path}: {e}")
            self._bound_pending()
        finally:
            self.counts.write_seconds_sum += time.perf_counter() - t0
            self._refresh_bytes()

    def _entities_forget_rowids(self) -> None:
        for e in self._entities.values():
            e.rowid = None
        self._layout_ids.clear()
        self._packed.clear()

    def _bound_pending(self) -> None:
        over = len(self._pending) - MAX_PENDING
        if over > 0:
            del self._pending[:over]
            self.counts.buckets_dropped += over
        del self._pending_alerts[:-ALERTS_KEPT]
        del self._pending_events[:-VM_EVENTS_KEPT]

    def _pack(self, db: sqlite3.Connection, pending: Sequence[tuple[_Entity, int, float, bytes]], now: float) -> None:
        """Pack the ``recent`` rows of every finished chunk of the tiers that just wrote a bucket
        into ``chunks`` rows, then expire what each tier no longer keeps."""
        newest: dict[int, float] = {}
        for _, t_index, at, _ in pending:
            newest[t_index] = max(newest.get(t_index, at), at)
        for ti, at in newest.items():
            tier = self.tiers[ti]
            current = tier.chunk_of(at)
            if self._packed.get(ti) == current:
                continue
            self._packed[ti] = current
            before = tier.chunk_start(current)
            rows = db.execute("SELECT entity, bucket, layout, data FROM recent WHERE tier = ? AND bucket < ? ORDER BY entity, bucket", (ti, before)).fetchall()
            groups: dict[tuple[int, int, int], list[tuple[float, bytes]]] = {}
            for eid, bucket, lid, data in rows:
                groups.setdefault((eid, tier.chunk_of(bucket), lid), []).append((bucket, data))
            for (eid, chunk, lid), items in groups.items():
                nf = len(msgspec.json.decode(db.execute("SELECT fields FROM layouts WHERE id = ?", (lid,)).fetchone()[0]))
                old = db.execute("SELECT layout, data FROM chunks WHERE entity = ? AND tier = ? AND chunk = ?", (eid, ti, chunk)).fetchone()
                if old is not None and old[0] == lid:
                    counts, values = decode_chunk(old[1])
                else:
                    counts, values = array("I", [0]) * CHUNK, array("f", [NAN]) * (3 * nf * CHUNK)
                base = tier.chunk_start(chunk)
                for bucket, data in items:
                    slot = int(round((bucket - base) / tier.bucket))
                    if not 0 <= slot < CHUNK or counts[slot]:
                        continue
                    n, mn, av, mx = decode_bucket(data, nf)
                    counts[slot] = n
                    for j in range(nf):
                        values[j * CHUNK + slot] = mn[j]
                        values[(nf + j) * CHUNK + slot] = av[j]
                        values[(2 * nf + j) * CHUNK + slot] = mx[j]
                db.execute("INSERT OR REPLACE INTO chunks (entity, tier, chunk, layout, data) VALUES (?, ?, ?, ?, ?)", (eid, ti, chunk, lid, encode_chunk(counts, values)))
            db.execute("DELETE FROM recent WHERE tier = ? AND bucket < ?", (ti, before))
            # Expiry: the chunks wholly older than the tier's span, the recent rows too.
            oldest = now - tier.span
            db.execute("DELETE FROM chunks WHERE tier = ? AND chunk < ?", (ti, tier.chunk_of(oldest)))
            db.execute("DELETE FROM recent WHERE tier = ? AND bucket < ?", (ti, oldest - tier.bucket))
            if ti == len(self.tiers) - 1:
                db.execute(
                    "DELETE FROM entities WHERE last_seen < ? AND id NOT IN (SELECT entity FROM chunks) AND id NOT IN (SELECT entity FROM recent)",
                    (now - tier.span,),
                )

    def _used_bytes(self, db: sqlite3.Connection) -> int:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    def _prune(self, db: sqlite3.Connection, force: bool = False) -> bool:
        """Delete the oldest chunks (whatever their tier) until the data takes at most 80 % of
        max_bytes, when it takes more than 90 % (``force``: the file hit max_bytes). True if it
        deleted something."""
        try:
            if not force and self._used_bytes(db) <= 0.9 * self.max_bytes:
                return False
            deleted = False
            while self._used_bytes(db) > 0.8 * self.max_bytes or (force and not deleted):
                oldest: tuple[float, int, int] | None = None
                for t in self.tiers:
                    row = db.execute("SELECT min(chunk) FROM chunks WHERE tier = ?", (t.index,)).fetchone()
                    if row[0] is not None:
                        end = t.chunk_start(row[0] + 1)
                        if oldest is None or end < oldest[0]:
                            oldest = (end, t.index, row[0])
                if oldest is None:
                    row = db.execute("SELECT tier, min(bucket) FROM recent").fetchone()
                    if row[1] is None:
                        break
                    db.execute("DELETE FROM recent WHERE tier = ? AND bucket <= ?", (row[0], row[1]))
                else:
                    db.execute("DELETE FROM chunks WHERE tier = ? AND chunk = ?", (oldest[1], oldest[2]))
                deleted = True
                log.info("storage: over %d%% of max_bytes (%d): pruned the oldest buckets", 80, self.max_bytes)
            return deleted
        except sqlite3.Error as e:
            log.warning("storage: pruning failed: %s", e)
            return False

    def _refresh_bytes(self) -> None:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(self.path + suffix)
        self.counts.bytes = total

    def _dump_open(self, db: sqlite3.Connection) -> None:
        """Checkpoint every open bucket's accumulator (replaces the previous checkpoint)."""
        now = self.clock()
        db.execute("DELETE FROM open")
        rows = []
        with self._acc_lock:
            for e in self._entities.values():
                for ti, acc in enumerate(e.accs):
                    if acc is not None and acc.n:
                        rows.append((self._rowid(db, e, now), ti, acc.at, acc.n, acc.dump()))
        db.executemany("INSERT INTO open (entity, tier, bucket, n, data) VALUES (?, ?, ?, ?, ?)", rows)

    def _checkpoint(self, all_tiers: bool) -> None:
        """At a clean stop: pending buckets and every open accumulator to disk."""
        db = self._db
        if db is None:
            return
        try:
            if self._pending or self._pending_alerts or self._pending_events:
                self._write()
            db.execute("BEGIN IMMEDIATE")
            self._dump_open(db)
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            log.warning("storage: could not save the open buckets at stop: %s", e)

    def _load_open(self) -> None:
        """The open buckets of the last run (its clean stop, or its last checkpoint), then the
        checkpoint is emptied: the next one rewrites it."""
        db = self._db
        assert db is not None
        rows = db.execute(
            "SELECT e.kind, e.key, e.name, o.tier, o.bucket, o.n, o.data FROM open o JOIN entities e ON e.id = o.entity"
        ).fetchall()
        with self._acc_lock:
            for kind, key, name, ti, at, n, data in rows:
                if kind not in KIND_FIELDS or ti >= len(self.tiers):
                    continue
                e = self._entity(kind, key, name)
                if len(data) != 28 * e.nfields:
                    continue  # written with another field list
                e.accs[ti] = Acc.load(at, n, data, e.nfields)
        db.execute("DELETE FROM open")

    # --- what the API reads besides the disk ---

    def unwritten(self, kind: str, key: str, tier: Tier, fields: Sequence[str]) -> list[tuple[float, int, list[float], list[float], list[float]]]:
        """The buckets of ``tier`` the disk does not have yet: the pending closed ones and the open
        one (its values so far), as (start, count, mins, avgs, maxs)."""
        names = self._names[kind]
        idx = [names.index(f) for f in fields]
        out = []
        with self._acc_lock:
            e = self._entities.get((kind, key))
            if e is None:
                return []
            for pe, ti, at, data in list(self._pending):
                if pe is e and ti == tier.index:
                    n, mn, av, mx = decode_bucket(data, e.nfields)
                    out.append((at, n, [mn[j] for j in idx], [av[j] for j in idx], [mx[j] for j in idx]))
            # The open bucket of this tier, with what finer open buckets hold (not yet folded in).
            # Usually they all fall in one bucket of this tier; after a restart the coarser ones
            # may still be the last run's (they close when the first new finer bucket does), so
            # each bucket of this tier they fall in is one entry.
            merged: dict[float, Acc] = {}
            for ti in range(tier.index, -1, -1):
                acc = e.accs[ti]
                if acc is None or not acc.n:
                    continue
                at = math.floor(acc.at / tier.bucket) * tier.bucket
                if at not in merged:
                    merged[at] = Acc(at, e.nfields)
                merged[at].fold(acc)
            for at in sorted(merged):
                m = merged[at]
                out.append((m.at, m.n, [m.mn[j] for j in idx], [m.sm[j] / m.ct[j] if m.ct[j] else NAN for j in idx], [m.mx[j] for j in idx]))
        return out

    def known(self, kind: str, key: str) -> bool:
        with self._acc_lock:
            return (kind, key) in self._entities


def backup(path: str, target: str) -> int:
    """A consistent copy of the database at ``path`` into ``target`` (SQLite's online backup: the
    service keeps writing meanwhile); returns its size in bytes."""
    if os.path.exists(target):
        raise FileExistsError(target)
    src = connect(path, readonly=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=1024)
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    return os.path.getsize(target)


__all__ = [
    "CHUNK",
    "KIND_FIELDS",
    "Buckets",
    "RollupReader",
    "RollupWriter",
    "StorageCorruptError",
    "StorageLockedError",
    "Tier",
    "backup",
    "check_lock",
    "tiers_of",
]
