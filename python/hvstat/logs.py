"""Logging for ``hvstat serve``: hvstat's own loggers and uvicorn's (error and access) as text lines
or, with ``[logging] format = "json"``, one JSON object per line.

A JSON line has ``ts`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger``, ``msg`` (the
formatted message), then every ``extra=`` field the call passed; uvicorn's access lines also have
``client``, ``method``, ``path``, ``http_version`` and ``status``; an exception adds ``exc`` (the
traceback text). In both formats the value of a ``token=`` query parameter is replaced by ``***``
(uvicorn logs the path of every WebSocket connection, and the access log every request's).
"""

from __future__ import annotations

import datetime
import logging
import logging.config
from typing import Any

import msgspec

from hvstat.settings import LoggingSettings
from hvstat.tokens import redact

# What every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}
_encoder = msgspec.json.Encoder(enc_hook=repr)


class RedactTokens(logging.Filter):
    """Replaces the value of ``token=`` query parameters in the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            # Each argument on its own first, which keeps the access log's fields (logs.JsonFormatter).
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            # A secret split over several (websockets logs a header as "< %s: %s"): redact the
            # formatted message instead.
            try:
                full = record.getMessage()
            except (TypeError, ValueError):
                full = None
            if full is not None and (clean := redact(full)) != full:
                record.msg, record.args = clean, None
        color = getattr(record, "color_message", None)
        if isinstance(color, str):
            record.color_message = redact(color)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # uvicorn's access record: '%s - "%s %s HTTP/%s" %d' % (client, method, path, version, status).
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            out.update(zip(("client", "method", "path", "http_version", "status"), record.args))
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return _encoder.encode(out).decode()


def log_config(settings: LoggingSettings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the root logger (hvstat) and uvicorn's loggers. The
    text format keeps uvicorn's own (its default LOGGING_CONFIG) and hvstat's ``LEVEL name: msg``."""
    if settings.format == "json":
        formatters: dict[str, Any] = {name: {"()": JsonFormatter} for name in ("hvstat", "uvicorn", "access")}
    else:
        formatters = {
            "hvstat": {"format": "%(levelname)s %(name)s: %(message)s"},
            "uvicorn": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s", "use_colors": None},
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                "use_colors": None,
            },
        }

    def handler(formatter: str, stream: str) -> dict[str, Any]:
        return {"class": "logging.StreamHandler", "formatter": formatter, "stream": stream, "filters": ["redact"]}

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactTokens}},
        "formatters": formatters,
        "handlers": {
            "hvstat": handler("hvstat", "ext://sys.stderr"),
            "uvicorn": handler("uvicorn", "ext://sys.stderr"),
            "access": handler("access", "ext://sys.stdout"),
        },
        "loggers": {
            "uvicorn": {"handlers": ["uvicorn"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["hvstat"], "level": settings.level.upper()},
    }


def configure_logging(settings: LoggingSettings) -> None:
    """Set up logging for ``hvstat serve``; uvicorn is then started with ``log_config=None`` so
    that it keeps this (it still sets its loggers' levels from ``log_level``)."""
    logging.config.dictConfig(log_config(settings))
