"""API tokens: their form, the token file, and keeping them out of log lines.

Configuration-level code (no HTTP here): ``hvstat.config.load_settings`` checks them at load, the
middleware (``hvstat.api.auth``) compares them, the log filter (``hvstat.logs``) redacts them.
"""

from __future__ import annotations

import logging
import os
import re
import stat

from hvstat.settings import ConfigError, ServerSettings

log = logging.getLogger(__name__)

# Token characters: RFC 6750's b64token (what fits in "Authorization: Bearer ..." unquoted).
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MIN_TOKEN_CHARS = 16
# Secrets in log lines: query parameters named token (uvicorn logs "WebSocket /ws?token=..." and
# the access log every path with its query string) and Authorization headers (at debug level the
# websockets package logs every handshake header through uvicorn's logger).
_TOKEN_IN_QUERY = re.compile(r"(?i)([?&]token=)[^&\s\"']*")
_AUTHORIZATION = re.compile(r"(?i)(authorization:\s*(?:\S+\s+)?)[^\s\"']+")
# ... and the first message {"type": "auth", "token": "..."}, which it logs too (debug level).
_TOKEN_IN_JSON = re.compile(r'(?i)("token"\s*:\s*")[^"]*')
# ... and the user:password@ of a URL (remote_write.url, a webhook's URL, or an error quoting one).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s\"']+@")


def redact(text: str) -> str:
    """``text`` with the value of every ``token=`` query parameter, ``"token": "..."`` JSON member,
    Authorization header (after its scheme) and URL's ``user:password@`` replaced by ``***``."""
    low = text.lower()
    if "token" in low:
        text = _TOKEN_IN_JSON.sub(r"\1***", _TOKEN_IN_QUERY.sub(r"\1***", text))
    if "authorization" in low:
        text = _AUTHORIZATION.sub(r"\1***", text)
    if "@" in text and "://" in text:
        text = _URL_USERINFO.sub(r"\1***@", text)
    return text


def check_token(token: str, where: str) -> None:
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"config key {where}: a token of {len(token)} characters is too short (at least {MIN_TOKEN_CHARS}; e.g. `openssl rand -hex 32`)")
    if not _TOKEN_RE.fullmatch(token):
        raise ConfigError(f"config key {where}: a token may hold only letters, digits and -._~+/ (then = at the end)")


def read_token_file(path: str) -> list[str]:
    """The tokens of ``path``: one per line; blank lines and lines starting with ``#`` are skipped,
    surrounding whitespace is dropped. Raises ConfigError naming ``server.token_file``."""
    try:
        text = open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config key server.token_file: cannot read {path}: {e}") from None
    tokens = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            check_token(line, f"server.token_file ({path}, line {n})")
            tokens.append(line)
    if not tokens:
        raise ConfigError(f"config key server.token_file: {path} holds no token")
    return tokens


def load_tokens(server: ServerSettings) -> tuple[str, ...]:
    """Every configured token (``tokens`` and ``token_file``), checked; () when none is set."""
    for i, t in enumerate(server.tokens):
        check_token(t, f"server.tokens[{i}]")
    from_file = read_token_file(server.token_file) if server.token_file is not None else []
    return tuple(dict.fromkeys([*server.tokens, *from_file]))


def warn_if_readable_by_others(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        log.warning("token file %s is readable by every user (mode %o); chmod 0640 or 0600", path, stat.S_IMODE(mode))
