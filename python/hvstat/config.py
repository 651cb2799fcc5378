"""The one entry point that loads and validates hvstat's configuration: ``load_settings``.

``hvstat.settings`` reads the TOML file and the ``HVSTAT_*`` overrides into one frozen ``Settings``
and checks what each table can check alone. This module adds everything that needs another part of
hvstat, so that a bad value is one ``ConfigError`` naming the key, at load, never a traceback from
inside the running service: the tokens (``hvstat.tokens``), the alert rules (``hvstat.alerts.rules``),
the Rust core's own settings (globs, caps: it validates them when a sampler is built), and the
bind address. ``hvstat serve``, ``hvstat check-config``, ``hvstat snapshot`` and the SIGHUP reload
all load through here.

The names of ``hvstat.settings`` are re-exported: ``from hvstat.config import Settings`` works.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

from hvstat._native import ConfigError as CoreConfigError
from hvstat._native import ContainerSampler, NodeSampler, ProcessSampler, VmSampler
from hvstat.alerts.rules import RulesError, compile_rules, every_rule
from hvstat.exposition import own_label_names
from hvstat.settings import (
    AlertRuleSelect,
    AlertRuleSettings,
    AlertSettings,
    ConfigError,
    ContainerSettings,
    EmailRecipients,
    EmailSettings,
    LoggingSettings,
    MonitoringSettings,
    NodeSettings,
    RemoteWriteSettings,
    ServerSettings,
    Settings,
    VmSettings,
    WebhookSettings,
    check_bind,
    has_tokens,
    is_loopback,
    read_settings,
    replace_server,
)
from hvstat.tokens import load_tokens

__all__ = [
    "AlertRuleSelect",
    "AlertRuleSettings",
    "AlertSettings",
    "ConfigError",
    "ContainerSettings",
    "EmailRecipients",
    "EmailSettings",
    "LoggingSettings",
    "MonitoringSettings",
    "NodeSettings",
    "RemoteWriteSettings",
    "ServerSettings",
    "Settings",
    "VmSettings",
    "WebhookSettings",
    "check_bind",
    "has_tokens",
    "is_loopback",
    "load_settings",
]


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
) -> Settings:
    """Read ``path`` (or $HVSTAT_CONFIG, or /etc/hvstat/hvstat.toml if it exists, or nothing) with
    the environment's overrides and ``--host``/``--port``, and validate all of it; raises
    ``ConfigError`` naming the first bad key."""
    settings = replace_server(read_settings(path, environ), host=host, port=port)
    where = f" (in {path})" if path else ""
    env = os.environ if environ is None else environ
    try:
        load_tokens(settings.server)
    except ConfigError as e:
        # Name where the bad value came from: the variable when one set the key, else the file.
        key = "server.tokens" if "server.tokens" in str(e) else "server.token_file"
        variable = "HVSTAT_SERVER_TOKENS" if key == "server.tokens" else "HVSTAT_SERVER_TOKEN_FILE"
        raise ConfigError(f"{e} (from {variable})" if variable in env else f"{e}{where}") from None
    try:
        compile_rules(every_rule(settings.alerts))
    except RulesError as e:
        label = f"alerts.rules[{e.index}]" + (f" (rule {e.name!r})" if e.name else "")
        raise ConfigError(f"config key {label}{where}: {e.problem}") from None
    check_core(settings)
    _in(where, lambda: check_labels(settings.labels))
    _in(where, lambda: check_tls(settings.server))
    check_bind(settings.server)
    return settings


def check_labels(labels: dict[str, str]) -> None:
    """A ``[labels]`` name that one of hvstat's series uses already would make two labels of one
    name on that series (on the receiver, or in hvstat_node_info)."""
    own = own_label_names()
    for key in labels:
        if key in own:
            raise ConfigError(f"config key labels.{key}: {key!r} is a label of hvstat's own series ({', '.join(sorted(own))}); choose another name")


def check_tls(server: ServerSettings) -> None:
    """What uvicorn will load at start, loaded now: the certificate (chain) and the key, PEM, and
    that they belong together; else a ConfigError naming the key (not a traceback from serve)."""
    if server.tls_cert is None or server.tls_key is None:
        return
    for key, file in (("tls_cert", server.tls_cert), ("tls_key", server.tls_key)):
        if not os.path.isfile(file):
            raise ConfigError(f"config key server.{key}: {file} is not a file")
    try:
        ssl.create_default_context(cafile=server.tls_cert)  # parses every certificate in the file
    except (ssl.SSLError, ValueError) as e:
        raise ConfigError(f"config key server.tls_cert: {server.tls_cert} holds no valid PEM certificate ({e})") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(server.tls_cert, server.tls_key, password=lambda: b"")  # an encrypted key: refused, not prompted for
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e).upper().replace(" ", "_"):
            raise ConfigError(f"config key server.tls_key: {server.tls_key} is not the key of the certificate in {server.tls_cert}") from None
        raise ConfigError(f"config key server.tls_key: {server.tls_key} holds no valid PEM private key ({e})") from None
    except OSError as e:
        raise ConfigError(f"config key server.tls_key: cannot read {server.tls_key}: {e}") from None


def check_core(settings: Settings) -> None:
    """The Rust core validates its own settings (globs, caps, unknown keys) when a sampler is
    built: build each one the service would build, and turn its complaint into a ConfigError."""
    try:
        NodeSampler(settings.node.core_config_json())
        if settings.containers.enabled:
            ContainerSampler(settings.containers.core_config_json(settings.node))
        if settings.vms.enabled:
            VmSampler(settings.vms.core_config_json(settings.node))
        if settings.processes.enabled:
            ProcessSampler(settings.processes.core_config_json(settings.node))
    except CoreConfigError as e:
        # The core says "node config: node.disk_exclude: ..." or "node config: unknown field ...".
        table, _, problem = str(e).partition(" config: ")
        raise ConfigError(f"config key {problem}" if problem.startswith(f"{table}.") else f"config key {table}: {problem or e}") from None


def _in(where: str, check: Callable[[], object]) -> None:
    """Run ``check``; a ConfigError it raises gets the file's name appended."""
    try:
        check()
    except ConfigError as e:
        raise ConfigError(f"{e}{where}") from None
