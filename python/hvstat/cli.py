"""``hvstat serve | snapshot | check-config``."""

from __future__ import annotations

import argparse
import logging
import sys
import time

import msgspec

from hvstat import __version__
from hvstat._native import ConfigError as CoreConfigError
from hvstat._native import ContainerSampler, NodeSampler
from hvstat.config import ConfigError, Settings, check_bind, is_loopback, load_settings
from hvstat.models import node_metrics_decoder
from hvstat.sources.node import PRIME_SECS


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
    return p


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    server = settings.server
    if getattr(args, "host", None) is not None or getattr(args, "port", None) is not None:
        server = msgspec.structs.replace(
            server, host=args.host or server.host, port=args.port if args.port is not None else server.port
        )
        settings = msgspec.structs.replace(settings, server=server)
    return settings


def _serve(settings: Settings) -> None:
    import uvicorn

    from hvstat.app import create_app

    check_bind(settings.server)
    # The core validates its own settings (globs, caps) when a sampler is built; do it here so a
    # bad value is a message and exit code 2, not a traceback from inside the server's startup.
    NodeSampler(settings.node.core_config_json())
    if settings.containers.enabled:
        ContainerSampler(settings.containers.core_config_json(settings.node))
    logging.basicConfig(level=settings.logging.level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if settings.server.allow_unauthenticated_remote and not is_loopback(settings.server.host):
        logging.getLogger("hvstat").warning(
            "serving on %s without authentication (server.allow_unauthenticated_remote)", settings.server.host
        )
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.logging.level,
        access_log=settings.logging.level == "debug",
        # /ws sends the same encoded bytes to every client (hub.py). permessage-deflate, which
        # browsers and the websockets package offer, would compress them again for each client
        # (its context differs per connection): 5x the CPU of the whole fan-out at 1000 clients
        # (bench/README.md, "WebSocket fan-out"). Dashboards use the slim topics instead.
        ws_per_message_deflate=False,
    )


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
        alerts["webhook"]["headers"] = {k: "***" for k in alerts["webhook"].get("headers", {})}
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
            _serve(settings)
        elif args.command == "snapshot":
            _snapshot(settings, args.interval, args.pretty)
        elif args.command == "check-config":
            _check_config(settings)
    except (ConfigError, CoreConfigError) as e:
        print(f"hvstat: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
