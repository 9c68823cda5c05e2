"""Unit: an address that ports of two projects claim is routed to neither, and the agent
says so once — the pure verdict (``desired.contested``, ``host_state``), its incremental
twin (``agent/claims.py``), and the loop on the fake kernel.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from routeplane.agent.claims import Claims
from routeplane.agent.desired import contested, host_state, routed_addresses
from routeplane.dataplane.fake import FakeKernel
from routeplane.dataplane.model import Neighbour, Route
from routeplane.model.endpoint import EndpointRecord
from routeplane.store import Store
from tests.unit.test_agent_loop import TAP_A, TAP_B, kernel, make_agent, put, settle, status

pytestmark = pytest.mark.unit

__all__ = ["kernel"]  # the fake kernel fixture, with TAP_A and TAP_B up

TAP_C = "tapcccccccc-cc"
TAKEN = "10.28.0.13"  # A's VM address, which B's data claims too


def endpoint(
    port_id: str, tap: str, project: str, *fixed: str, pairs: tuple[str, ...] = (), **more: Any
) -> EndpointRecord:
    record: dict[str, Any] = {
        "port_id": port_id, "interface": tap, "project_id": project,
        "mac_address": "fa:16:3e:00:00:01", "fixed_ips": list(fixed),
        "allowed_addresses": list(pairs), "floating_ips": [], "port_revision": 1, **more,
    }  # fmt: skip
    return record  # type: ignore[return-value]


def test_an_address_two_projects_claim_is_routed_to_neither() -> None:
    a = endpoint("a", TAP_A, "proj-a", TAKEN, "10.28.0.14")
    b = endpoint("b", TAP_B, "proj-b", "10.28.0.15", pairs=(TAKEN,))
    assert routed_addresses(b) == ["10.28.0.15", TAKEN]  # each alone would route it
    assert contested([a, b]) == {TAKEN}
    state = host_state([a, b])
    assert {r.address for r in state.routes} == {"10.28.0.14", "10.28.0.15"}
    assert Neighbour(TAKEN, TAP_A, "fa:16:3e:00:00:01") not in state.neighbours
    assert host_state([a]).routes == {Route(TAKEN, TAP_A), Route("10.28.0.14", TAP_A)}


def test_ports_of_one_project_sharing_a_vip_keep_it() -> None:
    vip = "10.28.0.100"
    a = endpoint("a", TAP_A, "proj-a", "10.28.0.13", pairs=(vip,))
    b = endpoint("b", TAP_B, "proj-a", "10.28.0.14", pairs=(vip,))
    assert contested([a, b]) == frozenset()
    assert {Route(vip, TAP_A), Route(vip, TAP_B)} <= host_state([a, b]).routes


def test_a_port_that_is_down_claims_nothing() -> None:
    a = endpoint("a", TAP_A, "proj-a", TAKEN)
    b = endpoint("b", TAP_B, "proj-b", TAKEN, admin_state_up=False)
    assert contested([a, b]) == frozenset()
    assert host_state([a, b]).routes == {Route(TAKEN, TAP_A)}


def test_claims_kept_one_change_at_a_time_agree_with_the_whole_verdict() -> None:
    claims = Claims()
    a = endpoint("a", TAP_A, "proj-a", TAKEN)
    b = endpoint("b", TAP_B, "proj-b", TAKEN)
    c = endpoint("c", TAP_C, "proj-b", TAKEN)
    assert claims.note("a", a) == set()
    assert claims.note("b", b) == {"a"}  # a's route must go
    assert claims.contested == contested([a, b]) == {TAKEN}
    assert claims.note("c", c) == set()  # still contested: nothing changes for a or b
    assert claims.note("a", None) == {"b", "c"}  # one project left: b and c get it back
    assert claims.contested == contested([b, c]) == set()
    assert claims.note("b", endpoint("b", TAP_B, "proj-b", "10.28.0.15")) == set()
    assert claims.claimants == {TAKEN: {"c": "proj-b"}, "10.28.0.15": {"b": "proj-b"}}


def test_the_agent_routes_a_contested_address_to_neither_and_warns_once(
    store: Store, kernel: FakeKernel, caplog: pytest.LogCaptureFixture
) -> None:
    put(store, dict(endpoint("a", TAP_A, "proj-a", TAKEN, "10.28.0.14")))
    agent = make_agent(store, kernel)
    settle(agent)
    assert Route(TAKEN, TAP_A) in kernel.routes()
    with caplog.at_level(logging.INFO, logger="routeplane.agent"):
        put(store, dict(endpoint("b", TAP_B, "proj-b", "10.28.0.15", pairs=(TAKEN,))))
        settle(agent)
        put(
            store,
            dict(endpoint("b", TAP_B, "proj-b", "10.28.0.15", pairs=(TAKEN,), port_revision=2)),
        )
        settle(agent)
    assert kernel.routes() == {Route("10.28.0.14", TAP_A), Route("10.28.0.15", TAP_B)}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"address {TAKEN} is claimed by ports of 2 projects (a of proj-a, b of proj-b):"
        " routed to none of them until only one project's ports claim it"
    ]
    assert status(store, "b") == {"port_revision": 2}  # its other address is routed
    put(store, dict(endpoint("b", TAP_B, "proj-b", "10.28.0.15", port_revision=3)))
    settle(agent)
    assert Route(TAKEN, TAP_A) in kernel.routes()  # settled: A's address is A's again
    assert Route(TAKEN, TAP_B) not in kernel.routes()
