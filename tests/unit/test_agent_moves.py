"""Unit: make-before-break for moved addresses, through the agent's loop on the fake
kernel — the new host's route is preferred, the old host forwards a moved address to the
new host while it drains and then withdraws it, and nothing drains that should not.

Endpoint records carry the hints as the api writes them (``preferred``, ``moved_out``);
the hosts registry gives the fabric addresses; the wall clock is a fake one. Assertions
are on the fake kernel's routes (the one it would use, too) and its conntrack table.
"""

from __future__ import annotations

from typing import Any

import pytest

from routeplane.agent.bgp import BgpSettings, BgpSpeaker
from routeplane.agent.loop import Agent
from routeplane.agent.settings import AgentSettings
from routeplane.bgp.fake import FakeBird
from routeplane.dataplane.fake import FakeKernel
from routeplane.dataplane.model import (
    BIRD_METRIC,
    PREFERRED_METRIC,
    ROUTE_METRIC,
    Outcome,
    Plan,
    Route,
)
from routeplane.store import Put, Store
from routeplane.store.sqlite import SqliteStore

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
TAP_A, TAP_B = "tapaaaaaaaa-aa", "tapbbbbbbbb-bb"
SERVICE, SERVICE6 = "10.28.0.23", "fd5f::23"
NODE2, NODE2_6 = "192.168.8.4", "fd00:192:168:8::4"
BIRD_PROTO = 12  # what BIRD's routes carry


class Wall:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        return self.now


def endpoint(port_id: str, tap: str, *addresses: str, **hints: Any) -> dict[str, Any]:
    return {
        "port_id": port_id, "interface": tap, "mac_address": "fa:16:3e:00:00:01",
        "admin_state_up": True, "fixed_ips": list(addresses), "allowed_addresses": [],
        "floating_ips": [], "port_revision": 1, **hints,
    }  # fmt: skip


def moved_out(at: float, to_host: str = "node2", *addresses: str) -> dict[str, Any]:
    return {
        a: {"generation": 7, "to_port_id": "p2", "to_host": to_host, "moved_at": at}
        for a in addresses or (SERVICE,)
    }


@pytest.fixture
def store(store: SqliteStore) -> SqliteStore:
    """The shared embedded store, with both hosts registered."""
    for host, (v4, v6) in {"node1": ("192.168.8.3", "fd00:192:168:8::3"),
                           "node2": (NODE2, NODE2_6)}.items():  # fmt: skip
        store.put(f"{ROOT}hosts/{host}", {"host": host, "bgp_address": v4, "bgp_address6": v6})
    return store


@pytest.fixture
def kernel() -> FakeKernel:
    fake = FakeKernel()
    fake.add_link(TAP_A, up=True)
    fake.add_link(TAP_B, up=True)
    fake.add_link("fabric0", up=True)
    fake.add_network("192.168.8.3/24", "fabric0")
    fake.add_network("fd00:192:168:8::3/64", "fabric0")
    return fake


def make_agent(store: Store, kernel: FakeKernel, wall: Wall) -> Agent:
    settings = AgentSettings(
        host="node1", bgp_address="192.168.8.3", bgp_address6="fd00:192:168:8::3",
        apply_interval=0.0, pending_interval=0.0,
    )  # fmt: skip
    bgp = BgpSpeaker(store, FakeBird(), "node1", BgpSettings(address="192.168.8.3"), lambda: 0.0)
    agent = Agent(store, kernel, settings, bgp=bgp, wall_clock=wall)
    agent.kernel_prepare()
    return agent


def settle(agent: Agent, rounds: int = 4) -> None:
    for _ in range(rounds):
        agent.step(timeout=0.02)


def put(store: Store, record: dict[str, Any]) -> None:
    store.put(f"{ROOT}endpoints/node1/{record['port_id']}", record)


def move(store: Store, *records: dict[str, Any]) -> None:
    """Both ends of a move in one transaction, as the api's ``move_fixed_ip`` writes them
    (two separate writes may reach the agent in two rounds: the walkthrough's two calls)."""
    store.txn([], [Put(f"{ROOT}endpoints/node1/{r['port_id']}", r) for r in records])


def ours(kernel: FakeKernel, address: str) -> set[Route]:
    return {r for r in kernel.routes() if r.address == address}


def used(kernel: FakeKernel, address: str) -> tuple[str, str]:
    route = kernel.route_to(address)
    return ("", "") if route is None else (route.interface, route.via)


def test_an_address_moved_here_is_routed_at_the_preferred_metric_and_wins_at_once(
    store: Store, kernel: FakeKernel
) -> None:
    kernel.add_route(SERVICE, "fabric0", BIRD_PROTO, BIRD_METRIC, via=NODE2)  # BGP: the old host
    put(store, endpoint("a", TAP_A, "10.28.0.13", SERVICE, preferred=[SERVICE]))
    settle(make_agent(store, kernel, Wall()))
    assert ours(kernel, SERVICE) == {Route(SERVICE, TAP_A, PREFERRED_METRIC)}
    assert ours(kernel, "10.28.0.13") == {Route("10.28.0.13", TAP_A, ROUTE_METRIC)}
    assert used(kernel, SERVICE) == (TAP_A, "")  # before BIRD has even looked


def test_the_old_host_forwards_a_moved_address_to_the_new_host_then_withdraws_it(
    store: Store, kernel: FakeKernel
) -> None:
    wall = Wall()
    put(store, endpoint("a", TAP_A, "10.28.0.13", SERVICE, SERVICE6))
    agent = make_agent(store, kernel, wall)
    settle(agent)
    kernel.add_conntrack("10.28.0.99", SERVICE)
    put(store, endpoint("a", TAP_A, "10.28.0.13",
                        moved_out=moved_out(wall.now, "node2", SERVICE, SERVICE6)))  # fmt: skip
    settle(agent)
    # never delivered to the old VM again: the tap route became the route to node2
    assert ours(kernel, SERVICE) == {Route(SERVICE, "", ROUTE_METRIC, NODE2)}
    assert ours(kernel, SERVICE6) == {Route(SERVICE6, "", ROUTE_METRIC, NODE2_6)}
    assert used(kernel, SERVICE) == ("fabric0", NODE2)
    assert kernel.conntrack == set()  # the old VM's connections are gone with it
    assert Route("10.28.0.13", TAP_A) in kernel.routes()

    # BIRD hears the preferred route: the kernel follows it over the drain route at once
    kernel.add_route(SERVICE, "fabric0", BIRD_PROTO, BIRD_METRIC, via=NODE2)
    assert used(kernel, SERVICE) == ("fabric0", NODE2)
    wall.now += 1.0
    settle(agent)
    assert ours(kernel, SERVICE) == {Route(SERVICE, "", ROUTE_METRIC, NODE2)}  # still draining
    wall.now += 1.01
    settle(agent)
    assert ours(kernel, SERVICE) == set()
    assert ours(kernel, SERVICE6) == set()
    assert used(kernel, SERVICE) == ("fabric0", NODE2)  # BIRD's route, untouched


def test_an_address_moved_between_two_taps_here_is_replaced_not_drained(
    store: Store, kernel: FakeKernel
) -> None:
    wall = Wall()
    put(store, endpoint("a", TAP_A, "10.28.0.13", SERVICE))
    put(store, endpoint("b", TAP_B, "10.28.0.14"))
    agent = make_agent(store, kernel, wall)
    settle(agent)
    kernel.add_conntrack("10.28.0.99", SERVICE)
    kernel.actions.clear()
    move(
        store,
        endpoint("a", TAP_A, "10.28.0.13", moved_out=moved_out(wall.now, "node1")),
        endpoint("b", TAP_B, "10.28.0.14", SERVICE, preferred=[SERVICE]),
    )
    settle(agent)
    assert ours(kernel, SERVICE) == {Route(SERVICE, TAP_B, PREFERRED_METRIC)}
    changes = [
        (step, op) for step, op in kernel.actions if isinstance(op, Route) and op.address == SERVICE
    ]
    assert changes == [  # make before break
        ("routes_set", Route(SERVICE, TAP_B, PREFERRED_METRIC)),
        ("routes_del", Route(SERVICE, TAP_A, ROUTE_METRIC)),
    ]
    assert kernel.conntrack == set()


@pytest.mark.parametrize(
    "to_host", ["node9", ""], ids=["host-not-registered", "target-port-unbound"]
)
def test_with_no_new_host_to_forward_to_the_address_is_withdrawn_at_once(
    store: Store, kernel: FakeKernel, to_host: str
) -> None:
    wall = Wall()
    put(store, endpoint("a", TAP_A, "10.28.0.13", SERVICE))
    agent = make_agent(store, kernel, wall)
    settle(agent)
    put(store, endpoint("a", TAP_A, "10.28.0.13", moved_out=moved_out(wall.now, to_host)))
    settle(agent)
    assert ours(kernel, SERVICE) == set()


class PlanLog(FakeKernel):
    """The fake kernel, remembering every route a plan asked for (failed ones too)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[Route] = []

    def apply(self, plan: Plan) -> Outcome:
        self.asked += plan.routes_set
        return super().apply(plan)


def test_a_next_hop_the_kernel_refuses_means_withdrawn_at_once_without_retrying(
    store: Store,
) -> None:
    kernel = PlanLog()  # node2 is not on a network of this host (a routed fabric)
    kernel.add_link(TAP_A, up=True)
    wall = Wall()
    put(store, endpoint("a", TAP_A, "10.28.0.13", SERVICE))
    agent = make_agent(store, kernel, wall)
    settle(agent)
    put(store, endpoint("a", TAP_A, "10.28.0.13", moved_out=moved_out(wall.now)))
    settle(agent, rounds=8)
    assert ours(kernel, SERVICE) == set()
    assert [r for r in kernel.asked if r.via] == [Route(SERVICE, "", ROUTE_METRIC, NODE2)]  # once


def test_an_address_moved_back_here_is_routed_to_its_tap_not_drained(
    store: Store, kernel: FakeKernel
) -> None:
    wall = Wall()
    put(store, endpoint("a", TAP_A, "10.28.0.13", moved_out=moved_out(wall.now)))
    put(store, endpoint("b", TAP_B, "10.28.0.14", SERVICE, preferred=[SERVICE]))
    settle(make_agent(store, kernel, wall))
    assert ours(kernel, SERVICE) == {Route(SERVICE, TAP_B, PREFERRED_METRIC)}


def test_a_drain_outlives_its_record_and_ends_on_time(store: Store, kernel: FakeKernel) -> None:
    wall = Wall()
    put(store, endpoint("a", TAP_A, "10.28.0.13", SERVICE))
    agent = make_agent(store, kernel, wall)
    settle(agent)
    put(store, endpoint("a", TAP_A, "10.28.0.13", moved_out=moved_out(wall.now)))
    settle(agent)
    store.delete(f"{ROOT}endpoints/node1/a")  # the old port is deleted while it drains
    settle(agent)
    assert ours(kernel, SERVICE) == {Route(SERVICE, "", ROUTE_METRIC, NODE2)}
    assert ours(kernel, "10.28.0.13") == set()
    wall.now += 2.5
    settle(agent)
    assert kernel.routes() == set()


def test_a_restart_keeps_a_drain_in_progress_and_skips_one_that_is_over(
    store: Store, kernel: FakeKernel
) -> None:
    wall = Wall()
    put(store, endpoint("a", TAP_A, "10.28.0.13", SERVICE))
    first = make_agent(store, kernel, wall)
    settle(first)
    put(store, endpoint("a", TAP_A, "10.28.0.13", moved_out=moved_out(wall.now)))
    settle(first)
    first.close()
    kernel.actions.clear()
    wall.now += 1.0
    settle(make_agent(store, kernel, wall))
    assert ours(kernel, SERVICE) == {Route(SERVICE, "", ROUTE_METRIC, NODE2)}
    assert not [op for step, op in kernel.actions if step.startswith("routes")]  # kept as is

    kernel.actions.clear()
    wall.now += 5.0  # an agent that starts long after the move just programs the record
    settle(make_agent(store, kernel, wall))
    assert ours(kernel, SERVICE) == set()
