"""One alert end to end, all real: ``hvstat serve`` (node and containers every 0.5 s) with a rule on
the CPU of a test container (a real cgroup made by the test, tests/cgroups.py), a CPU-burning child
started in it, a WebSocket client on the ``alerts`` topic, an HTTP receiver for the webhook and an
SMTP server (STARTTLS and AUTH) for the mail. The alert fires on all three; when the child stops it
resolves on all three, and /api/alerts and /metrics say so."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.sync.client import ClientConnection, connect

import cgroups
from alert_receivers import SMTP_PASSWORD, SMTP_USER, WebhookReceiver, smtp_server
from conftest import running_server
from helpers import WAIT_SECS
from hvstat.models import AlertResolvedMessage, AlertTriggeredMessage

pytestmark = [pytest.mark.cgroups, pytest.mark.server]

INTERVAL = 0.5
# A busy loop uses one core; half a core leaves room for a machine that is busy with other work.
THRESHOLD_CORES = 0.3
FOR_SECS = 1.0


def next_alert(ws: ClientConnection, kind: str, timeout: float = WAIT_SECS) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {kind} on /ws within {timeout}s"
        m = json.loads(ws.recv(timeout=left))
        if m["type"] == kind:
            return m
        assert m["type"] in ("hello", "subscribed"), m


def firing(base: str, rule: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    m = re.search(rf'^hvstat_alerts_firing\{{rule="{rule}",severity="critical"\}} (\S+)$', text, re.M)
    assert m, text[-2000:]
    return float(m[1])


@pytest.mark.skipif(cgroups.why_no_cgroups() is not None, reason=str(cgroups.why_no_cgroups()))
def test_cpu_burner_fires_and_resolves_everywhere(tmp_path: Path, fake_containers: Any) -> None:
    c = fake_containers(f"docker/{cgroups.hex_id()}")
    cid = c.rel.rsplit("/", 1)[1]
    password = tmp_path / "smtp-password"
    password.write_text(SMTP_PASSWORD + "\n")
    roots = "\n".join(f'{k} = "{tmp_path / "meta" / k}"' for k in ("docker_root", "podman_root", "pods_log_root", "pve_root"))
    with WebhookReceiver() as rx, smtp_server(tmp_path) as smtp:
        config = f"""
[monitoring]
node_metrics_interval = {INTERVAL}
vm_metrics_interval = {INTERVAL}

[containers]
{roots}

[[alerts.rules]]
name = "busy-container"
metric = "container.cpu_cores"
op = ">"
threshold = {THRESHOLD_CORES}
for = "{FOR_SECS}s"
severity = "critical"
message = "{{name}} busy: {{value:.2f}} cores"
select = {{ name = "{cid[:12]}", runtime = "docker" }}

[alerts.webhook]
url = "{rx.url}"
backoff = 0.1

[alerts.email]
host = "127.0.0.1"
port = {smtp.port}
security = "starttls"
ca_file = "{smtp.cert}"
username = "{SMTP_USER}"
password_file = "{password}"
from = "hvstat@node.test"
to = ["ops@example.test"]
backoff = 0.1
"""
        with running_server(tmp_path, config) as base:
            deadline = time.monotonic() + WAIT_SECS
            while cid not in {x["id"] for x in httpx.get(f"{base}/api/containers", timeout=10).json()["containers"]}:
                assert time.monotonic() < deadline, "the container was not found"
                time.sleep(0.2)
            (rule,) = httpx.get(f"{base}/api/alerts/rules", timeout=10).json()["rules"]
            assert (rule["name"], rule["kind"], rule["for_secs"], rule["select_name"]) == ("busy-container", "container", FOR_SECS, [cid[:12]])
            assert firing(base, "busy-container") == 0
            with connect(base.replace("http://", "ws://", 1) + "/ws", open_timeout=10, max_size=None) as ws:
                ws.send(json.dumps({"type": "subscribe", "topics": ["alerts"]}))
                # Idle: nothing fires for a while (the container has no process yet).
                time.sleep(3 * INTERVAL)
                assert httpx.get(f"{base}/api/alerts", timeout=10).json()["active"] == []

                burner = c.spawn(cgroups.py(cgroups.BUSY))
                cgroups.expect_line(burner, "ready")
                started = time.time()
                t = next_alert(ws, "AlertTriggered")
                msgspec.convert(t, AlertTriggeredMessage)
                assert (t["rule"], t["entity"], t["entity_name"], t["severity"], t["threshold"]) == ("busy-container", f"container:{cid}", cid[:12], "critical", THRESHOLD_CORES)
                assert t["value"] > THRESHOLD_CORES
                assert t["timestamp"] - t["since"] >= FOR_SECS, "fired before the condition held for `for`"
                assert t["since"] >= started - INTERVAL
                assert t["message"] == f"{cid[:12]} busy: {t['value']:.2f} cores"

                posts = rx.wait(lambda p: len(p) >= 1)
                assert posts[0].body == t, "the webhook gets the very message /ws sent"
                mails = smtp.wait(lambda m: len(m) >= 1)
                assert (mails[0].authenticated_as, mails[0].tls, mails[0].rcpt_tos) == (SMTP_USER, True, ["ops@example.test"])
                assert mails[0].message["Subject"] == f"[hvstat] FIRING [critical] busy-container on {cid[:12]}"
                assert mails[0].message["X-Hvstat-Alert-Id"] == t["alert_id"]

                body = httpx.get(f"{base}/api/alerts", timeout=10).json()
                assert [(a["alert_id"], a["state"]) for a in body["active"]] == [(t["alert_id"], "firing")]
                assert firing(base, "busy-container") == 1
                # Still burning: no second AlertTriggered (no duplicates), on any channel.
                time.sleep(4 * INTERVAL)

                c.stop_processes()
                r = next_alert(ws, "AlertResolved")
                msgspec.convert(r, AlertResolvedMessage)
                assert (r["alert_id"], r["reason"], r["fired_at"], r["since"]) == (t["alert_id"], "cleared", t["timestamp"], t["since"])
                assert r["value"] <= THRESHOLD_CORES

                posts = rx.wait(lambda p: len(p) >= 2)
                assert [p.body["type"] for p in posts] == ["AlertTriggered", "AlertResolved"]
                assert posts[1].body == r
                mails = smtp.wait(lambda m: len(m) >= 2)
                assert len(mails) == 2
                assert mails[1].message["Subject"] == f"[hvstat] RESOLVED [critical] busy-container on {cid[:12]}"
                assert mails[1].message["In-Reply-To"] == f"<{t['alert_id']}.triggered@hvstat>"

            body = httpx.get(f"{base}/api/alerts", timeout=10).json()
            assert body["active"] == []
            assert [(a["alert_id"], a["state"], a["reason"]) for a in body["history"]] == [(t["alert_id"], "resolved", "cleared")]
            assert {n["name"]: (n["sent"], n["failed"], n["dropped"]) for n in body["notifiers"]} == {"webhook": (2, 0, 0), "email": (2, 0, 0)}
            assert firing(base, "busy-container") == 0
            metrics = httpx.get(f"{base}/metrics", timeout=10).text
            assert 'hvstat_alert_notifications_sent_total{notifier="email"} 2' in metrics
