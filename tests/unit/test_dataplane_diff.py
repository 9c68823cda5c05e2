"""Unit: the dataplane decision table (``dataplane.diff``) and the desired state of
endpoints (``agent.desired``): pure functions, table-tested."""

from __future__ import annotations

import pytest

from routeplane.agent.desired import endpoint_state, host_state, proxied_gateways, routed_addresses
from routeplane.dataplane.diff import diff
from routeplane.dataplane.model import HostState, Link, Neighbour, Proxy, Route

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


ENDPOINT = {
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
    holder = {**ENDPOINT, "gateways": ["fd5f:5d21:845:1c2e::d", "not an address", "fd00::1"]}
    assert proxied_gateways(holder) == ["fd00::1"]
    assert endpoint_state({**ENDPOINT, "gateways": []}).proxies == frozenset()
    assert endpoint_state({k: v for k, v in ENDPOINT.items() if k != "gateways"}).proxies == set()


def test_a_port_that_is_down_has_nothing_programmed() -> None:
    assert endpoint_state({**ENDPOINT, "admin_state_up": False}) == HostState()
    assert host_state(
        [ENDPOINT, {**ENDPOINT, "interface": TAP2, "admin_state_up": False}]
    ).interfaces == {TAP1}
