#!/usr/bin/env python3
"""`hvstat top`'s own CPU: the share of a core the `hvstat top` process takes while it shows the
live machine in a real terminal (tmux, 80x24 by default), from the sum of
/proc/<pid>/task/*/schedstat (nanoseconds on a CPU, every thread: the Textual loop, the WebSocket
client, the sources' worker threads) over a window, after a warm-up.

Modes:
  server   `hvstat top --url ws://...` against an `hvstat serve` this bench starts (default
           intervals: node 5 s, containers and VMs 10 s, processes the node's); top decodes the
           summary topics and redraws; the server's own CPU is reported beside it
  direct   `hvstat top --direct --interval I`: top samples the machine itself (node, containers,
           VMs, processes) with the core, so its CPU includes every sample

Run it with 1000 real cgroup guests made by bench/containers.py:
  python bench/containers.py --counts 1000 --netns-every 0 --exec 'python bench/top.py --seconds 60'
(or alone: the guests this machine has). Results: bench/README.md, "hvstat top".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def cpu_ns(pid: int) -> int:
    ns = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            ns += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
    return ns


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hvstat() -> str:
    exe = Path(sys.executable).with_name("hvstat")
    return str(exe) if exe.exists() else (shutil.which("hvstat") or "hvstat")


@contextlib.contextmanager
def server(workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    cfg = workdir / "hvstat.toml"
    cfg.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVSTAT_")}
    env["HVSTAT_STORAGE_PATH"] = ""
    log = open(workdir / "serve.log", "wb")
    proc = subprocess.Popen([hvstat(), "serve", "--config", str(cfg), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).read()
                break
            except urllib.error.HTTPError:
                break  # 503 degraded (a slow tick with 1000 guests) is a server that answers
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"hvstat serve did not start: {(workdir / 'serve.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield f"ws://127.0.0.1:{port}/ws", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def top_in_tmux(workdir: Path, argv: list[str], width: int, height: int) -> Iterator[tuple[int, str]]:
    sock = str(workdir / "tmux.sock")
    pidfile = workdir / "top.pid"
    cmd = " ".join(f"'{a}'" for a in argv)
    # Without the HVSTAT_BENCH_* variables of bench/containers.py --exec (hvstat refuses unknown HVSTAT_ ones).
    # top runs as the shell's child (no job control in sh -c: it stays in the terminal's
    # foreground group) so that the pane outlives it: if top dies, its last words stay readable.
    # Its stdin is the terminal, passed as fd 3: sh gives a background command /dev/null.
    shell = (f"exec 3<&0; env -u HVSTAT_BENCH_N -u HVSTAT_BENCH_VARIANT TERM=xterm-256color {cmd} <&3 3<&- & "
             f"echo $! > {pidfile}; wait $!; echo TOP-EXITED $?; sleep 3600")
    subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-s", "b", "-x", str(width), "-y", str(height), shell], check=True)
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text().strip():
            if time.monotonic() > deadline:
                raise SystemExit("top did not start")
            time.sleep(0.1)
        yield int(pidfile.read_text()), sock
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], check=False)


def screen(sock: str) -> str:
    return subprocess.run(["tmux", "-S", sock, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True, check=False).stdout


def measure(pid: int, sock: str, warmup: float, seconds: float, others: dict[str, int]) -> dict[str, object]:
    time.sleep(warmup)
    first = screen(sock)
    try:
        n0, o0, t0 = cpu_ns(pid), {k: cpu_ns(p) for k, p in others.items()}, time.monotonic()
        time.sleep(seconds)
        n1, o1, t1 = cpu_ns(pid), {k: cpu_ns(p) for k, p in others.items()}, time.monotonic()
    except FileNotFoundError:
        raise SystemExit(f"hvstat top (pid {pid}) exited during the run; its terminal:\n{screen(sock)}") from None
    secs = t1 - t0
    out: dict[str, object] = {"seconds": round(secs, 1), "top_percent_of_a_core": round((n1 - n0) / 1e9 / secs * 100, 2)}
    for k in others:
        out[f"{k}_percent_of_a_core"] = round((o1[k] - o0[k]) / 1e9 / secs * 100, 2)
    out["screen"] = first
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", default="server,direct")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=15)
    ap.add_argument("--interval", type=float, default=2.0, help="direct mode's --interval (default 2)")
    ap.add_argument("--size", default="80x24")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    n = os.environ.get("HVSTAT_BENCH_N", "?")
    results = []
    with tempfile.TemporaryDirectory(prefix="hvstat-top-bench-") as tmp:
        work = Path(tmp)
        for mode in args.modes.split(","):
            if mode == "server":
                with server(work) as (url, srv), top_in_tmux(work, [hvstat(), "top", "--url", url], width, height) as (pid, sock):
                    r = measure(pid, sock, args.warmup, args.seconds, {"server": srv.pid})
            else:
                argv = [hvstat(), "top", "--direct", "--interval", str(args.interval)]
                with top_in_tmux(work, argv, width, height) as (pid, sock):
                    r = measure(pid, sock, args.warmup, args.seconds, {})
            r.update(mode=mode, guests=n, size=args.size)
            results.append(r)
            print(f"{mode:6} N={n}: hvstat top {r['top_percent_of_a_core']:.2f} % of a core over {r['seconds']} s"
                  + (f" (hvstat serve {r['server_percent_of_a_core']:.2f} %)" if "server_percent_of_a_core" in r else ""), flush=True)
            print(str(r["screen"]).rstrip(), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
