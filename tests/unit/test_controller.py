"""Unit: the service-IP controller on a real embedded store, with a fake clock.

Two controllers share one sqlite file, each through its own store object (as two
processes would); the clock is shared and moved by hand, so lease expiry and report
staleness happen exactly when a test says. The tests look at what a user would see in
the store afterwards: where the address is, who holds the claim, what the endpoint
records say, and the service IP's move history — and that a failure moved it once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from routeplane.controller.leader import LEADER_KEY, Controller, ControllerSettings
from routeplane.model.jsontypes import JSONObject
from routeplane.services.attributes import check_create, check_update
from routeplane.services.context import ADMIN
from routeplane.services.registry import Services
from routeplane.services.resource import ResourceService
from routeplane.store import KeyValue
from routeplane.store.sqlite import SqliteStore

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
ADDRESS = "10.60.0.50"
TTL = 3


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def create(service: ResourceService, body: dict[str, Any]) -> dict[str, Any]:
    return service.create(ADMIN, check_create(service.attrs, body, is_admin=True))


@dataclass
class Cloud:
    """The api's view of the store, two VMs' worth of ports and one service IP."""

    path: Path
    clock: FakeClock
    store: SqliteStore
    services: Services
    ports: dict[str, str]  # name -> id
    hosts: dict[str, str]  # name -> host
    sip: str
    subnet: str
    controllers: list[Controller] = field(default_factory=list)
    stores: list[SqliteStore] = field(default_factory=list)

    def controller(self, name: str) -> Controller:
        store = SqliteStore(self.path, clock=self.clock)
        settings = ControllerSettings(name=name, lease_ttl=TTL, poll_timeout=0.005)
        controller = Controller(store, Services(store).service_ips, settings, clock=self.clock)
        self.stores.append(store)
        self.controllers.append(controller)
        return controller

    def report(self, port: str, *, healthy: bool) -> None:
        value: JSONObject = {
            "healthy": healthy,
            "checked_at": self.clock(),
            "consecutive_failures": 0 if healthy else 3,
        }
        key = f"{ROOT}health/{self.hosts[port]}/{self.sip}/{self.ports[port]}"
        self.store.put(key, value)

    def service_ip(self) -> dict[str, Any]:
        return self.services.service_ips.get(ADMIN, self.sip)

    def holder(self) -> str | None:
        kv = self.store.get(f"{ROOT}ipam/{self.subnet}/{ADDRESS}")
        if kv is None:
            return None
        assert isinstance(kv.value, dict)
        return {v: k for k, v in self.ports.items()}[str(kv.value["port_id"])]

    def record(self, port: str) -> dict[str, Any]:
        kv = self.store.get(f"{ROOT}endpoints/{self.hosts[port]}/{self.ports[port]}")
        assert kv is not None
        assert isinstance(kv.value, dict)
        return kv.value

    def moves(self) -> list[tuple[str, str, str]]:
        names = {v: k for k, v in self.ports.items()}
        return [
            (names.get(m["from_port_id"], "?"), names[m["to_port_id"]], m["reason"])
            for m in self.service_ip()["moves"]
        ]


def leads(controller: Controller) -> bool:
    return controller.is_leader


def settle(
    controllers: list[Controller], until: Callable[[], bool] = lambda: False, rounds: int = 60
) -> bool:
    """Step every controller in turn until ``until`` holds (or ``rounds`` ran out)."""
    for _ in range(rounds):
        for controller in controllers:
            controller.step()
        if until():
            return True
    return False


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    clock = FakeClock()
    path = tmp_path / "store.db"
    store = SqliteStore(path, clock=clock)
    services = Services(store)
    net = create(services.networks, {"name": "ha-net"})
    subnet = create(
        services.subnets, {"network_id": net["id"], "ip_version": 4, "cidr": "10.60.0.0/24"}
    )
    hosts = {"a": "h1", "b": "h2", "c": "h3"}
    ports = {
        name: create(
            services.ports, {"network_id": net["id"], "name": name, "binding:host_id": host}
        )["id"]
        for name, host in hosts.items()
    }
    check = {"type": "tcp", "port": 80, "interval": 0.1, "failure_threshold": 3}
    sip = create(
        services.service_ips,
        {
            "name": "web",
            "ip_address": ADDRESS,
            "active_port_id": ports["a"],
            "standby_port_ids": [ports["b"], ports["c"]],
            "health_check": check,
        },
    )
    world = Cloud(path, clock, store, services, ports, hosts, sip["id"], subnet["id"])
    yield world
    for controller in world.controllers:
        controller.close()
    for opened in world.stores:
        opened.close()
    store.close()


def test_two_controllers_one_leader_one_move(cloud: Cloud) -> None:
    first, second = cloud.controller("first"), cloud.controller("second")
    settle([first, second], rounds=3)
    assert (leads(first), leads(second)) == (True, False)
    leader = cloud.store.get(LEADER_KEY)
    assert leader is not None
    assert isinstance(leader.value, dict)
    assert leader.value["holder"] == "first"

    cloud.report("a", healthy=False)
    cloud.report("b", healthy=True)
    cloud.report("c", healthy=True)
    assert settle([first, second], until=lambda: cloud.holder() == "b")
    settle([first, second], rounds=20)  # nobody moves it again

    assert cloud.moves() == [("a", "b", "health")]
    shown = cloud.service_ip()
    assert (shown["active_port_id"], shown["primary_port_id"]) == (
        cloud.ports["b"],
        cloud.ports["a"],
    )
    assert shown["status"] == "ACTIVE"
    new, old = cloud.record("b"), cloud.record("a")
    assert ADDRESS in new["fixed_ips"]
    assert new["preferred"] == [ADDRESS]
    assert ADDRESS not in old["fixed_ips"]
    assert old["moved_out"][ADDRESS]["to_host"] == "h2"
    assert leads(second) is False


def test_a_healthy_active_port_keeps_the_address(cloud: Cloud) -> None:
    controller = cloud.controller("only")
    cloud.report("a", healthy=True)
    cloud.report("b", healthy=True)
    settle([controller], rounds=10)
    cloud.report("b", healthy=False)
    settle([controller], rounds=10)
    assert cloud.holder() == "a"
    assert cloud.moves() == []


def test_the_other_controller_takes_over_when_the_leader_dies(cloud: Cloud) -> None:
    first, second = cloud.controller("first"), cloud.controller("second")
    settle([first, second], rounds=3)
    assert leads(first)
    first.close(revoke=False)  # a crash: the lease is left to expire
    cloud.controllers.remove(first)

    cloud.report("a", healthy=False)
    cloud.report("b", healthy=True)
    settle([second], rounds=10)
    assert not leads(second)  # the dead leader's lease still runs
    assert cloud.holder() == "a"

    cloud.clock.advance(TTL + 0.5)
    cloud.report("a", healthy=False)  # the checkers keep reporting
    cloud.report("b", healthy=True)
    assert settle([second], until=lambda: cloud.holder() == "b")
    assert leads(second)
    settle([second], rounds=10)
    assert cloud.moves() == [("a", "b", "health")]


def test_a_clean_stop_hands_leadership_over_at_once(cloud: Cloud) -> None:
    first, second = cloud.controller("first"), cloud.controller("second")
    settle([first, second], rounds=3)
    first.close()
    cloud.controllers.remove(first)
    settle([second], rounds=2)
    assert leads(second)


def test_a_leader_paused_past_its_lease_cannot_move(cloud: Cloud) -> None:
    """The leader stops between its keep-alive and its move for longer than the lease;
    the other controller takes over. The old leader's transaction is refused (fencing),
    and the failure is acted on once, by the new leader."""
    first, second = cloud.controller("first"), cloud.controller("second")
    settle([first, second], rounds=3)
    assert leads(first)
    cloud.clock.advance(TTL + 0.5)  # first is frozen meanwhile
    settle([second], rounds=2)
    assert leads(second)

    cloud.report("a", healthy=False)
    cloud.report("b", healthy=True)
    first._move(cloud.sip, cloud.clock())  # wakes up mid-failover
    assert not leads(first)
    assert cloud.holder() == "a"

    assert settle([first, second], until=lambda: cloud.holder() == "b")
    settle([first, second], rounds=10)
    assert cloud.moves() == [("a", "b", "health")]
    assert not leads(first)


def test_never_to_a_standby_nobody_vouches_for(cloud: Cloud) -> None:
    controller = cloud.controller("only")
    cloud.report("a", healthy=False)
    cloud.report("b", healthy=False)  # c: no report at all
    settle([controller], rounds=10)
    assert cloud.holder() == "a"
    cloud.report("c", healthy=True)
    assert settle([controller], until=lambda: cloud.holder() == "c")
    assert cloud.moves() == [("a", "c", "health")]


def test_a_recovered_port_takes_the_address_back_only_with_failback(cloud: Cloud) -> None:
    controller = cloud.controller("only")
    cloud.report("a", healthy=False)
    cloud.report("b", healthy=True)
    assert settle([controller], until=lambda: cloud.holder() == "b")
    cloud.report("a", healthy=True)  # recovered
    settle([controller], rounds=10)
    assert cloud.holder() == "b"

    attrs = cloud.services.service_ips.attrs
    cloud.services.service_ips.update(
        ADMIN, cloud.sip, check_update(attrs, {"failback": True}, is_admin=True), None
    )
    assert settle([controller], until=lambda: cloud.holder() == "a")
    settle([controller], rounds=10)
    assert cloud.moves() == [("a", "b", "health"), ("b", "a", "failback")]


def test_an_active_port_that_was_deleted_fails_over_when_its_reports_stop(cloud: Cloud) -> None:
    controller = cloud.controller("only")
    cloud.report("a", healthy=True)
    cloud.report("b", healthy=True)
    settle([controller], rounds=3)
    cloud.services.ports.delete(ADMIN, cloud.ports["a"], None)
    assert cloud.holder() is None
    assert cloud.service_ip()["status"] == "ERROR"

    cloud.clock.advance(5.0)  # a's checker has nothing to check any more
    cloud.report("b", healthy=True)
    assert settle([controller], until=lambda: cloud.holder() == "b")
    shown = cloud.service_ip()
    assert (shown["active_port_id"], shown["status"]) == (cloud.ports["b"], "ACTIVE")
    assert cloud.record("b")["preferred"] == [ADDRESS]
    assert cloud.moves() == [("a", "b", "health")]


def test_metrics_count_one_failover_and_its_detection_time(cloud: Cloud) -> None:
    """What an operator's Prometheus sees: the leader, one failover after one failure,
    from the failing report to the move, and the ports by health."""
    from prometheus_client import CollectorRegistry

    from routeplane.controller.metrics import ControllerMetrics

    first, second = cloud.controller("first"), cloud.controller("second")
    registries = [CollectorRegistry(), CollectorRegistry()]
    ControllerMetrics(registries[0], first)
    ControllerMetrics(registries[1], second)
    settle([first, second], rounds=3)
    cloud.report("b", healthy=True)
    cloud.report("c", healthy=True)
    cloud.report("a", healthy=False)
    cloud.clock.advance(0.25)  # the leader sees the failing report a quarter second later
    assert settle([first, second], until=lambda: cloud.holder() == "b")

    def sample(which: int, name: str, **labels: str) -> float | None:
        return registries[which].get_sample_value(name, labels)

    assert sample(0, "routeplane_controller_leader") == 1
    assert sample(1, "routeplane_controller_leader") == 0
    assert sample(0, "routeplane_controller_failovers_total", reason="health") == 1
    assert sample(1, "routeplane_controller_failovers_total", reason="health") is None
    assert sample(0, "routeplane_controller_detection_to_move_seconds_count") == 1
    assert sample(0, "routeplane_controller_detection_to_move_seconds_sum") == pytest.approx(0.25)
    assert sample(0, "routeplane_controller_service_ips") == 1
    # after the move (as read now, by the wall clock): a's report is failed or stale by
    # then, b and c were healthy when reported; their sum is the three ports
    total = sum(
        sample(0, "routeplane_controller_ports", health=h) or 0
        for h in ("healthy", "failed", "stale", "unknown")
    )
    assert total == 3


def suspect(cloud: Cloud, port: str, failures: int = 1) -> None:
    """``port``'s checker saw ``failures`` probes fail, short of the threshold (3)."""
    value: JSONObject = {
        "healthy": True, "checked_at": cloud.clock(), "consecutive_failures": failures
    }  # fmt: skip
    cloud.store.put(f"{ROOT}health/{cloud.hosts[port]}/{cloud.sip}/{cloud.ports[port]}", value)


def test_a_failing_active_ports_move_is_read_before_its_threshold(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the active port fails short of its threshold the controller reads what the
    move will need; crossing the threshold then costs the move's transaction alone, with
    none of those documents read again."""
    controller = cloud.controller("only")
    cloud.report("b", healthy=True)
    cloud.report("c", healthy=True)
    suspect(cloud, "a")
    settle([controller], rounds=5)
    assert cloud.holder() == "a"  # a suspect is not moved

    read: list[str] = []
    store_get = controller.store.get

    def get(k: str) -> KeyValue | None:
        read.append(k)
        return store_get(k)

    monkeypatch.setattr(controller.store, "get", get)
    cloud.report("a", healthy=False)
    assert settle([controller], until=lambda: cloud.holder() == "b")
    rehearsed = {
        LEADER_KEY, f"{ROOT}service_ips/{cloud.sip}", f"{ROOT}ipam/{cloud.subnet}/{ADDRESS}",
        f"{ROOT}ports/{cloud.ports['a']}", f"{ROOT}ports/{cloud.ports['b']}",
    }  # fmt: skip
    assert rehearsed.isdisjoint(read), sorted(rehearsed.intersection(read))
    assert cloud.moves() == [("a", "b", "health")]
    assert ADDRESS in cloud.record("b")["fixed_ips"]
    assert ADDRESS not in cloud.record("a")["fixed_ips"]


def test_a_rehearsal_gone_stale_moves_from_where_the_address_is(cloud: Cloud) -> None:
    """The address moved by hand between the rehearsal and the failure: the rehearsed
    reads are refused by the move's compares (or decide nothing and are read again), and
    the address moves once, from the port that holds it, never onto two ports."""
    controller = cloud.controller("only")
    cloud.report("b", healthy=True)
    suspect(cloud, "a")
    settle([controller], rounds=5)  # rehearsed: a -> b
    to_c = {"active_port_id": cloud.ports["c"]}
    to_c = check_update(cloud.services.service_ips.attrs, to_c, is_admin=True)
    cloud.services.service_ips.update(ADMIN, cloud.sip, to_c, None)
    cloud.report("c", healthy=False)  # before the controller looks again
    assert settle([controller], until=lambda: cloud.holder() == "b")
    settle([controller], rounds=10)
    assert cloud.moves() == [("a", "c", "manual"), ("c", "b", "health")]
    holding = [p for p in ("a", "b", "c") if ADDRESS in cloud.record(p)["fixed_ips"]]
    assert holding == ["b"]


def test_a_recovered_suspect_forgets_its_rehearsal(cloud: Cloud) -> None:
    controller = cloud.controller("only")
    cloud.report("b", healthy=True)
    suspect(cloud, "a", failures=2)
    settle([controller], rounds=5)
    cloud.report("a", healthy=True)  # the service came back
    settle([controller], rounds=5)
    assert controller._rehearsed == {}
    assert cloud.holder() == "a"
    assert cloud.moves() == []
