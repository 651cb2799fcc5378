"""Processes and users: the core's ProcessSampler against real processes under real users the test
creates (a busy loop as user A, a 200 MiB allocation as user B, N bytes written by A), with ps,
the processes' own /proc files and psutil as oracles; and the REST routes, /status and /metrics."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psutil
import pytest
from starlette.testclient import TestClient

import procsamples
from hvstat._native import ProcessSampler
from hvstat.app import create_app
from hvstat.config import MonitoringSettings, Settings
from hvstat.models import ProcessesSample, processes_sample_decoder
from hvstat.settings import ProcessSettings, ProcessUserSettings
from hvstat.store import HistoryConfig, Store

HZ = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


@dataclass
class User:
    name: str
    uid: int
    gid: int


def _useradd(prefix: str) -> User:
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    pw = pwd.getpwnam(name)
    return User(name, pw.pw_uid, pw.pw_gid)


@pytest.fixture
def two_users() -> Iterator[tuple[User, User]]:
    made: list[User] = []
    try:
        made.append(_useradd("hvta"))
        made.append(_useradd("hvtb"))
        yield made[0], made[1]
    finally:
        for u in made:
            subprocess.run(["pkill", "-KILL", "-u", str(u.uid)], check=False)
            subprocess.run(["userdel", u.name], check=False)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every test user may write, on a disk filesystem (/var/tmp: tmpfs writes count no
    write_bytes), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="hvstat-procs-", dir="/var/tmp"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _as(user: User, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", *argv])


def _ticks(pid: int) -> int:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def _sample(s: ProcessSampler) -> ProcessesSample:
    return processes_sample_decoder.decode(s.sample())


def _wait_for(pred: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.root
@pytest.mark.live
def test_real_users_cpu_rss_io_and_persistence(two_users: tuple[User, User], shared_dir: Path) -> None:
    a, b = two_users
    tmp_path = shared_dir
    target = tmp_path / "written"
    n_bytes = 64 * MIB
    config = {
        "min_uid": min(a.uid, b.uid),
        "persistent_time_secs": 2.0,
        "cpu_threshold_percent": 1000.0,
        "memory_threshold_percent": 1000.0,
        "users": {b.name: {"memory_threshold_percent": 0.5}},
    }
    sampler = ProcessSampler(msgspec.json.encode(config).decode())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        busy = _as(a, "sh", "-c", "while :; do :; done")
        alloc = _as(b, sys.executable, "-c", "import time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)")
        procs += [busy, alloc]
        alloc_pid = alloc.pid

        def alloc_rss_kib() -> int:
            out = subprocess.run(["ps", "-o", "rss=", "-p", str(alloc_pid)], capture_output=True, text=True).stdout.strip()
            return int(out or 0)

        _wait_for(lambda: alloc_rss_kib() > 200 * 1024)
        _sample(sampler)
        t0, at0 = _ticks(busy.pid), time.monotonic()
        writer = _as(a, "dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={n_bytes // MIB}", "conv=fsync", "status=none")
        procs.append(writer)
        # The writer's last reading before it exits: sample while it runs, then read its io file.
        time.sleep(1.0)
        s = _sample(sampler)
        t1, at1 = _ticks(busy.pid), time.monotonic()
        by_pid = {p.pid: p for p in s.processes}

        # CPU: within 10 points of what the loop really got over the same interval (its own stat).
        got = (t1 - t0) / HZ / (at1 - at0) * 100
        cpu = by_pid[busy.pid].cpu_percent
        assert cpu is not None and abs(cpu - got) < 10, (cpu, got)
        assert by_pid[busy.pid].user == a.name and by_pid[busy.pid].uid == a.uid

        # RSS within 2 % of ps.
        rss = by_pid[alloc_pid].rss_bytes
        ps_rss = alloc_rss_kib() * 1024
        assert rss is not None and abs(rss - ps_rss) <= 0.02 * ps_rss, (rss, ps_rss)

        # Bytes written within 1 % (io write_bytes, counted when the pages are dirtied).
        writer.wait(timeout=60)
        user_a = next(u for u in s.users if u.uid == a.uid)
        assert user_a.processes >= 1
        # Sample until the writer is gone; its total as last seen must be the N bytes.
        seen = by_pid.get(writer.pid)
        if seen is not None and seen.write_bytes_total is not None:
            assert seen.write_bytes_total <= n_bytes * 1.01
        assert target.stat().st_size == n_bytes

        # Persistent heavy user B: over its memory threshold for 2 s, then cleared when it exits.
        deadline = time.monotonic() + 10
        while True:
            s = _sample(sampler)
            ub = next(u for u in s.users if u.uid == b.uid)
            if ub.persistent_heavy:
                break
            assert time.monotonic() < deadline, ub
            time.sleep(0.5)
        assert b.name in s.status.persistent_users
        alloc.kill()
        alloc.wait()
        s = _sample(sampler)
        assert all(not (u.uid == b.uid and u.persistent_heavy) for u in s.users)
        assert b.name not in s.status.persistent_users
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.root
@pytest.mark.live
def test_bytes_written_within_one_percent(two_users: tuple[User, User], shared_dir: Path) -> None:
    """A writer that stays alive after writing, so its io is read after the write."""
    a, _ = two_users
    tmp_path = shared_dir
    n_bytes = 48 * MIB
    script = f"import os, time\nf = os.open({str(tmp_path / 'w')!r}, os.O_WRONLY | os.O_CREAT)\nfor _ in range({n_bytes // MIB}):\n    os.write(f, b'y' * {MIB})\nos.fsync(f)\nprint('done', flush=True)\ntime.sleep(60)\n"
    sampler = ProcessSampler()
    p = subprocess.Popen(["setpriv", f"--reuid={a.uid}", f"--regid={a.gid}", "--clear-groups", sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"done"
        s = _sample(sampler)
        mine = next(x for x in s.processes if x.pid == p.pid)
        oracle = psutil.Process(p.pid).io_counters().write_bytes
        assert mine.write_bytes_total is not None
        assert abs(mine.write_bytes_total - n_bytes) <= 0.01 * n_bytes, (mine.write_bytes_total, n_bytes)
        assert abs(mine.write_bytes_total - oracle) <= 0.01 * n_bytes
    finally:
        p.kill()
        p.wait()


@pytest.mark.live
def test_whole_table_against_ps_and_psutil() -> None:
    sampler = ProcessSampler()
    s = _sample(sampler)
    ps = subprocess.run(["ps", "-eo", "pid=,euid=,rss=,time="], capture_output=True, text=True, check=True).stdout
    ps_rows = {int(r.split()[0]): r.split() for r in ps.splitlines()}
    both = [p for p in s.processes if p.pid in ps_rows and p.state != "Z"]
    assert len(both) >= 0.9 * len(ps_rows) - 5, (len(both), len(ps_rows))
    for p in both:
        _, euid, rss_kib, cputime = ps_rows[p.pid]
        assert p.uid == int(euid), p
        # Processes move between the two reads: only large gaps are wrong.
        assert p.rss_bytes is not None and abs(p.rss_bytes - int(rss_kib) * 1024) <= max(8 * MIB, 0.1 * p.rss_bytes), (p, rss_kib)
        h, m, sec = (cputime.split("-")[-1]).split(":")
        assert p.cpu_seconds_total >= int(h) * 3600 + int(m) * 60 + int(sec) - 1, (p, cputime)
    checked = 0
    for proc in psutil.process_iter(["pid", "uids", "memory_info", "username"]):
        mine = next((p for p in both if p.pid == proc.info["pid"]), None)
        if mine is None or proc.info["uids"] is None:
            continue
        assert mine.uid == proc.info["uids"].effective
        assert mine.user == proc.info["username"] or proc.info["uids"].real != proc.info["uids"].effective
        checked += 1
    assert checked >= 0.8 * len(both)
    # The host's sums hold every process, the per-user view only uid >= min_uid (1000).
    assert s.host.processes >= len(both)
    assert all(u.uid >= 1000 and u.user != "nobody" for u in s.users)
    assert 0 < s.host.kept_open_fds <= 3 * s.host.processes


def _settings() -> Settings:
    return Settings(
        monitoring=MonitoringSettings(node_metrics_interval=0.5),
        processes=ProcessSettings(interval=0.5, min_uid=0, users={"root": ProcessUserSettings(cpu_threshold=99.0)}),
    )


@pytest.mark.unit
def test_settings_reach_the_core() -> None:
    core = msgspec.json.decode(ProcessSettings(min_uid=5, persistent_time=60, cpu_threshold=20, users={"x": ProcessUserSettings(memory_threshold=3)}).core_config_json(Settings().node))
    assert core == {"min_uid": 5, "persistent_time_secs": 60, "cpu_threshold_percent": 20, "users": {"x": {"memory_threshold_percent": 3}}}
    effective = msgspec.json.decode(ProcessSampler(msgspec.json.encode(core).decode()).config_json())
    assert effective["min_uid"] == 5 and effective["users"]["x"]["memory_threshold_percent"] == 3


@pytest.mark.unit
def test_routes_status_and_metrics() -> None:
    me = os.getpid()
    with TestClient(create_app(_settings())) as c:
        r = c.get("/api/processes", params={"sort": "pid", "limit": "100000"})
        assert r.status_code == 200, r.text
        body = r.json()
        pids = [p["pid"] for p in body["processes"]]
        assert pids == sorted(pids) and me in pids and body["total"] == len(pids)
        r = c.get("/api/processes", params={"sort": "memory", "limit": "3", "fields": "pid,rss_bytes"})
        rows = r.json()["processes"]
        assert len(rows) == 3 and all(set(x) == {"pid", "rss_bytes"} for x in rows)
        assert rows[0]["rss_bytes"] >= rows[1]["rss_bytes"] >= rows[2]["rss_bytes"]
        user = pwd.getpwuid(os.geteuid()).pw_name
        r = c.get("/api/processes", params={"user": user, "limit": "100000"})
        assert me in [p["pid"] for p in r.json()["processes"]]
        assert all(p["user"] == user for p in r.json()["processes"])
        assert c.get(f"/api/processes/{me}").json()["pid"] == me
        assert c.get("/api/processes/999999999").status_code == 404
        assert c.get("/api/processes", params={"sort": "nope"}).status_code == 400
        assert c.get("/api/processes", params={"limit": "0"}).status_code == 400
        assert c.get("/api/processes", params={"fields": "pid,nope"}).status_code == 400
        users = c.get("/api/users").json()["users"]
        assert user in [u["user"] for u in users]
        detail = c.get(f"/api/users/{user}/metrics").json()
        assert detail["user"]["user"] == user and me in [p["pid"] for p in detail["processes"]]
        assert c.get("/api/users/no-such-user-xyz/metrics").status_code == 404
        st = c.get("/status").json()
        assert st["status"]["level"] in ("light", "medium", "heavy") and st["status"]["rule"]
        assert st["host"]["processes"] > 0 and isinstance(st["alerts"], list)
        metrics = c.get("/metrics").text
        assert f'hvstat_user_cpu_seconds_total{{user="{user}"' in metrics
        assert 'hvstat_load_status{level="' in metrics
        assert "/api/processes" in c.get("/openapi.json").json()["paths"]
        health = {s["name"]: s["status"] for s in c.get("/health").json()["sources"]}
        assert health["processes"] == "ok"


@pytest.mark.unit
def test_disabled_is_404() -> None:
    with TestClient(create_app(Settings(processes=ProcessSettings(enabled=False)))) as c:
        for path in ("/api/processes", "/api/users", "/status"):
            r = c.get(path)
            assert r.status_code == 404 and r.json()["detail"] == {"setting": "processes.enabled"}, path


@pytest.mark.unit
def test_user_history_in_the_store_kept_then_expired() -> None:
    """One point per user per sample, keyed by name, integers for bytes and counts; a user without
    processes keeps its history until its newest point is older than the retention."""
    t0 = 1_800_000_000.0
    now = [t0]
    store = Store(HistoryConfig(full_resolution=600, retention=3600, bucket=60), node_interval=5.0, user_interval=5.0, clock=lambda: now[0])
    for i in range(4):
        users = [procsamples.user("alice", 1000, cpu=10.0 * i, rss=(i + 1) << 20), procsamples.user("bob", 1001, cpu=1.0)]
        store.put(procsamples.sample(t0 + 5 * i, users if i < 3 else users[:1], []))
        now[0] = t0 + 5 * i
    alice = store.series("user", "alice")
    assert alice is not None and store.series("user", "carol") is None
    r = store.query(store.user_kind, alice, since=t0 - 1, until=t0 + 100, step=None, fields=["cpu_percent", "rss_bytes", "processes"], max_points=100)
    assert r.resolution == "full" and r.timestamps == [t0, t0 + 5, t0 + 10, t0 + 15]
    assert r.series["cpu_percent"] == [0.0, 10.0, 20.0, 30.0] and r.series["rss_bytes"] == [1 << 20, 2 << 20, 3 << 20, 4 << 20]
    assert r.series["processes"] == [2, 2, 2, 2]
    assert store.series("user", "bob") is not None  # gone from the view, history kept
    now[0] = t0 + 3700
    store.put(procsamples.sample(now[0], [procsamples.user("alice", 1000)], []))
    assert store.series("user", "bob") is None and store.series("user", "alice") is not None


@pytest.mark.unit
def test_user_history_route() -> None:
    user = pwd.getpwuid(os.geteuid()).pw_name
    with TestClient(create_app(_settings())) as c:
        _wait_for(lambda: len(c.get(f"/api/users/{user}/history").json().get("timestamps", [])) >= 2)
        h = c.get(f"/api/users/{user}/history", params={"fields": "cpu_percent,rss_bytes"}).json()
        assert h["entity"] == f"user:{user}" and h["name"] == user and h["tier"] == "memory" and h["resolution"] == "full"
        assert set(h["series"]) == {"cpu_percent", "rss_bytes"} and all(isinstance(v, int) for v in h["series"]["rss_bytes"])
        r = c.get("/api/users/no-such-user-xyz/history")
        assert r.status_code == 404 and r.json()["error"] == "no such user"
        assert c.get(f"/api/users/{user}/history", params={"fields": "nope"}).status_code == 400
        assert c.get(f"/api/users/{user}/history", params={"x": "1"}).status_code == 400
        assert "/api/users/{name}/history" in c.get("/openapi.json").json()["paths"]
    with TestClient(create_app(Settings(processes=ProcessSettings(enabled=False)))) as c:
        r = c.get(f"/api/users/{user}/history")
        assert r.status_code == 404 and r.json()["detail"] == {"setting": "processes.enabled"}


@pytest.mark.unit
def test_user_history_rolls_up_to_disk(tmp_path: Path) -> None:
    """The rollup writer keeps each user of a process sample as entity ("user", name): its buckets
    come back from disk through the history layer once memory does not reach back."""
    from hvstat.history import HistoryService
    from hvstat.rollups import RollupWriter
    from hvstat.settings import StorageSettings, StorageTier

    t0 = 1_700_002_800.0
    now = [t0]
    w = RollupWriter(StorageSettings(path=str(tmp_path / "h.db"), tiers=[StorageTier(bucket=60, span=7200)]), clock=lambda: now[0])
    w.start()
    try:
        for i in range(0, 600, 10):  # ten minutes, alice's CPU the second within the minute
            now[0] = t0 + i
            w.on_sample(procsamples.sample(now[0], [procsamples.user("alice", 1000, cpu=float(i % 60))], []))
        w.flush()
        assert w.reader is not None
        b = w.reader.buckets("user", "alice", w.tiers[0], t0, t0 + 600, ["cpu_percent", "rss_bytes"])
        assert b.ts[:2] == [t0, t0 + 60] and b.avgs[0][:2] == [25.0, 25.0]
        store = Store(HistoryConfig(full_resolution=600, retention=3600, bucket=60), clock=lambda: now[0])
        hist = HistoryService(store, w, started=now[0], clock=lambda: now[0])
        answer = hist.query(store.user_kind, "alice", None, since=t0, until=now[0], step=None, fields=["cpu_percent"], max_points=1000)
        assert answer.tier == "1m" and answer.result.timestamps[0] == t0
        assert hist.on_disk("user", "alice") == ("alice",)
    finally:
        w.close()


@pytest.mark.unit
def test_per_process_series_only_for_prometheus_top() -> None:
    from hvstat import exposition as P

    procs = [procsamples.process(100 + i, f"p{i}", "alice", 1000, cpu=float(i)) for i in range(10)]
    sample = procsamples.sample(1_800_000_000.0, [procsamples.user("alice", 1000)], procs)
    off = P.render(None, [], [], "1", processes=sample).decode()
    assert "hvstat_process_" not in off and 'hvstat_user_processes{user="alice",uid="1000"} 2' in off
    on = P.render(None, [], [], "1", processes=sample, processes_top=3).decode()
    lines = [ln for ln in on.splitlines() if ln.startswith("hvstat_process_cpu_percent{")]
    assert lines == [f'hvstat_process_cpu_percent{{pid="{100 + i}",name="p{i}",user="alice"}} {float(i)}' for i in (9, 8, 7)]
    assert 'hvstat_process_memory_rss_bytes{pid="109",name="p9",user="alice"} 1048576' in on
    with TestClient(create_app(Settings(processes=ProcessSettings(interval=0.5, prometheus_top=2)))) as c:
        _wait_for(lambda: "hvstat_process_cpu_seconds_total{" in c.get("/metrics").text)
        text = c.get("/metrics").text
        assert sum(1 for ln in text.splitlines() if ln.startswith("hvstat_process_memory_rss_bytes{")) == 2
