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
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from routeplane.agent.bgp import BgpSettings, BgpSpeaker
from routeplane.agent.loop import Agent
from routeplane.agent.settings import AgentSettings
from routeplane.bgp.bird import Bird
from routeplane.bgp.render import access_config
from routeplane.dataplane.linux import LinuxKernel, NftTable
from routeplane.lab.netns import Cleanup, add_veth, exec_in, ip
from routeplane.services.attributes import check_create, check_update
from routeplane.services.context import ADMIN
from routeplane.services.registry import Services
from routeplane.store.sqlite import SqliteStore
from tests.kernel.vmlab import SERVER

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


def wait_for(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Fabric:
    cleanup: Cleanup
    tmp: Path
    store: SqliteStore
    services: Services
    fabric: str
    access: str
    hosts: dict[str, str]
    net: str = ""
    subnets: dict[int, str] = field(default_factory=dict)
    agents: dict[str, tuple[Agent, threading.Event, threading.Thread]] = field(default_factory=dict)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def bird(self, host: str) -> Bird:
        return Bird(self.tmp / host, self.hosts[host])

    def start_agent(self, host: str, *, policy: bool = False) -> None:
        n = HOSTS[host]
        bgp = BgpSettings(
            address=f"192.168.8.{n}", address6=f"fd00:192:168:8::{n}", peers=("192.168.8.1",),
            check_interval=0.2, log_path=str(self.tmp / host / "bird.log"),
        )  # fmt: skip
        speaker = BgpSpeaker(self.store, self.bird(host), host, bgp, time.monotonic)
        settings = AgentSettings(
            host=host, bgp_address=bgp.address, bgp_address6=bgp.address6, apply_interval=0.002
        )
        table = NftTable(self.hosts[host]) if policy else None
        agent = Agent(
            self.store, LinuxKernel(self.hosts[host]), settings, bgp=speaker, policy=table
        )
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop.is_set,), daemon=True)
        thread.start()
        self.agents[host] = (agent, stop, thread)

    def stop_agents(self) -> None:
        for agent, stop, thread in self.agents.values():
            stop.set()
            thread.join(timeout=10)
            agent.close()
            agent.kernel.close()
        self.agents.clear()

    def boot(
        self, name: str, host: str, v4: str, v6: str, groups: list[str] | None = None
    ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "network_id": self.net, "binding:host_id": host, "name": name,
            "device_owner": "compute:nova",
            "fixed_ips": [{"subnet_id": self.subnets[4], "ip_address": v4},
                          {"subnet_id": self.subnets[6], "ip_address": v6}],
        }  # fmt: skip
        if groups is not None:
            body["security_groups"] = groups
        port = self.services.ports.create(
            ADMIN, check_create(self.services.ports.attrs, body, is_admin=True)
        )
        vm = self.cleanup.namespace(name)
        add_veth(self.hosts[host], "tap" + port["id"][:11], vm, "eth0",
                 peer_mac=port["mac_address"], up=True)  # fmt: skip
        ip(vm, "addr", "add", f"{v4}/16", "dev", "eth0")
        ip(vm, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad", "noprefixroute")
        ip(vm, "route", "add", "default", "via", "10.28.0.1", "dev", "eth0")
        ip(
            vm,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd5f:5d21:845:1c2e::1",
            "dev",
            "eth0",
            "onlink",
        )
        # the host answers for the gateway (proxy NDP entry); stand-in until the agent does
        ip(self.hosts[host], "-6", "neigh", "add", "proxy", "fd5f:5d21:845:1c2e::1",
           "dev", "tap" + port["id"][:11])  # fmt: skip
        server = subprocess.Popen(["ip", "netns", "exec", vm, "python3", "-c", SERVER, name])
        self.servers.append(server)
        return vm, port

    def set_fixed_ips(self, port: dict[str, Any], addresses: list[str]) -> None:
        fixed = [{"ip_address": a} for a in addresses]
        data = check_update(self.services.ports.attrs, {"fixed_ips": fixed}, is_admin=True)
        self.services.ports.update(ADMIN, port["id"], data, None)


def route(namespace: str, address: str) -> str:
    family = "-6" if ":" in address else "-4"
    return ip(namespace, family, "route", "show", address).strip()


def learned(namespace: str, address: str) -> Callable[[], bool]:
    """A check: ``address`` is routed in ``namespace`` by BIRD (from a peer)."""
    return lambda: "proto bird" in route(namespace, address)


def bfd_up(bird: Bird) -> str:
    """The lines of ``show bfd sessions`` that are up."""
    return "\n".join(line for line in bird.birdc("show", "bfd", "sessions").splitlines()
                     if " Up " in line)  # fmt: skip


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
        store = SqliteStore(tmp_path / "store.db")
        services = Services(store)
        the = Fabric(cleanup, tmp_path, store, services, fab, access, hosts)
        access_bird = Bird(tmp_path / "access", access)
        cleanup.add("stop the access node's BIRD", access_bird.stop)
        for host in HOSTS:
            cleanup.add(f"stop {host}'s BIRD", the.bird(host).stop)
        access_bird.apply(access_config("192.168.8.1", 64512, ["192.168.8.0/24"]))
        net = services.networks.create(
            ADMIN, check_create(services.networks.attrs, {"name": "demo-net"}, is_admin=True)
        )
        the.net = net["id"]
        for version, cidr in ((4, "10.28.0.0/16"), (6, "fd5f:5d21:845:1c2e::/64")):
            body = {"network_id": net["id"], "ip_version": version, "cidr": cidr}
            the.subnets[version] = services.subnets.create(
                ADMIN, check_create(services.subnets.attrs, body, is_admin=True)
            )["id"]
        try:
            yield the
        finally:
            the.stop_agents()
            for server in the.servers:
                server.terminate()
                server.wait(timeout=5)
            store.close()


V6_VM1 = "fd5f:5d21:845:1c2e:2::d"


def up_with_testvm1(fabric: Fabric) -> list[str]:
    """Both agents running, testvm1 booted on node1, its route learned by the access node
    and node2 (returned: their namespaces)."""
    for host in HOSTS:
        fabric.start_agent(host)
    fabric.boot("testvm1", "node1", "10.28.0.13", V6_VM1)
    peers = [fabric.access, fabric.hosts["node2"]]
    for ns in peers:
        wait_for(learned(ns, "10.28.0.13"), what=f"the v4 route in {ns}")
    return peers


def test_vm_routes_reach_the_peer_host_and_the_access_node(fabric: Fabric) -> None:
    for ns in up_with_testvm1(fabric):
        assert route(ns, "10.28.0.13").startswith(
            "10.28.0.13 via 192.168.8.3 dev fabric0 proto bird"
        )
        wait_for(learned(ns, V6_VM1), what="the v6 route")
        assert route(ns, V6_VM1).startswith(
            f"{V6_VM1} via fd00:192:168:8::3 dev fabric0 proto bird"
        )
    assert route(fabric.hosts["node1"], "10.28.0.13").startswith("10.28.0.13 dev tap")
    assert answer(fabric.access, "10.28.0.13") == "testvm1"
    wait_for(lambda: answer(fabric.access, V6_VM1) == "testvm1", what="an IPv6 answer")


def test_a_service_ip_follows_its_port_from_host_to_host(fabric: Fabric) -> None:
    for host in HOSTS:
        fabric.start_agent(host)
    vm1, port1 = fabric.boot("testvm1", "node1", "10.28.0.13", V6_VM1)
    vm2, port2 = fabric.boot("testvm2", "node2", "10.28.0.14", "fd5f:5d21:845:1c2e:2::e")
    fabric.set_fixed_ips(port1, ["10.28.0.13", V6_VM1, "10.28.0.23"])
    ip(vm1, "addr", "add", "10.28.0.23/16", "dev", "eth0")
    wait_for(lambda: answer(fabric.access, "10.28.0.23") == "testvm1", what="testvm1")
    assert "via 192.168.8.3" in route(fabric.access, "10.28.0.23")

    fabric.set_fixed_ips(port1, ["10.28.0.13", V6_VM1])
    fabric.set_fixed_ips(port2, ["10.28.0.14", "fd5f:5d21:845:1c2e:2::e", "10.28.0.23"])
    ip(vm2, "addr", "add", "10.28.0.23/16", "dev", "eth0")
    moved = "10.28.0.23 via 192.168.8.4"  # one path: node1 has withdrawn (no ECMP pair)
    wait_for(lambda: route(fabric.access, "10.28.0.23").startswith(moved), what="the move")
    assert answer(fabric.access, "10.28.0.23") == "testvm2"
    wait_for(
        lambda: route(fabric.hosts["node1"], "10.28.0.23").startswith("10.28.0.23 via 192.168.8.4"),
        what="node1 learning the new route",
    )


def test_a_killed_bird_is_restarted_and_every_route_comes_back(fabric: Fabric) -> None:
    up_with_testvm1(fabric)
    bird = fabric.bird("node1")
    old = bird.pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: bird.pid() not in (None, old), what="a new BIRD on node1")
    wait_for(lambda: "Established" in bird.birdc("show", "protocols", "peer_192_168_8_1"),
             what="the session to the access node")  # fmt: skip
    wait_for(lambda: "via 192.168.8.3" in route(fabric.access, "10.28.0.13"), what="the route")
    wait_for(lambda: "via fd00:192:168:8::3" in route(fabric.access, V6_VM1), what="v6 route")
    assert answer(fabric.access, "10.28.0.13") == "testvm1"


def test_a_host_cut_off_the_fabric_is_withdrawn_within_a_second(fabric: Fabric) -> None:
    up_with_testvm1(fabric)
    access = Bird(fabric.tmp / "access", fabric.access)
    wait_for(lambda: "192.168.8.3" in bfd_up(access), what="the BFD session to node1")
    ip(fabric.fabric, "link", "set", "p3", "down")  # node1's cable, cut on the switch side
    took = wait_for(lambda: route(fabric.access, "10.28.0.13") == "", timeout=5, what="withdrawal")
    assert took < 1.0, f"withdrawn after {took:.2f}s"
    wait_for(lambda: route(fabric.hosts["node2"], "10.28.0.13") == "", timeout=2, what="on node2")
