"""The hub (python/hvstat/hub.py) on its own: fan-out of one encoded Frame, subscribe filters,
the slim summary topics, VMs (one message per VM, per-VM topics, status changes), slow clients
dropped while fast ones keep everything, max_ws_clients, malformed client messages, and the
sources' publish hook. The end of the file drives the same through the ``/ws`` route
under Starlette's TestClient; tests/test_ws.py does it over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import procsamples
from hvstat import __version__
from hvstat.app import create_app
from hvstat.config import ContainerSettings, MonitoringSettings, Settings
from hvstat.guests import CONTAINERS, VMS
from hvstat.hub import CLOSE_TOO_MANY, CLOSE_TOO_SLOW, DEFAULT_TOPICS, MAX_CLIENT_MESSAGE_BYTES, Batch, Client, Frame, Hub
from hvstat.models import (
    AlertTriggeredMessage,
    ContainerMetrics,
    ContainerMetricsMessage,
    ContainersSample,
    ContainersSummaryMessage,
    HelloMessage,
    NodeMetrics,
    NodeMetricsMessage,
    ProcessesMessage,
    UsersMessage,
    VmMetrics,
    VmMetricsMessage,
    VmsSample,
    VmsSummaryMessage,
    VmStatusChangedMessage,
)
from hvstat.store import Store

pytestmark = pytest.mark.unit

T0 = 1_700_000_000.0
ID_A = "a" * 12 + "1" * 52
ID_B = "a" * 12 + "2" * 52  # shares its 12-character prefix with A
ID_C = "c" * 64
VM_1 = "6f1c2d3e-0000-4000-8000-000000000001"
VM_2 = "6f1c2d3e-0000-4000-8000-000000000002"
VM_3 = "6f1c2d3e-0000-4000-8000-000000000003"
VM_NAMES = {VM_1: "web-vm", VM_2: "db-vm", VM_3: "ci-runner"}


def node_sample(ts: float, cpu: float | None = 12.5) -> NodeMetrics:
    return NodeMetrics(
        timestamp=ts, cpu_usage=cpu, memory_usage=40.0, disk_usage=10.0, load_average_1m=0.5, load_average_5m=0.25, load_average_15m=None
    )


def container(cid: str, ts: float, name: str) -> ContainerMetrics:
    return ContainerMetrics(
        timestamp=ts,
        id=cid,
        name=name,
        runtime="docker",
        cgroup_path=f"/docker/{cid}",
        state="running",
        processes=1,
        cpu_usage_percent=1.0,
        memory_usage_bytes=1 << 20,
        memory_limit_bytes="max",
        block_read_bytes=0,
        block_write_bytes=0,
        network_mode="own",
        network_rx_bytes=0,
        network_tx_bytes=0,
    )


def containers_sample(ts: float, ids: tuple[str, ...] = (ID_A, ID_B, ID_C), vanished: tuple[str, ...] = ()) -> ContainersSample:
    names = {ID_A: "web", ID_B: "db", ID_C: "cache"}
    return ContainersSample(timestamp=ts, containers=[container(i, ts, names[i]) for i in ids], vanished=list(vanished))


def vm(vid: str, ts: float, cpu: float | None = 5.0) -> VmMetrics:
    return VmMetrics(
        timestamp=ts,
        id=vid,
        name=VM_NAMES[vid],
        origin="libvirt",
        status="running",
        vcpus=2,
        cpu_usage_percent=cpu,
        cpu_vcpu_percent=None if cpu is None else cpu * 2,
        memory_usage_percent=30.0,
        memory_max_bytes=2 << 30,
        disk_read_bytes=100,
        disk_write_bytes=200,
        disk_read_bytes_per_sec=1.5,
        disk_write_bytes_per_sec=2.5,
        network_rx_bytes=300,
        network_tx_bytes=400,
        network_rx_bytes_per_sec=None,
        network_tx_bytes_per_sec=4.5,
    )


def vms_sample(ts: float, ids: tuple[str, ...] = (VM_1, VM_2, VM_3)) -> VmsSample:
    return VmsSample(timestamp=ts, interval_secs=10.0, host_cpus=8, vms=[vm(i, ts) for i in ids])


def make_hub(max_clients: int = 10, queue_size: int = 8, **kw: Any) -> Hub:
    store = Store()
    store.put_node(node_sample(T0))
    store.put_containers(containers_sample(T0))
    store.put_vms(vms_sample(T0))
    return Hub(store, version="9.9.9", max_clients=max_clients, queue_size=queue_size, node_name="node-1", **kw)


def frames(client: Client) -> list[Frame | Batch]:
    """Everything waiting in the client's queue, taken out: Frames, and Batches (one VM sample on
    ``vms``)."""
    out = []
    while not client.queue.empty():
        out.append(client.queue.get_nowait())
    return out


def flat(items: list[Frame | Batch]) -> list[Frame]:
    return [f for item in items for f in (item if isinstance(item, Batch) else (item,))]


def messages(client: Client) -> list[dict[str, Any]]:
    """The messages waiting, in the order the client would get them."""
    return [msgspec.json.decode(f.data) for f in flat(frames(client))]


def connect(hub: Hub, topics: list[str] | None = None) -> Client:
    """A client past its hello (and its subscription's answer)."""
    c = hub.connect("test")
    assert c is not None
    if topics is not None:
        hub.subscribe(c, topics)
    got = messages(c)
    assert got[0]["type"] == "hello"
    if topics is not None:
        assert got[1]["type"] == "subscribed", got
    return c


# --- hello ----------------------------------------------------------------------------------------------


def test_hello_comes_first_with_the_snapshot() -> None:
    hub = make_hub()
    c = hub.connect("test")
    assert c is not None
    (hello,) = messages(c)
    msgspec.convert(hello, HelloMessage)
    assert hello["type"] == "hello" and hello["version"] == "9.9.9" and hello["node_id"] == "node-1"
    assert set(hello["topics"]) == DEFAULT_TOPICS and hello["queue_size"] == 8
    assert hello["node"]["timestamp"] == T0 and hello["node"]["load_average_15m"] is None
    assert [x["id"] for x in hello["containers"]["containers"]] == [ID_A, ID_B, ID_C]
    assert [x["id"] for x in hello["vms"]["vms"]] == [VM_1, VM_2, VM_3]
    assert hello["vms"]["host_cpus"] == 8 and hello["vms"]["vms"][0]["name"] == "web-vm"


def test_hello_is_encoded_once_per_tick() -> None:
    hub = make_hub()
    a, b = hub.connect("a"), hub.connect("b")
    assert a is not None and b is not None
    fa, fb = frames(a)[0], frames(b)[0]
    assert fa is fb
    hub.store.put_node(node_sample(T0 + 1))
    c = hub.connect("c")
    assert c is not None
    fc = frames(c)[0]
    assert fc is not fa and msgspec.json.decode(fc.data)["node"]["timestamp"] == T0 + 1


def test_hello_without_container_monitoring() -> None:
    hub = make_hub(kinds=(VMS,))
    c = hub.connect("x")
    assert c is not None
    assert messages(c)[0]["containers"] is None


def test_hello_without_vm_monitoring_or_before_the_first_vm_sample() -> None:
    c = make_hub(kinds=(CONTAINERS,)).connect("x")
    assert c is not None and messages(c)[0]["vms"] is None
    hub = Hub(Store(), version="1", max_clients=1, queue_size=2, node_name="n")
    c = hub.connect("y")
    assert c is not None
    (hello,) = messages(c)
    assert hello["node"] is None and hello["containers"] is None and hello["vms"] is None


def test_hello_is_encoded_again_after_a_vm_sample() -> None:
    hub = make_hub()
    a = hub.connect("a")
    hub.store.put_vms(vms_sample(T0 + 1, ids=(VM_2,)))
    b = hub.connect("b")
    assert a is not None and b is not None
    assert [v["id"] for v in messages(b)[0]["vms"]["vms"]] == [VM_2]


# --- fan-out and filters -----------------------------------------------------------------------------------


def test_one_encoding_the_same_bytes_to_every_subscriber() -> None:
    hub = make_hub()
    clients = [connect(hub) for _ in range(5)]
    before = hub.frames_encoded
    hub.publish_node(node_sample(T0 + 1))
    assert hub.frames_encoded == before + 1
    got = [frames(c) for c in clients]
    assert all(len(g) == 1 for g in got)
    first = got[0][0]
    assert all(g[0] is first for g in got) and all(g[0].data is first.data and g[0].text is first.text for g in got)
    assert first.text == first.data.decode()
    m = msgspec.json.decode(first.data)
    msgspec.convert(m, NodeMetricsMessage)
    assert m["type"] == "NodeMetrics" and m["node_id"] == "node-1" and m["timestamp"] == T0 + 1
    assert (m["cpu_usage"], m["memory_usage"], m["disk_usage"]) == (12.5, 40.0, 10.0)
    assert m["load_averages"] == [0.5, 0.25, None]
    assert m["sample"]["timestamp"] == T0 + 1


def test_nothing_is_encoded_for_nobody() -> None:
    hub = make_hub()
    connect(hub, ["alerts"])
    before = hub.frames_encoded
    hub.publish_node(node_sample(T0 + 1))
    hub.on_sample(containers_sample(T0 + 1))
    assert hub.frames_encoded == before


def test_subscribe_filters() -> None:
    hub = make_hub()
    node_only = connect(hub, ["node"])
    everything = connect(hub)
    one = connect(hub, [f"container:{ID_A}"])
    both = connect(hub, ["containers", f"container:{ID_C}"])
    nothing = connect(hub, [])
    hub.publish_node(node_sample(T0 + 1))
    hub.on_sample(containers_sample(T0 + 1))
    assert [m["type"] for m in messages(node_only)] == ["NodeMetrics"]
    assert [m["type"] for m in messages(everything)] == ["NodeMetrics", "ContainerMetrics"]
    (m,) = messages(one)
    msgspec.convert(m, ContainerMetricsMessage)
    assert m["type"] == "ContainerMetrics" and [c["id"] for c in m["containers"]] == [ID_A] and m["vanished"] == []
    # On "containers" already: the per-container message would be a duplicate.
    (m,) = messages(both)
    assert [c["id"] for c in m["containers"]] == [ID_A, ID_B, ID_C]
    assert messages(nothing) == []


def test_per_container_message_is_encoded_once_and_says_when_it_vanished() -> None:
    hub = make_hub()
    a1, a2 = connect(hub, [f"container:{ID_A}"]), connect(hub, [f"container:{ID_A}", "node"])
    c = connect(hub, [f"container:{ID_C}"])
    before = hub.frames_encoded
    hub.on_sample(containers_sample(T0 + 1))
    assert hub.frames_encoded == before + 2  # one for A, one for C; none for "containers"
    (fa1,), (fa2,) = frames(a1), frames(a2)
    assert fa1 is fa2
    frames(c)
    hub.on_sample(containers_sample(T0 + 2, ids=(ID_B, ID_C), vanished=(ID_A,)))
    (m,) = messages(a1)
    assert m["containers"] == [] and m["vanished"] == [ID_A]
    assert [x["id"] for x in messages(c)[0]["containers"]] == [ID_C]
    # Gone and not back: nothing more for A's subscribers.
    hub.on_sample(containers_sample(T0 + 3, ids=(ID_B, ID_C)))
    assert messages(a1) == []


def test_containers_summary_is_the_list_entry_of_each_container() -> None:
    hub = make_hub()
    summary, full, both = connect(hub, ["containers.summary"]), connect(hub, ["containers"]), connect(hub, ["containers", "containers.summary"])
    one = connect(hub, ["containers.summary", f"container:{ID_C}"])
    before = hub.frames_encoded
    hub.on_sample(containers_sample(T0 + 1))
    assert hub.frames_encoded == before + 3  # the full message, the summary, C's own
    (m,) = messages(summary)
    msgspec.convert(m, ContainersSummaryMessage)
    assert m["type"] == "ContainersSummary" and m["node_id"] == "node-1" and m["timestamp"] == T0 + 1
    assert m["containers"][0] == {
        "id": ID_A,
        "name": "web",
        "runtime": "docker",
        "cgroup_path": f"/docker/{ID_A}",
        "state": "running",
        "cpu_usage_percent": 1.0,
        "memory_usage_bytes": 1 << 20,
        "memory_limit_bytes": "max",
    }
    assert [x["type"] for x in messages(full)] == ["ContainerMetrics"]
    assert [x["type"] for x in messages(both)] == ["ContainerMetrics", "ContainersSummary"]
    got = messages(one)
    assert [x["type"] for x in got] == ["ContainersSummary", "ContainerMetrics"]
    assert [c["id"] for c in got[1]["containers"]] == [ID_C]
    # Same bytes for everyone on the topic.
    hub.on_sample(containers_sample(T0 + 2))
    (fs,), (_, fb2) = frames(summary), frames(both)
    assert fs is fb2


def test_summary_of_1000_containers_is_a_fraction_of_the_full_message() -> None:
    """The reason for the slim topic: a table of 1000 guests per tick. (A real container here: 252
    bytes as a summary, 2314 as a full sample; these synthetic ones have fewer fields set.)"""
    ids = tuple(f"{i:064x}" for i in range(1000))
    sample = ContainersSample(
        timestamp=T0,
        containers=[
            msgspec.structs.replace(
                container(cid, T0, f"guest-{i}"),
                cpu_usage_secs_total=1.5,
                memory_working_set_bytes=1 << 20,
                block_read_bytes_per_sec=1.0,
                network_rx_bytes_per_sec=2.0,
                network_interfaces=["eth0"],
            )
            for i, cid in enumerate(ids)
        ],
    )
    hub = make_hub(max_clients=2, queue_size=4)
    full, slim = connect(hub, ["containers"]), connect(hub, ["containers.summary"])
    hub.on_sample(sample)
    (f_full,), (f_slim,) = frames(full), frames(slim)
    assert len(f_slim.data) < len(f_full.data) / 3, (len(f_slim.data), len(f_full.data))


def test_vms_topic_one_message_per_vm_in_one_queue_entry() -> None:
    hub = make_hub()
    on_vms, one, both, summary, alerts = (
        connect(hub, ["vms"]),
        connect(hub, [f"vm:{VM_2}"]),
        connect(hub, ["vms", f"vm:{VM_2}"]),
        connect(hub, ["vms.summary"]),
        connect(hub, ["alerts"]),
    )
    before = hub.frames_encoded
    hub.on_sample(vms_sample(T0 + 1))
    assert hub.frames_encoded == before + 3 + 1  # one per VM, one summary
    (batch,) = frames(on_vms)
    assert isinstance(batch, Batch) and len(batch) == 3
    got = [msgspec.json.decode(f.data) for f in batch]
    for m, vid in zip(got, (VM_1, VM_2, VM_3)):
        msg = msgspec.convert(m, VmMetricsMessage)
        s = msg.sample
        assert m["type"] == "VmMetrics" and msg.node_id == "node-1" and msg.vm_id == vid == s.id and msg.name == VM_NAMES[vid]
        assert msg.timestamp == s.timestamp == T0 + 1
        # The seed's fields are the sample's, in its units (percent, bytes per second).
        assert (msg.cpu_usage, msg.memory_usage) == (s.cpu_usage_percent, s.memory_usage_percent) == (5.0, 30.0)
        assert (msg.disk_read, msg.disk_write, msg.network_rx, msg.network_tx) == (1.5, 2.5, None, 4.5)
    # vm:<id> gets that VM's message: the very same Frame.
    (f_one,) = frames(one)
    assert f_one is batch[1]
    # On "vms" already: no duplicate for vm:<id>.
    (b2,) = frames(both)
    assert b2 is batch
    (m,) = messages(summary)
    msgspec.convert(m, VmsSummaryMessage)
    assert m["type"] == "VmsSummary" and [v["id"] for v in m["vms"]] == [VM_1, VM_2, VM_3] and m["host_cpus"] == 8
    assert m["vms"][0]["cpu_vcpu_percent"] == 10.0 and "disks" not in m["vms"][0]
    assert frames(alerts) == []


def test_vm_messages_are_encoded_only_for_those_who_want_them() -> None:
    hub = make_hub()
    a, b = connect(hub, [f"vm:{VM_3}"]), connect(hub, [f"vm:{VM_3}", "node"])
    connect(hub, ["node"])
    before = hub.frames_encoded
    hub.on_sample(vms_sample(T0 + 1))
    assert hub.frames_encoded == before + 1
    (fa,), (fb,) = frames(a), frames(b)
    assert fa is fb and msgspec.json.decode(fa.data)["vm_id"] == VM_3
    # Gone from the sample: nothing (its VmStatusChanged says so, see below).
    hub.on_sample(vms_sample(T0 + 2, ids=(VM_1,)))
    assert frames(a) == []
    connect(hub, ["alerts"])
    hub2 = make_hub()
    connect(hub2, ["node", "alerts", "containers"])
    before = hub2.frames_encoded
    hub2.on_sample(vms_sample(T0 + 1))
    assert hub2.frames_encoded == before


def test_a_vm_sample_on_vms_takes_one_slot_of_the_queue() -> None:
    hub = make_hub(queue_size=3)
    c = hub.connect("c")  # hello in its queue, default topics (vms among them), never read
    assert c is not None
    hub.on_sample(vms_sample(T0 + 1))
    hub.on_sample(vms_sample(T0 + 2))
    assert c.close_code is None and c.queue.qsize() == 3  # hello + two samples of three VMs each
    hub.on_sample(vms_sample(T0 + 3))
    assert c.close_code == CLOSE_TOO_SLOW


def test_vm_status_changes_go_to_vms_its_summary_and_its_own_topic() -> None:
    hub = make_hub()
    on_vms, summary, mine, other, node = (
        connect(hub, ["vms"]),
        connect(hub, ["vms.summary"]),
        connect(hub, [f"vm:{VM_1}"]),
        connect(hub, [f"vm:{VM_2}"]),
        connect(hub, ["node"]),
    )
    change = VmStatusChangedMessage(node_id="node-1", timestamp=T0 + 1, vm_id=VM_1, name="web-vm", origin="libvirt", previous="running", status="paused", reason="user")
    before = hub.frames_encoded
    hub.publish_vm_status(change)
    assert hub.frames_encoded == before + 1
    got = [frames(c) for c in (on_vms, summary, mine)]
    assert all(len(g) == 1 and g[0] is got[0][0] for g in got)
    m = msgspec.json.decode(got[0][0].data)
    assert m == {**msgspec.to_builtins(change), "type": "VmStatusChanged"}
    assert frames(other) == [] and frames(node) == []


def test_vm_topics_resolve_like_the_rest_routes() -> None:
    hub = make_hub()
    c = connect(hub)
    hub.subscribe(c, ["vm:db-vm", f"vm:{VM_3.upper()}", "vms.summary"])
    (m,) = messages(c)
    assert m == {"type": "subscribed", "topics": [f"vm:{VM_2}", f"vm:{VM_3}", "vms.summary"]}
    assert c.guest_ids["vm"] == {VM_2, VM_3}
    hub.subscribe(c, ["vm:nope"])
    (m,) = messages(c)
    assert m["type"] == "error" and m["error"] == "no such VM" and m["detail"]["topic"] == "vm:nope"
    assert c.guest_ids["vm"] == {VM_2, VM_3}
    off = make_hub(kinds=(CONTAINERS,))
    d = connect(off)
    off.subscribe(d, ["vm:db-vm"])
    (m,) = messages(d)
    assert m["error"] == "VM monitoring is disabled" and m["detail"] == {"topic": "vm:db-vm", "setting": "vms.enabled"}


def test_alerts_topic() -> None:
    hub = make_hub()
    alerts, vms = connect(hub, ["alerts"]), connect(hub, ["vms"])
    alert = msgspec.convert(
        {
            "node_id": "node-1",
            "timestamp": T0,
            "alert_id": "x",
            "rule": "cpu",
            "severity": "high",
            "entity": "node",
            "metric": "cpu_usage",
            "op": ">",
            "value": 95.0,
            "threshold": 90.0,
            "since": T0 - 60,
            "message": "CPU above 90 %",
        },
        AlertTriggeredMessage,
    )
    hub.publish(alert, ("alerts",))
    (m,) = messages(alerts)
    assert m["type"] == "AlertTriggered" and m["alert_id"] == "x"
    assert frames(vms) == []


# --- processes and users ----------------------------------------------------------------------------------


def processes_sample(ts: float) -> Any:
    users = [procsamples.user("alice", 1000, cpu=150.0), procsamples.user("bob", 1001, cpu=5.0, heavy=True)]
    procs = [procsamples.process(100 + i, f"p{i}", "alice" if i % 2 else "bob", 1000 + i % 2, cpu=float(i)) for i in range(30)]
    return procsamples.sample(ts, users, procs)


def test_processes_and_users_topics_encoded_once_top_n_by_cpu() -> None:
    hub = make_hub(processes_top=3)
    procs_a, procs_b, users, both, node = (
        connect(hub, ["processes"]),
        connect(hub, ["processes"]),
        connect(hub, ["users"]),
        connect(hub, ["processes", "users"]),
        connect(hub),
    )
    before = hub.frames_encoded
    hub.on_sample(processes_sample(T0))
    assert hub.frames_encoded == before + 2  # one Processes, one Users, whoever follows them
    (fa,), (fb,) = flat(frames(procs_a)), flat(frames(procs_b))
    assert fa is fb
    m = msgspec.json.decode(fa.data)
    assert m["type"] == "Processes" and m["node_id"] == "node-1" and m["total"] == 30
    assert [p["pid"] for p in m["processes"]] == [129, 128, 127]
    assert m["status"]["level"] == "light" and m["host"]["processes"] == 30
    (u,) = messages(users)
    assert u["type"] == "Users" and [x["user"] for x in u["users"]] == ["alice", "bob"]
    assert u["status"]["persistent_users"] == ["bob"]
    assert [x["type"] for x in messages(both)] == ["Processes", "Users"]
    assert frames(node) == []  # not a default topic
    msgspec.convert(m, ProcessesMessage)
    msgspec.convert(u, UsersMessage)


def test_nothing_is_encoded_for_processes_without_subscribers() -> None:
    hub = make_hub(processes_top=3)
    connect(hub)
    before = hub.frames_encoded
    hub.on_sample(processes_sample(T0))
    assert hub.frames_encoded == before


def test_process_topics_when_process_monitoring_is_off() -> None:
    hub = make_hub()  # processes_top None: the source does not run
    c = connect(hub)
    hub.subscribe(c, ["node", "users"])
    (m,) = messages(c)
    assert m["error"] == "process monitoring is disabled" and m["detail"] == {"topic": "users", "setting": "processes.enabled"}
    assert c.topics == DEFAULT_TOPICS


# --- slow clients and limits ------------------------------------------------------------------------------


def test_slow_client_is_dropped_and_the_fast_one_gets_everything() -> None:
    hub = make_hub(queue_size=4)
    fast = connect(hub)
    slow = hub.connect("slow")  # never reads: its hello stays in the queue
    assert slow is not None
    received = []
    for i in range(20):
        hub.publish_node(node_sample(T0 + i))
        received += messages(fast)
        if i < 2:
            assert slow.close_code is None
    # hello + 3 messages filled its 4 slots; the 4th message dropped it.
    assert slow.close_code == CLOSE_TOO_SLOW and "too slow" in slow.close_reason
    assert slow.ended.is_set() and slow not in hub.clients and hub.dropped_slow == 1
    assert slow.queue.qsize() == 4, "nothing is queued for a dropped client"
    assert [m["timestamp"] for m in received] == [T0 + i for i in range(20)]
    assert hub.clients == [fast]


def test_max_clients() -> None:
    hub = make_hub(max_clients=2)
    a, b = hub.connect("a"), hub.connect("b")
    assert a is not None and b is not None
    assert hub.connect("c") is None and hub.refused == 1
    hub.disconnect(a)
    assert a.ended.is_set()
    assert hub.connect("d") is not None
    assert make_hub(max_clients=0).connect("x") is None


def test_pace_gc_collects_just_after_a_node_publish_and_restores_the_gc() -> None:
    hub = make_hub()
    thresholds = gc.get_threshold()

    async def run() -> None:
        task = asyncio.create_task(hub.pace_gc(every=0.5, after=0.05))
        await asyncio.sleep(0.1)
        # Automatic full collections are off; what existed at start is out of the GC's way.
        assert gc.get_threshold() == (thresholds[0], thresholds[1], 1 << 30) and gc.get_freeze_count() > 0
        await asyncio.sleep(0.6)
        assert hub.gc_runs == 0, "it waits for a node publish"
        hub.publish_node(node_sample(T0 + 1))
        await asyncio.sleep(0.02)
        assert hub.gc_runs == 0, "not in the middle of the fan-out"
        await asyncio.sleep(0.3)
        assert hub.gc_runs == 1 and hub.gc_last_ms is not None
        # No node sample for a whole period: it collects anyway.
        await asyncio.sleep(1.3)
        assert hub.gc_runs == 2
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0


def test_pace_gc_of_several_hubs_restores_the_gc_when_the_last_stops() -> None:
    a, b = make_hub(), make_hub()
    thresholds = gc.get_threshold()

    async def run() -> None:
        ta = asyncio.create_task(a.pace_gc(every=10))
        tb = asyncio.create_task(b.pace_gc(every=10))
        await asyncio.sleep(0.05)
        ta.cancel()
        await asyncio.wait([ta])
        assert gc.get_threshold()[2] == 1 << 30, "the other hub still runs"
        tb.cancel()
        await asyncio.wait([tb])

    asyncio.run(run())
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0


# --- what clients send ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("nope", "malformed JSON"),
        ('{"type": "subscribe", "topics": [', "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        ("[1, 2]", "unknown message type"),
        ("42", "unknown message type"),
        ('{"topics": ["node"]}', "unknown message type"),
        ('{"type": "unsubscribe", "topics": ["node"]}', "unknown message type"),
        ('{"type": 7}', "unknown message type"),
        ('{"type": "subscribe"}', "invalid message"),
        ('{"type": "subscribe", "topics": "node"}', "invalid message"),
        ('{"type": "subscribe", "topics": [1]}', "invalid message"),
        ('{"type": "subscribe", "topics": ["node", "bogus"]}', "unknown topic"),
        ('{"type": "subscribe", "topics": ["container:"]}', "unknown topic"),
        ('{"type": "subscribe", "topics": ["vm"]}', "unknown topic"),
        ('{"type": "subscribe", "topics": ["container:nope"]}', "no such container"),
        ('{"type": "subscribe", "topics": ["container:aaaaaaaaaaaa"]}', "ambiguous container reference"),
        ('{"type": "subscribe", "topics": [' + ",".join(['"node"'] * 1001) + "]}", "too many topics"),
        ("x" * (MAX_CLIENT_MESSAGE_BYTES + 1), "message too large"),
        (None, "message too large"),
    ],
)
def test_bad_client_messages_get_an_error_and_change_nothing(raw: str | bytes | None, error: str) -> None:
    hub = make_hub()
    c = connect(hub, ["node"])
    hub.handle(c, raw)
    (m,) = messages(c)
    assert m["type"] == "error" and m["error"] == error, m
    assert c.topics == frozenset({"node"}) and c in hub.clients and c.close_code is None


def test_unknown_topics_are_all_named() -> None:
    hub = make_hub()
    c = connect(hub)
    hub.handle(c, '{"type": "subscribe", "topics": ["node", "nodes", "container", "vm:", "containers.full"]}')
    (m,) = messages(c)
    assert m["detail"]["unknown"] == ["nodes", "container", "vm:", "containers.full"]
    assert {"container:<id>", "vm:<id>", "containers.summary", "vms.summary"} <= set(m["detail"]["allowed"])


def test_subscribe_resolves_container_references() -> None:
    hub = make_hub()
    c = connect(hub)
    hub.handle(c, msgspec.json.encode({"type": "subscribe", "topics": ["container:web", f"container:{ID_C[:12]}", "node", "node"]}))
    (m,) = messages(c)
    assert m == {"type": "subscribed", "topics": [f"container:{ID_A}", f"container:{ID_C}", "node"]}
    assert c.guest_ids["container"] == {ID_A, ID_C}


def test_container_topics_when_container_monitoring_is_off() -> None:
    hub = make_hub(kinds=(VMS,))
    c = connect(hub)
    hub.handle(c, '{"type": "subscribe", "topics": ["container:web"]}')
    (m,) = messages(c)
    assert m["error"] == "container monitoring is disabled"
    assert m["detail"] == {"topic": "container:web", "setting": "containers.enabled"}


# --- the same through the /ws route (Starlette's TestClient) --------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(
        monitoring=MonitoringSettings(node_metrics_interval=0.25, max_ws_clients=3), containers=ContainerSettings(enabled=False)
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _next_of(ws: Any, kind: str, limit: int = 50) -> dict[str, Any]:
    for _ in range(limit):
        m = ws.receive_json()
        if m["type"] == kind:
            return m
    raise AssertionError(f"no {kind} message in {limit}")


def test_route_hello_then_node_metrics(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["version"] == __version__
        assert hello["node"] is not None and hello["containers"] is None
        first = _next_of(ws, "NodeMetrics")
        second = _next_of(ws, "NodeMetrics")
        assert second["timestamp"] > first["timestamp"]


def test_route_malformed_input_keeps_the_connection(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_text("{not json")
        assert _next_of(ws, "error")["error"] == "malformed JSON"
        ws.send_bytes(b'{"type": "subscribe", "topics": ["node"]}')
        assert _next_of(ws, "subscribed")["topics"] == ["node"]
        ws.send_json({"type": "subscribe", "topics": ["container:x"]})
        assert _next_of(ws, "error")["error"] == "container monitoring is disabled"
        _next_of(ws, "NodeMetrics")


def test_route_refuses_past_max_ws_clients(client: TestClient) -> None:
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b, client.websocket_connect("/ws") as c:
        for ws in (a, b, c):
            assert ws.receive_json()["type"] == "hello"
        with client.websocket_connect("/ws") as d, pytest.raises(WebSocketDisconnect) as e:
            d.receive_json()
        assert e.value.code == CLOSE_TOO_MANY and "max_ws_clients = 3" in e.value.reason
    # Once they left, there is room again.
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"


def test_route_processes_and_users(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "subscribe", "topics": ["processes", "users"]})
        assert _next_of(ws, "subscribed")["topics"] == ["processes", "users"]
        m = msgspec.convert(_next_of(ws, "Processes"), ProcessesMessage)
        assert 0 < len(m.processes) <= 20 <= m.total  # [processes] top's default
        u = msgspec.convert(_next_of(ws, "Users"), UsersMessage)
        assert u.timestamp == m.timestamp


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_a_prebuilt_text_frame_is_what_a_websocket_client_reads(size: int) -> None:
    """api/transport.text_frame (written as is to every client by api/ws.py) parses, with the
    websockets package's own client, as one text message with the payload unchanged."""
    from websockets.client import ClientProtocol
    from websockets.frames import Opcode
    from websockets.protocol import State
    from websockets.uri import parse_uri

    from hvstat.api.transport import text_frame

    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()
    proto = ClientProtocol(parse_uri("ws://127.0.0.1/ws"), state=State.OPEN, max_size=None)
    proto.receive_data(text_frame(payload))
    [frame] = proto.events_received()
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload
