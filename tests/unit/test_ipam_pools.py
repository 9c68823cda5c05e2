"""Unit: subnet address arithmetic (Neutron's reference IPAM rules), pure functions."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from routeplane.ipam.pools import default_pools, in_pools, pools_overlap, valid_host, walk

pytestmark = pytest.mark.unit


def test_default_pools_skip_network_broadcast_and_gateway() -> None:
    net = ip_network("10.28.0.0/16")
    assert default_pools(net, ip_address("10.28.0.1")) == [
        (ip_address("10.28.0.2"), ip_address("10.28.255.254"))
    ]
    mid = default_pools(ip_network("10.0.0.0/29"), ip_address("10.0.0.4"))
    assert mid == [
        (ip_address("10.0.0.1"), ip_address("10.0.0.3")),
        (ip_address("10.0.0.5"), ip_address("10.0.0.6")),
    ]
    assert default_pools(ip_network("10.0.0.0/31"), None) == []


def test_ipv6_pools_keep_the_last_address() -> None:
    net = ip_network("fd00::/125")
    assert default_pools(net, ip_address("fd00::1")) == [
        (ip_address("fd00::2"), ip_address("fd00::7"))
    ]


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("10.28.0.23", True),
        ("10.28.0.1", True),
        ("10.28.0.0", False),
        ("10.28.255.255", False),
        ("10.29.0.1", False),
        ("fd00::1", False),
    ],
)
def test_valid_host_allows_any_host_address_of_the_cidr(address: str, ok: bool) -> None:
    assert valid_host(ip_network("10.28.0.0/16"), ip_address(address)) is ok


def test_walk_starts_at_the_cursor_and_wraps_around() -> None:
    pools = [
        (ip_address("10.0.0.2"), ip_address("10.0.0.4")),
        (ip_address("10.0.0.8"), ip_address("10.0.0.9")),
    ]
    assert [str(a) for a in walk(pools)] == [
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.8",
        "10.0.0.9",
    ]
    from_cursor = [str(a) for a in walk(pools, ip_address("10.0.0.3"))]
    assert from_cursor == ["10.0.0.3", "10.0.0.4", "10.0.0.8", "10.0.0.9", "10.0.0.2"]
    outside = [str(a) for a in walk(pools, ip_address("10.0.0.6"))]
    assert outside[0] == "10.0.0.2"
    assert len(outside) == 5


def test_pool_membership_and_overlap() -> None:
    pools = [(ip_address("10.0.0.2"), ip_address("10.0.0.9"))]
    assert in_pools(pools, ip_address("10.0.0.9"))
    assert not in_pools(pools, ip_address("10.0.0.10"))
    assert pools_overlap([*pools, (ip_address("10.0.0.9"), ip_address("10.0.0.12"))])
    assert not pools_overlap([*pools, (ip_address("10.0.0.10"), ip_address("10.0.0.12"))])
