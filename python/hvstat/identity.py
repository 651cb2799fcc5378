"""Who this node is, in every message and series hvstat sends: its name (``[server] node_name``,
by default the hostname), the operator's ``[labels]``, and the machine id of /etc/machine-id.

The name is the ``node_id`` of every /ws message, the ``node`` label of ``hvstat_node_info`` and
of every remote-write series; two nodes with one hostname get different names here instead of
colliding on the receiver. The machine id tells a renamed node from a new one; it is read, never
made up: without a readable, well-formed /etc/machine-id it is null with the reason."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

from hvstat.models import NodeInfo

MACHINE_ID_PATH = "/etc/machine-id"
# machine-id(5): 32 lower-case hexadecimal characters and a newline. "uninitialized" (systemd's
# first boot) and an empty file are not an id.
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")
# A node name is a label value, a path segment of the fleet view's URLs and a word in log lines:
# letters, digits and . _ - (every host name qualifies), starting with a letter or digit.
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NODE_NAME_MAX = 253  # a fully qualified host name's limit (RFC 1035)
# Prometheus label names (data model); a leading "__" is reserved for Prometheus itself.
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
LABEL_VALUE_MAX = 1024
MAX_LABELS = 32


def hostname() -> str:
    """The hostname, as `hostname` prints it: the default node name."""
    return socket.gethostname()


def node_id() -> str:
    """The default node name (the hostname); the configured one is ``[server] node_name``."""
    return hostname()


def node_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a node name, or None."""
    if not name:
        return "empty"
    if len(name) > NODE_NAME_MAX:
        return f"{len(name)} characters, more than {NODE_NAME_MAX}"
    if NODE_NAME.fullmatch(name) is None:
        return f"{name!r} has characters other than letters, digits, '.', '_' and '-' (or does not start with a letter or digit)"
    return None


def label_problem(name: str, value: object) -> str | None:
    """Why ``name = value`` cannot be a ``[labels]`` entry, or None. (Clashes with hvstat's own
    label names are checked by hvstat.config, which knows the series model.)"""
    if LABEL_NAME.fullmatch(name) is None:
        return f"{name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
    if name.startswith("__"):
        return f"{name!r}: names starting with '__' are reserved for Prometheus"
    if not isinstance(value, str):
        return f"the value of {name!r} must be a string"
    if not value:
        return f"the value of {name!r} is empty (Prometheus takes an empty label for no label)"
    if len(value) > LABEL_VALUE_MAX:
        return f"the value of {name!r} is longer than {LABEL_VALUE_MAX} characters"
    return None


@dataclass(frozen=True)
class MachineId:
    """/etc/machine-id: the id, or None and why."""

    value: str | None
    error: str | None = None


def read_machine_id(path: str = MACHINE_ID_PATH) -> MachineId:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(4096)
    except FileNotFoundError:
        return MachineId(None, f"{path} does not exist")
    except OSError as e:
        return MachineId(None, f"cannot read {path}: {e.strerror or e}")
    text = raw.decode("ascii", "replace").strip()
    if _MACHINE_ID.fullmatch(text) is None:
        shown = text[:40] + ("..." if len(text) > 40 else "")
        return MachineId(None, f"{path} holds no machine id (32 hex digits): {shown!r}")
    return MachineId(text)


@dataclass(frozen=True)
class NodeIdentity:
    """What identifies this node on every outlet."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    machine_id: MachineId = field(default_factory=lambda: MachineId(None, "not read"))

    @classmethod
    def of(cls, node_name: str | None, labels: dict[str, str], machine_id_path: str = MACHINE_ID_PATH) -> NodeIdentity:
        """``[server] node_name`` (None: the hostname) and ``[labels]``, sorted by name; the
        machine id read now."""
        return cls(node_name or hostname(), tuple(sorted(labels.items())), read_machine_id(machine_id_path))

    def external_labels(self) -> tuple[tuple[str, str], ...]:
        """The labels remote write adds to every series: ``node`` and the ``[labels]``."""
        return (("node", self.name), *self.labels)

    def info(self) -> NodeInfo:
        """For ``GET /health``."""
        mid = self.machine_id
        return NodeInfo(
            name=self.name,
            machine_id=mid.value,
            labels=dict(self.labels),
            unavailable={} if mid.error is None else {"machine_id": mid.error},
        )
