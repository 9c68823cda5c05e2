"""Choosing a subnet from a pool (ipam.subnet_alloc): the lowest free CIDR of a length,
around subnets already in the address space, IPv4 and IPv6 alike."""

from __future__ import annotations

import ipaddress

from routeplane.ipam.pools import IPNetwork
from routeplane.ipam.subnet_alloc import collapse, free_blocks, free_subnet, inside


def nets(*cidrs: str) -> list[IPNetwork]:
    return [ipaddress.ip_network(c) for c in cidrs]


def test_first_allocation_is_the_pools_first_block() -> None:
    assert free_subnet(nets("10.200.0.0/16"), [], 24) == ipaddress.ip_network("10.200.0.0/24")


def test_allocation_skips_used_subnets_of_any_origin_and_length() -> None:
    used = nets("10.200.0.0/24", "10.200.1.0/26", "192.0.2.0/24", "fd00::/64")
    assert free_subnet(nets("10.200.0.0/16"), used, 26) == ipaddress.ip_network("10.200.1.64/26")
    assert free_subnet(nets("10.200.0.0/16"), used, 24) == ipaddress.ip_network("10.200.2.0/24")


def test_a_used_supernet_empties_the_pool() -> None:
    assert free_subnet(nets("10.200.0.0/16"), nets("10.0.0.0/8"), 24) is None
    assert free_blocks(nets("10.200.0.0/16"), nets("10.0.0.0/8")) == []


def test_too_long_a_request_for_what_is_left() -> None:
    assert free_subnet(nets("10.200.0.0/16"), nets("10.200.0.0/24"), 16) is None


def test_ipv6_64_out_of_a_32_costs_nothing() -> None:
    used = nets(*(f"fd00:0:{i:x}::/48" for i in range(50)))
    assert free_subnet(nets("fd00::/32"), used, 64) == ipaddress.ip_network("fd00:0:32::/64")


def test_inside_and_collapse() -> None:
    pool = nets("10.200.0.0/16", "fd00::/48")
    assert inside(pool, ipaddress.ip_network("10.200.9.0/24"))
    assert not inside(pool, ipaddress.ip_network("10.0.0.0/8"))
    assert not inside(pool, ipaddress.ip_network("10.99.0.0/24"))
    assert collapse(nets("10.200.1.0/24", "fd00::/48", "10.200.0.0/24")) == nets(
        "10.200.0.0/23", "fd00::/48"
    )
