#!/usr/bin/env python3
"""WebSocket fan-out: N concurrent ``/ws`` clients on loopback against a real ``hvstat serve``.

For each N (default 10, 100, 1000) this starts ``hvstat serve`` on a free loopback port with a 1 s
node tick, connects N clients, subscribes them to what the dashboard follows (``node``,
``containers.summary``, ``vms.summary``, ``alerts``), and measures over ``--ticks`` node ticks:

- **delay to the last client**: for each node sample, the time from the sample's own ``timestamp``
  (taken by the node source when it read /proc) to the moment the LAST of the N clients had the
  message; p50 and p99 over the ticks. Also the same over every single delivery (all clients).
- **server CPU per tick**: utime + stime of the server process (/proc/<pid>/stat) over the window,
  divided by the ticks in it. It includes the node and container sampling itself; the ``idle`` row
  (N = 0) gives that part alone.
- **a stalled client** (``--stall``, on by default): after the first window, a client that completed
  its handshake and then never reads again (a tiny receive buffer, so its socket fills at once) is
  added and a second window is measured, then a third once it has gone: the others' delays must
  not change (the third window tells what drifted between windows for other reasons). Whether the
  server dropped it (close 1008, "too slow") within its window is read from the server's log: on
  loopback the kernel lets the server's send buffer grow to 4 MiB (``net.ipv4.tcp_wmem``), minutes
  of node messages, before the hub's queue even starts to fill (tests/test_ws.py shows the drop
  with a small send buffer).

The clients are the ``websockets`` package's sans-I/O ``ClientProtocol`` on asyncio streams'
cheaper cousin, ``loop.create_connection`` protocols: one process, one event loop, N connections,
each frame parsed by websockets and the message's ``type`` and ``timestamp`` read by msgspec. They
offer permessage-deflate as browsers and websockets' own ``connect()`` do (``--no-compression``: they
do not). Receipt times are wall-clock (``time.time()``), as the sample timestamps are.

The open-file limit: every client is a socket here and in the server; the soft limit is raised to
the hard one at start (the server inherits it, and raises its own anyway).

Usage::

    python bench/ws_fanout.py                       # 10, 100, 1000 clients, 30 ticks each, stall on
    python bench/ws_fanout.py --clients 1000 --ticks 60 --json bench/out/ws_fanout.json
    python bench/ws_fanout.py --no-compression --no-stall

Loopback only; every server and client it starts is stopped at the end (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

TOPICS = ["node", "containers.summary", "vms.summary", "alerts"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNECT_BATCH = 50


class Head(msgspec.Struct):
    """The two fields of a message the bench looks at (msgspec skips the rest without building it)."""

    type: str
    timestamp: float | None = None


head_decoder = msgspec.json.Decoder(Head)


# --- the server -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hvstat_exe() -> list[str]:
    exe = shutil.which("hvstat")
    return [exe] if exe else [sys.executable, "-m", "hvstat.cli"]


@contextlib.contextmanager
def server(workdir: Path, max_clients: int, node_interval: float) -> Iterator[tuple[int, int, Path]]:
    """``hvstat serve`` on a free loopback port; yields (port, pid, log path); always stopped."""
    port = free_port()
    config = workdir / "hvstat.toml"
    config.write_text(
        f"[monitoring]\nnode_metrics_interval = {node_interval}\nmax_ws_clients = {max_clients}\n\n[logging]\nlevel = \"info\"\n"
    )
    log_path = workdir / f"serve-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVSTAT_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"hvstat serve exited with {proc.returncode}:\n{log_path.read_text()}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"hvstat serve did not listen within 60 s:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield port, proc.pid, log_path
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def cpu_secs(pid: int) -> float:
    """utime + stime of a process, seconds (/proc/<pid>/stat fields 14 and 15, after the comm)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- the clients ------------------------------------------------------------------------------------------


class Deliveries:
    """Node messages received, by sample timestamp: the receipt time at each client.

    Receipt is timed in ``data_received`` (the bytes came out of the client's socket); the frames
    are parsed later, in one pass over every client with new data, ``DIGEST_AFTER`` of an interval
    after the burst began. Parsing 1000 frames in Python takes tens of milliseconds: done inline,
    the last clients' receipt would wait for the parsing of the first ones, and the bench would
    measure itself."""

    DIGEST_AFTER = 0.5

    def __init__(self, interval: float) -> None:
        self.by_sample: dict[float, list[float]] = defaultdict(list)
        self.other = 0
        self.closed: list[tuple[int, str]] = []
        self.interval = interval
        self._dirty: set[Client] = set()
        self._scheduled = False

    def pending(self, client: Client) -> None:
        self._dirty.add(client)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.DIGEST_AFTER * self.interval, self.digest)

    def digest(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, set()
        for c in dirty:
            c.digest()


class Client(asyncio.Protocol):
    def __init__(self, url: str, deliveries: Deliveries, compression: bool) -> None:
        uri = parse_uri(url)
        extensions = enable_client_permessage_deflate(None) if compression else None
        self.proto = ClientProtocol(uri, extensions=extensions, max_size=None)
        self.deliveries = deliveries
        self.transport: asyncio.Transport | None = None
        self.chunks: list[tuple[float, bytes]] = []
        loop = asyncio.get_running_loop()
        self.hello = loop.create_future()
        self.subscribed = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.proto.send_request(self.proto.connect())
        self._flush()

    def _flush(self) -> None:
        out = self.proto.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            data = b"".join(out)
            if data:
                self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.time(), data))
        if self.subscribed.done():
            self.deliveries.pending(self)
        else:
            self.digest()  # connecting: the hello and the subscribed answer are awaited now

    def digest(self) -> None:
        chunks, self.chunks = self.chunks, []
        d = self.deliveries
        for at, data in chunks:
            self.proto.receive_data(data)
            for e in self.proto.events_received():
                if isinstance(e, Response):
                    continue
                if e.opcode is Opcode.TEXT:
                    h = head_decoder.decode(e.data)
                    if h.type == "NodeMetrics":
                        d.by_sample[h.timestamp].append(at)  # type: ignore[index]
                    elif h.type == "hello":
                        if not self.hello.done():
                            self.hello.set_result(None)
                    elif h.type == "subscribed":
                        if not self.subscribed.done():
                            self.subscribed.set_result(None)
                    else:
                        d.other += 1
                elif e.opcode is Opcode.CLOSE and self.proto.close_rcvd is not None:
                    d.closed.append((self.proto.close_rcvd.code, self.proto.close_rcvd.reason))
        self._flush()  # pongs, close answers

    def send_text(self, text: str) -> None:
        self.proto.send_text(text.encode())
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)
        for f in (self.hello, self.subscribed):
            if not f.done():
                f.set_exception(ConnectionError("connection lost"))
                f.exception()  # retrieved: connect_all reports the failure

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect_all(port: int, n: int, deliveries: Deliveries, compression: bool, topics: list[str]) -> list[Client]:
    loop = asyncio.get_running_loop()
    url = f"ws://127.0.0.1:{port}/ws"
    subscribe = json.dumps({"type": "subscribe", "topics": topics})
    clients: list[Client] = []

    async def one() -> Client:
        _, c = await loop.create_connection(lambda: Client(url, deliveries, compression), "127.0.0.1", port)
        await asyncio.wait_for(c.hello, 30)
        c.send_text(subscribe)
        await asyncio.wait_for(c.subscribed, 30)
        return c

    for start in range(0, n, CONNECT_BATCH):
        clients += await asyncio.gather(*(one() for _ in range(min(CONNECT_BATCH, n - start))))
    return clients


def stalled_client(port: int) -> socket.socket:
    """A client that completes the handshake, then never reads again; subscribed to every topic
    (the default), with the smallest receive buffer the kernel allows."""
    proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws"), max_size=None)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    proto.send_request(proto.connect())
    sock.sendall(b"".join(proto.data_to_send()))
    while True:  # one byte at a time up to the end of the 101 answer, so nothing after it is read
        chunk = sock.recv(1)
        if not chunk:
            raise SystemExit("the server closed the stalled client during the handshake")
        proto.receive_data(chunk)
        if any(isinstance(e, Response) for e in proto.events_received()):
            return sock


# --- measuring --------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


@dataclass
class Window:
    ticks: int = 0
    last_p50_ms: float | None = None
    last_p99_ms: float | None = None
    last_max_ms: float | None = None
    all_p50_ms: float | None = None
    all_p99_ms: float | None = None
    incomplete_ticks: int = 0
    server_cpu_ms_per_tick: float | None = None
    # Per tick, in order: (sample timestamp, delay to the first and to the last client, ms).
    per_tick: list[tuple[float, float, float]] = field(default_factory=list)


@dataclass
class Result:
    clients: int
    compression: bool
    connect_secs: float = 0.0
    normal: Window = field(default_factory=Window)
    stalled: Window | None = None
    after: Window | None = None
    stalled_dropped: bool | None = None
    closed: list[tuple[int, str]] = field(default_factory=list)


async def measure(deliveries: Deliveries, n: int, ticks: int, interval: float, pid: int) -> Window:
    """Wait for ``ticks`` node samples that every client received (or timed out on), from the next
    sample on; the delay of each. The bench's own garbage collector is off meanwhile: a full
    collection of its thousand connections' objects would stall the reading of the sockets, and
    show up as the server's delay."""
    await asyncio.sleep(interval / 2)
    deliveries.by_sample.clear()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        cpu0, t0, wall0 = cpu_secs(pid), time.monotonic(), time.time()
        await asyncio.sleep(ticks * interval)
        cpu1, t1, wall1 = cpu_secs(pid), time.monotonic(), time.time()
        # Give the stragglers of the last sample a moment, then take the samples taken in the window.
        await asyncio.sleep(min(1.0, interval))
        deliveries.digest()
    finally:
        gc.enable()
        gc.unfreeze()
    samples = sorted(ts for ts in deliveries.by_sample if wall0 <= ts < wall1)
    w = Window(ticks=len(samples))
    last: list[float] = []
    every: list[float] = []
    for ts in samples:
        got = deliveries.by_sample[ts]
        if len(got) < n:
            w.incomplete_ticks += 1
        if got:
            last.append((max(got) - ts) * 1000)
            every += [(t - ts) * 1000 for t in got]
            w.per_tick.append((ts, round((min(got) - ts) * 1000, 2), round(last[-1], 2)))
    if last:
        w.last_p50_ms, w.last_p99_ms, w.last_max_ms = statistics.median(last), pct(last, 99), max(last)
        w.all_p50_ms, w.all_p99_ms = statistics.median(every), pct(every, 99)
    w.server_cpu_ms_per_tick = (cpu1 - cpu0) * 1000 / ((t1 - t0) / interval)
    return w


async def run_one(n: int, args: argparse.Namespace, workdir: Path) -> Result:
    res = Result(clients=n, compression=args.compression)
    with server(workdir, max(n + 8, 8), args.interval) as (port, pid, log_path):
        deliveries = Deliveries(args.interval)
        t = time.monotonic()
        clients = await connect_all(port, n, deliveries, args.compression, args.topics) if n else []
        res.connect_secs = time.monotonic() - t
        # Let the server settle after the connection storm (hellos, subscriptions, GC).
        await asyncio.sleep(2 * args.interval)
        res.normal = await measure(deliveries, n, args.ticks, args.interval, pid)
        if args.stall and n:
            stalled = stalled_client(port)
            try:
                res.stalled = await measure(deliveries, n, args.ticks, args.interval, pid)
                res.stalled_dropped = "dropped (1008)" in log_path.read_text()
            finally:
                stalled.close()
            # The same again without it: what changed between the windows that is not the stall.
            res.after = await measure(deliveries, n, args.ticks, args.interval, pid)
        res.closed = list(deliveries.closed)
        for c in clients:
            c.close()
        await asyncio.sleep(0.2)
    return res


def fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(results: list[Result]) -> str:
    head = "| clients | window | ticks | last client p50 ms | last client p99 ms | max ms | every delivery p50 / p99 ms | server CPU ms/tick | incomplete |"
    lines = [head, "|" + "---|" * 9]
    for r in results:
        for name, w in (("normal", r.normal), ("+ stalled client", r.stalled), ("after it left", r.after)):
            if w is None:
                continue
            lines.append(
                f"| {r.clients} | {name} | {w.ticks} | {fmt(w.last_p50_ms)} | {fmt(w.last_p99_ms)} | {fmt(w.last_max_ms)} | "
                f"{fmt(w.all_p50_ms)} / {fmt(w.all_p99_ms)} | {fmt(w.server_cpu_ms_per_tick)} | {w.incomplete_ticks} |"
            )
    return "\n".join(lines)


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < need:
        raise SystemExit(f"the open-file limit is {hard}; {need} clients need more (ulimit -Hn)")


async def main_async(args: argparse.Namespace) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="ws_fanout-") as tmp:
        for n in args.clients:
            print(f"-- {n} clients ...", file=sys.stderr, flush=True)
            r = await run_one(n, args, Path(tmp))
            results.append(r)
            print("\n".join(table([r]).splitlines()[2:]), file=sys.stderr, flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[0, 10, 100, 1000], help="comma-separated (0: no client, the idle server)")
    p.add_argument("--ticks", type=int, default=30, help="node ticks measured per window")
    p.add_argument("--interval", type=float, default=1.0, help="node_metrics_interval, seconds")
    p.add_argument("--compression", action=argparse.BooleanOptionalAction, default=True, help="clients offer permessage-deflate")
    p.add_argument("--stall", action=argparse.BooleanOptionalAction, default=True, help="a second window with a stalled client")
    p.add_argument("--topics", type=lambda s: s.split(","), default=TOPICS, help="comma-separated topics each client subscribes to")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args()
    raise_fd_limit(2 * max(args.clients) + 256)
    load0 = os.getloadavg()
    results = asyncio.run(main_async(args))
    print(table(results))
    print(f"\nloadavg before: {load0[0]:.2f}, after: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; compression offered: {args.compression}")
    for r in results:
        if r.stalled is not None:
            print(f"{r.clients} clients: stalled client dropped by the server within its window: {r.stalled_dropped}; closes seen by well-behaved clients: {r.closed or 'none'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
