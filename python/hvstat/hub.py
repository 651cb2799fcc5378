"""The hub: fans the sources' samples out to the ``/ws`` clients (protocol: docs/websocket.md).

- **Encode once.** A sample becomes one message, encoded once by msgspec into a ``Frame``; the same
  Frame object (its bytes, and the one ``str`` of them that ASGI text frames take) goes into the
  queue of every client subscribed to it. A per-container message (topic ``container:<id>``) is
  encoded once per tick too, and only for containers somebody subscribed to; so is each VM's
  message (``vm:<id>``, and ``vms``, where every VM has its own message).
- **Slim topics for tables.** ``containers.summary`` and ``vms.summary`` carry each guest's list
  entry (as ``GET /api/containers`` / ``GET /api/vms``) instead of its whole sample: a dashboard's
  table of 1000 containers takes about 250 KB per tick instead of 2.5 MB, and follows the full
  sample of the one guest it shows in detail on ``container:<id>`` / ``vm:<id>``.
- **Bounded queue per client.** Publishing never waits: a Frame is put into each queue without
  blocking. A client whose queue is full (``monitoring.ws_queue_size`` entries waiting, after the
  socket's own buffers filled up) is dropped on the spot: it leaves the hub, its connection is
  closed with 1008 and a reason, and the others never wait for it. One VM sample on ``vms`` (a
  message per VM) is one entry, a ``Batch``, so that the bound counts ticks, not VMs.
- **max_ws_clients.** ``connect`` refuses the client past the limit; the route closes it with
  1013 ("try again later") and a reason.
- **Full garbage collections at a quiet moment** (``pace_gc``). With 1000 connections the process
  holds a few hundred thousand objects that the cyclic GC tracks (each connection's tasks, queue,
  protocol objects); a full collection of them took 36-88 ms here, and landing in the middle of a
  fan-out it held every client behind it (it was the whole tail of bench/ws_fanout.py: p99 146 ms
  with 1000 clients). So automatic full collections are off while the hub runs; ``pace_gc`` does
  one every minute, 0.2 s after a node fan-out was queued (the sends are done by then, the next
  tick is far). What exists at start is frozen out of the GC (``gc.freeze``): it lives as long as
  the process. Young generations are collected as usual.
- **One code path for every kind of guest.** Containers and VMs differ only in their
  ``GuestKind`` (hvstat.guests): its topics (``containers``, ``containers.summary``,
  ``container:<id>``; the same for ``vm``), its messages, how a reference resolves.
- **Processes and users.** Each process sample becomes one ``Processes`` message (the ``[processes]
  top`` processes by CPU, the host's sums, the load status) for topic ``processes`` and one ``Users``
  message for topic ``users``, each encoded once and only when somebody follows it; neither is a
  default topic (a client asks for them).
- Runs on the event loop only: it is a listener on the sample bus (``on_sample``, after the store
  was written), the route calls ``connect``/``handle``/``disconnect``.

The hub knows nothing of WebSocket framing: ``api/ws.py`` moves Frames between queues and sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from hvstat.guests import KINDS, GuestKind, GuestLookupError
from hvstat.identity import node_id
from hvstat.models import (
    CLIENT_MESSAGES,
    ContainersSample,
    ErrorMessage,
    HelloMessage,
    NodeMetrics,
    NodeMetricsMessage,
    ProcessesMessage,
    ProcessesSample,
    SubscribedMessage,
    SubscribeMessage,
    UsersMessage,
    VmsSample,
    VmStatusChangedMessage,
    WsMessage,
    encoder,
)
from hvstat.store import Store

log = logging.getLogger(__name__)

# Topics without an argument; "container:<ref>" and "vm:<ref>" narrow "containers" and "vms".
# The process source's topics (when it runs): the top processes, every user.
PROCESS_TOPICS = ("processes", "users")
PLAIN_TOPICS = ("node", *(t for k in KINDS for t in (k.plural, f"{k.plural}.summary")), "alerts", *PROCESS_TOPICS)
# What a new connection follows: the full streams, as before the slim topics existed.
DEFAULT_TOPICS = frozenset(("node", "containers", "vms", "alerts"))
# Limits on what a client may send: plenty for a dashboard, small enough to answer cheaply.
MAX_TOPICS = 1000
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024
CLOSE_TOO_SLOW = 1008  # policy violation: it did not keep up with its bounded queue
CLOSE_TOO_MANY = 1013  # try again later: max_ws_clients reached
CLIENT_TYPES = {m.__struct_config__.tag: m for m in CLIENT_MESSAGES}
# pace_gc: a full collection this often, this long after a node fan-out was queued.
GC_EVERY_SECS = 60.0
GC_AFTER_PUBLISH_SECS = 0.2


# Hubs pacing the GC in this process (tests run several apps at once): the first to start turns
# automatic full collections off, the last to stop turns them back on.
_gc_pacers = 0
_gc_thresholds: tuple[int, int, int] = (0, 0, 0)


def _gc_pacing_start() -> None:
    global _gc_pacers, _gc_thresholds
    _gc_pacers += 1
    if _gc_pacers == 1:
        _gc_thresholds = gc.get_threshold()
        gc.collect()
        gc.freeze()
        # The full generation's threshold counts young-generation collections; this many never come.
        gc.set_threshold(_gc_thresholds[0], _gc_thresholds[1], 1 << 30)


def _gc_pacing_stop() -> None:
    global _gc_pacers
    _gc_pacers -= 1
    if _gc_pacers == 0:
        gc.set_threshold(*_gc_thresholds)
        gc.unfreeze()


class Frame:
    """One encoded message. ``data`` is what msgspec wrote; ``text`` is the same, decoded once,
    because an ASGI text frame takes a str."""

    __slots__ = ("data", "text", "wire")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.text = data.decode()
        # The whole WebSocket frame of it, made by the route on first send (api/ws.py).
        self.wire: bytes | None = None

    @classmethod
    def of(cls, message: WsMessage) -> Frame:
        return cls(encoder.encode(message))


class Batch(tuple[Frame, ...]):
    """Frames that take one slot of a client's queue and are sent in a row: one VM sample on the
    ``vms`` topic (a VmMetrics message per VM)."""

    __slots__ = ()


class Reply(Frame):
    """A Frame answering the client's own message (``subscribed``, ``error``): it does not count
    against ``ws_queue_size``, which bounds the broadcast; replies have their own bound."""

    __slots__ = ()


# Replies a client may have waiting; past it its messages are not read until they went out, so a
# burst of client messages is slowed down by TCP instead of getting the client dropped as too slow.
MAX_PENDING_REPLIES = 32


class _ClientQueue(asyncio.Queue[Frame | Batch]):
    """A client's queue, counting the replies in it (asyncio.Queue's _put/_get hooks see every item)."""

    def __init__(self) -> None:
        super().__init__()
        self.replies = 0
        self.reply_room = asyncio.Event()
        self.reply_room.set()

    def _put(self, item: Frame | Batch) -> None:
        super()._put(item)
        if isinstance(item, Reply):
            self.replies += 1
            if self.replies >= MAX_PENDING_REPLIES:
                self.reply_room.clear()

    def _get(self) -> Frame | Batch:
        item = super()._get()
        if isinstance(item, Reply):
            self.replies -= 1
            if self.replies < MAX_PENDING_REPLIES:
                self.reply_room.set()
        return item

    @property
    def broadcast(self) -> int:
        """Entries waiting that are not replies."""
        return self.qsize() - self.replies


class TopicError(Exception):
    """A topic that cannot be subscribed to; ``error`` and ``detail`` go into the error message."""

    def __init__(self, error: str, detail: object = None) -> None:
        super().__init__(error)
        self.error, self.detail = error, detail


class Client:
    """One connection as the hub sees it: its topics and its bounded queue of Frames."""

    __slots__ = ("id", "peer", "topics", "guest_ids", "queue", "ended", "close_code", "close_reason", "direct")

    def __init__(self, cid: int, peer: str, queue_size: int, topics: frozenset[str]) -> None:
        self.id, self.peer = cid, peer
        # Unbounded as an asyncio.Queue: the hub bounds its broadcast entries (ws_queue_size) and
        # the route stops reading the client while MAX_PENDING_REPLIES replies wait.
        self.queue = _ClientQueue()
        # Set when the hub lets go of the client (dropped, or disconnected).
        self.ended = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        # Set by the route when it can write a Frame to the socket at once (True: written): a
        # Frame offered while nothing waits in the queue skips it, and the sender task's wake-up.
        self.direct: Callable[[Frame], bool] | None = None
        self.set_topics(topics)

    def set_topics(self, topics: frozenset[str]) -> None:
        self.topics = topics
        # Per kind, the guests whose own messages it wants: per-guest messages are for clients
        # that do not get them all already.
        self.guest_ids: dict[str, frozenset[str]] = {}
        for k in KINDS:
            prefix = f"{k.name}:"
            if k.plural not in topics:
                self.guest_ids[k.name] = frozenset(t[len(prefix) :] for t in topics if t.startswith(prefix))

    async def next(self) -> Frame | Batch:
        return await self.queue.get()

    def __repr__(self) -> str:
        return f"<ws client {self.id} {self.peer}>"


class Hub:
    def __init__(
        self,
        store: Store,
        *,
        version: str,
        max_clients: int,
        queue_size: int,
        kinds: Sequence[GuestKind[Any, Any]] = KINDS,
        node_name: str | None = None,
        processes_top: int | None = None,
        fleet: bool = False,
    ) -> None:
        self.store = store
        self.version = version
        self.max_clients = max_clients
        self.queue_size = queue_size
        # The guest kinds whose sources run: the others' topics answer "monitoring is disabled".
        self.kinds = tuple(kinds)
        self.node_id = node_name if node_name is not None else node_id()
        # How many processes a ``Processes`` message carries ([processes] top); None: the process
        # source does not run, and its topics answer "process monitoring is disabled".
        self.processes_top = processes_top
        # Told in the hello: the dashboard shows its Fleet switch without probing the route.
        self.fleet = fleet
        self._clients: dict[int, Client] = {}
        self._next_id = 0
        # The hello is the same for everyone who connects between two ticks: encode it once.
        self._hello: tuple[tuple[object, ...], Frame] | None = None
        # Counters, for tests and logs.
        self.frames_encoded = 0
        self.dropped_slow = 0
        self.refused = 0
        self.gc_runs = 0
        self.gc_last_ms: float | None = None
        # Set after each node publish: pace_gc waits for it.
        self._node_published = asyncio.Event()

    # --- clients ---

    @property
    def clients(self) -> list[Client]:
        return list(self._clients.values())

    def connect(self, peer: str = "") -> Client | None:
        """A new client subscribed to every plain topic, with the hello first in its queue; None
        when ``max_clients`` are connected already."""
        if len(self._clients) >= self.max_clients:
            self.refused += 1
            log.info("WebSocket client %s refused: %d clients connected (max_ws_clients)", peer, len(self._clients))
            return None
        self._next_id += 1
        client = Client(self._next_id, peer, self.queue_size, DEFAULT_TOPICS)
        client.queue.put_nowait(self._hello_frame())
        self._clients[client.id] = client
        return client

    def disconnect(self, client: Client) -> None:
        self._clients.pop(client.id, None)
        client.ended.set()

    def drop(self, client: Client, code: int, reason: str) -> None:
        """Let go of a client at once; the route closes its connection with ``code`` and ``reason``."""
        if self._clients.pop(client.id, None) is None:
            return
        client.close_code, client.close_reason = code, reason
        client.ended.set()
        log.info("WebSocket client %s dropped (%d): %s", client.peer, code, reason)

    def _offer(self, client: Client, frame: Frame | Batch) -> None:
        if isinstance(frame, Reply) or client.queue.broadcast < self.queue_size:
            direct = client.direct
            if direct is not None and not isinstance(frame, Batch) and client.queue.empty() and direct(frame):
                return
            client.queue.put_nowait(frame)
        else:
            self.dropped_slow += 1
            self.drop(client, CLOSE_TOO_SLOW, f"too slow: {self.queue_size} messages waiting (ws_queue_size)")

    def _hello_frame(self) -> Frame:
        samples = {k.plural: k.latest_sample(self.store) for k in self.kinds}
        state = (self.store.node, *samples.values())
        h = self._hello
        if h is not None and len(h[0]) == len(state) and all(a is b for a, b in zip(h[0], state)):
            return h[1]
        by_kind = {k: samples[k.plural] for k in self.kinds}
        frame = Frame.of(
            HelloMessage(
                version=self.version,
                node_id=self.node_id,
                topics=sorted(DEFAULT_TOPICS),
                queue_size=self.queue_size,
                fleet=self.fleet,
                node=self.store.node,
                # Each kind's list under its plural ("containers": a ContainerList, "vms": a VmList).
                **{k.plural: k.listing(sample) for k, sample in by_kind.items() if sample is not None},  # type: ignore[arg-type]  # names computed per kind: mypy sees dict[str, Wire]
            )
        )
        self.frames_encoded += 1
        self._hello = (state, frame)
        return frame

    # --- what clients send ---

    def handle(self, client: Client, raw: str | bytes | None) -> None:
        """One message from a client. Anything it cannot act on is answered with an ``error``
        message; the connection and the subscription stay as they were."""
        # Bytes, as documented: a text frame arrives decoded, and a character may be 4 bytes of UTF-8.
        if raw is None or len(raw) > MAX_CLIENT_MESSAGE_BYTES or (isinstance(raw, str) and len(raw.encode()) > MAX_CLIENT_MESSAGE_BYTES):
            self._reply(client, ErrorMessage(error="message too large", detail={"max_bytes": MAX_CLIENT_MESSAGE_BYTES}))
            return
        try:
            obj = msgspec.json.decode(raw)
        except msgspec.DecodeError as e:
            self._reply(client, ErrorMessage(error="malformed JSON", detail=str(e)))
            return
        except RecursionError:  # arrays or objects nested past the parser's depth
            self._reply(client, ErrorMessage(error="malformed JSON", detail="JSON is nested too deeply"))
            return
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind not in CLIENT_TYPES:
            self._reply(
                client,
                ErrorMessage(
                    error="unknown message type",
                    detail={"type": kind if isinstance(kind, str) else None, "allowed": sorted(CLIENT_TYPES)},
                ),
            )
            return
        try:
            message = msgspec.convert(obj, CLIENT_TYPES[kind])
        except msgspec.ValidationError as e:
            self._reply(client, ErrorMessage(error="invalid message", detail=str(e)))
            return
        if isinstance(message, SubscribeMessage):
            self.subscribe(client, message.topics)

    def subscribe(self, client: Client, topics: Iterable[str]) -> None:
        """Replace the client's topics, all or nothing; answer ``subscribed`` or ``error``."""
        topics = list(topics)
        if len(topics) > MAX_TOPICS:
            self._reply(client, ErrorMessage(error="too many topics", detail={"topics": len(topics), "max_topics": MAX_TOPICS}))
            return
        resolved: set[str] = set()
        unknown: list[str] = []
        failed: tuple[str, TopicError] | None = None
        for t in topics:
            try:
                resolved.add(self._topic(t))
            except TopicError as e:
                if e.error == "unknown topic":
                    unknown.append(t)
                elif failed is None:
                    failed = (t, e)
        if unknown:
            self._reply(
                client,
                ErrorMessage(error="unknown topic", detail={"unknown": unknown, "allowed": [*PLAIN_TOPICS, "container:<id>", "vm:<id>"]}),
            )
        elif failed is not None:
            # The first topic that could not be resolved, with the reason as the REST routes give it.
            bad, error = failed
            detail = {"topic": bad, **error.detail} if isinstance(error.detail, dict) else {"topic": bad, "detail": error.detail}
            self._reply(client, ErrorMessage(error=error.error, detail=detail))
        else:
            client.set_topics(frozenset(resolved))
            self._reply(client, SubscribedMessage(topics=sorted(resolved)))

    def _topic(self, topic: object) -> str:
        if not isinstance(topic, str):
            raise TopicError("unknown topic")
        if topic in PROCESS_TOPICS and self.processes_top is None:
            raise TopicError("process monitoring is disabled", {"setting": "processes.enabled"})
        if topic in PLAIN_TOPICS:
            return topic
        kind, sep, ref = topic.partition(":")
        if not sep or not ref:
            raise TopicError("unknown topic")
        guest_kind = next((k for k in KINDS if k.name == kind), None)
        if guest_kind is None:
            raise TopicError("unknown topic")
        if guest_kind not in self.kinds:
            raise TopicError(f"{guest_kind.label} monitoring is disabled", {"setting": guest_kind.setting})
        # As the REST routes resolve it: a container by id, unique prefix or name; a VM by UUID, QMP id or name.
        try:
            return f"{kind}:{guest_kind.resolve(guest_kind.latest(self.store), ref).id}"
        except GuestLookupError as e:
            raise TopicError(e.error, e.detail) from None

    def _reply(self, client: Client, message: WsMessage) -> None:
        if client.id in self._clients:
            self._offer(client, Reply(encoder.encode(message)))

    # --- what the sources publish (a listener on the sample bus) ---

    def on_sample(self, sample: NodeMetrics | ContainersSample | VmsSample | VmStatusChangedMessage | ProcessesSample) -> None:
        if isinstance(sample, ProcessesSample):
            self.publish_processes(sample)
        elif isinstance(sample, NodeMetrics):
            self.publish_node(sample)
        elif isinstance(sample, VmStatusChangedMessage):
            self.publish_vm_status(sample)
        else:
            self.publish_guests(next(k for k in KINDS if isinstance(sample, k.sample_type)), sample)

    def publish_node(self, sample: NodeMetrics) -> None:
        """Topic ``node``: one NodeMetrics message, encoded once, to every subscriber."""
        self._node_published.set()
        subscribers = [c for c in self._clients.values() if "node" in c.topics]
        if not subscribers:
            return
        frame = Frame.of(
            NodeMetricsMessage(
                node_id=self.node_id,
                timestamp=sample.timestamp,
                cpu_usage=sample.cpu_usage,
                memory_usage=sample.memory_usage,
                disk_usage=sample.disk_usage,
                load_averages=(sample.load_average_1m, sample.load_average_5m, sample.load_average_15m),
                sample=sample,
            )
        )
        self.frames_encoded += 1
        for c in subscribers:
            self._offer(c, frame)

    def publish_guests(self, kind: GuestKind[Any, Any], sample: Any) -> None:
        """One guest sample of ``kind`` (containers shown; VMs the same with ``vm``):

        - topic ``containers``: the kind's message of every guest (one ContainerMetrics message
          with all of them; for VMs a VmMetrics message per VM, all in one queue entry, a Batch);
        - topic ``container:<id>`` (for clients not on ``containers``): that guest's message,
          encoded once however many clients want it (for VMs the very Frame of the Batch);
        - topic ``containers.summary``: one summary message, every guest's list entry.

        In that order. Each message is encoded once, and only if somebody wants it."""
        everything: list[Client] = []
        summary: list[Client] = []
        per_guest: dict[str, list[Client]] = {}
        summary_topic = f"{kind.plural}.summary"
        for c in self._clients.values():
            if kind.plural in c.topics:
                everything.append(c)
            else:
                for gid in c.guest_ids.get(kind.name, ()):
                    per_guest.setdefault(gid, []).append(c)
            if summary_topic in c.topics:
                summary.append(c)
        guests = kind.guests(sample)
        frames: dict[str, Frame] = {}
        if everything:
            if kind.all_message is not None:
                self._fan_out(everything, kind.all_message(self.node_id, sample))
            else:
                batch = Batch(Frame.of(m) for g in guests if (m := kind.guest_message(self.node_id, sample, g, g.id)) is not None)
                self.frames_encoded += len(batch)
                if batch:
                    for c in everything:
                        self._offer(c, batch)
                frames = {g.id: f for g, f in zip(guests, batch)}
        if summary:
            self._fan_out(summary, kind.summary_message(self.node_id, sample))
        if per_guest:
            by_id = {g.id: g for g in guests}
            for gid, clients in per_guest.items():
                frame = frames.get(gid)
                if frame is None:
                    message = kind.guest_message(self.node_id, sample, by_id.get(gid), gid)
                    if message is None:
                        continue
                    frame = Frame.of(message)
                    self.frames_encoded += 1
                for c in clients:
                    self._offer(c, frame)

    def publish_processes(self, sample: ProcessesSample) -> None:
        """Topic ``processes``: the top processes (the sample lists them by CPU, highest first);
        topic ``users``: every user. Each encoded once, if somebody wants it."""
        on_processes = [c for c in self._clients.values() if "processes" in c.topics]
        on_users = [c for c in self._clients.values() if "users" in c.topics]
        interval = sample.interval_secs
        if on_processes:
            top = sample.processes[: self.processes_top if self.processes_top is not None else 0]
            message: WsMessage = ProcessesMessage(
                node_id=self.node_id,
                timestamp=sample.timestamp,
                interval_secs=interval,
                host=sample.host,
                status=sample.status,
                total=sample.total,
                processes=top,
            )
            self._fan_out(on_processes, message)
        if on_users:
            message = UsersMessage(node_id=self.node_id, timestamp=sample.timestamp, interval_secs=interval, status=sample.status, users=sample.users)
            self._fan_out(on_users, message)

    def publish_vm_status(self, message: VmStatusChangedMessage) -> None:
        """A VM appeared, changed state or vanished: to ``vms``, ``vms.summary`` (a table wants to
        know at once, not at the next sample) and ``vm:<id>``."""
        self.publish(message, ("vms", "vms.summary", f"vm:{message.vm_id}"))

    def _fan_out(self, clients: list[Client], message: WsMessage) -> None:
        frame = Frame.of(message)
        self.frames_encoded += 1
        for c in clients:
            self._offer(c, frame)

    # --- garbage collection ---

    async def pace_gc(self, every: float = GC_EVERY_SECS, after: float = GC_AFTER_PUBLISH_SECS) -> None:
        """Run for the server's life (a lifespan task): full collections at a moment of the hub's
        choosing instead of in the middle of a fan-out (see the module docstring). Undone when
        cancelled."""
        _gc_pacing_start()
        try:
            while True:
                await asyncio.sleep(every)
                self._node_published.clear()
                # No node sample for a whole period (its source is failing): collect anyway.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._node_published.wait(), every)
                    await asyncio.sleep(after)
                started = time.perf_counter()
                gc.collect()
                self.gc_runs += 1
                self.gc_last_ms = (time.perf_counter() - started) * 1000
                log.debug("full garbage collection: %.1f ms, %d clients", self.gc_last_ms, len(self._clients))
        finally:
            _gc_pacing_stop()

    def publish(self, message: WsMessage, topics: Iterable[str]) -> None:
        """``message``, encoded once, to every client subscribed to any of ``topics`` (each client
        gets it once): VM status changes, alerts."""
        wanted = frozenset(topics)
        subscribers = [c for c in self._clients.values() if not wanted.isdisjoint(c.topics)]
        if not subscribers:
            return
        frame = Frame.of(message)
        self.frames_encoded += 1
        for c in subscribers:
            self._offer(c, frame)
