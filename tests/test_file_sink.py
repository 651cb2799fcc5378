"""The file output ([outputs.file], hvstat/file_sink.py): real samples of this machine written as JSON
lines through real rotation by size and by age (the age through the sink's injected clock, never the
machine's), gzip and the number of files kept; a full disk (a small tmpfs the test mounts) with a
real ``hvstat serve``: /health degraded with the reason, live metrics and /ws going on, the loss
counted, no half line in the file, and writing again once there is room."""

from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.sync.client import connect

from conftest import free_port
from helpers import WAIT_SECS, clean_env, http_ok, hvstat_exe, wait_ready
from hvstat import exposition as P
from hvstat._native import NodeSampler
from hvstat.config import ConfigError, load_settings
from hvstat.file_sink import FileSink, rotated_pattern
from hvstat.models import NodeMetrics, VmStatusChangedMessage, node_metrics_decoder
from hvstat.settings import FileOutputSettings


def live_node() -> NodeMetrics:
    s = NodeSampler()
    s.prime()
    time.sleep(0.05)
    return node_metrics_decoder.decode(s.sample())


class Clock:
    """The sink's wall clock, turned by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def read_lines(path: Path) -> list[bytes]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends in half a line"
    return data.splitlines()


def files(directory: Path, current: str = "samples.jsonl") -> tuple[list[Path], Path]:
    """The rotated files (oldest first) and the current one."""
    pattern = rotated_pattern(str(directory / current))
    return sorted(p for p in directory.iterdir() if pattern.match(p.name)), directory / current


def timestamps(paths: list[Path]) -> list[float]:
    out = []
    for p in paths:
        for line in read_lines(p):
            record = msgspec.json.decode(line)
            assert record["kind"] == "node" and record["node_id"] == "hv-test"
            # The sample is the API's body, field for field: it decodes as the wire type.
            out.append(msgspec.convert(record["sample"], NodeMetrics).timestamp)
    return out


def sink(tmp_path: Path, clock: Clock, **settings: Any) -> FileSink:
    s = FileSink(FileOutputSettings(enabled=True, path=str(tmp_path / "samples.jsonl"), **settings), node_id="hv-test", clock=clock)
    s.start()
    return s


@pytest.mark.unit
def test_rotation_by_size_keeps_n_gzipped_files_of_whole_lines(tmp_path: Path) -> None:
    sample = live_node()
    line = len(msgspec.json.encode(sample)) + 60
    clock = Clock(1_800_000_000.0)
    s = sink(tmp_path, clock, max_bytes=3 * line, max_age=0, keep=3, compress=True)
    n = 20
    try:
        for i in range(n):
            clock.now += 1
            s.on_sample(msgspec.structs.replace(sample, timestamp=1_800_000_000.0 + i))
            assert s.flush()  # the thread reads the clock when it writes: one sample at a time
    finally:
        s.close()
    rotated, current = files(tmp_path)
    assert len(rotated) == 3 and all(p.name.endswith(".jsonl.gz") for p in rotated), rotated
    for p in [*rotated, current]:
        if p.suffix == ".gz":
            assert len(gzip.decompress(p.read_bytes())) <= 3 * line
        else:
            assert p.stat().st_size <= 3 * line
    # The kept files hold the newest samples, in order, none missing between them.
    got = timestamps([*rotated, current])
    assert got == [1_800_000_000.0 + i for i in range(n - len(got), n)]
    assert len(got) >= 7
    h = s.health()
    assert h.status == "ok" and h.samples_written == n and h.samples_dropped == 0 and h.rotations >= 5
    # No temporary file of the compression is left.
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.unit
def test_rotation_by_age_counts_from_the_first_line_across_a_restart(tmp_path: Path) -> None:
    sample = live_node()
    t0 = 1_800_000_000.0
    clock = Clock(t0)
    s = sink(tmp_path, clock, max_age=60, keep=100)
    try:
        # One sample every 25 s by the sink's clock: a new file once the first line is 60 s old.
        for i in range(7):
            clock.now = t0 + 25 * i
            s.on_sample(msgspec.structs.replace(sample, timestamp=clock.now))
            assert s.flush()  # the thread reads the clock when it writes: one sample at a time
    finally:
        s.close()
    rotated, current = files(tmp_path)
    assert [len(read_lines(p)) for p in rotated] == [3, 3] and len(read_lines(current)) == 1
    assert rotated[0].name == "samples-20270115T080115.000Z.jsonl"  # named by the clock at rotation (t0 + 75 s)
    # A restart: the current file's first line (t0 + 150) is what its age counts from.
    clock.now = t0 + 200
    s = sink(tmp_path, clock, max_age=60, keep=100)
    try:
        s.on_sample(msgspec.structs.replace(sample, timestamp=clock.now))  # 50 s old: same file
        assert s.flush()
        clock.now = t0 + 215
        s.on_sample(msgspec.structs.replace(sample, timestamp=clock.now))  # 65 s old: rotated first
        assert s.flush()
    finally:
        s.close()
    rotated, current = files(tmp_path)
    assert [len(read_lines(p)) for p in rotated] == [3, 3, 2] and len(read_lines(current)) == 1
    assert timestamps([*rotated, current]) == [t0 + 25 * i for i in range(7)] + [t0 + 200, t0 + 215]


@pytest.mark.unit
def test_kinds_filter_and_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    sample = live_node()
    s = FileSink(FileOutputSettings(enabled=True, path=str(tmp_path / "s.jsonl"), kinds=["node"], queue_size=2), node_id="n")
    event = VmStatusChangedMessage(node_id="n", timestamp=1.0, vm_id="x", previous=None, status="running")
    s.on_sample(event)  # not a chosen kind: not queued
    for _ in range(3):  # the thread is not started: the third finds the queue full
        s.on_sample(sample)
    assert s.health().samples_dropped == 1
    s.start()
    assert s.flush()
    s.close()
    assert len(read_lines(tmp_path / "s.jsonl")) == 2
    assert s.health().samples_written == 2
    # The same counts on /metrics.
    text = P.render(None, [], [], "1.0", file_output=s).decode()
    assert "hvstat_file_output_up 1" in text and "hvstat_file_output_samples_written_total 2" in text, text
    assert "hvstat_file_output_samples_dropped_total 1" in text and "hvstat_file_output_rotations_total 0" in text
    assert f"hvstat_file_output_bytes {(tmp_path / 's.jsonl').stat().st_size}" in text


@pytest.mark.unit
@pytest.mark.parametrize(
    ("toml", "why"),
    [
        ('[outputs.file]\nenabled = true\nkinds = []\n', r"outputs\.file\.kinds.*empty"),
        ('[outputs.file]\nkinds = ["node", "node"]\n', r"outputs\.file\.kinds.*more than once: node"),
        ('[outputs.file]\nkinds = ["nodes"]\n', r"outputs\.file\.kinds\[0\]"),
        ('[outputs.file]\nmax_bytes = 10\n', r"outputs\.file\.max_bytes.*>= 4096"),
        ('[outputs.file]\nmax_age = -1\n', r"outputs\.file\.max_age"),
        ('[outputs.file]\nkeep = -1\n', r"outputs\.file\.keep"),
        ('[outputs.file]\nmax_bytes = 10000\nrotate = true\n', r"outputs\.file\.rotate.*unknown key"),
        ('[outputs.file]\npath = "/tmp/"\n', r"outputs\.file\.path.*not a file name"),
        ('[outputs.file]\npath = "/tmp"\n', r"outputs\.file\.path.*not a file name"),
        ('[outputs]\nfiles = {}\n', r"outputs\.files.*unknown key"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, toml: str, why: str) -> None:
    config = tmp_path / "hvstat.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=why):
        load_settings(config, environ={})


@pytest.mark.unit
def test_config_path_is_not_the_history_database_and_has_no_variable(tmp_path: Path) -> None:
    config = tmp_path / "hvstat.toml"
    config.write_text(f'[storage]\npath = "{tmp_path}/h.db"\n[outputs.file]\npath = "{tmp_path}/h.db"\n')
    with pytest.raises(ConfigError, match=r"outputs\.file\.path.*history database"):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match=r"HVSTAT_OUTPUTS_FILE: outputs\.file is set in the config file only"):
        load_settings(environ={"HVSTAT_OUTPUTS_FILE": "{}"})
    config.write_text(f'[outputs.file]\nenabled = true\npath = "{tmp_path}/out/s.jsonl"\nkinds = ["node", "vm_status"]\ncompress = true\n')
    f = load_settings(config, environ={}).outputs.file
    assert f.enabled and f.compress and f.kinds == ["node", "vm_status"] and f.max_bytes == 100 << 20


# --- a full disk, with a real hvstat serve ----------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``where`` (unique: under the test's tmp_path), unmounted also on failure."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "hvstat-test", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def serve(workdir: Path, config: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    (workdir / "hvstat.toml").write_text(config)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*hvstat_exe(), "serve", "--config", str(workdir / "hvstat.toml"), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env(HVSTAT_STORAGE_PATH=""),
        )  # fmt: skip
    try:
        wait_ready(http_ok(f"{base}/health"), "hvstat serve answering /health", proc=proc, log=log_path)
        yield base, proc, log_path
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(WAIT_SECS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def file_output(base: str) -> dict[str, Any]:
    health = httpx.get(f"{base}/health", timeout=10).json()
    return {**health["file_output"], "overall": health["status"]}


def metric(base: str, name: str) -> float | None:
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def live_service_goes_on(base: str) -> None:
    assert httpx.get(f"{base}/api/monitoring/node/metrics", timeout=5).status_code == 200
    r = httpx.get(f"{base}/metrics", timeout=5)
    assert r.status_code == 200 and "hvstat_node_load1" in r.text
    with connect(base.replace("http://", "ws://") + "/ws", open_timeout=10) as ws:
        # hello first, then the next node sample as it is taken.
        types = [msgspec.json.decode(ws.recv(timeout=10))["type"] for _ in range(2)]
        assert types == ["hello", "NodeMetrics"], types


@pytest.mark.server
@pytest.mark.root
def test_a_full_disk_degrades_health_loses_no_live_data_and_writes_again(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "512k") as mnt:
        out = mnt / "samples.jsonl"
        config = f"""
[monitoring]
node_metrics_interval = 0.5
[containers]
enabled = false
[vms]
enabled = false
[processes]
enabled = false
[outputs.file]
enabled = true
path = "{out}"
max_bytes = 100000
keep = 2
"""
        with serve(tmp_path, config) as (base, proc, log_path):
            wait_ready(lambda: file_output(base)["samples_written"] >= 2, "the first lines", proc=proc, log=log_path)
            # Fill what is left of the filesystem: the next line does not fit.
            filler = mnt / "filler"
            with contextlib.suppress(OSError), open(filler, "wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            f = wait_ready(lambda: (f := file_output(base))["status"] == "degraded" and f, "file output degraded by ENOSPC", proc=proc, log=log_path)
            assert "No space left on device" in f["error"] and f["overall"] == "degraded", f
            live_service_goes_on(base)
            wait_ready(lambda: file_output(base)["samples_dropped"] >= 3, "samples dropped while the disk is full", proc=proc, log=log_path)
            live_service_goes_on(base)
            assert metric(base, "hvstat_file_output_up") == 0 and (metric(base, "hvstat_file_output_samples_dropped_total") or 0) >= 3
            # Every line in the files is whole: a write that did not fit was cut back.
            for p in mnt.glob("samples*"):
                for line in read_lines(p):
                    msgspec.json.decode(line)
            # Room again: writing goes on, health comes back, and the log says how many were lost.
            filler.unlink()
            f = wait_ready(lambda: (f := file_output(base))["status"] == "ok" and f, "file output ok again", proc=proc, log=log_path)
            written = f["samples_written"]
            assert metric(base, "hvstat_file_output_up") == 1
            wait_ready(lambda: file_output(base)["samples_written"] > written + 2, "writing again", proc=proc, log=log_path)
            text = log_path.read_text()
            assert "file output: cannot write" in text and "No space left on device" in text, text[-3000:]
            assert f"file output: writing to {out} again;" in text and "samples were dropped meanwhile" in text, text[-3000:]
            assert proc.poll() is None
        # The lines written after the room came back are whole too (the last one included: a clean stop).
        lines = [line for p in sorted(mnt.glob("samples*")) for line in read_lines(p)]
        assert lines and all(msgspec.json.decode(line)["kind"] == "node" for line in lines)
        assert len(os.listdir(mnt)) <= 3  # the current file and at most keep = 2 rotated
