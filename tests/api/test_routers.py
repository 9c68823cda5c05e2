"""Routers against a started api: the gateway (a hidden port on the external network) and
the interfaces (ports holding subnet gateway IPs), with Neutron's answers and refusals
exact to the type, code and message (the oracle transcript, section 10, and ``l3_db``).
Floating IPs through routers: ``test_floating_ips.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openstack.connection
import pytest

from routeplane.testing.api import ApiServer
from tests.api.helpers import assert_fault, client

pytestmark = [
    pytest.mark.api,
    # openstacksdk 4.22 warns about its own internals on connect(); see test_floating_ips.
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]

ROUTER_FIELDS = [
    "id", "name", "project_id", "admin_state_up", "status", "external_gateway_info",
    "description", "availability_zones", "distributed", "ha", "availability_zone_hints",
    "routes", "flavor_id", "tags", "created_at", "updated_at", "revision_number", "tenant_id",
]  # fmt: skip
UNKNOWN = "12345678-1234-5678-1234-567812345678"


@pytest.fixture(scope="module")
def demo_http(
    api: ApiServer, connect: Callable[..., openstack.connection.Connection]
) -> Iterator[httpx.Client]:
    with client(api, str(connect("demo").auth_token)) as demo:
        yield demo


def make_net(http: httpx.Client, name: str, cidr: str, *, external: bool = False) -> dict[str, Any]:
    net = http.post("/networks", json={"network": {"name": name, "router:external": external}})
    assert net.status_code == 201, net.text
    net_id = net.json()["network"]["id"]
    subnet = http.post(
        "/subnets", json={"subnet": {"network_id": net_id, "ip_version": 4, "cidr": cidr}}
    )
    assert subnet.status_code == 201, subnet.text
    return {"id": net_id, "subnet": subnet.json()["subnet"]}


@pytest.fixture(scope="module")
def nets(http: httpx.Client) -> dict[str, dict[str, Any]]:
    return {
        "public": make_net(http, "public", "172.24.4.0/24", external=True),
        "public2": make_net(http, "public2", "172.25.0.0/24", external=True),
        "tenant": make_net(http, "tenant", "10.90.0.0/24"),
    }


def gateway_port(http: httpx.Client, router_id: str) -> list[dict[str, Any]]:
    ports = http.get("/ports", params={"device_id": router_id}).json()["ports"]
    return [p for p in ports if p["device_owner"] == "network:router_gateway"]


def test_gateway_lifecycle(http: httpx.Client, nets: dict[str, dict[str, Any]]) -> None:
    public, public2 = nets["public"], nets["public2"]
    created = http.post(
        "/routers",
        json={
            "router": {
                "name": "r1",
                "external_gateway_info": {
                    "network_id": public["id"],
                    "external_fixed_ips": [{"ip_address": "172.24.4.50"}],
                },
            }
        },
    )
    assert created.status_code == 201, created.text
    router = created.json()["router"]
    assert list(router) == ROUTER_FIELDS
    assert router["external_gateway_info"] == {
        "network_id": public["id"],
        "external_fixed_ips": [{"subnet_id": public["subnet"]["id"], "ip_address": "172.24.4.50"}],
        "enable_snat": True,
    }
    [port] = gateway_port(http, router["id"])
    assert port["project_id"] == ""  # hidden from the tenant, as in Neutron
    url = f"/routers/{router['id']}"

    # new address on the same network: the same port, re-addressed
    moved = http.put(
        url,
        json={
            "router": {
                "external_gateway_info": {
                    "network_id": public["id"],
                    "external_fixed_ips": [{"ip_address": "172.24.4.60"}],
                    "enable_snat": False,
                }
            }
        },
    ).json()["router"]["external_gateway_info"]
    assert moved["external_fixed_ips"][0]["ip_address"] == "172.24.4.60"
    assert moved["enable_snat"] is False
    assert [p["id"] for p in gateway_port(http, router["id"])] == [port["id"]]

    # another network: a new port there, the old one and its address gone
    other = http.put(url, json={"router": {"external_gateway_info": {"network_id": public2["id"]}}})
    info = other.json()["router"]["external_gateway_info"]
    assert info["network_id"] == public2["id"]
    assert info["external_fixed_ips"][0]["ip_address"].startswith("172.25.0.")
    assert http.get(f"/ports/{port['id']}").status_code == 404

    cleared = http.put(url, json={"router": {"external_gateway_info": {}}})
    assert cleared.json()["router"]["external_gateway_info"] is None
    assert gateway_port(http, router["id"]) == []
    assert http.delete(url).status_code == 204


def test_gateway_refusals(
    http: httpx.Client, demo_http: httpx.Client, nets: dict[str, dict[str, Any]]
) -> None:
    def create(client: httpx.Client, gateway: Any) -> httpx.Response:
        return client.post("/routers", json={"router": {"external_gateway_info": gateway}})

    tenant, public = nets["tenant"]["id"], nets["public"]["id"]
    assert_fault(
        create(http, {"network_id": tenant}),
        400,
        "BadRequest",
        f"Bad router request: Network {tenant} is not an external network.",
    )
    assert_fault(
        create(http, {"network_id": UNKNOWN}),
        404,
        "NetworkNotFound",
        f"Network {UNKNOWN} could not be found.",
    )
    assert_fault(
        create(http, {"network_id": public, "external_fixed_ips": [{"ip_address": "172.24.4.1"}]}),
        400,
        "BadRequest",
        "Bad router request: External IP 172.24.4.1 is the same as the gateway IP.",
    )
    assert_fault(
        create(http, {"enable_snat": False}),
        400,
        "HTTPBadRequest",
        "Invalid input for external_gateway_info. Reason: Validation of dictionary's keys "
        "failed. Expected keys: {'network_id'} Provided keys: {'enable_snat'}.",
    )
    assert_fault(
        create(demo_http, {"network_id": public, "enable_snat": False}),
        403,
        "PolicyNotAuthorized",
        "(rule:create_router:external_gateway_info:enable_snat) is disallowed by policy",
    )
    # a member may set a gateway on an external network it does not own
    mine = create(demo_http, {"network_id": public})
    assert mine.status_code == 201, mine.text
    assert "distributed" not in mine.json()["router"]  # admin-only fields are hidden


def test_interface_requests(http: httpx.Client, nets: dict[str, dict[str, Any]]) -> None:
    router = http.post("/routers", json={"router": {"name": "r-check"}}).json()["router"]
    assert router["external_gateway_info"] is None
    url = f"/routers/{router['id']}"
    subnet = nets["tenant"]["subnet"]
    assert_fault(
        http.put(f"{url}/add_router_interface", json={}),
        400,
        "BadRequest",
        "Bad router request: Either subnet_id or port_id must be specified.",
    )
    assert_fault(
        http.put(
            f"{url}/add_router_interface", json={"subnet_id": subnet["id"], "port_id": UNKNOWN}
        ),
        400,
        "BadRequest",
        "Bad router request: Cannot specify both subnet-id and port-id.",
    )
    assert_fault(
        http.put(f"{url}/add_router_interface", json={"subnet_id": UNKNOWN}),
        404,
        "SubnetNotFound",
        f"Subnet {UNKNOWN} could not be found.",
    )
    assert_fault(
        http.put(f"{url}/remove_router_interface", json={"subnet_id": subnet["id"]}),
        404,
        "RouterInterfaceNotFoundForSubnet",
        f"Router {router['id']} has no interface on subnet {subnet['id']}",
    )
    added = http.put(f"{url}/add_router_interface", json={"subnet_id": subnet["id"]})
    assert added.status_code == 200, added.text
    info = added.json()  # bare, not wrapped
    assert list(info) == ["id", "project_id", "port_id", "network_id", "subnet_id", "subnet_ids"]
    assert (info["id"], info["subnet_ids"]) == (router["id"], [subnet["id"]])
    port = http.get(f"/ports/{info['port_id']}").json()["port"]
    assert port["device_owner"] == "network:router_interface"
    assert port["device_id"] == router["id"]
    assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "10.90.0.1"}]
    assert port["security_groups"] == []
    assert_fault(
        http.put(f"{url}/add_router_interface", json={"subnet_id": subnet["id"]}),
        400,
        "BadRequest",
        f"Bad router request: Router already has a port on subnet {subnet['id']}.",
    )
    assert_fault(
        http.delete(url),
        409,
        "RouterInUse",
        f"Router {router['id']} has ports still attached: {info['port_id']}",
    )
    assert http.put(url, json={"router": {}}).json()["router"]["revision_number"] == 1
    removed = http.put(f"{url}/remove_router_interface", json={"subnet_id": subnet["id"]})
    assert removed.json() == info
    assert http.get(f"/ports/{info['port_id']}").status_code == 404
    assert http.delete(url).status_code == 204


def test_interface_by_port(http: httpx.Client, nets: dict[str, dict[str, Any]]) -> None:
    router = http.post("/routers", json={"router": {"name": "r-port"}}).json()["router"]
    url = f"/routers/{router['id']}"
    net = make_net(http, "by-port", "10.91.0.0/24")
    port = http.post("/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
    added = http.put(f"{url}/add_router_interface", json={"port_id": port["id"]})
    assert added.status_code == 200, added.text
    assert added.json()["port_id"] == port["id"]
    assert_fault(
        http.put(f"{url}/add_router_interface", json={"port_id": port["id"]}),
        409,
        "PortInUse",
        f"Unable to complete operation on port {port['id']} for network {net['id']}. "
        f"Port already has an attached device {router['id']}.",
    )
    other = nets["tenant"]["subnet"]["id"]
    assert_fault(
        http.put(
            f"{url}/remove_router_interface", json={"port_id": port["id"], "subnet_id": other}
        ),
        400,
        "SubnetMismatchForPort",
        f"Subnet on port {port['id']} does not match the requested subnet {other}.",
    )
    assert_fault(
        http.put(f"{url}/remove_router_interface", json={"port_id": UNKNOWN}),
        404,
        "RouterInterfaceNotFound",
        f"Router {router['id']} does not have an interface with id {UNKNOWN}",
    )
    removed = http.put(f"{url}/remove_router_interface", json={"port_id": port["id"]})
    assert removed.status_code == 200
    assert http.get(f"/ports/{port['id']}").status_code == 404  # Neutron deletes it
    assert http.delete(url).status_code == 204
