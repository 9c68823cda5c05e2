"""Kernel objects routeplane owns, as plain values, and the ownership marks that make them
recognisable as ours after a restart.

- routes: one per VM address, ``<addr>/32`` (or ``/128``) ``dev tap… scope link`` with our
  own route protocol number :data:`ROUTE_PROTO`; nothing else carries that number;
- neighbours: a permanent entry for each VM's MAC on its tap (IPv4 and IPv6 fixed IPs);
- interfaces: taps are named ``tap`` + the port id's first 11 characters; the agent only
  configures them (sysctls, up), never creates or deletes them (the hypervisor does).

Pure values; no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

# Our route protocol number (see /etc/iproute2/rt_protos: unassigned). Routes with it are
# ours to add, replace and sweep; routes with any other number are never touched.
ROUTE_PROTO = 77
TAP_PREFIX = "tap"


@dataclass(frozen=True, order=True)
class Route:
    """``address dev interface scope link proto 77`` (a host route to a VM address)."""

    address: str  # canonical text of an IPv4 or IPv6 address
    interface: str

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True, order=True)
class Neighbour:
    """A permanent neighbour entry: the VM's MAC for one of its addresses on its tap."""

    address: str
    interface: str
    mac: str


@dataclass(frozen=True)
class Link:
    """What the kernel says of an interface."""

    name: str
    up: bool
    mac: str = ""


@dataclass(frozen=True)
class HostState:
    """Everything the agent programs on one host (beyond nftables)."""

    interfaces: frozenset[str] = frozenset()  # taps to configure (sysctls)
    routes: frozenset[Route] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()


@dataclass(frozen=True)
class Plan:
    """What to change, in the order it must be applied."""

    configure: tuple[str, ...] = ()  # interfaces whose sysctls must be (re)set
    neighbours_set: tuple[Neighbour, ...] = ()
    routes_set: tuple[Route, ...] = ()
    routes_del: tuple[Route, ...] = ()
    neighbours_del: tuple[Neighbour, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.configure
            or self.neighbours_set
            or self.routes_set
            or self.routes_del
            or self.neighbours_del
        )


@dataclass
class Outcome:
    """What applying a plan did: the operations that failed, for retry with backoff."""

    failed: list[object] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


__all__ = [
    "ROUTE_PROTO",
    "TAP_PREFIX",
    "HostState",
    "IPAddress",
    "Link",
    "Neighbour",
    "Outcome",
    "Plan",
    "Route",
]
