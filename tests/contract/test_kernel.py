"""Contract: the ``Kernel`` port behaves the same on the in-memory fake and on Linux.

Every test runs twice: against ``FakeKernel`` and against ``LinuxKernel`` in a fresh
``rp-`` namespace (skipped without root). What is checked is what the agent relies on:
plans read back exactly as applied; "up" means administratively up with carrier;
replace semantics (a route is keyed by address and metric; the lowest metric is used;
a route may go via a next hop); one refused operation is reported and the others still happen;
routes and IPv6 proxy entries of other owners are never reported, never deleted, and
survive a sweep; a tap going administratively down loses its routes, neighbours and
proxy entries, one losing carrier keeps them; every link change arrives as an event
that ends in the link's current state; a tap counts the packets its VM sent; sysctls really set; conntrack flushed per
address.
"""

from __future__ import annotations

import time

import pytest

from routeplane.dataplane.diff import diff
from routeplane.dataplane.model import (
    BIRD_METRIC,
    HOST_SYSCTLS,
    PREFERRED_METRIC,
    ROUTE_METRIC,
    HostState,
    LinkEvent,
    Neighbour,
    Plan,
    Proxy,
    Route,
    tap_sysctls,
)
from routeplane.dataplane.ports import Kernel
from tests.contract.kernels import Harness

pytestmark = [pytest.mark.contract, pytest.mark.kernel]

TAP1, TAP2 = "tap9a7e0868-da", "tap7627a298-a2"
MAC1, MAC2 = "02:00:00:00:01:01", "02:00:00:00:02:02"  # the taps' own addresses
VM1, VM2 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"  # the VMs'
GW6 = "2001:db8::1"  # an IPv6 subnet's gateway, proxied on the taps


def ready(h: Harness, *taps: str) -> None:
    """Taps created by the "hypervisor" and configured by the kernel port."""
    for i, tap in enumerate(taps):
        h.add_tap(tap, [MAC1, MAC2][i])
    assert h.kernel.apply(Plan(configure=taps)).ok


def test_a_fresh_kernel_holds_nothing_of_ours(harness: Harness) -> None:
    harness.add_tap(TAP1, MAC1)
    assert harness.kernel.routes() == set()
    assert harness.kernel.neighbours() == set()
    link = harness.kernel.links()[TAP1]
    assert (link.name, link.up, link.mac) == (TAP1, False, MAC1)
    assert link.index > 0


def test_configure_sets_the_sysctls_and_brings_the_tap_up(harness: Harness) -> None:
    harness.add_tap(TAP1, MAC1)
    outcome = harness.kernel.apply(Plan(configure=(TAP1,)))
    assert outcome.ok, outcome.errors
    assert harness.kernel.links()[TAP1].up
    for path, value in tap_sysctls(TAP1):
        assert harness.sysctl(path) == value, path


def test_up_means_carrier_too_but_routes_need_only_admin_up(harness: Harness) -> None:
    ready(harness, TAP1)
    harness.detach_vm(TAP1)
    assert not harness.kernel.links()[TAP1].up
    route = Route("10.28.0.13", TAP1)
    assert harness.kernel.apply(Plan(routes_set=(route,))).ok
    assert harness.kernel.routes() == {route}


def test_routes_and_neighbours_read_back_exactly_as_applied(harness: Harness) -> None:
    ready(harness, TAP1, TAP2)
    desired = HostState(
        interfaces=frozenset({TAP1, TAP2}),
        routes=frozenset(
            {
                Route("10.28.0.13", TAP1),
                Route("10.28.0.23", TAP1),
                Route("2001:db8::13", TAP1),
                Route("10.28.0.14", TAP2),
            }
        ),
        neighbours=frozenset(
            {
                Neighbour("10.28.0.13", TAP1, VM1),
                Neighbour("2001:db8::13", TAP1, VM1),
                Neighbour("10.28.0.14", TAP2, VM2),
            }
        ),
    )
    links = harness.kernel.links()
    plan = diff(desired, links, set(), set(), {TAP1, TAP2}, sweep=True)
    outcome = harness.kernel.apply(plan)
    assert outcome.ok, outcome.errors
    assert harness.kernel.routes() == desired.routes
    assert harness.kernel.neighbours() == desired.neighbours
    again = diff(
        desired,
        harness.kernel.links(),
        harness.kernel.routes(),
        harness.kernel.neighbours(),
        {TAP1, TAP2},
        sweep=True,
    )
    assert again.empty


def test_replace_moves_a_route_and_changes_a_mac(harness: Harness) -> None:
    ready(harness, TAP1, TAP2)
    kernel = harness.kernel
    assert kernel.apply(
        Plan(neighbours_set=(Neighbour("10.28.0.13", TAP1, VM1),), routes_set=(Route("10.28.0.13", TAP1),))
    ).ok  # fmt: skip
    assert kernel.apply(
        Plan(neighbours_set=(Neighbour("10.28.0.13", TAP1, VM2),), routes_set=(Route("10.28.0.13", TAP2),))
    ).ok  # fmt: skip
    assert kernel.routes() == {Route("10.28.0.13", TAP2)}
    assert kernel.neighbours() == {Neighbour("10.28.0.13", TAP1, VM2)}


def test_a_refused_operation_is_reported_and_the_others_still_happen(harness: Harness) -> None:
    ready(harness, TAP1)
    harness.add_tap(TAP2, MAC2)  # administratively down: no route can use it
    good = [Route("10.28.0.13", TAP1), Route("2001:db8::13", TAP1)]
    good_neighbour = Neighbour("10.28.0.13", TAP1, VM1)
    good_proxy = Proxy(GW6, TAP2)  # a proxy entry needs its tap to exist, not to be up
    bad = [
        Route("10.28.0.50", "tapmissing000"),  # no such tap
        Route("10.28.0.51", TAP2),  # tap down
        Route("10.28.0.52", TAP1),  # deleting what is not there
        Neighbour("10.28.0.50", "tapmissing000", VM1),
        Neighbour("10.28.0.52", TAP1, VM1),  # deleting what is not there
        Proxy(GW6, "tapmissing000"),
        Proxy("2001:db8::2", TAP1),  # deleting what is not there
        "tapmissing000",  # configuring a tap that does not exist
    ]
    plan = Plan(
        configure=("tapmissing000",),
        neighbours_set=(Neighbour("10.28.0.50", "tapmissing000", VM1), good_neighbour),
        proxies_set=(Proxy(GW6, "tapmissing000"), good_proxy),
        routes_set=(good[0], Route("10.28.0.50", "tapmissing000"), Route("10.28.0.51", TAP2), good[1]),
        routes_del=(Route("10.28.0.52", TAP1),),
        proxies_del=(Proxy("2001:db8::2", TAP1),),
        neighbours_del=(Neighbour("10.28.0.52", TAP1, VM1),),
    )  # fmt: skip
    outcome = harness.kernel.apply(plan)
    assert sorted(map(str, outcome.failed)) == sorted(map(str, bad))
    assert len(outcome.errors) == len(outcome.failed)
    assert harness.kernel.routes() == set(good)
    assert harness.kernel.neighbours() == {good_neighbour}
    assert harness.kernel.proxies() == {good_proxy}


def test_a_large_plan_is_applied_whole_with_its_one_bad_operation_named(
    harness: Harness,
) -> None:
    """More operations than fit one netlink datagram, a refused one in the middle."""
    ready(harness, TAP1)
    routes = [Route(f"10.28.{i // 250}.{i % 250 + 1}", TAP1) for i in range(700)]
    bad = Route("10.29.0.1", "tapmissing000")
    plan = Plan(routes_set=(*routes[:350], bad, *routes[350:]))
    outcome = harness.kernel.apply(plan)
    assert outcome.failed == [bad]
    assert harness.kernel.routes() == set(routes)
    outcome = harness.kernel.apply(Plan(routes_del=tuple(routes)))
    assert outcome.ok, outcome.errors[:3]
    assert harness.kernel.routes() == set()


def test_refusals_anywhere_in_a_batch_are_each_named(harness: Harness) -> None:
    """The kernel refuses deletes of routes that are not there, at the first and last
    place of a netlink batch and next to its boundaries: each is reported, no other."""
    ready(harness, TAP1)
    routes = [Route(f"10.28.{i // 250}.{i % 250 + 1}", TAP1) for i in range(600)]
    assert harness.kernel.apply(Plan(routes_set=tuple(routes))).ok
    absent = [Route(f"10.30.0.{i}", TAP1) for i in range(1, 5)]
    deletes = [absent[0], *routes[:254], absent[1], absent[2], *routes[254:], absent[3]]
    outcome = harness.kernel.apply(Plan(routes_del=tuple(deletes)))
    assert outcome.failed == absent
    assert harness.kernel.routes() == set()


def test_other_owners_routes_are_invisible_untouchable_and_survive_a_sweep(
    harness: Harness,
) -> None:
    ready(harness, TAP1)
    harness.add_foreign_route("10.99.0.1", TAP1)
    harness.add_foreign_route("2001:db8::99", TAP1)
    assert harness.foreign_routes() == {("10.99.0.1", TAP1, 0), ("2001:db8::99", TAP1, 1024)}
    ours = Route("10.28.0.13", TAP1)
    assert harness.kernel.apply(Plan(routes_set=(ours,))).ok
    assert harness.kernel.routes() == {ours}

    sweep = diff(
        HostState(), harness.kernel.links(), harness.kernel.routes(), set(), set(), sweep=True
    )
    assert sweep.routes_del == (ours,)
    assert harness.kernel.apply(sweep).ok
    # even asked by name, a delete names our protocol and so cannot hit their route
    outcome = harness.kernel.apply(Plan(routes_del=(Route("10.99.0.1", TAP1),)))
    assert outcome.failed == [Route("10.99.0.1", TAP1)]

    assert harness.kernel.routes() == set()
    assert harness.foreign_routes() == {("10.99.0.1", TAP1, 0), ("2001:db8::99", TAP1, 1024)}


def test_replace_takes_over_another_owners_route_with_the_same_address_and_metric(
    harness: Harness,
) -> None:
    ready(harness, TAP1)
    harness.add_foreign_route("10.28.0.13", TAP1, ROUTE_METRIC)
    harness.add_foreign_route("2001:db8::13", TAP1)  # IPv6's default metric is ours
    ours = {Route("10.28.0.13", TAP1), Route("2001:db8::13", TAP1)}
    assert harness.kernel.apply(Plan(routes_set=tuple(sorted(ours)))).ok
    assert harness.kernel.routes() == ours
    assert harness.foreign_routes() == set()


def test_routes_with_other_metrics_stand_beside_ours_and_the_lowest_is_used(
    harness: Harness,
) -> None:
    """BIRD's routes (metric 32) against ours: the preferred metric beats them, the
    ordinary one gives way to them; deleting one route leaves the others."""
    ready(harness, TAP1, TAP2)
    harness.add_foreign_route("10.28.0.13", TAP2, BIRD_METRIC)
    ordinary = Route("10.28.0.13", TAP1)
    assert harness.kernel.apply(Plan(routes_set=(ordinary,))).ok
    assert harness.foreign_routes() == {("10.28.0.13", TAP2, BIRD_METRIC)}
    assert harness.used_route("10.28.0.13") == (TAP2, "")  # theirs: 32 < 1024
    preferred = Route("10.28.0.13", TAP1, PREFERRED_METRIC)
    assert harness.kernel.apply(Plan(routes_set=(preferred,))).ok
    assert harness.kernel.routes() == {ordinary, preferred}  # read back with their metrics
    assert harness.used_route("10.28.0.13") == (TAP1, "")  # ours: 16 < 32
    assert harness.kernel.apply(Plan(routes_del=(ordinary,))).ok
    assert harness.kernel.routes() == {preferred}
    outcome = harness.kernel.apply(Plan(routes_del=(Route("10.28.0.13", TAP1, 99),)))
    assert outcome.failed == [Route("10.28.0.13", TAP1, 99)]  # no route with that metric
    assert harness.foreign_routes() == {("10.28.0.13", TAP2, BIRD_METRIC)}


def test_a_metric_change_planned_by_diff_adds_before_it_deletes(harness: Harness) -> None:
    """Also how an IPv4 route of an older agent (no metric: 0) is brought to ours."""
    ready(harness, TAP1)
    before = (Route("10.28.0.13", TAP1), Route("2001:db8::13", TAP1), Route("10.28.0.14", TAP1, 0))
    assert harness.kernel.apply(Plan(routes_set=before)).ok
    assert harness.kernel.routes() == set(before)
    desired = HostState(
        interfaces=frozenset({TAP1}),
        routes=frozenset(
            {
                Route("10.28.0.13", TAP1, PREFERRED_METRIC),
                Route("2001:db8::13", TAP1),
                Route("10.28.0.14", TAP1),
            }
        ),
    )
    links = harness.kernel.links()
    plan = diff(desired, links, harness.kernel.routes(), set(), {TAP1}, sweep=False)
    assert plan.routes_set == (
        Route("10.28.0.13", TAP1, PREFERRED_METRIC),
        Route("10.28.0.14", TAP1),
    )
    assert plan.routes_del == (Route("10.28.0.13", TAP1), before[2])  # after the adds
    assert harness.kernel.apply(plan).ok
    assert harness.kernel.routes() == desired.routes
    assert diff(desired, links, harness.kernel.routes(), set(), {TAP1}, sweep=True).empty


def test_a_route_via_a_next_hop_replaces_the_tap_route_and_reads_back(harness: Harness) -> None:
    """A draining address: its tap route becomes a route to the new host, in one
    replace (same address, same metric), and goes when deleted by its next hop."""
    ready(harness, TAP1)
    harness.add_fabric()
    tap_routes = (Route("10.28.0.23", TAP1), Route("2001:db8::23", TAP1))
    assert harness.kernel.apply(Plan(routes_set=tap_routes)).ok
    drains = (
        Route("10.28.0.23", "", ROUTE_METRIC, "192.168.8.4"),
        Route("2001:db8::23", "", ROUTE_METRIC, "fd00:192:168:8::4"),
    )
    assert harness.kernel.apply(Plan(routes_set=drains)).ok
    assert harness.kernel.routes() == set(drains)
    assert harness.used_route("10.28.0.23") == ("fabric0", "192.168.8.4")
    assert harness.used_route("2001:db8::23") == ("fabric0", "fd00:192:168:8::4")
    off_link = Route("10.28.0.24", "", ROUTE_METRIC, "192.168.9.4")
    assert harness.kernel.apply(Plan(routes_set=(off_link,))).failed == [off_link]
    # a delete names the next hop: the tap route it replaced is not there to delete
    assert harness.kernel.apply(Plan(routes_del=tap_routes[:1])).failed == [tap_routes[0]]
    assert harness.kernel.apply(Plan(routes_del=drains)).ok
    assert harness.kernel.routes() == set()


def test_a_tap_going_down_loses_its_routes_neighbours_and_proxies(harness: Harness) -> None:
    ready(harness, TAP1, TAP2)
    plan = Plan(
        neighbours_set=(Neighbour("10.28.0.13", TAP1, VM1), Neighbour("10.28.0.14", TAP2, VM2)),
        proxies_set=(Proxy(GW6, TAP1), Proxy(GW6, TAP2)),
        routes_set=(Route("10.28.0.13", TAP1), Route("2001:db8::13", TAP1), Route("10.28.0.14", TAP2)),
    )  # fmt: skip
    assert harness.kernel.apply(plan).ok
    harness.set_down(TAP1)
    link = harness.kernel.links()[TAP1]
    assert (link.up, link.admin_up) == (False, False)
    assert harness.kernel.routes() == {Route("10.28.0.14", TAP2)}
    assert harness.kernel.neighbours() == {Neighbour("10.28.0.14", TAP2, VM2)}
    assert harness.kernel.proxies() == {Proxy(GW6, TAP2)}


def test_a_tap_losing_carrier_keeps_everything(harness: Harness) -> None:
    ready(harness, TAP1)
    plan = Plan(
        neighbours_set=(Neighbour("2001:db8::13", TAP1, VM1),),
        proxies_set=(Proxy(GW6, TAP1),),
        routes_set=(Route("2001:db8::13", TAP1),),
    )
    assert harness.kernel.apply(plan).ok
    harness.detach_vm(TAP1)
    link = harness.kernel.links()[TAP1]
    assert (link.up, link.admin_up) == (False, True)
    assert harness.kernel.routes() == set(plan.routes_set)
    assert harness.kernel.neighbours() == set(plan.neighbours_set)
    assert harness.kernel.proxies() == set(plan.proxies_set)


def test_proxies_read_back_exactly_as_applied_and_are_swept(harness: Harness) -> None:
    ready(harness, TAP1, TAP2)
    proxies = {Proxy(GW6, TAP1), Proxy("fd5f:5d21:845:1c2e::1", TAP1), Proxy(GW6, TAP2)}
    desired = HostState(interfaces=frozenset({TAP1, TAP2}), proxies=frozenset(proxies))
    links = harness.kernel.links()
    plan = diff(desired, links, set(), set(), {TAP1, TAP2}, sweep=True)
    assert set(plan.proxies_set) == proxies
    assert harness.kernel.apply(plan).ok
    assert harness.kernel.proxies() == proxies
    assert harness.kernel.apply(Plan(proxies_set=tuple(proxies))).ok  # a replace: no error
    read = harness.kernel.proxies()
    assert diff(desired, links, set(), set(), {TAP1, TAP2}, sweep=True, proxies=read).empty
    gone = HostState(interfaces=frozenset({TAP1, TAP2}))
    sweep = diff(gone, links, set(), set(), {TAP1, TAP2}, sweep=True, proxies=read)
    assert set(sweep.proxies_del) == proxies
    assert harness.kernel.apply(sweep).ok
    assert harness.kernel.proxies() == set()


def test_other_owners_proxy_entries_are_invisible_and_survive_a_sweep(harness: Harness) -> None:
    ready(harness, TAP1)
    harness.add_foreign_proxy("2001:db8::99", TAP1)
    harness.add_foreign_proxy("10.28.0.1", TAP1)
    ours = Proxy(GW6, TAP1)
    assert harness.kernel.apply(Plan(proxies_set=(ours,))).ok
    assert harness.kernel.proxies() == {ours}
    sweep = diff(
        HostState(), harness.kernel.links(), set(), set(), set(), sweep=True,
        proxies=harness.kernel.proxies(),
    )  # fmt: skip
    assert sweep.proxies_del == (ours,)
    assert harness.kernel.apply(sweep).ok
    assert harness.kernel.proxies() == set()
    assert harness.foreign_proxies() == {("2001:db8::99", TAP1), ("10.28.0.1", TAP1)}


def settled_events(kernel: Kernel, name: str, timeout: float = 3.0) -> list[LinkEvent]:
    """Events until the last one about ``name`` tells its current state (the kernel may
    report a change in several messages, some a moment later: carrier comes from a
    work queue)."""
    events: list[LinkEvent] = []
    deadline = time.monotonic() + timeout
    while True:
        news = kernel.link_events()
        assert news is not None, "link events lost"
        events += news
        mine = [e for e in events if e.name == name]
        if mine and mine[-1].link == kernel.links().get(name):
            return mine
        assert time.monotonic() < deadline, f"no event ends in the state of {name}: {mine}"
        time.sleep(0.02)


def test_link_changes_arrive_as_events_ending_in_the_current_state(harness: Harness) -> None:
    kernel = harness.kernel
    assert kernel.link_events() is not None  # whatever came before: drained
    assert kernel.link_events() == []  # nothing happened since
    harness.add_tap(TAP1, MAC1)
    created = settled_events(kernel, TAP1)[-1].link
    assert created is not None
    assert (created.up, created.admin_up, created.mac) == (False, False, MAC1)

    assert kernel.apply(Plan(configure=(TAP1,))).ok  # the agent's own change is news too
    up = settled_events(kernel, TAP1)[-1].link
    assert up is not None
    assert (up.up, up.admin_up) == (True, True)

    harness.detach_vm(TAP1)
    lost = settled_events(kernel, TAP1)[-1].link
    assert lost is not None
    assert (lost.up, lost.admin_up) == (False, True)

    harness.delete_tap(TAP1)
    assert settled_events(kernel, TAP1)[-1].link is None

    harness.add_tap(TAP1, MAC1)  # a rebooted VM's new tap, under the same name
    again = settled_events(kernel, TAP1)[-1].link
    assert again is not None
    assert again.index != created.index


def test_received_counts_what_the_vm_sends_and_none_without_the_tap(harness: Harness) -> None:
    ready(harness, TAP1)
    before = harness.kernel.received(TAP1)
    assert before is not None
    harness.vm_sends(TAP1, 3)
    after = harness.kernel.received(TAP1)
    assert after is not None
    assert after >= before + 3  # Linux: a VM's own IPv6 chatter may add to it
    assert harness.kernel.received("tapmissing0-00") is None


def test_prepare_host_turns_forwarding_on(harness: Harness) -> None:
    outcome = harness.kernel.prepare_host()
    assert outcome.ok, outcome.errors
    for path, value in HOST_SYSCTLS:
        assert harness.sysctl(path) == value, path


def test_flush_conntrack_forgets_the_address_and_nothing_else(harness: Harness) -> None:
    harness.add_conntrack("10.28.0.13", "10.28.0.99")  # from the address
    harness.add_conntrack("10.28.0.98", "10.28.0.13")  # to it
    harness.add_conntrack("10.28.0.14", "10.28.0.99")  # someone else's
    harness.add_conntrack("2001:db8::13", "2001:db8::99")
    assert len(harness.conntrack()) == 4
    outcome = harness.kernel.flush_conntrack(["10.28.0.13", "2001:db8::13", "10.28.0.77"])
    assert outcome.ok, outcome.errors
    assert harness.conntrack() == {("10.28.0.14", "10.28.0.99")}
