"""``/ws``: the WebSocket endpoint. The protocol is in docs/websocket.md; the fan-out is the hub's.

Per connection, three things run together and end together: a sender that moves Frames from the
client's bounded queue to the socket, a receiver that hands what the client sends to the hub, and
a watch on the hub letting go of the client (too slow). The first to finish cancels the others.
Under ``hvstat serve`` each Frame goes out as one WebSocket frame built once for every client
(``_Writer``): written straight to the socket, by the hub itself when the client's queue is empty.
A sender stuck on a socket that does not drain is cancelled before it wrote anything, so the close
frame can follow. Keepalive pings are uvicorn's (``ws_ping_interval`` / ``ws_ping_timeout``, 20 s
each by default): a peer that stops answering is disconnected by the server, which ends the
receiver here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from hvstat.api.auth import authenticate_websocket
from hvstat.api.transport import WRITE_FRAME, text_frame
from hvstat.hub import CLOSE_TOO_MANY, Batch, Client, Frame, Hub
from hvstat.models import CLIENT_MESSAGES, SERVER_MESSAGES
from hvstat.state import AppState

log = logging.getLogger(__name__)

# How long closing a dropped client may wait for its socket to take the close frame. A peer that
# reads nothing never takes it; the connection is then left to the transport to tear down.
CLOSE_TIMEOUT_SECS = 5.0


def _wire(frame: Frame) -> bytes:
    wire = frame.wire
    if wire is None:
        wire = frame.wire = text_frame(frame.data)
    return wire


class _Writer:
    """The fast path of one connection (api/transport.WebSocketProtocol.write_frame): a Frame's
    prebuilt WebSocket frame written to the socket at once, by the hub when nothing waits in the
    client's queue (``Client.direct``) and by the sender task otherwise; a socket that has no room
    takes the ASGI way, which waits for it. ``busy`` while the sender waits so: nothing may
    overtake that frame."""

    __slots__ = ("write", "busy")

    def __init__(self, write: Callable[[bytes], bool]) -> None:
        self.write = write
        self.busy = False

    def __call__(self, frame: Frame) -> bool:
        return not self.busy and self.write(_wire(frame))


async def _send(websocket: WebSocket, client: Client, writer: _Writer | None) -> None:
    while True:
        item = await client.next()
        for frame in item if isinstance(item, Batch) else (item,):
            if writer is None:
                await websocket.send_text(frame.text)
            elif not writer.write(_wire(frame)):
                writer.busy = True
                await websocket.send_text(frame.text)
                writer.busy = False


async def _receive(websocket: WebSocket, hub: Hub, client: Client) -> None:
    while True:
        # Not while the replies to its earlier messages wait (hub.MAX_PENDING_REPLIES): a burst is
        # held back by TCP, not answered into the queue the broadcast is bounded by.
        await client.queue.reply_room.wait()
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        hub.handle(client, text if text is not None else message.get("bytes"))


async def ws_endpoint(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.hvstat
    hub = state.hub
    peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    await websocket.accept()
    # Tokens (hvstat/api/auth.py): checked after the accept so that a refusal's close code and
    # reason reach a browser; before hub.connect, so an unauthenticated peer takes no slot.
    if not await authenticate_websocket(websocket):
        return
    client = hub.connect(peer)
    if client is None:
        # Accept-then-close rather than an HTTP 503: a browser sees the code and the reason.
        await websocket.close(CLOSE_TOO_MANY, f"too many clients (max_ws_clients = {hub.max_clients}); try again later")
        return
    write = websocket.scope.get("extensions", {}).get(WRITE_FRAME)  # hvstat serve's protocol; not in TestClient
    writer = _Writer(write) if write is not None else None
    client.direct = writer
    sender = asyncio.create_task(_send(websocket, client, writer), name=f"ws-send-{client.id}")
    receiver = asyncio.create_task(_receive(websocket, hub, client), name=f"ws-receive-{client.id}")
    ended = asyncio.create_task(client.ended.wait(), name=f"ws-ended-{client.id}")
    tasks = (sender, receiver, ended)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.disconnect(client)
        for t in tasks:
            t.cancel()
        # asyncio.wait, not gather: if this handler is being cancelled (server shutdown), that
        # cancellation must propagate as it came, not as the CancelledError of a child task.
        await asyncio.wait(tasks)
        for t in tasks:
            if not t.cancelled():
                t.exception()  # retrieved: a send that failed because the peer left is expected
    peer_left = receiver.done() and not receiver.cancelled() and receiver.exception() is None
    if client.close_code is not None and not peer_left:
        # Dropped by the hub: say why. Bounded, since a peer that reads nothing never drains.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(client.close_code, client.close_reason), CLOSE_TIMEOUT_SECS)
    elif sender.done() and not sender.cancelled() and sender.exception() is not None:
        log.debug("WebSocket client %s: send failed: %r", peer, sender.exception())


def schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schemas of docs/websocket.md: one per message (by class name) and the definitions
    they share (``#/$defs/...``), generated from the msgspec models. Descriptions are docstrings
    with their indentation removed, so the text does not depend on the Python version."""
    messages = (*SERVER_MESSAGES, *CLIENT_MESSAGES)
    _, components = msgspec.json.schema_components(messages, ref_template="#/$defs/{name}")
    for schema in components.values():
        if "description" in schema:
            schema["description"] = inspect.cleandoc(schema["description"])
    per_message = {m.__name__: components.pop(m.__name__) for m in messages}
    return per_message, components


routes = [WebSocketRoute("/ws", ws_endpoint)]
