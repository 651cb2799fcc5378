"""Alert rules: the metric grammar resolved against the real wire types, durations, message
templates, and the config: invalid rules fail ``load_settings`` with a message naming the rule (by
index and name), the key and the problem; every TOML example of docs/alerts.md loads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import procsamples
from helpers import clean_env
from hvstat.alerts.rules import Rule, RuleError, check_template, compile_expr, compile_rule, compile_rules, format_duration, parse_duration
from hvstat.config import AlertRuleSettings, ConfigError, load_settings
from hvstat.models import (
    ContainerMetrics,
    Filesystem,
    NodeMetrics,
    Pressure,
    PressureAll,
    PressureLine,
    ProcessMetrics,
    UserMetrics,
    VmMetrics,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "alerts.md"
T = 1_800_000_000.0


def fs(mount: str, used: int, size: int, **kw: object) -> Filesystem:
    return Filesystem(mount_point=mount, device="/dev/x", fs_type="ext4", size_bytes=size, used_bytes=used, used_percent=100 * used / size if size else None, read_only=False, **kw)  # type: ignore[arg-type]


def psi(avg10: float, full: float | None = None) -> Pressure:
    line = PressureLine(avg10=avg10, avg60=0.0, avg300=0.0, total_usec=1)
    return Pressure(some=line, full=None if full is None else PressureLine(avg10=full, avg60=0.0, avg300=0.0, total_usec=1))


def node(cpu: float | None = 50.0, **kw: object) -> NodeMetrics:
    base: dict[str, object] = dict(timestamp=T, cpu_usage=cpu, memory_usage=40.0, disk_usage=70.0, load_average_1m=1.0, load_average_5m=1.0, load_average_15m=1.0)
    base.update(kw)
    return NodeMetrics(**base)  # type: ignore[arg-type]


def container(cid: str = "c1", name: str = "web", **kw: object) -> ContainerMetrics:
    base: dict[str, object] = dict(
        timestamp=T,
        id=cid,
        name=name,
        runtime="docker",
        cgroup_path=f"/docker/{cid}",
        state="running",
        processes=1,
        cpu_usage_percent=10.0,
        memory_usage_bytes=800,
        memory_limit_bytes=1000,
        block_read_bytes=0,
        block_write_bytes=0,
        network_mode="own",
        network_rx_bytes=0,
        network_tx_bytes=0,
    )
    base.update(kw)
    return ContainerMetrics(**base)  # type: ignore[arg-type]


def vm(vid: str = "u1", name: str = "prod-db", **kw: object) -> VmMetrics:
    base: dict[str, object] = dict(
        timestamp=T,
        id=vid,
        name=name,
        origin="libvirt",
        status="running",
        cpu_usage_percent=12.5,
        memory_usage_percent=91.0,
        disk_read_bytes=0,
        disk_write_bytes=0,
        network_rx_bytes=0,
        network_tx_bytes=0,
    )
    base.update(kw)
    return VmMetrics(**base)  # type: ignore[arg-type]


# --- the grammar, evaluated on samples ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "sample", "want"),
    [
        ("node.cpu_usage", node(cpu=77.5), [(None, 77.5)]),
        ("node.cpu_usage", node(cpu=None), [(None, None)]),
        ('node.filesystems["/"].used_percent', node(filesystems=[fs("/", 30, 100), fs("/var", 90, 100)]), [(None, 30.0)]),
        ("node.filesystems['/var'].used_percent", node(filesystems=[fs("/", 30, 100), fs("/var", 90, 100)]), [(None, 90.0)]),
        ('node.filesystems["/nope"].used_percent', node(filesystems=[fs("/", 30, 100)]), [(None, None)]),
        ("node.filesystems[*].used_percent", node(filesystems=[fs("/", 30, 100), fs("/var", 90, 100)]), [("/", 30.0), ("/var", 90.0)]),
        ("node.filesystems[*].used_bytes / size_bytes * 100", node(filesystems=[fs("/", 1, 4), fs("/boot", 1, 0)]), [("/", 25.0), ("/boot", None)]),
        ("node.filesystems[*].read_only == 1", None, None),  # a comparison is not part of the metric: checked below
        ("node.pressure.memory.some_avg10", node(pressure=PressureAll(memory=psi(12.5))), [(None, 12.5)]),
        ("node.pressure.memory.some.avg10", node(pressure=PressureAll(memory=psi(12.5))), [(None, 12.5)]),
        ("node.pressure.cpu.full_avg10", node(pressure=PressureAll(cpu=psi(3.0))), [(None, None)]),
        ("node.pressure.io.some_avg10", node(pressure=None), [(None, None)]),
        ("container.memory_usage_bytes / memory_limit_bytes", container(), [(None, 0.8)]),
        ("container.memory_usage_bytes / container.memory_limit_bytes * 100", container(), [(None, 80.0)]),
        ("container.memory_usage_bytes / memory_limit_bytes", container(memory_limit_bytes="max"), [(None, None)]),
        ("container.memory_usage_bytes / memory_limit_bytes", container(memory_limit_bytes=0), [(None, None)]),
        ("container.cpu_usage", container(cpu_usage_percent=42.0), [(None, 42.0)]),
        ("container.pressure_memory_some_avg10", container(pressure_memory=psi(7.0)), [(None, 7.0)]),
        ("vm.cpu_usage", vm(), [(None, 12.5)]),
        ("vm.memory_usage", vm(), [(None, 91.0)]),
        ("vm.memory_usage", vm(memory_usage_percent=None), [(None, None)]),
    ],
)
def test_metric_values(metric: str, sample: object, want: list[tuple[str | None, float | None]]) -> None:
    if sample is None:
        with pytest.raises(RuleError, match="holds a comparison; the metric is only the value"):
            compile_expr(metric)
        return
    expr = compile_expr(metric)
    got = expr.values(sample)
    assert [i for i, _ in got] == [i for i, _ in want]
    for (_, g), (_, w) in zip(got, want):
        assert g == (pytest.approx(w) if w is not None else None)


def test_kind_comes_from_the_first_path() -> None:
    assert compile_expr("node.cpu_usage").kind == "node"
    assert compile_expr(" container.cpu_cores ").kind == "container"
    assert compile_expr("vm.cpu_vcpu_percent").kind == "vm"
    assert compile_expr("node.filesystems[*].used_percent").wildcard
    assert not compile_expr('node.filesystems["/"].used_percent').wildcard
    assert compile_expr("node.filesystems[*].read_only").values(node(filesystems=[fs("/", 1, 2)])) == [("/", 0.0)]


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("", "metric: empty"),
        ("cpu_usage", "must start with node., container., vm., user., process. or clock."),
        ("host.cpu_usage", "must start with node., container., vm., user., process. or clock."),
        ("user.cpu", "UserMetrics has no field 'cpu'"),
        ("user[1000].cpu_percent", "takes a quoted user name or *"),
        ('process["nginx"].cpu_percent', "takes a PID or *"),
        ('node["x"].cpu_usage', "must be followed by a field"),
        ("process.name", "is text, not a number"),
        ('user["a"].rss_bytes / user["b"].processes', "names two different users"),
        ("node", "must be followed by a field"),
        ("node.", "ends too early"),
        ("node.cpu_usag", "NodeMetrics has no field 'cpu_usag' in 'node.cpu_usag' (did you mean 'cpu_usage'?)"),
        ("node.pressure", "'node.pressure' is an object (PressureAll), not a number: add a field, one of cpu, memory, io"),
        ("node.pressure.memory.some_avg11", "has no field 'some_avg11'"),
        ("node.filesystems", "is a list, not a number: pick an element with [\"key\"] or [*]"),
        ('node.filesystems["/"]', "is an object (Filesystem), not a number"),
        ("node.cpu_usage[0]", "not a list that can be indexed"),
        ('node.cpu.per_cpu["0"].usage', "takes a number (PerCpu.cpu)"),
        ("node.filesystems[0].used_percent", "takes a quoted name (Filesystem.mount_point)"),
        ("node.filesystems[x].used_percent", "takes a quoted name, an integer or *"),
        ("container.state", "is text, not a number"),
        ("container.runtime", "is text, not a number"),
        ("node.cpu_usage / vm.cpu_usage", "mixes 'node' and 'vm'"),
        ("node.cpu_usage + 1", "unexpected '+'"),
        ("node.cpu_usage * x", "'*' must be followed by a number"),
        ("node.cpu_usage; import os", "unexpected ';'"),
        ("node.__class__", "has no field '__class__'"),
        ("node.filesystems[*].used_bytes / node.filesystems[*].size_bytes", "[*] is allowed on the left of '/' only"),
        ("container.block_devices[*].read_bytes", "not a list that can be indexed"),
    ],
)
def test_metric_errors(metric: str, message: str) -> None:
    with pytest.raises(RuleError) as e:
        compile_expr(metric)
    assert message in str(e.value), str(e.value)


# --- durations and templates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "secs"),
    [(0, 0.0), ("0", 0.0), (90, 90.0), (1.5, 1.5), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1d", 86400.0), ("2.5", 2.5), ("7d", 604800.0)],
)
def test_durations(raw: str | float, secs: float) -> None:
    assert parse_duration(raw) == secs


@pytest.mark.parametrize("raw", ["", "5 m", "5x", "m5", "-1", -1, "8d", "1h-5m", True, float("nan")])
def test_bad_durations(raw: object) -> None:
    with pytest.raises(RuleError, match="^for: "):
        parse_duration(raw)  # type: ignore[arg-type]


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 30, 90, 300, 5400, 86400 + 1.5)] == ["0s", "30s", "1m30s", "5m", "1h30m", "1d1.5s"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{nope}", "unknown placeholder {nope}"),
        ("{value.__class__}", "unknown placeholder {value.__class__}"),
        ("{value[0]}", "unknown placeholder {value[0]}"),
        ("{value!a}", "conversion !a is not allowed"),
        ("{value:{threshold}}", "nested placeholders are not allowed"),
        ("{value:q}", "Unknown format code 'q'"),
        ("{", "Single '{' encountered"),
        ("{}", "unknown placeholder {}"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(RuleError) as e:
        check_template(template)
    assert message in str(e.value), str(e.value)


def test_good_templates() -> None:
    for t in ("{rule} on {target}: {value:.1f} {op} {threshold:g} for {for} ({severity}, {entity}, {name}, {item}, {node}, {metric})", "{value:.0%}", "{{literal}}", "{name!r}"):
        assert check_template(t) == t


# --- the config ---------------------------------------------------------------------------------------------


def load(tmp_path: Path, toml: str, **env: str) -> object:
    p = tmp_path / "hvstat.toml"
    p.write_text(toml)
    return load_settings(p, environ=env)


RULE = """
[[alerts.rules]]
name = "ok"
metric = "node.cpu_usage"
op = ">"
threshold = 1
severity = "low"
"""


class Toml(str):
    """A value written into the TOML as is (an inline table)."""


def rule(**keys: object) -> str:
    """A second rule, [[alerts.rules]] index 1, with ``keys`` (None leaves a key out; Toml values
    are written as they are, everything else as JSON, which TOML reads the same)."""
    base: dict[str, object] = {"name": "bad-one", "metric": "node.cpu_usage", "op": ">", "threshold": 90, "severity": "high"}
    base.update(keys)
    lines = ["[[alerts.rules]]"]
    for k, v in base.items():
        if v is None:
            continue
        lines.append(f"{k} = {v if isinstance(v, Toml) else json.dumps(v)}")
    return RULE + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"metric": "node.cpu_usag"}, "metric: NodeMetrics has no field 'cpu_usag' in 'node.cpu_usag' (did you mean 'cpu_usage'?)"),
        ({"metric": "node.pressure"}, "metric: 'node.pressure' is an object (PressureAll)"),
        ({"op": "=>"}, "alerts.rules[1].op (rule 'bad-one') (in "),
        ({"severity": "warning"}, "alerts.rules[1].severity (rule 'bad-one')"),
        ({"threshold": None}, "alerts.rules[1] (rule 'bad-one') (in"),
        ({"threshold": "lots"}, "alerts.rules[1].threshold (rule 'bad-one')"),
        ({"treshold": 3}, "alerts.rules[1].treshold (rule 'bad-one') (in"),
        ({"for": "5 minutes"}, "for: '5 minutes' is not a duration"),
        ({"resolve_for": "-5"}, "resolve_for: '-5' is not a duration"),
        ({"resolve_threshold": 95}, "resolve_threshold: 95 is above the threshold 90; with '>' the alert resolves below the threshold"),
        ({"op": "<", "resolve_threshold": 85}, "resolve_threshold: 85 is below the threshold 90"),
        ({"op": "==", "resolve_threshold": 85}, "resolve_threshold: not possible with op '=='"),
        ({"message": "{cpu}"}, "message: unknown placeholder {cpu}"),
        ({"select": Toml('{ name = "web-*" }')}, "select: only rules on containers, VMs, users or processes take a selector"),
        ({"metric": "container.cpu_cores", "select": Toml('{ runtime = "dockr" }')}, "select.runtime: 'dockr' is not a runtime; one of docker, podman"),
        ({"metric": "vm.cpu_usage", "select": Toml('{ runtime = "docker" }')}, "select.runtime: 'docker' is not a runtime (for VMs: the origin); one of libvirt, qmp"),
        ({"metric": "vm.cpu_usage", "select": Toml('{ name = [] }')}, "select.name: expected a non-empty string or list of strings"),
        ({"metric": "vm.cpu_usage", "select": Toml('{ nam = "x" }')}, "alerts.rules[1].select.nam (rule 'bad-one')"),
        ({"name": "ok"}, "name: the same name as alerts.rules[0]; rule names must be unique"),
        ({"name": "bad\nname"}, "name: 'bad\\nname' may hold letters, digits"),
        ({"name": ""}, "): name: empty"),
    ],
)
def test_invalid_rule_names_rule_key_and_problem(tmp_path: Path, keys: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, rule(**keys))
    text = str(e.value)
    assert text.startswith("config key alerts.rules[1]"), text
    assert message in text, text
    if keys.get("name") not in ("", "bad\nname"):
        assert "bad-one" in text or "'ok'" in text, text


def test_valid_rules_compile(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        rule(metric="container.memory_usage_bytes / memory_limit_bytes", op=">=", threshold=0.9, **{"for": "2m"}, resolve_threshold=0.8, resolve_for=30, message="{name}: {value:.0%}", select=Toml('{ name = ["web-*", "db"], runtime = "docker" }')),
    )
    (a, b) = compile_rules(s.alerts.rules)  # type: ignore[attr-defined]
    assert (a.name, a.kind, a.for_secs, a.severity) == ("ok", "node", 0.0, "low")
    assert (b.kind, b.op, b.threshold, b.for_secs, b.resolve_threshold, b.resolve_for_secs) == ("container", ">=", 0.9, 120.0, 0.8, 30.0)
    assert (b.select_names, b.select_runtimes) == (("web-*", "db"), ("docker",))
    assert b.selects(container(name="web-1")) and b.selects(container(name="db"))
    assert not b.selects(container(name="api")) and not b.selects(container(name="web-1", runtime="podman"))
    assert b.fires(0.9) and not b.fires(0.89) and b.holds(0.85) and not b.holds(0.79)


def test_env_overrides_plain_alert_keys(tmp_path: Path) -> None:
    s = load(tmp_path, RULE, HVSTAT_ALERTS_ENABLED="false", HVSTAT_ALERTS_HISTORY_SIZE="7")
    assert (s.alerts.enabled, s.alerts.history_size, len(s.alerts.rules)) == (False, 7, 1)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"alerts\.history_size \(from HVSTAT_ALERTS_HISTORY_SIZE\)"):
        load(tmp_path, "", HVSTAT_ALERTS_HISTORY_SIZE="-1")


def test_defaults_have_no_rules_and_no_notifiers() -> None:
    s = load_settings(None, environ={})
    assert (s.alerts.enabled, s.alerts.rules, s.alerts.webhook, s.alerts.email) == (True, [], None, None)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[alerts.webhook]\nurl = "ftp://x"\n', "config key alerts.webhook.url (in"),
        ('[alerts.webhook]\nurl = "http://"\n', "is not an http:// or https:// URL"),
        ("[alerts.webhook]\n", "alerts.webhook (in"),
        ('[alerts.webhook]\nurl = "http://x"\nretries = -1\n', "config key alerts.webhook.retries"),
        ('[alerts.webhook]\nurl = "http://x"\nca_file = "/nonexistent/ca.pem"\n', "alerts.webhook.ca_file (in"),
        ('[alerts.email]\nhost = "h"\nfrom = "a@b"\n', "alerts.email.to (in"),
        ('[alerts.email]\nhost = "h"\nto = ["a@b"]\n', "Object missing required field `from`"),
        ('[alerts.email]\nhost = "h"\nfrom = "nobody"\nto = ["a@b"]\n', "alerts.email.from (in"),
        ('[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = ["x"]\n', "alerts.email.to (in"),
        ('[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = ["a@b"]\nsecurity = "ssl"\n', "alerts.email.security"),
        ('[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = ["a@b"]\npassword = "p"\n', "alerts.email.username (in"),
        ('[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = ["a@b"]\nusername = "u"\npassword = "p"\npassword_file = "/etc/passwd"\n', "set password or password_file, not both"),
        ('[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = ["a@b"]\nusername = "u"\npassword_file = "/nonexistent"\n', "alerts.email.password_file (in"),
        ('[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = ["a@b"]\n[alerts.email.recipients]\nurgent = ["a@b"]\n', "alerts.email.recipients.urgent"),
        ('[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = []\n[alerts.email.recipients]\nlow = []\n', "no recipients"),
    ],
)
def test_invalid_notifiers_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, toml)
    assert message in str(e.value), str(e.value)


def test_email_recipients_per_severity(tmp_path: Path) -> None:
    s = load(tmp_path, '[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = ["all@x"]\n[alerts.email.recipients]\ncritical = ["pager@x", "all@x"]\nlow = []\n')
    e = s.alerts.email  # type: ignore[attr-defined]
    assert (e.effective_port, e.security) == (587, "starttls")
    assert [e.recipients_for(x) for x in ("critical", "high", "medium", "low")] == [["pager@x", "all@x"], ["all@x"], ["all@x"], []]


# --- docs/alerts.md ----------------------------------------------------------------------------------------


def doc_toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_every_doc_example_loads(tmp_path: Path) -> None:
    blocks = doc_toml_blocks()
    assert len(blocks) >= 4
    secret = tmp_path / "smtp-password"
    secret.write_text("pw\n")
    kinds = set()
    for block in blocks:
        s = load(tmp_path, block.replace("/etc/hvstat/smtp-password", str(secret)))
        kinds |= {r.kind for r in compile_rules(s.alerts.rules)}  # type: ignore[attr-defined]
    assert kinds == {"node", "container", "vm", "user", "process"}
    names = {r.name for b in blocks for r in load(tmp_path, b.replace("/etc/hvstat/smtp-password", str(secret))).alerts.rules}  # type: ignore[attr-defined]
    # The usual rules the issue asks for: CPU, memory, disk full, guest memory, pressure.
    assert {"node-cpu-busy", "node-memory", "fs-full", "guest-memory", "node-memory-pressure"} <= names


def test_doc_error_examples_are_what_hvstat_says(tmp_path: Path) -> None:
    """The messages quoted in docs/alerts.md "Validation" come from these configs."""
    cases = {
        "metric: NodeMetrics has no field 'memory_usag'": RULE + '[[alerts.rules]]\nname = "node-memory"\nmetric = "node.memory_usag"\nop = ">"\nthreshold = 1\nseverity = "low"\n',
        "Invalid enum value '=>'": '[[alerts.rules]]\nname = "node-cpu-busy"\nmetric = "node.cpu_usage"\nop = "=>"\nthreshold = 1\nseverity = "low"\n',
    }
    doc = DOC.read_text()
    for needle, toml in cases.items():
        with pytest.raises(ConfigError) as e:
            load(tmp_path, toml)
        quoted = str(e.value).replace(str(tmp_path / "hvstat.toml"), "/etc/hvstat/hvstat.toml")
        assert needle in quoted
        assert f"hvstat: {quoted}" in doc, quoted


def test_check_config_hides_secrets(tmp_path: Path) -> None:
    p = tmp_path / "hvstat.toml"
    p.write_text(
        RULE
        + '[alerts.webhook]\nurl = "http://127.0.0.1:9/x"\nheaders = { Authorization = "Bearer topsecret" }\n'
        + '[alerts.email]\nhost = "h"\nfrom = "a@b"\nto = ["a@b"]\nusername = "u"\npassword = "hunter2"\n'
    )
    r = subprocess.run([sys.executable, "-m", "hvstat.cli", "check-config", "--config", str(p)], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "topsecret" not in r.stdout and "hunter2" not in r.stdout
    eff = json.loads(r.stdout)["alerts"]
    assert eff["email"]["password"] == "***" and eff["webhook"]["headers"] == {"Authorization": "***"}
    assert eff["rules"][0]["for"] == 0.0 and eff["email"]["from"] == "a@b"


def test_serve_with_an_invalid_rule_exits_2(tmp_path: Path) -> None:
    p = tmp_path / "hvstat.toml"
    p.write_text(rule(metric="node.filesystems"))
    r = subprocess.run([sys.executable, "-m", "hvstat.cli", "serve", "--config", str(p)], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert r.returncode == 2
    assert "alerts.rules[1] (rule 'bad-one')" in r.stderr and "is a list, not a number" in r.stderr
    assert "Traceback" not in r.stderr


def test_rule_structs_convert_like_the_config() -> None:
    """The settings struct is what compile_rules takes; msgspec errors name the TOML key ``for``."""
    from hvstat.config import AlertRuleSettings

    raw = msgspec.convert({"name": "a", "metric": "vm.cpu_usage", "op": "<", "threshold": 5, "severity": "low", "for": "1m"}, AlertRuleSettings)
    assert compile_rules([raw])[0].for_secs == 60.0
    with pytest.raises(msgspec.ValidationError, match=r"\$\.for"):
        msgspec.convert({"name": "a", "metric": "vm.cpu_usage", "op": "<", "threshold": 5, "severity": "low", "for": [1]}, AlertRuleSettings)


def test_user_and_process_rules_name_their_entity_or_take_every_one() -> None:
    alice, bob = (msgspec.convert(procsamples.user(n, uid, cpu=c), UserMetrics) for n, uid, c in (("alice", 1000, 150.0), ("bob", 1001, 5.0)))
    p = msgspec.convert(procsamples.process(42, "backup.sh", "alice", 1000, cpu=99.0), ProcessMetrics)

    def compiled(metric: str, **keys: Any) -> Rule:
        return compile_rule(msgspec.convert({"name": "r", "metric": metric, "op": ">", "threshold": 1, "severity": "low", **keys}, AlertRuleSettings))

    for metric in ("user.cpu_percent", "user[*].cpu_percent", "user.cpu_usage"):
        r = compiled(metric)
        assert r.kind == "user" and r.expr.entity is None and r.selects(alice) and r.selects(bob)
        assert r.expr.values(alice) == [(None, 150.0)]
    r = compiled('user["alice"].rss_bytes / user["alice"].processes')
    assert r.selects(alice) and not r.selects(bob) and r.expr.values(alice) == [(None, float(1 << 29))]
    assert compiled("user.persistent_heavy").expr.values(alice) == [(None, 0.0)]
    assert compiled("user.memory_percent", select={"name": "b*"}).selects(bob)
    assert not compiled("user.memory_percent", select={"name": "b*"}).selects(alice)
    r = compiled("process[42].cpu_percent")
    assert r.kind == "process" and r.selects(p) and r.expr.values(p) == [(None, 99.0)]
    assert not compiled("process[43].cpu_percent").selects(p)
    assert compiled("process.rss_bytes", select={"name": "backup*"}).selects(p)
    assert compiled("process.write_bytes_per_sec").expr.values(p) == [(None, 10.0)]
    with pytest.raises(RuleError, match="only rules on containers or VMs take a runtime"):
        compiled("user.cpu_percent", select={"runtime": "docker"})
