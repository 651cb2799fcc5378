"""Golden samples of the fixture hosts: sample a scenario twice and mask what does not come from the
fixture tree (wall time, elapsed time, and statvfs(2) of this machine's filesystems, which is what a
fixture's mount points resolve to).

Shared by tests/test_fixtures.py and tests/update_golden.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import scenario_config

# Replaces a value that depends on this machine or the clock, not on the fixture. A null stays
# null: whether a value is known is part of what the golden checks.
MASK = "<masked: host or time>"
FIXTURE_ROOT = "<fixture>"

# Per filesystem: everything that comes from statvfs of <fixture>/<mount point>, i.e. this host.
STATVFS_FIELDS = (
    "size_bytes",
    "used_bytes",
    "avail_bytes",
    "used_percent",
    "inodes_total",
    "inodes_used",
    "inodes_free",
    "inodes_used_percent",
)
# Top level: wall-clock time, monotonic elapsed time, and statvfs of the fixture root (this host).
TOP_LEVEL_MASKED = ("timestamp", "interval_secs", "disk_usage")


def expected_path(root: Path) -> Path:
    return root / "expected.json"


def _mask(v: Any) -> Any:
    return None if v is None else MASK


def _replace_root(v: Any, root: str) -> Any:
    if isinstance(v, str):
        return v.replace(root, FIXTURE_ROOT)
    if isinstance(v, dict):
        return {_replace_root(k, root): _replace_root(x, root) for k, x in v.items()}
    if isinstance(v, list):
        return [_replace_root(x, root) for x in v]
    return v


def normalize(sample: dict[str, Any], root: Path) -> dict[str, Any]:
    d = dict(sample)
    for k in TOP_LEVEL_MASKED:
        d[k] = _mask(d[k])
    d["filesystems"] = [{k: (_mask(v) if k in STATVFS_FIELDS else v) for k, v in fs.items()} for fs in d["filesystems"]]
    # Reasons may name files under the fixture tree; the tree's location is not part of the result.
    return _replace_root(d, str(root))


def golden_samples(root: Path) -> dict[str, Any]:
    """Two consecutive samples of the scenario at ``root`` (the first has no rates; the second has
    rates over an interval in which the fixture's counters did not move), normalized."""
    from hvstat._core import NodeSampler

    s = NodeSampler(scenario_config(root))
    first = json.loads(s.sample())
    second = json.loads(s.sample())
    return {"first": normalize(first, root), "second": normalize(second, root)}


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
