"""Helpers shared by the test modules (plain functions; the fixtures live in conftest.py).

Importable as ``helpers`` because pytest puts this directory on sys.path (rootdir without
``__init__.py``, the default "prepend" import mode)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

TESTS_DIR = Path(__file__).resolve().parent
FIXTURE_HOSTS = TESTS_DIR / "fixtures" / "hosts"

# Generous upper bound for anything a test waits on (a server starting, a subprocess exiting), so
# that a broken build fails the test instead of hanging the suite. Not an assertion on speed.
WAIT_SECS = 60.0

T = TypeVar("T")

# How much of a process's log a readiness failure quotes (its end: where the error is).
LOG_TAIL_CHARS = 3000


def log_tail(log: Path | Callable[[], str] | None, chars: int = LOG_TAIL_CHARS) -> str:
    """The last ``chars`` characters of a log file (or of what a callable returns), "" if none."""
    if log is None:
        return ""
    try:
        text = log() if callable(log) else log.read_text(errors="replace")
    except OSError as e:
        return f"(could not read {log}: {e})"
    return text[-chars:]


def wait_ready(
    ready: Callable[[], T],
    what: str,
    *,
    timeout: float = WAIT_SECS,
    every: float = 0.1,
    proc: subprocess.Popen[Any] | None = None,
    log: Path | Callable[[], str] | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``ready()`` every ``every`` seconds until it returns something truthy, and return that.

    The one wait loop of the tests: a process a test started answering (``proc``, a server's
    /health, a QMP socket), a daemon coming up, a value reaching what the test waits for. It raises
    AssertionError, naming ``what`` and quoting the end of ``log`` (a file, or a callable giving
    text; by default what ``proc`` wrote to a pipe), when ``proc`` has exited before it was ready
    or when ``timeout`` passed. Exceptions of the types in ``ignore`` count as "not yet" (a
    connection refused while a server starts). ``timeout`` bounds a broken build's hang; it is not
    an assertion on speed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = ready()
        except ignore:
            got = None  # type: ignore[assignment]
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode} before it was ready\n{_proc_log(proc, log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not ready within {timeout:g}s\n{_proc_log(proc, log)}")
        time.sleep(every)


def _proc_log(proc: subprocess.Popen[Any] | None, log: Path | Callable[[], str] | None) -> str:
    """``log``'s tail; else, for a process that has exited, what it wrote to its stdout/stderr pipes."""
    if log is not None or proc is None or proc.poll() is None:
        return log_tail(log)
    out = []
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            data = pipe.read()
            out.append(data.decode(errors="replace") if isinstance(data, bytes) else data)
    return "".join(out)[-LOG_TAIL_CHARS:]


def task_cpu_secs(pid: int) -> float:
    """CPU time of a process's threads in seconds by the scheduler's own accounting (sum_exec_runtime,
    the first field of /proc/<pid>/task/*/schedstat, ns): the oracle of what a process got, whatever
    else the machine was doing. (utime+stime in /proc/<pid>/stat has tick granularity.)"""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that exited between the listing and the read
    return total / 1e9


def http_ok(url: str, *ok: int, timeout: float = 2.0, **get: Any) -> Callable[[], Any]:
    """A ``wait_ready`` predicate: GET ``url`` (``get``: more httpx.get arguments, e.g. ``verify``);
    the response when its status is in ``ok`` (default 200), else None, also while nothing listens
    yet (a transport error)."""
    import httpx

    statuses = ok or (200,)

    def check() -> Any:
        try:
            r = httpx.get(url, timeout=timeout, **get)
        except httpx.TransportError:
            return None
        return r if r.status_code in statuses else None

    return check


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
    settings into a test), plus ``extra``. History stays in memory (``HVSTAT_STORAGE_PATH=""``)
    unless ``extra`` names a path: two servers of one test run must not share the default database
    (the second would refuse to start)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVSTAT_")}
    env["HVSTAT_STORAGE_PATH"] = ""
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
