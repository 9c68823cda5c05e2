"""Unit: what a daemon serves on ``--metrics-listen`` (``cli.observe``) and the api's
request metrics (``api.metrics``), in process: the listener on a loopback port of its
own, the ASGI app through Starlette's in-process client."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from routeplane.api.app import create_app
from routeplane.api.metrics import ApiMetrics
from routeplane.cli.observe import Observer, store_ready
from routeplane.services.errors import ApiFault
from routeplane.services.registry import Services
from routeplane.services.repo import Change, Doc, Outcome
from routeplane.services.security.identity import Identity, IdentityConfig
from routeplane.store import Store

pytestmark = pytest.mark.unit


def get(observer: Observer, path: str) -> tuple[int, str, str]:
    host, port = observer.address[0], observer.address[1]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.getheader("Content-Type") or "", answer.read().decode()
    finally:
        conn.close()


@pytest.fixture
def listener() -> Iterator[tuple[Observer, dict[str, Any], Counter]]:
    registry = CollectorRegistry()
    hits = Counter("routeplane_test_hits_total", "hits", registry=registry)
    checks: dict[str, Any] = {"ready": False, "why": "not yet"}
    observer = Observer(("127.0.0.1", 0), registry, lambda: checks, lambda: {"a": 1})
    yield observer, checks, hits
    observer.close()


def test_metrics_health_readiness_and_status(
    listener: tuple[Observer, dict[str, Any], Counter],
) -> None:
    observer, checks, hits = listener
    hits.inc(3)
    code, kind, body = get(observer, "/metrics")
    assert (code, kind.split(";")[0]) == (200, "text/plain")
    assert "routeplane_test_hits_total 3.0" in body
    assert get(observer, "/healthz")[:1] == (200,)
    code, _, body = get(observer, "/readyz")
    assert (code, json.loads(body)) == (503, {"ready": False, "why": "not yet"})
    checks.update(ready=True, why="synced")
    assert get(observer, "/readyz")[0] == 200
    assert json.loads(get(observer, "/status")[2]) == {"a": 1}
    assert get(observer, "/nothing")[0] == 404


def test_a_store_that_answers_is_ready(store: Store) -> None:
    assert store_ready(store) == {
        "ready": True,
        "store_reachable": True,
        "store_revision": store.revision(),
    }
    store.close()
    found = store_ready(store)
    assert (found["ready"], found["store_reachable"]) == (False, False)


def test_api_requests_are_counted_by_route_template_and_code(store: Store) -> None:
    registry = CollectorRegistry()
    services = Services(store)
    identity = Identity(IdentityConfig(admin_token="t"), b"secret")
    app = create_app(
        services, identity, threaded=False, metrics=ApiMetrics(registry, services.repo)
    )
    auth = {"X-Auth-Token": "t"}

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            net = await client.post("/v2.0/networks", json={"network": {"name": "n"}}, headers=auth)
            net_id = net.json()["network"]["id"]
            return [
                net.status_code,
                (await client.get(f"/v2.0/networks/{net_id}.json", headers=auth)).status_code,
                (await client.get("/v2.0/networks/nope", headers=auth)).status_code,
                (await client.get("/v2.0/networks")).status_code,
                (await client.get("/no/such/path")).status_code,
            ]

    assert asyncio.run(calls()) == [201, 200, 404, 401, 404]

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    one = "/v2.0/networks/{item_id}"
    assert (
        sample("routeplane_api_requests_total", method="POST", route="/v2.0/networks", code="201")
        == 1
    )
    assert sample("routeplane_api_requests_total", method="GET", route=one, code="200") == 1
    assert sample("routeplane_api_requests_total", method="GET", route=one, code="404") == 1
    assert (
        sample("routeplane_api_requests_total", method="GET", route="/v2.0/networks", code="401")
        == 1
    )
    assert sample("routeplane_api_requests_total", method="GET", route="unmatched", code="404") == 1
    assert sample("routeplane_api_request_duration_seconds_count", method="GET", route=one) == 2


def test_store_conflicts_and_requests_that_gave_up_are_counted(store: Store) -> None:
    registry = CollectorRegistry()
    services = Services(store)
    ApiMetrics(registry, services.repo)
    store.put("/routeplane/v1/networks/x", {"id": "x"})

    def always_stale() -> Outcome[None]:
        change = Change()
        change.depends_on(Doc("/routeplane/v1/networks/x", {"id": "x"}, 1))  # it is newer
        change.put("/routeplane/v1/networks/y", {"id": "y"})
        return Outcome(change, None)

    with pytest.raises(ApiFault) as exc:
        services.repo.run(always_stale)
    assert exc.value.code == 409
    attempts = services.repo.conflicts
    assert attempts > 1
    assert registry.get_sample_value("routeplane_api_store_txn_conflicts_total") == attempts
    assert registry.get_sample_value("routeplane_api_store_txn_gave_up_total") == 1
