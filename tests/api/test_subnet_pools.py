"""Subnet pools (subnet_allocation, default-subnetpools, subnetpool-prefix-ops) through
the real ``openstack`` CLI and raw HTTP: what a pool shows, the CIDRs it hands out
(never one that overlaps a subnet anywhere in the address space), and Neutron's errors
for what it refuses (compared with the neutron-peer)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from routeplane.testing.api import ApiServer
from tests.api.conftest import Cli
from tests.api.helpers import assert_fault, client, post

pytestmark = [pytest.mark.api]


def subnet_from(http: httpx.Client, network_id: str, **fields: Any) -> httpx.Response:
    body = {"network_id": network_id, "ip_version": 4, **fields}
    return http.post("/subnets", json={"subnet": body})


def test_pool_created_listed_and_shown_with_the_openstack_cli(admin_cli: Cli) -> None:
    pool = admin_cli.json(
        "subnet",
        "pool",
        "create",
        "--pool-prefix",
        "10.180.0.0/16",
        "--default-prefix-length",
        "26",
        "--max-prefix-length",
        "28",
        "cli-pool",
    )
    assert pool["prefixes"] == ["10.180.0.0/16"]
    assert (pool["default_prefixlen"], pool["min_prefixlen"], pool["max_prefixlen"]) == (26, 8, 28)
    assert pool["ip_version"] == 4
    assert pool["is_default"] is False
    names = [p["Name"] for p in admin_cli.json("subnet", "pool", "list")]
    assert "cli-pool" in names
    assert admin_cli.json("subnet", "pool", "show", "cli-pool")["id"] == pool["id"]
    net = admin_cli.json("network", "create", "pool-net")
    create = ("subnet", "create", "--network", net["id"], "--subnet-pool", "cli-pool")
    subnet = admin_cli.json(*create, "pool-sub")
    assert subnet["cidr"] == "10.180.0.0/26"
    assert subnet["subnetpool_id"] == pool["id"]
    assert subnet["gateway_ip"] == "10.180.0.1"
    longer = admin_cli.json(*create, "--prefix-length", "28", "pool-sub2")
    assert longer["cidr"] == "10.180.0.64/28"
    stderr = admin_cli.fails("subnet", "pool", "delete", "cli-pool")
    assert "Subnet pool has existing allocations" in stderr


def test_fields_as_neutron_shows_them(http: httpx.Client) -> None:
    pool = post(http, "subnetpools", "subnetpool", name="p6", prefixes=["fd18::/48"])
    assert {k: pool[k] for k in ("default_prefixlen", "min_prefixlen", "max_prefixlen")} == {
        "default_prefixlen": "64",
        "min_prefixlen": "64",
        "max_prefixlen": "128",
    }
    assert pool["ip_version"] == 6
    assert pool["shared"] is False
    assert pool["address_scope_id"] is None
    assert pool["default_quota"] is None
    assert pool["revision_number"] == 0
    assert set(pool) >= {"tags", "created_at", "updated_at", "project_id", "tenant_id"}
    grown = http.put(f"/subnetpools/{pool['id']}", json={"subnetpool": {"prefixes": ["fd18::/47"]}})
    assert grown.status_code == 200, grown.text
    assert grown.json()["subnetpool"]["revision_number"] == 1


@pytest.mark.parametrize(
    ("fields", "code", "type_name", "message"),
    [
        (
            {"prefixes": ["10.181.0.0/16", "fd19::/48"]},
            400,
            "PrefixVersionMismatch",
            "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
        ),
        ({"prefixes": []}, 400, "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list."),
        (
            {},
            400,
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'prefixes' not specified",
        ),
        (
            {"prefixes": ["notacidr"]},
            400,
            "HTTPBadRequest",
            "Invalid input for prefixes. Reason: 'notacidr' is not a valid IP subnet.",
        ),
        (
            {"prefixes": ["10.181.0.0/16"], "min_prefixlen": 20, "default_prefixlen": 18},
            400,
            "IllegalSubnetPoolPrefixBounds",
            "Illegal prefix bounds: default_prefixlen=18, min_prefixlen=20.",
        ),
        (
            {"prefixes": ["10.181.0.0/16"], "max_prefixlen": 33},
            400,
            "IllegalSubnetPoolPrefixBounds",
            "Illegal prefix bounds: max_prefixlen=33, ip_version_max=32.",
        ),
        (
            {"prefixes": ["10.181.0.0/16"], "min_prefixlen": 24, "max_prefixlen": 20},
            400,
            "IllegalSubnetPoolPrefixBounds",
            "Illegal prefix bounds: min_prefixlen=24, max_prefixlen=20.",
        ),
        (
            {"prefixes": ["10.181.0.0/16"], "default_prefixlen": "abc"},
            400,
            "InvalidInput",
            "Invalid input for operation: 'abc' is not an integer.",
        ),
        (
            {"prefixes": ["10.181.0.0/16"], "default_quota": -1},
            400,
            "HTTPBadRequest",
            "Invalid input for default_quota. Reason: '-1' should be non-negative.",
        ),
        (
            {
                "prefixes": ["10.181.0.0/16"],
                "address_scope_id": "00000000-0000-0000-0000-000000000000",
            },
            404,
            "AddressScopeNotFound",
            "Address scope 00000000-0000-0000-0000-000000000000 could not be found.",
        ),
    ],
)
def test_bad_pools_refused_as_neutron_refuses_them(
    http: httpx.Client, fields: dict[str, Any], code: int, type_name: str, message: str
) -> None:
    before = http.get("/subnetpools").json()["subnetpools"]
    response = http.post("/subnetpools", json={"subnetpool": {"name": "bad", **fields}})
    assert_fault(response, code, type_name, message)
    assert http.get("/subnetpools").json()["subnetpools"] == before


ALLOCATION_ERRORS: list[tuple[dict[str, Any], int, str, str]] = [
    (
        {"prefixlen": 4},
        400,
        "MinPrefixSubnetAllocationError",
        "Unable to allocate subnet with prefix length 4, minimum allowed prefix is 8.",
    ),
    (
        {"prefixlen": 30},
        400,
        "MaxPrefixSubnetAllocationError",
        "Unable to allocate subnet with prefix length 30, maximum allowed prefix is 28.",
    ),
    (
        {"cidr": "10.99.0.0/24"},
        409,
        "SubnetAllocationError",
        "Failed to allocate subnet: Cannot allocate requested subnet from the available set of "
        "prefixes.",
    ),
    (
        {"prefixlen": 16},
        409,
        "SubnetAllocationError",
        "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /16.",
    ),
    (
        {"ip_version": 6},
        400,
        "BadRequest",
        "Bad subnets request: Cannot allocate IPv6 subnet from IPv4 subnet pool.",
    ),
]


def test_allocation_errors(http: httpx.Client) -> None:
    """Neutron's answers (the peer's, but SubnetAllocationError is a 409, not its 500), then a pool
    handing out its four /24s and refusing a fifth."""
    pool = post(
        http,
        "subnetpools",
        "subnetpool",
        prefixes=["10.182.0.0/22"],
        default_prefixlen=24,
        max_prefixlen=28,
    )
    net = post(http, "networks", "network", name="alloc-net")
    pid, nid = pool["id"], net["id"]
    for fields, code, type_name, message in ALLOCATION_ERRORS:
        assert_fault(subnet_from(http, nid, subnetpool_id=pid, **fields), code, type_name, message)
    missing = "00000000-0000-0000-0000-000000000000"
    assert_fault(
        subnet_from(http, nid, subnetpool_id=missing),
        404,
        "SubnetPoolNotFound",
        f"Subnet pool {missing} could not be found.",
    )
    assert http.get("/subnets", params={"network_id": nid}).json()["subnets"] == []
    cidrs = [subnet_from(http, nid, subnetpool_id=pid).json()["subnet"]["cidr"] for _ in range(4)]
    assert cidrs == [f"10.182.{i}.0/24" for i in range(4)]
    assert subnet_from(http, nid, subnetpool_id=pid).status_code == 409


def test_default_pool_from_the_config_and_only_one_per_family(http: httpx.Client) -> None:
    defaults = http.get("/subnetpools", params={"is_default": "true"}).json()["subnetpools"]
    assert sorted(p["prefixes"][0] for p in defaults) == ["10.160.0.0/12", "fd16::/40"]
    assert all(p["shared"] for p in defaults)
    assert_fault(
        http.post(
            "/subnetpools",
            json={"subnetpool": {"prefixes": ["10.183.0.0/16"], "is_default": True}},
        ),
        400,
        "InvalidInput",
        "Invalid input for operation: A default subnetpool for this IP family has already "
        "been set. Only one default may exist per IP family.",
    )
    net = post(http, "networks", "network", name="default-pool-net")
    v6 = subnet_from(http, net["id"], ip_version=6, use_default_subnetpool=True)
    assert v6.status_code == 201, v6.text
    shown = v6.json()["subnet"]
    assert shown["cidr"].startswith("fd16:")
    assert shown["cidr"].endswith("/64")
    assert "use_default_subnetpool" not in shown
    assert "prefixlen" not in shown
    assert shown["gateway_ip"] == shown["cidr"].replace("/64", "1")  # Neutron: first host


def test_prefix_ops(http: httpx.Client) -> None:
    pool = post(http, "subnetpools", "subnetpool", prefixes=["10.184.0.0/24"], default_prefixlen=26)
    net = post(http, "networks", "network", name="ops-net")
    assert subnet_from(http, net["id"], subnetpool_id=pool["id"]).status_code == 201
    added = http.put(
        f"/subnetpools/{pool['id']}/add_prefixes", json={"prefixes": ["10.184.1.0/24"]}
    )
    assert added.json() == {"prefixes": ["10.184.0.0/23"]}
    assert_fault(
        http.put(
            f"/subnetpools/{pool['id']}/remove_prefixes", json={"prefixes": ["10.184.0.0/25"]}
        ),
        400,
        "IllegalSubnetPoolPrefixUpdate",
        "Illegal update to prefixes: One or more the prefixes to be removed is in use by a subnet..",
    )
    removed = http.put(
        f"/subnetpools/{pool['id']}/remove_prefixes", json={"prefixes": ["10.184.1.0/24"]}
    )
    assert removed.json() == {"prefixes": ["10.184.0.0/24"]}
    assert_fault(
        http.put(
            f"/subnetpools/{pool['id']}", json={"subnetpool": {"prefixes": ["10.185.0.0/24"]}}
        ),
        400,
        "IllegalSubnetPoolPrefixUpdate",
        "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.",
    )


def test_two_projects_racing_for_one_pool_get_disjoint_subnets(
    api: ApiServer, connect: Any
) -> None:
    """Each project allocates from the shared default pool at once; no two subnets
    overlap, and neither learns the other's CIDR from a refusal."""
    with (
        client(api, str(connect("demo").auth_token)) as a,
        client(api, str(connect("alt").auth_token)) as b,
    ):
        nets = [post(who, "networks", "network", name="race") for who in (a, b)]

        def allocate(i: int) -> httpx.Response:
            who, net = ((a, nets[0]), (b, nets[1]))[i % 2]
            return subnet_from(who, net["id"], use_default_subnetpool=True, prefixlen=28)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(allocate, range(16)))
    assert [r.status_code for r in answers] == [201] * 16, [r.text for r in answers]
    cidrs = {r.json()["subnet"]["cidr"] for r in answers}
    assert len(cidrs) == 16
