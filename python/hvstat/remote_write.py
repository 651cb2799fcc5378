"""Remote write: the series of ``GET /metrics`` pushed to a Prometheus remote-write 1.0 receiver.

What is sent: every sample a source publishes (node, containers, VMs), once, with the sample's own
timestamp, walked into series by the same code as /metrics (``hvstat.exposition.walk_sample`` into
a ``SeriesSink``); plus, once per batch, hvstat's own series (source health, alerts, build info,
remote write's counters) at the batch's time. A scrape of /metrics and the pushed series are the
same names, labels and values, plus the external labels: ``node`` (``[server] node_name``) and the
``[labels]`` on every series (hvstat/identity.py).

The wire (https://prometheus.io/docs/specs/remote_write_spec/, version 1.0): one ``WriteRequest``
protobuf per POST, snappy block-compressed, with ``Content-Encoding: snappy``,
``Content-Type: application/x-protobuf`` and ``X-Prometheus-Remote-Write-Version: 0.1.0``. The
message is five fields deep and encoded here by hand (``encode_write_request``)::

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // milliseconds

Labels are sorted by name (the spec requires it; ``__name__`` sorts first).

The buffer (``Buffer``): every ``interval`` the queued samples become one batch, which is written to
``buffer_dir`` *before* it is sent and removed only after the receiver answered 2xx. A batch is a
file ``<sequence>.batch``: a 16-byte header (magic, sample count, CRC-32 of the payload) and the
compressed request, written to a temporary name, fsync'd and renamed into place, so a batch file
that exists is complete. (The directory is not fsync'd per batch: a power loss may forget the
last batches written, as it loses the samples still in memory. A file whose CRC does not match is
dropped and counted.) Batches are sent oldest first, one at a time; at start the batches left by
the previous run are found and sent first. Past ``buffer_max_bytes`` the oldest batches are
dropped (counted).

Answers: 2xx sent. 429, 5xx, a timeout or a connection error: the batch stays and is retried after
a jittered exponential backoff (``backoff`` doubling to ``backoff_max``), as long as it takes.
Any other answer (400 for a malformed or out-of-order batch, 401, 404...) cannot get better by
retrying: the batch is dropped and its samples counted as failed, and the next batch is sent.

Threads: the publish hooks run on the event loop and only append the sample to a list. Building,
compressing and writing a batch and reading one back run in worker threads; the POST is
asynchronous (httpx). Collection never waits for any of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from hvstat import exposition as P
from hvstat.identity import NodeIdentity
from hvstat.meta import SEND_BUCKETS, Histogram, HistogramSnapshot, SourceStats
from hvstat.models import RemoteWriteHealth
from hvstat.settings import RemoteWriteSettings

if TYPE_CHECKING:
    from hvstat.bus import Sample
    from hvstat.models import SourceHealth

log = logging.getLogger(__name__)

try:
    import cramjam

    def snappy_compress(data: bytes) -> bytes:
        """Snappy *block* format (not the framed one), as remote write wants."""
        return bytes(cramjam.snappy.compress_raw(data))

    def snappy_decompress(data: bytes) -> bytes:
        return bytes(cramjam.snappy.decompress_raw(data))

    SNAPPY_MISSING: str | None = None
except ImportError as e:  # pragma: no cover - cramjam is a dependency; this is for a broken install
    SNAPPY_MISSING = f"remote write needs the cramjam package (pip install cramjam): {e}"

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


# --- protobuf ---------------------------------------------------------------------------------------

_SMALL = [bytes((i,)) for i in range(128)]
_double = struct.Struct("<d").pack


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag byte, the length, the bytes."""
    return tag + varint(len(body)) + body


def _label(name: str, value: str) -> bytes:
    # Label values come from the kernel and runtimes' metadata; "replace" as /metrics does.
    body = _field(b"\x0a", name.encode()) + _field(b"\x12", value.encode("utf-8", "replace"))
    return _field(b"\x0a", body)


Labels = tuple[tuple[str, str], ...]
# One timestamp (ms) and the series of one sample (or of hvstat's own state) at that time.
Group = tuple[int, list[tuple[str, Labels, Any]]]


def encode_write_request(groups: Iterable[Group], external: Labels = ()) -> tuple[bytes, int]:
    """The WriteRequest of ``groups``, and how many samples it holds. The samples of one series
    (same name and labels) across groups become one TimeSeries with its samples in group order.
    ``external`` labels (the node's name and ``[labels]``) are added to every series that does not
    have a label of that name already (Prometheus's external_labels rule)."""
    by_series: dict[tuple[str, Labels], list[bytes]] = {}
    count = 0
    for ts, series in groups:
        # Sample: field 1 the double (tag 0x09, 8 bytes), field 2 the timestamp (tag 0x10, varint);
        # in the TimeSeries, field 2 (tag 0x12) with its length.
        ts_field = b"\x10" + varint(ts)
        head = b"\x12" + varint(9 + len(ts_field)) + b"\x09"
        for name, labels, value in series:
            sample = head + _double(value) + ts_field
            key = (name, labels)
            got = by_series.get(key)
            if got is None:
                by_series[key] = [sample]
            else:
                got.append(sample)
            count += 1
    label_cache: dict[tuple[str, str], bytes] = {}
    labels_cache: dict[Labels, list[tuple[str, str]]] = {}
    out = []
    for (name, labels), samples in by_series.items():
        pairs = labels_cache.get(labels)
        if pairs is None:
            own = {k for k, _ in labels}
            pairs = labels_cache[labels] = sorted(labels + tuple(e for e in external if e[0] not in own))
        parts = []
        for pair in (("__name__", name), *pairs):
            enc = label_cache.get(pair)
            if enc is None:
                enc = label_cache[pair] = _label(*pair)
            parts.append(enc)
        parts.extend(samples)
        out.append(_field(b"\x0a", b"".join(parts)))
    return b"".join(out), count


def decode_write_request(data: bytes) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    """The inverse, for tests and ``hvstat``'s own checks: [(labels, [(timestamp ms, value)])]."""

    def fields(buf: bytes) -> Iterable[tuple[int, int, Any]]:
        i = 0
        while i < len(buf):
            key, i = _read_varint(buf, i)
            num, wire = key >> 3, key & 7
            v: int | float | bytes  # a varint, a double or a length-delimited field, by wire type
            if wire == 0:
                v, i = _read_varint(buf, i)
            elif wire == 1:
                v, i = struct.unpack_from("<d", buf, i)[0], i + 8
            elif wire == 2:
                n, i = _read_varint(buf, i)
                v, i = buf[i : i + n], i + n
            else:
                raise ValueError(f"unexpected wire type {wire}")
            yield num, wire, v

    out = []
    for num, _, ts_bytes in fields(data):
        if num != 1:
            continue
        labels: dict[str, str] = {}
        samples: list[tuple[int, float]] = []
        for f, _, body in fields(ts_bytes):
            if f == 1:
                kv = {n: v for n, _, v in fields(body)}
                labels[kv[1].decode()] = kv[2].decode() if 2 in kv else ""
            elif f == 2:
                kv = {n: v for n, _, v in fields(body)}
                samples.append((kv.get(2, 0), kv.get(1, 0.0)))
        out.append((labels, samples))
    return out


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, i
        shift += 7


# --- the on-disk buffer -----------------------------------------------------------------------------

MAGIC = b"HVRWB\x00\x01\n"
_HEADER = struct.Struct("<8sII")  # magic, samples, crc32 of the payload
SUFFIX = ".batch"


class CorruptBatch(Exception):
    """A batch file that is not what hvstat wrote (torn by a power loss, or not ours)."""


@dataclass(frozen=True)
class Batch:
    seq: int
    path: Path
    size: int  # bytes of the file
    samples: int


class Buffer:
    """Batch files in ``directory``, oldest (lowest sequence) first, at most ``max_bytes`` of them.
    Thread-safe: batches are appended from one worker thread while another sends."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._batches: list[Batch] = []  # by sequence
        self._in_flight: Batch | None = None
        self.bytes = 0
        self.samples = 0
        self.dropped_samples = 0
        self.dropped_batches = 0
        # While the bound drops batches: the counters when it began (one log line per state change).
        self._dropping_since: tuple[int, int] | None = None
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for tmp in self.dir.glob(".tmp-*"):  # a write the previous run did not finish
            tmp.unlink(missing_ok=True)
        found = []
        for p in self.dir.glob(f"*{SUFFIX}"):
            try:
                seq = int(p.name[: -len(SUFFIX)])
                with open(p, "rb") as fh:
                    magic, samples, _ = _HEADER.unpack(fh.read(_HEADER.size))
                if magic != MAGIC:
                    raise CorruptBatch("bad magic")
                found.append(Batch(seq, p, p.stat().st_size, samples))
            except (ValueError, OSError, struct.error, CorruptBatch) as e:
                log.warning("remote write: dropping unreadable batch file %s: %s", p, e)
                p.unlink(missing_ok=True)
                self.dropped_batches += 1
        found.sort(key=lambda b: b.seq)
        self._batches = found
        self.bytes = sum(b.size for b in found)
        self.samples = sum(b.samples for b in found)
        self._next_seq = found[-1].seq + 1 if found else 1
        self._enforce_bound(0)

    def __len__(self) -> int:
        return len(self._batches)

    def append(self, payload: bytes, samples: int) -> Batch | None:
        """Write one batch durably (temporary file, fsync, rename); drop the oldest batches to stay
        within ``max_bytes``. Returns the batch, or None if it alone is larger than the bound (then
        it is dropped, and counted, at once)."""
        size = _HEADER.size + len(payload)
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
        if size > self.max_bytes:
            log.error("remote write: a batch of %d bytes is larger than buffer_max_bytes (%d): dropped", size, self.max_bytes)
            with self._lock:
                self.dropped_samples += samples
                self.dropped_batches += 1
            return None
        path = self.dir / f"{seq:016d}{SUFFIX}"
        tmp = self.dir / f".tmp-{seq:016d}"
        with open(tmp, "wb") as fh:
            fh.write(_HEADER.pack(MAGIC, samples, zlib.crc32(payload)))
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
        batch = Batch(seq, path, size, samples)
        with self._lock:
            self._enforce_bound(size)
            self._batches.append(batch)
            self.bytes += size
            self.samples += samples
        return batch

    def _enforce_bound(self, incoming: int) -> None:
        """Drop the oldest batches (never the one being sent) until ``incoming`` more bytes fit.
        Called with the lock held (or from __init__)."""
        i = 0
        while self.bytes + incoming > self.max_bytes and i < len(self._batches):
            b = self._batches[i]
            if b is self._in_flight:
                i += 1
                continue
            del self._batches[i]
            self._forget(b)
            if self._dropping_since is None:
                self._dropping_since = (self.dropped_batches, self.dropped_samples)
                log.warning(
                    "remote write: buffer full (buffer_max_bytes = %d): dropping the oldest batches until the receiver takes them again",
                    self.max_bytes,
                )
            self.dropped_samples += b.samples
            self.dropped_batches += 1

    def _forget(self, b: Batch) -> None:
        self.bytes -= b.size
        self.samples -= b.samples
        b.path.unlink(missing_ok=True)

    def claim_oldest(self) -> Batch | None:
        """The oldest batch, marked as being sent (the bound does not drop it meanwhile)."""
        with self._lock:
            self._in_flight = self._batches[0] if self._batches else None
            return self._in_flight

    def read(self, batch: Batch) -> bytes:
        with open(batch.path, "rb") as fh:
            data = fh.read()
        if len(data) < _HEADER.size:
            raise CorruptBatch(f"{batch.path}: {len(data)} bytes, shorter than the header")
        magic, _, crc = _HEADER.unpack_from(data)
        payload = data[_HEADER.size :]
        if magic != MAGIC or zlib.crc32(payload) != crc:
            raise CorruptBatch(f"{batch.path}: bad magic or CRC")
        return payload

    def remove(self, batch: Batch, *, dropped: bool = False) -> None:
        """The batch is done with: sent, refused, or (``dropped``) unreadable."""
        with self._lock:
            if self._in_flight is batch:
                self._in_flight = None
            if batch in self._batches:
                self._batches.remove(batch)
                self._forget(batch)
                if dropped:
                    self.dropped_samples += batch.samples
                    self.dropped_batches += 1
                elif self._dropping_since is not None:
                    batches, samples = self.dropped_batches - self._dropping_since[0], self.dropped_samples - self._dropping_since[1]
                    self._dropping_since = None
                    log.warning("remote write: the receiver takes batches again; %d batches (%d samples) were dropped meanwhile", batches, samples)

    def release(self) -> None:
        """The batch being sent stays (a retry comes later)."""
        with self._lock:
            self._in_flight = None


# --- the writer -------------------------------------------------------------------------------------


class RemoteWriteStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Remote write's counters, for /metrics (hvstat_remote_write_*)."""

    samples_sent: int
    samples_failed: int
    samples_dropped: int
    retries: int
    buffer_bytes: int
    buffer_samples: int
    last_success: float | None
    send_duration: HistogramSnapshot


def timestamp_ms(secs: float) -> int:
    return round(secs * 1000)


class RemoteWriter:
    """Owns the queue of published samples, the buffer and the two tasks (batching, sending).
    ``own_series`` is called on the event loop once per batch for hvstat's own series."""

    def __init__(
        self,
        settings: RemoteWriteSettings,
        interval: float,
        *,
        version: str,
        sources: Callable[[], Sequence[SourceHealth]] = lambda: (),
        alerts: P.AlertCounts | None = None,
        storage: P.StorageCounts | None = None,
        identity: NodeIdentity | None = None,
        stats: Callable[[], Sequence[SourceStats]] = lambda: (),
        clock: P.ClockCounts | None = None,
        on_date: Callable[[str, float], None] | None = None,
    ) -> None:
        if SNAPPY_MISSING is not None:
            raise RuntimeError(SNAPPY_MISSING)
        assert settings.url is not None  # load_settings checked it
        self.settings = settings
        self.url = settings.url
        # For log lines: without any user:password@.
        self.shown_url = url_without_credentials(settings.url)
        self.interval = interval
        self.version = version
        self._sources = sources
        self._alerts = alerts
        self._storage = storage
        # hvstat_node_info in every batch; its name and [labels] on every series.
        self._identity = identity
        self._stats = stats
        self._clock = clock
        # Each answer's Date header and the round trip, for the clock watch (hvstat/clock.py).
        self._on_date = on_date
        self._send_durations = Histogram(SEND_BUCKETS)
        self.external_labels = identity.external_labels() if identity is not None else ()
        self.buffer = Buffer(settings.buffer_dir, settings.buffer_max_bytes)
        if len(self.buffer):
            log.info("remote write: %d batches (%d samples) from before the restart are sent first", len(self.buffer), self.buffer.samples)
        self._pending: list[P.Walked] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self.samples_sent = 0
        self.samples_failed = 0
        self.retries = 0
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.last_error: str | None = None  # of the last failed send; None after a success

    def on_sample(self, sample: Sample) -> None:
        """A listener on the sample bus: on the event loop, O(1)."""
        if isinstance(sample, P.WALKED):
            self._pending.append(sample)

    def status(self) -> RemoteWriteStatus:
        b = self.buffer
        return RemoteWriteStatus(
            samples_sent=self.samples_sent,
            samples_failed=self.samples_failed,
            samples_dropped=b.dropped_samples,
            retries=self.retries,
            buffer_bytes=b.bytes,
            buffer_samples=b.samples,
            last_success=self.last_success,
            send_duration=self._send_durations.snapshot(),
        )

    def health(self) -> RemoteWriteHealth:
        b = self.buffer
        return RemoteWriteHealth(
            status="ok" if self.last_error is None else "degraded",
            url=url_without_credentials(self.url),
            error=self.last_error,
            last_success=self.last_success,
            last_failure=self.last_failure,
            buffer_samples=b.samples,
            buffer_bytes=b.bytes,
            samples_dropped=b.dropped_samples,
            samples_failed=self.samples_failed,
        )

    def start(self) -> None:
        s = self.settings
        verify: Any = s.ca_file if s.ca_file is not None else s.tls_verify
        self._client = httpx.AsyncClient(
            timeout=s.timeout,
            verify=verify,
            headers={**s.headers, **HEADERS, "User-Agent": f"hvstat/{self.version}"},
            follow_redirects=False,
        )
        self._wake.set()  # batches left by the previous run go first
        self._tasks = [
            asyncio.create_task(self._batch_loop(), name="remote-write:batch"),
            asyncio.create_task(self._send_loop(), name="remote-write:send"),
        ]

    async def aclose(self) -> None:
        """Stop sending; what is still queued is written to the buffer, for the next start."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.buffer.release()
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - shutting down: log and go on
            log.exception("remote write: writing the last batch failed")
        if self._client is not None:
            await self._client.aclose()

    # --- batching

    def _own(self, now: float) -> Group:
        sink = P.SeriesSink()
        P.walk_own(sink, self._sources(), self.version, self._alerts, self.status(), storage=self._storage, identity=self._identity, stats=self._stats(), clock=self._clock)
        return timestamp_ms(now), sink.series

    async def flush(self) -> Batch | None:
        """Queued samples plus hvstat's own series -> one batch in the buffer."""
        pending, self._pending = self._pending, []
        own = self._own(time.time())  # on the loop: the alert engine and sources are the loop's
        batch = await asyncio.to_thread(self._write_batch, pending, own)
        if batch is not None:
            self._wake.set()
        return batch

    def _write_batch(self, pending: list[P.Walked], own: Group) -> Batch | None:
        groups: list[Group] = []
        for sample in pending:
            sink = P.SeriesSink()
            P.walk_sample(sink, sample)
            groups.append((timestamp_ms(sample.timestamp), sink.series))
        groups.append(own)
        request, count = encode_write_request(groups, self.external_labels)
        return self.buffer.append(snappy_compress(request), count)

    async def _batch_loop(self) -> None:
        next_at = time.monotonic() + self.interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.interval
            if next_at < time.monotonic():  # fell behind (a slow disk): do not burst
                next_at = time.monotonic() + self.interval
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - a full or read-only disk: log, keep going
                log.exception("remote write: writing a batch to %s failed; its samples are lost", self.buffer.dir)

    # --- sending

    async def _send_loop(self) -> None:
        backoff = self.settings.backoff
        while True:
            self._wake.clear()
            batch = self.buffer.claim_oldest()
            if batch is None:
                await self._wake.wait()
                continue
            try:
                payload = await asyncio.to_thread(self.buffer.read, batch)
            except (OSError, CorruptBatch) as e:
                log.warning("remote write: dropping unreadable batch: %s", e)
                await asyncio.to_thread(self.buffer.remove, batch, dropped=True)
                continue
            try:
                retry = await self._post(batch, payload)
            except Exception as e:  # noqa: BLE001 - a bug must not end the sending: keep the batch, retry
                log.exception("remote write: sending a batch failed unexpectedly")
                self.last_error, self.last_failure = f"{type(e).__name__}: {e}", time.time()
                retry = True
            if not retry:
                backoff = self.settings.backoff
                await asyncio.to_thread(self.buffer.remove, batch)
                continue
            self.buffer.release()
            self.retries += 1
            # Full jitter would let a retry come at once; half to all of the wait keeps the doubling.
            wait = backoff * random.uniform(0.5, 1.0)
            backoff = min(backoff * 2, self.settings.backoff_max)
            await asyncio.sleep(wait)

    async def _post(self, batch: Batch, payload: bytes) -> bool:
        """Send one batch; True if it should be retried."""
        assert self._client is not None
        started = time.monotonic()
        try:
            r = await self._client.post(self.url, content=payload)
        except httpx.HTTPError as e:
            self._send_durations.observe(time.monotonic() - started)
            self._note_failure(f"{type(e).__name__}: {e}")
            return True
        rtt = time.monotonic() - started
        self._send_durations.observe(rtt)
        date = r.headers.get("date")
        if date is not None and self._on_date is not None:
            self._on_date(date, rtt)
        if 200 <= r.status_code < 300:
            self.samples_sent += batch.samples
            self.last_success = time.time()
            if self.last_error is not None:
                log.info("remote write: %s accepts batches again", self.shown_url)
                self.last_error = None
            return False
        if r.status_code == 429 or r.status_code >= 500:
            self._note_failure(f"HTTP {r.status_code}: {r.text[:200]}")
            return True
        self.samples_failed += batch.samples
        log.error(
            "remote write: %s refused a batch of %d samples with HTTP %d (dropped, retrying cannot help): %s",
            self.shown_url,
            batch.samples,
            r.status_code,
            r.text[:500],
        )
        return False

    def _note_failure(self, what: str) -> None:
        # The first failure of an outage is a warning; the retries after it only debug lines.
        if self.last_error is None:
            log.warning("remote write: sending to %s failed (%s); batches are kept in %s and retried", self.shown_url, what, self.buffer.dir)
        else:
            log.debug("remote write: retry failed: %s", what)
        self.last_error, self.last_failure = what, time.time()


def url_without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` taken out, for /health."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def check_buffer_dir(settings: RemoteWriteSettings) -> str | None:
    """Why ``buffer_dir`` cannot be used (for ``hvstat serve`` to say at start), or None."""
    d = Path(settings.buffer_dir)
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        return f"cannot create {d}: {e.strerror}"
    if not os.access(d, os.W_OK | os.X_OK):
        return f"cannot write to {d}"
    return None
