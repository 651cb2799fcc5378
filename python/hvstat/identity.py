"""Who this node is, in every message and series hvstat sends."""

from __future__ import annotations

import socket


def node_id() -> str:
    """The node's name in every message: the hostname, as `hostname` prints it."""
    return socket.gethostname()
