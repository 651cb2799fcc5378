"""Configuration: TOML, HVSTAT_* overrides, validation messages that name the key, and the CLI's
handling of bad configs (``check-config``, ``serve`` exit code 2 with the message on stderr)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

from helpers import WAIT_SECS, clean_env, hvstat_exe
from hvstat._core import ConfigError as CoreConfigError
from hvstat._core import NodeSampler
from hvstat.config import ConfigError, NodeSettings, Settings, load_settings
from hvstat.settings import StorageSettings, default_storage_path

pytestmark = pytest.mark.unit


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hvstat.toml"
    p.write_text(text)
    return p


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*hvstat_exe(), *args],
        capture_output=True,
        text=True,
        timeout=WAIT_SECS,
        env=clean_env(**(env or {})),
        stdin=subprocess.DEVNULL,
    )


# --- loading ---------------------------------------------------------------------------------------


def test_defaults_with_empty_file_and_no_env(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), environ={})
    # Every default, and [storage] path filled in where the service keeps its history.
    assert s == Settings(storage=StorageSettings(path=default_storage_path({})))
    # The familiar [monitoring] defaults of DESIGN.md, and the loopback bind of its security section.
    m = s.monitoring
    assert (m.node_metrics_interval, m.vm_metrics_interval, m.history_retention, m.max_ws_clients) == (5, 10, 86400, 100)
    assert m.enable_history is True
    assert s.server.host == "127.0.0.1"


def test_toml_file_is_read(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
[server]
port = 9200
[monitoring]
node_metrics_interval = 2.5
enable_history = false
[node]
disk_exclude = ["loop*", "sr*"]
max_disks = 7
[logging]
level = "debug"
""",
    )
    s = load_settings(p, environ={})
    assert s.server.port == 9200
    assert s.monitoring.node_metrics_interval == 2.5
    assert s.monitoring.enable_history is False
    assert s.node.disk_exclude == ["loop*", "sr*"]
    assert s.node.max_disks == 7
    assert s.logging.level == "debug"
    # Only set node keys go to the core; the rest take its defaults.
    assert json.loads(s.node.core_config_json()) == {"disk_exclude": ["loop*", "sr*"], "max_disks": 7}


def test_hvstat_config_env_names_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[server]\nport = 9300\n")
    assert load_settings(None, environ={"HVSTAT_CONFIG": str(p)}).server.port == 9300


@pytest.mark.parametrize(
    ("var", "raw", "table", "key", "want"),
    [
        ("HVSTAT_SERVER_PORT", "9201", "server", "port", 9201),
        ("HVSTAT_MONITORING_NODE_METRICS_INTERVAL", "0.25", "monitoring", "node_metrics_interval", 0.25),
        ("HVSTAT_MONITORING_ENABLE_HISTORY", "false", "monitoring", "enable_history", False),
        ("HVSTAT_MONITORING_ENABLE_HISTORY", "true", "monitoring", "enable_history", True),
        ("HVSTAT_NODE_DISK_EXCLUDE", "loop*, sr*", "node", "disk_exclude", ["loop*", "sr*"]),
        ("HVSTAT_NODE_DISK_EXCLUDE", '["loop*", "a,b"]', "node", "disk_exclude", ["loop*", "a,b"]),
        ("HVSTAT_NODE_MAX_INTERFACES", "3", "node", "max_interfaces", 3),
        ("HVSTAT_SERVER_HOST", "::1", "server", "host", "::1"),
        ("HVSTAT_LOGGING_LEVEL", "warning", "logging", "level", "warning"),
        ("HVSTAT_SERVER_ALLOW_UNAUTHENTICATED_REMOTE", "1", "server", "allow_unauthenticated_remote", True),
    ],
)
def test_env_overrides(tmp_path: Path, var: str, raw: str, table: str, key: str, want: object) -> None:
    s = load_settings(write(tmp_path, ""), environ={var: raw})
    got = getattr(getattr(s, table), key)
    assert got == want and type(got) is type(want)


def test_env_overrides_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[server]\nport = 9200\nhost = \"127.0.0.2\"\n")
    s = load_settings(p, environ={"HVSTAT_SERVER_PORT": "9300"})
    assert (s.server.port, s.server.host) == (9300, "127.0.0.2")


# --- errors name the key ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("[server]\nport = 0\n", ["server.port"]),
        ("[server]\nport = 70000\n", ["server.port"]),
        ('[server]\nport = "x"\n', ["server.port"]),
        ("[server]\nport = 1.5\n", ["server.port"]),
        ("[monitoring]\nnode_metrics_interval = 0\n", ["monitoring.node_metrics_interval"]),
        ('[monitoring]\nenable_history = "yes"\n', ["monitoring.enable_history"]),
        ("[monitoring]\nhistory_retention = -1\n", ["monitoring.history_retention"]),
        ('[logging]\nlevel = "loud"\n', ["logging.level"]),
        ("[node]\nmax_disks = -1\n", ["node.max_disks"]),
        ('[node]\ndisk_exclude = "loop*"\n', ["node.disk_exclude"]),
        ("[server]\nbogus = 1\n", ["server.bogus"]),
        ("[nope]\na = 1\n", ["nope"]),
        ("top = 1\n", ["top"]),
        ("server = 5\n", ["server"]),
    ],
)
def test_bad_file_values_name_the_key(tmp_path: Path, toml: str, names: list[str]) -> None:
    p = write(tmp_path, toml)
    with pytest.raises(ConfigError) as e:
        load_settings(p, environ={})
    for n in names:
        assert n in str(e.value), str(e.value)


@pytest.mark.parametrize(
    ("var", "raw", "key"),
    [
        ("HVSTAT_SERVER_PORT", "abc", "server.port"),
        ("HVSTAT_SERVER_PORT", "99999", "server.port"),
        ("HVSTAT_MONITORING_NODE_METRICS_INTERVAL", "0", "monitoring.node_metrics_interval"),
        ("HVSTAT_MONITORING_NODE_METRICS_INTERVAL", "-1", "monitoring.node_metrics_interval"),
        ("HVSTAT_MONITORING_ENABLE_HISTORY", "maybe", "monitoring.enable_history"),
        ("HVSTAT_NODE_DISK_EXCLUDE", "[broken", "node.disk_exclude"),
        ("HVSTAT_NODE_MAX_DISKS", "many", "node.max_disks"),
    ],
)
def test_bad_env_values_name_key_and_variable(tmp_path: Path, var: str, raw: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, ""), environ={var: raw})
    assert key in str(e.value) and var in str(e.value), str(e.value)


def test_unknown_env_var_is_an_error(tmp_path: Path) -> None:
    p = write(tmp_path, "")
    with pytest.raises(ConfigError, match="HVSTAT_SERVER_NOPE"):
        load_settings(p, environ={"HVSTAT_SERVER_NOPE": "1"})
    with pytest.raises(ConfigError, match="HVSTAT_NOPE_PORT"):
        load_settings(p, environ={"HVSTAT_NOPE_PORT": "1"})


def test_unrelated_env_is_ignored(tmp_path: Path) -> None:
    env = {"HOME": "/root", "HVSTATX": "1", "PATH": "/bin"}
    assert load_settings(write(tmp_path, ""), environ=env) == Settings(storage=StorageSettings(path=default_storage_path(env)))


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as e:
        load_settings(missing, environ={})
    assert str(missing) in str(e.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p, environ={})
    assert str(p) in str(e.value)


def test_bad_glob_rejected_by_core() -> None:
    # The message names the exact key (node.disk_exclude), not just the family (node.disk_*).
    with pytest.raises(CoreConfigError, match=r"node\.disk_exclude\b.*sd\[a"):
        NodeSampler(json.dumps({"disk_exclude": ["sd[a"]}))
    with pytest.raises(CoreConfigError, match=r"node\.interface_include\b"):
        NodeSampler(json.dumps({"interface_include": ["eth[0"]}))
    with pytest.raises(CoreConfigError, match=r"node\.mount_point_exclude\b"):
        NodeSampler(json.dumps({"mount_point_exclude": ["/x/[ab"]}))
    with pytest.raises(CoreConfigError, match="bogus"):
        NodeSampler(json.dumps({"bogus": 1}))


# --- the CLI ------------------------------------------------------------------------------------


def test_check_config_prints_effective_settings(tmp_path: Path) -> None:
    p = write(tmp_path, "[server]\nport = 9222\n[node]\nmax_disks = 7\n")
    r = run_cli("check-config", "--config", str(p), env={"HVSTAT_MONITORING_NODE_METRICS_INTERVAL": "3"})
    assert r.returncode == 0, r.stderr
    eff = json.loads(r.stdout)
    assert eff["server"]["port"] == 9222
    assert eff["monitoring"]["node_metrics_interval"] == 3
    node = eff["node"]
    # The core fills in its own defaults: every [node] key present, none left unset.
    assert set(node) == {f.name for f in msgspec.structs.fields(NodeSettings)}
    assert all(v is not None for v in node.values()), node
    assert node["max_disks"] == 7
    assert (node["proc_root"], node["sys_root"], node["rootfs"]) == ("/proc", "/sys", "/")
    assert isinstance(node["disk_exclude"], list) and node["disk_exclude"]


def test_check_config_bad_glob_exits_2(tmp_path: Path) -> None:
    p = write(tmp_path, '[node]\ndisk_exclude = ["sd[a"]\n')
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 2
    assert "node.disk_exclude" in r.stderr and "sd[a" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_check_config_missing_file_exits_2(tmp_path: Path) -> None:
    r = run_cli("check-config", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "nope.toml" in r.stderr


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ("[server]\nport = 0\n", {}, "server.port"),
        ("", {"HVSTAT_SERVER_PORT": "nope"}, "HVSTAT_SERVER_PORT"),
        ("[bogus]\nx = 1\n", {}, "bogus"),
    ],
)
def test_serve_with_bad_config_exits_2(tmp_path: Path, toml: str, env: dict[str, str], needle: str) -> None:
    p = write(tmp_path, toml)
    # A port from the free-port helper would be moot: it must not get as far as binding.
    r = run_cli("serve", "--config", str(p), env=env)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_refuses_unauthenticated_non_loopback_bind(tmp_path: Path, free_port: Any) -> None:
    """DESIGN.md, Security: any bind but loopback needs a token or an explicit opt-out; with neither
    it must refuse before binding (tokens and the opt-out: tests/test_security.py)."""
    p = write(tmp_path, "")
    # Were the check missing, the server would run until run_cli's timeout kills it.
    r = run_cli("serve", "--config", str(p), "--host", "0.0.0.0", "--port", str(free_port()))
    assert r.returncode == 2, r.stderr
    assert "server.host" in r.stderr and "allow_unauthenticated_remote" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_with_missing_config_exits_2(tmp_path: Path) -> None:
    r = run_cli("serve", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2
    assert "does not exist" in r.stderr


def test_serve_with_bad_glob_exits_2(tmp_path: Path, free_port: Any) -> None:
    p = write(tmp_path, '[node]\ndisk_exclude = ["sd[a"]\n')
    r = run_cli("serve", "--config", str(p), "--port", str(free_port()))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "node.disk_exclude" in r.stderr
    assert "Traceback" not in r.stderr


def test_storage_defaults_to_systemds_state_directory(tmp_path: Path) -> None:
    # packaging/hvstat.service runs as a dynamic user (not root) with StateDirectory=hvstat: systemd
    # names the directory in $STATE_DIRECTORY (colon-separated when there are several). Found
    # running the unit under real systemd (tests/test_guest_host.py): the user's $HOME/.local/state
    # was read-only there and history stayed in memory.
    env = {"HOME": "/", "STATE_DIRECTORY": "/var/lib/hvstat:/var/lib/other"}
    assert default_storage_path(env) == "/var/lib/hvstat/history.db"
    assert load_settings(write(tmp_path, ""), environ=env).storage.path == "/var/lib/hvstat/history.db"
    assert default_storage_path({"HOME": "/home/u", "STATE_DIRECTORY": ""}) != "/history.db"
