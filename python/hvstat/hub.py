"""The hub: fans the sources' samples out to the ``/ws`` clients (protocol: docs/websocket.md).

- **Encode once.** A sample becomes one message, encoded once by msgspec into a ``Frame``; the same
  Frame object (its bytes, and the one ``str`` of them that ASGI text frames take) goes into the
  queue of every client subscribed to it. A per-container message (topic ``container:<id>``) is
  encoded once per tick too, and only for containers somebody subscribed to.
- **Bounded queue per client.** Publishing never waits: a Frame is put into each queue without
  blocking. A client whose queue is full (``monitoring.ws_queue_size`` messages waiting, after the
  socket's own buffers filled up) is dropped on the spot: it leaves the hub, its connection is
  closed with 1008 and a reason, and the others never wait for it.
- **max_ws_clients.** ``connect`` refuses the client past the limit; the route closes it with
  1013 ("try again later") and a reason.
- Runs on the event loop only: the sources publish from their tick's done-callback (after the
  store was written), the route calls ``connect``/``handle``/``disconnect``.

The hub knows nothing of WebSocket framing: ``api/ws.py`` moves Frames between queues and sockets.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable

import msgspec

from hvstat.models import (
    CLIENT_MESSAGES,
    ContainerList,
    ContainerMetricsMessage,
    ContainersSample,
    ErrorMessage,
    HelloMessage,
    NodeMetrics,
    NodeMetricsMessage,
    SubscribedMessage,
    SubscribeMessage,
    WsMessage,
    container_summary,
    encoder,
)
from hvstat.store import Store

log = logging.getLogger(__name__)

# Topics without an argument; "container:<ref>" and "vm:<id>" narrow "containers" and "vms".
PLAIN_TOPICS = ("node", "containers", "vms", "alerts")
DEFAULT_TOPICS = frozenset(PLAIN_TOPICS)
# Limits on what a client may send: plenty for a dashboard, small enough to answer cheaply.
MAX_TOPICS = 1000
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024
CLOSE_TOO_SLOW = 1008  # policy violation: it did not keep up with its bounded queue
CLOSE_TOO_MANY = 1013  # try again later: max_ws_clients reached
CLIENT_TYPES = {m.__struct_config__.tag: m for m in CLIENT_MESSAGES}


def node_id() -> str:
    """The node's name in every message: the hostname, as `hostname` prints it."""
    return socket.gethostname()


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


class TopicError(Exception):
    """A topic that cannot be subscribed to; ``error`` and ``detail`` go into the error message."""

    def __init__(self, error: str, detail: object = None) -> None:
        super().__init__(error)
        self.error, self.detail = error, detail


class Client:
    """One connection as the hub sees it: its topics and its bounded queue of Frames."""

    __slots__ = ("id", "peer", "topics", "container_ids", "queue", "ended", "close_code", "close_reason")

    def __init__(self, cid: int, peer: str, queue_size: int, topics: frozenset[str]) -> None:
        self.id, self.peer = cid, peer
        self.queue: asyncio.Queue[Frame] = asyncio.Queue(queue_size)
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

    async def next(self) -> Frame:
        return await self.queue.get()

    def __repr__(self) -> str:
        return f"<ws client {self.id} {self.peer}>"


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
        resolve_container: Callable[[str], str] | None = None,
        node_name: str | None = None,
    ) -> None:
        self.store = store
        self.version = version
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.containers_enabled = containers_enabled
        self.node_id = node_name if node_name is not None else node_id()
        self._resolve_container = resolve_container or self._resolve_exact
        self._clients: dict[int, Client] = {}
        self._next_id = 0
        # The hello is the same for everyone who connects between two ticks: encode it once.
        self._hello: tuple[object, object, Frame] | None = None
        # Counters, for tests and logs.
        self.frames_encoded = 0
        self.dropped_slow = 0
        self.refused = 0

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

    def _offer(self, client: Client, frame: Frame) -> None:
        try:
            client.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped_slow += 1
            self.drop(client, CLOSE_TOO_SLOW, f"too slow: {self.queue_size} messages waiting (ws_queue_size)")

    def _hello_frame(self) -> Frame:
        node, containers = self.store.node, self.store.containers_sample
        if self._hello is not None and self._hello[0] is node and self._hello[1] is containers:
            return self._hello[2]
        frame = Frame.of(
            HelloMessage(
                version=self.version,
                node_id=self.node_id,
                topics=sorted(DEFAULT_TOPICS),
                queue_size=self.queue_size,
                node=node,
                containers=container_list(containers) if containers is not None and self.containers_enabled else None,
            )
        )
        self.frames_encoded += 1
        self._hello = (node, containers, frame)
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
            # No VM source yet: nothing is published on it, but the topic is part of the protocol.
            return topic
        raise TopicError("unknown topic")

    def _resolve_exact(self, ref: str) -> str:
        if ref in self.store.containers:
            return ref
        raise TopicError("no such container", {"ref": ref})

    def _reply(self, client: Client, message: WsMessage) -> None:
        if client.id in self._clients:
            self._offer(client, Frame.of(message))

    # --- what the sources publish ---

    def publish_node(self, sample: NodeMetrics) -> None:
        """Topic ``node``: one NodeMetrics message, encoded once, to every subscriber."""
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
        container, encoded once however many clients want it."""
        everything: list[Client] = []
        per_container: dict[str, list[Client]] = {}
        for c in self._clients.values():
            if "containers" in c.topics:
                everything.append(c)
            else:
                for cid in c.container_ids:
                    per_container.setdefault(cid, []).append(c)
        if everything:
            frame = Frame.of(
                ContainerMetricsMessage(
                    node_id=self.node_id,
                    timestamp=sample.timestamp,
                    interval_secs=sample.interval_secs,
                    host_cpus=sample.host_cpus,
                    containers=sample.containers,
                    vanished=sample.vanished,
                    unavailable=sample.unavailable,
                )
            )
            self.frames_encoded += 1
            for c in everything:
                self._offer(c, frame)
        if not per_container:
            return
        by_id = {c.id: c for c in sample.containers}
        vanished = set(sample.vanished)
        for cid, clients in per_container.items():
            container = by_id.get(cid)
            if container is None and cid not in vanished:
                continue  # not there now (it vanished earlier and has not come back)
            frame = Frame.of(
                ContainerMetricsMessage(
                    node_id=self.node_id,
                    timestamp=sample.timestamp,
                    interval_secs=sample.interval_secs,
                    host_cpus=sample.host_cpus,
                    containers=[container] if container is not None else [],
                    vanished=[] if container is not None else [cid],
                )
            )
            self.frames_encoded += 1
            for c in clients:
                self._offer(c, frame)

    def publish(self, message: WsMessage, topics: Iterable[str]) -> None:
        """For the producers to come (VMs, alerts): ``message``, encoded once, to every client
        subscribed to any of ``topics`` (each client gets it once)."""
        wanted = frozenset(topics)
        subscribers = [c for c in self._clients.values() if not wanted.isdisjoint(c.topics)]
        if not subscribers:
            return
        frame = Frame.of(message)
        self.frames_encoded += 1
        for c in subscribers:
            self._offer(c, frame)
