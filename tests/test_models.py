"""Rust and Python must not drift. The wire types are generated from the Rust serde types
(rust/hvstat-core/wire-schema.json -> python/hvstat/wire.py by scripts/gen_wire.py): the built core's
schema must be the committed one, and the committed module what the generator makes of it. Then,
as a check of the whole path, real samples (this machine and every fixture host) are decoded with a
strict copy of the msgspec models (``forbid_unknown_fields=True`` on every Struct), their key sets
are compared with the Struct fields in both directions, and a decode/encode round trip must give
back exactly what Rust wrote."""

from __future__ import annotations

import importlib.util
import inspect
import json
import time
import types
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest

from helpers import scenario_config, scenarios
from hvstat import models, wire
from hvstat import settings as config_module

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "rust" / "hvstat-core" / "wire-schema.json"
REGENERATE = "run `python scripts/gen_wire.py`, then `maturin develop`"

pytestmark = pytest.mark.unit

pytestmark = pytest.mark.unit

_STRICT: dict[type, type] = {}


def strict(tp: Any) -> Any:
    """``tp`` with every msgspec Struct in it (recursively) replaced by a copy that forbids unknown
    fields. Same names, types, defaults; built from the models, so it follows them."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        if tp not in _STRICT:
            fields: list[Any] = []
            for f in msgspec.structs.fields(tp):
                t = strict(f.type)
                if f.default is not msgspec.NODEFAULT:
                    fields.append((f.encode_name, t, f.default))
                elif f.default_factory is not msgspec.NODEFAULT:
                    fields.append((f.encode_name, t, msgspec.field(default_factory=f.default_factory)))
                else:
                    fields.append((f.encode_name, t))
            _STRICT[tp] = msgspec.defstruct(
                f"Strict{tp.__name__}", fields, kw_only=True, frozen=True, forbid_unknown_fields=True
            )
        return _STRICT[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(strict(a) for a in args)]  # noqa: UP007 - built from a runtime tuple
    if origin is list:
        return list[strict(args[0])]
    if origin is dict:
        return dict[args[0], strict(args[1])]
    return tp


STRICT_DECODER = msgspec.json.Decoder(strict(models.NodeMetrics))


def _struct_of(tp: Any) -> Any:
    """The Struct in ``T | None``, else ``tp``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return inner[0] if len(inner) == 1 else tp
    return tp


def key_set_mismatches(value: Any, tp: Any, path: str = "$") -> list[str]:
    """Every place where a JSON object's keys differ from its Struct's fields (either direction: a
    Struct field that Rust never writes would otherwise hide behind its default)."""
    tp = _struct_of(tp)
    out: list[str] = []
    if value is None:
        return out
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        fields = {f.encode_name: f.type for f in msgspec.structs.fields(tp)}
        extra, missing = set(value) - set(fields), set(fields) - set(value)
        if extra:
            out.append(f"{path}: keys Rust writes that {tp.__name__} lacks: {sorted(extra)}")
        if missing:
            out.append(f"{path}: {tp.__name__} fields Rust does not write: {sorted(missing)}")
        for k in set(fields) & set(value):
            out += key_set_mismatches(value[k], fields[k], f"{path}.{k}")
    elif typing.get_origin(tp) is list:
        for i, item in enumerate(value):
            out += key_set_mismatches(item, typing.get_args(tp)[0], f"{path}[{i}]")
    return out


def _live_samples() -> list[tuple[str, bytes]]:
    from hvstat._core import NodeSampler

    s = NodeSampler()
    first = s.sample()
    time.sleep(0.3)
    return [("live-first", first), ("live-primed", s.sample())]


def _fixture_samples(root: Path) -> list[tuple[str, bytes]]:
    from hvstat._core import NodeSampler

    s = NodeSampler(scenario_config(root))
    return [(f"{root.name}-first", s.sample()), (f"{root.name}-second", s.sample())]


def _all_samples() -> list[tuple[str, bytes]]:
    out = _live_samples()
    for root in scenarios():
        out += _fixture_samples(root)
    return out


@pytest.fixture(scope="module")
def samples() -> list[tuple[str, bytes]]:
    return _all_samples()


def _generator() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("gen_wire", REPO / "scripts" / "gen_wire.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_schema_is_the_cores() -> None:
    """The extension's wire types (hvstat_core::wire) are the committed schema's: a Rust field changed
    without regenerating fails here (and in the core's own `committed_schema_is_current` test)."""
    from hvstat import _core

    assert _core.wire_schema() == SCHEMA.read_text(), f"wire-schema.json differs from the built core: {REGENERATE}"


def test_wire_module_is_generated_from_the_schema() -> None:
    """python/hvstat/wire.py is exactly what scripts/gen_wire.py makes of the committed schema."""
    want = _generator().render(json.loads(SCHEMA.read_text()))
    assert Path(wire.__file__).read_text() == want, f"python/hvstat/wire.py is stale or hand-edited: {REGENERATE}"


def test_wire_structs_are_the_schema_types() -> None:
    """Every type of the schema is a Struct (or an alias) of hvstat.wire, re-exported by hvstat.models,
    with the schema's fields in the schema's order."""
    defs = json.loads(SCHEMA.read_text())["$defs"]
    for name, d in defs.items():
        assert getattr(models, name) is getattr(wire, name), name
        if "properties" in d:
            assert [f.name for f in msgspec.structs.fields(getattr(wire, name))] == list(d["properties"]), name


def test_strict_models_are_really_strict() -> None:
    """The strict copy rejects an unknown key at the top and deep inside (else the tests below
    could not fail)."""
    s = json.loads(_live_samples()[1][1])
    s["surprise"] = 1
    with pytest.raises(msgspec.ValidationError, match="surprise"):
        STRICT_DECODER.decode(json.dumps(s))
    s = json.loads(_live_samples()[1][1])
    s["cpu"]["per_cpu"][0]["seconds_total"]["surprise"] = 1
    with pytest.raises(msgspec.ValidationError, match=r"surprise.*per_cpu\[0\]\.seconds_total"):
        STRICT_DECODER.decode(json.dumps(s))
    assert key_set_mismatches(s, models.NodeMetrics)


def test_samples_cover_live_machine_and_fixtures(samples: list[tuple[str, bytes]]) -> None:
    names = [n for n, _ in samples]
    assert "live-primed" in names
    assert len(names) == 2 + 2 * len(scenarios())


def test_rust_json_decodes_with_unknown_fields_forbidden(samples: list[tuple[str, bytes]]) -> None:
    for name, raw in samples:
        try:
            STRICT_DECODER.decode(raw)
        except msgspec.ValidationError as e:
            pytest.fail(f"{name}: {e}")


def test_rust_json_keys_equal_struct_fields(samples: list[tuple[str, bytes]]) -> None:
    problems = [f"{name}: {p}" for name, raw in samples for p in key_set_mismatches(json.loads(raw), models.NodeMetrics)]
    assert not problems, "\n".join(problems)


def test_round_trip_through_models_is_lossless(samples: list[tuple[str, bytes]]) -> None:
    """What the service serves (decode with the service's decoder, encode with msgspec) is exactly
    what the core wrote: no value lost, renamed or defaulted on the way."""
    for name, raw in samples:
        again = msgspec.json.encode(models.node_metrics_decoder.decode(raw))
        assert json.loads(again) == json.loads(raw), name


def _structs(module: types.ModuleType) -> list[type]:
    return [
        c
        for c in vars(module).values()
        if inspect.isclass(c) and issubclass(c, msgspec.Struct) and c.__module__ == module.__name__
    ]


@pytest.mark.parametrize("module", [models, wire, config_module], ids=lambda m: m.__name__)
def test_every_struct_is_frozen(module: types.ModuleType) -> None:
    structs = _structs(module)
    assert structs
    assert [c.__name__ for c in structs if not c.__struct_config__.frozen] == []


def test_every_wire_struct_is_keyword_only() -> None:
    """msgspec does not inherit kw_only; STYLE.md asks every wire type for it."""
    positional = [
        c.__name__
        for c in _structs(models) + _structs(wire)
        if any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in inspect.signature(c).parameters.values())
    ]
    assert positional == []


def test_frozen_instances_reject_assignment() -> None:
    m = models.node_metrics_decoder.decode(_live_samples()[1][1])
    with pytest.raises(AttributeError):
        m.cpu_usage = 1.0  # type: ignore[misc]


def test_config_tables_forbid_unknown_fields() -> None:
    assert [c.__name__ for c in _structs(config_module) if not c.__struct_config__.forbid_unknown_fields] == []
