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
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from routeplane.dataplane.model import HostState, Neighbour, Proxy, Route


def routed_addresses(endpoint: Mapping[str, Any]) -> list[str]:
    """Every address to route to this endpoint's tap, canonical, without duplicates."""
    found: list[str] = []
    candidates = [
        *endpoint.get("fixed_ips", []),
        *endpoint.get("allowed_addresses", []),
        *(nat["floating_ip_address"] for nat in endpoint.get("floating_ips", [])),
    ]
    for text in candidates:
        try:
            network = ipaddress.ip_network(str(text), strict=False)
        except ValueError:
            continue
        if network.num_addresses != 1:
            continue
        address = str(network.network_address)
        if address not in found:
            found.append(address)
    return found


def proxied_gateways(endpoint: Mapping[str, Any]) -> list[str]:
    """The IPv6 gateways the host answers for on this endpoint's tap, canonical."""
    own = set(routed_addresses(endpoint))
    found: list[str] = []
    for text in endpoint.get("gateways", []):
        try:
            address = ipaddress.ip_address(str(text))
        except ValueError:
            continue
        if address.version == 6 and str(address) not in own and str(address) not in found:
            found.append(str(address))
    return found


def endpoint_state(endpoint: Mapping[str, Any]) -> HostState:
    if not endpoint.get("admin_state_up", True):
        return HostState()
    tap = str(endpoint["interface"])
    mac = str(endpoint.get("mac_address", "")).lower()
    routes = frozenset(Route(address, tap) for address in routed_addresses(endpoint))
    neighbours = frozenset(
        Neighbour(str(ipaddress.ip_address(ip)), tap, mac)
        for ip in endpoint.get("fixed_ips", [])
        if mac
    )
    proxies = frozenset(Proxy(gateway, tap) for gateway in proxied_gateways(endpoint))
    return HostState(frozenset({tap}), routes, neighbours, proxies)


def host_state(endpoints: Iterable[Mapping[str, Any]]) -> HostState:
    interfaces: set[str] = set()
    routes: set[Route] = set()
    neighbours: set[Neighbour] = set()
    proxies: set[Proxy] = set()
    for endpoint in endpoints:
        part = endpoint_state(endpoint)
        interfaces |= part.interfaces
        routes |= part.routes
        neighbours |= part.neighbours
        proxies |= part.proxies
    return HostState(
        frozenset(interfaces), frozenset(routes), frozenset(neighbours), frozenset(proxies)
    )


__all__ = ["endpoint_state", "host_state", "proxied_gateways", "routed_addresses"]
