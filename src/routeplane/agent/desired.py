"""What the kernel must hold for a set of endpoint records: a pure function.

Each endpoint (one bound port on this host) contributes, while its port is up:
its tap to configure; a host route to the tap for every address routed to the VM —
fixed IPs, allowed-address-pair addresses (single addresses; prefixes are left to the
VM's own routing) and the external addresses of its floating IPs; and a permanent
neighbour entry with the VM's MAC for each fixed IP, so the host never has to ARP for
its own VMs; and, for each IPv6 subnet gateway in the record (``gateways``), a proxy
entry on the tap so the host answers the VM's neighbour solicitations for it (IPv4 needs
none: proxy ARP answers for every address). A gateway that is one of the VM's own
addresses is never proxied: the host must not answer for the VM.

Make-before-break for moved addresses (the record's hints, ``services.move_hints``):

| the address is, in this record | its route here |
|---|---|
| in ``fixed_ips`` and ``preferred`` (moved or placed here) | ``dev tap`` at ``PREFERRED_METRIC``: wins over BIRD's route towards the old host at once, and BIRD announces it with the higher local preference |
| routed, not preferred | ``dev tap`` at ``ROUTE_METRIC`` (ordinary) |
| in ``moved_out``, drain time since ``moved_at`` not over, moved to another host with a known fabric address of its family | ``via <that address>`` at ``ROUTE_METRIC`` (:func:`drains`): packets still arriving here go to the new host, never to the old VM |
| in ``moved_out``, otherwise (drained, moved to a tap of this host, unbound or unknown host) | none |

An address the endpoints of two projects route (data written before the api's rules, or
by hand: ``routeplane store check`` reports it) is *contested* (:func:`contested`) and
routed to none of them, nor given a neighbour entry: BGP or the kernel picking one would
hand one project's traffic to another's VM. Ports of one project sharing an address (a
keepalived VIP in their allowed-address pairs) are not contested. The agent keeps the
same verdict incrementally (``agent/claims.py``) and warns as an address becomes
contested.

Live migration (``migration_target``: the record of a host the port is migrating to,
written beside its active host's): the tap is configured, its neighbour and proxy
entries are in, but its routes wait for the VM to *arrive* (``arrived``: the agent saw
it send on the tap, ``agent/arrivals.py``), because the hypervisor creates the
destination tap long before the VM runs there, and a route to it then would black-hole
every packet of the pre-copy. Once arrived, its routes go in at ``PREFERRED_METRIC``, so
BIRD announces them over the source host's; when the binding is activated the record
stops being a target (ordinary routes) and the source host's record is removed.

The old VM is fenced by the same record: the address is no longer one of the port's, so
anti-spoofing drops it as a source (policy is applied before routes), and its
connections are flushed when its route leaves the tap.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

from routeplane.dataplane.addresses import plain_address, single_address, version_of
from routeplane.dataplane.model import (
    PREFERRED_METRIC,
    ROUTE_METRIC,
    HostState,
    Neighbour,
    Proxy,
    Route,
)
from routeplane.model.endpoint import EndpointRecord

DRAIN_TIME = 2.0  # seconds after ``moved_at`` the old host keeps forwarding a moved address


def routed_addresses(endpoint: EndpointRecord) -> list[str]:
    """Every address to route to this endpoint's tap, canonical, without duplicates."""
    texts = [*endpoint.get("fixed_ips", ()), *endpoint.get("allowed_addresses", ())]
    floating = endpoint.get("floating_ips")
    if floating:
        texts += [nat["floating_ip_address"] for nat in floating]
    parsed = (single_address(str(text)) for text in texts)
    return list(dict.fromkeys(a for a in parsed if a is not None))  # in order, once each


class RoutedAddresses(dict[str, list[str]]):
    """Each endpoint's :func:`routed_addresses`, worked out when first asked for: an apply
    round needs them three times per endpoint (claims, drains, desired state)."""

    def __init__(self, endpoints: Mapping[str, EndpointRecord]) -> None:
        super().__init__()
        self.endpoints = endpoints

    def __missing__(self, port_id: str) -> list[str]:
        found = self[port_id] = routed_addresses(self.endpoints[port_id])
        return found


def proxied_gateways(endpoint: EndpointRecord, own: Iterable[str] | None = None) -> list[str]:
    """The IPv6 gateways the host answers for on this endpoint's tap, canonical (``own``:
    the endpoint's routed addresses, when the caller has them already)."""
    gateways = endpoint.get("gateways")
    if not gateways:
        return []
    own = set(routed_addresses(endpoint) if own is None else own)
    found: list[str] = []
    for text in gateways:
        address = plain_address(text)
        if address is not None and ":" in address and address not in own and address not in found:
            found.append(address)
    return found


def preferred_addresses(endpoint: EndpointRecord) -> set[str]:
    """The addresses this endpoint holds because they were moved (or placed) onto it."""
    return {a for a in map(plain_address, endpoint.get("preferred") or ()) if a is not None}


def claimed(endpoint: EndpointRecord, routed: Sequence[str] | None = None) -> Sequence[str]:
    """The addresses this endpoint asks to be routed to it (none while it is down;
    ``routed``: its routed addresses, when the caller has them already)."""
    if not endpoint.get("admin_state_up", True):
        return []
    return routed_addresses(endpoint) if routed is None else routed


def contested(endpoints: Iterable[EndpointRecord]) -> frozenset[str]:
    """The addresses that endpoints of more than one project claim: routed to none."""
    projects: dict[str, str] = {}
    found: set[str] = set()
    for endpoint in endpoints:
        project = str(endpoint.get("project_id", ""))
        for address in claimed(endpoint):
            if projects.setdefault(address, project) != project:
                found.add(address)
    return frozenset(found)


def awaits_arrival(endpoint: EndpointRecord) -> bool:
    """Is this the record of a migration's target, whose routes wait for the VM?"""
    return bool(endpoint.get("migration_target")) and endpoint.get("admin_state_up", True)


def endpoint_state(
    endpoint: EndpointRecord,
    refused: Container[str] = (),
    *,
    arrived: bool = False,
    routed: Sequence[str] | None = None,
) -> HostState:
    """What one endpoint asks of the kernel, without the ``refused`` (contested)
    addresses; ``arrived``: a migration target's VM was seen on its tap (ignored for
    other records); ``routed``: its routed addresses, when the caller has them."""
    if not endpoint.get("admin_state_up", True):
        return HostState()
    tap = str(endpoint["interface"])
    mac = str(endpoint.get("mac_address", "")).lower()
    target = bool(endpoint.get("migration_target"))
    preferred = preferred_addresses(endpoint) if endpoint.get("preferred") else ()
    addresses = routed_addresses(endpoint) if routed is None else routed
    routes = frozenset(
        Route(address, tap, PREFERRED_METRIC if target or address in preferred else ROUTE_METRIC)
        for address in addresses
        if address not in refused and (arrived or not target)
    )
    neighbours = frozenset(
        Neighbour(address, tap, mac)
        for address in map(plain_address, endpoint.get("fixed_ips", []))
        if mac and address is not None and address not in refused
    )
    proxies = frozenset(Proxy(gateway, tap) for gateway in proxied_gateways(endpoint, addresses))
    return HostState(frozenset({tap}), routes, neighbours, proxies)


def host_state(endpoints: Iterable[EndpointRecord]) -> HostState:
    """What the kernel must hold for all of a host's endpoints (contested addresses
    routed to none of them)."""
    endpoints = list(endpoints)
    refused = contested(endpoints)
    return merged(endpoint_state(endpoint, refused) for endpoint in endpoints)


def merged(states: Iterable[HostState]) -> HostState:
    """Endpoints' states as one host's (the agent computes each endpoint's once a round)."""
    interfaces: set[str] = set()
    routes: set[Route] = set()
    neighbours: set[Neighbour] = set()
    proxies: set[Proxy] = set()
    for part in states:
        interfaces |= part.interfaces
        routes |= part.routes
        neighbours |= part.neighbours
        proxies |= part.proxies
    return HostState(
        frozenset(interfaces), frozenset(routes), frozenset(neighbours), frozenset(proxies)
    )


@dataclass(frozen=True, order=True)
class Drain:
    """An address this host keeps forwarding to the host it moved to, until ``until``
    (seconds since the epoch, like the hint's ``moved_at``)."""

    address: str
    generation: int  # the move's: between two drains of one address, the higher is newer
    until: float
    route: Route  # ``address via <new host> metric ROUTE_METRIC``


def drains(
    endpoint: EndpointRecord,
    *,
    host: str,
    now: float,
    next_hop: Callable[[str, int], str],
    drain_time: float = DRAIN_TIME,
) -> list[Drain]:
    """The drains one endpoint record asks of this host (``host``) at ``now``.

    ``next_hop(host, version)`` is that host's fabric address of that IP version ("" when
    unknown). A ``moved_at`` in the future (clocks disagree) counts as now, so a drain
    never lasts longer than ``drain_time``."""
    found: list[Drain] = []
    moved_out = endpoint.get("moved_out") or {}
    if not moved_out or not isinstance(moved_out, Mapping):
        return found  # most records: nothing ever moved out of them
    held = set(routed_addresses(endpoint))
    for text, hint in moved_out.items():
        address = plain_address(text)
        if address is None or address in held or not isinstance(hint, Mapping):
            continue
        try:
            until = min(float(hint.get("moved_at", 0.0)), now) + drain_time
            generation = int(hint.get("generation", 0))
        except (TypeError, ValueError):
            continue
        to_host = str(hint.get("to_host") or "")
        if now >= until or not to_host or to_host == host:
            continue
        version = version_of(address)
        via = plain_address(next_hop(to_host, version))
        if via is None or version_of(via) != version:
            continue
        found.append(Drain(address, generation, until, Route(address, "", ROUTE_METRIC, via)))
    return sorted(found)


__all__ = [
    "DRAIN_TIME",
    "Drain",
    "RoutedAddresses",
    "awaits_arrival",
    "claimed",
    "contested",
    "drains",
    "endpoint_state",
    "host_state",
    "merged",
    "preferred_addresses",
    "proxied_gateways",
    "routed_addresses",
]
