"""docs/api.md is held to the one source of the wire types: every field of the node, container and
VM samples that the Rust core's schema (rust/hvstat-core/wire-schema.json, generated from the serde
types) declares is named in that sample's "field by field" section, and no field the section puts
in a table's first column is unknown to the schema. A field added in Rust without a line in the docs,
or a documented field that no longer exists, fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "rust/hvstat-core/wire-schema.json").read_text())
DEFS: dict[str, Any] = SCHEMA["$defs"]

# Where each sample is documented field by field: a file and a section of it (from the heading to
# the next "## " heading). The VM fields' table is metrics.md's (api.md's VM section points there).
SECTIONS = {
    "NodeMetrics": ("docs/api.md", "## The node sample, field by field"),
    "ContainerMetrics": ("docs/api.md", "## The container sample, field by field"),
    "VmMetrics": ("docs/metrics.md", "## VMs"),
}


def section(sample: str) -> str:
    """The section's text without its fenced code blocks (examples are not documentation)."""
    path, heading = SECTIONS[sample]
    text = (ROOT / path).read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return re.sub(r"```.*?```", "", text[start : end if end != -1 else None], flags=re.S)


def named(text: str) -> set[str]:
    """Every identifier inside a `code span`: `memory.available_bytes`, `interfaces[].rx_errors_total`."""
    return {w for span in re.findall(r"`([^`\n]+)`", text) for w in re.findall(r"[a-z][a-z0-9_]*", span)}


def refs(schema: Any) -> list[str]:
    """The $defs a property's schema points to (directly, in arrays, maps or unions)."""
    out: list[str] = []
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            out.append(ref.rsplit("/", 1)[-1])
        for v in schema.values():
            out += refs(v)
    elif isinstance(schema, list):
        for v in schema:
            out += refs(v)
    return out


def fields(name: str, seen: set[str] | None = None) -> set[str]:
    """Every property name of ``name`` and of the structs it contains."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    schema = DEFS[name]
    out = set(schema.get("properties", {}))
    for prop in schema.get("properties", {}).values():
        for r in refs(prop):
            out |= fields(r, seen)
    return out


@pytest.mark.parametrize("sample", sorted(SECTIONS))
def test_every_field_of_the_sample_is_documented(sample: str) -> None:
    missing = sorted(fields(sample) - named(section(sample)))
    assert not missing, f"{SECTIONS[sample]} does not name: {missing}"


@pytest.mark.parametrize("sample", sorted(SECTIONS))
def test_no_documented_field_is_unknown(sample: str) -> None:
    """The first column of the section's field tables (headed "Field" or "Name"; not the config
    key tables) names fields the schema has."""
    first_column: list[str] = []
    in_field_table = False
    for line in section(sample).splitlines():
        if not line.startswith("|"):
            in_field_table = False
            continue
        cell = line.split("|")[1].strip()
        if cell in ("Field", "Name", "Key"):
            in_field_table = cell != "Key"
        elif in_field_table and (m := re.match(r"`([a-z][a-z0-9_.\[\]]*)`", cell)):
            first_column.append(m[1])
    assert first_column, "no field table found"
    last = {f.rsplit(".", 1)[-1].removesuffix("[]") for f in first_column}
    unknown = sorted(last - fields(sample))
    assert not unknown, f"{SECTIONS[sample]} documents fields the wire schema does not have: {unknown}"


def test_the_sections_exist_and_the_walk_sees_nested_fields() -> None:
    assert {"cpu_usage", "total", "user", "avg10", "mount_point"} <= fields("NodeMetrics")
    assert {"pressure_cpu", "some", "total_usec"} <= fields("ContainerMetrics")
    assert {"vcpu", "steal_percent", "cgroup", "cgroup_path"} <= fields("VmMetrics")
