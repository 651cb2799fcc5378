"""The QMP client (hvstat.qmp) and the QMP collector (hvstat.sources.vms_qmp).

Against real bare QEMUs (tests/virt.py ``qmp_qemu``: TCG, and KVM for query-stats), each with two
monitor sockets: one for the code under test, one (``vm.qmp``) that the test uses as its oracle and
to drive the VM. Oracles: the QEMU pidfile, raw QMP reads on the second socket taken just before
and just after the poll (every counter hvstat reports must lie between them), ``qemu-img info``
of the disk image, and for what the disk sizes mean, libvirt's ``virsh domstats`` of a domain
whose raw QMP answers go through the same mapping.

Protocol edge cases that QEMU will not produce on demand (events before an answer, a huge answer,
EOF in the middle of a line, an answer that comes too late, a peer that is not QMP) run against
FAKE peers made here: asyncio unix servers in the test process that say exactly what the test
scripts. Each fake says so in its docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import virt
from helpers import WAIT_SECS, wait_ready
from hvstat.models import VmObservation
from hvstat.qmp import QmpClient, QmpConnectionError, QmpError, QmpTimeout
from hvstat.sources import vms_qmp
from hvstat.sources.vms_qmp import (
    IMAGE_KEY,
    NOT_REPORTED,
    DiskImage,
    QmpCollector,
    balloon_from,
    disk_images,
    disks_from,
    kvm_vcpu_stats,
    listened_by,
    vcpus_from,
    vm_status,
)

needs_qemu = pytest.mark.skipif(not Path(virt.QEMU).exists(), reason=f"{virt.QEMU} is not installed")
BALLOON = "/machine/peripheral/bal0"


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def by_id(observations: list[VmObservation]) -> dict[str, VmObservation]:
    return {o.id: o for o in observations}


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT_SECS, every: float = 0.1) -> Any:
    return wait_ready(predicate, str(predicate), timeout=timeout, every=every)


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A short, unique directory in /tmp (unix socket paths must stay under 108 bytes), removed
    with everything in it afterwards."""
    d = Path(tempfile.mkdtemp(prefix="hvq-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def monitor_is_free(path: Path, timeout: float = 2.0) -> bool:
    """A fresh connection gets QEMU's greeting at once: no other client holds this monitor (QEMU
    queues a second client until the first leaves)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        try:
            return s.recv(4096).startswith(b'{"QMP"')
        except TimeoutError:
            return False


# --- fake peers -------------------------------------------------------------------------------------

GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\r\n"  # QEMU ends its lines with CRLF


def event(name: str = "RTC_CHANGE") -> bytes:
    return line({"event": name, "data": {"offset": 0}, "timestamp": {"seconds": 1, "microseconds": 2}})


async def read_command(reader: asyncio.StreamReader) -> dict[str, Any]:
    data = await reader.readline()
    assert data, "the client closed the connection"
    return json.loads(data)


@contextlib.asynccontextmanager
async def fake_server(handler: Handler, name: str = "fake.qmp", directory: Path | None = None) -> AsyncIterator[Path]:
    """A FAKE QMP peer, not QEMU: an asyncio unix server in this process that runs ``handler`` for
    each connection. Yields its socket path (in ``directory``, else in a scratch directory of its
    own); closed and removed afterwards."""
    with contextlib.ExitStack() as stack:
        path = (directory or stack.enter_context(scratch_dir())) / name
        server = await asyncio.start_unix_server(handler, str(path), limit=64 * 1024 * 1024)
        try:
            yield path
        finally:
            server.close()
            await server.wait_closed()
            path.unlink(missing_ok=True)


def mini_qemu(
    answers: dict[str, Any], *, events_before_answers: int = 0, accepted: list[int] | None = None, commands: list[str] | None = None
) -> Handler:
    """A FAKE QEMU monitor: greets, then answers each command from ``answers`` (a value, or an
    Exception instance for an ``error`` answer; a command not in it gets CommandNotFound), echoing
    the id, with ``events_before_answers`` events written before each answer. Appends to
    ``accepted`` per connection and to ``commands`` each command's name."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if accepted is not None:
            accepted.append(1)
        writer.write(line(GREETING))
        try:
            while True:
                data = await reader.readline()
                if not data:
                    return
                cmd = json.loads(data)
                name = cmd["execute"]
                if commands is not None:
                    commands.append(name)
                answer: dict[str, Any]
                if name == "qmp_capabilities":
                    answer = {"return": {}}
                elif name not in answers:
                    answer = {"error": {"class": "CommandNotFound", "desc": f"The command {name} has not been found"}}
                elif isinstance(answers[name], Exception):
                    answer = {"error": {"class": "GenericError", "desc": str(answers[name])}}
                else:
                    answer = {"return": answers[name]}
                if "id" in cmd:
                    answer["id"] = cmd["id"]
                writer.write(b"".join(event() for _ in range(events_before_answers)) + line(answer))
                await writer.drain()
        finally:
            writer.close()

    return handle


# --- the client against real QEMU -----------------------------------------------------------------------


@pytest.mark.qemu
@needs_qemu
def test_client_peer_pid_errors_and_answers() -> None:
    with virt.qmp_qemu(vcpus=1) as vm:

        async def go() -> None:
            async with await QmpClient.connect(str(vm.qmp_path)) as c:
                assert c.pid == vm.pid  # SO_PEERCRED of the daemonized QEMU == its pidfile
                assert c.version is not None and c.version[0] >= 7
                assert (await c.execute("query-status"))["status"] == "running"
                with pytest.raises(QmpError) as e:
                    await c.execute("no-such-command")
                assert e.value.error_class == "CommandNotFound" and "no-such-command" in e.value.desc
                with pytest.raises(QmpError) as e:
                    await c.execute("qom-get", {"path": "/machine/peripheral/nothing-here", "property": "type"})
                assert e.value.error_class == "DeviceNotFound"
                # An error answer leaves the connection usable.
                assert await c.execute("query-name") == {"name": vm.name}
                assert c.dead is None
            assert c.dead is not None
            with pytest.raises(QmpConnectionError):
                await c.execute("query-status")

        run(go())


@pytest.mark.unit
def test_connect_refused_and_missing_socket_raise_connection_errors() -> None:
    with scratch_dir() as d:
        stale = d / "stale.qmp"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(stale))  # bound, never listening: what a killed QEMU leaves behind

        async def go() -> None:
            with pytest.raises(QmpConnectionError, match="refused"):
                await QmpClient.connect(str(stale), timeout=1)
            with pytest.raises(QmpConnectionError, match="No such file"):
                await QmpClient.connect(str(d / "missing.qmp"), timeout=1)

        run(go())


# --- the client against fake peers ----------------------------------------------------------------------


@pytest.mark.unit
def test_events_before_the_answer_are_skipped_never_taken_for_it() -> None:
    """FAKE peer: three events before every answer, including the greeting's negotiation."""

    async def go() -> None:
        async with fake_server(mini_qemu({"query-status": {"status": "paused", "running": False}}, events_before_answers=3)) as path:
            async with await QmpClient.connect(str(path)) as c:
                for _ in range(3):
                    assert await c.execute("query-status") == {"status": "paused", "running": False}
                assert c.events == 3 * 4  # qmp_capabilities and three commands

    run(go())


@pytest.mark.unit
def test_huge_answer_arrives_whole_and_one_past_the_limit_kills_the_connection() -> None:
    """FAKE peer: answers query-blockstats with 8 MiB on one line."""
    big = [{"device": f"disk{i}", "stats": {"rd_bytes": i, "pad": "x" * 1000}} for i in range(8 * 1024)]

    async def go() -> None:
        async with fake_server(mini_qemu({"query-blockstats": big})) as path:
            async with await QmpClient.connect(str(path)) as c:
                answer = await c.execute("query-blockstats", timeout=10)
                assert len(answer) == len(big) and answer[-1]["stats"]["rd_bytes"] == len(big) - 1
            async with await QmpClient.connect(str(path), line_limit=1024 * 1024) as c:
                with pytest.raises(QmpConnectionError, match="longer than 1048576 bytes"):
                    await c.execute("query-blockstats", timeout=10)
                assert c.dead is not None
                with pytest.raises(QmpConnectionError):
                    await c.execute("query-status")

    run(go())


@pytest.mark.unit
def test_eof_in_the_middle_of_an_answer_is_a_dead_connection() -> None:
    """FAKE peer: greets, accepts the capabilities, then sends half an answer and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(line(GREETING))
        cmd = await read_command(reader)
        writer.write(line({"return": {}, "id": cmd["id"]}))
        cmd = await read_command(reader)
        writer.write(b'{"return": {"status": "runn')
        await writer.drain()
        writer.close()

    async def go() -> None:
        async with fake_server(handle) as path:
            c = await QmpClient.connect(str(path))
            try:
                with pytest.raises(QmpConnectionError, match="in the middle of a message"):
                    await c.execute("query-status")
                assert "in the middle" in (c.dead or "")
                with pytest.raises(QmpConnectionError):  # dead at once, nothing is sent
                    await c.execute("query-status")
            finally:
                await c.close()

    run(go())


@pytest.mark.unit
def test_a_late_answer_is_dropped_by_its_id_and_the_connection_goes_on() -> None:
    """FAKE peer: answers the first query-status 0.5 s late (after the client's timeout), then
    answers everything at once."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(line(GREETING))
        n = 0
        while data := await reader.readline():
            cmd = json.loads(data)
            n += 1
            if n == 2:
                await asyncio.sleep(0.5)
            writer.write(line({"return": {"n": n, "cmd": cmd["execute"]}, "id": cmd["id"]}))

    async def go() -> None:
        async with fake_server(handle) as path:
            async with await QmpClient.connect(str(path)) as c:
                with pytest.raises(QmpTimeout):
                    await c.execute("query-status", timeout=0.1)
                late = c.unanswered()
                assert late is not None and late[0] == "query-status"
                # The next command's answer is its own, not the late one of query-status.
                assert await c.execute("query-name", timeout=2) == {"n": 3, "cmd": "query-name"}
                assert c.unanswered() is None and c.dead is None

    run(go())


@pytest.mark.unit
def test_peers_that_do_not_speak_qmp() -> None:
    """FAKE peers: one sends garbage, one sends JSON that is no greeting, one says nothing, one
    answers with something that is neither an answer nor an event."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        await reader.read()

    async def not_greeting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(line({"hello": "world"}))
        await writer.drain()
        await reader.read()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(line(GREETING))
        cmd = await read_command(reader)
        writer.write(line({"something": "else", "id": cmd["id"]}))
        await writer.drain()
        await reader.read()

    async def go() -> None:
        async with fake_server(garbage) as p:
            with pytest.raises(QmpConnectionError, match="not JSON"):
                await QmpClient.connect(str(p), timeout=1)
        async with fake_server(not_greeting) as p:
            with pytest.raises(QmpConnectionError, match="not a QMP greeting"):
                await QmpClient.connect(str(p), timeout=1)
        async with fake_server(silent) as p:
            t = time.monotonic()
            with pytest.raises(QmpTimeout, match="no QMP greeting"):
                await QmpClient.connect(str(p), timeout=0.3)
            assert time.monotonic() - t < 1.5
        async with fake_server(odd) as p:
            with pytest.raises(QmpConnectionError, match="neither an answer nor an event"):
                await QmpClient.connect(str(p), timeout=1)

    run(go())


@pytest.mark.unit
def test_an_error_answer_without_id_belongs_to_the_command_in_flight() -> None:
    """FAKE peer: answers like QEMU does to a request it cannot parse (an error with no id)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(line(GREETING))
        cmd = await read_command(reader)
        writer.write(line({"return": {}, "id": cmd["id"]}))
        await read_command(reader)
        writer.write(line({"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword"}}))
        await reader.read()

    async def go() -> None:
        async with fake_server(handle) as path:
            async with await QmpClient.connect(str(path)) as c:
                with pytest.raises(QmpError, match="JSON parse error"):
                    await c.execute("query-status", timeout=2)

    run(go())


# --- the collector against real QEMUs -------------------------------------------------------------------


def raw_disks(vm: virt.QemuVm) -> dict[str, dict[str, int]]:
    return {e["device"]: e["stats"] for e in vm.qmp("query-blockstats") if e.get("device")}


@pytest.mark.qemu
@needs_qemu
def test_observation_matches_raw_qmp_of_a_busy_guest() -> None:
    """A booted guest doing disk I/O, with balloon stats polling switched on by the test (as
    whoever runs the VM would: hvstat never does). Raw reads on the second socket bracket the poll."""
    with virt.qmp_qemu("io", vcpus=2) as vm:
        vm.wait_ready()
        vm.qmp("qom-set", path=BALLOON, property="guest-stats-polling-interval", value=1)
        wait_for(lambda: vm.qmp("qom-get", path=BALLOON, property="guest-stats")["last-update"] > 0)
        wait_for(lambda: raw_disks(vm)["disk0"]["wr_bytes"] > 0)

        async def go() -> None:
            collector = QmpCollector([str(vm.qmp_path)], 5.0)
            try:
                for _attempt in range(10):
                    before_disks, before_guest = raw_disks(vm), vm.qmp("qom-get", path=BALLOON, property="guest-stats")
                    observations, problems = await collector.poll()
                    after_disks, after_guest = raw_disks(vm), vm.qmp("qom-get", path=BALLOON, property="guest-stats")
                    if before_guest == after_guest:
                        break  # the guest did not report during the poll: the stats must equal both
                else:
                    raise AssertionError("the guest's balloon stats changed during every poll")
                assert problems == {}
                (o,) = observations
                cpus = vm.qmp("query-cpus-fast")
                memory = vm.qmp("query-memory-size-summary")
                assert (o.id, o.name, o.origin) == (vm.name, vm.name, "qmp")  # no -uuid: the socket's stem
                assert (o.status, o.status_reason) == ("running", None)
                assert o.pid == vm.pid
                assert [(v.index, v.tid) for v in o.vcpus] == [(c["cpu-index"], c["thread-id"]) for c in cpus]
                assert all(v.kvm_exits is None for v in o.vcpus)  # TCG: query-stats has nothing
                assert (o.vcpus_current, o.vcpus_max) == (2, 2)
                assert o.memory_max_bytes == memory["base-memory"] + memory["plugged-memory"] == 128 << 20
                assert o.nics is None

                (d,) = o.disks
                assert d.name == "disk0"
                pairs = {
                    "read_bytes": "rd_bytes", "write_bytes": "wr_bytes", "read_ops": "rd_operations",
                    "write_ops": "wr_operations", "flush_ops": "flush_operations", "read_time_ns": "rd_total_time_ns",
                    "write_time_ns": "wr_total_time_ns", "flush_time_ns": "flush_total_time_ns",
                }
                for ours, theirs in pairs.items():
                    lo, hi = before_disks["disk0"][theirs], after_disks["disk0"][theirs]
                    assert lo <= getattr(d, ours) <= hi, (ours, lo, getattr(d, ours), hi)
                assert d.write_bytes > 0 and d.flush_ops > 0

                b = o.balloon
                assert b is not None
                assert b.current_bytes == vm.qmp("query-balloon")["actual"]
                assert b.maximum_bytes == o.memory_max_bytes
                s = after_guest["stats"]
                assert b.last_update == after_guest["last-update"]
                assert (b.available_bytes, b.usable_bytes, b.unused_bytes) == (
                    s["stat-total-memory"], s["stat-available-memory"], s["stat-free-memory"]
                )
                assert (b.disk_caches_bytes, b.swap_in_bytes, b.swap_out_bytes, b.major_faults, b.minor_faults) == (
                    s["stat-disk-caches"], s["stat-swap-in"], s["stat-swap-out"], s["stat-major-faults"], s["stat-minor-faults"]
                )
                assert 0 < b.unused_bytes < b.available_bytes <= 128 << 20
                assert o.unavailable == {}
                # hvstat changed nothing: the interval is still what the test set.
                assert vm.qmp("qom-get", path=BALLOON, property="guest-stats-polling-interval") == 1
            finally:
                await collector.close()

        run(go())


def qemu_img_info(image: Path) -> dict[str, Any]:
    """``qemu-img info`` of an image a running QEMU holds (``-U``: share its lock, read only)."""
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(image)], capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


def raw_file_offset(blockstats: list[dict[str, Any]], device: str) -> int:
    """wr_highest_offset of the image file's node (the format node's ``parent``), as libvirt reads it."""
    (entry,) = [e for e in blockstats if e.get("device") == device]
    return entry["parent"]["stats"]["wr_highest_offset"]


@pytest.mark.qemu
@needs_qemu
def test_disk_image_fields_match_qemu_img_and_raw_qmp() -> None:
    """The guest writes 1 MiB at the start of its 16 MiB qcow2 disk every second (io mode). Oracles:
    ``qemu-img info`` of the image file (the host's view) and raw QMP on the second socket, read
    before and after the poll: the file only grows, so every size must lie between the two."""
    with virt.qmp_qemu("io", vcpus=1) as vm:
        vm.wait_ready()
        wait_for(lambda: raw_disks(vm)["disk0"]["wr_bytes"] >= 1 << 20)  # one round of writes done

        async def go() -> None:
            collector = QmpCollector([str(vm.qmp_path)], 5.0)
            try:
                before_img, before_stats = qemu_img_info(vm.disk), vm.qmp("query-blockstats")
                (o,), problems = await collector.poll()
                after_stats, after_img = vm.qmp("query-blockstats"), qemu_img_info(vm.disk)
                size = vm.disk.stat().st_size
                (block,) = vm.qmp("query-block")
                assert problems == {} and IMAGE_KEY not in o.unavailable
                (d,) = o.disks
                assert d.name == "disk0"
                assert d.path == str(vm.disk) == block["inserted"]["file"]
                assert d.capacity_bytes == before_img["virtual-size"] == after_img["virtual-size"] == virt.DISK_MIB << 20
                assert before_img["actual-size"] <= d.physical_bytes <= after_img["actual-size"]
                # libvirt's allocation: how far into the image file QEMU wrote (not the guest's offset).
                lo, hi = raw_file_offset(before_stats, "disk0"), raw_file_offset(after_stats, "disk0")
                assert lo <= d.allocation_bytes <= hi
                # 1 MiB of data clusters plus the qcow2 header before them, and within the file.
                assert 1 << 20 < d.allocation_bytes <= size
            finally:
                await collector.close()

        run(go())


@pytest.mark.libvirt
@pytest.mark.qemu
@needs_qemu
def test_disk_image_fields_mean_what_libvirt_means() -> None:
    """libvirt's own block.0.path/capacity/allocation/physical (``virsh domstats``) against the
    mapping applied to the same QEMU's raw query-block and query-blockstats (read through libvirt:
    its monitor is libvirt's), for an io guest. Retried until domstats did not change across the read."""
    with virt.libvirt_domain(mode="io", vcpus=1, tap=False) as dom:
        dom.wait_ready(60)
        keys = ("block.0.path", "block.0.capacity", "block.0.allocation", "block.0.physical")

        def raw(command: str) -> Any:
            return json.loads(virt.virsh("qemu-monitor-command", dom.name, json.dumps({"execute": command})))["return"]

        wait_for(lambda: dom.virsh_domstats().get("block.0.wr.bytes", 0) > 0)
        for _attempt in range(10):
            before = dom.virsh_domstats()
            images, blockstats = disk_images(raw("query-block")), raw("query-blockstats")
            after = dom.virsh_domstats()
            if all(before.get(k) == after.get(k) for k in keys):
                break
        else:
            raise AssertionError("libvirt's block sizes changed during every read")
        (d,) = disks_from(blockstats, images)  # -blockdev: named by qdev
        assert (d.path, d.capacity_bytes, d.allocation_bytes, d.physical_bytes) == tuple(after[k] for k in keys)
        assert d.allocation_bytes != blockstats[0]["stats"]["wr_highest_offset"]  # not the guest's offset


@pytest.mark.qemu
@needs_qemu
def test_firmware_only_vm_explains_missing_balloon_stats_and_status_follows_stop_and_cont() -> None:
    with virt.qmp_qemu(vcpus=1) as vm:

        async def go() -> None:
            collector = QmpCollector([str(vm.qmp_path)], 5.0)
            try:
                (o,), problems = await collector.poll()
                assert problems == {} and o.status == "running"
                assert o.balloon is not None and o.balloon.current_bytes == 128 << 20
                assert o.balloon.available_bytes is None and o.balloon.last_update == 0
                assert "guest-stats-polling-interval = 0" in o.unavailable["balloon.guest_stats"]
                assert set(o.unavailable) == {"balloon.guest_stats"}
                # hvstat did not switch polling on.
                assert vm.qmp("qom-get", path=BALLOON, property="guest-stats-polling-interval") == 0

                vm.qmp("stop")  # on the second monitor; the STOP event reaches ours too
                (o,), _ = await collector.poll()
                assert (o.status, o.status_reason) == ("paused", "paused")
                assert "polling is off" in o.unavailable["balloon.guest_stats"]  # remembered, not re-read
                vm.qmp("cont")
                (o,), _ = await collector.poll()
                assert (o.status, o.status_reason) == ("running", None)
                assert collector.connections == {str(vm.qmp_path): vm.pid}  # one connection throughout
            finally:
                await collector.close()
            assert monitor_is_free(vm.qmp_path)  # close() let go of the monitor

        run(go())


@pytest.mark.qemu
@needs_qemu
def test_killed_and_quit_vms_disappear_without_an_exception() -> None:
    with virt.qmp_qemu(vcpus=1) as a, virt.qmp_qemu(vcpus=1) as b, virt.qmp_qemu(vcpus=1) as c:

        async def go() -> None:
            collector = QmpCollector([str(a.qmp_path), str(b.qmp_path), str(c.qmp_path)], 2.0)
            try:
                observations, problems = await collector.poll()
                assert set(by_id(observations)) == {a.name, b.name, c.name} and problems == {}

                os.kill(a.pid, signal.SIGKILL)  # leaves its socket file behind, nobody listening
                wait_for(lambda: not virt._alive(a.pid))  # noqa: SLF001
                b.qmp("quit")  # QEMU removes its sockets on the way out
                wait_for(lambda: not b.qmp_path.exists())

                observations, problems = await collector.poll()
                assert set(by_id(observations)) == {c.name}
                # A stale socket: reported, retried later. Refused on a new connection; reset when
                # the kept one was still open as the process died with unread bytes in it.
                problem = problems[str(a.qmp_path)]
                assert "refused" in problem or "reset by peer" in problem, problem
                assert str(b.qmp_path) not in problems  # gone with its socket: forgotten
                assert set(collector.connections) == {str(c.qmp_path)}

                observations, problems = await collector.poll()  # a is in backoff now
                assert set(by_id(observations)) == {c.name} and "next attempt in" in problems[str(a.qmp_path)]
            finally:
                await collector.close()

        run(go())


def silent_listener(path: Path) -> socket.socket:
    """A FAKE peer: a unix socket that listens and never accepts or says anything."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(8)
    return s


@pytest.mark.qemu
@needs_qemu
def test_sockets_that_are_not_qmp_servers_are_reported_in_time_and_delay_nobody() -> None:
    """FAKE peers beside a real QEMU: two silent listeners, a garbage server, a regular file."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\xffgarbage\n")
        await writer.drain()
        await reader.read()

    with virt.qmp_qemu(vcpus=1) as vm, scratch_dir() as d:
        silent = [silent_listener(d / "silent1.qmp"), silent_listener(d / "silent2.qmp")]
        (d / "plain.qmp").write_text("not a socket\n")

        async def go() -> None:
            async with fake_server(garbage, "garbage.qmp") as g:
                timeout = 1.0
                collector = QmpCollector([str(vm.qmp_path), f"{d}/*.qmp", str(g)], timeout)
                try:
                    t = time.monotonic()
                    observations, problems = await collector.poll()
                    elapsed = time.monotonic() - t
                    # The two silent ones wait out their greeting timeout side by side, not in turn.
                    assert timeout <= elapsed < 1.8 * timeout, elapsed
                    assert [o.id for o in observations] == [vm.name]
                    assert set(problems) == {str(d / "silent1.qmp"), str(d / "silent2.qmp"), str(g), str(d / "plain.qmp")}
                    assert "no QMP greeting within 1s" in problems[str(d / "silent1.qmp")]
                    assert "not JSON" in problems[str(g)]
                    assert "not a unix socket" in problems[str(d / "plain.qmp")]

                    # The failed ones are in backoff: the next poll does not wait for them.
                    t = time.monotonic()
                    observations, problems = await collector.poll()
                    assert time.monotonic() - t < 0.4
                    assert [o.id for o in observations] == [vm.name]
                    assert "next attempt in" in problems[str(d / "silent2.qmp")]
                finally:
                    await collector.close()

        try:
            run(go())
        finally:
            for s in silent:
                s.close()


def counting_server(accepts: list[int]) -> Handler:
    """A FAKE peer that only counts the connections it accepts (and greets like QEMU)."""
    return mini_qemu({"query-status": {"status": "running"}}, accepted=accepts)


@pytest.mark.unit
def test_a_socket_of_an_excluded_pid_is_never_connected() -> None:
    """FAKE peer listening in this process (so its pid is ours, standing in for a libvirt QEMU)."""

    async def go() -> None:
        accepts: list[int] = []
        async with fake_server(counting_server(accepts)) as path:
            collector = QmpCollector([str(path)], 1.0)
            try:
                for _ in range(3):
                    assert await collector.poll(exclude_pids={os.getpid(), 999999999}) == ([], {})
                await asyncio.sleep(0.1)
                assert accepts == [] and collector.connections == {}
                # The same socket without the exclusion: connected (so the counter counts).
                observations, _problems = await collector.poll(exclude_pids={999999999})
                await asyncio.sleep(0.1)
                assert len(accepts) == 1 and [o.id for o in observations] == ["fake"]
                # Once libvirt claims the pid, the connection is dropped.
                assert await collector.poll(exclude_pids={os.getpid()}) == ([], {})
                assert collector.connections == {}
            finally:
                await collector.close()

    run(go())


@pytest.mark.qemu
@needs_qemu
def test_a_real_qemu_of_an_excluded_pid_is_never_connected() -> None:
    with virt.qmp_qemu(vcpus=1) as vm:

        async def go() -> None:
            collector = QmpCollector([str(vm.qmp_path)], 1.0)
            try:
                assert await collector.poll(exclude_pids={vm.pid}) == ([], {})
                assert collector.connections == {}
                assert monitor_is_free(vm.qmp_path)  # nobody took (or queued for) the monitor
            finally:
                await collector.close()

        run(go())


@pytest.mark.root
def test_sockets_under_libvirts_directories_are_never_connected() -> None:
    """FAKE peer bound under /run/libvirt (found directly and through a symlink from elsewhere)."""
    if not Path("/run/libvirt").is_dir():
        pytest.skip("/run/libvirt does not exist here")
    d = Path(f"/run/libvirt/hvstat-test-{uuidlib.uuid4().hex[:8]}")
    d.mkdir()
    try:
        with scratch_dir() as elsewhere:

            async def go() -> None:
                accepts: list[int] = []
                server = await asyncio.start_unix_server(counting_server(accepts), str(d / "vm.qmp"))
                try:
                    (elsewhere / "link.qmp").symlink_to(d / "vm.qmp")
                    for globs in ([str(d / "*.qmp")], [f"/var/run/libvirt/{d.name}/*.qmp"], [str(elsewhere / "*.qmp")]):
                        collector = QmpCollector(globs, 1.0)
                        try:
                            assert await collector.poll() == ([], {}), globs
                        finally:
                            await collector.close()
                    await asyncio.sleep(0.1)
                    assert accepts == []
                finally:
                    server.close()
                    await server.wait_closed()

            run(go())
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.unit
def test_listened_by_finds_the_listening_socket_of_a_pid_without_connecting() -> None:
    with scratch_dir() as d:
        mine = silent_listener(d / "mine.qmp")
        other = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
        try:
            paths = {str(d / "mine.qmp"): os.stat(d / "mine.qmp")}
            assert listened_by(paths, [os.getpid()]) == ({str(d / "mine.qmp")}, None)
            assert listened_by(paths, [other.pid]) == (set(), None)  # it does not listen there
            assert listened_by(paths, [999999999]) == (set(), None)  # a vanished pid owns nothing
        finally:
            other.kill()
            other.wait()
            mine.close()


@pytest.mark.unit
def test_the_second_monitor_of_a_vm_is_left_free() -> None:
    """FAKE QEMU with two sockets answering as one VM (one process: this one): only the first is
    polled."""
    uuid = "8f2b3c1e-0d1a-4c5e-9b7a-112233445566"
    answers = {"query-status": {"status": "running"}, "query-uuid": {"UUID": uuid.upper()}, "query-name": {"name": "twin"}}

    async def go(d: Path) -> None:
        accepts: list[int] = []
        async with fake_server(mini_qemu(answers, accepted=accepts), "a.qmp", d) as a:
            async with fake_server(mini_qemu(answers, accepted=accepts), "b.qmp", d) as b:
                collector = QmpCollector([str(a), str(b)], 1.0)
                try:
                    observations, problems = await collector.poll()
                    # The id is the socket's name; the UUID is kept beside it, lower case.
                    assert [(o.id, o.uuid, o.name) for o in observations] == [("a", uuid, "twin")]
                    assert list(problems) == [str(b)] and str(a) in problems[str(b)]
                    observations, problems = await collector.poll()
                    assert [o.id for o in observations] == ["a"] and list(problems) == [str(b)]
                    assert set(collector.connections) == {str(a)}
                    assert len(accepts) == 2  # b was connected once, then left alone
                finally:
                    await collector.close()

    with scratch_dir() as d:
        run(go(d))


@pytest.mark.qemu
@needs_qemu
def test_without_keep_open_the_monitor_is_free_between_polls() -> None:
    with virt.qmp_qemu(vcpus=1) as vm:

        async def go() -> None:
            collector = QmpCollector([str(vm.qmp_path)], 2.0, keep_open=False)
            try:
                for _ in range(3):
                    (o,), problems = await collector.poll()
                    assert problems == {} and (o.id, o.pid, o.status) == (vm.name, vm.pid, "running")
                    assert collector.connections == {}
                    assert monitor_is_free(vm.qmp_path)
            finally:
                await collector.close()

        run(go())


@pytest.mark.unit
def test_without_keep_open_the_static_facts_are_asked_once_per_qemu() -> None:
    """FAKE QEMU that records the commands it gets."""

    async def go() -> None:
        accepts: list[int] = []
        commands: list[str] = []
        answers = {"query-status": {"status": "running"}, "query-name": {"name": "vm"}}
        async with fake_server(mini_qemu(answers, accepted=accepts, commands=commands)) as path:
            collector = QmpCollector([str(path)], 1.0, keep_open=False)
            try:
                for _ in range(3):
                    (o,), _problems = await collector.poll()
                    assert o.name == "vm"
                await asyncio.sleep(0.05)
                assert len(accepts) == 3
                assert commands.count("qmp_capabilities") == 3 and commands.count("query-status") == 3
                assert commands.count("query-name") == 1 and commands.count("query-uuid") == 1
            finally:
                await collector.close()

    run(go())


@pytest.mark.unit
def test_a_refused_command_marks_its_field_unavailable_and_keeps_the_vm() -> None:
    """FAKE QEMU whose query-blockstats and query-cpus-fast fail, with no balloon, a run state
    QEMU does not have yet and events before every answer."""
    answers = {
        "query-status": {"status": "brand-new-state", "running": False},
        "query-blockstats": RuntimeError("Block layer is busy"),
        "query-cpus-fast": RuntimeError("no CPUs for you"),
        "query-balloon": RuntimeError("No balloon device has been activated"),
        "query-memory-size-summary": {"base-memory": 1 << 30},
        "query-uuid": {"UUID": "00000000-0000-0000-0000-000000000000"},
        "query-name": {},
    }

    async def go() -> None:
        async with fake_server(mini_qemu(answers, events_before_answers=2), "4242.qmp") as path:
            collector = QmpCollector([str(path)], 1.0)
            try:
                (o,), problems = await collector.poll()
                assert problems == {}
                assert (o.id, o.name) == ("4242", "4242")  # the socket's stem (Proxmox: the vmid)
                assert (o.status, o.status_reason) == ("nostate", "unknown QEMU run state 'brand-new-state'")
                assert o.pid == os.getpid()
                assert o.disks == [] and o.vcpus == [] and o.vcpus_current is None and o.balloon is None
                assert o.memory_max_bytes == 1 << 30
                assert o.unavailable["disks"] == "query-blockstats: GenericError: Block layer is busy"
                assert o.unavailable["vcpus"] == "query-cpus-fast: GenericError: no CPUs for you"
                assert o.unavailable["balloon"].startswith("query-balloon: GenericError: No balloon device")
                assert o.unavailable["vcpus_max"].startswith("query-hotpluggable-cpus: CommandNotFound")
            finally:
                await collector.close()

    run(go())


BLOCKSTATS = [{
    "device": "drive-scsi0", "qdev": "scsi0", "node-name": "#block163",
    "stats": {"rd_bytes": 512, "wr_bytes": 4096, "wr_highest_offset": 4096},
    "parent": {"node-name": "#block012", "stats": {"wr_highest_offset": 393216}},
}]
QUERY_BLOCK = [{
    "device": "drive-scsi0", "qdev": "scsi0", "removable": False,
    "inserted": {"file": "/var/lib/vz/images/100/vm-100-disk-0.qcow2", "drv": "qcow2", "node-name": "#block163",
                 "image": {"filename": "/var/lib/vz/images/100/vm-100-disk-0.qcow2", "format": "qcow2",
                           "virtual-size": 34359738368, "actual-size": 1318912}},
}]


@pytest.mark.unit
def test_query_block_is_asked_once_per_qemu_and_again_after_the_refresh_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """FAKE QEMU that records the commands it gets; polled without keep_open (a connection per
    poll), so the answer is kept per QEMU process, not per connection."""
    monkeypatch.setattr(vms_qmp, "IMAGE_REFRESH_SECS", 1.0)
    answers: dict[str, Any] = {
        "query-status": {"status": "running"},
        "query-blockstats": json.loads(json.dumps(BLOCKSTATS)),
        "query-block": json.loads(json.dumps(QUERY_BLOCK)),
    }

    def disk(o: VmObservation) -> tuple[Any, ...]:
        (d,) = o.disks
        return d.name, d.path, d.capacity_bytes, d.physical_bytes, d.allocation_bytes

    async def go() -> None:
        accepts: list[int] = []
        commands: list[str] = []
        async with fake_server(mini_qemu(answers, accepted=accepts, commands=commands), "100.qmp") as path:
            collector = QmpCollector([str(path)], 1.0, keep_open=False)
            try:
                (o,), _ = await collector.poll()
                assert disk(o) == ("drive-scsi0", "/var/lib/vz/images/100/vm-100-disk-0.qcow2", 32 << 30, 1318912, 393216)
                # The image grows and the guest writes further: the allocation (query-blockstats,
                # every poll) follows at once, the physical size (query-block) at the next refresh.
                answers["query-block"][0]["inserted"]["image"]["actual-size"] = 2 << 20
                answers["query-blockstats"][0]["parent"]["stats"]["wr_highest_offset"] = 3 << 20
                for _ in range(2):
                    (o,), _ = await collector.poll()
                    assert disk(o)[3:] == (1318912, 3 << 20)
                assert commands.count("query-block") == 1 and commands.count("query-blockstats") == 3
                await asyncio.sleep(1.0)
                (o,), _ = await collector.poll()
                assert disk(o)[3:] == (2 << 20, 3 << 20)
                assert commands.count("query-block") == 2 and commands.count("query-blockstats") == 4
                assert len(accepts) == 4 and commands.count("query-name") == 1  # one QEMU throughout
                assert IMAGE_KEY not in o.unavailable
            finally:
                await collector.close()

    run(go())


@pytest.mark.unit
def test_a_refused_query_block_leaves_the_image_fields_null_and_keeps_the_vm() -> None:
    """FAKE QEMU whose query-block fails (as it does when QEMU cannot stat an image): the disk
    stays, with its counters and the allocation, and the reason is kept until the next attempt."""
    answers = {
        "query-status": {"status": "running"},
        "query-blockstats": BLOCKSTATS,
        "query-block": RuntimeError("Could not stat image"),
    }

    async def go() -> None:
        commands: list[str] = []
        async with fake_server(mini_qemu(answers, commands=commands), "101.qmp") as path:
            collector = QmpCollector([str(path)], 1.0)
            try:
                for _ in range(2):
                    (o,), problems = await collector.poll()
                    assert problems == {} and (o.id, o.status) == ("101", "running")
                    (d,) = o.disks
                    assert (d.name, d.read_bytes, d.write_bytes, d.allocation_bytes) == ("drive-scsi0", 512, 4096, 393216)
                    assert (d.path, d.capacity_bytes, d.physical_bytes) == (None, None, None)
                    assert o.unavailable[IMAGE_KEY] == "query-block: GenericError: Could not stat image"
                    assert "disks" not in o.unavailable
                assert commands.count("query-block") == 1  # a refusal is not asked again before the refresh
            finally:
                await collector.close()

    run(go())


@pytest.mark.unit
def test_a_stuck_monitor_is_not_asked_again_until_it_answers() -> None:
    """FAKE QEMU that stops answering after its statics (the main loop blocked, say on storage)."""
    gate = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(line(GREETING))
        while data := await reader.readline():
            cmd = json.loads(data)
            if cmd["execute"] == "query-status":
                await gate.wait()
            answer = {"query-status": {"status": "running"}, "qmp_capabilities": {}}.get(cmd["execute"])
            writer.write(line({"return": answer, "id": cmd["id"]} if answer is not None else
                              {"error": {"class": "CommandNotFound", "desc": "no"}, "id": cmd["id"]}))

    async def go() -> None:
        async with fake_server(handle) as path:
            collector = QmpCollector([str(path)], 0.3)
            try:
                (o,), problems = await collector.poll()
                assert problems == {} and o.status == "nostate"
                assert "no answer within 0.3s" in o.unavailable["status"]
                assert o.unavailable["disks"].startswith("not asked: QEMU did not answer query-status")
                t = time.monotonic()
                (o,), problems = await collector.poll()  # still stuck: nothing is sent, no waiting
                assert time.monotonic() - t < 0.2
                assert o.status == "nostate" and o.unavailable["status"].startswith("not asked: QEMU has not answered query-status")
                gate.set()
                await asyncio.sleep(0.1)
                (o,), problems = await collector.poll()
                assert problems == {} and o.status == "running" and "status" not in o.unavailable
            finally:
                await collector.close()

    run(go())


# --- KVM ----------------------------------------------------------------------------------------------


@pytest.mark.qemu
@needs_qemu
def test_kvm_exits_come_from_query_stats() -> None:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable here")
    try:
        cm = virt.qmp_qemu(vcpus=2, kind="kvm")
        vm = cm.__enter__()
    except virt.VirtError as e:
        pytest.skip(f"a KVM QEMU does not start here: {e}")
    try:

        def raw() -> dict[str, dict[str, int]]:
            return kvm_vcpu_stats(vm.qmp("query-stats", target="vcpu", providers=[{"provider": "kvm", "names": ["exits", "halt_exits"]}]))

        async def go() -> None:
            collector = QmpCollector([str(vm.qmp_path)], 5.0)
            try:
                before = raw()
                (o,), problems = await collector.poll()
                after = raw()
                assert problems == {}
                cpus = {c["cpu-index"]: c for c in vm.qmp("query-cpus-fast")}
                assert len(o.vcpus) == 2
                for v in o.vcpus:
                    qom = cpus[v.index]["qom-path"]
                    assert v.tid == cpus[v.index]["thread-id"]
                    assert v.kvm_exits is not None and v.kvm_halt_exits is not None
                    assert before[qom]["exits"] <= v.kvm_exits <= after[qom]["exits"]
                    assert before[qom]["halt_exits"] <= v.kvm_halt_exits <= after[qom]["halt_exits"]
                assert sum(v.kvm_exits or 0 for v in o.vcpus) > 0  # SeaBIOS ran on vCPU 0
            finally:
                await collector.close()

        run(go())
    finally:
        cm.__exit__(None, None, None)


# --- pure mapping, on answers recorded from QEMU 7.2 ---------------------------------------------------


@pytest.mark.unit
def test_run_states_map_onto_vm_status() -> None:
    assert vm_status("running") == ("running", None)
    for s in ("paused", "suspended", "inmigrate", "postmigrate", "prelaunch", "finish-migrate", "restore-vm", "save-vm", "debug", "colo"):
        assert vm_status(s) == ("paused", s)
    assert vm_status("shutdown") == ("shutdown", "shutdown")
    for s in ("guest-panicked", "internal-error", "io-error", "watchdog"):
        assert vm_status(s) == ("crashed", s)
    assert vm_status("something-new") == ("nostate", "unknown QEMU run state 'something-new'")


@pytest.mark.unit
def test_balloon_guest_stats_map_to_libvirt_names_and_unreported_is_null() -> None:
    # qom-get guest-stats of the booted test guest (TESTBED 2), bytes.
    guest = {
        "stats": {
            "stat-swap-in": 0, "stat-swap-out": 0, "stat-major-faults": 0, "stat-minor-faults": 1761,
            "stat-free-memory": 68296704, "stat-total-memory": 97062912, "stat-available-memory": 74035200,
            "stat-disk-caches": 2547712, "stat-htlb-pgalloc": 0, "stat-htlb-pgfail": NOT_REPORTED,
        },
        "last-update": 1795313182,
    }
    b = balloon_from(134217728, guest, 134217728)
    assert (b.current_bytes, b.maximum_bytes, b.last_update) == (134217728, 134217728, 1795313182)
    assert (b.available_bytes, b.usable_bytes, b.unused_bytes, b.disk_caches_bytes) == (97062912, 74035200, 68296704, 2547712)
    assert (b.swap_in_bytes, b.swap_out_bytes, b.major_faults, b.minor_faults) == (0, 0, 0, 1761)
    nothing = balloon_from(67108864, {"stats": dict.fromkeys(guest["stats"], NOT_REPORTED), "last-update": 0}, None)
    assert nothing.current_bytes == 67108864 and nothing.last_update == 0
    assert (nothing.available_bytes, nothing.usable_bytes, nothing.unused_bytes, nothing.minor_faults) == (None, None, None, None)


@pytest.mark.unit
def test_blockstats_are_named_by_device_else_qdev_and_anonymous_nodes_are_skipped() -> None:
    stats = {"rd_bytes": 512, "wr_bytes": 4096, "rd_operations": 1, "wr_operations": 2, "flush_operations": 3,
             "rd_total_time_ns": 52368, "wr_total_time_ns": 7, "flush_total_time_ns": 9, "timed_stats": []}
    answer = [
        {"device": "disk0", "node-name": "#block147", "qdev": "/machine/peripheral-anon/device[0]/virtio-backend", "stats": stats},
        {"device": "", "node-name": "vd1", "qdev": "virtio-disk1", "stats": stats},  # -blockdev + -device id=
        {"device": "", "node-name": "orphan", "stats": stats},  # no backend device: skipped
    ]
    d0, d1 = disks_from(answer)
    assert (d0.name, d1.name) == ("disk0", "virtio-disk1")
    assert (d0.read_bytes, d0.write_bytes, d0.read_ops, d0.write_ops, d0.flush_ops) == (512, 4096, 1, 2, 3)
    assert (d0.read_time_ns, d0.write_time_ns, d0.flush_time_ns, d0.path, d0.capacity_bytes) == (52368, 7, 9, None, None)


@pytest.mark.unit
def test_disk_images_and_allocation_map_like_libvirt() -> None:
    """Shapes recorded from QEMU 7.2: a -drive qcow2 file, a raw block device (a loop device), an
    empty CD-ROM, a -blockdev disk under a throttle filter (named by qdev; QEMU calls such a node
    "json:{...}"), offsets changed to tell the nodes apart; plus a network disk and a disk missing
    from query-block, written by hand (no NBD server here; a hot-plug between two query-blocks)."""
    throttled = ('json:{"throttle-group": "tg0", "driver": "throttle", "file": {"driver": "qcow2", '
                 '"file": {"driver": "file", "filename": "/tmp/a.qcow2"}}}')
    query_block = [
        {"device": "disk0", "qdev": "/machine/peripheral-anon/device[0]/virtio-backend", "inserted": {
            "file": "/tmp/hvstat-vm-aaae1486/disk.qcow2", "drv": "qcow2",
            "image": {"virtual-size": 16777216, "filename": "/tmp/hvstat-vm-aaae1486/disk.qcow2", "format": "qcow2", "actual-size": 1314816}}},
        {"device": "blk0", "qdev": "/machine/peripheral/vblk0/virtio-backend", "inserted": {
            "file": "/dev/loop0", "drv": "raw", "image": {"virtual-size": 8388608, "filename": "/dev/loop0", "format": "raw", "actual-size": 0}}},
        {"device": "cd0", "qdev": "/machine/peripheral-anon/device[1]", "removable": True, "tray_open": False},
        {"device": "", "qdev": "/machine/peripheral/vblk1/virtio-backend", "inserted": {
            "file": throttled, "drv": "throttle", "image": {"virtual-size": 16777216, "filename": throttled, "actual-size": 200704}}},
        {"device": "nbd0", "qdev": "nbd0dev", "inserted": {
            "file": "nbd+unix:///exp?socket=/run/nbd.sock", "drv": "raw", "image": {"virtual-size": 1073741824}}},
    ]
    images = disk_images(query_block)
    assert images == {
        "disk0": DiskImage(path="/tmp/hvstat-vm-aaae1486/disk.qcow2", capacity_bytes=16777216, physical_bytes=1314816),
        "blk0": DiskImage(path="/dev/loop0", capacity_bytes=8388608, physical_bytes=None),  # a device has no blocks: unknown, not 0
        "cd0": DiskImage(),  # no medium
        # The file under the throttle and qcow2 nodes of QEMU's json:{...} name.
        "/machine/peripheral/vblk1/virtio-backend": DiskImage(path="/tmp/a.qcow2", capacity_bytes=16777216, physical_bytes=200704),
        "nbd0": DiskImage(path=None, capacity_bytes=1073741824, physical_bytes=None),  # network storage: no path, no size on the host
    }

    stats = {"rd_bytes": 1, "wr_bytes": 2, "wr_highest_offset": 1048576}
    blockstats = [
        {"device": "disk0", "qdev": "/machine/peripheral-anon/device[0]/virtio-backend", "node-name": "#block158", "stats": stats,
         "parent": {"node-name": "#block092", "stats": {"wr_highest_offset": 1376256}, "driver-specific": {"driver": "file"}}},
        {"device": "cd0", "qdev": "/machine/peripheral-anon/device[1]", "stats": stats},  # no medium, no parent
        {"device": "", "qdev": "/machine/peripheral/vblk1/virtio-backend", "node-name": "t1", "stats": stats,
         "parent": {"node-name": "q1", "stats": {"wr_highest_offset": 65536},
                    "parent": {"node-name": "f1", "stats": {"wr_highest_offset": 327680}, "driver-specific": {"driver": "file"}}}},
        {"device": "new0", "qdev": "new0dev", "stats": stats, "parent": {"stats": {"wr_highest_offset": 0}}},  # hot-plugged since query-block
    ]
    # A level that names its child by node name, and text that is not JSON: no path.
    by_node_name = 'json:{"driver": "throttle", "throttle-group": "tg0", "file": "node-qcow2"}'
    for name in (by_node_name, "json:{not json", 'json:["/tmp/a.qcow2"]', "json:" + '{"file": ' * 100_000):
        (image,) = disk_images([{"device": "x", "inserted": {"file": name, "image": {"virtual-size": 1}}}]).values()
        assert image.path is None and image.capacity_bytes == 1, name

    d0, cd, throttle, new = disks_from(blockstats, images)
    assert (d0.path, d0.capacity_bytes, d0.physical_bytes, d0.allocation_bytes) == ("/tmp/hvstat-vm-aaae1486/disk.qcow2", 16777216, 1314816, 1376256)
    assert (cd.name, cd.path, cd.capacity_bytes, cd.allocation_bytes, cd.read_bytes) == ("cd0", None, None, None, 1)
    assert (throttle.capacity_bytes, throttle.allocation_bytes) == (16777216, 327680)  # the file's offset, under the filter
    assert (new.name, new.path, new.capacity_bytes, new.allocation_bytes) == ("new0", None, None, 0)
    assert [d.path for d in disks_from(blockstats)] == [None] * 4  # no query-block answer


@pytest.mark.unit
def test_vcpus_join_kvm_stats_by_qom_path() -> None:
    cpus = [
        {"thread-id": 4737, "qom-path": "/machine/unattached/device[2]", "cpu-index": 1, "target": "x86_64"},
        {"thread-id": 4736, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"},
    ]
    stats = kvm_vcpu_stats([
        {"provider": "kvm", "qom-path": "/machine/unattached/device[2]", "stats": [{"name": "halt_exits", "value": 0}, {"name": "exits", "value": 0}]},
        {"provider": "kvm", "qom-path": "/machine/unattached/device[0]", "stats": [{"name": "halt_exits", "value": 5}, {"name": "exits", "value": 217}]},
    ])
    v0, v1 = vcpus_from(cpus, stats)
    assert (v0.index, v0.tid, v0.kvm_exits, v0.kvm_halt_exits) == (0, 4736, 217, 5)
    assert (v1.index, v1.tid, v1.kvm_exits, v1.kvm_halt_exits) == (1, 4737, 0, 0)
    assert [(v.tid, v.kvm_exits) for v in vcpus_from(cpus)] == [(4736, None), (4737, None)]
