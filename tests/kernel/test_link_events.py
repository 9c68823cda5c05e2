"""Link events against a real kernel: a tap that is recreated (a rebooted VM), that
appears after its port was bound, or whose VM end comes back is seen at once.

The agent's pending retry and periodic resync are set an hour away, so only the netlink
link events can bring the routes back within the second these tests allow.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from routeplane.lab.netns import exec_in, ip
from tests.kernel.vmlab import Lab, dual_stack_lab, pings, routes, wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

VM1 = ["10.28.0.13", "fd5f:5d21:845:1c2e::d"]
VM2 = ["10.28.0.14", "fd5f:5d21:845:1c2e::e"]
QUICK = 1.0  # seconds: what the events must achieve, far below the pending retry
SLOW = {"pending_interval": 3600.0, "resync_interval": 3600.0}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with dual_stack_lab(tmp_path) as the_lab:
        yield the_lab


def routed(lab: Lab, addresses: list[str]) -> bool:
    host = lab.hosts["node1"]
    return all("proto 77" in routes(host, a) for a in addresses)


def test_a_recreated_tap_is_configured_and_routed_again_within_a_second(lab: Lab) -> None:
    lab.start_agent("node1", policy=True, **SLOW)
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    vm2, p2 = lab.boot("vm2", "node1", VM2)
    wait_for(lambda: lab.active("node1", p1) and lab.active("node1", p2), what="programmed")
    h1, tap = lab.hosts["node1"], "tap" + p1["id"][:11]

    ip(h1, "link", "del", tap)  # the VM reboots: its tap (and its eth0) go away
    wait_for(lambda: not lab.active("node1", p1), timeout=QUICK, what="status withdrawn")
    assert routes(h1, VM1[0]) == ""
    started = time.monotonic()
    lab.plug(vm1, "node1", p1)  # ... and the hypervisor makes a new one, sysctls at defaults
    wait_for(lambda: routed(lab, VM1), timeout=QUICK, what="routes back on the new tap")
    took = time.monotonic() - started
    wait_for(lambda: lab.active("node1", p1), timeout=QUICK, what="reported programmed again")
    assert exec_in(h1, "cat", f"/proc/sys/net/ipv4/conf/{tap}/proxy_arp").strip() == "1"
    proxies = ip(h1, "-6", "neigh", "show", "proxy", "dev", tap)
    assert lab.gateway6 in proxies, proxies
    print(f"routes back {took * 1000:.0f} ms after the tap was recreated")

    for address in VM1:  # the rebooted VM configures its new eth0
        lab.add_address(vm1, address)
    ip(vm1, "-4", "route", "add", "default", "dev", "eth0")
    ip(vm1, "-6", "route", "add", "default", "via", lab.gateway6, "dev", "eth0", "onlink")
    wait_for(lambda: pings(vm2, VM1[0]) and pings(vm2, VM1[1]), what="the VM reachable again")


def test_a_tap_that_appears_after_its_port_is_routed_within_a_second(lab: Lab) -> None:
    lab.start_agent("node1", policy=True, **SLOW)
    port = lab.create(
        "ports",
        {"network_id": lab.net, "binding:host_id": "node1", "fixed_ips": lab.fixed_ips(VM1)},
    )
    vm = lab.cleanup.namespace("vm1")
    time.sleep(0.5)  # the agent has seen the port, and no tap
    assert not lab.active("node1", port)
    started = time.monotonic()
    lab.plug(vm, "node1", port)  # the VM boots
    wait_for(lambda: routed(lab, VM1), timeout=QUICK, what="routes on the new tap")
    print(f"routed {(time.monotonic() - started) * 1000:.0f} ms after the tap appeared")


def test_a_tap_whose_vm_end_comes_back_is_routed_again_within_a_second(lab: Lab) -> None:
    lab.start_agent("node1", policy=True, **SLOW)
    vm1, p1 = lab.boot("vm1", "node1", VM1)
    wait_for(lambda: lab.active("node1", p1), what="programmed")
    ip(vm1, "link", "set", "eth0", "down")  # the tap loses carrier: no route to a dead VM
    wait_for(lambda: routes(lab.hosts["node1"], VM1[0]) == "", timeout=QUICK, what="unrouted")
    ip(vm1, "link", "set", "eth0", "up")
    wait_for(lambda: routed(lab, VM1), timeout=QUICK, what="routes back with carrier")
