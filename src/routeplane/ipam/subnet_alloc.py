"""Choosing a subnet from a subnet pool: pure prefix arithmetic, no store.

A pool is a list of prefixes; the address space already holds subnets (of every pool
and of none: in one flat routed space a pool's prefixes are shared with subnets created
by CIDR). :func:`free_subnet` answers the lowest free CIDR of a given length inside the
pool that overlaps no existing subnet, or ``None``. It works on the free *blocks* (the
pool minus what is used), never on candidate subnets one by one, so a /64 out of an IPv6
/32 costs as much as a /24 out of a /16. :func:`inside` says whether a CIDR asked for by
name lies in a pool.

The caller (``services.core.subnet_pools``) reads the subnets and commits the choice
under the address space's generation key, so two racing allocations cannot both win.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from routeplane.ipam.pools import IPNetwork


def _minus(block: IPNetwork, used: IPNetwork) -> list[IPNetwork]:
    """``block`` without the addresses of ``used`` (same IP version)."""
    if not block.overlaps(used):
        return [block]
    if used.prefixlen <= block.prefixlen:  # used covers all of block
        return []
    if isinstance(block, ipaddress.IPv4Network) and isinstance(used, ipaddress.IPv4Network):
        return list(block.address_exclude(used))
    if isinstance(block, ipaddress.IPv6Network) and isinstance(used, ipaddress.IPv6Network):
        return list(block.address_exclude(used))
    return [block]


def free_blocks(prefixes: Sequence[IPNetwork], used: Iterable[IPNetwork]) -> list[IPNetwork]:
    """The pool's addresses not in any ``used`` subnet, as CIDR blocks in address order."""
    blocks = list(prefixes)
    for subnet in used:
        if subnet.version != (blocks[0].version if blocks else subnet.version):
            continue
        blocks = [rest for block in blocks for rest in _minus(block, subnet)]
    return sorted(blocks, key=lambda b: (int(b.network_address), b.prefixlen))


def free_subnet(
    prefixes: Sequence[IPNetwork], used: Iterable[IPNetwork], prefixlen: int
) -> IPNetwork | None:
    """The lowest free subnet of ``prefixlen`` in the pool, or ``None`` if none fits."""
    for block in free_blocks(prefixes, used):
        if block.prefixlen <= prefixlen:
            return ipaddress.ip_network(f"{block.network_address}/{prefixlen}")
    return None


def collapse(networks: Iterable[IPNetwork]) -> list[IPNetwork]:
    """The fewest CIDRs covering ``networks`` (IPv4 first, each version in address order)."""
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def inside(prefixes: Sequence[IPNetwork], cidr: IPNetwork) -> bool:
    """Whether ``cidr`` lies entirely in one of the pool's prefixes."""
    return any(
        p.version == cidr.version and p.prefixlen <= cidr.prefixlen and cidr.overlaps(p)
        for p in prefixes
    )


__all__ = ["collapse", "free_blocks", "free_subnet", "inside"]
