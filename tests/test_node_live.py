"""The node sampler against this machine's real kernel, with psutil as the independent oracle.

Values are read "at the same moment": hvstat's sample and psutil back to back, and for monotonic
counters hvstat's reading is bracketed between two psutil readings (before <= hvstat <= after).
/proc and /sys are read directly by the test only where psutil has no equivalent (PSI, forks,
oom_kill, CLOCK_BOOTTIME-based uptime, inode counts).
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from helpers import WAIT_SECS, sample_dict, task_cpu_secs, unexplained_nulls, wait_ready, walk_keys, walk_numbers

pytestmark = pytest.mark.live

MiB = 1024 * 1024

# MemAvailable moves with the page cache and every other process between the two readings; 64 MiB is
# far above what a quiet machine drifts in microseconds and far below any real accounting error
# (e.g. reporting MemFree instead of MemAvailable is off by the whole cache, ~1 GiB here).
MEM_AVAILABLE_TOL = 64 * MiB
# /proc/loadavg prints two decimals (rounded, kernel fs/proc/loadavg.c) while os.getloadavg() can
# return the full fixed-point value (glibc may use sysinfo(2)): up to 0.005 apart, plus 1/2048
# (FIXED_1) of fixed-point resolution. 0.01 covers both.
LOAD_TOL = 0.01
# psutil.disk_usage().percent is rounded to one decimal (0.05), plus blocks written between the
# two statvfs calls: 0.1 percentage points.
ROOT_FS_PERCENT_TOL = 0.1
# disk_usage and filesystems["/"].used_percent come from two statvfs(2) calls of the same sample;
# only blocks allocated between those two calls (microseconds) can separate them.
SAME_SAMPLE_FS_TOL = 0.01
# /proc/uptime truncates to 1/100 s (fs/proc/uptime.c); the bracket widens by that.
UPTIME_TOL = 0.011
# Float slack for values that are integers divided by USER_HZ or 1000 on both sides.
FLOAT_EPS = 1e-9
# Per-mode CPU percentages are ratios of integer tick deltas over their own sum: they add up to 100
# up to float rounding only.
PERCENT_SUM_TOL = 1e-6
# hvstat's and psutil's CPU readings are microseconds to a millisecond apart at both ends of the
# interval; at USER_HZ=100 over 2 s on this machine a few ticks of skew are a few percent.
CPU_ORACLE_TOL = 5.0
# The busy-loop test does not assume the loop gets its CPU (this 2-CPU machine is shared): its
# oracle is what the loop got, its schedstat over hvstat's interval, a lower bound of its CPU's
# busy time. The least the loop must get for that to mean anything (far below what it gets even on
# a busy machine).
MIN_BUSY_SHARE = 0.1
BURN_SECS = 2.0
# A drop the oracle must see before the test asserts one (more than twice CPU_ORACLE_TOL, so that
# hvstat, within that tolerance of psutil at both ends, must see a drop too), and how many quiet
# intervals to try for it.
MIN_VISIBLE_DROP = 2 * CPU_ORACLE_TOL + 1.0
QUIET_ATTEMPTS = 3

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# guest/guest_nice are already inside user/nice (kernel/sched/cputime.c) and usage is derived.
CPU_PERCENT_KEYS = (*CPU_MODES, "guest", "guest_nice", "usage")


@pytest.fixture
def live(sampler: Any) -> Any:
    """A sampler on this machine's /proc and /sys, primed so that its next sample has rates."""
    s = sampler()
    s.prime()
    time.sleep(0.5)
    return s


def _by_name(items: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {i[key]: i for i in items}


def _bracket(before: float, value: float, after: float, what: str, eps: float = 0.0) -> None:
    assert before - eps <= value <= after + eps, f"{what}: {value} not within [{before}, {after}]"


# --- memory, CPU count, load, uptime, boot time -------------------------------------------------


def test_memory_matches_psutil(sampler: Any) -> None:
    s = sampler()
    before = psutil.virtual_memory()
    d = sample_dict(s)
    after = psutil.virtual_memory()
    swap = psutil.swap_memory()
    mem = d["memory"]
    assert mem["total_bytes"] == before.total == after.total
    lo, hi = sorted((before.available, after.available))
    assert lo - MEM_AVAILABLE_TOL <= mem["available_bytes"] <= hi + MEM_AVAILABLE_TOL
    assert mem["used_bytes"] == mem["total_bytes"] - mem["available_bytes"]
    assert d["memory_usage"] == pytest.approx(100.0 * mem["used_bytes"] / mem["total_bytes"], abs=1e-9)
    assert d["swap"]["total_bytes"] == swap.total
    if swap.total == 0:
        # 0 of 0 is not 0%: null, and said why.
        assert d["swap"]["used_percent"] is None
        assert d["unavailable"].get("swap.used_percent")
    else:
        assert d["swap"]["used_percent"] is not None


def test_cpu_count_matches_psutil(sampler: Any) -> None:
    d = sample_dict(sampler())
    assert d["cpu"]["count"] == psutil.cpu_count(logical=True)
    assert len(d["cpu"]["per_cpu"]) == len(psutil.cpu_times(percpu=True)) == d["cpu"]["count"]
    # psutil has no CPU ids: the kernel's list of online CPUs, e.g. "0-1" or "0,2-3".
    online: set[int] = set()
    for part in Path("/sys/devices/system/cpu/online").read_text().strip().split(","):
        lo, _, hi = part.partition("-")
        online.update(range(int(lo), int(hi or lo) + 1))
    assert {c["cpu"] for c in d["cpu"]["per_cpu"]} == online


def test_load_averages_match_getloadavg(sampler: Any) -> None:
    s = sampler()
    before = os.getloadavg()
    d = sample_dict(s)
    after = os.getloadavg()
    for i, key in enumerate(("load_average_1m", "load_average_5m", "load_average_15m")):
        lo, hi = sorted((before[i], after[i]))
        _bracket(lo, d[key], hi, key, eps=LOAD_TOL)


def test_uptime_boot_time_and_timestamp(sampler: Any) -> None:
    s = sampler()
    t0, b0 = time.time(), time.clock_gettime(time.CLOCK_BOOTTIME)
    d = sample_dict(s)
    t1, b1 = time.time(), time.clock_gettime(time.CLOCK_BOOTTIME)
    # /proc/uptime is CLOCK_BOOTTIME (fs/proc/uptime.c), truncated to 1/100 s.
    _bracket(b0, d["uptime_secs"], b1, "uptime_secs", eps=UPTIME_TOL)
    _bracket(t0, d["timestamp"], t1, "timestamp", eps=1e-3)
    assert d["boot_time"] == int(psutil.boot_time())


# --- counters, bracketed ------------------------------------------------------------------------


def test_cpu_seconds_bracketed_by_psutil(sampler: Any) -> None:
    s = sampler()
    tot0, per0, st0 = psutil.cpu_times(), psutil.cpu_times(percpu=True), psutil.cpu_stats()
    d = sample_dict(s)
    tot1, per1, st1 = psutil.cpu_times(), psutil.cpu_times(percpu=True), psutil.cpu_stats()
    # iowait is left out: the kernel says it "is not reliable" and it can go down
    # (Documentation/filesystems/proc.rst), so it cannot be bracketed.
    modes = ("user", "nice", "system", "idle", "irq", "softirq", "steal", "guest", "guest_nice")
    for m in modes:
        _bracket(getattr(tot0, m), d["cpu"]["seconds_total"][m], getattr(tot1, m), f"cpu.seconds_total.{m}", FLOAT_EPS)
    for i, c in enumerate(d["cpu"]["per_cpu"]):
        for m in modes:
            _bracket(getattr(per0[i], m), c["seconds_total"][m], getattr(per1[i], m), f"cpu{c['cpu']}.{m}", FLOAT_EPS)
    _bracket(st0.ctx_switches, d["cpu"]["context_switches_total"], st1.ctx_switches, "context_switches_total")
    _bracket(st0.interrupts, d["cpu"]["interrupts_total"], st1.interrupts, "interrupts_total")


def _proc_stat_value(key: str) -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        name, _, rest = line.partition(" ")
        if name == key:
            return int(rest)
    raise KeyError(key)


def test_forks_and_oom_kills_bracketed_by_proc(sampler: Any) -> None:
    # psutil has neither: read /proc/stat "processes" and /proc/vmstat "oom_kill" directly.
    def oom() -> int:
        for line in Path("/proc/vmstat").read_text().splitlines():
            k, v = line.split()
            if k == "oom_kill":
                return int(v)
        raise KeyError("oom_kill")

    s = sampler()
    f0, o0 = _proc_stat_value("processes"), oom()
    d = sample_dict(s)
    f1, o1 = _proc_stat_value("processes"), oom()
    _bracket(f0, d["cpu"]["forks_total"], f1, "forks_total")
    _bracket(o0, d["vm"]["oom_kills_total"], o1, "oom_kills_total")


def test_disk_counters_bracketed_by_psutil(sampler: Any) -> None:
    s = sampler()
    # nowrap=False: the kernel's raw counters, not psutil's wrap-adjusted ones. psutil computes
    # read_bytes/write_bytes as sectors * 512 (psutil/_pslinux.py, DISK_SECTOR_SIZE), the unit of
    # /proc/diskstats whatever the device's sector size (Documentation/admin-guide/iostats.rst).
    before = psutil.disk_io_counters(perdisk=True, nowrap=False)
    d = sample_dict(s)
    after = psutil.disk_io_counters(perdisk=True, nowrap=False)
    assert d["disks"], "this machine has at least one disk (vda); hvstat reported none"
    pairs = [
        ("read_bytes_total", "read_bytes"),
        ("write_bytes_total", "write_bytes"),
        ("reads_total", "read_count"),
        ("writes_total", "write_count"),
    ]
    for disk in d["disks"]:
        name = disk["name"]
        assert name in before and name in after, f"{name} unknown to psutil"
        for ours, theirs in pairs:
            _bracket(getattr(before[name], theirs), disk[ours], getattr(after[name], theirs), f"{name}.{ours}")
        # busy_time is the io_time column in ms; hvstat reports seconds.
        _bracket(before[name].busy_time / 1000, disk["io_time_secs_total"], after[name].busy_time / 1000, f"{name}.io_time", FLOAT_EPS)


def test_disks_are_whole_devices_minus_excluded(sampler: Any) -> None:
    s = sampler()
    config = json.loads(s.config_json())
    d = sample_dict(s)
    # /sys/block lists whole disks only (partitions live under their disk); psutil lists both.
    expected = {
        name
        for name in psutil.disk_io_counters(perdisk=True, nowrap=False)
        if Path("/sys/block", name.replace("/", "!")).exists()
        and not any(fnmatch.fnmatchcase(name, p) for p in config["disk_exclude"])
    }
    assert {x["name"] for x in d["disks"]} == expected
    for disk in d["disks"]:
        major, minor = (int(v) for v in Path("/sys/block", disk["name"], "dev").read_text().split(":"))
        assert (disk["major"], disk["minor"]) == (major, minor)


def test_nic_counters_bracketed_by_psutil(sampler: Any) -> None:
    s = sampler()
    before = psutil.net_io_counters(pernic=True, nowrap=False)
    d = sample_dict(s)
    after = psutil.net_io_counters(pernic=True, nowrap=False)
    assert d["interfaces"], "this machine has interfaces (lo, eth0); hvstat reported none"
    pairs = [
        ("rx_bytes_total", "bytes_recv"),
        ("tx_bytes_total", "bytes_sent"),
        ("rx_packets_total", "packets_recv"),
        ("tx_packets_total", "packets_sent"),
        ("rx_errors_total", "errin"),
        ("tx_errors_total", "errout"),
        ("rx_dropped_total", "dropin"),
        ("tx_dropped_total", "dropout"),
    ]
    for nic in d["interfaces"]:
        name = nic["name"]
        assert name in before and name in after, f"{name} unknown to psutil"
        for ours, theirs in pairs:
            _bracket(getattr(before[name], theirs), nic[ours], getattr(after[name], theirs), f"{name}.{ours}")


def test_interfaces_classified_and_totals_physical_only(sampler: Any) -> None:
    s = sampler()
    config = json.loads(s.config_json())
    d = sample_dict(s)
    assert not config["interface_include"] and not config["interface_exclude"], "test assumes no interface filter"
    assert {i["name"] for i in d["interfaces"]} == set(psutil.net_io_counters(pernic=True, nowrap=False))
    for nic in d["interfaces"]:
        name = nic["name"]
        if name == "lo":
            want = "loopback"
        elif any(fnmatch.fnmatchcase(name, p) for p in config["interface_virtual"]):
            want = "virtual"
        else:
            # Only device-backed interfaces have a `device` link in sysfs (ifb, bridges, bonds do not).
            want = "physical" if Path("/sys/class/net", name, "device").exists() else "virtual"
        assert nic["kind"] == want, name
    physical = [i["name"] for i in d["interfaces"] if i["kind"] == "physical"]
    assert d["network"]["interfaces"] == physical


def test_pressure_bracketed_by_proc(sampler: Any) -> None:
    if not Path("/proc/pressure/cpu").exists():
        d = sample_dict(sampler())
        assert d["pressure"] is None and d["unavailable"].get("pressure")
        return

    def totals() -> dict[tuple[str, str], int]:
        out = {}
        for kind in ("cpu", "memory", "io"):
            for line in Path("/proc/pressure", kind).read_text().splitlines():
                words = line.split()
                out[(kind, words[0])] = int(dict(w.split("=") for w in words[1:])["total"])
        return out

    s = sampler()
    before = totals()
    d = sample_dict(s)
    after = totals()
    for (kind, line), b in before.items():
        _bracket(b, d["pressure"][kind][line]["total_usec"], after[(kind, line)], f"pressure.{kind}.{line}")


# --- filesystems ----------------------------------------------------------------------------------


def test_root_filesystem_matches_psutil(sampler: Any) -> None:
    s = sampler()
    d = sample_dict(s)
    ps = psutil.disk_usage("/")
    root = _by_name(d["filesystems"], "mount_point").get("/")
    assert root is not None, f"no / in filesystems: {[f['mount_point'] for f in d['filesystems']]}"
    assert root["used_percent"] == pytest.approx(ps.percent, abs=ROOT_FS_PERCENT_TOL)
    assert d["disk_usage"] == pytest.approx(ps.percent, abs=ROOT_FS_PERCENT_TOL)
    assert d["disk_usage"] == pytest.approx(root["used_percent"], abs=SAME_SAMPLE_FS_TOL)
    assert root["size_bytes"] == ps.total


def test_filesystem_sizes_and_inodes_match_statvfs(sampler: Any) -> None:
    d = sample_dict(sampler())
    assert d["filesystems"]
    for fs in d["filesystems"]:
        mp = fs["mount_point"]
        if fs["size_bytes"] is None:
            assert d["unavailable"].get(f"filesystems.{mp}"), f"{mp}: null size without a reason"
            continue
        # Sizes and inode totals do not move unless a filesystem is resized: exact.
        assert fs["size_bytes"] == psutil.disk_usage(mp).total, mp
        st = os.statvfs(mp)  # psutil has no inode counts
        if st.f_files:
            assert fs["inodes_total"] == st.f_files, mp
        else:
            assert fs["inodes_total"] is None and fs["inodes_used_percent"] is None, mp
        assert fs["read_only"] == bool(st.f_flag & os.ST_RDONLY), mp


# --- CPU percentages ------------------------------------------------------------------------------


@pytest.fixture
def cpu_burner() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A Python busy loop pinned to one CPU; yields (cpu, process). Killed and reaped at teardown
    (also when the test failed or already stopped it)."""
    cpu = min(os.sched_getaffinity(0))
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(proc.pid, {cpu})
        # Wait until it really burns (has run for a tenth of a second) before measuring.
        wait_ready(lambda: task_cpu_secs(proc.pid) >= 0.1, "the busy loop getting CPU time", proc=proc, every=0.05)
        yield cpu, proc
    finally:
        proc.kill()
        proc.wait(timeout=WAIT_SECS)


def _measure(sampler: Any, pid: int | None = None) -> tuple[dict[str, Any], float, list[float], float]:
    """hvstat's CPU percentages over BURN_SECS, with psutil's over the same interval (its readings
    bracket hvstat's), and the least share of one CPU that process ``pid`` got during hvstat's
    interval by its schedstat (0.0 without ``pid``)."""
    s = sampler()
    psutil.cpu_percent(interval=None)
    psutil.cpu_percent(interval=None, percpu=True)
    t0 = time.monotonic()
    s.prime()
    a1 = task_cpu_secs(pid) if pid else 0.0
    time.sleep(BURN_SECS)
    b0 = task_cpu_secs(pid) if pid else 0.0
    d = sample_dict(s)
    t3 = time.monotonic()
    return d, psutil.cpu_percent(interval=None), psutil.cpu_percent(interval=None, percpu=True), (b0 - a1) / (t3 - t0)


def _index(d: dict[str, Any], cpu: int) -> int:
    """Position of CPU ``cpu`` in per_cpu, which is also its position in psutil's per-CPU list
    (both follow the cpuN lines of /proc/stat)."""
    return [c["cpu"] for c in d["cpu"]["per_cpu"]].index(cpu)


def _agrees_with_psutil(d: dict[str, Any], ps_total: float, ps_per: list[float]) -> None:
    assert d["cpu_usage"] == pytest.approx(ps_total, abs=CPU_ORACLE_TOL)
    assert len(ps_per) == len(d["cpu"]["per_cpu"])
    for c, theirs in zip(d["cpu"]["per_cpu"], ps_per):
        assert c["usage"] == pytest.approx(theirs, abs=CPU_ORACLE_TOL), f"cpu{c['cpu']}"


def test_cpu_usage_follows_a_busy_loop(sampler: Any, cpu_burner: tuple[int, subprocess.Popen[bytes]]) -> None:
    cpu, burner = cpu_burner
    busy, ps_total, ps_per, got = _measure(sampler, burner.pid)
    ncpu = busy["cpu"]["count"]
    # The loop's CPU was busy at least for the time the loop itself ran there (other work may have
    # kept it busier, or taken the CPU from the loop: `got` is what the loop really had).
    assert got >= MIN_BUSY_SHARE, f"the loop got {got:.2f} of cpu{cpu}: too little to check against"
    assert busy["cpu"]["per_cpu"][_index(busy, cpu)]["usage"] >= got * 100.0 - CPU_ORACLE_TOL
    assert busy["cpu_usage"] >= got * 100.0 / ncpu - CPU_ORACLE_TOL
    # The oracle saw the same interval.
    _agrees_with_psutil(busy, ps_total, ps_per)


def test_cpu_usage_comes_back_down(sampler: Any, cpu_burner: tuple[int, subprocess.Popen[bytes]]) -> None:
    """After the loop stops, the pinned CPU's usage drops. No absolute idle level is asserted: other
    work (a build, another test run) may keep this machine busy, in which case the kernel itself shows
    no drop; psutil, reading the same interval, tells the two cases apart."""
    cpu, burner = cpu_burner
    busy, ps_total, ps_per, _ = _measure(sampler)
    i = _index(busy, cpu)
    burner.kill()
    burner.wait(timeout=WAIT_SECS)
    for _ in range(QUIET_ATTEMPTS):
        quiet, ps_total_q, ps_per_q, _ = _measure(sampler)
        _agrees_with_psutil(quiet, ps_total_q, ps_per_q)
        if ps_per_q[i] <= ps_per[i] - MIN_VISIBLE_DROP:
            break
    else:
        pytest.skip(f"other work kept cpu{cpu} busy after the loop stopped; psutil saw no drop either ({ps_per} -> {ps_per_q})")
    assert quiet["cpu"]["per_cpu"][i]["usage"] < busy["cpu"]["per_cpu"][i]["usage"]
    if ps_total_q <= ps_total - MIN_VISIBLE_DROP:
        assert quiet["cpu_usage"] < busy["cpu_usage"]


def _cpu_percent_blocks(d: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("total", d["cpu"]["total"])] + [(f"cpu{c['cpu']}", c) for c in d["cpu"]["per_cpu"]]


def test_cpu_modes_sum_to_100(live: Any) -> None:
    d = sample_dict(live)
    checked = 0
    for name, block in _cpu_percent_blocks(d):
        values = [block[m] for m in CPU_MODES]
        if any(v is None for v in values):
            continue  # a mode went down (iowait can): left out on purpose, usage then says so
        checked += 1
        assert sum(values) == pytest.approx(100.0, abs=PERCENT_SUM_TOL), name
        assert block["usage"] == pytest.approx(100.0 - block["idle"] - block["iowait"], abs=PERCENT_SUM_TOL), name
        assert block["guest"] <= block["user"] + PERCENT_SUM_TOL and block["guest_nice"] <= block["nice"] + PERCENT_SUM_TOL
    assert checked >= 1, "no CPU had every mode present"
    assert d["cpu_usage"] == d["cpu"]["total"]["usage"]


def _check_no_negative(d: dict[str, Any]) -> None:
    for path, v in walk_numbers(d):
        if path.startswith("$.temperatures"):
            continue  # a thermometer may read below zero; everything else is a count, size or share
        assert v >= 0, f"{path} = {v}"
    for path, key, v in walk_keys(d):
        if path.startswith("$.unavailable"):
            continue  # field path -> reason text
        is_percent = key.endswith("_percent") or key in ("cpu_usage", "memory_usage", "disk_usage") or (
            (path == "$.cpu.total" or path.startswith("$.cpu.per_cpu[")) and key in CPU_PERCENT_KEYS and not path.endswith("seconds_total")
        )
        if is_percent and v is not None:
            assert 0.0 <= v <= 100.0 + PERCENT_SUM_TOL, f"{path}.{key} = {v}"


def test_rates_never_negative(live: Any) -> None:
    for _ in range(3):
        _check_no_negative(sample_dict(live))
        time.sleep(0.2)


# --- first sample vs primed ---------------------------------------------------------------------


def _rate_paths(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every value that needs two readings: *_per_sec, interval-derived percents and latencies, and
    the CPU mode shares."""
    out = []
    for path, key, v in walk_keys(d):
        if key.endswith("_per_sec") or key in ("busy_percent", "stall_percent", "interval_secs", "cpu_usage"):
            out.append((f"{path}.{key}", v))
        elif (path == "$.cpu.total" or (path.startswith("$.cpu.per_cpu[") and "seconds_total" not in path)) and key in CPU_PERCENT_KEYS:
            out.append((f"{path}.{key}", v))
    return out


def test_first_sample_of_unprimed_sampler_has_null_rates(sampler: Any) -> None:
    d = sample_dict(sampler())
    rates = _rate_paths(d)
    assert len(rates) > 20, "expected many rate fields (CPU modes, disks, NICs, PSI, vm)"
    not_null = [p for p, v in rates if v is not None]
    assert not not_null, f"rates on a first sample: {not_null}"
    assert d["unavailable"].get("rates"), "first sample must say why its rates are null"
    # What does not need two readings is there.
    for key in ("memory_usage", "disk_usage", "load_average_1m", "uptime_secs"):
        assert d[key] is not None, key
    assert d["memory"]["total_bytes"] and d["cpu"]["seconds_total"]["user"] > 0


def test_primed_sampler_has_real_rates(live: Any) -> None:
    d = sample_dict(live)
    assert d["interval_secs"] > 0
    assert "rates" not in d["unavailable"]
    rates = [(p, v) for p, v in _rate_paths(d)]
    # This kernel (6.x) writes every column a rate is taken from, so every rate is a number here.
    null = [p for p, v in rates if v is None]
    assert not null, f"null rates after prime: {null} (unavailable: {d['unavailable']})"


def test_every_null_has_a_reason(live: Any) -> None:
    """'Never a fake number': what is null on a primed sample is either explained in `unavailable`
    (by its path or a parent's) or null by its documented meaning."""
    d = sample_dict(live)
    unexplained = unexplained_nulls(d)
    assert not unexplained, f"nulls without a reason: {unexplained} (unavailable: {d['unavailable']})"


def test_hugepages_used_percent_null_has_reason(sampler: Any) -> None:
    d = sample_dict(sampler())
    if d["hugepages"]["total"] != 0:
        pytest.skip("huge pages are configured here; the 0-of-0 case does not arise")
    assert d["hugepages"]["used_percent"] is None
    assert d["unavailable"].get("hugepages.used_percent")
