#!/usr/bin/env python3
"""Whole-service benchmark: what a running `hvstat serve` costs, against what its Rust core costs
and against the C floor of reading the same files, side by side in one run (issue 13).

Every line starts its own `hvstat serve` (a free loopback port, a config written for the line, the
on-disk history in a temporary directory, as the defaults have it) and measures the whole process
by schedstat: the sum of /proc/<pid>/task/*/schedstat run time (every thread: the event loop, the
sources' worker threads, the rollups thread) over a window. Schedstat counts the time the process
was on a CPU, so a busy machine slows the window down but does not inflate the number; the `load`
column says how busy the machine was (the CPU used by every other process during the window).
Ratios within one run matter more than absolutes.

Lines:
  idle             nothing to sample: containers, VMs and processes off, the node every 60 s
  defaults         the defaults with no guests (node 5 s, containers and VMs 10 s, processes 5 s)
  node 1 Hz        as idle with the node every second: the added CPU per tick against the core's
                   own NodeSampler.sample() (timed in this process by its thread CPU time) and the
                   C floor per tick of the same files (bench/floor.c, as bench/node.py runs it)
  N containers     N real cgroups (made as bench/containers.py makes them: runc's layout, one
                   `sleep` each), containers every 1 s and every 10 s (the default), the node every
                   60 s: % of a core against ContainerSampler.sample() and the C floor of its files
  /metrics         on the N-container 1 Hz server: scrape latency and server CPU per scrape, and the
                   latency of /health requests sent meanwhile (the loop blocked shows there)
  /ws fan-out      M WebSocket clients on the dashboard's topics, node every 1 s: delay from the
                   sample's timestamp to the last client (bench/ws_fanout.py's clients)
  churn            containers every 1 s while K guests come and go in batches: RSS before, at the
                   peak and after

Usage: bench/setup && python bench/service.py            # quick: N=100, 100 clients, churn 500
       python bench/service.py --full --readme           # N=1000, 1000 clients, churn 5000; table into README
       python bench/service.py --only idle,node          # some lines
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
sys.path.insert(0, str(BENCH))
from node import build_floor, busy_secs, floor_argv, machine, run_floor  # noqa: E402

LINES = ("idle", "defaults", "node", "containers", "metrics", "ws", "churn")
README = BENCH / "README.md"
BEGIN, END = "<!-- service.py results begin -->", "<!-- service.py results end -->"


# --- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hvstat_exe() -> list[str]:
    exe = Path(sys.executable).with_name("hvstat")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hvstat.cli"]


STORAGE = True  # --no-storage: history in memory only


def config_text(workdir: Path, *, node: float, guests: float | None, vms: bool = False, processes: bool = False, max_clients: int = 100) -> str:
    """A config for one line; guests None: containers off."""
    return "\n".join(
        [
            "[monitoring]",
            f"node_metrics_interval = {node}",
            f"vm_metrics_interval = {guests or 10}",
            f"max_ws_clients = {max_clients}",
            "[containers]",
            f"enabled = {str(guests is not None).lower()}",
            "[vms]",
            f"enabled = {str(vms).lower()}",
            "[processes]",
            f"enabled = {str(processes).lower()}",
            "[storage]",
            f'path = "{workdir / "history.db"}"' if STORAGE else 'path = ""',
            "[logging]",
            'level = "warning"',
            "",
        ]
    )


class Server:
    def __init__(self, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.proc, self.log = port, proc, log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str, timeout: float = 60) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


@contextlib.contextmanager
def serve(workdir: Path, config: str, name: str) -> Iterator[Server]:
    """`hvstat serve` with ``config``; yields once /health answers; always stopped."""
    d = workdir / name
    d.mkdir()
    cfg = d / "hvstat.toml"
    cfg.write_text(config.replace(str(workdir / "history.db"), str(d / "history.db")))
    port = free_port()
    log = d / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVSTAT_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    srv = Server(port, proc, log)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"hvstat serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                srv.get("/health", timeout=5)
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"hvstat serve did not answer /health within 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_ns(pid: int) -> int:
    """Nanoseconds on a CPU of every thread of ``pid`` (schedstat's first field)."""
    ns = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            with open(f"/proc/{pid}/task/{t}/schedstat", "rb") as f:
                ns += int(f.read().split()[0])
    return ns


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def window(pid: int, secs: float) -> dict[str, float]:
    """The server's CPU over ``secs``: ms per second, and the CPU the rest of the machine used."""
    t0, ns0, busy0 = time.monotonic(), run_ns(pid), busy_secs()
    time.sleep(secs)
    t1, ns1, busy1 = time.monotonic(), run_ns(pid), busy_secs()
    wall = t1 - t0
    own = (ns1 - ns0) / 1e9
    return {"ms_per_s": own * 1000 / wall, "pct_core": own * 100 / wall, "others_cpus": max(0.0, (busy1 - busy0) - own) / wall, "secs": wall}


# --- the core and the floor, in this process -------------------------------------------------------


def thread_time_per_call(fn, n: int, repeats: int = 5) -> tuple[float, float]:
    """(best, median) µs of thread CPU time per call: the sampler's reads happen in this thread
    (the core releases the GIL but does not hand off), and a busy machine does not inflate it."""
    fn()
    per = []
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        for _ in range(n):
            fn()
        per.append((time.thread_time_ns() - t0) / n / 1000)
    return min(per), statistics.median(per)


def node_core(cold_ticks: int) -> dict[str, float]:
    from hvstat._core import NodeSampler
    from hvstat.models import node_metrics_decoder

    s = NodeSampler()
    s.prime()
    sample = json.loads(s.sample())
    paths = s.paths()
    mounts = list(dict.fromkeys(["/", *[f["mount_point"] for f in sample.get("filesystems") or []]]))
    core = thread_time_per_call(s.sample, 500)
    full = thread_time_per_call(lambda: node_metrics_decoder.decode(s.sample()), 500)
    # The same once a second, as the service samples: caches and branch predictors are cold
    # again by then on a shared machine, so this, not the back-to-back figure, is what a tick of
    # the service should be held against.
    cold = []
    for _ in range(cold_ticks):
        time.sleep(1)
        t0 = time.thread_time_ns()
        s.sample()
        cold.append((time.thread_time_ns() - t0) / 1000)
    exe = build_floor()
    floor = [run_floor(floor_argv(exe, paths, mounts, 500, 1, poll_mountinfo=True))["per_sample_us"][0] for _ in range(5)]
    return {"core_us": core[0], "core_median_us": core[1], "full_us": full[0], "core_1hz_us": statistics.median(cold), "floor_tick_us": min(floor)}


def containers_core(n_ours: int) -> dict[str, float]:
    """ContainerSampler.sample() over the live guests, and the C floor per tick of its files."""
    from containers import cgroup_mounts, interior_dirs, primary_hierarchy

    from hvstat._core import ContainerSampler
    from hvstat.models import containers_sample_decoder
    from hvstat.settings import ContainerSettings, NodeSettings

    s = ContainerSampler(ContainerSettings().core_config_json(NodeSettings()))
    s.sample()
    guests = len(json.loads(s.sample())["containers"])
    paths = s.paths()
    open_now = set()
    for f in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            open_now.add(os.readlink(f"/proc/self/fd/{f}"))
    floor_paths = [p for p in paths if p in open_now]
    reps = max(3, 2000 // max(guests, 1))
    core = thread_time_per_call(s.sample, reps, 3)
    full = thread_time_per_call(lambda: containers_sample_decoder.decode(s.sample()), reps, 3)
    mounts = cgroup_mounts()
    interior = interior_dirs(*primary_hierarchy(mounts))
    mountinfo = "/proc/1/mountinfo" if os.access("/proc/1/mountinfo", os.R_OK) else "/proc/self/mountinfo"
    OUT.mkdir(exist_ok=True)
    lst = OUT / f"service.floor-tick.{n_ours}.txt"
    lst.write_text(
        "".join(f"{'r' if p.endswith('/net/dev') else 'w'} {p}\n" for p in floor_paths)
        + "".join(f"s {d}\n" for d in interior)
        + f"p {mountinfo}\n"
    )
    exe = build_floor()
    floor = [run_floor([str(exe), "-n", str(reps), "-R", "1", "-l", str(lst)])["per_sample_us"][0] for _ in range(3)]
    return {"guests": guests, "core_us": core[0], "core_median_us": core[1], "full_us": full[0], "floor_tick_us": min(floor), "files": len(floor_paths)}


def wait_for_other_guests(limit: float) -> int:
    """Other users' cgroup guests on this machine (another session's benchmark) are sampled too:
    they take descriptors (about 20 each, within RLIMIT_NOFILE) and CPU. Wait up to ``limit``
    seconds for them to go; the count is reported either way."""
    from containers import other_guests_now

    deadline = time.monotonic() + limit
    n = other_guests_now()
    while n and time.monotonic() < deadline:
        print(f"  {n} guests of others on the machine: waiting", file=sys.stderr, flush=True)
        time.sleep(15)
        n = other_guests_now()
    return n


# --- the lines ----------------------------------------------------------------------------------


def line_cpu(workdir: Path, name: str, config: str, secs: float, settle: float) -> dict[str, float]:
    with serve(workdir, config, name) as srv:
        time.sleep(settle)
        w = window(srv.pid, secs)
        w["rss_mb"] = rss_mb(srv.pid)
        return w


def metrics_probe(srv: Server, scrapes: int) -> dict[str, float]:
    """``scrapes`` GET /metrics one after the other on one connection while another thread sends
    GET /health on its own connection as fast as it is answered."""
    health_alone: list[float] = []
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    for _ in range(50):
        t = time.perf_counter()
        c.request("GET", "/health")
        c.getresponse().read()
        health_alone.append((time.perf_counter() - t) * 1000)
    done = threading.Event()
    during: list[float] = []

    def prober() -> None:
        while not done.is_set():
            t = time.perf_counter()
            c.request("GET", "/health")
            c.getresponse().read()
            during.append((time.perf_counter() - t) * 1000)

    m = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    m.request("GET", "/metrics")
    body = m.getresponse().read()
    lat: list[float] = []
    th = threading.Thread(target=prober)
    ns0 = run_ns(srv.pid)
    th.start()
    for _ in range(scrapes):
        t = time.perf_counter()
        m.request("GET", "/metrics")
        m.getresponse().read()
        lat.append((time.perf_counter() - t) * 1000)
    ns1 = run_ns(srv.pid)
    done.set()
    th.join()
    c.close()
    m.close()
    return {
        "bytes": len(body),
        "series": body.count(b"\n"),
        "latency_ms": statistics.median(lat),
        "latency_best_ms": min(lat),
        # Includes the /health answers given meanwhile (each ~0.3 ms of server CPU).
        "server_cpu_ms_per_scrape": (ns1 - ns0) / 1e6 / scrapes,
        "health_alone_p50_ms": statistics.median(health_alone),
        "health_during_p50_ms": statistics.median(during) if during else float("nan"),
        "health_during_max_ms": max(during) if during else float("nan"),
        "health_during_n": len(during),
    }


def ws_line(workdir: Path, clients: int, ticks: int) -> dict[str, object]:
    import ws_fanout

    ws_fanout.raise_fd_limit(2 * clients + 256)

    async def run(srv: Server) -> dict[str, object]:
        deliveries = ws_fanout.Deliveries(1.0)
        t = time.monotonic()
        cl = await ws_fanout.connect_all(srv.port, clients, deliveries, False, ws_fanout.TOPICS)
        connect = time.monotonic() - t
        await asyncio.sleep(2)
        w = await ws_fanout.measure(deliveries, clients, ticks, 1.0, srv.pid)
        for c in cl:
            c.close()
        await asyncio.sleep(0.2)
        return {"connect_secs": connect, "window": w}

    cfg = config_text(workdir, node=1, guests=10, vms=True, processes=True, max_clients=clients + 8)
    with serve(workdir, cfg, f"ws-{clients}") as srv:
        busy0, t0, ns0 = busy_secs(), time.monotonic(), run_ns(srv.pid)
        r = asyncio.run(run(srv))
        # Everything else: the clients (this process) and other workers.
        r["others_cpus"] = max(0.0, busy_secs() - busy0 - (run_ns(srv.pid) - ns0) / 1e9) / (time.monotonic() - t0)
    w = r["window"]
    return {
        "clients": clients,
        "ticks": w.ticks,
        "last_p50_ms": w.last_p50_ms,
        "last_p99_ms": w.last_p99_ms,
        "last_max_ms": w.last_max_ms,
        "first_max_ms": max((f for _, f, _ in w.per_tick), default=None),
        "server_cpu_ms_per_tick": w.server_cpu_ms_per_tick,
        "incomplete": w.incomplete_ticks,
        # Per tick: delay to the last client, ms, in order (a stall shows as one or a few ticks).
        "last_per_tick_ms": [last for _, _, last in w.per_tick],
        "machine_busy_cpus": r["others_cpus"],
    }


def churn_line(workdir: Path, total: int, batch: int) -> dict[str, object]:
    from containers import Fleet

    cfg = config_text(workdir, node=60, guests=1)
    with serve(workdir, cfg, f"churn-{total}") as srv:
        time.sleep(3)
        base = rss_mb(srv.pid)
        peak = base
        made = 0
        t0 = time.monotonic()
        while made < total:
            fleet = Fleet()
            try:
                fleet.create(min(batch, total - made), 0)
                made += len(fleet.ids)
                time.sleep(2.5)
                peak = max(peak, rss_mb(srv.pid))
            finally:
                problems = fleet.destroy()
                if problems:
                    print(f"churn: cleanup problems: {problems[:3]}", file=sys.stderr)
            time.sleep(2.5)
            peak = max(peak, rss_mb(srv.pid))
            print(f"  churn: {made}/{total} guests, RSS {rss_mb(srv.pid):.1f} MB", file=sys.stderr, flush=True)
        time.sleep(5)
        after = rss_mb(srv.pid)
        _, body = srv.get("/api/containers")
        live = len(json.loads(body).get("containers", []))
        return {"guests": made, "rss_base_mb": base, "rss_peak_mb": peak, "rss_after_mb": after, "live_after": live, "secs": time.monotonic() - t0}


# --- output --------------------------------------------------------------------------------------


def fmt(v: object, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def report(r: dict[str, object], args: argparse.Namespace) -> str:
    L: list[str] = ["```"]
    m = r["machine"]
    L.append(f"machine : kernel {m['kernel']}, {m['cpu_model']}, {m['cpu_count']} CPUs, Python {m['python']}")
    L.append(f"guests  : {r.get('other_guests', 0)} cgroup guests of others on the machine during the guest lines")
    L.append(f"run     : {r['started']} UTC, {'full' if args.full else 'quick'}, storage {'on' if args.storage else 'off'}; loadavg at start {r['load_start']:.2f}, at end {r['load_end']:.2f}")
    L.append("```")
    L.append("")
    L.append("| line | whole service | core alone | C floor | ratio | load (other CPUs busy) |")
    L.append("|---|---:|---:|---:|---|---:|")
    g: list[tuple[str, str, str, str]] = []  # goal rows: measure, goal, result, verdict
    idle = r.get("idle")
    if idle:
        L.append(f"| idle (nothing to sample) | {idle['ms_per_s']:.3f} ms/s | | | | {idle['others_cpus']:.2f} |")
        g.append(("idle service CPU", "<= 0.2 ms/s", f"{idle['ms_per_s']:.3f} ms/s", verdict(idle["ms_per_s"] <= 0.2)))
    d = r.get("defaults")
    if d:
        L.append(f"| defaults, no guests (node 5 s, guests 10 s, processes 5 s) | {d['ms_per_s']:.3f} ms/s | | | | {d['others_cpus']:.2f} |")
    n = r.get("node")
    if n and idle:
        added_us = (n["ms_per_s"] - idle["ms_per_s"]) * 1000 / (1 - 1 / 60)
        c = r["node_core"]
        ratio = added_us / c["core_1hz_us"]
        L.append(
            f"| node 1 Hz: added per tick | {added_us:.0f} µs | {c['core_1hz_us']:.0f} µs at 1 Hz ({c['core_us']:.0f} back to back, +decode {c['full_us']:.0f}) | {c['floor_tick_us']:.0f} µs | "
            f"{ratio:.2f}x core at 1 Hz, {added_us / c['core_us']:.2f}x core back to back | {n['others_cpus']:.2f} |"
        )
        g.append(
            (
                "service CPU added by a node tick / the core's sample",
                "<= 1.5x",
                f"{ratio:.2f}x ({added_us:.0f} / {c['core_1hz_us']:.0f} µs, the core's sample taken once a second; {added_us / c['core_us']:.2f}x its back-to-back {c['core_us']:.0f} µs)",
                verdict(ratio <= 1.5),
            )
        )
    cc = r.get("containers_core")
    for key, interval in (("containers_1s", 1), ("containers_10s", 10)):
        w = r.get(key)
        if not w:
            continue
        if not cc:
            L.append(f"| containers every {interval} s | {w['pct_core']:.2f} % of a core | (core not measured: {r.get('containers_core_error')}) | | | {w['others_cpus']:.2f} |")
            continue
        core_pct = cc["core_us"] / 1e4 / interval
        floor_pct = cc["floor_tick_us"] / 1e4 / interval
        base = idle["pct_core"] if idle else 0.0
        L.append(
            f"| {cc['guests']} containers every {interval} s | {w['pct_core']:.2f} % of a core | {core_pct:.2f} % | {floor_pct:.2f} % | "
            f"{w['pct_core'] / floor_pct:.2f}x floor, {w['pct_core'] / core_pct:.2f}x core | {w['others_cpus']:.2f} |"
        )
        goal = 5.0 if interval == 1 else 0.4
        goal_text = f"<= {goal} % of a core" + (" (<= 1.2x the floor)" if interval == 1 else "")
        g.append(
            (
                f"{cc['guests']} containers at {interval} s, whole service",
                goal_text,
                f"{w['pct_core']:.2f} % ({w['pct_core'] / floor_pct:.2f}x floor {floor_pct:.2f} %; idle part {base:.3f} %)",
                verdict(w["pct_core"] <= goal),
            )
        )
    mt = r.get("metrics")
    if mt:
        L.append(
            f"| /metrics, {cc['guests'] if cc else '?'} containers ({mt['series']} lines, {mt['bytes'] // 1024} KiB) | {mt['latency_ms']:.1f} ms per scrape "
            f"(server CPU {mt['server_cpu_ms_per_scrape']:.1f} ms) | | | /health meanwhile p50 {mt['health_during_p50_ms']:.1f} / max {mt['health_during_max_ms']:.1f} ms "
            f"(alone {mt['health_alone_p50_ms']:.1f}) | |"
        )
        blocks = mt["health_during_max_ms"] > max(5.0, 2 * mt["health_alone_p50_ms"]) and mt["health_during_max_ms"] >= 0.5 * mt["latency_ms"]
        g.append(
            (
                f"/metrics with {cc['guests'] if cc else '?'} containers",
                "<= 5 ms, never blocking the loop",
                f"{mt['latency_ms']:.1f} ms; /health meanwhile max {mt['health_during_max_ms']:.1f} ms",
                verdict(mt["latency_ms"] <= 5 and not blocks),
            )
        )
    ws = r.get("ws")
    if ws:
        L.append(
            f"| /ws fan-out, {ws['clients']} clients, node 1 s | last client p50 {fmt(ws['last_p50_ms'], 1)} / p99 {fmt(ws['last_p99_ms'], 1)} ms "
            f"(first client max {fmt(ws['first_max_ms'], 1)} ms), server {fmt(ws['server_cpu_ms_per_tick'], 1)} ms CPU per tick | | | {ws['ticks']} ticks, {ws['incomplete']} incomplete | {ws['machine_busy_cpus']:.2f} |"
        )
        worst = sorted(ws.get("last_per_tick_ms") or [], reverse=True)[:3]
        if worst:
            L[-1] = L[-1].replace(" ticks, ", f" ticks (worst: {', '.join(f'{x:.0f}' for x in worst)} ms), ", 1)
        p99 = ws["last_p99_ms"]
        g.append((f"/ws {ws['clients']} clients, p99 sample-to-last-client", "< 30 ms", f"{fmt(p99, 1)} ms", verdict(None if p99 is None else p99 < 30)))
    ch = r.get("churn")
    if ch:
        L.append(
            f"| churn of {ch['guests']} guests (containers every 1 s) | RSS {ch['rss_base_mb']:.0f} MB before, {ch['rss_peak_mb']:.0f} MB peak, "
            f"{ch['rss_after_mb']:.0f} MB after | | | | |"
        )
        g.append(
            (
                f"RSS after a churn of {ch['guests']} guests",
                "<= 100 MB, back to baseline + history",
                f"{ch['rss_base_mb']:.0f} -> peak {ch['rss_peak_mb']:.0f} -> {ch['rss_after_mb']:.0f} MB",
                verdict(ch["rss_after_mb"] <= 100),
            )
        )
    L.append("")
    L.append("| measure | goal | result | |")
    L.append("|---|---|---|---|")
    for row in g:
        L.append("| " + " | ".join(row) + " |")
    return "\n".join(L)


def write_readme(text: str) -> None:
    doc = README.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + block + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n## Whole service (`service.py`)\n\n" + block + "\n"
    README.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="N=1000 containers, 1000 clients, churn 5000, longer windows")
    ap.add_argument("--containers", type=int, help="N (quick 100, full 1000)")
    ap.add_argument("--clients", type=int, help="/ws clients (quick 100, full 1000)")
    ap.add_argument("--churn", type=int, help="guests that come and go (quick 500, full 5000)")
    ap.add_argument("--secs", type=float, help="CPU window per line (quick 15, full 60)")
    ap.add_argument("--only", type=lambda s: s.split(","), default=list(LINES), help=f"comma-separated of {','.join(LINES)}")
    ap.add_argument("--storage", action=argparse.BooleanOptionalAction, default=True, help="the on-disk history on (the default) or off")
    ap.add_argument("--wait-others", type=float, default=900, help="seconds to wait for other users' guests to go before the guest lines")
    ap.add_argument("--json", type=Path, help="write the results here too")
    ap.add_argument("--readme", action="store_true", help="put the table into bench/README.md")
    args = ap.parse_args(argv)
    # About 21 kept-open files per guest on a hybrid host (bench/README.md, "Containers"): the full
    # run takes as many guests as fit in RLIMIT_NOFILE (hard 20,000 here: 900), in this process and
    # in the server alike.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    n = args.containers or (min(1000, (hard - 1000) // 21) if args.full else 100)
    clients = args.clients or (1000 if args.full else 100)
    churn = args.churn or (5000 if args.full else 500)
    secs = args.secs or (60.0 if args.full else 15.0)
    global STORAGE
    STORAGE = args.storage

    def _term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)
    # This process samples the N guests itself (about 20 kept-open files each), as the server does.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    r: dict[str, object] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "load_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="hvstat-service-") as tmp:
        wd = Path(tmp)

        def step(name: str) -> None:
            print(f"-- {name} ...", file=sys.stderr, flush=True)

        r["other_guests"] = wait_for_other_guests(args.wait_others)
        if "idle" in args.only or "node" in args.only:
            step("idle")
            r["idle"] = line_cpu(wd, "idle", config_text(wd, node=60, guests=None), secs, 3)
        if "defaults" in args.only:
            step("defaults")
            r["defaults"] = line_cpu(wd, "defaults", config_text(wd, node=5, guests=10, vms=True, processes=True), secs, 3)
        if "node" in args.only:
            step("node core and floor")
            r["node_core"] = node_core(30 if args.full else 10)
            step("node 1 Hz")
            r["node"] = line_cpu(wd, "node", config_text(wd, node=1, guests=None), secs, 3)
        if {"containers", "metrics"} & set(args.only):
            from containers import Fleet

            fleet = Fleet()
            try:
                step(f"{n} containers: creating")
                fleet.create(n, 0)
                step("containers core and floor")
                try:
                    r["containers_core"] = containers_core(n)
                except OSError as e:  # out of descriptors: the lines below still run
                    r["containers_core_error"] = str(e)
                step(f"{n} containers every 1 s")
                with serve(wd, config_text(wd, node=60, guests=1), "containers-1s") as srv:
                    time.sleep(5)
                    if "containers" in args.only:
                        r["containers_1s"] = window(srv.pid, secs)
                    if "metrics" in args.only:
                        step("/metrics")
                        r["metrics"] = metrics_probe(srv, 20)
                if "containers" in args.only:
                    step(f"{n} containers every 10 s")
                    with serve(wd, config_text(wd, node=60, guests=10), "containers-10s") as srv:
                        time.sleep(12)
                        r["containers_10s"] = window(srv.pid, max(secs, 60.0 if args.full else 30.0))
            finally:
                problems = fleet.destroy()
                if problems:
                    print(f"cleanup problems: {problems}", file=sys.stderr)
        if "ws" in args.only:
            step(f"/ws fan-out to {clients} clients")
            r["ws"] = ws_line(wd, clients, 30 if args.full else 10)
        if "churn" in args.only:
            step(f"churn of {churn} guests")
            r["churn"] = churn_line(wd, churn, 500 if args.full else 100)
    r["load_end"] = os.getloadavg()[0]
    text = report(r, args)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2, default=str))
    if args.readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
