"""The api and the controller as operators run them, with ``metrics_listen`` in their
config files: what a Prometheus scraping them reads, and their health and readiness."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.cli.conftest import Daemons
from tests.waiting import wait_for

pytestmark = pytest.mark.cli


def fetch(port: int, path: str, token: str = "") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path, headers={"X-Auth-Token": token} if token else {})
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    except OSError:
        return 0, ""
    finally:
        conn.close()


def sample(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def test_api_and_controller_serve_metrics_health_and_readiness(daemons: Daemons) -> None:
    api_port, api_metrics = daemons.api, daemons.api_metrics
    ctl_metrics = daemons.controller_metrics
    wait_for(lambda: fetch(api_port, "/")[0] == 200, 20, "the api")
    wait_for(lambda: fetch(ctl_metrics, "/healthz")[0] == 200, 20, "the controller")
    for _ in range(3):
        assert fetch(api_port, "/v2.0/networks", "t")[0] == 200
    assert fetch(api_port, "/v2.0/networks")[0] == 401
    code, text = fetch(api_metrics, "/metrics")
    assert code == 200
    route = 'method="GET",route="/v2.0/networks"'
    assert sample(text, f'routeplane_api_requests_total{{code="200",{route}}}') == 3
    assert sample(text, f'routeplane_api_requests_total{{code="401",{route}}}') == 1
    assert sample(text, f"routeplane_api_request_duration_seconds_count{{{route}}}") == 4
    assert sample(text, "routeplane_api_store_txn_conflicts_total") == 0
    assert sample(text, "process_resident_memory_bytes") is not None
    code, ready = fetch(api_metrics, "/readyz")
    assert code == 200
    assert json.loads(ready)["store_reachable"] is True
    assert fetch(api_metrics, "/healthz") == (200, "ok\n")

    wait_for(
        lambda: sample(fetch(ctl_metrics, "/metrics")[1], "routeplane_controller_leader") == 1,
        10,
        "the controller to lead",
    )
    assert fetch(ctl_metrics, "/readyz")[0] == 200
