"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright for Python
(``executable_path="/usr/bin/chromium"``; ``playwright install`` is never run), against a real
``hvstat serve`` with a real cgroup guest (tests/cgroups.py).

One scenario, in the order a person would see it: the page loads and connects, the node numbers
change with each sample, the test's container is in the table, its detail view opens with its
charts, then the server is killed and the banner says so, and once the server is back on the same
port the page recovers by itself and goes on updating (the detail view included). The browser's
console must stay free of errors, except for the failed reconnection attempts while the server is
down, which Chromium logs itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import cgroups
from conftest import free_port, running_server
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install -e '.[test]')")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/setup)"), pytest.mark.server]

# What Chromium itself logs while the server is down: the refused WebSocket handshakes.
RECONNECT_NOISE = re.compile(r"WebSocket connection to 'ws://127\.0\.0\.1:\d+/ws' failed|ERR_CONNECTION_REFUSED")


def meta_roots(tmp_path: Path) -> dict[str, Path]:
    return {k: tmp_path / "meta" / k for k in ("docker_root", "podman_root", "pods_log_root", "pve_root")}


def config_text(tmp_path: Path) -> str:
    roots = "\n".join(f'{k} = "{v}"' for k, v in meta_roots(tmp_path).items())
    return f"[monitoring]\nnode_metrics_interval = 1\nvm_metrics_interval = 1\n\n[containers]\n{roots}\n"


def docker_name(tmp_path: Path, cid: str, name: str) -> None:
    """Docker's own metadata for ``cid``, where hvstat reads container names from."""
    d = meta_roots(tmp_path)["docker_root"] / "containers" / cid
    d.mkdir(parents=True)
    (d / "config.v2.json").write_text(json.dumps({"ID": cid, "Name": f"/{name}", "State": {"Running": True}}))


@contextlib.contextmanager
def server_on(port: int, workdir: Path, log_name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``hvstat serve`` on ``port`` with workdir/hvstat.toml; waits for /health. Killed (SIGKILL,
    as a crash would) and reaped at the end unless the test already stopped it."""
    log_path = workdir / log_name
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(workdir / "hvstat.toml"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
        )
        try:
            wait_ready(http_ok(f"http://127.0.0.1:{port}/health"), "hvstat serve answering /health", proc=proc, log=log_path)
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=WAIT_SECS)


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def canvas_ink(page: Any, selector: str) -> int:
    """How many pixels of the canvas under ``selector`` are drawn (not transparent)."""
    return page.eval_on_selector(
        selector,
        """el => { const c = el.querySelector('canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""",
    )


def inked(page: Any, selector: str, timeout: float = 15.0) -> int:
    """``canvas_ink`` once it is not 0, waiting up to ``timeout``: a chart is drawn on the next
    animation frame, and a line needs two points with a value (a guest's first sample has no
    rates yet), so the points count alone can be ahead of the ink."""
    deadline = time.monotonic() + timeout
    while (n := canvas_ink(page, selector)) == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return n


def node_ts(page: Any) -> float:
    return float(page.get_attribute("#overview", "data-ts") or 0)


def wait_node_after(page: Any, ts: float, timeout: float = 15.0) -> float:
    page.wait_for_function(f"Number(document.querySelector('#overview').dataset.ts || 0) > {ts}", timeout=timeout * 1000)
    return node_ts(page)


@pytest.mark.browser
@pytest.mark.cgroups
@pytest.mark.skipif(cgroups.why_no_cgroups() is not None, reason=str(cgroups.why_no_cgroups()))
def test_dashboard_live_detail_and_restart(tmp_path: Path, fake_containers: Any, browser: Any) -> None:
    cid = cgroups.hex_id()
    guest = fake_containers(f"docker/{cid}")
    docker_name(tmp_path, cid, "dash-web")
    cgroups.expect_line(guest.spawn(cgroups.py(cgroups.SLEEP)), "ready")
    (tmp_path / "hvstat.toml").write_text(config_text(tmp_path))
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    # bypass_csp: the page's CSP forbids eval, which Playwright's wait_for_function uses.
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    console: list[tuple[str, str, str]] = []  # (phase, type, text)
    phase = "up"
    page.on("console", lambda m: console.append((phase, m.type, m.text)))
    page.on("pageerror", lambda e: console.append((phase, "pageerror", str(e))))

    with server_on(port, tmp_path, "serve-1.log") as first:
        page.goto(base + "/")
        assert page.title().endswith("hvstat")
        page.wait_for_selector("#conn[data-state=open]", timeout=15_000)
        # Live node numbers: a new sample arrives and the headline numbers are real percentages.
        t1 = wait_node_after(page, 0)
        t2 = wait_node_after(page, t1)
        assert t2 > t1
        assert re.fullmatch(r"\d+\.\d %", page.inner_text("#cpu-big")), page.inner_text("#cpu-big")
        assert re.fullmatch(r"\d+\.\d %", page.inner_text("#mem-big"))
        assert page.inner_text("#node-name") == socket.gethostname()
        page.wait_for_function("Number(document.querySelector('#chart-cpu').dataset.points) >= 2", timeout=10_000)
        assert inked(page, "#chart-cpu") > 0

        # The test's container, by the name its runtime metadata gives it.
        row = f'#containers tr[data-id="{cid}"]'
        page.wait_for_selector(row, timeout=15_000)
        assert "dash-web" in page.inner_text(row) and "running" in page.inner_text(row)
        # The filter narrows the table to it and back.
        page.fill("#containers-filter", "dash-w")
        page.wait_for_function("document.querySelectorAll('#containers tbody tr[data-id]').length === 1")
        page.fill("#containers-filter", "")

        # Its detail view: history first, then live samples on the container:<id> topic.
        page.click(row)
        page.wait_for_selector("#detail:not([hidden])")
        assert page.inner_text("#detail-title") == "dash-web"
        assert page.url.endswith(f"#/container/{cid}")
        page.wait_for_function("Number(document.querySelector('.detail .chart').dataset.points) >= 2", timeout=15_000)
        assert inked(page, ".detail .chart") > 0
        page.wait_for_function("document.querySelector('#detail-facts').innerText.includes('running')", timeout=10_000)
        before_kill = node_ts(page)
        detail_points = int(page.get_attribute(".detail .chart", "data-points") or 0)

        # The server dies: the banner says so, and the page keeps retrying.
        phase = "down"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=WAIT_SECS)
        page.wait_for_selector("#banner:not([hidden])", timeout=10_000)
        assert "Disconnected, retrying" in page.inner_text("#banner")
        assert page.get_attribute("#conn", "data-state") in ("retrying", "connecting")
        time.sleep(2.0)  # a couple of failed attempts

    # Back on the same port: the page reconnects by itself and goes on, detail view included.
    with server_on(port, tmp_path, "serve-2.log"):
        page.wait_for_selector("#conn[data-state=open]", timeout=30_000)
        phase = "up again"
        assert page.is_hidden("#banner")
        wait_node_after(page, before_kill, timeout=15)
        page.wait_for_function(
            f"Number(document.querySelector('.detail .chart').dataset.points) > {detail_points}", timeout=15_000
        )
        page.wait_for_selector(row)
        # Closing the detail view goes back to the overview.
        page.keyboard.press("Escape")
        page.wait_for_selector("#detail", state="hidden")
        assert not page.url.endswith(cid)

    errors = [(p, t, m) for p, t, m in console if t in ("error", "pageerror") and not (p == "down" and RECONNECT_NOISE.search(m))]
    assert errors == [], errors


@pytest.mark.browser
def test_the_7d_range_draws_the_buckets_storage_kept_from_before(tmp_path: Path, browser: Any) -> None:
    """[storage] already holds two days of the node from 6 days ago (written with the rollup
    store's own writer, a fake clock, before the server starts): the 7d button fetches them from
    the history API at a 1 h step, the API answers from the 1h tier, and the charts draw those
    buckets as min/avg/max (a band under the line of the averages), not live samples."""
    import math

    from hvstat.models import NodeMetrics
    from hvstat.rollups import RollupWriter
    from hvstat.settings import StorageSettings

    db = tmp_path / "state" / "history.db"
    start = (time.time() - 6 * 86400) // 3600 * 3600
    clock = [start]
    w = RollupWriter(StorageSettings(path=str(db)), clock=lambda: clock[0])
    w.start()
    t = start
    while t < start + 2 * 86400:  # every 5 min: 12 samples per hour, memory swinging 40..60 % within each
        clock[0] = t
        swing = math.sin(t / 3600 * 2 * math.pi)
        w.on_sample(NodeMetrics(timestamp=t, cpu_usage=30 + 10 * swing, memory_usage=50 + 10 * swing, disk_usage=10.0, load_average_1m=1.0 + swing, load_average_5m=1.0, load_average_15m=1.0))
        t += 300
    w.flush(60)
    w.close()
    config = "[monitoring]\nnode_metrics_interval = 1\n\n[containers]\nenabled = false\n\n[vms]\nenabled = false\n"
    with running_server(tmp_path, config, env={"HVSTAT_STORAGE_PATH": str(db)}) as base:
        answer = httpx.get(f"{base}/api/monitoring/node/history", params={"since": time.time() - 7 * 86400, "step": 3600, "fields": "memory_usage"}, timeout=10).json()
        assert answer["tier"] == "1h", answer
        old = [ts for ts in answer["timestamps"] if ts < start + 2 * 86400]
        assert len(old) == 48 and old[0] == start, old[:3]
        assert answer["timestamps"][-1] > time.time() - 3600 - 5  # and the hour being filled now (from memory)

        page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        console: list[tuple[str, str]] = []
        page.on("console", lambda m: console.append((m.type, m.text)))
        page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
        page.goto(base + "/")
        wait_node_after(page, 0)
        page.click("#range button[data-secs='604800']")
        assert page.get_attribute("#range button[data-secs='604800']", "aria-pressed") == "true"
        page.wait_for_function("document.querySelector('#range').dataset.tier === '1h'", timeout=15_000)
        # The memory chart: every old bucket (and the hour being filled now), each with its band.
        page.wait_for_function("Number(document.querySelector('#chart-mem').dataset.banded || 0) >= 48", timeout=15_000)
        points = int(page.get_attribute("#chart-mem", "data-points") or 0)
        assert 48 <= points <= 50, points
        assert float(page.get_attribute("#chart-mem", "data-first") or 0) == start
        assert inked(page, "#chart-mem") > 0
        assert page.inner_text("#range-tier") == "1h buckets"
        # Live samples are not pushed into a 7 d chart: its points stay the buckets'.
        wait_node_after(page, wait_node_after(page, 0))
        assert int(page.get_attribute("#chart-mem", "data-points") or 0) == points
        # Back to 1h: live again, the old buckets gone from the chart.
        page.click("#range button[data-secs='3600']")
        page.wait_for_function("document.querySelector('#chart-mem').dataset.first > " + str(time.time() - 7200), timeout=15_000)
        assert page.inner_text("#range-tier") == ""
        page.close()
    errors = [(t, m) for t, m in console if t in ("error", "pageerror")]
    assert errors == [], errors


@pytest.mark.browser
def test_stacked_disks_are_marked_and_left_out_of_the_total(tmp_path: Path, browser: Any) -> None:
    """A recorded host with LVM (dm-0 and dm-1 on nvme0n1, tests/fixtures/hosts/linux-6.8-full) read
    by a real ``hvstat serve``: the disk table marks the stacked devices, and the card's total is the
    sample's ``disk_total`` (nvme0n1 alone), not the sum of the table."""
    import shutil

    tree = tmp_path / "host"
    shutil.copytree(Path(__file__).parent / "fixtures" / "hosts" / "linux-6.8-full", tree, symlinks=True)
    config = (
        "[monitoring]\nnode_metrics_interval = 1\n\n[containers]\nenabled = false\n\n[vms]\nenabled = false\n\n"
        f'[node]\nproc_root = "{tree}/proc"\nsys_root = "{tree}/sys"\nrootfs = "{tree}"\n'
    )
    diskstats = tree / "proc" / "diskstats"
    stop = threading.Event()

    def read_through_lvm() -> None:
        # Every 0.1 s 1 MiB is read through dm-0, so from nvme0n1 too: the same bytes, twice listed.
        lines = diskstats.read_text().splitlines()
        while not stop.wait(0.1):
            for i, line in enumerate(lines):
                f = line.split()
                if f[2] in ("nvme0n1", "dm-0"):
                    f[5] = str(int(f[5]) + 2048)
                    lines[i] = " ".join(f)
            # In place (hvstat keeps the file open, so no rename), and never through an empty file:
            # write_text truncates first, and a tick that read in that window saw no disks at all.
            # The counters only grow, so the new text is never shorter than the old.
            with diskstats.open("r+") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.truncate()

    writer = threading.Thread(target=read_through_lvm, daemon=True)
    writer.start()
    try:
        with running_server(tmp_path, config) as base:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
            page.goto(base + "/")
            page.wait_for_function("document.querySelectorAll('#disks tbody tr').length === 3", timeout=15_000)
            names = [page.inner_text(f"#disks tbody tr:nth-child({i}) td:first-child") for i in (1, 2, 3)]
            assert names == ["nvme0n1", "dm-0 (stacked)", "dm-1 (stacked)"], names
            # A sample with rates: the card's read total is nvme0n1's read (one sample renders both).
            page.wait_for_function("!/^R (\\u2014|0 B)/.test(document.querySelector('#disk-big').innerText)", timeout=15_000)
            big, nvme_read = page.evaluate(
                "() => [document.querySelector('#disk-big').innerText, document.querySelector('#disks tbody tr td:nth-child(2)').innerText]"
            )
            assert big.startswith(f"R {nvme_read} \u00b7"), (big, nvme_read)
            total = httpx.get(f"{base}/api/monitoring/node/metrics", timeout=10).json()["disk_total"]
            assert total["disks"] == ["nvme0n1"] and total["read_bytes_per_sec"] > 0, total
            page.close()
    finally:
        stop.set()
        writer.join()


@pytest.mark.browser
@pytest.mark.libvirt
def test_a_libvirt_guest_in_the_vms_table_and_its_detail_view(tmp_path: Path, browser: Any, libvirt_uri: str) -> None:
    """A real libvirt guest (tests/virt.py, a TCG domain) while a real ``hvstat serve`` samples it
    every second: it is listed in the "Virtual machines" table as running, once (its QEMU's cgroup
    scope is not a row of the containers table), and its row opens its detail view, whose first
    chart gets drawn from history and live samples on the vm:<id> topic."""
    import virt

    config = (
        "[monitoring]\nnode_metrics_interval = 1\nvm_metrics_interval = 1\n\n"
        f'[vms]\nlibvirt = "on"\nlibvirt_uri = "{libvirt_uri}"\n'
    )
    with virt.libvirt_domain(mode="idle", vcpus=1) as dom:
        dom.wait_ready(60)
        with running_server(tmp_path, config) as base:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("#conn[data-state=open]", timeout=15_000)

            row = f'#vms tr[data-id="{dom.uuid}"]'
            page.wait_for_selector(row, timeout=20_000)
            page.wait_for_function("sel => document.querySelector(sel)?.innerText.includes('running')", arg=row, timeout=15_000)
            text = page.inner_text(row)
            assert dom.name in text and "libvirt" in text and "running" in text, text
            # One guest, one row: the VM is in the VMs table once and nowhere in the containers
            # table (which has had its data: its count is drawn from the hello and each summary).
            page.wait_for_function("document.querySelector('#containers-count').innerText.trim() !== ''", timeout=15_000)
            assert page.locator("#vms tbody tr", has_text=dom.name).count() == 1
            assert page.locator("#containers tbody tr", has_text=dom.name).count() == 0, page.inner_text("#containers")

            page.click(row)
            page.wait_for_selector("#detail:not([hidden])")
            assert page.text_content("#detail-kind") == "Virtual machine"
            assert page.inner_text("#detail-title") == dom.name
            assert page.url.endswith(f"#/vm/{dom.uuid}")
            page.wait_for_function("Number(document.querySelector('.detail .chart').dataset.points) >= 2", timeout=20_000)
            assert inked(page, ".detail .chart") > 0
            page.wait_for_function("document.querySelector('#detail-facts').innerText.includes('running')", timeout=10_000)
            assert "libvirt" in page.inner_text("#detail-facts")
            page.keyboard.press("Escape")
            page.wait_for_selector("#detail", state="hidden")
            assert errors == [], errors


TOKEN = "dashboard-test-token-0123456789abcdef"


@pytest.mark.browser
def test_a_server_with_tokens_asks_for_one(tmp_path: Path, browser: Any) -> None:
    """With [server] tokens the page loads (its shell needs no token), says it needs one, takes it
    in the banner (a wrong one is refused), then goes live; ?token= in the URL works too and is
    removed from the address bar. REST calls (history) carry it as a bearer token."""
    config = f'[server]\ntokens = ["{TOKEN}"]\n\n[monitoring]\nnode_metrics_interval = 1\n\n[containers]\nenabled = false\n'
    with running_server(tmp_path, config) as base:
        page = browser.new_page(bypass_csp=True)
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        page.wait_for_selector("#token-form:not([hidden])", timeout=15_000)
        assert "Authentication required" in page.inner_text("#banner")
        assert page.get_attribute("#conn", "data-state") == "auth"
        page.fill("#token-input", "wrong-token-wrong-token-wrong")
        page.click("#token-form button")
        page.wait_for_function("document.querySelector('#banner-text').textContent.includes('invalid token')", timeout=10_000)
        page.fill("#token-input", TOKEN)
        page.click("#token-form button")
        page.wait_for_selector("#conn[data-state=open]", timeout=10_000)
        assert page.is_hidden("#banner")
        wait_node_after(page, wait_node_after(page, 0))
        # The node history came through the bearer token: the charts hold more than the live points
        # (the CPU modes, swap and the disk total have history columns too).
        for chart in ("#chart-mem", "#chart-cpu", "#chart-disk"):
            page.wait_for_function(f"Number(document.querySelector('{chart}').dataset.points) >= 3", timeout=10_000)

        other = browser.new_page(bypass_csp=True)
        other.on("console", lambda m: m.type == "error" and errors.append(m.text))
        other.goto(f"{base}/?token={TOKEN}&range=300")
        other.wait_for_selector("#conn[data-state=open]", timeout=15_000)
        assert "token" not in other.url and other.url.endswith("/?range=300")
        assert errors == [], errors


# The app under uvicorn, its container source replaced by a feeder of N synthetic guests per second
# (argv: port, N): the table's behaviour with a thousand guests, without a thousand cgroups.
SYNTHETIC_SERVER = r"""
import asyncio, random, sys, time
import uvicorn
from hvstat.app import create_app
from hvstat.guests import CONTAINERS
from hvstat.config import ContainerSettings, MonitoringSettings, Settings, VmSettings
from hvstat.models import ContainerMetrics, ContainersSample
port, n = int(sys.argv[1]), int(sys.argv[2])
app = create_app(Settings(monitoring=MonitoringSettings(node_metrics_interval=1), containers=ContainerSettings(enabled=False), vms=VmSettings(enabled=False)))
rng = random.Random(1)
def sample(ts):
    return ContainersSample(timestamp=ts, interval_secs=1.0, host_cpus=2, containers=[ContainerMetrics(
        timestamp=ts, id=f"{i:064x}", name=f"guest-{i:04d}", runtime="docker", cgroup_path=f"/docker/{i:064x}",
        state="running", processes=1, cpu_usage_percent=rng.random() * 50, memory_usage_bytes=rng.randint(1 << 20, 1 << 30),
        memory_limit_bytes=1 << 30, block_read_bytes=0, block_write_bytes=0, network_mode="own",
        network_rx_bytes=0, network_tx_bytes=0) for i in range(n)])
async def feed():
    while not hasattr(app.state, "hvstat"):
        await asyncio.sleep(0.05)
    hub = app.state.hvstat.hub
    hub.kinds = (CONTAINERS, *hub.kinds)
    while True:
        hub.on_sample(sample(time.time()))
        await asyncio.sleep(1)
async def main():
    asyncio.create_task(feed())
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).serve()
asyncio.run(main())
"""


@pytest.mark.browser
def test_a_thousand_guests_keep_the_page_light(tmp_path: Path, browser: Any) -> None:
    """Only the rows in view are in the DOM; sorting, filtering and scrolling work on all of them."""
    port = free_port()
    log_path = tmp_path / "synthetic.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", SYNTHETIC_SERVER, str(port), "1000"], stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        wait_ready(http_ok(f"http://127.0.0.1:{port}/health"), "the synthetic server answering /health", proc=proc, log=log_path)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.querySelector('#containers-count').textContent === '1000'", timeout=20_000)
        rendered = page.eval_on_selector_all("#containers tbody tr[data-id]", "rows => rows.length")
        assert 0 < rendered <= 60, rendered
        # Sorted by CPU, busiest first: the first row is the largest value of the latest summary.
        page.click('#containers th button:text("CPU")')
        page.wait_for_timeout(300)
        cpus = page.eval_on_selector_all("#containers tbody tr[data-id] td:nth-child(4)", "tds => tds.map(td => parseFloat(td.innerText))")
        assert cpus == sorted(cpus, reverse=True) and cpus[0] > 45, cpus[:5]
        # Scrolled to the end: the last rows are rendered, still only a screenful.
        page.click('#containers th button:text("Name")')
        page.eval_on_selector("#containers", "t => { t.parentElement.scrollTop = 1e9; }")
        page.wait_for_selector('#containers tr[data-id$="3e7"]')  # guest-0999
        assert page.eval_on_selector_all("#containers tbody tr[data-id]", "rows => rows.length") <= 60
        page.fill("#containers-filter", "guest-09")
        page.wait_for_function("document.querySelector('#containers-count').textContent === '100 of 1000'")
        assert errors == [], errors
    finally:
        proc.kill()
        proc.wait(timeout=WAIT_SECS)


def test_root_serves_json_to_scripts_and_the_page_to_browsers(serve: str) -> None:
    r = httpx.get(f"{serve}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["service"] == "hvstat" and "/ws" in r.json()["endpoints"]
    assert r.headers["vary"] == "Accept"
    assert httpx.get(f"{serve}/api").json() == r.json()
    html = httpx.get(f"{serve}/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.status_code == 200 and html.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/app.js">' in html.text
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert httpx.get(f"{serve}/", headers={"Accept": "application/json, text/html;q=0.5"}).headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("name", "ctype"),
    [("app.js", "text/javascript"), ("chart.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml"), ("index.html", "text/html")],
)
def test_static_files_have_types_and_revalidate(serve: str, name: str, ctype: str) -> None:
    r = httpx.get(f"{serve}/ui/{name}")
    assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-content-type-options"] == "nosniff"
    etag = r.headers["etag"]
    again = httpx.get(f"{serve}/ui/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/..%2Fapi%2Fui.py", "/ui/../app.py", "/ui/"])
def test_static_files_are_a_fixed_set(serve: str, path: str) -> None:
    r = httpx.get(f"{serve}{path}")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json"), (path, r.text)


def test_every_module_the_page_imports_is_served(serve: str) -> None:
    """app.js and the modules it imports, transitively: each one is served (no build step, no
    file fetched from anywhere else)."""
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        r = httpx.get(f"{serve}/ui/{name}")
        assert r.status_code == 200, name
        todo += re.findall(r'^import .* from "\./([\w.]+)";$', r.text, re.MULTILINE)
        assert "http://" not in r.text and "https://" not in r.text, f"{name} refers to another site"
    assert {"app.js", "chart.js", "conn.js", "table.js", "format.js", "frame.js"} <= seen


@pytest.mark.browser
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="creates a user (useradd)")
def test_the_processes_and_users_panel_shows_a_busy_user(tmp_path: Path, browser: Any) -> None:
    """A user the test creates runs a busy loop: its row is in the users table and the loop in the
    top processes (from REST first, then from /ws), the load status is in the header with its rule;
    sorting by PID and the filters work; at 1400 px and at 390 px. A server with [processes]
    enabled = false shows no panel and the page stays free of errors (no failed subscribe)."""
    name = f"hvdash{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    pw = pwd.getpwnam(name)
    busy = subprocess.Popen(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "/bin/sh", "-c", "while :; do :; done"])
    try:
        config = "[monitoring]\nnode_metrics_interval = 1\n\n[containers]\nenabled = false\n\n[processes]\ninterval = 1\n"
        with running_server(tmp_path, config) as base:
            page = browser.new_page(bypass_csp=True, viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            frames: list[str] = []
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload)[:40])))
            page.goto(base + "/")
            page.wait_for_selector("#users-panel:not([hidden])", timeout=15_000)
            page.wait_for_selector(f'#users tr[data-id="{name}"]', timeout=15_000)
            page.wait_for_selector(f'#procs tr[data-id="{busy.pid}"]', timeout=15_000)
            # The busy loop's row: its command and user; its CPU near one core once it has a rate.
            row = f'#procs tr[data-id="{busy.pid}"]'
            assert page.inner_text(f"{row} td:nth-child(2)") == "sh"
            assert page.inner_text(f"{row} td:nth-child(3)") == name
            page.wait_for_function(
                f"""(() => {{ const t = document.querySelector('{row} td:nth-child(5)')?.textContent ?? '';
                              const v = parseFloat(t); return v >= 50; }})()""",
                timeout=15_000,
            )
            # Live from /ws too: the Processes and Users messages arrive.
            page.wait_for_function("true", timeout=1000)
            deadline = time.monotonic() + 10
            while not (any('"type":"Processes"' in f for f in frames) and any('"type":"Users"' in f for f in frames)) and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            assert any('"type":"Processes"' in f for f in frames) and any('"type":"Users"' in f for f in frames), frames[-10:]
            # The load status, with its rule as the tooltip.
            page.wait_for_selector("#load-status:not([hidden])", timeout=10_000)
            assert page.get_attribute("#load-status", "data-level") in ("light", "medium", "heavy")
            assert "Load status:" in (page.get_attribute("#load-status", "title") or "")
            assert re.search(r"cpu_percent|memory_percent|persistent", page.get_attribute("#load-status", "title") or "")

            def pids() -> list[int]:
                return [int(x) for x in page.eval_on_selector_all("#procs tbody tr[data-id]", "rs => rs.map(r => r.dataset.id)")]

            # Sorting: PID largest first, then smallest first.
            page.click("#procs th:nth-child(1) button")
            assert page.get_attribute("#procs th:nth-child(1)", "aria-sort") == "descending"
            page.wait_for_function("(() => { const ids = [...document.querySelectorAll('#procs tbody tr[data-id]')].map(r => +r.dataset.id); return ids.length > 1 && ids.every((v, i) => i === 0 || ids[i - 1] >= v); })()", timeout=5000)
            page.click("#procs th:nth-child(1) button")
            assert page.get_attribute("#procs th:nth-child(1)", "aria-sort") == "ascending"
            page.wait_for_function("(() => { const ids = [...document.querySelectorAll('#procs tbody tr[data-id]')].map(r => +r.dataset.id); return ids.length > 1 && ids.every((v, i) => i === 0 || ids[i - 1] <= v); })()", timeout=5000)
            # The users table sorts by its columns too (processes: most first).
            page.click("#users th:nth-child(3) button")
            assert page.get_attribute("#users th:nth-child(3)", "aria-sort") == "descending"

            # Filtering: by the user name, only its processes; by nonsense, nothing.
            page.fill("#procs-filter", name)
            page.wait_for_function(f"document.querySelectorAll('#procs tbody tr[data-id]').length >= 1 && [...document.querySelectorAll('#procs tbody tr[data-id] td:nth-child(3)')].every(td => td.textContent === '{name}')", timeout=5000)
            assert busy.pid in pids()
            page.fill("#procs-filter", "no-such-process-anywhere")
            page.wait_for_selector("#procs tr.empty", timeout=5000)
            assert "No match" in page.inner_text("#procs tr.empty")
            page.fill("#procs-filter", "")
            page.fill("#users-filter", name)
            page.wait_for_function(f"(() => {{ const ids = [...document.querySelectorAll('#users tbody tr[data-id]')].map(r => r.dataset.id); return ids.length === 1 && ids[0] === '{name}'; }})()", timeout=5000)
            assert page.inner_text("#users-count").startswith("1 of") or page.inner_text("#users-count") == "1"
            page.fill("#users-filter", "")
            page.screenshot(path=str(tmp_path / "procs-1400.png"), full_page=True)

            # Narrow: the panels stay, the page does not scroll sideways (the tables do, inside).
            page.set_viewport_size({"width": 390, "height": 900})
            page.wait_for_timeout(300)
            assert page.is_visible("#procs-panel") and page.is_visible("#users-panel") and page.is_visible("#load-status")
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, overflow
            assert page.is_visible(f'#users tr[data-id="{name}"]')
            page.screenshot(path=str(tmp_path / "procs-390.png"), full_page=True)
            assert errors == [], errors
            # Closed with its server: left open, it would retry the stopped server and log
            # connection errors into the next part's list (its listener reads `errors` by name).
            page.close()

        off = tmp_path / "off"
        off.mkdir()
        config_off = "[monitoring]\nnode_metrics_interval = 1\n\n[containers]\nenabled = false\n\n[processes]\nenabled = false\n"
        with running_server(off, config_off) as base:
            page = browser.new_page(bypass_csp=True, viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("#conn[data-state=open]", timeout=15_000)
            wait_node_after(page, wait_node_after(page, 0))
            assert page.is_hidden("#users-panel") and page.is_hidden("#procs-panel") and page.is_hidden("#load-status")
            # 404 from /api/processes is the answer "off", not an error the console shows.
            assert [e for e in errors if "404" not in e] == [], errors
    finally:
        busy.kill()
        busy.wait()
        subprocess.run(["pkill", "-KILL", "-u", str(pw.pw_uid)], check=False)
        subprocess.run(["userdel", name], check=False)


def fleet_node_config(name: str, write_url: str, buffer_dir: Path, url: str | None, query_url: str | None) -> str:
    lines = [
        "[server]",
        f'node_name = "{name}"',
        "[monitoring]",
        "node_metrics_interval = 0.5",
        "[containers]",
        "enabled = false",
        "[vms]",
        "enabled = false",
        "[processes]",
        "interval = 2",  # on: the page would log the 404 of /api/processes of a server without it
        "[remote_write]",
        "enabled = true",
        f'url = "{write_url}"',
        f'buffer_dir = "{buffer_dir}"',
        "interval = 0.5",
        "[labels]",
        f'rack = "{name[-1]}"',
    ]
    if url is not None:
        lines.append(f'url = "{url}"')
    if query_url is not None:
        lines += ["[fleet]", f'query_url = "{query_url}"', "within = 60"]
    return "\n".join(lines) + "\n"


@pytest.mark.browser
@pytest.mark.victoriametrics
def test_the_fleet_page_lists_sorts_filters_and_opens_a_node(tmp_path: Path, browser: Any) -> None:
    """Two ``hvstat serve`` write to a real VictoriaMetrics; the first has the fleet view. Its page
    shows the Node | Fleet switch; #/fleet lists both nodes with their numbers; a column header
    sorts; the filter narrows; a click on the node with a `url` label opens that node's own
    dashboard, a click on the one without says how to link it. The second server (no [fleet])
    shows no switch. With the engine stopped, the page says it is unreachable and keeps the rows."""
    import engines

    tag = secrets.token_hex(3)
    names = [f"dash-{tag}-a", f"dash-{tag}-b"]
    ports = [free_port(), free_port()]
    (tmp_path / "engine").mkdir()
    with contextlib.ExitStack() as stack:
        vm_proc_ctx = engines.victoria_metrics(tmp_path / "engine", free_port())
        vm = vm_proc_ctx.__enter__()
        vm_stopped = False
        try:
            for i, name in enumerate(names):
                d = tmp_path / name
                d.mkdir()
                url = f"http://127.0.0.1:{ports[1]}/" if i == 1 else None
                (d / "hvstat.toml").write_text(fleet_node_config(name, vm.write_url, d / "buffer", url, vm.base if i == 0 else None))
                stack.enter_context(server_on(ports[i], d, "serve.log"))
            base = f"http://127.0.0.1:{ports[0]}"
            wait_ready(
                lambda: len(httpx.get(f"{base}/api/fleet/nodes", timeout=10).json().get("nodes", [])) == 2,
                "both nodes in the fleet view",
                every=0.25,
                log=vm.log,
            )

            page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("#views:not([hidden])", timeout=15_000)
            assert page.is_visible("#overview") and page.is_hidden("#fleet")
            page.click("#view-fleet")
            page.wait_for_selector("#fleet:not([hidden])", timeout=5_000)
            assert page.is_hidden("#overview") and page.is_hidden("#range") and page.get_attribute("#view-fleet", "aria-current") == "page"
            page.wait_for_function("document.querySelectorAll('#fleet-nodes tbody tr[data-id]').length === 2", timeout=15_000)
            ids = lambda: page.eval_on_selector_all("#fleet-nodes tbody tr[data-id]", "rs => rs.map(r => r.dataset.id)")  # noqa: E731
            assert ids() == names  # by name, A to Z
            assert page.inner_text("#fleet-count") == "2"
            row = page.locator(f'#fleet-nodes tr[data-id="{names[1]}"] td')
            assert row.nth(1).inner_text() == "rack=b"
            assert row.nth(2).inner_text().endswith("%") and row.nth(3).inner_text().endswith("%")  # CPU, memory: numbers, not the dash
            assert row.nth(6).inner_text() == "\u2014"  # containers: off on these nodes, unknown, not 0
            assert "ago" in row.nth(9).inner_text()
            assert vm.base in page.inner_text("#fleet-note")
            page.click("#fleet-nodes th:nth-child(1) button")  # Node again: Z to A
            page.wait_for_function(f"document.querySelector('#fleet-nodes tbody tr[data-id]').dataset.id === '{names[1]}'", timeout=5_000)
            assert page.get_attribute("#fleet-nodes th:nth-child(1)", "aria-sort") == "descending"
            page.fill("#fleet-filter", "rack=a")
            page.wait_for_function("document.querySelectorAll('#fleet-nodes tbody tr[data-id]').length === 1", timeout=5_000)
            assert ids() == [names[0]] and page.inner_text("#fleet-count") == "1 of 2"
            page.click(f'#fleet-nodes tr[data-id="{names[0]}"]')
            assert "no url label" in page.inner_text("#fleet-note")
            page.fill("#fleet-filter", "")
            with page.expect_popup() as popup_info:
                page.click(f'#fleet-nodes tr[data-id="{names[1]}"]')
            popup = popup_info.value
            popup.wait_for_selector("#conn[data-state=open]", timeout=15_000)
            assert popup.url == f"http://127.0.0.1:{ports[1]}/"
            popup.wait_for_function(f"document.querySelector('#node-name').textContent === '{names[1]}'", timeout=10_000)
            # B has no fleet view: no switch.
            popup.wait_for_timeout(500)
            assert popup.is_hidden("#views")
            popup.close()
            assert errors == [], errors

            # The engine goes away: the note says so, the rows stay.
            vm_proc_ctx.__exit__(None, None, None)
            vm_stopped = True
            page.wait_for_selector("#fleet-note[data-level=error]", timeout=15_000)
            assert "fleet engine unreachable" in page.inner_text("#fleet-note")
            assert len(ids()) == 2
            assert all("503" in e for e in errors), errors  # Chromium logs the failed fetch itself
            page.close()
        finally:
            if not vm_stopped:
                vm_proc_ctx.__exit__(None, None, None)
