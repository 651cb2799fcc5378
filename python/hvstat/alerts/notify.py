"""Notifiers: the engine's AlertTriggered / AlertResolved messages sent on to a webhook (JSON POST)
and over SMTP (one mail each), without ever making a source or the engine wait.

Each notifier owns a bounded asyncio queue and one task that drains it in order (a Resolved never
overtakes its Triggered). ``submit`` only puts into the queue; a full queue drops the message and
counts it. A failed attempt is retried ``retries`` times with a jittered exponential backoff (the
wait before retry n is between half and all of ``min(backoff_max, backoff * 2**n)``, so that many
nodes do not hammer a recovering receiver in step); a refusal that retrying cannot change (HTTP 4xx
other than 408/425/429, SMTP 5xx, authentication refused) fails at once. Each notifier counts what
it sent, failed, dropped and retried (``GET /api/alerts``, ``/metrics``).

The webhook uses httpx's asyncio client; smtplib is blocking, so mail is sent on the email
notifier's own single worker thread: a hung SMTP server ties up that thread only, never the default
executor the sources collect in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import smtplib
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

import httpx

from hvstat.models import AlertResolvedMessage, AlertTriggeredMessage, NotifierStatus, encoder
from hvstat.settings import AlertSettings, EmailSettings, WebhookSettings

log = logging.getLogger(__name__)

AlertMessage = AlertTriggeredMessage | AlertResolvedMessage
# How long the lifespan lets queued notifications go out at shutdown.
SHUTDOWN_GRACE_SECS = 3.0


class Permanent(Exception):
    """A refusal that a retry would not change."""


class Transient(Exception):
    """A failure worth a retry (a receiver that is busy or broken for now)."""


class QueueNotifier(ABC):
    name: Literal["webhook", "email"]

    def __init__(
        self,
        *,
        queue_size: int,
        retries: int,
        backoff: float,
        backoff_max: float,
        timeout: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.timeout = timeout
        self._rng = rng
        self._queue: asyncio.Queue[AlertMessage] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.retried = 0
        self.last_success: float | None = None
        self.last_error: str | None = None

    # --- the engine's side: never waits ---

    def submit(self, message: AlertMessage) -> bool:
        """Queue ``message``; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("alerts: %s queue full (%d waiting): %s for %s dropped", self.name, self._queue.qsize(), type(message).__name__, message.rule)
            return False
        return True

    # --- the worker ---

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"notifier:{self.name}")

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug in one delivery must not end the worker
                self.failed += 1
                log.exception("alerts: %s: delivering %s failed", self.name, type(message).__name__)
            finally:
                self._queue.task_done()

    def backoff_delay(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (0 for the first retry): equal jitter."""
        cap: float = min(self.backoff_max, self.backoff * 2**attempt)  # int ** int is Any to mypy
        return cap / 2 + self._rng() * cap / 2

    async def _deliver(self, message: AlertMessage) -> None:
        attempt = 0
        while True:
            try:
                await asyncio.wait_for(self.send(message), self.timeout)
            except asyncio.CancelledError:
                raise
            except Permanent as e:
                self._failed(message, str(e), "refused")
                return
            except Exception as e:  # noqa: BLE001 - every other error is worth a retry
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                if attempt >= self.retries:
                    self._failed(message, error, f"giving up after {attempt + 1} attempts")
                    return
                delay = self.backoff_delay(attempt)
                attempt += 1
                self.retried += 1
                self.last_error = error
                log.info("alerts: %s: %s for %s failed (%s); retry %d/%d in %.1fs", self.name, type(message).__name__, message.rule, error, attempt, self.retries, delay)
                await asyncio.sleep(delay)
            else:
                self.sent += 1
                self.last_success = time.time()
                return

    def _failed(self, message: AlertMessage, error: str, how: str) -> None:
        self.failed += 1
        self.last_error = error
        log.warning("alerts: %s: %s for %s not delivered (%s): %s", self.name, type(message).__name__, message.rule, how, error)

    @abstractmethod
    async def send(self, message: AlertMessage) -> None:
        """One attempt. Raise Permanent for a refusal, anything else to be retried."""

    async def aclose(self, grace: float = SHUTDOWN_GRACE_SECS) -> None:
        """Let what is queued go out for up to ``grace`` seconds, then stop the worker."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        left = self._queue.qsize()
        if left:
            log.warning("alerts: %s: %d notifications not sent at shutdown", self.name, left)
        await self._close()

    @abstractmethod
    async def _close(self) -> None:
        """Release what ``send`` opened (every notifier opens something: a client, a connection)."""

    def status(self) -> NotifierStatus:
        return NotifierStatus(
            name=self.name,
            sent=self.sent,
            failed=self.failed,
            dropped=self.dropped,
            retries=self.retried,
            queued=self._queue.qsize(),
            queue_size=self._queue.maxsize,
            last_success=self.last_success,
            last_error=self.last_error,
        )


def _ssl_context(tls_verify: bool, ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if not tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class WebhookNotifier(QueueNotifier):
    """POST the message, exactly as /ws sends it, as ``application/json`` to ``url``."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings, *, version: str, rng: Callable[[], float] = random.random) -> None:
        super().__init__(
            queue_size=settings.queue_size,
            retries=settings.retries,
            backoff=settings.backoff,
            backoff_max=settings.backoff_max,
            timeout=settings.timeout,
            rng=rng,
        )
        self.settings = settings
        self.version = version
        self._client: httpx.AsyncClient | None = None

    async def send(self, message: AlertMessage) -> None:
        if self._client is None:
            s = self.settings
            self._client = httpx.AsyncClient(
                timeout=s.timeout,
                verify=_ssl_context(s.tls_verify, s.ca_file),
                headers={"User-Agent": f"hvstat/{self.version}", **s.headers},
                follow_redirects=False,
                # HTTPS_PROXY / HTTP_PROXY / NO_PROXY of the service's environment apply, as for curl.
                trust_env=True,
            )
        event = message.__struct_config__.tag
        assert isinstance(event, str)  # "AlertTriggered" or "AlertResolved": both tags are strings
        r = await self._client.post(
            self.settings.url,
            content=encoder.encode(message),
            headers={"Content-Type": "application/json", "X-Hvstat-Event": event},
        )
        if 200 <= r.status_code < 300:
            return
        reason = f"HTTP {r.status_code} {r.reason_phrase}".rstrip()
        if r.status_code in (408, 425, 429) or r.status_code >= 500:
            raise Transient(reason)
        raise Permanent(reason)

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _smtp_permanent(e: BaseException) -> bool:
    if isinstance(e, (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError)):
        return True  # STARTTLS or AUTH not offered, a certificate that does not verify: config
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in e.recipients.values())
    if isinstance(e, smtplib.SMTPResponseException):
        return e.smtp_code >= 500
    return False


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class EmailNotifier(QueueNotifier):
    """One mail per message to the severity's recipients (``recipients.<severity>``, else ``to``);
    a severity with no recipients is not mailed."""

    name = "email"

    def __init__(self, settings: EmailSettings, *, rng: Callable[[], float] = random.random) -> None:
        super().__init__(
            queue_size=settings.queue_size,
            retries=settings.retries,
            backoff=settings.backoff,
            backoff_max=settings.backoff_max,
            # A few SMTP round trips, each bounded by the socket timeout.
            timeout=settings.timeout * 4,
            rng=rng,
        )
        self.settings = settings
        self._password = settings.password
        if settings.password_file is not None:
            with open(settings.password_file, encoding="utf-8") as fh:
                self._password = fh.read().removesuffix("\n")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvstat-smtp")

    def submit(self, message: AlertMessage) -> bool:
        if not self.settings.recipients_for(message.severity):
            return False
        return super().submit(message)

    def compose(self, message: AlertMessage) -> EmailMessage:
        s = self.settings
        resolved = isinstance(message, AlertResolvedMessage)
        target = message.entity_name or message.entity
        if message.item:
            target = f"{target} {message.item}"
        mail = EmailMessage()
        mail["Subject"] = _one_line(f"{s.subject_prefix} {'RESOLVED' if resolved else 'FIRING'} [{message.severity}] {message.rule} on {target}")
        mail["From"] = s.from_
        mail["To"] = ", ".join(s.recipients_for(message.severity))
        mail["Date"] = formatdate(message.timestamp, usegmt=True)
        first = f"<{message.alert_id}.triggered@hvstat>"
        mail["Message-ID"] = f"<{message.alert_id}.resolved@hvstat>" if resolved else first
        if resolved:
            # Threads the recovery under its alert in mail clients.
            mail["In-Reply-To"] = first
            mail["References"] = first
        mail["X-Hvstat-Alert-Id"] = message.alert_id
        value = "null" if message.value is None else f"{message.value:g}"
        lines = [
            message.message,
            "",
            f"rule:      {message.rule} ({message.severity})",
            f"condition: {message.metric} {message.op} {message.threshold:g}",
            f"value:     {value}",
            f"entity:    {message.entity}" + (f" ({message.entity_name})" if message.entity_name else ""),
        ]
        if message.item:
            lines.append(f"item:      {message.item}")
        lines.append(f"since:     {_iso(message.since)}")
        if isinstance(message, AlertResolvedMessage):
            lines += [f"fired:     {_iso(message.fired_at)}", f"resolved:  {_iso(message.timestamp)} ({message.reason.replace('_', ' ')})"]
        else:
            lines.append(f"fired:     {_iso(message.timestamp)}")
        lines += [f"node:      {message.node_id}", f"alert id:  {message.alert_id}", ""]
        mail.set_content("\n".join(lines))
        return mail

    async def send(self, message: AlertMessage) -> None:
        mail = self.compose(message)
        to = self.settings.recipients_for(message.severity)
        loop = asyncio.get_running_loop()
        try:
            refused = await loop.run_in_executor(self._executor, self._send_sync, mail, to)
        except Exception as e:
            if _smtp_permanent(e):
                raise Permanent(f"{type(e).__name__}: {e}") from e
            raise
        if refused:
            log.warning("alerts: email: some recipients were refused: %s", ", ".join(sorted(refused)))

    def _send_sync(self, mail: EmailMessage, to: list[str]) -> dict[str, tuple[int, bytes]]:
        s = self.settings
        ctx = _ssl_context(s.tls_verify, s.ca_file)
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(s.host, s.effective_port, timeout=s.timeout, context=ctx)
        else:
            smtp = smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout)
        with smtp:
            smtp.ehlo()
            if s.security == "starttls":
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if s.username is not None:
                smtp.login(s.username, self._password or "")
            return smtp.send_message(mail, from_addr=s.from_, to_addrs=to)

    async def _close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def build_notifiers(settings: AlertSettings, *, version: str) -> list[QueueNotifier]:
    out: list[QueueNotifier] = []
    if settings.webhook is not None:
        out.append(WebhookNotifier(settings.webhook, version=version))
    if settings.email is not None:
        out.append(EmailNotifier(settings.email))
    return out
