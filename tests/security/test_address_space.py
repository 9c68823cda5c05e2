"""Red team: taking another project's addresses by overlapping its subnet.

Hole 1 of issue 13: B created a subnet with A's CIDR on B's own network, then a port
holding A's VM address; once bound, two hosts route that address and BGP picks one.
routeplane is one address space (Neutron's ``allow_overlapping_ips = False``): a subnet
that overlaps any other, on any network, is refused with Neutron's InvalidInput.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from routeplane.testing.api import ApiServer
from tests.api.helpers import assert_fault, client
from tests.security.tenants import Tenants

pytestmark = [pytest.mark.api]


def overlaps(cidr: str, network_id: str) -> str:
    return (
        f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
        f"{network_id} overlaps with another subnet."
    )


def try_subnet(who: httpx.Client, network_id: str, cidr: str) -> httpx.Response:
    version = 6 if ":" in cidr else 4
    body = {"network_id": network_id, "cidr": cidr, "ip_version": version}
    return who.post("/subnets", json={"subnet": body})


def test_another_projects_cidr_on_ones_own_network(tenants: Tenants) -> None:
    """B tries A's CIDR, and then a wider and a narrower one around it: all refused,
    so B never gets a port holding A's VM address."""
    net_a = tenants.network(tenants.a, name="a-net")
    tenants.subnet(tenants.a, net_a["id"], "10.61.0.0/24")
    victim = tenants.port(tenants.a, net_a["id"], name="a-vm")
    net_b = tenants.network(tenants.b, name="b-net")
    for cidr in ("10.61.0.0/24", "10.61.0.0/16", "10.61.0.128/25"):
        assert_fault(
            try_subnet(tenants.b, net_b["id"], cidr),
            400,
            "InvalidInput",
            overlaps(cidr, net_b["id"]),
        )
    address = victim["fixed_ips"][0]["ip_address"]
    taken = tenants.b.post(
        "/ports",
        json={"port": {"network_id": net_b["id"], "fixed_ips": [{"ip_address": address}]}},
    )
    assert taken.status_code == 400, taken.text  # B's network has no subnet to hold it
    assert tenants.b.get("/subnets").json()["subnets"] == []


def test_ipv6_and_the_admin_are_held_too(tenants: Tenants) -> None:
    net_a = tenants.network(tenants.a, name="a-net6")
    tenants.subnet(tenants.a, net_a["id"], "fd61::/64")
    net_admin = tenants.network(tenants.admin, name="admin-net6")
    assert_fault(
        try_subnet(tenants.admin, net_admin["id"], "fd61::/48"),
        400,
        "InvalidInput",
        overlaps("fd61::/48", net_admin["id"]),
    )
    # what does not overlap is no one's business: the next /64 is free
    tenants.subnet(tenants.admin, net_admin["id"], "fd61:0:0:1::/64")


RACERS = (
    "10.62.0.0/16",
    "10.62.0.0/24",
    "10.62.0.0/20",
    "10.62.0.128/25",
    "10.62.0.0/22",
)  # all share 10.62.0.128


def test_racing_overlapping_creates_exactly_one_wins(api: ApiServer, tenants: Tenants) -> None:
    """Twenty creates of mutually overlapping subnets of various prefix lengths, on
    twenty networks, all at once: exactly one is admitted."""
    networks = [tenants.network(tenants.admin, name=f"race-{i}")["id"] for i in range(20)]

    def create(index: int) -> int:
        with client(api, api.admin_token) as http:
            cidr = RACERS[index % len(RACERS)]
            return try_subnet(http, networks[index], cidr).status_code

    with ThreadPoolExecutor(len(networks)) as pool:
        codes = list(pool.map(create, range(len(networks))))
    assert sorted(codes) == [201] + [400] * (len(networks) - 1)
    cidrs = [
        s["cidr"]
        for s in tenants.admin.get("/subnets").json()["subnets"]
        if s["network_id"] in networks
    ]
    assert len(cidrs) == 1
