"""Helpers shared by the test modules (plain functions; the fixtures live in conftest.py).

Importable as ``helpers`` because pytest puts this directory on sys.path (rootdir without
``__init__.py``, the default "prepend" import mode)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent
FIXTURE_HOSTS = TESTS_DIR / "fixtures" / "hosts"

# Generous upper bound for anything a test waits on (a server starting, a subprocess exiting), so
# that a broken build fails the test instead of hanging the suite. Not an assertion on speed.
WAIT_SECS = 60.0


def hvstat_exe() -> list[str]:
    """The installed ``hvstat`` console script, as an operator runs it (not a pyenv shim, so the
    process we start is the one we terminate)."""
    script = Path(sysconfig.get_path("scripts")) / "hvstat"
    if script.exists():
        return [str(script)]
    found = shutil.which("hvstat")
    if found:
        return [found]
    return [sys.executable, "-m", "hvstat.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any HVSTAT_* variable (so the developer's shell cannot leak
    settings into a test), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVSTAT_")}
    env.update(extra)
    return env


def sample_dict(sampler: Any) -> dict[str, Any]:
    """One sample from a ``hvstat._core.NodeSampler`` as plain JSON data (what Rust wrote)."""
    return json.loads(sampler.sample())


def walk_numbers(value: Any, path: str = "$") -> Iterator[tuple[str, float]]:
    """Every number (not bool) in a JSON document, with its path."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk_numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_numbers(v, f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def walk_keys(value: Any, path: str = "$") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of every object in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield path, k, v
            yield from walk_keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_keys(v, f"{path}[{i}]")


def scenarios() -> list[Path]:
    """Fixture host trees: every directory under tests/fixtures/hosts/ that has a proc/ tree."""
    if not FIXTURE_HOSTS.is_dir():
        return []
    return sorted(p for p in FIXTURE_HOSTS.iterdir() if p.is_dir() and (p / "proc").is_dir())


def scenario_config(root: Path) -> str:
    """The NodeSampler config that points every root at a fixture tree."""
    return json.dumps({"proc_root": str(root / "proc"), "sys_root": str(root / "sys"), "rootfs": str(root)})


def bug(reason: str, raises: type[BaseException] = AssertionError) -> Any:
    """Marks a test that fails because of a known bug in hvstat (not in the test). Strict: once the
    bug is fixed the test XPASSes, which fails the run until the marker is removed. ``raises``
    keeps a failure for any other reason visible."""
    import pytest

    return pytest.mark.xfail(strict=True, raises=raises, reason=f"BUG: {reason}")


# Nulls that explain themselves by the field's documented meaning (rust/hvstat-core/src/node/model.rs).
SELF_EXPLAINED_NULLS = {
    # "Mean time per completed read / write over the interval; null when none completed."
    "read_latency_ms",
    "write_latency_ms",
    # A sensor without a label file.
    "label",
}


def _nulls(value: Any, path: list[str]) -> Iterator[tuple[list[str], str]]:
    """(dotted path parts, key) of every null, naming list items by their name/mount point/sensor/cpu
    as the ``unavailable`` keys do (``disks.vda``, ``filesystems./boot``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if v is None:
                yield path + [k], k
            else:
                yield from _nulls(v, path + [k])
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                ident = item.get("name", item.get("mount_point", item.get("sensor", item.get("cpu"))))
                yield from _nulls(item, path + [str(ident)])


def unexplained_nulls(sample: dict[str, Any], also_explained: Callable[[str], bool] = lambda _: False) -> list[str]:
    """Dotted paths of the nulls in ``sample`` that neither ``unavailable`` explains (by the path or
    a parent's path) nor the field's documented meaning; ``also_explained`` lets a caller accept
    more (for example every CPU share when ``unavailable`` explains cpu_usage)."""
    reasons = set(sample["unavailable"])
    out = []
    for parts, key in _nulls(sample, []):
        path = ".".join(parts)
        if key in SELF_EXPLAINED_NULLS or also_explained(path):
            continue
        if not {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & reasons:
            out.append(path)
    return out
