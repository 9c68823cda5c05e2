"""Kernel objects routeplane owns, as plain values, and the ownership marks that make them
recognisable as ours after a restart.

- routes: one per VM address, ``<addr>/32`` (or ``/128``) ``dev tap… scope link`` with our
  own route protocol number :data:`ROUTE_PROTO`; nothing else carries that number. Its
  metric says how much the host trusts it (see *Metrics* below); while an address that
  moved to another host drains, its route is ``<addr> via <new host>`` instead (a
  :class:`Route` with ``via`` and no interface);
- neighbours: a permanent entry for each VM's MAC on its tap (IPv4 and IPv6 fixed IPs);
- proxies: an IPv6 proxy neighbour entry (``ip -6 neigh add proxy <gateway> dev tap…``)
  for the gateway of each IPv6 subnet the VM has an address on, carrying our protocol
  number, so the host answers the VM's neighbour solicitations for its gateway (IPv4
  needs none: ``proxy_arp`` answers for every address);
- interfaces: taps are named ``tap`` + the port id's first 11 characters; the agent only
  configures them (sysctls, up), never creates or deletes them (the hypervisor does).

Metrics: the kernel keys a route by (destination, metric), and the lowest metric wins.
BIRD installs what it learns over BGP at :data:`BIRD_METRIC` (its default, 32), so

- :data:`PREFERRED_METRIC` (below BIRD's): the route of an address that was just moved
  here wins at once over the BGP route towards the host it came from;
- :data:`ROUTE_METRIC` (above BIRD's, the ordinary one): whenever BIRD installs a route
  for one of our addresses, it is because BGP saw a *preferred* route elsewhere (BIRD
  prefers our own routes otherwise), and the kernel then follows BIRD at once.

Changing a route's metric is an add of the new route and then a delete of the old one:
never a moment without a route.

Pure values; no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

from routeplane.dataplane.addresses import version_of
from routeplane.model.endpoint import TAP_PREFIX
from routeplane.model.routing import BIRD_METRIC, PREFERRED_METRIC, ROUTE_METRIC, ROUTE_PROTO

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


# Sysctls set on every tap (``{}`` is the interface name) and once per host, as paths
# under /proc/sys: unlike the dotted ``sysctl`` form they stay unambiguous for interface
# names that contain a dot. Setting one to the value it already has is harmless.
TAP_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net/ipv4/conf/{}/proxy_arp", "1"),  # answer ARP for the addresses routed elsewhere
    ("net/ipv4/neigh/{}/proxy_delay", "0"),  # ... at once, not after a random delay
    ("net/ipv4/conf/{}/forwarding", "1"),
    ("net/ipv6/conf/{}/proxy_ndp", "1"),
    ("net/ipv6/neigh/{}/proxy_delay", "0"),  # a multicast solicitation: answer at once
    ("net/ipv6/conf/{}/accept_ra", "0"),  # a VM must not become the host's router
    ("net/ipv6/conf/{}/forwarding", "1"),
)
# Every tap also holds this link-local address (nodad, no prefix route): the metadata
# service's IPv6 address, as Neutron's (``fe80::a9fe:a9fe``, 169.254.169.254 in IPv6
# dress). The host owns it on each tap, so it answers neighbour solicitations for it and
# takes the guest's connections to it locally; it is never a source of the host's own
# (``dataplane.linux.host_socket.link_local`` passes over it).
METADATA_ADDRESS6 = "fe80::a9fe:a9fe"
HOST_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv6/conf/all/forwarding", "1"),
)


def tap_sysctls(interface: str) -> list[tuple[str, str]]:
    """The (path under /proc/sys, value) pairs that configure one tap."""
    return [(path.format(interface), value) for path, value in TAP_SYSCTLS]


# Routes, neighbours and proxy entries are named tuples rather than dataclasses: a cold
# start hashes, compares and sorts tens of thousands of them, which tuples do in C.
class Route(NamedTuple):
    """``address dev interface scope link proto 77 metric metric`` (a host route to a VM
    address), or with ``via`` (and ``interface`` empty) ``address via via proto 77 metric
    metric``: the route of a draining address, towards the host it moved to.

    The kernel tells routes apart by (``address``, ``metric``): a replace with the same
    pair overwrites the route (whoever's), one with another metric is a second route."""

    address: str  # canonical text of an IPv4 or IPv6 address
    interface: str
    metric: int = ROUTE_METRIC
    via: str = ""  # a next hop (canonical, same family): then ``interface`` is ""

    @property
    def key(self) -> tuple[str, int]:
        """What the kernel keys the route by."""
        return (self.address, self.metric)

    @property
    def version(self) -> int:
        return version_of(self.address)


class Neighbour(NamedTuple):
    """A permanent neighbour entry: the VM's MAC for one of its addresses on its tap."""

    address: str
    interface: str
    mac: str


class Proxy(NamedTuple):
    """An IPv6 proxy neighbour entry: the host answers neighbour solicitations for
    ``address`` (the subnet's gateway) arriving on ``interface``, as a router."""

    address: str
    interface: str


@dataclass(frozen=True)
class Link:
    """What the kernel says of an interface. ``up`` means administratively up *and* with
    carrier (the VM end is attached): only then is routing traffic to it useful.
    ``index`` changes when an interface is deleted and created again under the same
    name (a rebooted VM's new tap), whose sysctls are then back at their defaults.
    ``admin_up`` alone tells what the kernel keeps: taking an interface administratively
    down flushes its routes, neighbours and proxy entries; losing carrier keeps them."""

    name: str
    up: bool
    mac: str = ""
    index: int = 0
    admin_up: bool = True


@dataclass(frozen=True)
class LinkEvent:
    """The kernel's news of one interface: ``link`` is its state after the change, or
    ``None`` when it was deleted."""

    name: str
    link: Link | None


@dataclass(frozen=True)
class HostState:
    """Everything the agent programs on one host (beyond nftables)."""

    interfaces: frozenset[str] = frozenset()  # taps to configure (sysctls)
    routes: frozenset[Route] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    proxies: frozenset[Proxy] = frozenset()


@dataclass(frozen=True)
class Plan:
    """What to change, in the order it must be applied (the fields' order)."""

    configure: tuple[str, ...] = ()  # interfaces whose sysctls must be (re)set
    neighbours_set: tuple[Neighbour, ...] = ()
    proxies_set: tuple[Proxy, ...] = ()  # before routes: a routed VM finds its gateway
    routes_set: tuple[Route, ...] = ()
    routes_del: tuple[Route, ...] = ()
    proxies_del: tuple[Proxy, ...] = ()
    neighbours_del: tuple[Neighbour, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.configure
            or self.neighbours_set
            or self.proxies_set
            or self.routes_set
            or self.routes_del
            or self.proxies_del
            or self.neighbours_del
        )

    @property
    def size(self) -> int:
        """How many operations the plan holds."""
        return sum(len(ops) for _, ops in self.steps())

    def steps(self) -> tuple[tuple[str, tuple[object, ...]], ...]:
        """(step name, operations) in the order they are applied."""
        return (
            ("configure", self.configure),
            ("neighbours_set", self.neighbours_set),
            ("proxies_set", self.proxies_set),
            ("routes_set", self.routes_set),
            ("routes_del", self.routes_del),
            ("proxies_del", self.proxies_del),
            ("neighbours_del", self.neighbours_del),
        )


@dataclass
class Outcome:
    """What applying a plan did: the operations that failed, for retry with backoff.

    ``failed`` holds the failed operations themselves (an interface name for
    ``configure``, else the :class:`Route`, :class:`Neighbour` or :class:`Proxy`);
    ``errors`` says why, one line per failure, in the same order, naming the plan step
    (``"routes_set 10.0.0.5 dev tap…: No such device"``).
    """

    failed: list[object] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def describe(op: object) -> str:
    """An operation as ``ip`` would name it, for error messages."""
    if isinstance(op, Route):
        where = f"via {op.via}" if op.via else f"dev {op.interface}"
        return f"{op.address} {where} metric {op.metric}"
    if isinstance(op, Neighbour):
        return f"{op.address} lladdr {op.mac} dev {op.interface}"
    if isinstance(op, Proxy):
        return f"proxy {op.address} dev {op.interface}"
    return str(op)


__all__ = [
    "BIRD_METRIC",
    "HOST_SYSCTLS",
    "METADATA_ADDRESS6",
    "PREFERRED_METRIC",
    "ROUTE_METRIC",
    "ROUTE_PROTO",
    "TAP_PREFIX",
    "TAP_SYSCTLS",
    "HostState",
    "IPAddress",
    "Link",
    "LinkEvent",
    "Neighbour",
    "Outcome",
    "Plan",
    "Proxy",
    "Route",
    "describe",
    "tap_sysctls",
]
