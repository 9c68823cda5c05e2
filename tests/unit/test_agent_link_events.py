"""Unit: the agent reacting to link events and programming IPv6 gateway proxy entries,
on the stateful fake kernel and an embedded store.

The pending retry and the periodic resync are set far in the future here, so whatever
happens after a link change is the link events' doing.
"""

from __future__ import annotations

from typing import Any

import pytest

from routeplane.agent.loop import Agent
from routeplane.agent.settings import AgentSettings
from routeplane.dataplane.fake import FakeKernel
from routeplane.dataplane.model import Proxy, Route
from routeplane.store import Store

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
TAP = "tapaaaaaaaa-aa"
GW6 = "fd5f:5d21:845:1c2e::1"


def endpoint(*addresses: str, gateways: tuple[str, ...] = (), revision: int = 1) -> dict[str, Any]:
    return {
        "port_id": "a", "interface": TAP, "mac_address": "fa:16:3e:00:00:01",
        "admin_state_up": True, "fixed_ips": list(addresses), "gateways": list(gateways),
        "allowed_addresses": [], "floating_ips": [], "port_revision": revision,
    }  # fmt: skip


def make_agent(store: Store, kernel: FakeKernel) -> Agent:
    settings = AgentSettings(
        host="node1", apply_interval=0.0, pending_interval=3600.0, resync_interval=3600.0
    )
    agent = Agent(store, kernel, settings)
    agent.kernel_prepare()
    return agent


def settle(agent: Agent, rounds: int = 4) -> None:
    for _ in range(rounds):
        agent.step(timeout=0.02)


def status(store: Store) -> Any:
    kv = store.get(f"{ROOT}status/node1/a")
    return None if kv is None else kv.value


def programmed(store: Store, kernel: FakeKernel, *addresses: str) -> Agent:
    store.put(f"{ROOT}endpoints/node1/a", endpoint(*addresses))
    kernel.add_link(TAP, up=True)
    agent = make_agent(store, kernel)
    settle(agent)
    assert kernel.routes() == {Route(a, TAP) for a in addresses}
    return agent


def test_a_recreated_tap_is_configured_and_routed_again_by_its_events(store: Store) -> None:
    kernel = FakeKernel()
    agent = programmed(store, kernel, "10.28.0.13")
    kernel.del_link(TAP)  # the VM reboots: its tap goes, with its routes and sysctls
    settle(agent)
    assert status(store) is None  # not programmed while there is no tap
    kernel.add_link(TAP, up=True)
    settle(agent)
    assert TAP in kernel.configured
    assert kernel.routes() == {Route("10.28.0.13", TAP)}
    assert status(store) == {"port_revision": 1}


def test_a_tap_taken_down_and_up_again_gets_its_routes_back(store: Store) -> None:
    kernel = FakeKernel()
    agent = programmed(store, kernel, "10.28.0.13", "fd5f:5d21:845:1c2e::d")
    kernel.set_link(TAP, up=False)  # the kernel flushes the tap's routes
    settle(agent)
    kernel.set_link(TAP, up=True)
    settle(agent)
    assert len(kernel.routes()) == 2


def test_a_tap_that_appears_later_is_routed_at_once(store: Store) -> None:
    kernel = FakeKernel()
    store.put(f"{ROOT}endpoints/node1/a", endpoint("10.28.0.13"))
    agent = make_agent(store, kernel)
    settle(agent)
    assert kernel.routes() == set()
    kernel.add_link(TAP, up=False)  # created down: the agent configures it, bringing it up
    settle(agent)
    assert kernel.routes() == {Route("10.28.0.13", TAP)}


def test_a_tap_losing_carrier_is_unrouted_until_it_has_it_again(store: Store) -> None:
    """Routes exist only while the tap is up (so BGP withdraws an unreachable VM)."""
    kernel = FakeKernel()
    agent = programmed(store, kernel, "10.28.0.13")
    kernel.set_link(TAP, carrier=False)  # the VM end goes away; the kernel keeps the route
    settle(agent)
    assert kernel.routes() == set()
    assert status(store) is None
    kernel.set_link(TAP, carrier=True)
    settle(agent)
    assert kernel.routes() == {Route("10.28.0.13", TAP)}
    assert status(store) == {"port_revision": 1}


def test_lost_link_events_make_the_agent_read_everything_again(store: Store) -> None:
    kernel = FakeKernel(event_capacity=1)
    agent = programmed(store, kernel, "10.28.0.13")
    kernel.del_link(TAP)
    kernel.add_link(TAP, up=True)  # one event too many: the queue overflows
    settle(agent)
    assert kernel.routes() == {Route("10.28.0.13", TAP)}


def test_ipv6_gateways_are_proxied_on_the_tap_and_swept_when_gone(store: Store) -> None:
    kernel = FakeKernel()
    kernel.add_link(TAP, up=True)
    gateways = ("10.28.0.1", GW6)
    store.put(f"{ROOT}endpoints/node1/a", endpoint("10.28.0.13", GW6[:-1] + "d", gateways=gateways))
    agent = make_agent(store, kernel)
    settle(agent)
    assert kernel.proxies() == {Proxy(GW6, TAP)}  # IPv4 needs none: proxy ARP answers
    assert status(store) == {"port_revision": 1}
    store.put(f"{ROOT}endpoints/node1/a", endpoint("10.28.0.13", revision=2))
    settle(agent)
    assert kernel.proxies() == set()
    assert status(store) == {"port_revision": 2}
