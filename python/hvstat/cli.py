"""``hvstat serve | snapshot | check-config``."""

from __future__ import annotations

import logging
import signal
from types import FrameType


def _sighup_too_early(signum: int, frame: FrameType | None) -> None:
    logging.getLogger("hvstat").warning("SIGHUP before the service had started (or while it stops): ignored")


# SIGHUP's default action ends the process, and systemd's ExecReload may send it at any time: it is
# taken over before anything else is imported (that takes a few tenths of a second), until the
# service's own reload handler replaces this one (hvstat/reload.py).
if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
    signal.signal(signal.SIGHUP, _sighup_too_early)

import argparse  # noqa: E402 - after the SIGHUP handler, on purpose
import contextlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import msgspec  # noqa: E402

from hvstat import __version__  # noqa: E402
from hvstat._native import ContainerSampler, NodeSampler  # noqa: E402
from hvstat.config import ConfigError, Settings, has_tokens, is_loopback, load_settings  # noqa: E402
from hvstat.models import node_metrics_decoder  # noqa: E402
from hvstat.sources.node import PRIME_SECS  # noqa: E402
from hvstat.tokens import redact  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hvstat", description="Metrics for Linux hypervisor nodes.")
    p.add_argument("--version", action="version", version=f"hvstat {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = "TOML config file (default: $HVSTAT_CONFIG, else /etc/hvstat/hvstat.toml if it exists)"

    serve = sub.add_parser("serve", help="run the service (REST, health, OpenAPI)")
    serve.add_argument("--config", help=config_help)
    serve.add_argument("--host", help="bind address (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")

    snap = sub.add_parser("snapshot", help="print one node sample as JSON and exit")
    snap.add_argument("--config", help=config_help)
    snap.add_argument("--interval", type=float, default=PRIME_SECS, help="seconds between the two readings rates are taken over")
    snap.add_argument("--pretty", action="store_true", help="indent the JSON")

    check = sub.add_parser("check-config", help="validate the config and print the effective settings")
    check.add_argument("--config", help=config_help)

    hist = sub.add_parser("history", help="print an entity's history from the [storage] database (no server needed)")
    hist.add_argument("--config", help=config_help)
    hist.add_argument("--entity", default="node", help="node, container:<id> or vm:<id> (default: node)")
    hist.add_argument("--since", default="1h", help="how far back: seconds, or with a unit (90m, 7d, 1y), or unix seconds (default: 1h)")
    hist.add_argument("--step", type=float, help="seconds per point, a multiple of a tier's bucket (default: the finest tier that reaches back)")
    hist.add_argument("--fields", help="comma-separated history fields (default: all of the entity's kind)")
    hist.add_argument("--format", choices=("json", "csv"), default="json")
    hist.add_argument("--db", help="the database (default: [storage] path)")

    top = sub.add_parser("top", help="live full-screen view of the node, containers, VMs, processes and users")
    top.add_argument("--config", help=config_help)
    top.add_argument("--url", help="a running hvstat serve's /ws (default: the local service's, from the config; without one answering, sample directly)")
    top.add_argument("--token", help="API token for --url (default: $HVSTAT_TOKEN, else the config's first token)")
    top.add_argument("--cafile", help="CA certificate(s) to verify a wss:// server with")
    top.add_argument("--insecure", action="store_true", help="do not verify a wss:// server's certificate")
    top.add_argument("--direct", action="store_true", help="sample this machine in this process even if a server runs")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between samples when sampling directly (default: 2)")

    rep = sub.add_parser("report", help="a report of a period from the [storage] database: node, top guests and users, alerts (no server needed)")
    rep.add_argument("--config", help=config_help)
    rep.add_argument("--since", default="24h", help="how far back: a duration (24h, 7d) or unix seconds (default: 24h)")
    rep.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    rep.add_argument("--db", help="the database (default: [storage] path)")

    back = sub.add_parser("backup", help="copy the [storage] database consistently, also while the service runs")
    back.add_argument("target", help="the copy's path (must not exist)")
    back.add_argument("--config", help=config_help)
    back.add_argument("--db", help="the database (default: [storage] path)")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    """The config file, the environment and --host/--port, validated (hvstat.config)."""
    return load_settings(args.config, host=getattr(args, "host", None), port=getattr(args, "port", None))


def _reload_loader(args: argparse.Namespace) -> Callable[[], Settings]:
    """What SIGHUP loads (hvstat/reload.py): the same file, environment and --host/--port as at
    start, checked as at start; raises on anything invalid."""
    return lambda: _settings(args)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _serve(settings: Settings, reload_settings: Callable[[], Settings] | None = None) -> None:
    import uvicorn

    from hvstat.api.transport import QuietServer, WebSocketProtocol, http_protocol
    from hvstat.app import create_app

    if settings.remote_write.enabled:
        from hvstat.remote_write import check_buffer_dir

        problem = check_buffer_dir(settings.remote_write)
        if problem is not None:
            raise ConfigError(f"config key remote_write.buffer_dir: {problem}")
    if settings.storage.path:
        from hvstat.rollups import check_lock

        problem = check_lock(settings.storage.path)
        if problem is not None:
            raise ConfigError(f"config key storage.path: {problem}")
    from hvstat.logs import configure_logging

    # Text or JSON lines ([logging] format), for hvstat's loggers and uvicorn's alike.
    configure_logging(settings.logging)
    if settings.server.allow_unauthenticated_remote and not is_loopback(settings.server.host) and not has_tokens(settings.server):
        logging.getLogger("hvstat").warning(
            "serving on %s without authentication (server.allow_unauthenticated_remote)", settings.server.host
        )
    # SIGTERM (systemctl stop): uvicorn stops serving and runs the lifespan's shutdown (sources
    # stopped, notifications flushed), then raises the signal it caught again so that its previous
    # handler runs: this one, which makes that a clean exit 0 (instead of death by SIGTERM). Before
    # uvicorn takes SIGTERM over, it exits 0 at once. SIGHUP, whose default action is to terminate,
    # is the lifespan's (a reload) once the sources run; until then it is logged and ignored (a
    # Python handler, not SIG_IGN, which child processes would inherit).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGHUP, _sighup_too_early)
    # uvicorn.run, with uvicorn's Server replaced by one without a 10 Hz tick (api/transport.py).
    config = uvicorn.Config(
        create_app(settings, reload_settings=reload_settings),
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.logging.level,
        access_log=settings.logging.level == "debug",
        log_config=None,  # configure_logging's, above
        # [server] tls_cert / tls_key: HTTPS and wss:// on the same port; None serves plain HTTP.
        ssl_certfile=settings.server.tls_cert,
        ssl_keyfile=settings.server.tls_key,
        # A client message over 64 KiB gets an error from the hub (docs/websocket.md); uvicorn's
        # default frame limit of 16 MiB would let every connection make the server buffer that much.
        ws_max_size=1 << 20,
        # /ws sends the same encoded bytes to every client (hub.py). permessage-deflate, which
        # browsers and the websockets package offer, would compress them again for each client
        # (its context differs per connection): 5x the CPU of the whole fan-out at 1000 clients
        # (bench/README.md, "WebSocket fan-out"). Dashboards use the slim topics instead.
        ws_per_message_deflate=False,
        # The sans-I/O protocol of the websockets package (a dependency): the legacy one is
        # deprecated, and took about 20 % more server CPU per fan-out at 1000 clients, with a
        # longer tail (bench/README.md, "WebSocket fan-out"). hvstat's subclasses add a request
        # read time (server.request_timeout) and reset a dropped client's socket (api/transport.py).
        ws=WebSocketProtocol,
        http=http_protocol(settings.server.request_timeout),
    )
    server = QuietServer(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the lifespan's startup failed


def _snapshot(settings: Settings, interval: float, pretty: bool) -> None:
    sampler = NodeSampler(settings.node.core_config_json())
    sampler.prime()
    time.sleep(max(0.0, interval))
    sample = node_metrics_decoder.decode(sampler.sample())
    out = msgspec.json.encode(sample)
    sys.stdout.write((msgspec.json.format(out, indent=2) if pretty else out).decode() + "\n")


def _check_config(settings: Settings) -> None:
    # Building a sampler runs the core's own validation (globs, unknown keys) too.
    effective_node = msgspec.json.decode(NodeSampler(settings.node.core_config_json()).config_json())
    effective = msgspec.to_builtins(settings)
    # Secrets of the notifiers are not printed (the output ends up in tickets and chats).
    alerts = effective.get("alerts", {})
    if alerts.get("email") and alerts["email"].get("password") is not None:
        alerts["email"]["password"] = "***"
    if alerts.get("webhook"):
        alerts["webhook"]["headers"] = dict.fromkeys(alerts["webhook"].get("headers", {}), "***")
    effective["server"]["tokens"] = ["***" for _ in settings.server.tokens]
    effective["remote_write"]["headers"] = dict.fromkeys(settings.remote_write.headers, "***")
    # A user:password@ in a URL is a secret too.
    effective["remote_write"]["url"] = settings.remote_write.url and redact(settings.remote_write.url)
    effective["fleet"]["headers"] = dict.fromkeys(settings.fleet.headers, "***")
    effective["fleet"]["query_url"] = settings.fleet.query_url and redact(settings.fleet.query_url)
    if alerts.get("webhook"):
        alerts["webhook"]["url"] = redact(alerts["webhook"]["url"])
    effective["node"] = effective_node
    effective["containers"] = {
        "enabled": settings.containers.enabled,
        **msgspec.json.decode(ContainerSampler(settings.containers.core_config_json(settings.node)).config_json()),
    }
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(effective), indent=2).decode() + "\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "serve":
            _serve(settings, _reload_loader(args))
        elif args.command == "snapshot":
            _snapshot(settings, args.interval, args.pretty)
        elif args.command == "check-config":
            _check_config(settings)
        elif args.command == "top":
            # Textual is imported by this branch only: `hvstat serve` never loads it.
            from hvstat.top import top_command

            return top_command(settings, args)
        elif args.command == "report":
            from hvstat.report import report_command

            return report_command(settings, args)
        elif args.command in ("history", "backup"):
            from hvstat.tools import backup_command, history_command

            if args.command == "history":
                return history_command(settings, args)
            return backup_command(settings, args)
    except ConfigError as e:
        print(f"hvstat: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before uvicorn handles SIGINT (it stops cleanly, exit 0, after)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
