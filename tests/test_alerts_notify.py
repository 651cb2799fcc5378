"""The notifiers against real servers on loopback, started by each test: an HTTP receiver (fast,
failing for a while, refusing, slow, or not there at all) for the webhook, and aiosmtpd with
STARTTLS or implicit TLS and AUTH for email, checking the delivered mail. Retries and failures are
counted, a full queue drops and counts, and nothing makes the event loop or the engine wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from alert_receivers import SMTP_PASSWORD, SMTP_USER, WebhookReceiver, down_url, smtp_server
from conftest import free_port
from hvstat.alerts.engine import AlertEngine
from hvstat.alerts.notify import EmailNotifier, QueueNotifier, WebhookNotifier
from hvstat.alerts.rules import compile_rules
from hvstat.config import AlertRuleSettings, EmailSettings, WebhookSettings
from hvstat.models import AlertResolvedMessage, AlertTriggeredMessage
from test_alerts_rules import node

pytestmark = pytest.mark.unit

T = TypeVar("T")
FAST = {"backoff": 0.01, "backoff_max": 0.05}


def triggered(rule: str = "cpu", severity: str = "high", alert_id: str = "a1") -> AlertTriggeredMessage:
    return AlertTriggeredMessage(
        node_id="hv1",
        timestamp=1_800_000_100.0,
        alert_id=alert_id,
        rule=rule,
        severity=severity,  # type: ignore[arg-type]
        entity="container:abc",
        entity_name="web",
        metric="container.cpu_cores",
        op=">",
        value=1.5,
        threshold=0.5,
        since=1_800_000_000.0,
        message="web is busy: 1.5 cores",
    )


def resolved(of: AlertTriggeredMessage) -> AlertResolvedMessage:
    return AlertResolvedMessage(
        node_id=of.node_id,
        timestamp=of.timestamp + 60,
        alert_id=of.alert_id,
        rule=of.rule,
        severity=of.severity,
        entity=of.entity,
        entity_name=of.entity_name,
        metric=of.metric,
        op=of.op,
        value=0.1,
        threshold=of.threshold,
        since=of.since,
        fired_at=of.timestamp,
        reason="cleared",
        message=f"resolved (cleared): {of.message}",
    )


def webhook(url: str, **kw: Any) -> WebhookNotifier:
    return WebhookNotifier(msgspec.convert({"url": url, **kw}, WebhookSettings), version="9.9")


def email(port: int, cert: Path | None = None, **kw: Any) -> EmailNotifier:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "from": "hvstat@node.test",
        "to": ["ops@example.test"],
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "timeout": 5,
        **FAST,
    }
    if cert is not None:
        base["ca_file"] = str(cert)
    base.update(kw)
    return EmailNotifier(msgspec.convert(base, EmailSettings))


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def settle(n: QueueNotifier, until: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"{n.name}: {n.status()}"
        await asyncio.sleep(0.01)


class LoopLag:
    """The longest time the event loop was kept from running a 10 ms ticker."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - t - 0.01)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


# --- webhook ---------------------------------------------------------------------------------------------


def test_webhook_posts_each_message_in_order() -> None:
    with WebhookReceiver() as rx:

        async def main() -> QueueNotifier:
            n = webhook(rx.url, headers={"Authorization": "Bearer t0ken"})
            n.start()
            t = triggered()
            assert n.submit(t) and n.submit(resolved(t))
            await settle(n, lambda: n.sent == 2)
            await n.aclose()
            return n

        n = run(main())
        posts = rx.wait(lambda p: len(p) == 2)
    assert [p.body["type"] for p in posts] == ["AlertTriggered", "AlertResolved"]
    msgspec.convert(posts[0].body, AlertTriggeredMessage)
    msgspec.convert(posts[1].body, AlertResolvedMessage)
    assert posts[0].body["alert_id"] == posts[1].body["alert_id"] == "a1"
    h = {k.lower(): v for k, v in posts[0].headers.items()}
    assert (h["content-type"], h["x-hvstat-event"], h["authorization"], h["user-agent"]) == ("application/json", "AlertTriggered", "Bearer t0ken", "hvstat/9.9")
    assert posts[0].path == "/hook"
    s = n.status()
    assert (s.sent, s.failed, s.dropped, s.retries, s.queued, s.last_error) == (2, 0, 0, 0, 0, None)


def test_webhook_retries_a_failing_receiver_with_backoff() -> None:
    with WebhookReceiver(statuses=[503, 500, 429]) as rx:

        async def main() -> QueueNotifier:
            n = webhook(rx.url, retries=5, **FAST)
            n.start()
            n.submit(triggered())
            await settle(n, lambda: n.sent == 1)
            await n.aclose()
            return n

        n = run(main())
        assert len(rx.posts) == 1 and rx.attempts == 4
    s = n.status()
    assert (s.sent, s.failed, s.retries) == (1, 0, 3)
    assert s.last_error == "Transient: HTTP 429 Too Many Requests" and s.last_success is not None


def test_webhook_gives_up_after_the_last_retry() -> None:
    with WebhookReceiver(statuses=[503] * 10) as rx:

        async def main() -> QueueNotifier:
            n = webhook(rx.url, retries=2, **FAST)
            n.start()
            n.submit(triggered())
            await settle(n, lambda: n.failed == 1)
            await n.aclose()
            return n

        n = run(main())
        assert rx.attempts == 3 and rx.posts == []
    assert (n.sent, n.failed, n.retried) == (0, 1, 2)


def test_webhook_refusal_is_not_retried() -> None:
    with WebhookReceiver(statuses=[404]) as rx:

        async def main() -> QueueNotifier:
            n = webhook(rx.url, retries=5, **FAST)
            n.start()
            n.submit(triggered())
            n.submit(triggered(alert_id="a2"))
            await settle(n, lambda: n.failed + n.sent == 2)
            await n.aclose()
            return n

        n = run(main())
        assert rx.attempts == 2 and [p.body["alert_id"] for p in rx.posts] == ["a2"]
    assert (n.sent, n.failed, n.retried, n.last_error) == (1, 1, 0, "HTTP 404 Not Found")


def test_webhook_down_receiver_is_retried_counted_and_never_blocks() -> None:
    async def main() -> QueueNotifier:
        n = webhook(down_url(), retries=3, queue_size=5, **FAST)
        n.start()
        with LoopLag() as lag:
            t0 = time.perf_counter()
            accepted = [n.submit(triggered(alert_id=f"a{i}")) for i in range(20)]
            submit_secs = time.perf_counter() - t0
            await settle(n, lambda: n.failed == 5)
        await n.aclose()
        # 20 submissions: 5 queued (the worker had not taken one yet), 15 dropped, all at once.
        assert accepted == [True] * 5 + [False] * 15
        assert submit_secs < 0.1, submit_secs
        assert lag.worst < 0.25, f"the event loop was blocked for {lag.worst:.3f}s"
        return n

    n = run(main())
    s = n.status()
    assert (s.sent, s.failed, s.dropped, s.retries) == (0, 5, 15, 15)
    assert s.last_error is not None and "ConnectError" in s.last_error


def test_webhook_slow_receiver_times_out_and_is_retried() -> None:
    with WebhookReceiver(delay=1.0) as rx:

        async def main() -> QueueNotifier:
            n = webhook(rx.url, timeout=0.2, retries=1, **FAST)
            n.start()
            with LoopLag() as lag:
                n.submit(triggered())
                await settle(n, lambda: n.failed == 1)
            await n.aclose()
            # Waiting for the receiver would block for its 2 s delay; a bound of half that holds on
            # a loaded 2-core machine, where the loop can be preempted for a few hundred ms.
            assert lag.worst < 1.0, f"the event loop was blocked for {lag.worst:.3f}s"
            return n

        n = run(main())
        assert rx.attempts == 2
    assert (n.sent, n.failed, n.retried) == (0, 1, 1)
    assert n.last_error is not None and "Timeout" in n.last_error


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    n = webhook("http://127.0.0.1:9/", backoff=1, backoff_max=10)
    n._rng = lambda: 0.0  # type: ignore[method-assign]
    assert [n.backoff_delay(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    n._rng = lambda: 1.0  # type: ignore[method-assign]
    assert [n.backoff_delay(i) for i in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_shutdown_sends_what_is_queued() -> None:
    with WebhookReceiver() as rx:

        async def main() -> None:
            n = webhook(rx.url)
            n.start()
            for i in range(5):
                n.submit(triggered(alert_id=f"a{i}"))
            await n.aclose(grace=10)

        run(main())
        assert [p.body["alert_id"] for p in rx.posts] == [f"a{i}" for i in range(5)]


# --- email ---------------------------------------------------------------------------------------------------


def test_email_starttls_auth_and_the_delivered_mail(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as smtp:

        async def main() -> QueueNotifier:
            n = email(smtp.port, smtp.cert, recipients={"critical": ["pager@example.test", "ops@example.test"]})
            n.start()
            t = triggered(severity="critical")
            n.submit(t)
            n.submit(resolved(t))
            await settle(n, lambda: n.sent == 2)
            await n.aclose()
            return n

        n = run(main())
        mails = smtp.wait(lambda m: len(m) == 2)
    first, second = mails
    assert (first.authenticated_as, first.tls) == (SMTP_USER, True)
    assert first.mail_from == "hvstat@node.test"
    assert first.rcpt_tos == ["pager@example.test", "ops@example.test"]
    m = first.message
    assert m["Subject"] == "[hvstat] FIRING [critical] cpu on web"
    assert (m["From"], m["To"]) == ("hvstat@node.test", "pager@example.test, ops@example.test")
    assert m["Message-ID"] == "<a1.triggered@hvstat>" and m["X-Hvstat-Alert-Id"] == "a1"
    body = m.get_content().replace("\r\n", "\n")
    assert body.startswith("web is busy: 1.5 cores\n")
    for line in ("condition: container.cpu_cores > 0.5", "value:     1.5", "entity:    container:abc (web)", "since:     2027-01-15T08:00:00Z", "node:      hv1"):
        assert line in body, body
    r = second.message
    assert r["Subject"] == "[hvstat] RESOLVED [critical] cpu on web"
    assert r["In-Reply-To"] == "<a1.triggered@hvstat>"
    assert "resolved:  2027-01-15T08:02:40Z (cleared)" in r.get_content()
    assert (n.sent, n.failed, n.retried) == (2, 0, 0)


# aiosmtpd cannot tell that an implicit-TLS connection is encrypted, so it warns about AUTH without TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_implicit_tls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, implicit_tls=True) as smtp:

        async def main() -> QueueNotifier:
            n = email(smtp.port, smtp.cert, security="tls")
            n.start()
            n.submit(triggered())
            await settle(n, lambda: n.sent == 1)
            await n.aclose()
            return n

        run(main())
        (mail,) = smtp.wait(lambda m: len(m) == 1)
    assert (mail.tls, mail.authenticated_as, mail.rcpt_tos) == (True, SMTP_USER, ["ops@example.test"])


def test_email_recipients_per_severity_and_none_for_some(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as smtp:

        async def main() -> QueueNotifier:
            n = email(smtp.port, smtp.cert, recipients={"low": [], "high": ["team@example.test"]})
            n.start()
            assert not n.submit(triggered(severity="low", alert_id="lo"))
            assert n.submit(triggered(severity="high", alert_id="hi"))
            assert n.submit(triggered(severity="medium", alert_id="me"))
            await settle(n, lambda: n.sent == 2)
            await n.aclose()
            return n

        run(main())
        mails = smtp.wait(lambda m: len(m) == 2)
    assert [(m.message["X-Hvstat-Alert-Id"], m.rcpt_tos) for m in mails] == [("hi", ["team@example.test"]), ("me", ["ops@example.test"])]


def test_email_wrong_password_fails_at_once(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as smtp:

        async def main() -> QueueNotifier:
            n = email(smtp.port, smtp.cert, password="wrong", retries=5)
            n.start()
            n.submit(triggered())
            await settle(n, lambda: n.failed == 1)
            await n.aclose()
            return n

        n = run(main())
        assert smtp.mails == []
    assert (n.sent, n.failed, n.retried) == (0, 1, 0)
    assert n.last_error is not None and "SMTPAuthenticationError" in n.last_error and "535" in n.last_error


def test_email_unverifiable_certificate_fails_at_once(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as smtp:

        async def main() -> QueueNotifier:
            n = email(smtp.port, None, retries=5)  # the system's CAs do not know the test's certificate
            n.start()
            n.submit(triggered())
            await settle(n, lambda: n.failed == 1)
            await n.aclose()
            return n

        n = run(main())
        assert smtp.mails == []
    assert (n.failed, n.retried) == (1, 0) and "CERTIFICATE_VERIFY_FAILED" in (n.last_error or "")


def test_email_server_down_is_retried_and_counted() -> None:
    async def main() -> QueueNotifier:
        n = email(free_port(), None, retries=2)
        n.start()
        with LoopLag() as lag:
            n.submit(triggered())
            await settle(n, lambda: n.failed == 1)
        await n.aclose()
        assert lag.worst < 0.25
        return n

    n = run(main())
    assert (n.sent, n.failed, n.retried) == (0, 1, 2)
    assert "ConnectionRefusedError" in (n.last_error or "")


def test_email_retry_reaches_a_server_that_comes_up(tmp_path: Path) -> None:
    port = free_port()

    async def main() -> QueueNotifier:
        n = email(port, None, retries=50, backoff=0.1, backoff_max=0.2)
        n.start()
        n.submit(triggered())
        await settle(n, lambda: n.retried >= 2)
        return n

    async def later() -> tuple[QueueNotifier, list[Any]]:
        n = await main()
        # The server appears on the port the notifier keeps trying (with its own certificate).
        from alert_receivers import SmtpServer

        server = SmtpServer(tmp_path)
        server.port = port
        server.controller.port = port
        n.settings = msgspec.structs.replace(n.settings, ca_file=str(server.cert))  # type: ignore[attr-defined]
        with server:
            await settle(n, lambda: n.sent == 1)
            mails = list(server.mails)
        await n.aclose()
        return n, mails

    n, mails = run(later())
    assert len(mails) == 1 and n.retried >= 2 and n.failed == 0


# --- the engine with notifiers that are down: collection never waits ---------------------------------------------------


def test_engine_never_waits_for_notifiers(tmp_path: Path) -> None:
    rule = msgspec.convert({"name": "flap", "metric": "node.cpu_usage", "op": ">", "threshold": 50, "severity": "high"}, AlertRuleSettings)
    slow_port = free_port()

    async def main() -> tuple[AlertEngine, float]:
        with WebhookReceiver(delay=2.0) as rx:
            notifiers: list[QueueNotifier] = [webhook(rx.url, timeout=5, retries=0), email(slow_port, None, retries=3, backoff=1)]
            for n in notifiers:
                n.start()
            e = AlertEngine(compile_rules([rule]), node_id="hv1", notifiers=notifiers)
            worst = 0.0
            with LoopLag() as lag:
                for i in range(200):
                    t = time.perf_counter()
                    e.on_node(node(cpu=99.0 if i % 2 == 0 else 1.0))  # fires and resolves on every sample
                    worst = max(worst, time.perf_counter() - t)
                    await asyncio.sleep(0.001)
            for n in notifiers:
                await n.aclose(grace=0)
            # Waiting for the receiver would block for its 2 s delay; a bound of half that holds on
            # a loaded 2-core machine, where the loop can be preempted for a few hundred ms.
            assert lag.worst < 1.0, f"the event loop was blocked for {lag.worst:.3f}s"
            return e, worst

    e, worst = run(main())
    assert e.triggered == 100 and e.resolved == 100
    # Microseconds in fact; the bound only has to tell "queued" from "waited for a receiver" (seconds).
    assert worst < 0.5, f"one evaluation took {worst * 1000:.1f} ms"
