"""``hvstat top`` in a real terminal: tmux runs it (80x24, TERM=xterm-256color unless a test says
otherwise) against a real ``hvstat serve`` with real cgroup guests (tests/cgroups.py), and in direct
mode without a server; ``send-keys`` types what a person would (sort, reverse, filter, switch
views, open a detail view, quit) and ``capture-pane`` reads what they would see. Plus unit tests of
the table logic and the header (hvstat/top/model.py)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import cgroups
from conftest import free_port
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready
from hvstat._core import NodeSampler
from hvstat.models import ContainerSummary, node_metrics_decoder
from hvstat.top.model import CONTAINERS, PROCESSES, VIEWS, State, arrange, fmt_bytes, spark_text

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (scripts/setup)")


# --- unit: the model --------------------------------------------------------------------------------


def summary(name: str, cpu: float | None, mem: int | None = 1 << 20) -> ContainerSummary:
    return ContainerSummary(
        id=secrets.token_hex(32), name=name, runtime="docker", cgroup_path=f"/docker/{name}", state="running",
        cpu_usage_percent=cpu, memory_usage_bytes=mem, memory_limit_bytes=None,
    )


@pytest.mark.unit
def test_arrange_sorts_filters_and_puts_unknown_last() -> None:
    rows = [summary("web", 5.0), summary("db", 50.0), summary("new", None), summary("cache", 0.5)]
    names = lambda rs: [r.name for r in rs]
    assert names(arrange(CONTAINERS, rows, "cpu", True, "")) == ["db", "web", "cache", "new"]
    # Ascending too: null stays last (it is unknown, not 0).
    assert names(arrange(CONTAINERS, rows, "cpu", False, "")) == ["cache", "web", "db", "new"]
    assert names(arrange(CONTAINERS, rows, "name", False, "")) == ["cache", "db", "new", "web"]
    assert names(arrange(CONTAINERS, rows, "name", False, "W")) == ["new", "web"]  # case-insensitive substring
    # The filter also matches the id.
    assert names(arrange(CONTAINERS, rows, "cpu", True, rows[1].id[:10])) == ["db"]


@pytest.mark.unit
def test_format_and_header_fit_80_columns() -> None:
    assert [fmt_bytes(v) for v in (None, 0, 1023, 1536, 5 << 30, 150 << 20)] == ["-", "0", "1023", "1.5K", "5.0G", "150M"]
    sampler = NodeSampler(json.dumps({}))
    sampler.prime()
    time.sleep(0.2)
    state = State(source="direct sampling every 2s (no server)")
    assert state.header(80)[1].startswith("waiting")
    state.node = node_metrics_decoder.decode(sampler.sample())
    lines = state.header(80, per_core=True)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].startswith("hvstat top | direct sampling")
    assert lines[1].startswith("CPU ") and " us " in lines[1] and " st " in lines[1]
    assert any(line.startswith("Mem ") and "Load " in line for line in lines)
    assert any(line.startswith("PSI ") and "Disk " in line and "Net " in line for line in lines)
    assert lines[-1].startswith("Alerts: ")


@pytest.mark.unit
def test_every_view_fits_80_columns() -> None:
    """Each column takes its width plus DataTable's padding (one cell either side), the scrollbar
    one more: at 80 columns no view is cut off (the processes view leaves READ and WRITE out), and
    at 120 every column is back."""
    for view in VIEWS:
        shown = view.fit(80)
        assert sum(c.width + 2 for c in shown) + 1 <= 80, (view.name, [c.key for c in shown])
        assert view.fit(120) == view.columns, view.name
    assert [c.key for c in PROCESSES.fit(80)] == ["pid", "user", "name", "cpu", "rss", "mem", "guest"]


@pytest.mark.unit
def test_spark_text_is_on_an_absolute_scale() -> None:
    assert spark_text([0.0, 0.04, 0.0], 3, 1) == ["▁▁▁"]
    assert spark_text([0.0, 50.0, 100.0, float("nan")], 4, 1) == ["▁▄█ "]
    two = spark_text([100.0, 25.0], 2, 2)
    assert two == ["█ ", "█▄"], two


@pytest.mark.unit
def test_sparkline_points_follow_the_guest() -> None:
    state = State()
    a, b = summary("a", 1.0), summary("b", None)
    for i in range(70):
        state.set_containers([msgspec.structs.replace(a, cpu_usage_percent=float(i)), b])
    assert list(state.spark[f"container:{a.id}"]) == [float(i) for i in range(10, 70)]
    assert all(math.isnan(v) for v in state.spark[f"container:{b.id}"])
    state.set_containers([a])  # b vanished: its points go with it
    assert f"container:{b.id}" not in state.spark
    state.backfill(f"container:{a.id}", [1.0, None])
    assert len(state.spark[f"container:{a.id}"]) == 60


# --- the terminal ----------------------------------------------------------------------------------


class Terminal:
    """A detached tmux session of its own (its own server socket: nothing of the user's tmux is
    touched) running one command; the command's exit status is printed after it ends."""

    def __init__(self, workdir: Path, argv: list[str], *, env: dict[str, str], width: int = 80, height: int = 24) -> None:
        self.socket = str(workdir / f"tmux-{secrets.token_hex(4)}")
        cmd = " ".join(shlex.quote(a) for a in argv)
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        shell = f"env -i {envs} {cmd}; echo TOP-EXITED $?; sleep 600"
        self._tmux("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), shell)

    def _tmux(self, *args: str) -> str:
        assert TMUX is not None
        return subprocess.run([TMUX, "-S", self.socket, *args], check=True, capture_output=True, text=True, timeout=10).stdout

    def keys(self, *keys: str) -> None:
        for k in keys:
            self._tmux("send-keys", "-t", "top", k)
            time.sleep(0.15)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "top", "-l", text)

    def screen(self, escapes: bool = False) -> str:
        return self._tmux("capture-pane", "-p", *(("-e",) if escapes else ()), "-t", "top")

    def wait(self, what: str, test: Callable[[str], Any], timeout: float = WAIT_SECS) -> str:
        """The screen, once ``test(screen)`` holds."""
        return wait_ready(lambda: (s if test(s := self.screen()) else None), what, timeout=timeout, every=0.2, log=self.screen)

    def close(self) -> None:
        """Kill the session; `hvstat top` ends on the hangup (checked), and is killed if it did not."""
        pane = children = None
        with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError):
            pane = int(self._tmux("display-message", "-p", "-t", "top", "#{pane_pid}").strip())
            children = [int(c) for c in Path(f"/proc/{pane}/task/{pane}/children").read_text().split()]
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._tmux("kill-server")
        left = []
        for pid in children or ():
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists() and "hvstat" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                left.append(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert not left, f"hvstat top (pid {left}) outlived its terminal by 10 s"


@contextlib.contextmanager
def terminal(workdir: Path, argv: list[str], **kw: Any) -> Iterator[Terminal]:
    env = {k: v for k, v in clean_env().items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "HVSTAT_STORAGE_PATH", "VIRTUAL_ENV")}
    env.setdefault("LANG", "C.UTF-8")
    env["TERM"] = "xterm-256color"
    env.update(kw.pop("env", {}))
    t = Terminal(workdir, argv, env=env, **kw)
    try:
        yield t
    finally:
        t.close()


def meta_roots(tmp_path: Path) -> dict[str, Path]:
    return {k: tmp_path / "meta" / k for k in ("docker_root", "podman_root", "pods_log_root", "pve_root")}


def write_config(tmp_path: Path) -> Path:
    roots = "\n".join(f'{k} = "{v}"' for k, v in meta_roots(tmp_path).items())
    cfg = tmp_path / "hvstat.toml"
    cfg.write_text(f"[monitoring]\nnode_metrics_interval = 1\nvm_metrics_interval = 1\n\n[containers]\n{roots}\n")
    return cfg


def docker_guest(tmp_path: Path, fake_containers: Any, name: str, code: str) -> tuple[str, Any]:
    """A container made as Docker makes one (cgroup docker/<id>, its name in config.v2.json) with
    one process of ``code`` in it."""
    cid = cgroups.hex_id()
    d = meta_roots(tmp_path)["docker_root"] / "containers" / cid
    d.mkdir(parents=True)
    (d / "config.v2.json").write_text(json.dumps({"ID": cid, "Name": f"/{name}", "State": {"Running": True}}))
    guest = fake_containers(f"docker/{cid}")
    proc = guest.spawn(cgroups.py(code))
    cgroups.expect_line(proc, "ready")
    return cid, proc


def row_of(screen: str, name: str) -> int:
    """The screen line index of the table row whose first cell is ``name`` (-1: none)."""
    for i, line in enumerate(screen.splitlines()):
        if line.split()[:1] == [name]:
            return i
    return -1


@contextlib.contextmanager
def server_on(port: int, config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env(),
        )
        try:
            wait_ready(http_ok(f"http://127.0.0.1:{port}/health"), "hvstat serve answering /health", proc=proc, log=log)
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=WAIT_SECS)


def exercise_tables(t: Terminal, busy: str, idle: str) -> None:
    """What both modes must do with two guests, one busy and one idle, on the containers view."""
    s = t.wait("both guests in the table with a CPU number", lambda s: row_of(s, busy) > 0 and row_of(s, idle) > 0 and re.search(rf"^ *{busy} .* \d+\.\d", s, re.M))
    # Default: CPU, highest first.
    assert "sort CPU% desc" in s
    assert row_of(s, busy) < row_of(s, idle), s
    t.keys("r")
    s = t.wait("ascending CPU", lambda s: "sort CPU% asc" in s and 0 < row_of(s, idle) < row_of(s, busy))
    t.keys("r")
    # Sort by name: s steps through the columns (cpu -> mem -> limit -> name).
    for _ in range(3):
        t.keys("s")
    s = t.wait("sorted by name", lambda s: "sort NAME asc" in s)
    assert (row_of(s, busy) < row_of(s, idle)) == (busy < idle), s
    # Filter by typing: only the idle guest is left; Esc clears.
    t.keys("/")
    t.type(idle[-6:])
    t.wait("filtered", lambda s: row_of(s, busy) < 0 and row_of(s, idle) > 0)
    t.keys("Enter")
    # The filter stays in sight (its own line) while it is in effect; Esc clears it.
    t.wait("filter kept", lambda s: row_of(s, busy) < 0 and row_of(s, idle[-6:]) > 0)
    t.keys("Escape")
    t.wait("filter cleared", lambda s: row_of(s, busy) > 0 and row_of(s, idle) > 0 and row_of(s, idle[-6:]) < 0)
    # Views.
    t.keys("2")
    t.wait("VM view", lambda s: "[2 VMs" in s and "ORIGIN" in s)
    t.keys("3")
    # At 80 columns every column of the header is whole, GUEST (the last) included.
    t.wait("processes view, GUEST in sight", lambda s: "[3 Processes]" in s and re.search(r"^ *PID +USER +COMMAND .* GUEST *$", s, re.M))
    t.keys("4")
    # (Its rows are the users at or above [processes] min_uid: root is not one of them.)
    t.wait("users view", lambda s: "[4 Users]" in s and "PROCS" in s)
    t.keys("1")
    t.wait("containers view", lambda s: "[1 Containers" in s and row_of(s, busy) > 0)


def quit_and_check_restored(t: Terminal) -> None:
    t.keys("q")
    s = t.wait("top exited", lambda s: "TOP-EXITED" in s)
    assert "TOP-EXITED 0" in s, s
    # The alternate screen is gone: none of top's screen is left on the terminal.
    assert "hvstat top |" not in s and "Containers" not in s, s


@needs_tmux
@pytest.mark.terminal
@pytest.mark.server
@pytest.mark.cgroups
def test_top_against_a_real_server(tmp_path: Path, fake_containers: Any) -> None:
    busy, idle = f"busy-{secrets.token_hex(3)}", f"idle-{secrets.token_hex(3)}"
    busy_id, busy_proc = docker_guest(tmp_path, fake_containers, busy, cgroups.BUSY)
    docker_guest(tmp_path, fake_containers, idle, cgroups.SLEEP)
    config = write_config(tmp_path)
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    log = tmp_path / "serve.log"
    with server_on(port, config, log) as server, terminal(tmp_path, [*hvstat_exe(), "top", "--url", url]) as t:
        s = t.wait("the header", lambda s: f"server {url}" in s and "CPU " in s and "Mem " in s and "PSI " in s)
        assert "Alerts: none firing" in s
        exercise_tables(t, busy, idle)
        # The server's processes topic: the busy loop is a row of the processes view.
        t.keys("3")
        t.wait("the busy process", lambda s: "[3 Processes]" in s and re.search(rf"^ *{busy_proc.pid} ", s, re.M))
        t.keys("1")
        # The detail view of the busy guest: filter down to it, back to the table, Enter.
        t.keys("/")
        t.type(busy)
        t.keys("Enter", "Enter")
        s = t.wait("the detail view with the full sample", lambda s: f"Container {busy}" in s and "Block I/O" in s and "CPU % (last" in s)
        assert busy_id in s
        t.keys("Escape")
        t.wait("back to the table", lambda s: "[1 Containers" in s)
        # The server goes away: a banner, the last data still shown; it comes back: the banner goes.
        server.terminate()
        server.wait(timeout=WAIT_SECS)
        s = t.wait("the lost-connection banner", lambda s: "lost" in s and "reconnecting" in s)
        assert row_of(s, busy) > 0
        with server_on(port, config, log):
            t.wait("reconnected", lambda s: "reconnecting" not in s and f"server {url}" in s and row_of(s, busy) > 0, timeout=30)
            quit_and_check_restored(t)


@needs_tmux
@pytest.mark.terminal
@pytest.mark.cgroups
@pytest.mark.parametrize("colours", ["256", "mono"])
def test_top_direct_without_a_server(tmp_path: Path, fake_containers: Any, colours: str) -> None:
    busy, idle = f"busy-{secrets.token_hex(3)}", f"idle-{secrets.token_hex(3)}"
    docker_guest(tmp_path, fake_containers, busy, cgroups.BUSY)
    docker_guest(tmp_path, fake_containers, idle, cgroups.SLEEP)
    config = write_config(tmp_path)
    env = {"NO_COLOR": "1", "TERM": "xterm-mono"} if colours == "mono" else {}
    argv = [*hvstat_exe(), "top", "--direct", "--interval", "1", "--config", str(config)]
    with terminal(tmp_path, argv, env=env) as t:
        t.wait("the header", lambda s: "direct sampling every 1s" in s and "CPU " in s)
        exercise_tables(t, busy, idle)
        if colours == "mono":
            # No colour at all: neither 256-colour nor true-colour nor the 16 ANSI colours.
            raw = t.screen(escapes=True)
            assert not re.search(r"\x1b\[[0-9;]*(?:38|48);[25];", raw), raw
        # Filter down to the busy guest, back to the table, open its detail view.
        t.keys("/")
        t.type(busy)
        t.keys("Enter", "Enter")
        t.wait("the detail view", lambda s: f"Container {busy}" in s and "Block I/O" in s and "CPU % (last" in s)
        t.keys("Escape")
        quit_and_check_restored(t)


@needs_tmux
@pytest.mark.terminal
@pytest.mark.cgroups
def test_top_without_a_server_falls_back_to_direct(tmp_path: Path, fake_containers: Any) -> None:
    """No --url and no service on the config's port: top samples the machine itself and says so."""
    config = write_config(tmp_path)
    with config.open("a") as f:
        f.write(f"\n[server]\nport = {free_port()}\n")
    with terminal(tmp_path, [*hvstat_exe(), "top", "--config", str(config)]) as t:
        t.wait("direct mode", lambda s: "direct sampling every 2s (no server)" in s and "CPU " in s)
        quit_and_check_restored(t)


@pytest.mark.unit
def test_textual_is_not_loaded_by_serve() -> None:
    """The service's entry points (cli, the app) do not import Textual: only `hvstat top` does."""
    code = "import sys, hvstat.cli, hvstat.app; print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]", out


@needs_tmux
@pytest.mark.terminal
@pytest.mark.cgroups
def test_top_direct_with_hundreds_of_containers(tmp_path: Path, fake_containers: Any) -> None:
    """Direct mode with 300 guests, started from a shell with the usual soft limit of 1024 open
    files: the container sampler keeps ~20 files per guest open, so without raising the limit (as
    hvstat serve does) it ran out at ~50 guests, the rest read as "empty" with no numbers, and the
    process had no descriptor left for anything else (with ~1000 guests top ended during warm-up,
    bench/top.py). Every guest must read as running, and top must keep going."""
    n = 300
    prefix = f"many{secrets.token_hex(2)}"
    for i in range(n):
        cid = cgroups.hex_id()
        d = meta_roots(tmp_path)["docker_root"] / "containers" / cid
        d.mkdir(parents=True)
        (d / "config.v2.json").write_text(json.dumps({"ID": cid, "Name": f"/{prefix}-{i:03d}", "State": {"Running": True}}))
        proc = fake_containers(f"docker/{cid}").spawn(["sleep", "3600"])
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    config = write_config(tmp_path)
    top = [*hvstat_exe(), "top", "--direct", "--interval", "1", "--config", str(config)]
    argv = ["sh", "-c", 'ulimit -Sn 1024 && exec "$@"', "sh", *top]
    with terminal(tmp_path, argv) as t:
        def counted(s: str) -> bool:
            m = re.search(r"Containers \((\d+)\)", s)
            return m is not None and int(m.group(1)) >= n
        t.wait("every guest in the table", counted, timeout=60)
        # A few ticks later: still running, no guest of ours read as empty, no banner.
        time.sleep(4)
        t.keys("/")
        t.type("empty")
        s = t.wait("filtered on 'empty'", lambda s: "NAME" in s and "empty" in s)
        time.sleep(1)
        s = t.screen()
        assert not re.search(rf"^ *{prefix}-", s, re.M), s
        t.keys("Escape")
        s = t.wait("a guest of ours running with numbers", lambda s: re.search(rf"^ *{prefix}-\d+ .* running +\d+\.\d", s, re.M))
        assert "TOP-EXITED" not in s and "out of file descriptors" not in s, s
        pid = int(t._tmux("display-message", "-p", "-t", "top", "#{pane_pid}").strip())
        top_pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        fds = len(os.listdir(f"/proc/{top_pid}/fd"))
        soft = int(next(line.split()[3] for line in Path(f"/proc/{top_pid}/limits").read_text().splitlines() if line.startswith("Max open files")))
        assert soft > 1024 and fds < soft, (fds, soft)
        quit_and_check_restored(t)


def vm_row(screen: str, token: str) -> str | None:
    """The VMs table row of the test domain ``hvstat-test-<token>`` (its NAME cell may be cut short
    at 80 columns, so the row is found by the filter leaving it alone: the one line starting with
    ``hvstat-te``)."""
    rows = [line for line in screen.splitlines() if line.lstrip().startswith("hvstat-te")]
    return rows[0] if len(rows) == 1 else None


def exercise_vm(t: Terminal, token: str) -> None:
    """The VMs view shows the libvirt guest with a CPU number; its detail view has its full sample."""
    t.keys("2")
    t.keys("/")
    t.type(token)
    t.keys("Enter")
    # NAME ORIGIN STATUS VCPU CPU% ...: running under libvirt, 1 vCPU, a CPU percentage (a number).
    s = t.wait("the guest's row with its CPU", lambda s: (r := vm_row(s, token)) is not None and re.search(r"libvirt +running +1 +\d+\.\d", r))
    t.keys("Enter")
    s = t.wait("the VM detail view", lambda s: f"VM hvstat-test-{token}" in s and "vCPUs" in s and "Disk read" in s)
    assert "1 vCPUs" in s, s
    t.keys("Escape")
    t.wait("back to the VMs table", lambda s: "[2 VMs" in s)


@needs_tmux
@pytest.mark.terminal
@pytest.mark.server
@pytest.mark.libvirt
def test_top_shows_a_libvirt_guest(tmp_path: Path, libvirt_uri: str) -> None:
    """A real libvirt guest (TCG, busy) in the VMs view, through a real server's /ws and sampled
    directly."""
    import virt

    config = tmp_path / "hvstat.toml"
    config.write_text(
        "[monitoring]\nnode_metrics_interval = 1\nvm_metrics_interval = 1\n\n[containers]\nenabled = false\n\n"
        f'[vms]\nlibvirt = "on"\nlibvirt_uri = "{libvirt_uri}"\n'
    )
    with virt.libvirt_domain(mode="busy", vcpus=1) as dom:
        dom.wait_ready()
        port = free_port()
        url = f"ws://127.0.0.1:{port}/ws"
        with server_on(port, config, tmp_path / "serve.log"), terminal(tmp_path, [*hvstat_exe(), "top", "--url", url]) as t:
            t.wait("the header", lambda s: f"server {url}" in s and "CPU " in s)
            exercise_vm(t, dom.token)
            quit_and_check_restored(t)
        argv = [*hvstat_exe(), "top", "--direct", "--interval", "1", "--config", str(config)]
        with terminal(tmp_path, argv) as t:
            t.wait("the header", lambda s: "direct sampling every 1s" in s)
            exercise_vm(t, dom.token)
            quit_and_check_restored(t)


@pytest.mark.unit
def test_banner_shows_a_warning_for_a_while_and_the_feeds_own_first() -> None:
    from hvstat.top.model import WARNING_SHOWN_SECS

    st = State(source="test")
    assert st.banner_text() is None
    st.warning = (1000.0, "sources.vms_libvirt: cannot connect")
    assert "cannot connect" in (st.banner_text(now=1001.0) or "")
    assert st.banner_text(now=1000.0 + WARNING_SHOWN_SECS + 1) is None
    st.banner = "connection lost"
    assert st.banner_text(now=1001.0) == "connection lost"


@needs_tmux
@pytest.mark.terminal
def test_top_shows_a_failing_source_in_the_banner(tmp_path: Path) -> None:
    """A source that fails while top samples directly (libvirt required, nothing listening) is a
    warning in the banner, not text over the screen; after quitting, top says what it warned of."""
    pytest.importorskip("libvirt")
    config = tmp_path / "hvstat.toml"
    config.write_text(
        f"[monitoring]\nnode_metrics_interval = 1\n\n[containers]\nenabled = false\n\n"
        f'[vms]\nlibvirt = "on"\nlibvirt_uri = "qemu+tcp://127.0.0.1:{free_port()}/system"\n'
    )
    argv = [*hvstat_exe(), "top", "--direct", "--interval", "1", "--config", str(config)]
    with terminal(tmp_path, argv) as t:
        s = t.wait("the warning banner", lambda s: re.search(r"^ *warning \d\d:\d\d:\d\d: sources\.vms_libvirt: libvirt", s, re.M) and "cannot connect" in s)
        # Only top's own lines: libvirt's C library no longer writes its error over the screen.
        assert "XML-RPC error" not in s, s
        t.keys("q")
        s = t.wait("top exited", lambda s: "TOP-EXITED" in s)
        assert "TOP-EXITED 0" in s, s
        assert re.search(r"hvstat top: \d+ warning\(s\) while running; the last: sources\.vms_libvirt", s), s


@pytest.mark.unit
def test_top_without_a_terminal_says_so() -> None:
    """Without a terminal (stdin from /dev/null, stdout a pipe), top refuses with a clear error
    instead of spinning on end-of-file: a whole core, found by the benchmark."""
    p = subprocess.run([*hvstat_exe(), "top", "--direct"], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=clean_env(), timeout=30)
    assert p.returncode == 2, p
    assert "needs a terminal" in p.stderr and "hvstat snapshot" in p.stderr, p.stderr
