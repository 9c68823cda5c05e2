"""On a SLAAC subnet the api reports the address the guest forms itself.

A guest on an IPv6 subnet whose ``ipv6_address_mode`` is ``slaac`` or
``dhcpv6-stateless`` builds its address from the router advertisement's prefix and its
own MAC (EUI-64); Neutron shows that address on the port, not one from the pools. On a
``dhcpv6-stateful`` subnet the address comes from the pools (DHCPv6 hands it out).
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import post

pytestmark = [pytest.mark.api]

MAC = "fa:16:3e:12:34:56"


@pytest.mark.parametrize(
    ("mode", "prefix", "expected"),
    [
        ("slaac", "2001:db8:71", "2001:db8:71:0:f816:3eff:fe12:3456"),
        ("dhcpv6-stateless", "2001:db8:72", "2001:db8:72:0:f816:3eff:fe12:3456"),
        ("dhcpv6-stateful", "2001:db8:73", None),  # from the pools
    ],
)
def test_the_port_shows_the_address_its_guest_will_have(
    http: httpx.Client, mode: str, prefix: str, expected: str | None
) -> None:
    net = post(http, "networks", "network", name=f"v6-{mode}")
    v6 = post(
        http, "subnets", "subnet", network_id=net["id"], ip_version=6, cidr=f"{prefix}::/64",
        ipv6_address_mode=mode, ipv6_ra_mode=mode,
    )  # fmt: skip
    port = post(http, "ports", "port", network_id=net["id"], mac_address=MAC)
    (fixed,) = port["fixed_ips"]
    assert fixed["subnet_id"] == v6["id"]
    pool = v6["allocation_pools"][0]
    if expected is None:
        assert fixed["ip_address"] == pool["start"]
        return
    assert fixed["ip_address"] == expected
    by_subnet = post(
        http, "ports", "port", network_id=net["id"], mac_address="fa:16:3e:00:00:07",
        fixed_ips=[{"subnet_id": v6["id"]}],
    )  # fmt: skip
    assert by_subnet["fixed_ips"][0]["ip_address"] == f"{prefix}:0:f816:3eff:fe00:7"
