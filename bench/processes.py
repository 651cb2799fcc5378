#!/usr/bin/env python3
"""Process benchmark: the process sampler against psutil and against the syscall floor of the same
reads, the whole service's CPU on a host with 10,000 processes, and the fds it keeps open with
30,000 (issue 15, "Performance"; results in bench/README.md, "Processes and users").

The processes are real: a small C program (built here) forks N children that each wait in pause();
it kills and reaps them when its stdin closes, which happens when this bench ends in any way (its
children also get SIGKILL through PR_SET_PDEATHSIG if it is killed itself).

Lines of the first part (N = --count processes besides the machine's own, timed round-robin, best
and median of the repeats' mean per sample, the garbage collector off while a line is timed):
  hvstat core    ProcessSampler.sample(top): list /proc, pread stat of every process and io of those
                 whose io is due (CPU time moved, or every 12th tick; kept open), parse, rates,
                 per-user/guest/host sums, the table sorted by CPU, the JSON document with the top
                 processes in full (--top, default 20: the service's [processes] top; the rest stay
                 in the core for ProcessSampler.query, which GET /api/processes asks)
  hvstat full    processes_sample_decoder.decode(sampler.sample(top)): typed msgspec Structs, what
                 the service does each tick
  hvstat all     processes_sample_decoder.decode(sampler.sample()): every process in full, decoded
                 (what the service did each tick before the top-N cut; it still does when an alert
                 rule is on process.<field>)
  psutil         list(psutil.process_iter(['cpu_times', 'memory_info', 'username', 'io_counters']))
  floor (C)      the same kernel work and nothing else: opendir/readdir/closedir of /proc, then one
                 pread at offset 0 of every file of sampler.paths() after five samples (meminfo,
                 uptime, each process's stat, and the io files that tick read), kept open:
                 bench/floor.c -d /proc -l LIST

Second part: `hvstat serve` (--exe, default the hvstat next to this Python) with [processes] and the
node every 5 s, on a host with --service-count processes; its CPU over --service-secs seconds from
the sum of /proc/<pid>/task/*/schedstat (nanoseconds on a CPU, every thread) and, as a check, from
/proc/<pid>/stat utime + stime; then the same service with [processes] enabled = false.

Third part: --fd-count processes, one sampler in this process with the soft RLIMIT_NOFILE raised to
the hard limit as `hvstat serve` does: the descriptors it keeps open (host.kept_open_fds and a count
of /proc/self/fd), the processes it saw, the unreadable ones, the time per sample.

Usage: python bench/processes.py [--count 1000] [--service-count 10000] [--fd-count 30000]
       [--iterations I] [--repeats R] [--service-secs S] [--skip-service] [--skip-fds] [--json out.json]
Run it against a release build (maturin build --release, installed into its own virtual
environment): a debug build's numbers say nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
sys.path.insert(0, str(BENCH))

from node import build_floor, machine, run_floor, stats  # noqa: E402

SPAWN_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    pid_t *kids = calloc((size_t)n, sizeof *kids);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (long i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0) { perror("fork"); n = i; break; }
        if (p == 0) { prctl(PR_SET_PDEATHSIG, SIGKILL); for (;;) pause(); }
        kids[i] = p;
    }
    printf("%ld\n", n);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    for (long i = 0; i < n; i++) kill(kids[i], SIGKILL);
    for (long i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
    return 0;
}
"""


def build_spawner() -> Path:
    OUT.mkdir(exist_ok=True)
    src, exe = OUT / "spawn.c", OUT / "spawn"
    if not exe.exists() or not src.exists() or src.read_text() != SPAWN_C:
        src.write_text(SPAWN_C)
        subprocess.run([shutil.which("gcc") or "cc", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
    return exe


@contextlib.contextmanager
def processes(n: int) -> Iterator[int]:
    """N sleeping processes for the duration of the block; yields how many were made."""
    if n <= 0:
        yield 0
        return
    p = subprocess.Popen([str(build_spawner()), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None
        made = int(p.stdout.readline())
        if made < n:
            raise SystemExit(f"only {made} of {n} processes could be made (pid_max, ulimit -u?)")
        yield made
    finally:
        assert p.stdin is not None
        p.stdin.close()
        p.wait(timeout=120)


def timed(fn: Callable[[], object], iterations: int) -> float:
    """Mean microseconds per call over ``iterations`` calls, the GC off."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        return (time.perf_counter() - t0) / iterations * 1e6
    finally:
        gc.enable()


def micro(args: argparse.Namespace) -> dict[str, object]:
    import psutil

    from hvstat._native import ProcessSampler
    from hvstat.models import processes_sample_decoder

    exe = build_floor()
    with processes(args.count):
        sampler = ProcessSampler(json.dumps({"min_uid": 0}))
        sampler.sample()
        time.sleep(0.2)
        first = processes_sample_decoder.decode(sampler.sample())
        for _ in range(3):  # past the first ticks, which read every io: a steady tick's files
            sampler.sample()
        paths = sampler.paths()
        lst = OUT / f"processes.floor.{args.count}.txt"
        lst.write_text("d /proc\n" + "".join(f"w {p}\n" for p in paths))
        attrs = ["cpu_times", "memory_info", "username", "io_counters"]
        list(psutil.process_iter(attrs))  # psutil keeps its Process objects between calls: warm it
        top = None if args.top < 0 else args.top
        per: dict[str, list[float]] = {"hvstat core": [], "hvstat full": [], "hvstat all": [], "psutil": [], "floor (C)": []}
        it = args.iterations
        psutil_it = max(3, it // 10)
        for _ in range(args.repeats):
            per["hvstat core"].append(timed(lambda: sampler.sample(top), it))
            per["hvstat full"].append(timed(lambda: processes_sample_decoder.decode(sampler.sample(top)), it))
            per["hvstat all"].append(timed(lambda: processes_sample_decoder.decode(sampler.sample()), it))
            per["psutil"].append(timed(lambda: list(psutil.process_iter(attrs)), psutil_it))
            per["floor (C)"].append(run_floor([str(exe), "-n", str(it), "-R", "1", "-l", str(lst)])["per_sample_us"][0])
        meta = run_floor([str(exe), "-n", "3", "-R", "1", "-l", str(lst)])
        seen = processes_sample_decoder.decode(sampler.sample(top)).total
    result = {k: stats(v) for k, v in per.items()}
    core, full, ps, floor = (min(per[k]) for k in ("hvstat core", "hvstat full", "psutil", "floor (C)"))
    every = min(per["hvstat all"])
    ratios = {"core / floor": core / floor, "full / floor": full / floor, "all / floor": every / floor, "psutil / full": ps / full, "psutil / core": ps / core}
    print(f"\n{seen} processes ({args.count} spawned), {len(paths)} files, {meta['preads_per_sample']} preads + 1 listing per sample")
    print(f"{'line':<14} {'best us':>10} {'median us':>10} {'us/process':>11}")
    for k, s in result.items():
        print(f"{k:<14} {s['best_us']:>10.0f} {s['median_us']:>10.0f} {s['best_us'] / seen:>11.2f}")
    for k, v in ratios.items():
        print(f"{k:<14} {v:>10.2f}x")
    return {
        "spawned": args.count,
        "processes": seen,
        "processes_first_sample": len(first.processes),
        "files": len(paths),
        "preads_per_sample": meta["preads_per_sample"],
        "iterations": it,
        "psutil_iterations": psutil_it,
        "lines": result,
        "ratios": ratios,
    }


def cpu_ns(pid: int) -> tuple[int, float]:
    """(schedstat ns of every thread, utime + stime seconds) of a process."""
    ns = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            ns += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return ns, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service(args: argparse.Namespace, processes_enabled: bool) -> dict[str, object]:
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "hvstat.toml"
        config.write_text(
            "[monitoring]\nnode_metrics_interval = 5\n"
            f"[processes]\nenabled = {'true' if processes_enabled else 'false'}\ninterval = 5\n"
            f'[storage]\npath = "{tmp}/history.db"\n'
        )
        port = free_port()
        log = open(Path(tmp) / "serve.log", "wb")
        p = subprocess.Popen([args.exe, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                if p.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("hvstat serve did not start:\n" + (Path(tmp) / "serve.log").read_text()[-3000:])
                time.sleep(0.2)
            time.sleep(args.warmup)
            ns0, s0 = cpu_ns(p.pid)
            t0 = time.monotonic()
            time.sleep(args.service_secs)
            ns1, s1 = cpu_ns(p.pid)
            secs = time.monotonic() - t0
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
            host = httpx.get(f"http://127.0.0.1:{port}/status", timeout=5).json()["host"] if processes_enabled else None
        finally:
            p.terminate()
            p.wait(timeout=30)
            log.close()
    durations = {s["name"]: s["last_duration_secs"] for s in health["sources"]}
    out = {
        "processes_enabled": processes_enabled,
        "secs": secs,
        "schedstat_percent_of_a_core": (ns1 - ns0) / 1e9 / secs * 100,
        "stat_percent_of_a_core": (s1 - s0) / secs * 100,
        "last_duration_secs": durations,
        "host_processes": None if host is None else host["processes"],
        "kept_open_fds": None if host is None else host["kept_open_fds"],
    }
    print(
        f"service, processes {'on ' if processes_enabled else 'off'}: {out['schedstat_percent_of_a_core']:.2f} % of a core (schedstat), "
        f"{out['stat_percent_of_a_core']:.2f} % (stat) over {secs:.0f} s; host processes {out['host_processes']}; tick durations {durations}"
    )
    return out


def fds(args: argparse.Namespace) -> dict[str, object]:
    from hvstat._native import ProcessSampler
    from hvstat.models import processes_sample_decoder

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # as the app's lifespan does
    before = len(os.listdir("/proc/self/fd"))
    with processes(args.fd_count):
        sampler = ProcessSampler(json.dumps({"min_uid": 0}))
        t0 = time.perf_counter()
        sampler.sample()
        first_ms = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            s = processes_sample_decoder.decode(sampler.sample())
            times.append((time.perf_counter() - t0) * 1000)
        open_now = len(os.listdir("/proc/self/fd")) - before
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    out = {
        "spawned": args.fd_count,
        "rlimit_nofile": [hard, hard],
        "processes_seen": s.host.processes,
        "unreadable": s.host.unreadable,
        "kept_open_fds": s.host.kept_open_fds,
        "fds_open_in_process": open_now,
        "first_sample_ms": first_ms,
        "sample_ms_best": min(times),
        "sample_ms_median": sorted(times)[2],
    }
    print(
        f"fds with {s.host.processes} processes: {s.host.kept_open_fds} kept open (counted in /proc/self/fd: {open_now}), "
        f"RLIMIT_NOFILE {hard}, unreadable {s.host.unreadable}; sample {min(times):.0f} ms best, first {first_ms:.0f} ms"
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--top", type=int, default=20, help="processes a sample hands over in full (-1: every one)")
    ap.add_argument("--service-count", type=int, default=10_000)
    ap.add_argument("--fd-count", type=int, default=30_000)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--service-secs", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--exe", default=str(Path(sys.executable).with_name("hvstat")))
    ap.add_argument("--skip-micro", action="store_true")
    ap.add_argument("--skip-service", action="store_true")
    ap.add_argument("--skip-fds", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result: dict[str, object] = {"machine": machine()}
    if not args.skip_micro:
        result["micro"] = micro(args)
    if not args.skip_service:
        with processes(args.service_count):
            result["service"] = service(args, True)
            result["service_without_processes"] = service(args, False)
    if not args.skip_fds:
        result["fds"] = fds(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
