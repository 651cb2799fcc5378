"""Alert rules: the ``[[alerts.rules]]`` tables of the config compiled into ``Rule`` objects.

A rule's ``metric`` is a small expression resolved against the msgspec Structs the sources already
produce (``NodeMetrics``, ``ContainerMetrics``, ``VmMetrics``, and a ``ProcessesSample``'s
``UserMetrics`` and ``ProcessMetrics``); it is parsed and type-checked once, at config load, and
evaluated by plain attribute access, never by ``eval``::

    expr    := operand [ "/" operand ] [ "*" NUMBER ]
    operand := path
    path    := IDENT ( "." IDENT | "[" key "]" )*
    key     := STRING | INTEGER | "*"

- The first path starts with the kind: ``node``, ``container``, ``vm``, ``user`` or ``process``; it
  decides which entities the rule is evaluated for (the node; every container; every VM; every
  user of the per-user view, entity ``user:<name>``; every process, entity ``process:<pid>``).
- ``user`` and ``process`` may name their entity right after the kind: ``user["alice"].cpu_percent``
  (one user, by name), ``process[1234].rss_bytes`` (one PID), or ``user[*].cpu_percent`` (every
  user: the same as ``user.cpu_percent``, written as a filesystem rule is).
- ``a.b`` is a field of a Struct. A name that is not a field is split at an underscore when its
  first part is a Struct field: ``pressure.memory.some_avg10`` is ``pressure.memory.some.avg10``.
- Aliases for guests, so that the headline names read the same for every kind: ``cpu_usage`` is
  ``cpu_usage_percent`` and ``memory_usage`` is ``memory_usage_percent`` (containers and VMs).
- ``list["key"]`` picks the element of a list of Structs by its key field (``filesystems["/"]`` by
  ``mount_point``, ``disks["sda"]``/``interfaces["eth0"]`` by ``name``, ``per_cpu[0]`` by ``cpu``;
  see LIST_KEYS). ``list[*]`` evaluates every element: each is its own alert, told apart by its key
  (the alert's ``item``). At most one ``[*]`` per rule.
- The right side of ``/`` is either a whole path (``container.memory_limit_bytes``) or, without a
  kind, a field beside the left side's last field: ``container.memory_usage_bytes /
  memory_limit_bytes``, ``node.filesystems[*].used_bytes / size_bytes``.
- ``* NUMBER`` scales the result (``... / memory_limit_bytes * 100`` for percent).

Values: ints, floats and bools (1/0). A null anywhere on the way, a limit of "max", or a division by
0 give no value, which is not 0 (the engine keeps the alert's state, see engine.py).
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import operator
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import msgspec
from msgspec import inspect as mi

from hvstat.models import (
    AlertOp,
    AlertSeverity,
    ClockHealth,
    ContainerMetrics,
    Disk,
    Filesystem,
    Interface,
    NodeMetrics,
    PerCpu,
    ProcessMetrics,
    Runtime,
    TemperatureReading,
    UserMetrics,
    VcpuMetrics,
    VmDisk,
    VmMetrics,
    VmNic,
    VmOrigin,
)

if TYPE_CHECKING:
    from hvstat.settings import AlertRuleSettings, AlertSettings

SEVERITIES: tuple[str, ...] = get_args(AlertSeverity)
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
KINDS: dict[str, type[msgspec.Struct]] = {
    "node": NodeMetrics,
    "container": ContainerMetrics,
    "vm": VmMetrics,
    "user": UserMetrics,
    "process": ProcessMetrics,
    # The wall clock as GET /health shows it (hvstat/clock.py), evaluated at every node sample.
    "clock": ClockHealth,
}
ALIASES: dict[str, dict[str, str]] = {
    "node": {},
    "container": {"cpu_usage": "cpu_usage_percent", "memory_usage": "memory_usage_percent"},
    "vm": {"cpu_usage": "cpu_usage_percent", "memory_usage": "memory_usage_percent"},
    "user": {"cpu_usage": "cpu_percent", "memory_usage": "memory_percent"},
    "process": {"cpu_usage": "cpu_percent", "memory_usage": "memory_percent"},
    "clock": {},
}
# Kinds whose entity may be named after the kind (user["alice"], process[1234], user[*]): the field
# that names it. Their entities' names for select.name: the user's name, the process's command name.
ENTITY_KEYS: dict[str, str] = {"user": "user", "process": "pid"}
NAME_FIELDS: dict[str, str] = {"container": "name", "vm": "name", "user": "user", "process": "name"}
KIND_LIST = "node., container., vm., user., process. or clock."
# The field that names an element of a list of Structs, for list["key"] and list[*].
LIST_KEYS: dict[type[msgspec.Struct], str] = {
    Filesystem: "mount_point",
    Disk: "name",
    Interface: "name",
    PerCpu: "cpu",
    TemperatureReading: "sensor",
    VcpuMetrics: "index",
    VmDisk: "name",
    VmNic: "name",
}
# What ``select.runtime`` may say, per kind (for VMs it is where the VM comes from).
RUNTIMES: dict[str, tuple[str, ...]] = {"container": get_args(Runtime), "vm": get_args(VmOrigin)}
# The placeholders of a message template.
TEMPLATE_FIELDS = ("rule", "severity", "entity", "name", "item", "target", "metric", "op", "threshold", "value", "for", "node")
DEFAULT_MESSAGE = "{rule}: {metric} = {value:g} ({op} {threshold:g}) on {target}"
MAX_DURATION_SECS = 7 * 86400.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class RuleError(ValueError):
    """A rule that cannot be used; the message says which part and why (the caller names the rule)."""


# --- durations ------------------------------------------------------------------------------------


def parse_duration(value: str | float | int, key: str = "for") -> float:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``, ``"1d"`` or ``"0"``."""
    if isinstance(value, bool):
        raise RuleError(f"{key}: expected a duration such as \"5m\" or a number of seconds, got {value!r}")
    if isinstance(value, (int, float)):
        secs = float(value)
    else:
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            secs = float(text)
        else:
            pos, secs = 0, 0.0
            for m in _DURATION.finditer(text):
                if m.start() != pos:
                    break
                secs += float(m[1]) * _UNITS[m[2]]
                pos = m.end()
            if pos != len(text) or not text:
                raise RuleError(f"{key}: {value!r} is not a duration (examples: \"0\", \"30s\", \"5m\", \"1h30m\")")
    if not math.isfinite(secs) or secs < 0 or secs > MAX_DURATION_SECS:
        raise RuleError(f"{key}: {value!r} is out of range (0 to 7 days)")
    return secs


def format_duration(secs: float) -> str:
    """``300`` -> ``"5m"``, ``90`` -> ``"1m30s"``, ``0`` -> ``"0s"``."""
    if secs == 0:
        return "0s"
    out, rest = [], secs
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if rest >= size:
            n = int(rest // size)
            out.append(f"{n}{unit}")
            rest -= n * size
    if rest:
        out.append(f"{rest:g}s")
    return "".join(out)


# --- the metric expression ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<punct>[.\[\]*/])
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].lstrip()[:1] in ("<", ">", "=", "!"):
                raise RuleError(f"metric: {text!r} holds a comparison; the metric is only the value, the comparison goes in op and threshold")
            raise RuleError(f"metric: unexpected {text[pos:].strip()[:1]!r} at position {pos + 1} of {text!r}")
        kind = m.lastgroup or ""
        out.append((kind, m[kind], m.start(kind)))
        pos = m.end()
    return out


# Steps of a compiled path: ("attr", name), ("key", field, value), ("each", field).
Step = tuple[Any, ...]


def _unwrap(t: mi.Type) -> tuple[mi.Type, bool]:
    """The type without None (and without a Literal["max"] beside a number); True when a value of
    it can be missing (None or "max")."""
    if isinstance(t, mi.UnionType):
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        numeric = [x for x in rest if not isinstance(x, mi.LiteralType)]
        if len(numeric) == 1 and all(isinstance(x, mi.LiteralType) for x in rest if x is not numeric[0]):
            return numeric[0], True
        if len(rest) == 1:
            return rest[0], True
        return t, True
    return t, False


def _describe(t: mi.Type) -> str:
    if isinstance(t, mi.StructType):
        return f"an object ({t.cls.__name__})"
    if isinstance(t, mi.ListType):
        return "a list"
    if isinstance(t, mi.DictType):
        return "a map"
    if isinstance(t, (mi.StrType, mi.LiteralType)):
        return "text"
    return type(t).__name__.removesuffix("Type").lower()


def _field_names(t: mi.StructType) -> list[str]:
    return [f.name for f in t.fields]


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class _Path:
    """One operand: the steps from the entity to the Struct holding the last field (``parent``),
    then from there to the value (``last``), with the parent's type for relative denominators."""

    text: str
    parent: tuple[Step, ...]
    last: tuple[Step, ...]
    parent_type: mi.StructType
    wildcard: bool


class _Resolver:
    """Walks written names through the msgspec type of a kind, producing steps."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.root = mi.type_info(KINDS[kind])
        assert isinstance(self.root, mi.StructType)

    def field(self, t: mi.StructType, name: str, written: str, top: bool) -> tuple[list[Step], mi.Type]:
        """Steps for ``name`` in Struct ``t`` (an alias at the top, or an underscore split)."""
        if top and name in ALIASES[self.kind]:
            name = ALIASES[self.kind][name]
        by_name = {f.name: f for f in t.fields}
        if name in by_name:
            return [("attr", name)], by_name[name].type
        for i in range(1, len(name)):
            if name[i] != "_":
                continue
            head, tail = name[:i], name[i + 1 :]
            f = by_name.get(head)
            if f is None:
                continue
            inner, _ = _unwrap(f.type)
            if isinstance(inner, mi.StructType):
                try:
                    steps, typ = self.field(inner, tail, written, False)
                except RuleError:
                    continue
                return [("attr", head), *steps], typ
        choices = _field_names(t) + (list(ALIASES[self.kind]) if top else [])
        raise RuleError(f"metric: {t.cls.__name__} has no field {name!r} in {written!r}{_suggest(name, choices)}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        # user["name"] / process[pid]: the one entity the rule is about (None: every one).
        self.entity: str | int | None = None

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise RuleError(f"metric: {self.text!r} ends too early")
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        kind, v, pos = self.take()
        if v != value or kind not in ("punct",):
            raise RuleError(f"metric: expected {value!r} at position {pos + 1} of {self.text!r}, found {v!r}")

    def entity_key(self, resolver: _Resolver) -> None:
        """The entity named after a user or process kind (``["alice"]``, ``[1234]``, ``[*]``)."""
        field = ENTITY_KEYS[resolver.kind]
        kk, kv, kpos = self.take()
        if kk == "punct" and kv == "*":
            key: str | int | None = None
        elif kk == "string" and field == "user":
            key = _unquote(kv)
        elif kk == "number" and field == "pid" and re.fullmatch(r"\d+", kv):
            key = int(kv)
        else:
            want = "a quoted user name" if field == "user" else "a PID"
            raise RuleError(f"metric: {resolver.kind}[...] at position {kpos + 1} of {self.text!r} takes {want} or *")
        if self.entity is not None and key != self.entity:
            raise RuleError(f"metric: {self.text!r} names two different {resolver.kind}s")
        self.entity = key

    def path(self, resolver: _Resolver, start: mi.StructType | None) -> _Path:
        """A path. ``start`` None: it must begin with the kind; else it is relative to ``start``
        unless it begins with the kind anyway."""
        begin = self.peek()
        if begin is None or begin[0] != "ident":
            where = f"position {begin[2] + 1}" if begin else "the end"
            raise RuleError(f"metric: expected a name at {where} of {self.text!r}")
        t: mi.Type
        if begin[1] in KINDS and (start is None or begin[1] == resolver.kind):
            self.take()
            t, top = resolver.root, True
            dot = self.peek()
            if dot is not None and dot[1] == "[" and begin[1] in ENTITY_KEYS:
                self.take()
                self.entity_key(resolver)
                self.expect("]")
                dot = self.peek()
            if dot is None or dot[1] != ".":
                raise RuleError(f"metric: {begin[1]!r} must be followed by a field, e.g. {begin[1]}.cpu_usage")
            self.take()
        elif begin[1] in KINDS:
            raise RuleError(f"metric: {self.text!r} mixes {resolver.kind!r} and {begin[1]!r}; a rule is about one kind")
        elif start is None:
            raise RuleError(f"metric: {self.text!r} must start with {KIND_LIST}")
        else:
            t, top = start, start is resolver.root
        steps: list[Step] = []
        parent_len, parent_type = 0, t
        wildcard = False
        while True:
            kind, name, pos = self.take()
            if kind != "ident":
                raise RuleError(f"metric: expected a field name at position {pos + 1} of {self.text!r}, found {name!r}")
            if not isinstance(t, mi.StructType):
                raise RuleError(f"metric: {self.text[:pos].rstrip('.')!r} is {_describe(t)}, it has no field {name!r}")
            parent_len, parent_type = len(steps), t
            more, t = resolver.field(t, name, self.text, top)
            steps.extend(more)
            top = False
            t, _ = _unwrap(t)
            nxt = self.peek()
            while nxt is not None and nxt[1] == "[":
                self.take()
                if not isinstance(t, mi.ListType) or not isinstance(t.item_type, mi.StructType) or t.item_type.cls not in LIST_KEYS:
                    raise RuleError(f"metric: {name!r} is {_describe(t)}, not a list that can be indexed in {self.text!r}")
                item = t.item_type
                key_field = LIST_KEYS[item.cls]
                key_type = next(f.type for f in item.fields if f.name == key_field)
                kk, kv, kpos = self.take()
                if kk == "punct" and kv == "*":
                    steps.append(("each", key_field))
                    wildcard = True
                elif kk == "string":
                    if not isinstance(key_type, mi.StrType):
                        raise RuleError(f"metric: {name}[...] takes a number ({item.cls.__name__}.{key_field}), not {kv}")
                    steps.append(("key", key_field, _unquote(kv)))
                elif kk == "number" and re.fullmatch(r"\d+", kv):
                    if not isinstance(key_type, mi.IntType):
                        raise RuleError(f"metric: {name}[...] takes a quoted name ({item.cls.__name__}.{key_field}), not {kv}")
                    steps.append(("key", key_field, int(kv)))
                else:
                    raise RuleError(f"metric: {name}[...] at position {kpos + 1} of {self.text!r} takes a quoted name, an integer or *")
                self.expect("]")
                t = item
                nxt = self.peek()
            if nxt is None or nxt[1] != ".":
                break
            self.take()
        number, _ = _unwrap(t)
        if not isinstance(number, (mi.IntType, mi.FloatType, mi.BoolType)):
            hint = ""
            if isinstance(number, mi.StructType):
                hint = f": add a field, one of {', '.join(_field_names(number))}"
            elif isinstance(number, mi.ListType):
                hint = ": pick an element with [\"key\"] or [*]"
            raise RuleError(f"metric: {self.text!r} is {_describe(number)}, not a number{hint}")
        return _Path(self.text, tuple(steps[:parent_len]), tuple(steps[parent_len:]), parent_type, wildcard)


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


@dataclass(frozen=True)
class Expr:
    """A compiled metric expression."""

    text: str
    kind: str
    num: _Path
    den: _Path | None
    den_relative: bool
    scale: float | None
    # user["alice"], process[1234]: the rule is about that entity only (None: every entity of its kind).
    entity: str | int | None = None

    @property
    def wildcard(self) -> bool:
        return self.num.wildcard

    def values(self, entity: Any) -> list[tuple[str | None, float | None]]:
        """(item, value) pairs for one entity: one pair with item None, or one per element of the
        ``[*]`` list."""
        out: list[tuple[str | None, float | None]] = []
        for item, parent in _walk(entity, self.num.parent, None):
            v = _number(_get(parent, self.num.last))
            if self.den is not None and v is not None:
                base = parent if self.den_relative else entity
                d = _number(_get(_first(base, self.den.parent), self.den.last))
                v = None if d is None or d == 0 else v / d
            if v is not None and self.scale is not None:
                v *= self.scale
            if v is not None and not math.isfinite(v):
                v = None
            out.append((item, v))
        return out


def _first(obj: Any, steps: Sequence[Step]) -> Any:
    return next((o for _, o in _walk(obj, steps, None)), None)


def _walk(obj: Any, steps: Sequence[Step], item: str | None) -> Iterable[tuple[str | None, Any]]:
    for i, step in enumerate(steps):
        if obj is None:
            break
        op = step[0]
        if op == "attr":
            obj = getattr(obj, step[1])
        elif op == "key":
            obj = next((e for e in obj if getattr(e, step[1]) == step[2]), None)
        else:  # "each": every element, then the rest of the steps on each
            for e in obj:
                yield from _walk(e, steps[i + 1 :], str(getattr(e, step[1])))
            return
    yield item, obj


def _get(obj: Any, steps: Sequence[Step]) -> Any:
    for step in steps:
        if obj is None:
            return None
        if step[0] == "attr":
            obj = getattr(obj, step[1])
        else:
            obj = next((e for e in obj if getattr(e, step[1]) == step[2]), None)
    return obj


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, str):  # "max": no limit, so no ratio
        return None
    return float(v)


def compile_expr(text: str) -> Expr:
    """Parse and type-check a metric expression; RuleError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError("metric: empty")
    p = _Parser(text.strip())
    first = p.peek()
    if first is None or first[1] not in KINDS:
        raise RuleError(f"metric: {text.strip()!r} must start with {KIND_LIST}")
    resolver = _Resolver(first[1])
    num = p.path(resolver, None)
    den: _Path | None = None
    relative = False
    scale: float | None = None
    tok = p.peek()
    if tok is not None and tok[1] == "/":
        p.take()
        nxt = p.peek()
        relative = nxt is not None and nxt[1] not in KINDS
        den = p.path(resolver, num.parent_type)
        if den.wildcard:
            raise RuleError(f"metric: [*] is allowed on the left of '/' only, in {text!r}")
        tok = p.peek()
    if tok is not None and tok[1] == "*":
        p.take()
        kind, v, pos = p.take()
        if kind != "number":
            raise RuleError(f"metric: '*' must be followed by a number at position {pos + 1} of {text!r}")
        scale = float(v)
        tok = p.peek()
    if tok is not None:
        raise RuleError(f"metric: unexpected {tok[1]!r} at position {tok[2] + 1} of {text!r}")
    if sum(1 for s in num.parent + num.last if s[0] == "each") > 1:
        raise RuleError(f"metric: at most one [*] per rule, in {text!r}")
    return Expr(text.strip(), resolver.kind, num, den, relative, scale, p.entity)


# --- message templates --------------------------------------------------------------------------------

_SAMPLE_CONTEXT = {
    "rule": "r",
    "severity": "high",
    "entity": "node",
    "name": "n",
    "item": "",
    "target": "n",
    "metric": "node.cpu_usage",
    "op": ">",
    "threshold": 1.5,
    "value": 2.5,
    "for": "5m",
    "node": "n",
}


def check_template(template: str, key: str = "message") -> str:
    """Only the known placeholders, no attribute or index access, format specs that work."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise RuleError(f"{key}: {e} in {template!r}") from None
    for _, field, spec, conv in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            raise RuleError(f"{key}: unknown placeholder {{{field}}}; known: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}")
        if conv not in (None, "s", "r"):
            raise RuleError(f"{key}: conversion !{conv} is not allowed in {{{field}}}")
        if spec and "{" in spec:
            raise RuleError(f"{key}: nested placeholders are not allowed in {{{field}:{spec}}}")
    try:
        render(template, _SAMPLE_CONTEXT)
    except (ValueError, TypeError) as e:
        raise RuleError(f"{key}: {e} in {template!r}") from None
    return template


def render(template: str, context: dict[str, Any]) -> str:
    """The template with ``context``; a placeholder checked by check_template."""
    return template.format_map(context)


# --- rules -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    expr: Expr
    op: AlertOp
    threshold: float
    for_secs: float
    severity: AlertSeverity
    message: str
    resolve_threshold: float | None
    resolve_for_secs: float
    select_names: tuple[str, ...]
    select_runtimes: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.expr.kind

    @property
    def metric(self) -> str:
        return self.expr.text

    def selects(self, entity: Any) -> bool:
        """Whether the rule applies to this guest, user or process (always for the node)."""
        if self.expr.entity is not None and getattr(entity, ENTITY_KEYS[self.kind]) != self.expr.entity:
            return False
        if self.select_names and not any(fnmatch.fnmatchcase(getattr(entity, NAME_FIELDS[self.kind]) or "", p) for p in self.select_names):
            return False
        if self.select_runtimes:
            runtime = entity.runtime if self.kind == "container" else entity.origin
            if runtime not in self.select_runtimes:
                return False
        return True

    def fires(self, value: float) -> bool:
        """The condition that starts (pending, then firing) an alert."""
        return OPS[self.op](value, self.threshold)

    def holds(self, value: float) -> bool:
        """The condition that keeps a firing alert firing: the resolve threshold when there is
        one (hysteresis), else the threshold itself."""
        t = self.threshold if self.resolve_threshold is None else self.resolve_threshold
        return OPS[self.op](value, t)


def _str_list(value: str | Sequence[str] | None, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else tuple(value)
    if not items or any(not isinstance(v, str) or not v for v in items):
        raise RuleError(f"{key}: expected a non-empty string or list of strings")
    return items


def compile_rule(raw: AlertRuleSettings) -> Rule:
    """One rule as written in the config, checked and compiled."""
    name = raw.name.strip()
    if not name:
        raise RuleError("name: empty")
    if not re.fullmatch(r"[A-Za-z0-9_.:/@+-][A-Za-z0-9_.:/@+ -]*", name):
        raise RuleError(f"name: {name!r} may hold letters, digits, spaces and _ . : / @ + - only")
    expr = compile_expr(raw.metric)
    if raw.severity not in SEVERITIES:
        raise RuleError(f"severity: {raw.severity!r} is not one of {', '.join(SEVERITIES)}")
    if not math.isfinite(raw.threshold):
        raise RuleError("threshold: must be a finite number")
    for_secs = parse_duration(raw.for_, "for")
    resolve_for = parse_duration(raw.resolve_for, "resolve_for")
    if raw.resolve_threshold is not None:
        rt = raw.resolve_threshold
        if not math.isfinite(rt):
            raise RuleError("resolve_threshold: must be a finite number")
        if raw.op in ("==", "!="):
            raise RuleError(f"resolve_threshold: not possible with op {raw.op!r} (only with >, >=, <, <=)")
        if raw.op in (">", ">=") and rt > raw.threshold:
            raise RuleError(f"resolve_threshold: {rt:g} is above the threshold {raw.threshold:g}; with {raw.op!r} the alert resolves below the threshold")
        if raw.op in ("<", "<=") and rt < raw.threshold:
            raise RuleError(f"resolve_threshold: {rt:g} is below the threshold {raw.threshold:g}; with {raw.op!r} the alert resolves above the threshold")
    names: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()
    if raw.select is not None:
        if expr.kind in ("node", "clock"):
            raise RuleError(f"select: only rules on containers, VMs, users or processes take a selector (there is one {expr.kind})")
        names = _str_list(raw.select.name, "select.name")
        runtimes = _str_list(raw.select.runtime, "select.runtime")
        if runtimes and expr.kind not in RUNTIMES:
            raise RuleError(f"select.runtime: only rules on containers or VMs take a runtime (select.name is a {expr.kind}'s name)")
        allowed = RUNTIMES.get(expr.kind, ())
        bad = [r for r in runtimes if r not in allowed]
        if bad:
            what = "runtime" if expr.kind == "container" else "runtime (for VMs: the origin)"
            raise RuleError(f"select.runtime: {', '.join(map(repr, bad))} is not a {what}; one of {', '.join(allowed)}")
    message = check_template(raw.message if raw.message is not None else DEFAULT_MESSAGE)
    return Rule(
        name=name,
        expr=expr,
        op=raw.op,
        threshold=float(raw.threshold),
        for_secs=for_secs,
        severity=raw.severity,
        message=message,
        resolve_threshold=None if raw.resolve_threshold is None else float(raw.resolve_threshold),
        resolve_for_secs=resolve_for,
        select_names=names,
        select_runtimes=runtimes,
    )


class RulesError(ValueError):
    """A rule of the list is invalid: ``index`` and ``name`` say which, ``problem`` what."""

    def __init__(self, index: int, name: str | None, problem: str) -> None:
        self.index, self.name, self.problem = index, name, problem
        label = f"alerts.rules[{index}]" + (f" ({name!r})" if name else "")
        super().__init__(f"{label}: {problem}")


def clock_rules() -> list[AlertRuleSettings]:
    """The built-in rules of ``[alerts] clock_rules = true`` (docs/alerts.md, "Clock")."""
    from hvstat.settings import AlertRuleSettings

    return [
        AlertRuleSettings(
            name="clock-stepped",
            metric="clock.stepped",
            op="==",
            threshold=1,
            severity="medium",
            message="the wall clock of {node} was set (a step) in the last 10 minutes: timestamps around it are not comparable",
        ),
        AlertRuleSettings(
            name="clock-unsynchronised",
            metric="clock.synchronized",
            op="==",
            threshold=0,
            for_="10m",
            severity="low",
            message="the clock of {node} has not been synchronised by NTP for {for} (adjtimex)",
        ),
    ]


def every_rule(alerts: AlertSettings) -> list[AlertRuleSettings]:
    """The configured rules, then the built-in ones that ``[alerts]`` turns on."""
    return [*alerts.rules, *(clock_rules() if alerts.clock_rules else ())]


def compile_rules(raws: Sequence[AlertRuleSettings]) -> list[Rule]:
    """Every rule, in config order; the first invalid one raises RulesError."""
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raws):
        try:
            rule = compile_rule(raw)
        except RuleError as e:
            raise RulesError(i, raw.name, str(e)) from None
        if rule.name in seen:
            raise RulesError(i, raw.name, f"name: the same name as alerts.rules[{seen[rule.name]}]; rule names must be unique")
        seen[rule.name] = i
        rules.append(rule)
    return rules
