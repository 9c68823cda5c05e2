"""Unit: a live migration's target host (``migration_target`` records): its tap is
prepared at once, its routes wait for the VM to send on the tap, then go in at the
preferred metric; activation makes them ordinary. The pure desired state
(``agent.desired``) table-tested, then the loop on the fake kernel and a store."""

from __future__ import annotations

import pytest

from routeplane.agent.desired import awaits_arrival, endpoint_state
from routeplane.agent.loop import Agent
from routeplane.agent.settings import AgentSettings
from routeplane.dataplane.fake import FakeKernel
from routeplane.dataplane.model import PREFERRED_METRIC, ROUTE_METRIC, Neighbour, Route
from routeplane.model.endpoint import EndpointRecord, encode
from routeplane.store import Store

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
TAP = "tapaaaaaaaa-aa"
MAC = "fa:16:3e:00:00:01"
RECORD: EndpointRecord = {
    "port_id": "a", "interface": TAP, "mac_address": MAC, "admin_state_up": True,
    "fixed_ips": ["10.28.0.13", "fd5f::d"], "gateways": ["fd5f::1"], "port_revision": 1,
}  # fmt: skip
TARGET: EndpointRecord = {**RECORD, "migration_target": True}


@pytest.mark.parametrize(
    ("record", "arrived", "metric"),
    [
        (RECORD, False, ROUTE_METRIC),  # an ordinary record: arrival means nothing
        (RECORD, True, ROUTE_METRIC),
        (TARGET, False, None),  # a target before its VM sent: no route at all
        (TARGET, True, PREFERRED_METRIC),  # arrived: over the source host's route
    ],
)
def test_a_targets_routes_wait_for_its_vm(
    record: EndpointRecord, arrived: bool, metric: int | None
) -> None:
    state = endpoint_state(record, arrived=arrived)
    expected = (
        set() if metric is None else {Route(a, TAP, metric) for a in ("10.28.0.13", "fd5f::d")}
    )
    assert state.routes == expected
    # prepared either way: the tap configured, the VM's neighbours, the gateway proxied
    assert state.interfaces == {TAP}
    assert {n.address for n in state.neighbours} == {"10.28.0.13", "fd5f::d"}
    assert {p.address for p in state.proxies} == {"fd5f::1"}


def test_only_an_enabled_target_awaits_arrival() -> None:
    assert awaits_arrival(TARGET)
    assert not awaits_arrival(RECORD)
    assert not awaits_arrival({**TARGET, "admin_state_up": False})
    assert endpoint_state({**TARGET, "admin_state_up": False}, arrived=True).routes == frozenset()


def put(store: Store, record: EndpointRecord) -> None:
    store.put(f"{ROOT}endpoints/node2/{record['port_id']}", encode(record))


def settle(agent: Agent, rounds: int = 4) -> None:
    for _ in range(rounds):
        agent.step(timeout=0.02)


@pytest.fixture
def kernel() -> FakeKernel:
    fake = FakeKernel()
    fake.add_link(TAP, up=True, mac=MAC)  # the hypervisor's early tap: up, VM paused
    return fake


def make_agent(store: Store, kernel: FakeKernel) -> Agent:
    settings = AgentSettings(host="node2", apply_interval=0.0, arrival_interval=0.0)
    agent = Agent(store, kernel, settings)
    agent.kernel_prepare()
    return agent


def test_the_target_is_routed_when_its_vm_sends_then_ordinary_once_active(
    store: Store, kernel: FakeKernel
) -> None:
    put(store, TARGET)
    agent = make_agent(store, kernel)
    settle(agent)
    assert TAP in kernel.configured
    assert Neighbour("10.28.0.13", TAP, MAC) in kernel.neighbours()
    assert kernel.routes() == set()  # pre-copy: the tap is up, the VM is not there
    assert store.get(f"{ROOT}status/node2/a") is None

    kernel.receive(TAP)  # the VM resumed here and announced itself
    settle(agent)
    assert kernel.routes() == {
        Route("10.28.0.13", TAP, PREFERRED_METRIC), Route("fd5f::d", TAP, PREFERRED_METRIC)
    }  # fmt: skip

    put(store, {**RECORD, "port_revision": 2})  # the binding activated: an ordinary record
    settle(agent)
    assert kernel.routes() == {Route("10.28.0.13", TAP), Route("fd5f::d", TAP)}
    assert store.get(f"{ROOT}status/node2/a") is not None


def test_an_agent_restarted_after_the_arrival_routes_at_once(
    store: Store, kernel: FakeKernel
) -> None:
    kernel.receive(TAP, 3)  # the VM arrived while no agent ran
    put(store, TARGET)
    agent = make_agent(store, kernel)
    settle(agent)
    assert {r.metric for r in kernel.routes()} == {PREFERRED_METRIC}


def test_a_cancelled_migration_leaves_nothing(store: Store, kernel: FakeKernel) -> None:
    put(store, TARGET)
    agent = make_agent(store, kernel)
    settle(agent)
    store.delete(f"{ROOT}endpoints/node2/a")  # the inactive binding deleted
    settle(agent)
    kernel.receive(TAP)  # whatever the tap sees now routes nothing
    settle(agent)
    assert kernel.routes() == set()
    assert kernel.neighbours() == set()
    assert agent.round.arrivals.awaiting == {}
