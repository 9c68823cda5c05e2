"""Unit: the agent's reconcile loop on the stateful fake kernel and an embedded store.

Endpoint records are written as the api writes them; the tests step the loop and look
at the resulting fake-kernel state, status keys and recorded actions — not at calls.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from routeplane.agent import policy_runner
from routeplane.agent.loop import Agent
from routeplane.agent.settings import AgentSettings
from routeplane.dataplane.fake import FakeKernel
from routeplane.dataplane.model import Route
from routeplane.model.endpoint import EndpointRecord
from routeplane.model.errors import DataplaneError, Unavailable
from routeplane.model.jsontypes import JSONValue
from routeplane.model.members import record_entries
from routeplane.store import Delete, Put, Store

pytestmark = pytest.mark.unit

ROOT = "/routeplane/v1/"
TAP_A, TAP_B = "tapaaaaaaaa-aa", "tapbbbbbbbb-bb"


def endpoint(port_id: str, tap: str, *addresses: str, revision: int = 1) -> dict[str, Any]:
    return {
        "port_id": port_id, "interface": tap, "mac_address": "fa:16:3e:00:00:01",
        "admin_state_up": True, "fixed_ips": list(addresses), "allowed_addresses": [],
        "floating_ips": [], "port_revision": revision,
    }  # fmt: skip


@pytest.fixture
def kernel() -> FakeKernel:
    fake = FakeKernel()
    fake.add_link(TAP_A, up=True)
    fake.add_link(TAP_B, up=True)
    return fake


def make_agent(store: Store, kernel: FakeKernel) -> Agent:
    agent = Agent(
        store, kernel, AgentSettings(host="node1", apply_interval=0.0, pending_interval=0.0)
    )
    agent.kernel_prepare()
    return agent


def settle(agent: Agent, rounds: int = 4) -> None:
    for _ in range(rounds):
        agent.step(timeout=0.05)


def put(store: Store, record: dict[str, Any]) -> None:
    store.put(f"{ROOT}endpoints/node1/{record['port_id']}", record)


def status(store: Store, port_id: str) -> Any:
    kv = store.get(f"{ROOT}status/node1/{port_id}")
    return None if kv is None else kv.value


def test_endpoints_are_programmed_and_reported(store: Store, kernel: FakeKernel) -> None:
    put(store, endpoint("a", TAP_A, "10.28.0.13", "fd5f::d"))
    agent = make_agent(store, kernel)
    settle(agent)
    assert kernel.routes() == {Route("10.28.0.13", TAP_A), Route("fd5f::d", TAP_A)}
    assert TAP_A in kernel.configured
    assert status(store, "a") == {"port_revision": 1}
    assert store.get(f"{ROOT}hosts/node1") is not None  # registered for BGP
    assert store.get(f"{ROOT}agents/node1") is not None  # alive, on a lease


def test_an_address_moving_between_local_taps_is_replaced(store: Store, kernel: FakeKernel) -> None:
    put(store, endpoint("a", TAP_A, "10.28.0.13", "10.28.0.23"))
    put(store, endpoint("b", TAP_B, "10.28.0.14"))
    agent = make_agent(store, kernel)
    settle(agent)
    put(store, endpoint("a", TAP_A, "10.28.0.13", revision=2))
    put(store, endpoint("b", TAP_B, "10.28.0.14", "10.28.0.23", revision=2))
    settle(agent)
    assert Route("10.28.0.23", TAP_B) in kernel.routes()
    assert Route("10.28.0.23", TAP_A) not in kernel.routes()
    assert status(store, "b") == {"port_revision": 2}


def test_a_deleted_endpoint_is_unrouted_and_its_status_removed(
    store: Store, kernel: FakeKernel
) -> None:
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    agent = make_agent(store, kernel)
    settle(agent)
    store.delete(f"{ROOT}endpoints/node1/a")
    settle(agent)
    assert kernel.routes() == set()
    assert status(store, "a") is None


def test_an_endpoint_waits_for_its_tap(store: Store, kernel: FakeKernel) -> None:
    put(store, endpoint("c", "tapcccccccc-cc", "10.28.0.30"))
    agent = make_agent(store, kernel)
    settle(agent)
    assert kernel.routes() == set()
    assert status(store, "c") is None
    kernel.add_link("tapcccccccc-cc", up=True)  # the VM boots
    settle(agent)
    assert Route("10.28.0.30", "tapcccccccc-cc") in kernel.routes()
    assert status(store, "c") == {"port_revision": 1}


def test_a_failed_route_is_retried_without_holding_up_the_others(
    store: Store, kernel: FakeKernel
) -> None:
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    put(store, endpoint("b", TAP_B, "10.28.0.14"))
    kernel.fail_next("routes_set", 1)
    agent = make_agent(store, kernel)
    agent.step(timeout=0.05)
    assert len(kernel.routes()) == 1  # one failed, the other is in place
    settle(agent)
    assert kernel.routes() == {Route("10.28.0.13", TAP_A), Route("10.28.0.14", TAP_B)}


def test_a_restarted_agent_changes_nothing_that_is_still_wanted(
    store: Store, kernel: FakeKernel
) -> None:
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    put(store, endpoint("b", TAP_B, "10.28.0.14"))
    first = make_agent(store, kernel)
    settle(first)
    store.delete(f"{ROOT}endpoints/node1/b")  # goes stale while no agent runs
    before = len(kernel.actions)
    settle(make_agent(store, kernel))
    route_actions = [a for a in kernel.actions[before:] if "10.28.0.13" in str(a)]
    assert route_actions == []
    assert kernel.routes() == {Route("10.28.0.13", TAP_A)}


def test_a_recreated_tap_is_configured_and_routed_again(store: Store, kernel: FakeKernel) -> None:
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    agent = make_agent(store, kernel)
    settle(agent)
    kernel.del_link(TAP_A)  # the VM reboots: its tap goes away with its routes and sysctls
    kernel.add_link(TAP_A, up=True)
    agent.full_due = True  # the periodic resync
    settle(agent)
    assert TAP_A in kernel.configured
    assert kernel.routes() == {Route("10.28.0.13", TAP_A)}


def test_endpoints_sharing_a_tap_do_not_unroute_each_other(
    store: Store, kernel: FakeKernel
) -> None:
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    put(store, endpoint("a2", TAP_A, "10.28.0.14"))
    agent = make_agent(store, kernel)
    settle(agent)
    put(store, endpoint("a", TAP_A, "10.28.0.13", "10.28.0.23", revision=2))
    settle(agent)
    assert kernel.routes() == {Route(a, TAP_A) for a in ("10.28.0.13", "10.28.0.14", "10.28.0.23")}


class FakePolicy:
    """The policy port: keeps the last script applied, and how many routes the kernel
    had then and in which thread; can be told to refuse."""

    def __init__(self, kernel: FakeKernel | None = None) -> None:
        self.kernel = kernel
        self.scripts: list[str] = []
        self.routes_then: list[int] = []
        self.threads: set[str] = set()
        self.refuse = False

    def apply(self, script: str) -> None:
        self.threads.add(threading.current_thread().name)
        if self.refuse:
            raise DataplaneError("nft: refused (injected)")
        self.scripts.append(script)
        self.routes_then.append(len(self.kernel.routes()) if self.kernel is not None else 0)


@pytest.mark.parametrize("beside", [False, True], ids=["inline", "beside the planning"])
def test_policy_is_programmed_before_routes_and_fails_closed(
    store: Store, kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch, beside: bool
) -> None:
    if beside:  # every script as big as a whole table: applied in the policy thread
        monkeypatch.setattr(policy_runner, "BESIDE_POLICY", 0)
    store.put(f"{ROOT}security_groups/sg1", {"id": "sg1", "security_group_rules": []})
    put(store, {**endpoint("a", TAP_A, "10.28.0.13"), "security_groups": ["sg1"]})
    policy = FakePolicy(kernel)
    policy.refuse = True
    agent = Agent(
        store,
        kernel,
        AgentSettings(host="node1", apply_interval=0.0, pending_interval=0.0),
        policy=policy,
    )
    settle(agent)
    assert kernel.routes() == set()  # no policy, no route: closed
    assert status(store, "a") is None
    policy.refuse = False
    settle(agent)
    assert kernel.routes() == {Route("10.28.0.13", TAP_A)}
    assert TAP_A in policy.scripts[-1]
    assert policy.routes_then[0] == 0  # the policy was in place before the first route
    assert any(t.startswith("policy") for t in policy.threads) == beside


def _web_member_agent(store: Store, kernel: FakeKernel) -> tuple[Agent, FakePolicy]:
    """A settled agent with one endpoint in group "web", whose rule names "web"."""
    rule: JSONValue = {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
            "port_range_max": 22, "remote_group_id": "web", "remote_ip_prefix": None}  # fmt: skip
    store.put(f"{ROOT}security_groups/web", {"id": "web", "security_group_rules": [rule]})
    put(store, {**endpoint("a", TAP_A, "10.28.0.13"), "security_groups": ["web"]})
    policy = FakePolicy()
    agent = Agent(store, kernel, AgentSettings(host="node1", apply_interval=0.0), policy=policy)
    settle(agent)
    return agent, policy


def test_group_membership_on_another_host_reaches_the_policy(
    store: Store, kernel: FakeKernel
) -> None:
    agent, policy = _web_member_agent(store, kernel)
    assert "10.28.0.77" not in policy.scripts[-1]
    remote = {**endpoint("z", "tapzzzzzzzz-zz", "10.28.0.77"), "security_groups": ["web"]}
    # a member on another host, as the api writes it: its record and its index entry
    index = [Put(k, v) for k, v in record_entries("z", cast(EndpointRecord, remote)).items()]
    store.txn((), [Put(f"{ROOT}endpoints/node2/z", remote), *index])
    settle(agent)
    assert "10.28.0.77" in policy.scripts[-1]
    assert set(agent.policy.feed.members.followers) == {"web"}  # type: ignore[union-attr]
    store.txn((), [Delete(f"{ROOT}endpoints/node2/z"), *(Delete(op.key) for op in index)])
    settle(agent)
    assert policy.scripts[-1] == "delete element inet routeplane rg4-web { 10.28.0.77 }\n"


def test_the_agent_reads_no_other_hosts_records_nor_unnamed_groups(
    store: Store, kernel: FakeKernel
) -> None:
    """Another host's endpoint records are that host's business; the policy learns of
    remote members through the index of the groups its rules name, and only those."""
    agent, policy = _web_member_agent(store, kernel)
    # a record without index entry (as an api older than the index wrote it): not read
    remote = {**endpoint("z", "tapzzzzzzzz-zz", "10.28.0.77"), "security_groups": ["web"]}
    store.put(f"{ROOT}endpoints/node2/z", remote)
    store.put(f"{ROOT}sgmembers/db/y", {"addresses": ["10.28.0.88"]})  # a group no rule names
    settle(agent)
    assert not [s for s in policy.scripts if "10.28.0.77" in s or "10.28.0.88" in s]
    assert set(agent.policy.feed.members.followers) == {"web"}  # type: ignore[union-attr]
    assert agent.follower.follower.prefix == f"{ROOT}endpoints/node1/"


class FlakyStore:
    """The real store, unreachable on demand: every call raises ``Unavailable``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.store, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise Unavailable("store unreachable (injected)")
            return target(*args, **kwargs)

        return call


def test_an_unreachable_store_leaves_the_kernel_alone_and_recovers(
    store: Store, kernel: FakeKernel
) -> None:
    flaky = FlakyStore(store)
    put(store, endpoint("a", TAP_A, "10.28.0.13"))
    settings = AgentSettings(host="node1", apply_interval=0.0, error_delays=(0.01,))
    agent = Agent(flaky, kernel, settings)
    settle(agent)
    before = len(kernel.actions)
    flaky.down = True
    settle(agent, rounds=6)
    assert kernel.routes() == {Route("10.28.0.13", TAP_A)}  # nothing removed meanwhile
    assert len(kernel.actions) == before
    flaky.down = False
    put(store, endpoint("a", TAP_A, "10.28.0.13", "10.28.0.23", revision=2))
    settle(agent)
    assert Route("10.28.0.23", TAP_A) in kernel.routes()
    assert status(store, "a") == {"port_revision": 2}
