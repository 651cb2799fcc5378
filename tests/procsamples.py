"""Synthetic ProcessesSamples for unit tests of the hub, the alert engine, the store and /metrics:
users and processes with the numbers a test chooses, every other field a plausible constant."""

from __future__ import annotations

from typing import Any

import msgspec

from hvstat.models import ProcessesSample

HOST: dict[str, Any] = {
    "cpus": 8,
    "memory_total_bytes": 16 << 30,
    "memory_used_percent": 40.0,
    "processes": 0,
    "threads": 0,
    "running": 1,
    "blocked": 0,
    "zombies": 0,
    "unreadable": 0,
    "cpu_percent": 10.0,
    "rss_bytes": 0,
    "read_bytes_per_sec": 0.0,
    "write_bytes_per_sec": 0.0,
    "io_unreadable_processes": 0,
    "kept_open_fds": 0,
}


def user(name: str, uid: int, cpu: float | None = 10.0, rss: int = 1 << 30, *, heavy: bool = False, processes: int = 2, cpu_total: float = 100.0) -> dict[str, Any]:
    return {
        "uid": uid,
        "user": name,
        "processes": processes,
        "threads": processes,
        "cpu_percent": cpu,
        "cpu_host_percent": None if cpu is None else cpu / 8,
        "cpu_seconds_total": cpu_total,
        "rss_bytes": rss,
        "memory_percent": rss / (16 << 30) * 100,
        "read_bytes_per_sec": 1.0,
        "write_bytes_per_sec": 2.0,
        "io_unreadable_processes": 0,
        "persistent_heavy": heavy,
        "heavy_for_secs": 60.0 if heavy else None,
        "cpu_threshold_percent": 50.0,
        "memory_threshold_percent": 50.0,
    }


def process(pid: int, name: str, user_name: str, uid: int, cpu: float | None = 5.0, rss: int = 1 << 20) -> dict[str, Any]:
    return {
        "pid": pid,
        "ppid": 1,
        "name": name,
        "state": "R" if (cpu or 0) > 0 else "S",
        "uid": uid,
        "user": user_name,
        "started_at": 1_600_000_000.0,
        "threads": 1,
        "cpu_percent": cpu,
        "cpu_host_percent": None if cpu is None else cpu / 8,
        "cpu_seconds_total": 12.0,
        "rss_bytes": rss,
        "memory_percent": rss / (16 << 30) * 100,
        "read_bytes_per_sec": 0.0,
        "write_bytes_per_sec": 10.0,
        "read_bytes_total": 0,
        "write_bytes_total": 100,
        "cgroup": "/user.slice",
        "container": None,
        "vm": None,
        "runtime": None,
    }


def sample(ts: float, users: list[dict[str, Any]], processes: list[dict[str, Any]], *, level: str = "light") -> ProcessesSample:
    """Processes sorted by CPU, highest first, as the core sends them; users as given."""
    procs = sorted(processes, key=lambda p: -(p["cpu_percent"] or -1.0))
    heavy = [u["user"] for u in users if u["persistent_heavy"]]
    return msgspec.convert(
        {
            "timestamp": ts,
            "interval_secs": 5.0,
            "host": {**HOST, "processes": len(procs), "threads": len(procs)},
            "status": {"level": level, "rule": "everything under medium", "cpu_percent": 10.0, "memory_percent": 40.0, "persistent_users": heavy},
            "users": users,
            "guests": [],
            "processes": procs,
            "total": len(procs),
            "unavailable": {},
        },
        ProcessesSample,
    )
