#!/usr/bin/env python3
"""Prometheus /metrics benchmark: microseconds and bytes per scrape, hvstat's direct renderer
against prometheus_client's exposition, for the live node sample plus N containers.

The store of each case holds:
  node        this machine's node sample, live (NodeSampler: prime, 0.5 s, sample)
  containers  N synthetic-but-realistic ContainerMetrics, built from a REAL container sample: the
              one container of the recorded fixture tree tests/fixtures/hosts/cgroup-hybrid-6.18-runc
              (a runc container's cgroup files recorded on the project's test VM: limits, throttling,
              block I/O, PSI), sampled by the real ContainerSampler. Each copy gets its own 64-hex
              id, a name, scaled counters, and every field a scrape can export filled in: its own
              network namespace with traffic (the sampler cannot read a netns from a fixture tree),
              a memory and pids limit on every other container ("max" on the rest), PSI some and
              full. That is the most series a container can have, so the bench is the worst case
              per container.
  sources     the health of a node and a containers source that just succeeded

Lines (see bench/README.md, "Prometheus /metrics"):
  direct 0.0.4   hvstat.exposition.render(..., openmetrics=False): what GET /metrics returns
  direct OM      the same with openmetrics=True (what Prometheus asks for)
  client 0.0.4   prometheus_client: a custom Collector yielding CounterMetricFamily /
                 GaugeMetricFamily / InfoMetricFamily for the same series, registered in its own
                 CollectorRegistry, rendered by prometheus_client.exposition.generate_latest
  client OM      the same Collector through prometheus_client.openmetrics.exposition.generate_latest

Before timing, the outputs are checked to be equivalent: each is parsed with prometheus_client's
parser (text or OpenMetrics) and the (family, type, help) set and every (sample name, labels) ->
value must be equal between the direct renderer and prometheus_client, and between 0.0.4 and OM.

Timing is round-robin as in bench/node.py: each repeat runs every line in turn for I scrapes; best
and median are over the repeats of the mean per scrape; the garbage collector is off while a line is
timed. A scrape here is the render to bytes only: HTTP costs the same for both.

Usage: python bench/prometheus.py [--counts 10,100,1000] [--iterations I] [--repeats R] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from node import busy_secs, machine, own_secs, stats  # noqa: E402

from hvstat import __version__  # noqa: E402
from hvstat import exposition as P  # noqa: E402
from hvstat._core import ContainerSampler, NodeSampler  # noqa: E402
from hvstat.meta import BuildInfo  # noqa: E402
from hvstat.models import (  # noqa: E402
    ContainerMetrics,
    NodeMetrics,
    SourceHealth,
    containers_sample_decoder,
    node_metrics_decoder,
)

FIXTURE = ROOT / "tests" / "fixtures" / "hosts" / "cgroup-hybrid-6.18-runc"


# --------------------------------------------------------------------------------------------
# The store


def live_node() -> NodeMetrics:
    s = NodeSampler()
    s.prime()
    time.sleep(0.5)
    return node_metrics_decoder.decode(s.sample())


def recorded_container() -> ContainerMetrics:
    """The real container of the recorded runc fixture tree, as the core samples it."""
    cfg = {"proc_root": str(FIXTURE / "proc"), "sys_root": str(FIXTURE / "sys"), "rootfs": str(FIXTURE)}
    sample = containers_sample_decoder.decode(ContainerSampler(json.dumps(cfg)).sample())
    assert len(sample.containers) == 1, f"expected the one container of {FIXTURE}, got {len(sample.containers)}"
    return sample.containers[0]


def synthetic_containers(template: ContainerMetrics, n: int, seed: int = 1) -> list[ContainerMetrics]:
    """``n`` copies of the recorded container with their own identity and scaled numbers."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        cid = f"{rnd.getrandbits(256):064x}"
        k = rnd.uniform(0.5, 50.0)  # a container that has run 0.5x to 50x as long / as much

        def scale(v: int | float | None, k: float = k) -> int | float | None:
            if v is None:
                return None
            return int(v * k) if isinstance(v, int) else round(v * k, 6)

        pressure = {}
        for res in ("pressure_cpu", "pressure_memory", "pressure_io"):
            p = getattr(template, res)
            if p is not None:
                full = p.full if p.full is not None else p.some
                pressure[res] = msgspec.structs.replace(
                    p,
                    some=msgspec.structs.replace(p.some, total_usec=int(p.some.total_usec * k) + i),
                    full=msgspec.structs.replace(full, total_usec=int(full.total_usec * k)),
                )
        limited = i % 2 == 0
        rx, tx = int(rnd.uniform(1e6, 1e11)), int(rnd.uniform(1e6, 1e11))
        out.append(
            msgspec.structs.replace(
                template,
                id=cid,
                name=f"svc-{i:04d}-{cid[:6]}",
                cgroup_path=f"/docker/{cid}",
                processes=rnd.randint(1, 40),
                cpu_usage_secs_total=scale(template.cpu_usage_secs_total),
                cpu_user_secs_total=scale(template.cpu_user_secs_total),
                cpu_system_secs_total=scale(template.cpu_system_secs_total),
                cpu_periods_total=scale(template.cpu_periods_total),
                cpu_throttled_periods_total=scale(template.cpu_throttled_periods_total),
                cpu_throttled_secs_total=scale(template.cpu_throttled_secs_total),
                cpu_limit_cores=template.cpu_limit_cores if limited else None,
                memory_usage_bytes=scale(template.memory_usage_bytes),
                memory_working_set_bytes=scale(template.memory_working_set_bytes),
                memory_rss_bytes=scale(template.memory_rss_bytes),
                memory_cache_bytes=scale(template.memory_cache_bytes),
                memory_swap_bytes=rnd.choice((0, 4096 * rnd.randint(1, 10000))),
                memory_limit_bytes=int(rnd.choice((256, 512, 1024, 4096))) << 20 if limited else "max",
                memory_oom_kills_total=rnd.choice((0, 0, 0, 1, 3)),
                block_read_bytes=scale(template.block_read_bytes),
                block_write_bytes=scale(template.block_write_bytes),
                block_read_ops=scale(template.block_read_ops),
                block_write_ops=scale(template.block_write_ops),
                pids_current=rnd.randint(1, 200),
                pids_max=rnd.choice((512, 1024, 4096)) if limited else "max",
                network_mode="own",
                network_rx_bytes=rx,
                network_tx_bytes=tx,
                network_rx_packets=rx // rnd.randint(200, 1400),
                network_tx_packets=tx // rnd.randint(200, 1400),
                network_rx_errors=0,
                network_tx_errors=0,
                network_rx_dropped=rnd.choice((0, 0, rnd.randint(1, 100))),
                network_tx_dropped=0,
                network_interfaces=["eth0"],
                unavailable={},
                **pressure,
            )
        )
    return out


def healthy_sources(now: float) -> list[SourceHealth]:
    return [
        SourceHealth(name="node", status="ok", interval_secs=5.0, last_success=now, last_attempt=now, last_duration_secs=0.000183),
        SourceHealth(name="containers", status="ok", interval_secs=10.0, last_success=now, last_attempt=now, last_duration_secs=0.0412),
    ]


# --------------------------------------------------------------------------------------------
# (b) prometheus_client: a custom Collector yielding metric families


def client_collector(node: NodeMetrics | None, containers: Iterable[ContainerMetrics], sources: list[SourceHealth], version: str):
    """A prometheus_client Collector for the same series as hvstat.exposition.render. It takes
    the names, help and labels from hvstat's family table and walks the same fields."""
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

    def family(f: P.Family):
        if f.kind == "counter":
            return CounterMetricFamily(f.name, f.help, labels=f.labels)
        if f.kind == "info":
            return InfoMetricFamily(f.name[: -len("_info")], f.help, labels=f.labels)
        return GaugeMetricFamily(f.name, f.help, labels=f.labels)

    def fields(obj, table) -> Iterator:
        if obj is None:
            return
        for f, attr in table:
            v = getattr(obj, attr)
            if v is not None:
                m = family(f)
                m.add_metric([], float(v))
                yield m

    def add_pressure(fam, rows, attr: str) -> None:
        """rows: (label values before resource/kind, resource, Pressure | None)."""
        for vals, resource, p in rows:
            if p is None:
                continue
            for kind, line in (("some", p.some), ("full", p.full)):
                if line is not None:
                    v = getattr(line, attr)
                    fam.add_metric([*vals, resource, kind], v / 1e6 if attr == "total_usec" else round(v / 100, 6))

    class Collector:
        def collect(self):
            cs = list(containers)
            if node is not None:
                cpu = node.cpu
                if cpu is not None:
                    m = family(P.NODE_CPU_SECONDS)
                    for pc in cpu.per_cpu:
                        for mode in P.CPU_MODES:
                            v = getattr(pc.seconds_total, mode)
                            if v is not None:
                                m.add_metric([str(pc.cpu), mode], v)
                    yield m
                yield from fields(cpu, P.NODE_CPU)
                yield from fields(node, P.NODE_TOP)
                yield from fields(node.memory, P.NODE_MEMORY)
                yield from fields(node.swap, P.NODE_SWAP)
                yield from fields(node.hugepages, P.NODE_HUGEPAGES)
                yield from fields(node.ksm, P.NODE_KSM)
                yield from fields(node.vm, P.NODE_VM)
                pr = node.pressure
                if pr is not None:
                    rows = [((), "cpu", pr.cpu), ((), "memory", pr.memory), ((), "io", pr.io)]
                    m = family(P.NODE_PRESSURE_STALL)
                    add_pressure(m, rows, "total_usec")
                    yield m
                    for f, attr in P.NODE_PRESSURE_AVG:
                        m = family(f)
                        add_pressure(m, rows, attr)
                        yield m
                for f, attr in P.NODE_DISK:
                    m = family(f)
                    for d in node.disks:
                        if (v := getattr(d, attr)) is not None:
                            m.add_metric([d.name], v)
                    if m.samples:
                        yield m
                for f, attr in P.NODE_NET:
                    m = family(f)
                    for i in node.interfaces:
                        if (v := getattr(i, attr)) is not None:
                            m.add_metric([i.name, i.kind], v)
                    if m.samples:
                        yield m
                for f, attr in P.NODE_FS:
                    m = family(f)
                    for x in node.filesystems:
                        if (v := getattr(x, attr)) is not None:
                            m.add_metric([x.mount_point, x.device, x.fs_type], float(v))
                    if m.samples:
                        yield m
                m = family(P.NODE_TEMPERATURE)
                for t in node.temperatures:
                    if t.celsius is not None:
                        m.add_metric([t.sensor, t.kind, t.label or ""], t.celsius)
                if m.samples:
                    yield m
            if cs:
                m = family(P.CONTAINER_INFO)
                for c in cs:
                    m.add_metric([c.id, c.name, c.runtime, c.cgroup_path, c.state], {})
                yield m
                for f, attr in P.CONTAINER_FIELDS:
                    m = family(f)
                    for c in cs:
                        v = getattr(c, attr)
                        if v is not None and v != "max":
                            m.add_metric([c.id, c.name, c.runtime], v)
                    if m.samples:
                        yield m
                own = [c for c in cs if c.network_mode == "own"]
                for f, attr in P.CONTAINER_NETWORK:
                    m = family(f)
                    for c in own:
                        if (v := getattr(c, attr)) is not None:
                            m.add_metric([c.id, c.name, c.runtime], v)
                    if m.samples:
                        yield m
                m = family(P.CONTAINER_PRESSURE_STALL)
                for res, attr in (("cpu", "pressure_cpu"), ("memory", "pressure_memory"), ("io", "pressure_io")):
                    add_pressure(m, [((c.id, c.name, c.runtime), res, getattr(c, attr)) for c in cs], "total_usec")
                if m.samples:
                    yield m
            for f, get in (
                (P.SOURCE_UP, lambda h: int(h.consecutive_failures == 0 and h.last_success is not None)),
                (P.SOURCE_LAST_SUCCESS, lambda h: h.last_success),
                (P.SOURCE_FAILURES, lambda h: h.consecutive_failures),
            ):
                m = family(f)
                for h in sources:
                    if (v := get(h)) is not None:
                        m.add_metric([h.name], v)
                if m.samples:
                    yield m
            m = family(P.BUILD_INFO)
            b = BuildInfo(version)
            m.add_metric([b.version, b.core_version, b.python], {})
            yield m

    return Collector()


# --------------------------------------------------------------------------------------------
# Equivalence


def parsed(text: str, openmetrics: bool) -> tuple[set, dict]:
    """(set of (family, type, help), {(sample name, sorted labels): value}) of an exposition.
    Families are named as their samples and typed as in the 0.0.4 format (the parsers drop
    _total from counter families; OpenMetrics has an info type, 0.0.4 a gauge)."""
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    fams, samples = set(), {}
    for f in text_string_to_metric_families(text):
        name, typ = f.name, f.type
        if typ == "counter":
            name += "_total"
        elif typ == "info":
            name, typ = name + "_info", "gauge"
        fams.add((name, typ, f.documentation))
        for s in f.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = float(s.value)
    return fams, samples


def check_equivalent(outputs: dict[str, bytes]) -> int:
    """Every line's output parses to the same families and series with the same values as the
    direct renderer's 0.0.4 output; returns the number of series."""
    ref_fams, ref_samples = parsed(outputs["direct 0.0.4"].decode(), False)
    for line, body in outputs.items():
        fams, samples = parsed(body.decode(), line.endswith("OM"))
        if fams != ref_fams:
            raise AssertionError(f"{line}: families differ from direct 0.0.4: {sorted(fams ^ ref_fams)[:5]}")
        if samples.keys() != ref_samples.keys():
            raise AssertionError(f"{line}: series differ: {sorted(samples.keys() ^ ref_samples.keys())[:5]}")
        bad = [k for k, v in samples.items() if v != ref_samples[k]]
        if bad:
            raise AssertionError(f"{line}: values differ: {[(k, samples[k], ref_samples[k]) for k in bad[:5]]}")
    return len(ref_samples)


# --------------------------------------------------------------------------------------------


def lines_for(node, containers, sources) -> dict[str, Callable[[], bytes]]:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest as text_latest
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest

    reg = CollectorRegistry(auto_describe=False)
    reg.register(client_collector(node, containers, sources, __version__))
    return {
        "direct 0.0.4": lambda: P.render(node, containers, sources, __version__),
        "direct OM": lambda: P.render(node, containers, sources, __version__, openmetrics=True),
        "client 0.0.4": lambda: text_latest(reg),
        "client OM": lambda: om_latest(reg),
    }


def time_lines(lines: dict[str, Callable[[], bytes]], iterations: int, repeats: int) -> dict[str, list[float]]:
    per = {k: [] for k in lines}
    for _ in range(repeats):
        for name, fn in lines.items():
            fn()  # warm
            gc.collect()
            gc.disable()
            try:
                t = time.perf_counter()
                for _ in range(iterations):
                    fn()
                per[name].append((time.perf_counter() - t) / iterations * 1e6)
            finally:
                gc.enable()
    return per


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="10,100,1000", help="container counts (default 10,100,1000)")
    ap.add_argument("--iterations", "-n", type=int, default=0, help="scrapes per repeat (default: 20000 / (N+10), at least 5)")
    ap.add_argument("--repeats", "-r", type=int, default=7, help="repeats (default 7)")
    ap.add_argument("--json", metavar="FILE", help="save all results as JSON")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.counts.split(",") if x]

    m = machine()
    node = live_node()
    template = recorded_container()
    sources = healthy_sources(time.time())
    print(f"machine: {m['cpu_model']}, {m['cpu_count']} CPUs, kernel {m['kernel']}, Python {m['python']}")
    from importlib.metadata import version

    import prometheus_client  # noqa: F401

    print(f"prometheus_client {version('prometheus_client')}; node sample: {len(node.cpu.per_cpu) if node.cpu else 0} CPUs, "
          f"{len(node.disks)} disks, {len(node.interfaces)} interfaces, {len(node.filesystems)} filesystems, "
          f"{len(node.temperatures)} sensors; container template: {template.cgroup_path} of {FIXTURE.name}")
    print()
    print(f"{'containers':>10} {'line':<13} {'scrapes':>7} {'best µs':>10} {'median µs':>10} {'bytes':>9} {'series':>7} {'gzip -1 B':>10} {'gzip -1 µs':>10}")
    results = {"machine": m, "cases": []}
    busy0, own0, wall0 = busy_secs(), own_secs(), time.monotonic()
    for n in counts:
        containers = synthetic_containers(template, n)
        lines = lines_for(node, containers, sources)
        outputs = {k: fn() for k, fn in lines.items()}
        series = check_equivalent(outputs)
        iterations = args.iterations or max(5, 20000 // (n + 10))
        per = time_lines(lines, iterations, args.repeats)
        body = outputs["direct 0.0.4"]
        t = time.perf_counter()
        gz = gzip.compress(body, 1)
        gz_us = (time.perf_counter() - t) * 1e6
        case = {"containers": n, "iterations": iterations, "series": series, "lines": {}}
        for name in lines:
            st = stats(per[name])
            case["lines"][name] = {**st, "bytes": len(outputs[name])}
            extra = f"{len(gz):>10} {gz_us:>10.0f}" if name == "direct 0.0.4" else ""
            print(f"{n:>10} {name:<13} {iterations:>7} {st['best_us']:>10.0f} {st['median_us']:>10.0f} {len(outputs[name]):>9} {series:>7} {extra}")
        d, c = case["lines"]["direct 0.0.4"], case["lines"]["client 0.0.4"]
        dom, com = case["lines"]["direct OM"], case["lines"]["client OM"]
        print(f"{'':>10} client / direct (median): 0.0.4 {c['median_us'] / d['median_us']:.2f}x, OM {com['median_us'] / dom['median_us']:.2f}x")
        results["cases"].append(case)
    if len(results["cases"]) > 1:
        lo, hi = results["cases"][0], results["cases"][-1]
        for name in ("direct 0.0.4", "client 0.0.4"):
            slope = (hi["lines"][name]["median_us"] - lo["lines"][name]["median_us"]) / (hi["containers"] - lo["containers"])
            print(f"{name}: {slope:.1f} µs per container (median, {lo['containers']} to {hi['containers']})")
    wall = time.monotonic() - wall0
    busy, own = busy_secs() - busy0, own_secs() - own0
    others = max(0.0, busy - own) / wall
    print()
    print(f"outputs equivalent (parsed with prometheus_client's parsers): yes, every case; "
          f"other load on the machine during the run: {others:.2f} CPUs busy besides the bench")
    results["other_load_cpus"] = others
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
