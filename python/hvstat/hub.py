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
- Runs on the event loop only: the sources publish from their tick's done-callback (after the
  store was written), the route calls ``connect``/``handle``/``disconnect``.

The hub knows nothing of WebSocket framing: ``api/ws.py`` moves Frames between queues and sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import time
from collections.abc import Callable, Iterable

import msgspec

from hvstat.models import (
    CLIENT_MESSAGES,
    ContainerList,
    ContainerMetricsMessage,
    ContainersSample,
    ContainersSummaryMessage,
    ErrorMessage,
    HelloMessage,
    NodeMetrics,
    NodeMetricsMessage,
    SubscribedMessage,
    SubscribeMessage,
    VmList,
    VmMetrics,
    VmMetricsMessage,
    VmsSample,
    VmStatusChangedMessage,
    VmsSummaryMessage,
    WsMessage,
    container_summary,
    encoder,
    vm_summary,
)
from hvstat.store import Store

log = logging.getLogger(__name__)

# Topics without an argument; "container:<ref>" and "vm:<ref>" narrow "containers" and "vms".
PLAIN_TOPICS = ("node", "containers", "containers.summary", "vms", "vms.summary", "alerts")
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


def node_id() -> str:
    """The node's name in every message: the hostname, as `hostname` prints it."""
    return socket.gethostname()


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

    __slots__ = ("data", "text")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.text = data.decode()

    @classmethod
    def of(cls, message: WsMessage) -> Frame:
        return cls(encoder.encode(message))


class Batch(tuple):  # type: ignore[type-arg]
    """Frames that take one slot of a client's queue and are sent in a row: one VM sample on the
    ``vms`` topic (a VmMetrics message per VM)."""

    __slots__ = ()


class TopicError(Exception):
    """A topic that cannot be subscribed to; ``error`` and ``detail`` go into the error message."""

    def __init__(self, error: str, detail: object = None) -> None:
        super().__init__(error)
        self.error, self.detail = error, detail


class Client:
    """One connection as the hub sees it: its topics and its bounded queue of Frames."""

    __slots__ = ("id", "peer", "topics", "container_ids", "vm_ids", "queue", "ended", "close_code", "close_reason")

    def __init__(self, cid: int, peer: str, queue_size: int, topics: frozenset[str]) -> None:
        self.id, self.peer = cid, peer
        self.queue: asyncio.Queue[Frame | Batch] = asyncio.Queue(queue_size)
        # Set when the hub lets go of the client (dropped, or disconnected).
        self.ended = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.set_topics(topics)

    def set_topics(self, topics: frozenset[str]) -> None:
        self.topics = topics
        # Per-container messages are for clients that do not get them all already.
        self.container_ids = (
            frozenset() if "containers" in topics else frozenset(t[10:] for t in topics if t.startswith("container:"))
        )
        self.vm_ids = frozenset() if "vms" in topics else frozenset(t[3:] for t in topics if t.startswith("vm:"))

    async def next(self) -> Frame | Batch:
        return await self.queue.get()

    def __repr__(self) -> str:
        return f"<ws client {self.id} {self.peer}>"


def vm_list(sample: VmsSample) -> VmList:
    """``GET /api/vms`` without filters, from a VM sample."""
    return VmList(
        timestamp=sample.timestamp,
        interval_secs=sample.interval_secs,
        host_cpus=sample.host_cpus,
        vms=[vm_summary(v) for v in sample.vms],
        unavailable=sample.unavailable,
    )


def container_list(sample: ContainersSample) -> ContainerList:
    """``GET /api/containers`` without filters, from a container sample."""
    return ContainerList(
        timestamp=sample.timestamp,
        interval_secs=sample.interval_secs,
        host_cpus=sample.host_cpus,
        containers=[
            container_summary(c)
            for c in sample.containers
        ],
        unavailable=sample.unavailable,
    )


class Hub:
    def __init__(
        self,
        store: Store,
        *,
        version: str,
        max_clients: int,
        queue_size: int,
        containers_enabled: bool = True,
        vms_enabled: bool = True,
        resolve_container: Callable[[str], str] | None = None,
        resolve_vm: Callable[[str], str] | None = None,
        node_name: str | None = None,
    ) -> None:
        self.store = store
        self.version = version
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.containers_enabled = containers_enabled
        self.vms_enabled = vms_enabled
        self.node_id = node_name if node_name is not None else node_id()
        self._resolve_container = resolve_container or self._resolve_exact
        self._resolve_vm = resolve_vm or self._resolve_vm_exact
        self._clients: dict[int, Client] = {}
        self._next_id = 0
        # The hello is the same for everyone who connects between two ticks: encode it once.
        self._hello: tuple[object, object, object, Frame] | None = None
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
        try:
            client.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped_slow += 1
            self.drop(client, CLOSE_TOO_SLOW, f"too slow: {self.queue_size} messages waiting (ws_queue_size)")

    def _hello_frame(self) -> Frame:
        node, containers, vms = self.store.node, self.store.containers_sample, self.store.vms_sample
        h = self._hello
        if h is not None and h[0] is node and h[1] is containers and h[2] is vms:
            return h[3]
        frame = Frame.of(
            HelloMessage(
                version=self.version,
                node_id=self.node_id,
                topics=sorted(DEFAULT_TOPICS),
                queue_size=self.queue_size,
                node=node,
                containers=container_list(containers) if containers is not None and self.containers_enabled else None,
                vms=vm_list(vms) if vms is not None and self.vms_enabled else None,
            )
        )
        self.frames_encoded += 1
        self._hello = (node, containers, vms, frame)
        return frame

    # --- what clients send ---

    def handle(self, client: Client, raw: str | bytes | None) -> None:
        """One message from a client. Anything it cannot act on is answered with an ``error``
        message; the connection and the subscription stay as they were."""
        if raw is None or len(raw) > MAX_CLIENT_MESSAGE_BYTES:
            self._reply(client, ErrorMessage(error="message too large", detail={"max_bytes": MAX_CLIENT_MESSAGE_BYTES}))
            return
        try:
            obj = msgspec.json.decode(raw)
        except msgspec.DecodeError as e:
            self._reply(client, ErrorMessage(error="malformed JSON", detail=str(e)))
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
            t, e = failed
            detail = {"topic": t, **e.detail} if isinstance(e.detail, dict) else {"topic": t, "detail": e.detail}
            self._reply(client, ErrorMessage(error=e.error, detail=detail))
        else:
            client.set_topics(frozenset(resolved))
            self._reply(client, SubscribedMessage(topics=sorted(resolved)))

    def _topic(self, topic: object) -> str:
        if not isinstance(topic, str):
            raise TopicError("unknown topic")
        if topic in PLAIN_TOPICS:
            return topic
        kind, sep, ref = topic.partition(":")
        if not sep or not ref:
            raise TopicError("unknown topic")
        if kind == "container":
            if not self.containers_enabled:
                raise TopicError("container monitoring is disabled", {"setting": "containers.enabled"})
            return "container:" + self._resolve_container(ref)
        if kind == "vm":
            if not self.vms_enabled:
                raise TopicError("VM monitoring is disabled", {"setting": "vms.enabled"})
            return "vm:" + self._resolve_vm(ref)
        raise TopicError("unknown topic")

    def _resolve_exact(self, ref: str) -> str:
        if ref in self.store.containers:
            return ref
        raise TopicError("no such container", {"ref": ref})

    def _resolve_vm_exact(self, ref: str) -> str:
        if ref in self.store.vms:
            return ref
        raise TopicError("no such VM", {"ref": ref})

    def _reply(self, client: Client, message: WsMessage) -> None:
        if client.id in self._clients:
            self._offer(client, Frame.of(message))

    # --- what the sources publish ---

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

    def publish_containers(self, sample: ContainersSample) -> None:
        """Topic ``containers``: one ContainerMetrics message with every container. Topic
        ``container:<id>`` (for clients not on ``containers``): one message per subscribed
        container, encoded once however many clients want it. Topic ``containers.summary``: one
        ContainersSummary message."""
        everything: list[Client] = []
        summary: list[Client] = []
        per_container: dict[str, list[Client]] = {}
        for c in self._clients.values():
            topics = c.topics
            if "containers" in topics:
                everything.append(c)
            else:
                for cid in c.container_ids:
                    per_container.setdefault(cid, []).append(c)
            if "containers.summary" in topics:
                summary.append(c)
        if everything:
            self._fan_out(
                everything,
                ContainerMetricsMessage(
                    node_id=self.node_id,
                    timestamp=sample.timestamp,
                    interval_secs=sample.interval_secs,
                    host_cpus=sample.host_cpus,
                    containers=sample.containers,
                    vanished=sample.vanished,
                    unavailable=sample.unavailable,
                ),
            )
        if summary:
            self._fan_out(
                summary,
                ContainersSummaryMessage(
                    node_id=self.node_id,
                    timestamp=sample.timestamp,
                    interval_secs=sample.interval_secs,
                    host_cpus=sample.host_cpus,
                    containers=[container_summary(c) for c in sample.containers],
                    unavailable=sample.unavailable,
                ),
            )
        if not per_container:
            return
        by_id = {c.id: c for c in sample.containers}
        vanished = set(sample.vanished)
        for cid, clients in per_container.items():
            container = by_id.get(cid)
            if container is None and cid not in vanished:
                continue  # not there now (it vanished earlier and has not come back)
            self._fan_out(
                clients,
                ContainerMetricsMessage(
                    node_id=self.node_id,
                    timestamp=sample.timestamp,
                    interval_secs=sample.interval_secs,
                    host_cpus=sample.host_cpus,
                    containers=[container] if container is not None else [],
                    vanished=[] if container is not None else [cid],
                ),
            )

    def _vm_message(self, vm: VmMetrics) -> VmMetricsMessage:
        return VmMetricsMessage(
            node_id=self.node_id,
            timestamp=vm.timestamp,
            vm_id=vm.id,
            name=vm.name,
            cpu_usage=vm.cpu_usage_percent,
            memory_usage=vm.memory_usage_percent,
            disk_read=vm.disk_read_bytes_per_sec,
            disk_write=vm.disk_write_bytes_per_sec,
            network_rx=vm.network_rx_bytes_per_sec,
            network_tx=vm.network_tx_bytes_per_sec,
            sample=vm,
        )

    def publish_vms(self, sample: VmsSample) -> None:
        """Topic ``vms``: a VmMetrics message per VM, all of one sample in one queue entry (a
        Batch). Topic ``vm:<id>`` (for clients not on ``vms``): that VM's message, the same
        Frame. Each VM's message is encoded once, and only if somebody wants it. Topic
        ``vms.summary``: one VmsSummary message. A VM that vanished gets no VmMetrics; its
        VmStatusChanged (``vanished``) comes through ``publish_vm_status``."""
        everything: list[Client] = []
        summary: list[Client] = []
        per_vm: dict[str, list[Client]] = {}
        for c in self._clients.values():
            topics = c.topics
            if "vms" in topics:
                everything.append(c)
            else:
                for vid in c.vm_ids:
                    per_vm.setdefault(vid, []).append(c)
            if "vms.summary" in topics:
                summary.append(c)
        if everything:
            batch = Batch(Frame.of(self._vm_message(vm)) for vm in sample.vms)
            self.frames_encoded += len(batch)
            if batch:
                for c in everything:
                    self._offer(c, batch)
            if per_vm:
                by_id = {f_vm.id: f for f_vm, f in zip(sample.vms, batch)}
                for vid, clients in per_vm.items():
                    frame = by_id.get(vid)
                    if frame is not None:
                        for c in clients:
                            self._offer(c, frame)
        elif per_vm:
            by_vm = {vm.id: vm for vm in sample.vms}
            for vid, clients in per_vm.items():
                vm = by_vm.get(vid)
                if vm is not None:
                    self._fan_out(clients, self._vm_message(vm))
        if summary:
            self._fan_out(
                summary,
                VmsSummaryMessage(
                    node_id=self.node_id,
                    timestamp=sample.timestamp,
                    interval_secs=sample.interval_secs,
                    host_cpus=sample.host_cpus,
                    vms=[vm_summary(v) for v in sample.vms],
                    unavailable=sample.unavailable,
                ),
            )

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
