"""The lab's machines and the wire between them: namespaces, a bridge, addresses, routes.

The fabric is a bridge in a namespace of its own (``rp-<lab>-fabric``), standing in for
the data-centre L2 segment 192.168.8.0/24. Every node (the access node, each compute host)
is a namespace with one interface, ``fabric0``, whose veth peer is a port of that bridge.
Nothing is made in the root namespace; every interface is created inside a lab namespace
(``netns.add_veth``), so the root namespace never even sees one pass through.

Compute hosts get a default route via the access node, as real hosts have one via their
router: it is what makes proxy ARP answer a VM asking for its gateway (the host answers
for addresses it routes out of another interface). The access node forwards, and runs
BIRD with ``access_config``: it learns every VM route from the hosts, the walkthrough's
``10.28.0.13 via 192.168.8.3 … proto bird``.

What this module must not do: create or touch anything outside the topology's namespaces.
"""

from __future__ import annotations

from collections.abc import Callable

from routeplane.bgp.bird import Bird
from routeplane.bgp.render import access_config
from routeplane.lab import netns
from routeplane.lab.topology import AS_NUMBER, BRIDGE, FABRIC_V4, UPLINK, Node, Topology


def _sysctl(namespace: str, *settings: str) -> None:
    netns.exec_in(namespace, "sysctl", "-q", "-w", *settings)


def build_switch(topology: Topology, made: Callable[[str], None]) -> None:
    """The fabric namespace and its bridge."""
    netns.create(topology.fabric)
    made(topology.fabric)
    netns.ip(topology.fabric, "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
    netns.ip(topology.fabric, "link", "set", BRIDGE, "up")


def build_node(topology: Topology, node: Node, made: Callable[[str], None]) -> None:
    """A node's namespace, plugged into the fabric and addressed; hosts get their default
    routes via the access node."""
    netns.create(node.namespace)
    made(node.namespace)
    netns.add_veth(topology.fabric, node.name, node.namespace, UPLINK, up=False, peer_up=False)
    netns.ip(topology.fabric, "link", "set", node.name, "master", BRIDGE, "up")
    batch = [
        f"addr add {node.ipv4_interface} dev {UPLINK}",
        f"addr add {node.ipv6_interface} dev {UPLINK} nodad",
        f"link set {UPLINK} up",
    ]
    access = topology.access
    if node != access:
        batch += [
            f"route add 0.0.0.0/0 via {access.ipv4} dev {UPLINK}",
            f"route add ::/0 via {access.ipv6} dev {UPLINK}",
        ]
    netns.ip(node.namespace, "-batch", "-", input="\n".join(batch) + "\n")
    if node == access:
        _sysctl(node.namespace, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")


def access_bird(topology: Topology) -> Bird:
    return Bird(topology.bird_dir("access"), topology.access.namespace)


def host_bird(topology: Topology, host: Node) -> Bird:
    """The BIRD the host's agent runs (with ``--bird-dir``): the lab only stops it."""
    return Bird(topology.bird_dir(host.name), host.namespace)


def start_access_bird(topology: Topology) -> None:
    """BIRD on the access node, accepting every host of the fabric as an iBGP peer."""
    directory = topology.bird_dir("access")
    directory.mkdir(parents=True, exist_ok=True)
    # hosts peer with the access node over IPv4 only (``--bgp-peer 192.168.8.1``); their
    # IPv6 routes ride the same session, so one IPv4 range covers every session
    config = access_config(
        topology.access.ipv4,
        AS_NUMBER,
        [str(FABRIC_V4)],
        log_path=str(directory / "bird.log"),
    )
    access_bird(topology).apply(config)


__all__ = ["access_bird", "build_node", "build_switch", "host_bird", "start_access_bird"]
