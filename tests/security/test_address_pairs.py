"""Red team: holding, and sending from, addresses that are not one's own.

Holes 2 and 3 of issue 13. B put A's VM address into ``allowed_address_pairs`` of B's
port, and the endpoint record routed it to B's VM; B put ``0.0.0.0/0`` there and could
send from any source. A port may hold only its fixed IPs, its floating IPs and addresses
inside the subnets of its own network; only admins and the network's owner set pairs;
and no address is held by ports of two projects, not even by an admin's grant.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from routeplane.store import Store
from tests.api.helpers import assert_fault, stored
from tests.security.tenants import Tenants

pytestmark = [pytest.mark.api]


def outside(address: str, port_id: str) -> str:
    return (
        f"Invalid input for operation: Allowed address pair {address} is not allowed on "
        f"port {port_id}: a port may hold only its fixed IPs, its floating IPs and "
        "addresses inside the subnets of its own network."
    )


def held(address: str, holder: str) -> str:
    return (
        f"Invalid input for operation: Allowed address pair {address} is held by port "
        f"{holder} of another project: an address is routed to the ports of one project only."
    )


def set_pairs(who: httpx.Client, port_id: str, *addresses: str) -> httpx.Response:
    pairs = [{"ip_address": a} for a in addresses]
    return who.put(f"/ports/{port_id}", json={"port": {"allowed_address_pairs": pairs}})


@pytest.fixture(scope="module")
def world(tenants: Tenants) -> dict[str, Any]:
    net_a = tenants.network(tenants.a, name="a-pairs")
    tenants.subnet(tenants.a, net_a["id"], "10.71.0.0/24")
    net_b = tenants.network(tenants.b, name="b-pairs")
    tenants.subnet(tenants.b, net_b["id"], "10.72.0.0/24")
    victim = tenants.port(tenants.a, net_a["id"], name="a-vm")
    attacker = tenants.port(tenants.b, net_b["id"], name="b-vm")
    return {"net_a": net_a, "net_b": net_b, "victim": victim, "attacker": attacker}


def test_another_projects_vm_address(tenants: Tenants, world: dict[str, Any], store: Store) -> None:
    """B names A's VM address as a pair of B's bound port: refused, never routed to B."""
    attacker = world["attacker"]["id"]
    bound = tenants.admin.put(f"/ports/{attacker}", json={"port": {"binding:host_id": "hb"}})
    assert bound.status_code == 200, bound.text
    stolen = world["victim"]["fixed_ips"][0]["ip_address"]
    assert_fault(
        set_pairs(tenants.b, attacker, stolen), 400, "InvalidInput", outside(stolen, attacker)
    )
    created = tenants.b.post(
        "/ports",
        json={
            "port": {
                "network_id": world["net_b"]["id"],
                "allowed_address_pairs": [{"ip_address": stolen}],
            }
        },
    )
    assert created.status_code == 400, created.text
    record = stored(store, f"endpoints/hb/{attacker}")
    assert record is not None
    assert stolen not in record["allowed_addresses"]


@pytest.mark.parametrize(
    "prefix", ["0.0.0.0/0", "::/0", "10.0.0.0/8", "10.71.0.0/24", "10.72.0.0/23", "192.0.2.1"]
)
def test_any_source_and_foreign_prefixes(
    tenants: Tenants, world: dict[str, Any], prefix: str
) -> None:
    """Prefixes are allowed sources: none reaching outside B's own subnets is accepted."""
    attacker = world["attacker"]["id"]
    assert_fault(
        set_pairs(tenants.b, attacker, prefix), 400, "InvalidInput", outside(prefix, attacker)
    )
    shown = tenants.b.get(f"/ports/{attacker}").json()["port"]
    assert shown["allowed_address_pairs"] == []


def test_keepalived_vip_of_ones_own_network(tenants: Tenants, world: dict[str, Any]) -> None:
    """What stays possible: ports of one network sharing a VIP, and a prefix inside it."""
    net = world["net_b"]["id"]
    vip = tenants.port(tenants.b, net, name="vip", fixed_ips=[{"ip_address": "10.72.0.250"}])
    first = tenants.port(tenants.b, net, name="keepalived-1")
    second = tenants.port(tenants.b, net, name="keepalived-2")
    for port in (first, second):
        done = set_pairs(tenants.b, port["id"], "10.72.0.250", "10.72.0.128/26")
        assert done.status_code == 200, done.text
    own = first["fixed_ips"][0]["ip_address"]
    assert set_pairs(tenants.b, first["id"], own).status_code == 200
    assert vip["fixed_ips"] == [
        {"subnet_id": vip["fixed_ips"][0]["subnet_id"], "ip_address": "10.72.0.250"}
    ]


def test_a_member_on_someone_elses_shared_network(tenants: Tenants) -> None:
    """Neutron's policy: only admins and the network's owner set pairs."""
    shared = tenants.network(tenants.admin, name="shared-pairs", shared=True)
    tenants.subnet(tenants.admin, shared["id"], "10.73.0.0/24")
    port = tenants.port(tenants.b, shared["id"], name="b-on-shared")
    assert_fault(
        set_pairs(tenants.b, port["id"], "10.73.0.99"),
        403,
        "PolicyNotAuthorized",
        "(rule:update_port and rule:update_port:allowed_address_pairs) is disallowed by policy",
    )
    body = {"network_id": shared["id"], "allowed_address_pairs": [{"ip_address": "10.73.0.99"}]}
    assert_fault(
        tenants.b.post("/ports", json={"port": body}),
        403,
        "PolicyNotAuthorized",
        "(rule:create_port and rule:create_port:allowed_address_pairs) is disallowed by policy",
    )


def test_the_owner_of_a_shared_network_and_the_admin(tenants: Tenants) -> None:
    """A shares its network; B's VM lives on it. Neither A (the owner) nor the admin can
    make A's port hold B's address; the admin may grant A a prefix outside the subnets,
    and A's later changes keep it."""
    shared = tenants.network(tenants.a, name="a-shared")
    tenants.admin.put(f"/networks/{shared['id']}", json={"network": {"shared": True}})
    tenants.subnet(tenants.a, shared["id"], "10.74.0.0/24")
    b_vm = tenants.port(tenants.b, shared["id"], name="b-vm-on-a")
    a_vm = tenants.port(tenants.a, shared["id"], name="a-vm-on-a")
    address = b_vm["fixed_ips"][0]["ip_address"]
    for who in (tenants.a, tenants.admin):
        assert_fault(
            set_pairs(who, a_vm["id"], address), 400, "InvalidInput", held(address, b_vm["id"])
        )
    granted = set_pairs(tenants.admin, a_vm["id"], "198.51.100.0/24")
    assert granted.status_code == 200, granted.text
    kept = set_pairs(tenants.a, a_vm["id"], "198.51.100.0/24", "10.74.0.200")
    assert kept.status_code == 200, kept.text
    assert_fault(
        set_pairs(tenants.a, a_vm["id"], "198.51.101.0/24"),
        400,
        "InvalidInput",
        outside("198.51.101.0/24", a_vm["id"]),
    )
    # B, on A's network, cannot set pairs at all; the admin cannot give B A's pair address
    assert_fault(
        set_pairs(tenants.admin, b_vm["id"], "10.74.0.200"),
        400,
        "InvalidInput",
        held("10.74.0.200", a_vm["id"]),
    )


def test_a_pair_on_a_shared_network_is_never_handed_to_another_project(
    tenants: Tenants, store: Store
) -> None:
    """The admin gave A's port the pair .3 on the admin's shared network; B then takes
    ports there, by pool and by naming .3: B never gets .3 (the pool skips it, the
    request is refused), so .3 is routed to A's VM only."""
    shared = tenants.network(tenants.admin, name="shared-vip", shared=True)
    subnet = tenants.subnet(tenants.admin, shared["id"], "10.75.0.0/29")  # pool .2-.6
    a_vm = tenants.port(tenants.a, shared["id"], name="a-vm-shared")
    assert a_vm["fixed_ips"][0]["ip_address"] == "10.75.0.2"
    assert set_pairs(tenants.admin, a_vm["id"], "10.75.0.3").status_code == 200
    b_vm = tenants.port(tenants.b, shared["id"], name="b-vm-shared")
    assert b_vm["fixed_ips"][0]["ip_address"] == "10.75.0.4"
    named = tenants.b.post(
        "/ports",
        json={"port": {"network_id": shared["id"], "fixed_ips": [{"ip_address": "10.75.0.3"}]}},
    )
    assert_fault(
        named,
        409,
        "IpAddressAlreadyAllocated",
        f"IP address 10.75.0.3 already allocated in subnet {subnet['id']}",
    )
    moved = tenants.b.put(
        f"/ports/{b_vm['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.75.0.3"}]}}
    )
    assert moved.status_code == 409, moved.text
    assert stored(store, f"ipam/{subnet['id']}/10.75.0.3") is None
    # A drops the pair (the admin's grant ends): .3 is free for anyone again
    assert set_pairs(tenants.admin, a_vm["id"]).status_code == 200
    taken = tenants.port(tenants.b, shared["id"], fixed_ips=[{"ip_address": "10.75.0.3"}])
    assert taken["fixed_ips"][0]["ip_address"] == "10.75.0.3"
