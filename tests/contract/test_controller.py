"""Contract: controller leadership and failover on each store backend, in real time.

Leases behave per backend (sqlite expires them from any process's poller, etcd on its
own clock), so the election is checked on both: a crashed leader's lease runs out, the
other controller takes over, and the failure it finds moves the address exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from routeplane.controller.leader import LEADER_KEY, Controller, ControllerSettings
from routeplane.model.jsontypes import JSONObject
from routeplane.services.attributes import check_create
from routeplane.services.context import ADMIN
from routeplane.services.registry import Services
from routeplane.services.resource import ResourceService
from routeplane.store import Store

pytestmark = [pytest.mark.contract, pytest.mark.slow]

ROOT = "/routeplane/v1/"


def create(service: ResourceService, body: dict[str, Any]) -> dict[str, Any]:
    return service.create(ADMIN, check_create(service.attrs, body, is_admin=True))


@pytest.fixture
def api(store_url: str, open_url: Callable[[str], Store]) -> Iterator[Services]:
    store = open_url(store_url)
    store.delete(LEADER_KEY)  # the session's etcd may hold one from an earlier test
    services = Services(store)
    yield services
    for sip in services.service_ips.list_visible(ADMIN):
        services.service_ips.delete(ADMIN, sip["id"], None)
    store.delete(LEADER_KEY)


def test_a_crashed_leader_is_replaced_and_the_failure_moves_once(
    api: Services, store_url: str, open_url: Callable[[str], Store]
) -> None:
    net = create(api.networks, {"name": "contract-ha"})
    subnet = create(api.subnets, {"network_id": net["id"], "ip_version": 4, "cidr": "10.61.0.0/24"})
    hosts = {"a": "ha-h1", "b": "ha-h2"}
    ports = {
        name: create(api.ports, {"network_id": net["id"], "binding:host_id": host})["id"]
        for name, host in hosts.items()
    }
    check = {"type": "tcp", "port": 80, "interval": 0.1, "failure_threshold": 3}
    sip = create(
        api.service_ips,
        {
            "subnet_id": subnet["id"],
            "active_port_id": ports["a"],
            "standby_port_ids": [ports["b"]],
            "health_check": check,
        },
    )

    def controller(name: str) -> Controller:
        store = open_url(store_url)
        settings = ControllerSettings(name=name, lease_ttl=1, poll_timeout=0.01)
        return Controller(store, Services(store).service_ips, settings)

    def report(port: str, *, healthy: bool) -> None:
        value: JSONObject = {
            "healthy": healthy,
            "checked_at": time.time(),
            "consecutive_failures": 0 if healthy else 3,
        }
        api.store.put(f"{ROOT}health/{hosts[port]}/{sip['id']}/{ports[port]}", value)

    def active() -> str:
        return str(api.service_ips.get(ADMIN, sip["id"])["active_port_id"])

    first, second = controller("first"), controller("second")
    for _ in range(3):
        first.step()
        second.step()
    assert (first.is_leader, second.is_leader) == (True, False)
    first.close(revoke=False)  # crashed: nobody renews its lease any more

    crashed = time.monotonic()
    deadline = crashed + 20
    while active() != ports["b"] and time.monotonic() < deadline:
        report("a", healthy=False)
        report("b", healthy=True)
        second.step()
    took = time.monotonic() - crashed
    assert active() == ports["b"], "the other controller never took over"
    assert second.is_leader
    assert took >= 0.5  # not before the dead leader's lease ran out
    for _ in range(20):
        second.step()
    moves = api.service_ips.get(ADMIN, sip["id"])["moves"]
    assert [(m["from_port_id"], m["to_port_id"], m["reason"]) for m in moves] == [
        (ports["a"], ports["b"], "health")
    ]
    second.close()
