"""A real Prometheus scrapes a real api and controller (the daemons as operators run
them, from their config files) and, asked through its HTTP API, shows what happened:
the requests made, by route and code, and one failover counted after one failure."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest

from routeplane.store.sqlite import SqliteStore
from routeplane.testing.prometheus import PrometheusServer
from tests.cli.conftest import Daemons
from tests.waiting import wait_for

pytestmark = pytest.mark.cli

ROOT = "/routeplane/v1/"


def call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        data = json.dumps(body) if body is not None else None
        headers = {"X-Auth-Token": "t", "Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        answer = conn.getresponse()
        text = answer.read()
        assert answer.status < 300, (method, path, answer.status, text)
        return json.loads(text) if text else None
    finally:
        conn.close()


def answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def test_prometheus_sees_the_requests_and_one_failover(daemons: Daemons) -> None:
    api_port = daemons.api
    jobs = {
        "routeplane-api": [f"127.0.0.1:{daemons.api_metrics}"],
        "routeplane-controller": [f"127.0.0.1:{daemons.controller_metrics}"],
    }
    wait_for(
        lambda: answers(daemons.api_metrics) and answers(daemons.controller_metrics),
        30,
        "the daemons",
    )
    store = SqliteStore(daemons.store)
    try:
        with PrometheusServer(jobs, interval=0.5) as prometheus:
            wait_for(
                lambda: all(prometheus.targets_up().values()) and len(prometheus.targets_up()) == 2,
                30,
                "both targets up",
            )
            net = call(api_port, "POST", "/v2.0/networks", {"network": {"name": "ha"}})["network"]
            call(
                api_port,
                "POST",
                "/v2.0/subnets",
                {"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "10.60.0.0/24"}},
            )
            ports = [
                call(
                    api_port,
                    "POST",
                    "/v2.0/ports",
                    {"port": {"network_id": net["id"], "name": name, "binding:host_id": host}},
                )["port"]
                for name, host in (("a", "h1"), ("b", "h2"))
            ]
            check = {"type": "tcp", "port": 80, "interval": 0.1, "failure_threshold": 3}
            sip = call(
                api_port,
                "POST",
                "/v2.0/service_ips",
                {
                    "service_ip": {
                        "name": "web",
                        "ip_address": "10.60.0.50",
                        "active_port_id": ports[0]["id"],
                        "standby_port_ids": [ports[1]["id"]],
                        "health_check": check,
                    }
                },
            )["service_ip"]
            for _ in range(5):
                call(api_port, "GET", "/v2.0/ports")

            # the checkers' reports, as the agents on h1 and h2 would write them
            for port, host, healthy in ((ports[1], "h2", True), (ports[0], "h1", False)):
                store.put(
                    f"{ROOT}health/{host}/{sip['id']}/{port['id']}",
                    {
                        "healthy": healthy,
                        "checked_at": time.time(),
                        "consecutive_failures": 0 if healthy else 3,
                    },
                )

            def moved() -> bool:
                shown = call(api_port, "GET", f"/v2.0/service_ips/{sip['id']}")["service_ip"]
                return bool(shown["active_port_id"] == ports[1]["id"])

            wait_for(moved, 10, "the failover")

            failovers = (
                'routeplane_controller_failovers_total{job="routeplane-controller",reason="health"}'
            )
            wait_for(lambda: prometheus.value(failovers) == 1, 15, "Prometheus to see the failover")
            assert prometheus.value("routeplane_controller_leader") == 1
            assert prometheus.value("routeplane_controller_detection_to_move_seconds_count") == 1
            assert (
                prometheus.value("routeplane_controller_detection_to_move_seconds_sum") or 9
            ) < 5
            listed = 'routeplane_api_requests_total{route="/v2.0/ports",method="GET",code="200"}'
            wait_for(
                lambda: (prometheus.value(listed) or 0) >= 5, 15, "Prometheus to see the requests"
            )
            created = prometheus.value(
                'sum(routeplane_api_requests_total{method="POST",code="201"})'
            )
            assert created == 5  # network, subnet, two ports, the service IP
            assert prometheus.value("routeplane_api_store_txn_gave_up_total") == 0
    finally:
        store.close()
