"""Floating IPs against a started api: the walkthrough's floating-IP step with the real
``openstack`` CLI, then Neutron's refusals, exact to the type, code and message (the
oracle transcript, section 10, and ``l3_db``). Routers alone: ``test_routers.py``.

After every (dis)association the tests look at what the host agent acts on: the port's
endpoint record (its ``floating_ips`` NAT pairs) and the ``fip_by_port`` index.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openstack.connection
import pytest

from routeplane.store import Store
from routeplane.testing.api import ApiServer
from tests.api.conftest import Cli
from tests.api.helpers import assert_fault, client, stored

pytestmark = [
    pytest.mark.api,
    # openstacksdk 4.22 warns about its own internals: InfluxDB on every connect() (its
    # parsed metrics config is a dict of Nones, taken for a configured InfluxDB) and
    # _compute_attributes on every resource it builds. Nothing the api can change.
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
]

FIP_FIELDS = [
    "id", "tenant_id", "project_id", "floating_ip_address", "floating_network_id",
    "router_id", "port_id", "fixed_ip_address", "status", "description", "port_details",
    "tags", "created_at", "updated_at", "revision_number",
]  # fmt: skip
Connect = Callable[..., openstack.connection.Connection]


def nat_pairs(store: Store, host: str, port_id: str) -> list[dict[str, str]]:
    record = stored(store, f"endpoints/{host}/{port_id}")
    assert record is not None, f"no endpoint record for {port_id} on {host}"
    pairs: list[dict[str, str]] = record["floating_ips"]
    return pairs


@pytest.fixture(scope="module")
def demo_http(api: ApiServer, connect: Connect) -> Iterator[httpx.Client]:
    with client(api, str(connect("demo").auth_token)) as demo:
        yield demo


@pytest.fixture(scope="module")
def world(admin_cli: Cli) -> dict[str, Any]:
    """The walkthrough's topology: external ``public``, a tenant network, a VM port bound to
    compute1 (the router comes in the first test, with the CLI)."""
    public = admin_cli.json("network", "create", "--external", "public")
    public_v4 = admin_cli.json(
        "subnet", "create", "--network", "public", "--subnet-range", "172.24.4.0/24", "public-v4"
    )
    net = admin_cli.json("network", "create", "fip-net")
    v4 = admin_cli.json(
        "subnet", "create", "--network", "fip-net", "--subnet-range", "10.30.0.0/24", "fip-v4"
    )
    vm1 = admin_cli.json(
        "port", "create", "--network", "fip-net", "--host", "compute1",
        "--device-owner", "compute:nova", "vm1",
    )  # fmt: skip
    return {"public": public, "public_v4": public_v4, "net": net, "v4": v4, "vm1": vm1}


# --- the walkthrough step ----------------------------------------------------------------
def test_walkthrough_floating_ip_with_the_cli(
    admin_cli: Cli, store: Store, world: dict[str, Any]
) -> None:
    router = admin_cli.json("router", "create", "--external-gateway", "public", "r1")
    gateway = router["external_gateway_info"]
    assert gateway["network_id"] == world["public"]["id"]
    assert gateway["enable_snat"] is True
    [external] = gateway["external_fixed_ips"]
    assert external["subnet_id"] == world["public_v4"]["id"]
    assert external["ip_address"].startswith("172.24.4.")

    admin_cli.run("router", "add", "subnet", "r1", "fip-v4")
    [iface] = admin_cli.json("port", "list", "--device-owner", "network:router_interface")
    assert iface["Fixed IP Addresses"] == [
        {"subnet_id": world["v4"]["id"], "ip_address": "10.30.0.1"}
    ]

    fip = admin_cli.json("floating", "ip", "create", "public")
    address = fip["floating_ip_address"]
    assert address.startswith("172.24.4.")
    assert (fip["port_id"], fip["router_id"], fip["status"]) == (None, None, "DOWN")
    vm1 = world["vm1"]
    fixed = vm1["fixed_ips"][0]["ip_address"]
    assert nat_pairs(store, "compute1", vm1["id"]) == []

    admin_cli.run("floating", "ip", "set", "--port", "vm1", "--fixed-ip-address", fixed, address)
    shown = admin_cli.json("floating", "ip", "show", address)
    assert shown["port_id"] == vm1["id"]
    assert shown["fixed_ip_address"] == fixed
    assert shown["router_id"] == router["id"]
    assert shown["status"] == "ACTIVE"  # associated with a bound port
    assert shown["port_details"]["name"] == "vm1"
    assert shown["port_details"]["device_owner"] == "compute:nova"
    pair = {"floating_ip_address": address, "fixed_ip_address": fixed}
    assert nat_pairs(store, "compute1", vm1["id"]) == [pair]
    assert stored(store, f"fip_by_port/{vm1['id']}/{fip['id']}") == {"id": fip["id"], **pair}

    admin_cli.run("floating", "ip", "unset", "--port", address)
    shown = admin_cli.json("floating", "ip", "show", address)
    assert (shown["port_id"], shown["fixed_ip_address"], shown["router_id"]) == (None, None, None)
    assert shown["status"] == "DOWN"
    assert not shown["port_details"]  # the CLI shows null as {}
    assert nat_pairs(store, "compute1", vm1["id"]) == []
    assert stored(store, f"fip_by_port/{vm1['id']}/{fip['id']}") is None


def test_floating_ip_resource_shape(http: httpx.Client, world: dict[str, Any]) -> None:
    created = http.post(
        "/floatingips", json={"floatingip": {"floating_network_id": world["public"]["id"]}}
    )
    assert created.status_code == 201
    body = created.json()["floatingip"]
    assert list(body) == FIP_FIELDS
    assert body["revision_number"] == 0
    assert http.delete(f"/floatingips/{body['id']}").status_code == 204
    gone = http.get(f"/floatingips/{body['id']}")
    assert_fault(gone, 404, "FloatingIPNotFound", f"Floating IP {body['id']} could not be found")


def test_service_ports_are_hidden_from_tenants(
    http: httpx.Client, demo_http: httpx.Client, world: dict[str, Any]
) -> None:
    owners = {p["device_owner"] for p in http.get("/ports").json()["ports"]}
    assert {"network:router_gateway", "network:floatingip"} <= owners
    hidden = [
        p for p in http.get("/ports").json()["ports"] if p["device_owner"] == "network:floatingip"
    ]
    assert all(p["project_id"] == "" for p in hidden)
    seen = {p["id"] for p in demo_http.get("/ports").json()["ports"]}
    assert not seen & {p["id"] for p in hidden}


# --- association rules -------------------------------------------------------------------
@pytest.fixture(scope="module")
def fip(http: httpx.Client, world: dict[str, Any]) -> dict[str, Any]:
    created = http.post(
        "/floatingips", json={"floatingip": {"floating_network_id": world["public"]["id"]}}
    )
    assert created.status_code == 201
    body: dict[str, Any] = created.json()["floatingip"]
    return body


@pytest.fixture(scope="module")
def two_ip(http: httpx.Client, world: dict[str, Any]) -> dict[str, Any]:
    v4 = world["v4"]["id"]
    created = http.post(
        "/ports",
        json={
            "port": {
                "network_id": world["net"]["id"],
                "name": "two-ip",
                "binding:host_id": "compute2",
                "fixed_ips": [
                    {"subnet_id": v4, "ip_address": "10.30.0.10"},
                    {"subnet_id": v4, "ip_address": "10.30.0.11"},
                ],
            }
        },
    )
    assert created.status_code == 201, created.text
    port: dict[str, Any] = created.json()["port"]
    return port


def test_several_ipv4_addresses_need_a_fixed_ip_address(
    http: httpx.Client, world: dict[str, Any], fip: dict[str, Any], two_ip: dict[str, Any]
) -> None:
    message = (
        f"Bad floatingip request: Port {two_ip['id']} has multiple fixed IPv4 addresses.  "
        "Must provide a specific IPv4 address when assigning a floating IP."
    )
    put = http.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": two_ip["id"]}})
    assert_fault(put, 400, "BadRequest", message)
    post = http.post(
        "/floatingips",
        json={
            "floatingip": {
                "floating_network_id": world["public"]["id"],
                "port_id": two_ip["id"],
            }
        },
    )
    assert_fault(post, 400, "BadRequest", message)


def test_fixed_ip_address_must_be_on_the_port(
    http: httpx.Client, fip: dict[str, Any], two_ip: dict[str, Any]
) -> None:
    put = http.put(
        f"/floatingips/{fip['id']}",
        json={"floatingip": {"port_id": two_ip["id"], "fixed_ip_address": "10.30.0.12"}},
    )
    assert_fault(
        put,
        400,
        "BadRequest",
        f"Bad floatingip request: Port {two_ip['id']} does not have fixed ip 10.30.0.12.",
    )


def test_fixed_ip_address_needs_a_port(http: httpx.Client, fip: dict[str, Any]) -> None:
    put = http.put(
        f"/floatingips/{fip['id']}", json={"floatingip": {"fixed_ip_address": "10.30.0.11"}}
    )
    assert_fault(
        put,
        400,
        "BadRequest",
        "Bad floatingip request: fixed_ip_address cannot be specified without a port_id.",
    )


def test_port_without_ipv4(http: httpx.Client, world: dict[str, Any], fip: dict[str, Any]) -> None:
    bare = http.post(
        "/ports", json={"port": {"network_id": world["net"]["id"], "fixed_ips": []}}
    ).json()["port"]
    put = http.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": bare["id"]}})
    assert_fault(
        put,
        400,
        "BadRequest",
        f"Bad floatingip request: Cannot add floating IP to port {bare['id']} that has no "
        "fixed IPv4 addresses.",
    )


def test_no_router_between_the_subnet_and_the_external_network(
    http: httpx.Client, world: dict[str, Any], fip: dict[str, Any]
) -> None:
    net = http.post("/networks", json={"network": {"name": "lonely"}}).json()["network"]
    subnet = http.post(
        "/subnets",
        json={"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "10.40.0.0/24"}},
    ).json()["subnet"]
    port = http.post("/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
    message = (
        f"External network {world['public']['id']} is not reachable from subnet "
        f"{subnet['id']}.  Therefore, cannot associate Port {port['id']} with a Floating IP."
    )
    put = http.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": port["id"]}})
    assert_fault(put, 404, "ExternalGatewayForFloatingIPNotFound", message)
    post = http.post(
        "/floatingips",
        json={"floatingip": {"floating_network_id": world["public"]["id"], "port_id": port["id"]}},
    )
    assert_fault(post, 404, "ExternalGatewayForFloatingIPNotFound", message)


def test_a_fixed_ip_takes_one_floating_ip_per_external_network(
    http: httpx.Client, world: dict[str, Any], fip: dict[str, Any], two_ip: dict[str, Any]
) -> None:
    target = {"port_id": two_ip["id"], "fixed_ip_address": "10.30.0.11"}
    first = http.put(f"/floatingips/{fip['id']}", json={"floatingip": target})
    assert first.status_code == 200, first.text
    assert first.json()["floatingip"]["router_id"] is not None

    other = http.post(
        "/floatingips", json={"floatingip": {"floating_network_id": world["public"]["id"]}}
    ).json()["floatingip"]
    put = http.put(f"/floatingips/{other['id']}", json={"floatingip": target})
    assert_fault(
        put,
        409,
        "FloatingIPPortAlreadyAssociated",
        f"Cannot associate floating IP {other['floating_ip_address']} ({other['id']}) with port "
        f"{two_ip['id']} using fixed IP 10.30.0.11, as that fixed IP already has a floating IP "
        f"on external network {world['public']['id']}.",
    )
    # on create, the message names the address and id that were allocated and rolled back
    post = http.post(
        "/floatingips",
        json={"floatingip": {"floating_network_id": world["public"]["id"], **target}},
    )
    assert post.status_code == 409
    assert re.fullmatch(
        r"Cannot associate floating IP 172\.24\.4\.\d+ \([0-9a-f-]{36}\) with port "
        + two_ip["id"]
        + r" using fixed IP 10\.30\.0\.11, as that fixed IP already has a floating IP on "
        + r"external network "
        + world["public"]["id"]
        + r"\.",
        post.json()["NeutronError"]["message"],
    )
    # the other address of the port is free for it, and both NAT pairs reach the host
    ok = http.put(
        f"/floatingips/{other['id']}",
        json={"floatingip": {"port_id": two_ip["id"], "fixed_ip_address": "10.30.0.10"}},
    )
    assert ok.status_code == 200, ok.text


def test_both_nat_pairs_are_in_the_endpoint_record(
    store: Store, fip: dict[str, Any], two_ip: dict[str, Any]
) -> None:
    pairs = nat_pairs(store, "compute2", two_ip["id"])
    assert {p["fixed_ip_address"] for p in pairs} == {"10.30.0.10", "10.30.0.11"}
    assert {
        "floating_ip_address": fip["floating_ip_address"],
        "fixed_ip_address": "10.30.0.11",
    } in pairs
    record = stored(store, f"endpoints/compute2/{two_ip['id']}")
    assert record is not None
    assert record["gateways"] == ["10.30.0.1"]  # kept by the association's rewrite


def test_put_without_port_id_keeps_the_association(
    http: httpx.Client, fip: dict[str, Any], two_ip: dict[str, Any]
) -> None:
    before = http.get(f"/floatingips/{fip['id']}").json()["floatingip"]
    put = http.put(f"/floatingips/{fip['id']}", json={"floatingip": {"description": "svc"}})
    assert put.status_code == 200
    after = put.json()["floatingip"]
    assert after["port_id"] == two_ip["id"]
    assert after["fixed_ip_address"] == "10.30.0.11"
    assert after["description"] == "svc"
    assert after["revision_number"] == before["revision_number"] + 1
    unchanged = http.put(f"/floatingips/{fip['id']}", json={"floatingip": {}})
    assert unchanged.json()["floatingip"]["revision_number"] == after["revision_number"]


def test_the_fixed_ip_behind_a_floating_ip_cannot_be_removed(
    http: httpx.Client, world: dict[str, Any], two_ip: dict[str, Any]
) -> None:
    put = http.put(
        f"/ports/{two_ip['id']}",
        json={
            "port": {"fixed_ips": [{"subnet_id": world["v4"]["id"], "ip_address": "10.30.0.10"}]}
        },
    )
    assert_fault(
        put,
        400,
        "BadRequest",
        f"Bad port request: Cannot update the fixed_ips of the port {two_ip['id']}, because its "
        "original fixed_ip has been associated to a floating ip.",
    )


def test_router_interface_and_gateway_in_use(
    http: httpx.Client, world: dict[str, Any], fip: dict[str, Any]
) -> None:
    router_id = http.get(f"/floatingips/{fip['id']}").json()["floatingip"]["router_id"]
    [iface] = [
        p
        for p in http.get("/ports", params={"device_id": router_id}).json()["ports"]
        if p["device_owner"] == "network:router_interface"
    ]
    assert_fault(
        http.delete(f"/routers/{router_id}"),
        409,
        "RouterInUse",
        f"Router {router_id} has ports still attached: {iface['id']}",
    )
    removal = http.put(
        f"/routers/{router_id}/remove_router_interface", json={"subnet_id": world["v4"]["id"]}
    )
    assert_fault(
        removal,
        409,
        "RouterInterfaceInUseByFloatingIP",
        f"Router interface for subnet {world['v4']['id']} on router {router_id} cannot be "
        "deleted, as it is required by one or more floating IPs.",
    )
    clear = http.put(f"/routers/{router_id}", json={"router": {"external_gateway_info": {}}})
    assert_fault(
        clear,
        409,
        "RouterExternalGatewayInUseByFloatingIp",
        f"Gateway cannot be updated for router {router_id}, since a gateway to external "
        f"network {world['public']['id']} is required by one or more floating IPs.",
    )


def test_deleting_the_port_disassociates(
    http: httpx.Client, store: Store, fip: dict[str, Any], two_ip: dict[str, Any]
) -> None:
    before = http.get(f"/floatingips/{fip['id']}").json()["floatingip"]
    assert http.delete(f"/ports/{two_ip['id']}").status_code == 204
    after = http.get(f"/floatingips/{fip['id']}").json()["floatingip"]
    assert (after["port_id"], after["fixed_ip_address"], after["router_id"]) == (None, None, None)
    assert after["status"] == "DOWN"
    assert after["port_details"] is None
    assert after["revision_number"] == before["revision_number"] + 1
    assert stored(store, f"fip_by_port/{two_ip['id']}/{fip['id']}") is None
    assert stored(store, f"endpoints/compute2/{two_ip['id']}") is None


# --- creation rules ----------------------------------------------------------------------
def test_only_external_networks_give_floating_ips(
    http: httpx.Client, world: dict[str, Any]
) -> None:
    net_id = world["net"]["id"]
    not_external = http.post("/floatingips", json={"floatingip": {"floating_network_id": net_id}})
    assert_fault(
        not_external,
        400,
        "BadRequest",
        f"Bad floatingip request: Network {net_id} is not a valid external network.",
    )
    unknown = "12345678-1234-5678-1234-567812345678"
    missing = http.post("/floatingips", json={"floatingip": {"floating_network_id": unknown}})
    assert_fault(missing, 404, "NetworkNotFound", f"Network {unknown} could not be found.")
    assert_fault(
        http.post("/floatingips", json={"floatingip": {}}),
        400,
        "HTTPBadRequest",
        "Failed to parse request. Required attribute 'floating_network_id' not specified",
    )


def test_specific_floating_ip_address(
    http: httpx.Client, demo_http: httpx.Client, world: dict[str, Any]
) -> None:
    public = world["public"]["id"]

    def create(client: httpx.Client, address: str) -> httpx.Response:
        body = {"floating_network_id": public, "floating_ip_address": address}
        return client.post("/floatingips", json={"floatingip": body})

    first = create(http, "172.24.4.100")
    assert first.status_code == 201
    assert first.json()["floatingip"]["floating_ip_address"] == "172.24.4.100"
    assert_fault(
        create(http, "172.24.4.100"),
        409,
        "IpAddressAlreadyAllocated",
        f"IP address 172.24.4.100 already allocated in subnet {world['public_v4']['id']}",
    )
    assert_fault(
        create(http, "10.0.0.5"),
        400,
        "InvalidIpForNetwork",
        "IP address 10.0.0.5 is not a valid IP for any of the subnets on the specified network.",
    )
    assert_fault(
        create(demo_http, "172.24.4.101"),
        403,
        "PolicyNotAuthorized",
        "(rule:create_floatingip:floating_ip_address) is disallowed by policy",
    )
    # deleting the floating IP frees its address
    assert http.delete(f"/floatingips/{first.json()['floatingip']['id']}").status_code == 204
    assert create(http, "172.24.4.100").status_code == 201


def test_another_projects_port(
    http: httpx.Client, demo_http: httpx.Client, connect: Connect, world: dict[str, Any]
) -> None:
    """demo owns a shared network where alt has a port: demo sees the port (as network
    owner) but may not point its floating IP at it; a port demo cannot see is not found."""
    net = demo_http.post("/networks", json={"network": {"name": "demo-shared"}}).json()["network"]
    demo_http.post(
        "/subnets",
        json={"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "10.60.0.0/24"}},
    )
    assert http.put(f"/networks/{net['id']}", json={"network": {"shared": True}}).status_code == 200
    alt = connect("alt")
    alt_port = alt.network.create_port(network_id=net["id"], name="alt-vm")
    fip = demo_http.post(
        "/floatingips", json={"floatingip": {"floating_network_id": world["public"]["id"]}}
    )
    assert fip.status_code == 201, fip.text
    fip_id = fip.json()["floatingip"]["id"]
    put = demo_http.put(f"/floatingips/{fip_id}", json={"floatingip": {"port_id": alt_port.id}})
    assert_fault(
        put,
        400,
        "BadRequest",
        f"Bad floatingip request: Cannot process floating IP association with Port "
        f"{alt_port.id}, since that port is owned by a different project.",
    )
    alt_net = alt.network.create_network(name="alt-own")
    alt.network.create_subnet(network_id=alt_net.id, ip_version=4, cidr="10.61.0.0/24")
    hidden = alt.network.create_port(network_id=alt_net.id)
    put = demo_http.put(f"/floatingips/{fip_id}", json={"floatingip": {"port_id": hidden.id}})
    assert_fault(put, 404, "PortNotFound", f"Port {hidden.id} could not be found.")


def test_tenant_floating_ip_with_sdk(connect: Connect, world: dict[str, Any]) -> None:
    """A member creates, associates and deletes its own floating IP through openstacksdk."""
    demo = connect("demo")
    net = demo.network.create_network(name="demo-app")
    subnet = demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.70.0.0/24")
    router = demo.network.create_router(
        name="demo-r", external_gateway_info={"network_id": world["public"]["id"]}
    )
    demo.network.add_interface_to_router(router, subnet=subnet.id)
    port = demo.network.create_port(network_id=net.id, name="app")
    fip = demo.network.create_ip(floating_network_id=world["public"]["id"], port_id=port.id)
    assert fip.router_id == router.id
    assert fip.fixed_ip_address == port.fixed_ips[0]["ip_address"]
    assert fip.status == "DOWN"  # the port is not bound to a host
    demo.network.delete_ip(fip)
    demo.network.remove_interface_from_router(router, subnet=subnet.id)
    demo.network.delete_router(router)
    assert demo.network.find_router("demo-r") is None
