"""Unit: what only the fake kernel has — failure injection, the action log, links that
vanish, a link-event queue that overflows, the route it would use — and the lab's refusal to touch namespaces
that are not ``rp-…``.

The behaviour shared with Linux is checked by ``tests/contract/test_kernel.py``.
"""

from __future__ import annotations

import pytest

from routeplane.dataplane.fake import FakeKernel, FakeRoute
from routeplane.dataplane.model import ROUTE_PROTO, Neighbour, Plan, Proxy, Route, tap_sysctls
from routeplane.lab import netns

pytestmark = pytest.mark.unit

TAP = "tap9a7e0868-da"
MAC = "fa:16:3e:00:00:01"


def configured() -> FakeKernel:
    kernel = FakeKernel()
    kernel.add_link(TAP, up=False, mac="02:00:00:00:00:01")
    assert kernel.apply(Plan(configure=(TAP,))).ok
    return kernel


def test_fail_next_fails_that_many_operations_of_one_step_then_recovers() -> None:
    kernel = configured()
    kernel.fail_next("routes_set", count=2)
    routes = tuple(Route(f"10.0.0.{i}", TAP) for i in range(1, 4))
    outcome = kernel.apply(
        Plan(routes_set=routes, neighbours_set=(Neighbour("10.0.0.1", TAP, MAC),))
    )
    assert outcome.failed == list(routes[:2])
    assert all("injected" in error for error in outcome.errors)
    assert kernel.routes() == {routes[2]}
    assert kernel.apply(Plan(routes_set=routes[:2])).ok


def test_broken_keys_fail_until_repaired() -> None:
    kernel = configured()
    kernel.broken.add("10.0.0.9")
    route = Route("10.0.0.9", TAP)
    assert kernel.apply(Plan(routes_set=(route,))).failed == [route]
    assert kernel.apply(Plan(routes_set=(route,))).failed == [route]
    kernel.broken.clear()
    assert kernel.apply(Plan(routes_set=(route,))).ok


def test_the_action_log_lists_successful_changes_in_plan_order() -> None:
    kernel = configured()
    neighbour = Neighbour("10.0.0.1", TAP, MAC)
    route = Route("10.0.0.1", TAP)
    kernel.apply(Plan(neighbours_set=(neighbour,), routes_set=(route,)))
    kernel.apply(Plan(routes_del=(route, Route("10.0.0.2", TAP)), neighbours_del=(neighbour,)))
    assert kernel.actions == [
        ("configure", TAP),
        ("neighbours_set", neighbour),
        ("routes_set", route),
        ("routes_del", route),
        ("neighbours_del", neighbour),
    ]


def test_a_deleted_tap_takes_its_routes_neighbours_and_sysctls_with_it() -> None:
    kernel = configured()
    index = kernel.links()[TAP].index
    kernel.apply(
        Plan(
            neighbours_set=(Neighbour("10.0.0.1", TAP, MAC),), routes_set=(Route("10.0.0.1", TAP),)
        )
    )
    kernel.del_link(TAP)
    assert (kernel.routes(), kernel.neighbours(), kernel.configured) == (set(), set(), set())
    assert not any(path in kernel.sysctls for path, _ in tap_sysctls(TAP))
    kernel.add_link(TAP, up=False)
    assert kernel.links()[TAP].index != index  # a new tap under the old name


def test_a_deleted_tap_takes_its_proxy_entries_with_it() -> None:
    kernel = configured()
    assert kernel.apply(Plan(proxies_set=(Proxy("2001:db8::1", TAP),))).ok
    kernel.del_link(TAP)
    kernel.add_link(TAP, up=True)
    assert kernel.proxies() == set()


def test_link_events_tell_each_change_once_and_in_order() -> None:
    kernel = FakeKernel()
    kernel.add_link(TAP, up=False, mac="02:00:00:00:00:01")
    kernel.set_link(TAP, carrier=True)  # no change: no event
    kernel.apply(Plan(configure=(TAP,)))
    kernel.set_link(TAP, carrier=False)
    kernel.del_link(TAP)
    events = kernel.link_events()
    assert events is not None
    states = [None if e.link is None else (e.link.up, e.link.admin_up) for e in events]
    assert states == [(False, False), (True, True), (False, True), None]
    assert kernel.link_events() == []


def test_unread_link_events_overflow_like_a_socket_and_say_so_once() -> None:
    kernel = FakeKernel(event_capacity=2)
    for i in range(3):
        kernel.add_link(f"tap{i}", up=True)
    assert kernel.link_events() is None  # some were lost: read every link again
    kernel.del_link("tap0")
    events = kernel.link_events()
    assert events is not None
    assert [e.name for e in events] == ["tap0"]


def test_malformed_operations_are_reported_not_raised() -> None:
    kernel = configured()
    bad_route = Route("10.0.0.300", TAP)
    bad_neighbour = Neighbour("10.0.0.1", TAP, "not-a-mac")
    outcome = kernel.apply(Plan(neighbours_set=(bad_neighbour,), routes_set=(bad_route,)))
    assert outcome.failed == [bad_neighbour, bad_route]
    outcome = kernel.flush_conntrack(["nonsense"])
    assert outcome.failed == ["nonsense"]


def test_prepare_host_and_conntrack_flushes_are_recorded() -> None:
    kernel = FakeKernel()
    before = kernel.forwarding
    assert kernel.prepare_host().ok
    assert (before, kernel.forwarding) == (False, True)
    kernel.add_conntrack("10.0.0.1", "10.0.0.2")
    kernel.fail_next("flush_conntrack")
    assert kernel.flush_conntrack(["10.0.0.1"]).failed == ["10.0.0.1"]
    assert kernel.flush_conntrack(["10.0.0.1"]).ok
    assert kernel.conntrack == set()
    assert kernel.conntrack_flushes == ["10.0.0.1"]


@pytest.mark.parametrize("name", ["test", "default", "", "rp", "r-p-x", "../rp-x", "rp-a/b"])
def test_the_lab_refuses_namespaces_that_are_not_its_own(name: str) -> None:
    with pytest.raises(ValueError, match="rp-"):
        netns.check(name)


def test_lab_namespace_names_are_fresh_and_prefixed() -> None:
    names = {netns.unique_name("unit") for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith("rp-unit-") for name in names)


def test_routes_are_keyed_by_address_and_metric_and_the_lowest_is_used() -> None:
    kernel = configured()
    kernel.add_link("fabric0", up=True)
    kernel.add_network("192.168.8.3/24", "fabric0")
    kernel.add_route("10.0.0.9", "fabric0", 12, 32, via="192.168.8.4")  # BIRD's
    assert kernel.apply(Plan(routes_set=(Route("10.0.0.9", TAP),))).ok
    assert kernel.route_to("10.0.0.9") == FakeRoute("10.0.0.9", "fabric0", 12, 32, "192.168.8.4")
    assert kernel.apply(Plan(routes_set=(Route("10.0.0.9", TAP, 16),))).ok
    assert kernel.route_to("10.0.0.9") == FakeRoute("10.0.0.9", TAP, ROUTE_PROTO, 16)
    kernel.add_route("10.0.0.10", TAP, 4)
    kernel.add_route("2001:db8::10", TAP, 4)
    assert {(r.address, r.metric) for r in kernel.all_routes.values() if r.protocol == 4} == {
        ("10.0.0.10", 0), ("2001:db8::10", 1024),  # Linux's defaults
    }  # fmt: skip


def test_a_route_via_a_next_hop_goes_with_the_link_it_leaves_by() -> None:
    kernel = configured()
    kernel.add_link("fabric0", up=True)
    kernel.add_network("192.168.8.3/24", "fabric0")
    drain = Route("10.0.0.9", "", 1024, "192.168.8.4")
    assert kernel.apply(Plan(routes_set=(drain,))).ok
    assert kernel.routes() == {drain}
    kernel.set_link("fabric0", up=False)
    assert kernel.routes() == set()
    assert kernel.apply(Plan(routes_set=(drain,))).failed == [drain]  # no up link reaches it
