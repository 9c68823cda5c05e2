"""BGP for real: agents configure BIRD in host namespaces, routes cross the fabric.

A fabric namespace holds a bridge (192.168.8.0/24 and fd00:192:168:8::/64); the access
node (.1) and two compute hosts (node1 .3, node2 .4) hang off it, each in its own ``rp-``
namespace. Each host's agent runs with a ``BgpSpeaker`` that starts and configures that
host's BIRD; the access node's BIRD is configured once with ``access_config``. VMs are
namespaces on the hosts' taps, with a tiny service on port 22 that answers their name.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.bgp import BgpSettings, BgpSpeaker
from routeplane.bgp.bird import Bird
from routeplane.bgp.render import access_config
from routeplane.lab.netns import Cleanup, add_veth, exec_in, ip
from tests.kernel.vmlab import Lab, network_on, routes
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], 22), timeout=1)
    print(c.recv(100).decode().strip())
except OSError as e:
    print("error", e)
"""
HOSTS = {"node1": 3, "node2": 4}
CONVERGED = 15.0  # seconds BGP may take to settle anything


@dataclass
class Fabric:
    """``vmlab``'s network and VMs on a bridged fabric with an access node and BGP."""

    lab: Lab
    tmp: Path
    fabric: str
    access: str

    @property
    def hosts(self) -> dict[str, str]:
        return self.lab.hosts

    def bird(self, host: str) -> Bird:
        return Bird(self.tmp / host, self.hosts[host])

    def start_agent(self, host: str, *, policy: bool = False) -> None:
        """The host's agent (in a thread), with a speaker that starts and configures the
        host's BIRD."""
        n = HOSTS[host]
        bgp = BgpSettings(
            address=f"192.168.8.{n}",
            address6=f"fd00:192:168:8::{n}",
            peers=("192.168.8.1",),
            check_interval=0.2,
            log_path=str(self.tmp / host / "bird.log"),
        )
        store = self.lab.store
        self.lab.speakers[host] = BgpSpeaker(store, self.bird(host), host, bgp, time.monotonic)
        settings = {"bgp_address": bgp.address, "bgp_address6": bgp.address6}
        self.lab.start_agent(host, policy=policy, **settings)

    def boot(
        self, name: str, host: str, v4: str, v6: str, groups: list[str] | None = None
    ) -> tuple[str, dict[str, Any]]:
        return self.lab.boot(name, host, [v4, v6], groups)

    def set_fixed_ips(self, port: dict[str, Any], addresses: list[str]) -> None:
        self.lab.set_fixed_ips(port, addresses)


def learned(namespace: str, address: str) -> Callable[[], bool]:
    """A check: ``address`` is routed in ``namespace`` by BIRD (from a peer)."""
    return lambda: "proto bird" in routes(namespace, address)


def bfd_up(bird: Bird) -> str:
    """The lines of ``show bfd sessions`` that are up."""
    return "\n".join(
        line for line in bird.birdc("show", "bfd", "sessions").splitlines() if " Up " in line
    )


def answer(namespace: str, address: str) -> str:
    return exec_in(namespace, "python3", "-c", CLIENT, address, check_rc=False).strip()


@pytest.fixture
def fabric(tmp_path: Path) -> Iterator[Fabric]:
    with Cleanup() as cleanup:
        fab, access = cleanup.namespace("fabric"), cleanup.namespace("access")
        ip(fab, "link", "add", "br0", "type", "bridge")
        ip(fab, "link", "set", "br0", "up")
        hosts = {name: cleanup.namespace(name) for name in HOSTS}
        for ns, n in [(access, 1), *((hosts[h], n) for h, n in HOSTS.items())]:
            port = f"p{n}"
            add_veth(fab, port, ns, "fabric0", up=True)
            ip(fab, "link", "set", port, "master", "br0")
            ip(ns, "addr", "add", f"192.168.8.{n}/24", "dev", "fabric0")
            ip(ns, "addr", "add", f"fd00:192:168:8::{n}/64", "dev", "fabric0", "nodad")
            if n != 1:  # hosts route the world through the access node (and so proxy ARP)
                ip(ns, "route", "add", "default", "via", "192.168.8.1")
                ip(ns, "-6", "route", "add", "default", "via", "fd00:192:168:8::1")
        access_bird = Bird(tmp_path / "access", access)
        cleanup.add("stop the access node's BIRD", access_bird.stop)
        for host in HOSTS:
            cleanup.add(f"stop {host}'s BIRD", Bird(tmp_path / host, hosts[host]).stop)
        access_bird.apply(access_config("192.168.8.1", 64512, ["192.168.8.0/24"]))
        with network_on(cleanup, tmp_path, hosts) as lab:
            yield Fabric(lab, tmp_path, fab, access)


V6_VM1 = "fd5f:5d21:845:1c2e:2::d"


def up_with_testvm1(fabric: Fabric) -> list[str]:
    """Both agents running, testvm1 booted on node1, its route learned by the access node
    and node2 (returned: their namespaces)."""
    for host in HOSTS:
        fabric.start_agent(host)
    fabric.boot("testvm1", "node1", "10.28.0.13", V6_VM1)
    peers = [fabric.access, fabric.hosts["node2"]]
    for ns in peers:
        wait_for(learned(ns, "10.28.0.13"), timeout=CONVERGED, what=f"the v4 route in {ns}")
    return peers


def test_vm_routes_reach_the_peer_host_and_the_access_node(fabric: Fabric) -> None:
    for ns in up_with_testvm1(fabric):
        assert routes(ns, "10.28.0.13").startswith(
            "10.28.0.13 via 192.168.8.3 dev fabric0 proto bird"
        )
        wait_for(learned(ns, V6_VM1), timeout=CONVERGED, what="the v6 route")
        assert routes(ns, V6_VM1).startswith(
            f"{V6_VM1} via fd00:192:168:8::3 dev fabric0 proto bird"
        )
    assert routes(fabric.hosts["node1"], "10.28.0.13").startswith("10.28.0.13 dev tap")
    assert answer(fabric.access, "10.28.0.13") == "testvm1"
    wait_for(
        lambda: answer(fabric.access, V6_VM1) == "testvm1", timeout=CONVERGED, what="an IPv6 answer"
    )


def test_a_service_ip_follows_its_port_from_host_to_host(fabric: Fabric) -> None:
    for host in HOSTS:
        fabric.start_agent(host)
    vm1, port1 = fabric.boot("testvm1", "node1", "10.28.0.13", V6_VM1)
    vm2, port2 = fabric.boot("testvm2", "node2", "10.28.0.14", "fd5f:5d21:845:1c2e:2::e")
    fabric.set_fixed_ips(port1, ["10.28.0.13", V6_VM1, "10.28.0.23"])
    ip(vm1, "addr", "add", "10.28.0.23/16", "dev", "eth0")
    wait_for(
        lambda: answer(fabric.access, "10.28.0.23") == "testvm1", timeout=CONVERGED, what="testvm1"
    )
    assert "via 192.168.8.3" in routes(fabric.access, "10.28.0.23")

    fabric.set_fixed_ips(port1, ["10.28.0.13", V6_VM1])
    fabric.set_fixed_ips(port2, ["10.28.0.14", "fd5f:5d21:845:1c2e:2::e", "10.28.0.23"])
    ip(vm2, "addr", "add", "10.28.0.23/16", "dev", "eth0")
    moved = "10.28.0.23 via 192.168.8.4"  # one path: node1 has withdrawn (no ECMP pair)
    wait_for(
        lambda: routes(fabric.access, "10.28.0.23").startswith(moved),
        timeout=CONVERGED,
        what="the move",
    )
    assert answer(fabric.access, "10.28.0.23") == "testvm2"
    wait_for(
        lambda: routes(fabric.hosts["node1"], "10.28.0.23").startswith(
            "10.28.0.23 via 192.168.8.4"
        ),
        timeout=CONVERGED,
        what="node1 learning the new route",
    )


def test_a_killed_bird_is_restarted_and_every_route_comes_back(fabric: Fabric) -> None:
    up_with_testvm1(fabric)
    bird = fabric.bird("node1")
    old = bird.pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: bird.pid() not in (None, old), timeout=CONVERGED, what="a new BIRD on node1")
    wait_for(
        lambda: "Established" in bird.birdc("show", "protocols", "peer_192_168_8_1"),
        timeout=CONVERGED,
        what="the session to the access node",
    )
    wait_for(
        lambda: "via 192.168.8.3" in routes(fabric.access, "10.28.0.13"),
        timeout=CONVERGED,
        what="the route",
    )
    wait_for(
        lambda: "via fd00:192:168:8::3" in routes(fabric.access, V6_VM1),
        timeout=CONVERGED,
        what="v6 route",
    )
    assert answer(fabric.access, "10.28.0.13") == "testvm1"


def test_a_host_cut_off_the_fabric_is_withdrawn_within_a_second(fabric: Fabric) -> None:
    up_with_testvm1(fabric)
    access = Bird(fabric.tmp / "access", fabric.access)
    wait_for(
        lambda: "192.168.8.3" in bfd_up(access), timeout=CONVERGED, what="the BFD session to node1"
    )
    ip(fabric.fabric, "link", "set", "p3", "down")  # node1's cable, cut on the switch side
    took = wait_for(lambda: routes(fabric.access, "10.28.0.13") == "", timeout=5, what="withdrawal")
    assert took < 1.0, f"withdrawn after {took:.2f}s"
    wait_for(lambda: routes(fabric.hosts["node2"], "10.28.0.13") == "", timeout=2, what="on node2")
