"""The REST API: through Starlette's TestClient (lifespan running) and through a real ``hvstat serve``
subprocess on loopback (conftest.serve)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from starlette.testclient import TestClient

from hvstat import __version__
from hvstat.app import create_app
from hvstat.config import MonitoringSettings, Settings
from hvstat.models import Health, NodeMetrics

NODE = "/api/monitoring/node/metrics"
REQUIRED = ("cpu_usage", "memory_usage", "disk_usage", "load_average_1m", "load_average_5m", "load_average_15m", "timestamp")
# A sample served on the first request was taken during startup, well under a second before; a few
# seconds allow for a slow machine without letting a stale or zero timestamp through.
FRESH_SECS = 5.0
# Interval of the sampling loop in these tests, and the wait that must see a newer sample.
LOOP_INTERVAL = 1.0
NEWER_AFTER = 1.5


def _settings() -> Settings:
    # Built directly (not from /etc/hvstat or the environment) so the test is hermetic.
    return Settings(monitoring=MonitoringSettings(node_metrics_interval=LOOP_INTERVAL))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(_settings())) as c:
        yield c


def _check_node_body(body: dict[str, Any]) -> None:
    missing = [k for k in REQUIRED if k not in body]
    assert not missing, f"missing required fields: {missing}"
    for k in REQUIRED:
        assert isinstance(body[k], (int, float)) and not isinstance(body[k], bool), f"{k} = {body[k]!r}"
    assert abs(body["timestamp"] - time.time()) < FRESH_SECS
    for k in ("cpu_usage", "memory_usage", "disk_usage"):
        assert 0.0 <= body[k] <= 100.0, k
    msgspec.convert(body, NodeMetrics)  # the documented shape


def _check_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body


# --- TestClient -------------------------------------------------------------------------------------


@pytest.mark.unit
def test_first_request_has_real_values() -> None:
    """A fresh app (own lifespan): its very first answer already has a CPU usage (the source primes)."""
    with TestClient(create_app(_settings())) as c:
        r = c.get(NODE)
    assert r.status_code == 200
    body = r.json()
    _check_node_body(body)
    assert body["cpu_usage"] is not None
    assert body["interval_secs"] > 0
    assert "rates" not in body["unavailable"]


@pytest.mark.unit
def test_fields_selects_exactly_those(client: TestClient) -> None:
    r = client.get(NODE, params={"fields": "cpu_usage,memory_usage"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"cpu_usage", "memory_usage"}
    assert body["cpu_usage"] is not None and body["memory_usage"] is not None


@pytest.mark.unit
@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("fields=nope", "unknown"),
        ("fields=cpu_usage,nope", "unknown"),
        ("fields=", "allowed"),
        ("bogus=1", "unknown"),
        ("fields=cpu_usage&fields=memory_usage", "parameters"),
    ],
)
def test_bad_query_is_400_with_json_error(client: TestClient, query: str, where: str) -> None:
    body = _check_error(client.get(f"{NODE}?{query}"), 400)
    assert where in body["detail"], body


@pytest.mark.unit
def test_unknown_field_error_names_it(client: TestClient) -> None:
    body = _check_error(client.get(NODE, params={"fields": "cpu_usage,nope"}), 400)
    assert body["detail"]["unknown"] == ["nope"]


@pytest.mark.unit
def test_unknown_path_is_404_json(client: TestClient) -> None:
    body = _check_error(client.get("/api/nope"), 404)
    assert body["detail"]["path"] == "/api/nope"


@pytest.mark.unit
def test_wrong_method_is_405_json(client: TestClient) -> None:
    r = client.post(NODE)
    body = _check_error(r, 405)
    assert body["detail"]["method"] == "POST"
    # RFC 9110 section 15.5.6: a 405 carries Allow.
    assert "GET" in r.headers.get("allow", "")


@pytest.mark.unit
def test_health(client: TestClient) -> None:
    r = client.get("/health")
    t1 = time.time()
    assert r.status_code == 200
    health = msgspec.convert(r.json(), Health)
    assert health.status == "ok"
    assert health.version == __version__
    node = {s.name: s for s in health.sources}["node"]
    assert node.status == "ok" and node.error is None and node.consecutive_failures == 0
    # The loop ticks every LOOP_INTERVAL: the last success is recent (and not in the future).
    assert node.last_success is not None and 0 <= t1 - node.last_success < FRESH_SECS + LOOP_INTERVAL
    assert node.last_duration_secs is not None and node.last_duration_secs > 0
    assert node.interval_secs == LOOP_INTERVAL
    assert health.remote_write is None  # [remote_write] is off by default


@pytest.mark.unit
def test_health_rejects_params(client: TestClient) -> None:
    _check_error(client.get("/health?x=1"), 400)


@pytest.mark.unit
def test_openapi(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["version"] == __version__
    assert NODE in doc["paths"] and "/health" in doc["paths"]
    schemas = doc["components"]["schemas"]
    ok = doc["paths"][NODE]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["anyOf"][0] == {"$ref": "#/components/schemas/NodeMetrics"} and ok["anyOf"][1]["type"] == "object"
    node = schemas["NodeMetrics"]
    assert set(REQUIRED) <= set(node["properties"])
    # Every $ref points at a schema that exists.
    refs = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if "$ref" in v:
                refs.add(v["$ref"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(doc)
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(schemas)


@pytest.mark.unit
def test_openapi_lists_every_http_route_with_its_methods(client: TestClient) -> None:
    """The document is written by hand next to the models: this keeps it from missing a route."""
    from starlette.routing import Route

    paths = client.get("/openapi.json").json()["paths"]
    routes = [r for r in client.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    assert len(routes) > 10
    for route in routes:
        path = route.path.replace(":path}", "}")
        assert path in paths, f"{path} is not in /openapi.json"
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        assert methods == set(paths[path]), (path, methods, set(paths[path]))
    assert set(paths) == {r.path.replace(":path}", "}") for r in routes}, "a path in /openapi.json that no route serves"


@pytest.mark.unit
def test_openapi_marks_contract_fields_required(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["NodeMetrics"]
    assert set(REQUIRED) <= set(schema["properties"])
    assert set(REQUIRED) <= set(schema.get("required", []))


@pytest.mark.unit
def test_loop_keeps_sampling(client: TestClient) -> None:
    first = client.get(NODE).json()["timestamp"]
    time.sleep(NEWER_AFTER)
    second = client.get(NODE).json()["timestamp"]
    assert second > first


# --- the real server ----------------------------------------------------------------------------


@pytest.mark.server
def test_served_node_metrics(serve: str) -> None:
    r = httpx.get(f"{serve}{NODE}", timeout=10)
    assert r.status_code == 200
    body = r.json()
    _check_node_body(body)
    assert body["cpu_usage"] is not None


@pytest.mark.server
def test_served_fields_and_errors(serve: str) -> None:
    r = httpx.get(f"{serve}{NODE}", params={"fields": "cpu_usage,memory_usage"}, timeout=10)
    assert r.status_code == 200 and set(r.json()) == {"cpu_usage", "memory_usage"}
    _check_error(httpx.get(f"{serve}{NODE}?fields=nope", timeout=10), 400)
    _check_error(httpx.get(f"{serve}{NODE}?bogus=1", timeout=10), 400)
    _check_error(httpx.get(f"{serve}/nope", timeout=10), 404)
    _check_error(httpx.post(f"{serve}{NODE}", timeout=10), 405)


@pytest.mark.server
def test_served_health(serve: str) -> None:
    r = httpx.get(f"{serve}/health", timeout=10)
    assert r.status_code == 200
    health = r.json()
    assert health["status"] == "ok"
    node = {s["name"]: s for s in health["sources"]}["node"]
    assert node["last_success"] is not None and node["last_duration_secs"] is not None
    assert node["interval_secs"] == LOOP_INTERVAL, "HVSTAT_MONITORING_NODE_METRICS_INTERVAL=1 not applied"


@pytest.mark.server
def test_served_openapi(serve: str) -> None:
    r = httpx.get(f"{serve}/openapi.json", timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert set(REQUIRED) <= set(doc["components"]["schemas"]["NodeMetrics"]["properties"])


@pytest.mark.server
def test_served_loop_really_runs(serve: str) -> None:
    first = httpx.get(f"{serve}{NODE}", params={"fields": "timestamp"}, timeout=10).json()["timestamp"]
    time.sleep(NEWER_AFTER)
    second = httpx.get(f"{serve}{NODE}", params={"fields": "timestamp"}, timeout=10).json()["timestamp"]
    assert second > first
