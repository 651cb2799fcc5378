"""The service's layers point one way (docs/architecture.md, "The service, layer by layer"): every import in
python/hvstat goes to the module's own layer or a lower one, there is no import cycle, and no
source reads the store. Imports are read from the source files (all of them: at module level, in
functions and under TYPE_CHECKING), so a new back-reference fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hvstat

pytestmark = pytest.mark.unit

ROOT = Path(hvstat.__file__).parent

# Lowest first. A module may import its own layer and the ones before it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("types and bindings", ("hvstat", "hvstat.alerts", "hvstat.api", "hvstat.sources", "hvstat._native", "hvstat._core", "hvstat.models", "hvstat.wire", "hvstat.identity", "hvstat.meta", "hvstat.qmp")),
    ("settings", ("hvstat.settings", "hvstat.tokens", "hvstat.alerts.rules")),
    ("sources", ("hvstat.sources.*",)),
    ("store", ("hvstat.store",)),
    ("bus, guest kinds, series model", ("hvstat.bus", "hvstat.guests", "hvstat.exposition")),
    ("sinks", ("hvstat.hub", "hvstat.alerts.engine", "hvstat.alerts.notify", "hvstat.remote_write", "hvstat.rollups", "hvstat.file_sink", "hvstat.clock")),
    ("wiring", ("hvstat.config", "hvstat.state", "hvstat.logs", "hvstat.reload", "hvstat.history", "hvstat.promql", "hvstat.fleet")),
    ("routes", ("hvstat.api.*",)),
    ("entry points", ("hvstat.app", "hvstat.cli", "hvstat.tools", "hvstat.top", "hvstat.top.*", "hvstat.report")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        for p in patterns:
            if module == p or (p.endswith(".*") and module.startswith(p[:-1])):
                return i
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: give it one (and a line in docs/architecture.md)")


def imports() -> dict[str, set[str]]:
    """Every hvstat module and the hvstat modules it imports (``from hvstat.x import y`` counts as
    hvstat.x.y when that is a module, else hvstat.x)."""
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hvstat" and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in files else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "hvstat")
        deps.discard(name)
        # Importing hvstat.x runs hvstat/__init__.py first; that is not a dependency of the module.
        deps.discard("hvstat")
        graph[name] = deps
    return graph


def test_every_import_points_down_or_sideways() -> None:
    wrong = []
    for module, deps in sorted(imports().items()):
        mine = layer_of(module)
        for dep in sorted(deps):
            if layer_of(dep) > mine:
                wrong.append(f"{module} ({LAYERS[mine][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = imports()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_source_reads_the_store_or_another_sink() -> None:
    graph = imports()
    below = {m for m in graph if layer_of(m) <= layer_of("hvstat.sources.base")}
    offenders = {m: sorted(d - below) for m, d in graph.items() if m.startswith("hvstat.sources") and d - below}
    assert not offenders, offenders


def test_the_checker_sees_a_back_reference() -> None:
    """The graph is real: known edges are in it (a parser that saw nothing would pass the others)."""
    graph = imports()
    assert "hvstat.store" in graph["hvstat.bus"] and "hvstat.guests" in graph["hvstat.hub"]
    assert "hvstat.sources.registry" in graph["hvstat.app"] or "hvstat.sources" in graph["hvstat.app"]
    assert layer_of("hvstat.api.guests") > layer_of("hvstat.hub") > layer_of("hvstat.store") > layer_of("hvstat.sources.vms")
