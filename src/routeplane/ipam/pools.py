"""Allocation pools and address checks, following Neutron's reference IPAM.

- default pools: every host address of the CIDR except the gateway (IPv4 also excludes
  the network and broadcast addresses; IPv6 excludes only the subnet-router anycast
  address, the first one);
- a *specific* address only has to be a valid host address of the CIDR, inside the
  pools or not: that is how service IPs are reserved outside automatic allocation;
- automatic allocation walks the pools from a cursor, in pool order, wrapping around.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Pool = tuple[IPAddress, IPAddress]


def first_host(network: IPNetwork) -> IPAddress:
    return network.network_address + 1 if network.num_addresses > 1 else network.network_address


def last_host(network: IPNetwork) -> IPAddress:
    if network.num_addresses == 1:
        return network.network_address
    return network.broadcast_address - (1 if network.version == 4 else 0)


def default_pools(network: IPNetwork, gateway: IPAddress | None) -> list[Pool]:
    """Neutron's default pools: the host range minus the gateway, split around it."""
    if network.num_addresses == 1:
        return [(network.network_address, network.network_address)]
    first, last = first_host(network), last_host(network)
    if int(first) >= int(last):  # an IPv4 /31 has no usable pool
        return []
    if gateway is None or not int(first) <= int(gateway) <= int(last):
        return [(first, last)]
    pools: list[Pool] = []
    if int(gateway) > int(first):
        pools.append((first, gateway - 1))
    if int(gateway) < int(last):
        pools.append((gateway + 1, last))
    return pools


def eui64_address(network: IPNetwork, mac: str) -> IPAddress:
    """The address a guest forms by SLAAC in a /64 (RFC 4291 appendix A): the prefix, then
    the MAC with ``ff:fe`` in its middle and the universal/local bit flipped."""
    octets = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(octets) != 6 or network.version != 6:
        raise ValueError(f"no EUI-64 address from {mac!r} in {network}")
    interface_id = bytes([octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:]])
    return ipaddress.ip_address(int(network.network_address) | int.from_bytes(interface_id, "big"))


def valid_host(network: IPNetwork, address: IPAddress) -> bool:
    """Can a port hold ``address`` on this subnet (inside or outside the pools)?"""
    if address.version != network.version or address not in network:
        return False
    if network.num_addresses <= 2:
        return True
    if address == network.network_address:
        return False
    return not (network.version == 4 and address == network.broadcast_address)


def in_pools(pools: Iterable[Pool], address: IPAddress) -> bool:
    return any(int(start) <= int(address) <= int(end) for start, end in pools)


def walk(pools: Sequence[Pool], start_at: IPAddress | None = None) -> Iterator[IPAddress]:
    """Every address of the pools once, in pool order, beginning at ``start_at`` (when it
    lies in a pool) and wrapping around to the first pool's start.

    Allocation walks from a cursor rather than from the first address, so that allocating
    is a few point look-ups however full the subnet is, and a freed address is not handed
    out again at once.
    """
    ordered = list(pools)
    first_index, first_address = 0, None
    if start_at is not None:
        for index, (low, high) in enumerate(ordered):
            if int(low) <= int(start_at) <= int(high):
                first_index, first_address = index, start_at
                break
    rotation = ordered[first_index:] + ordered[:first_index]
    for position, (low, high) in enumerate(rotation):
        begin = first_address if position == 0 and first_address is not None else low
        candidate = begin
        while int(candidate) <= int(high):
            yield candidate
            candidate += 1
    if first_address is not None and int(first_address) > int(rotation[0][0]):
        low = rotation[0][0]
        candidate = low
        while int(candidate) < int(first_address):
            yield candidate
            candidate += 1


def pools_overlap(pools: list[Pool]) -> bool:
    ordered = sorted(pools, key=lambda pool: int(pool[0]))
    return any(int(ordered[i][1]) >= int(ordered[i + 1][0]) for i in range(len(ordered) - 1))


__all__ = [
    "IPAddress",
    "IPNetwork",
    "Pool",
    "default_pools",
    "first_host",
    "in_pools",
    "last_host",
    "pools_overlap",
    "valid_host",
    "walk",
]
