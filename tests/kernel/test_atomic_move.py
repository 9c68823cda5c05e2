"""The atomic move under a continuous prober: make before break, for real.

The BGP fabric of ``test_bgp`` (the access node and two hosts running agents with
policy and BIRD): testvm1 on node1, testvm2 on node2, both holding the service address
10.28.0.23 on ``eth0`` (a guest's part, done by hand here), so only the network decides
which of them a packet reaches. The address is testvm1's port's; the access node probes
it 250 times a second, and holds one long-lived connection to testvm1. Then the address
moves to testvm2's port in one call (``services.fixed_ip_moves``, the service behind
``PUT /v2.0/ports/{id}/move_fixed_ip``).

What a user would notice, asserted: once testvm2 has answered, testvm1 never answers
again (no flapping, never two VMs at once); testvm1 is fenced (what it sends from the
address stops getting out) and its open connection is cut; the access node never routes
the address over two paths; node1 forwards the address to node2 while it drains, then
withdraws it. The no-answer window and the fence's delay are measured and printed.
"""

from __future__ import annotations

import threading
import time

from routeplane.lab.netns import ip
from routeplane.services.attributes import check_create
from routeplane.services.context import ADMIN
from tests.kernel.prober import SENDER, Datagrams, Echo, Prober
from tests.kernel.test_bgp import (  # noqa: F401  (``fabric``: the fixture)
    CONVERGED,
    HOSTS,
    Fabric,
    fabric,
)
from tests.kernel.vmlab import routes
from tests.waiting import wait_for

SERVICE = "10.28.0.23"
V6 = {"testvm1": "fd5f:5d21:845:1c2e:2::d", "testvm2": "fd5f:5d21:845:1c2e:2::e"}


def service_group(the: Fabric) -> str:
    """A group admitting the access node to ssh (22) and echo (7), as the walkthrough's."""
    services = the.lab.services
    group = services.security_groups.create(
        ADMIN, check_create(services.security_groups.attrs, {"name": "svc"}, is_admin=True)
    )
    for port in (22, 7):
        rule = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
                "port_range_min": port, "port_range_max": port,
                "remote_ip_prefix": "192.168.8.1/32"}  # fmt: skip
        services.security_group_rules.create(
            ADMIN, check_create(services.security_group_rules.attrs, rule, is_admin=True)
        )
    return str(group["id"])


class RouteWatch:
    """``ip route show <address>`` in a namespace every few milliseconds, in a thread:
    every distinct answer seen, so a multipath route cannot slip by unseen."""

    def __init__(self, namespace: str, address: str) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(namespace, address))
        self._thread.start()

    def _run(self, namespace: str, address: str) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.seen.add(routes(namespace, address))
            time.sleep(0.005)

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.seen


def test_an_atomic_move_under_a_prober_never_answers_from_two_vms(
    fabric: Fabric,  # noqa: F811  (the fixture, imported above)
) -> None:
    for host in HOSTS:
        fabric.start_agent(host, policy=True)
    group = service_group(fabric)
    vm1, port1 = fabric.boot("testvm1", "node1", "10.28.0.13", V6["testvm1"], [group])
    vm2, port2 = fabric.boot("testvm2", "node2", "10.28.0.14", V6["testvm2"], [group])
    for vm in (vm1, vm2):
        ip(vm, "addr", "add", f"{SERVICE}/16", "dev", "eth0")
    fabric.set_fixed_ips(port1, ["10.28.0.13", V6["testvm1"], SERVICE])
    fabric.lab.serve_echo(vm1)

    prober = Prober(fabric.access, SERVICE)
    datagrams = Datagrams(fabric.access, 9999)  # what testvm1 sends from the address
    fabric.lab.spawn(vm1, "python3", "-c", SENDER, SERVICE, "192.168.8.1", "9999", "30")
    echo: Echo | None = None
    watch: RouteWatch | None = None
    try:
        wait_for(
            lambda: prober.first("testvm1") is not None, timeout=CONVERGED, what="testvm1 answering"
        )
        echo = Echo(fabric.access, SERVICE)
        wait_for(
            lambda: len(echo.echoes()) >= 5,
            timeout=CONVERGED,
            what="the echo connection to testvm1",
        )
        wait_for(
            lambda: bool(datagrams.arrivals(SERVICE)), timeout=CONVERGED, what="testvm1's datagrams"
        )
        time.sleep(0.5)
        watch = RouteWatch(fabric.access, SERVICE)
        body = {"ip_address": SERVICE, "from_port_id": port1["id"]}
        fabric.lab.services.fixed_ip_moves.move(ADMIN, port2["id"], body)
        returned = time.monotonic()

        wait_for(lambda: prober.first("testvm2") is not None, timeout=5, what="testvm2")
        node1 = fabric.hosts["node1"]
        draining = routes(node1, SERVICE)
        time.sleep(max(0.0, returned + 3.0 - time.monotonic()))  # past the drain time (2 s)
        drained = routes(node1, SERVICE)
        seen = watch.stop()
    finally:
        prober.stop()
        datagrams.stop()
        if echo is not None:
            echo.stop()
        if watch is not None:
            watch.stop()

    answers = prober.answers()
    first_new = min(s for s, _, n in answers if n == "testvm2")
    last_old = max(s for s, _, n in answers if n == "testvm1")
    during = [a for a in answers if returned - 1.0 <= a[0] <= returned + 3.0]
    rate = len(during) / 4.0
    last_answered = max(s for s, _, n in answers if n != "-" and s < first_new)
    window = first_new - last_answered
    fenced = max(datagrams.arrivals(SERVICE))  # the last datagram from testvm1 let out
    print(
        f"\natomic move: {rate:.0f} connects/s; testvm2 first answered a connect started "
        f"{(first_new - returned) * 1000:.1f} ms after the API returned; no-answer window "
        f"{window * 1000:.1f} ms; unanswered connects in it: "
        f"{sum(1 for s, _, n in answers if last_answered < s < first_new)}; testvm1's "
        f"last datagram from the address got out {(fenced - returned) * 1000:.1f} ms after it"
    )
    # 100 connects/s: the order of answers is still seen within 10 ms on a busy machine
    assert rate >= 100, f"the prober managed only {rate:.0f} connects/s"
    # never two VMs: no answer from testvm1 to a connect started after testvm2's first
    assert last_old < first_new, "testvm1 answered after testvm2 had"
    assert all(n == "testvm2" for s, _, n in answers if s > first_new and n != "-")
    # fenced at once (the same round as node1's route change; the figure is printed):
    # nothing testvm1 sends from the address gets out any more, while it keeps sending
    assert fenced - returned < 0.5, "testvm1 still sends from the address"
    # its open connection died with the move
    assert echo.closed() is not None, "testvm1's connection survived the move"
    assert max(echo.echoes()) - returned < 0.5
    # everything after the first answer from testvm2 is answered by it
    after = [n for s, _, n in answers if first_new <= s <= returned + 2.5]
    assert after.count("-") <= 0.02 * len(after), "connects lost after the switch"
    assert window < 0.5, f"no-answer window {window * 1000:.0f} ms"
    # the access node: one path at any moment, ending at node2
    assert not [r for r in seen if "nexthop" in r], seen
    assert routes(fabric.access, SERVICE).startswith(f"{SERVICE} via 192.168.8.4")
    # node1 forwarded to node2 while it drained (its own route, beside BIRD's once BIRD had
    # heard of node2's), never to testvm1's tap; then only BIRD's route was left
    assert "dev tap" not in draining, draining
    assert "via 192.168.8.4 dev fabric0 proto 77 metric 1024" in draining, draining
    assert "proto 77" not in drained, drained
    assert "proto bird" in drained, drained
