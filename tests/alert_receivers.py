"""Real receivers for the alert notifiers, started by the tests on loopback: an HTTP server that
records every webhook POST (and can answer slowly or with errors), and an SMTP server (aiosmtpd)
with STARTTLS or implicit TLS and AUTH that records every delivered mail. A self-signed certificate
for 127.0.0.1 is made per test with ``cryptography``.

Importable as ``alert_receivers`` (pytest puts tests/ on sys.path, see helpers.py).
"""

from __future__ import annotations

import contextlib
import datetime
import email
import email.policy
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import free_port
from helpers import WAIT_SECS

SMTP_USER = "hvstat"
SMTP_PASSWORD = "s3cret pass"


# --- webhook -------------------------------------------------------------------------------------------


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class WebhookReceiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records every POST. ``statuses`` are answered to the
    first requests in order (then 200); ``delay`` seconds pass before each answer."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    posts: list[Post] = field(default_factory=list)
    attempts: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.cond:
                    receiver.attempts += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.delay:
                    time.sleep(receiver.delay)
                if status == 200:
                    with receiver.cond:
                        receiver.posts.append(Post(self.path, dict(self.headers), json.loads(body), time.time()))
                        receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT_SECS)

    def wait(self, predicate: Callable[[list[Post]], bool], timeout: float = WAIT_SECS) -> list[Post]:
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.posts), timeout):
                raise AssertionError(f"webhook: condition not met within {timeout}s; got {[p.body.get('type') for p in self.posts]}")
            return list(self.posts)


def down_url() -> str:
    """A URL on a loopback port where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/hook"


# --- TLS ---------------------------------------------------------------------------------------------------


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for 127.0.0.1 and localhost (PEM files in ``workdir``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hvstat test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = workdir / "key.pem", workdir / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


# --- SMTP ---------------------------------------------------------------------------------------------------


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None
    tls: bool


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.server.cond:
            # session.ssl: after STARTTLS; the transport's ssl_object: implicit TLS.
            tls = session.ssl is not None or smtp.transport.get_extra_info("ssl_object") is not None
            self.server.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message, login, tls))  # type: ignore[arg-type]
            self.server.cond.notify_all()
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in its own thread, requiring TLS (STARTTLS, or implicit with
    ``implicit_tls``) and AUTH as SMTP_USER / SMTP_PASSWORD; records every mail it accepts."""

    def __init__(self, workdir: Path, *, implicit_tls: bool = False) -> None:
        key, self.cert = self_signed(workdir)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, key)
        self.port = free_port()
        self.mails: list[Mail] = []
        self.cond = threading.Condition()
        common = {"auth_required": True, "authenticator": _authenticator}
        if implicit_tls:
            # aiosmtpd cannot tell that an implicit-TLS connection is encrypted, so it must be told
            # not to insist on STARTTLS before AUTH (and warns about it on each connection).
            self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, ssl_context=ctx, auth_require_tls=False, **common)
        else:
            self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, tls_context=ctx, require_starttls=True, **common)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def wait(self, predicate: Callable[[list[Mail]], bool], timeout: float = WAIT_SECS) -> list[Mail]:
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.mails), timeout):
                raise AssertionError(f"smtp: condition not met within {timeout}s; got {[m.message['Subject'] for m in self.mails]}")
            return list(self.mails)


@contextlib.contextmanager
def smtp_server(workdir: Path, *, implicit_tls: bool = False) -> Iterator[SmtpServer]:
    with SmtpServer(workdir, implicit_tls=implicit_tls) as s:
        yield s
