"""Unit: the dataplane decision table (``dataplane.diff``) and the desired state of
endpoints (``agent.desired``), moved addresses included (the preferred metric, the
drains of the old host): pure functions, table-tested."""

from __future__ import annotations

from typing import Any

import pytest

from routeplane.agent.desired import (
    Drain,
    drains,
    endpoint_state,
    host_state,
    proxied_gateways,
    routed_addresses,
)
from routeplane.dataplane.diff import diff
from routeplane.dataplane.model import (
    PREFERRED_METRIC,
    ROUTE_METRIC,
    HostState,
    Link,
    Neighbour,
    Proxy,
    Route,
)
from routeplane.model.endpoint import EndpointRecord
from routeplane.testing.records import record

pytestmark = pytest.mark.unit

TAP1, TAP2 = "tap9a7e0868-da", "tap7627a298-a2"
LINKS = {TAP1: Link(TAP1, True), TAP2: Link(TAP2, True), "tapdown0000": Link("tapdown0000", False)}


def state(*routes: Route, neighbours: tuple[Neighbour, ...] = ()) -> HostState:
    return HostState(
        frozenset(r.interface for r in routes), frozenset(routes), frozenset(neighbours)
    )


def test_missing_routes_are_added_and_present_ones_left_alone() -> None:
    present = Route("10.28.0.13", TAP1)
    plan = diff(
        state(present, Route("10.28.0.23", TAP1)), LINKS, {present}, set(), {TAP1}, sweep=True
    )
    assert plan.routes_set == (Route("10.28.0.23", TAP1),)
    assert plan.routes_del == ()
    assert plan.configure == ()


def test_stale_routes_are_swept_only_after_in_sync() -> None:
    stale = Route("10.28.0.99", TAP1)
    assert diff(HostState(), LINKS, {stale}, set(), set(), sweep=False).routes_del == ()
    assert diff(HostState(), LINKS, {stale}, set(), set(), sweep=True).routes_del == (stale,)


def test_an_address_moving_to_another_tap_is_a_replace_not_a_delete() -> None:
    before = Route("10.28.0.23", TAP1)
    after = Route("10.28.0.23", TAP2)
    plan = diff(state(after), LINKS, {before}, set(), {TAP2}, sweep=True)
    assert plan.routes_set == (after,)
    assert plan.routes_del == ()


def test_a_metric_change_adds_the_new_route_then_deletes_the_old_even_before_in_sync() -> None:
    ordinary = Route("10.28.0.23", TAP1)
    preferred = Route("10.28.0.23", TAP1, PREFERRED_METRIC)
    for sweep in (False, True):
        plan = diff(state(preferred), LINKS, {ordinary}, set(), {TAP1}, sweep=sweep)
        assert (plan.routes_set, plan.routes_del) == ((preferred,), (ordinary,))
    # moving to another tap at another metric: the same, make before break
    elsewhere = Route("10.28.0.23", TAP2, PREFERRED_METRIC)
    plan = diff(state(elsewhere), LINKS, {ordinary}, set(), {TAP2}, sweep=True)
    assert (plan.routes_set, plan.routes_del) == ((elsewhere,), (ordinary,))


def test_a_drain_route_replaces_the_tap_route_and_needs_no_tap() -> None:
    """Same address, same metric: one replace, never a moment without a route."""
    on_tap = Route("10.28.0.23", TAP1)
    drain = Route("10.28.0.23", "", ROUTE_METRIC, "192.168.8.4")
    plan = diff(HostState(routes=frozenset({drain})), LINKS, {on_tap}, set(), set(), sweep=True)
    assert (plan.routes_set, plan.routes_del) == ((drain,), ())
    gone = diff(HostState(), LINKS, {drain}, set(), set(), sweep=True)
    assert gone.routes_del == (drain,)


def test_routes_wait_for_their_tap_to_be_up() -> None:
    plan = diff(
        state(Route("10.28.0.50", "tapdown0000"), Route("10.28.0.51", "tapmissing00")),
        LINKS,
        set(),
        set(),
        set(),
        sweep=True,
    )
    assert plan.routes_set == ()
    assert plan.configure == ("tapdown0000",)  # configured while down, so it is ready when up


def test_neighbour_mac_change_is_a_replace() -> None:
    old = Neighbour("10.28.0.13", TAP1, "fa:16:3e:00:00:01")
    new = Neighbour("10.28.0.13", TAP1, "fa:16:3e:00:00:02")
    plan = diff(state(neighbours=(new,)), LINKS, set(), {old}, set(), sweep=True)
    assert plan.neighbours_set == (new,)
    assert plan.neighbours_del == ()


def test_proxies_are_set_on_existing_taps_up_or_not_and_swept_only_after_in_sync() -> None:
    wanted = {Proxy("2001:db8::1", TAP1), Proxy("2001:db8::1", "tapdown0000")}
    desired = HostState(
        frozenset({TAP1, "tapdown0000"}),
        proxies=frozenset({*wanted, Proxy("2001:db8::1", "tapmissing00")}),
    )
    plan = diff(desired, LINKS, set(), set(), set(), sweep=True)
    assert set(plan.proxies_set) == wanted  # ready for when the tap comes up
    stale = Proxy("2001:db8::9", TAP2)
    present = Proxy("2001:db8::1", TAP1)
    kept = diff(desired, LINKS, set(), set(), set(), sweep=False, proxies={stale, present})
    assert (kept.proxies_set, kept.proxies_del) == ((Proxy("2001:db8::1", "tapdown0000"),), ())
    swept = diff(desired, LINKS, set(), set(), set(), sweep=True, proxies={stale, present})
    assert swept.proxies_del == (stale,)


ENDPOINT: EndpointRecord = {
    "port_id": "9a7e0868-da7a-419e-a7ad-9d37e11091b8",
    "interface": TAP1,
    "mac_address": "FA:16:3E:28:A9:A4",
    "admin_state_up": True,
    "fixed_ips": ["10.28.0.13", "fd5f:5d21:845:1c2e:0:0:0:d", "10.28.0.23"],
    "allowed_addresses": ["10.28.0.100", "10.28.8.0/24", "10.28.0.13"],
    "floating_ips": [{"floating_ip_address": "172.24.4.10", "fixed_ip_address": "10.28.0.13"}],
    "gateways": ["10.28.0.1", "fd5f:5d21:845:1c2e:0:0:0:1"],
}


def test_every_routed_address_once_and_canonical() -> None:
    assert routed_addresses(ENDPOINT) == [
        "10.28.0.13", "fd5f:5d21:845:1c2e::d", "10.28.0.23", "10.28.0.100", "172.24.4.10",
    ]  # fmt: skip


def test_endpoint_state_routes_neighbours_and_tap() -> None:
    part = endpoint_state(ENDPOINT)
    assert part.interfaces == {TAP1}
    assert Route("172.24.4.10", TAP1) in part.routes
    assert Neighbour("fd5f:5d21:845:1c2e::d", TAP1, "fa:16:3e:28:a9:a4") in part.neighbours
    assert len(part.neighbours) == 3  # fixed IPs only


def test_only_ipv6_gateways_are_proxied_and_never_the_vms_own_address() -> None:
    assert endpoint_state(ENDPOINT).proxies == {Proxy("fd5f:5d21:845:1c2e::1", TAP1)}
    holder = record(ENDPOINT, gateways=["fd5f:5d21:845:1c2e::d", "not an address", "fd00::1"])
    assert proxied_gateways(holder) == ["fd00::1"]
    assert endpoint_state({**ENDPOINT, "gateways": []}).proxies == frozenset()
    assert (
        endpoint_state(record({k: v for k, v in ENDPOINT.items() if k != "gateways"})).proxies
        == set()
    )


def test_a_port_that_is_down_has_nothing_programmed() -> None:
    assert endpoint_state({**ENDPOINT, "admin_state_up": False}) == HostState()
    assert host_state(
        [ENDPOINT, {**ENDPOINT, "interface": TAP2, "admin_state_up": False}]
    ).interfaces == {TAP1}


def test_a_preferred_address_is_routed_at_the_preferred_metric_the_others_ordinary() -> None:
    part = endpoint_state({**ENDPOINT, "preferred": ["10.28.0.23", "bogus"]})
    assert Route("10.28.0.23", TAP1, PREFERRED_METRIC) in part.routes
    assert Route("10.28.0.13", TAP1, ROUTE_METRIC) in part.routes
    assert len(part.routes) == 5  # one route per address, whatever its metric


NOW = 1_767_225_600.0
HOPS = {("node2", 4): "192.168.8.4", ("node2", 6): "fd00:192:168:8::4"}


def old_port(**hint: Any) -> EndpointRecord:
    """The port an address moved out of, as its record says after the move."""
    base = {"generation": 812, "to_port_id": "p2", "to_host": "node2", "moved_at": NOW - 0.5}
    return record(ENDPOINT, moved_out={"10.28.0.41": {**base, **hint}})


def drained(endpoint: EndpointRecord, now: float = NOW) -> list[Drain]:
    return drains(
        endpoint, host="node1", now=now, next_hop=lambda h, v: HOPS.get((h, v), ""),
        drain_time=2.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("hint", "drain_via"),
    [
        ({}, "192.168.8.4"),  # moved to another host, within the drain time: forward there
        ({"moved_at": NOW - 2.0}, None),  # drained: a (re)started agent just programs it
        ({"to_host": "node1"}, None),  # to a tap of this host: a replace, not a drain
        ({"to_host": ""}, None),  # the target port is not bound: nowhere to forward
        ({"to_host": "node9"}, None),  # unknown host: withdraw at once
        ({"moved_at": "yesterday"}, None),  # a hint that makes no sense: ignored
    ],
    ids=["drain", "over", "same-host", "unbound", "unknown-host", "malformed"],
)
def test_drain_decision_table(hint: dict[str, Any], drain_via: str | None) -> None:
    found = drained(old_port(**hint))
    if drain_via is None:
        assert found == []
    else:
        route = Route("10.28.0.41", "", ROUTE_METRIC, drain_via)
        assert found == [Drain("10.28.0.41", 812, NOW + 1.5, route)]


def test_a_drain_uses_the_new_hosts_address_of_the_same_family_or_none() -> None:
    six: EndpointRecord = {
        **ENDPOINT,
        "moved_out": {"fd5f:0:0::41": {"to_host": "node2", "moved_at": NOW}},
    }
    assert [d.route.via for d in drained(six)] == ["fd00:192:168:8::4"]
    no_six = drains(six, host="node1", now=NOW, next_hop=lambda h, v: "192.168.8.4")
    assert no_six == []


def test_an_address_held_again_or_a_clock_ahead_never_drains_long() -> None:
    held = record(ENDPOINT, moved_out={"10.28.0.13": {"to_host": "node2", "moved_at": NOW}})
    assert drained(held) == []  # the record holds it: it is routed to the tap
    assert drained(record(ENDPOINT, moved_out=["10.28.0.41"])) == []  # not hints at all
    ahead = drained(old_port(moved_at=NOW + 60))  # the api's clock is ahead of ours
    assert [d.until for d in ahead] == [NOW + 2.0]
