"""A subnet's new ``gateway_ip`` reaches the hosts: the endpoint records follow it.

The host agent proxies (IPv6 proxy NDP) whatever gateways a port's endpoint record names,
so after ``PUT /v2.0/subnets/{id}`` changes the gateway, every bound port on the subnet
must have its record rewritten in the same transaction, or its VM cannot reach the new
gateway. The tests drive a started api over HTTP and read the records from its store:
the new gateway replaces the old one (and ``null`` removes it) at the subnet's own
revision, unbound ports get no record, a refused update changes no record, and a subnet
with more bound ports than one store transaction holds still has every record rewritten.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from routeplane.services.core.endpoint_refresh import PORTS_PER_TXN
from routeplane.store import Store
from tests.api.helpers import ROOT, assert_fault, post, stored

pytestmark = [pytest.mark.api]


def set_gateway(http: httpx.Client, subnet_id: str, gateway: str | None) -> httpx.Response:
    return http.put(f"/subnets/{subnet_id}", json={"subnet": {"gateway_ip": gateway}})


def record(store: Store, host: str, port_id: str) -> dict[str, Any]:
    found = stored(store, f"endpoints/{host}/{port_id}")
    assert found is not None, f"no endpoint record for {port_id} on {host}"
    return found


def revision(store: Store, path: str) -> int:
    kv = store.get(ROOT + path)
    assert kv is not None, path
    return kv.mod_revision


def dual_stack(http: httpx.Client, name: str, v6_prefix: str) -> dict[str, Any]:
    """A network with an IPv4 and an IPv6 subnet whose pools leave room for other
    gateways, plus one port bound to compute1 with an address on both. Subnets never
    overlap, so each world's IPv4 subnet is 10.<the IPv6 prefix's last group>.0.0/24."""
    net = post(http, "networks", "network", name=name)
    v4_prefix = "10." + v6_prefix.rsplit(":", 1)[1]
    v4 = post(
        http, "subnets", "subnet", network_id=net["id"], ip_version=4, cidr=f"{v4_prefix}.0.0/24",
        allocation_pools=[{"start": f"{v4_prefix}.0.10", "end": f"{v4_prefix}.0.200"}],
    )  # fmt: skip
    v6 = post(
        http, "subnets", "subnet", network_id=net["id"], ip_version=6,
        cidr=f"{v6_prefix}::/64", gateway_ip=f"{v6_prefix}::1",
        allocation_pools=[{"start": f"{v6_prefix}::100", "end": f"{v6_prefix}::1ff"}],
    )  # fmt: skip
    fixed = [{"subnet_id": v4["id"]}, {"subnet_id": v6["id"]}]
    vm = post(
        http, "ports", "port", network_id=net["id"], name=f"{name}-vm", fixed_ips=fixed,
        **{"binding:host_id": "compute1"},
    )  # fmt: skip
    assert {ip["subnet_id"] for ip in vm["fixed_ips"]} == {v4["id"], v6["id"]}
    return {"net": net, "v4": v4, "v6": v6, "vm": vm}


def test_a_new_ipv6_gateway_replaces_the_old_in_the_same_transaction(
    http: httpx.Client, store: Store
) -> None:
    world = dual_stack(http, "gw-change", "2001:db8:61")
    vm, v6 = world["vm"], world["v6"]
    before = record(store, "compute1", vm["id"])
    assert before["gateways"] == ["10.61.0.1", "2001:db8:61::1"]

    response = set_gateway(http, v6["id"], "2001:db8:61::2")
    assert response.status_code == 200, response.text
    assert response.json()["subnet"]["gateway_ip"] == "2001:db8:61::2"
    after = record(store, "compute1", vm["id"])
    assert after["gateways"] == ["10.61.0.1", "2001:db8:61::2"]
    assert after == {**before, "gateways": after["gateways"]}  # nothing else changed
    assert revision(store, f"endpoints/compute1/{vm['id']}") == revision(
        store, f"subnets/{v6['id']}"
    )  # one transaction with the subnet

    response = set_gateway(http, v6["id"], None)
    assert response.status_code == 200, response.text
    assert response.json()["subnet"]["gateway_ip"] is None
    assert record(store, "compute1", vm["id"])["gateways"] == ["10.61.0.1"]

    # and an IPv4 gateway change reaches the record the same way
    assert set_gateway(http, world["v4"]["id"], "10.61.0.254").status_code == 200
    assert record(store, "compute1", vm["id"])["gateways"] == ["10.61.0.254"]


def test_an_unbound_port_gets_no_record_and_is_not_written(
    http: httpx.Client, store: Store
) -> None:
    world = dual_stack(http, "gw-unbound", "2001:db8:62")
    idle = post(
        http, "ports", "port", network_id=world["net"]["id"], name="idle",
        fixed_ips=[{"subnet_id": world["v6"]["id"]}],
    )  # fmt: skip
    port_revision = revision(store, f"ports/{idle['id']}")

    assert set_gateway(http, world["v6"]["id"], "2001:db8:62::2").status_code == 200
    records = store.range(ROOT + "endpoints/").items
    assert not [kv.key for kv in records if kv.key.endswith("/" + idle["id"])]
    assert revision(store, f"ports/{idle['id']}") == port_revision
    assert "2001:db8:62::2" in record(store, "compute1", world["vm"]["id"])["gateways"]


def test_a_refused_gateway_change_leaves_the_records_alone(
    http: httpx.Client, store: Store
) -> None:
    world = dual_stack(http, "gw-refused", "2001:db8:63")
    vm, v6 = world["vm"], world["v6"]
    path = f"endpoints/compute1/{vm['id']}"
    before, before_revision = record(store, "compute1", vm["id"]), revision(store, path)

    response = set_gateway(http, v6["id"], "2001:db8:63::180")  # inside the pool
    assert_fault(
        response,
        409,
        "GatewayConflictWithAllocationPools",
        "Gateway ip 2001:db8:63::180 conflicts with allocation pool "
        "2001:db8:63::100-2001:db8:63::1ff.",
    )
    assert record(store, "compute1", vm["id"]) == before
    assert revision(store, path) == before_revision
    assert http.get(f"/subnets/{v6['id']}").json()["subnet"]["gateway_ip"] == "2001:db8:63::1"


def test_more_bound_ports_than_one_transaction_holds_all_follow(
    http: httpx.Client, store: Store
) -> None:
    world = dual_stack(http, "gw-many", "2001:db8:64")
    count = PORTS_PER_TXN + 5
    ports = [world["vm"]]
    for i in range(count):
        fields = {
            "network_id": world["net"]["id"],
            "name": f"many{i}",
            "fixed_ips": [{"subnet_id": world["v6"]["id"]}],
            "binding:host_id": f"compute{i % 3}",
        }
        ports.append(post(http, "ports", "port", **fields))

    response = set_gateway(http, world["v6"]["id"], "2001:db8:64::2")
    assert response.status_code == 200, response.text
    stale = [
        p["id"]
        for p in ports
        if "2001:db8:64::2" not in record(store, p["binding:host_id"], p["id"])["gateways"]
        or "2001:db8:64::1" in record(store, p["binding:host_id"], p["id"])["gateways"]
    ]
    assert stale == []
