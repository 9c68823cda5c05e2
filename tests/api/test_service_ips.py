"""Service IPs (``routeplane-service-ip``) against a started api, over HTTP.

Create claims the address and puts it on the active port, an update of
``active_port_id`` moves it atomically and records the move, delete takes it off; all of
it visible in the port, the claim and the endpoint records. Then the refusals, exact to
type, code and message, project scoping, and the list machinery (filters, fields).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import openstack.connection
import pytest

from routeplane.store import Store
from tests.api.helpers import assert_fault, post, stored

pytestmark = [
    pytest.mark.api,
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
]

Connect = Callable[..., openstack.connection.Connection]
CHECK = {"type": "http", "port": 8080, "path": "/healthz", "interval": 0.1, "failure_threshold": 3}


def addresses(http: httpx.Client, port_id: str) -> list[str]:
    port = http.get(f"/ports/{port_id}").json()["port"]
    return [ip["ip_address"] for ip in port["fixed_ips"]]


def create(http: httpx.Client, **fields: Any) -> httpx.Response:
    return http.post("/service_ips", json={"service_ip": fields})


@pytest.fixture(scope="module")
def world(http: httpx.Client) -> dict[str, Any]:
    net = post(http, "networks", "network", name="sip-net")
    subnet = post(
        http, "subnets", "subnet", network_id=net["id"], ip_version=4, cidr="10.45.0.0/24"
    )
    ports = {
        name: post(
            http, "ports", "port", network_id=net["id"], name=name, **{"binding:host_id": host}
        )
        for name, host in (("web1", "compute1"), ("web2", "compute2"), ("web3", "compute3"))
    }
    other = post(http, "networks", "network", name="sip-other")
    other_subnet = post(
        http, "subnets", "subnet", network_id=other["id"], ip_version=4, cidr="10.46.0.0/24"
    )
    stranger = post(http, "ports", "port", network_id=other["id"], name="stranger")
    return {
        "net": net,
        "subnet": subnet,
        "other_subnet": other_subnet,
        "stranger": stranger,
        **{name: port["id"] for name, port in ports.items()},
    }


def test_the_extension_is_listed(http: httpx.Client) -> None:
    shown = http.get("/extensions/routeplane-service-ip").json()["extension"]
    assert (shown["alias"], shown["name"]) == ("routeplane-service-ip", "Service IPs")
    assert shown in http.get("/extensions").json()["extensions"]


def test_lifecycle_create_move_delete(
    http: httpx.Client, store: Store, world: dict[str, Any]
) -> None:
    web1, web2, web3, subnet = world["web1"], world["web2"], world["web3"], world["subnet"]["id"]
    response = create(
        http,
        name="www",
        ip_address="10.45.0.200",
        active_port_id=web1,
        standby_port_ids=[web2, web3],
        health_check=CHECK,
    )
    assert response.status_code == 201, response.text
    sip = response.json()["service_ip"]
    assert {k: sip[k] for k in ("name", "ip_address", "subnet_id", "network_id")} == {
        "name": "www",
        "ip_address": "10.45.0.200",
        "subnet_id": subnet,
        "network_id": world["net"]["id"],
    }
    assert (sip["active_port_id"], sip["primary_port_id"]) == (web1, web1)
    assert sip["standby_port_ids"] == [web2, web3]
    assert sip["health_check"] == CHECK
    assert (sip["failback"], sip["status"], sip["moves"], sip["revision_number"]) == (
        False,
        "ACTIVE",
        [],
        0,
    )
    assert sip["project_id"] == sip["tenant_id"] == "admin"
    assert "10.45.0.200" in addresses(http, web1)
    assert stored(store, f"ipam/{subnet}/10.45.0.200") == {"port_id": web1}
    assert stored(store, f"service_ip_addresses/{subnet}/10.45.0.200") == {"id": sip["id"]}
    record = stored(store, f"endpoints/compute1/{web1}")
    assert record is not None
    assert "10.45.0.200" in record["fixed_ips"]

    # a plain port update may not take it away behind the service IP's back
    kept = http.put(f"/ports/{web1}", json={"port": {"fixed_ips": []}})
    assert_fault(
        kept,
        400,
        "BadRequest",
        f"Bad port request: Cannot update the fixed_ips of the port {web1}, because its "
        f"fixed_ip 10.45.0.200 is the address of service IP {sip['id']}.",
    )

    moved = http.put(f"/service_ips/{sip['id']}", json={"service_ip": {"active_port_id": web2}})
    assert moved.status_code == 200, moved.text
    after = moved.json()["service_ip"]
    assert (after["active_port_id"], after["primary_port_id"]) == (web2, web2)
    assert after["revision_number"] == 1
    [entry] = after["moves"]
    assert (entry["from_port_id"], entry["to_port_id"], entry["reason"]) == (web1, web2, "manual")
    assert entry["at"].endswith("Z")
    assert "10.45.0.200" not in addresses(http, web1)
    assert "10.45.0.200" in addresses(http, web2)
    assert stored(store, f"ipam/{subnet}/10.45.0.200") == {"port_id": web2}
    new = stored(store, f"endpoints/compute2/{web2}")
    assert new is not None
    assert new["preferred"] == ["10.45.0.200"]
    assert http.get(f"/service_ips/{sip['id']}").json()["service_ip"] == after

    # the move extension on a service IP's address: the service IP follows
    by_hand = http.put(
        f"/ports/{web3}/move_fixed_ip",
        json={"fixed_ip": {"ip_address": "10.45.0.200", "from_port_id": web2}},
    )
    assert by_hand.status_code == 200, by_hand.text
    shown = http.get(f"/service_ips/{sip['id']}").json()["service_ip"]
    assert shown["active_port_id"] == web3
    assert [(m["from_port_id"], m["to_port_id"]) for m in shown["moves"]] == [
        (web1, web2),
        (web2, web3),
    ]

    assert http.delete(f"/service_ips/{sip['id']}").status_code == 204
    assert "10.45.0.200" not in addresses(http, web3)
    assert stored(store, f"ipam/{subnet}/10.45.0.200") is None
    assert stored(store, f"service_ip_addresses/{subnet}/10.45.0.200") is None
    assert_fault(
        http.get(f"/service_ips/{sip['id']}"),
        404,
        "ServiceIpNotFound",
        f"Service IP {sip['id']} could not be found.",
    )


def test_an_address_is_allocated_or_adopted(http: httpx.Client, world: dict[str, Any]) -> None:
    web1, web2, subnet = world["web1"], world["web2"], world["subnet"]["id"]
    allocated = create(http, subnet_id=subnet, active_port_id=web2)
    assert allocated.status_code == 201, allocated.text
    sip = allocated.json()["service_ip"]
    assert sip["ip_address"].startswith("10.45.0.")
    assert sip["ip_address"] in addresses(http, web2)
    assert sip["health_check"] is None

    own = addresses(http, web1)[0]  # the port's own address becomes the service IP
    adopted = create(http, ip_address=own, active_port_id=web1)
    assert adopted.status_code == 201, adopted.text
    assert adopted.json()["service_ip"]["subnet_id"] == subnet
    assert addresses(http, web1).count(own) == 1
    assert_fault(
        create(http, ip_address=own, active_port_id=web1),
        409,
        "IpAddressAlreadyAllocated",
        f"IP address {own} already allocated in subnet {subnet}",
    )
    for done in (sip, adopted.json()["service_ip"]):
        assert http.delete(f"/service_ips/{done['id']}").status_code == 204
    assert own not in addresses(http, web1)  # deleting takes the address with it


def test_refusals_in_neutrons_format(http: httpx.Client, world: dict[str, Any]) -> None:
    web1, web2, stranger = world["web1"], world["web2"], world["stranger"]["id"]
    ghost = str(uuid.uuid4())
    net = world["net"]["id"]

    def refused(code: int, type_name: str, message: str, **fields: Any) -> None:
        assert_fault(create(http, **fields), code, type_name, message)

    refused(
        400,
        "HTTPBadRequest",
        "Failed to parse request. Required attribute 'active_port_id' not specified",
        ip_address="10.45.0.201",
    )
    refused(404, "PortNotFound", f"Port {ghost} could not be found.", active_port_id=ghost)
    refused(
        404,
        "PortNotFound",
        f"Port {ghost} could not be found.",
        ip_address="10.45.0.201",
        active_port_id=web1,
        standby_port_ids=[ghost],
    )
    refused(
        400,
        "InvalidInput",
        f"Invalid input for operation: Port {stranger} is not on network {net} of the service IP.",
        ip_address="10.45.0.201",
        active_port_id=web1,
        standby_port_ids=[stranger],
    )
    other_subnet = world["other_subnet"]["id"]
    refused(
        400,
        "InvalidInput",
        f"Invalid input for operation: Subnet {other_subnet} is not on network {net} of port "
        f"{web1}.",
        subnet_id=other_subnet,
        active_port_id=web1,
    )
    refused(
        400,
        "InvalidInput",
        "Invalid input for operation: IP allocation requires subnet_id or ip_address.",
        active_port_id=web1,
    )
    held = addresses(http, web2)[0]
    refused(
        409,
        "IpAddressAlreadyAllocated",
        f"IP address {held} already allocated in subnet {world['subnet']['id']}",
        ip_address=held,
        active_port_id=web1,
    )
    refused(
        400,
        "HTTPBadRequest",
        f"Invalid input for standby_port_ids. Reason: Duplicate items in the list: '{web2}'.",
        ip_address="10.45.0.201",
        active_port_id=web1,
        standby_port_ids=[web2, web2],
    )
    for check, reason in (
        ({"type": "udp", "port": 53}, "health_check type 'udp' is not one of 'tcp', 'http'"),
        ({"type": "tcp"}, "health_check port 'None' is not a port number (1-65535)"),
        (
            {"type": "tcp", "port": 80, "path": "/"},
            "health_check path is only valid for http checks",
        ),
        (
            {"type": "http", "port": 80, "path": "healthz"},
            "health_check path 'healthz' is not an absolute URL path of at most 255 characters",
        ),
        (
            {"type": "tcp", "port": 80, "interval": 0.01},
            "health_check interval '0.01' is not a number of seconds from 0.1 to 60.0",
        ),
        (
            {"type": "tcp", "port": 80, "failure_threshold": 11},
            "health_check failure_threshold 11 is not from 1 to 10",
        ),
        ({"type": "tcp", "port": 80, "timeout": 1}, "Unrecognized health_check key(s) 'timeout'"),
        ("tcp:80", "'tcp:80' is not a dictionary"),
    ):
        refused(
            400,
            "HTTPBadRequest",
            f"Invalid input for health_check. Reason: {reason}.",
            ip_address="10.45.0.201",
            active_port_id=web1,
            health_check=check,
        )
    refused(400, "HTTPBadRequest", "Unrecognized attribute(s) 'vip'", vip="x", active_port_id=web1)
    refused(
        400, "HTTPBadRequest", "Attribute 'status' not allowed in POST", status="UP",
        active_port_id=web1,
    )  # fmt: skip

    ok = create(http, ip_address="10.45.0.201", active_port_id=web1)
    assert ok.status_code == 201, ok.text
    sip_id = ok.json()["service_ip"]["id"]
    assert_fault(
        http.put(f"/service_ips/{sip_id}", json={"service_ip": {"ip_address": "10.45.0.9"}}),
        400,
        "HTTPBadRequest",
        "Cannot update read-only attribute ip_address",
    )
    assert_fault(
        http.put(f"/service_ips/{sip_id}", json={"service_ip": {"active_port_id": stranger}}),
        400,
        "InvalidInput",
        f"Invalid input for operation: Port {stranger} is not on network {net} of the service IP.",
    )
    assert_fault(
        http.put(f"/service_ips/{ghost}", json={"service_ip": {"name": "x"}}),
        404,
        "ServiceIpNotFound",
        f"Service IP {ghost} could not be found.",
    )
    assert http.get(f"/service_ips/{sip_id}").json()["service_ip"]["active_port_id"] == web1
    assert http.delete(f"/service_ips/{sip_id}").status_code == 204


def test_projects_readers_and_lists(
    http: httpx.Client, as_user: Callable[[str, str], httpx.Client]
) -> None:
    demo, alt, viewer = as_user("demo", "demo"), as_user("alt", "alt"), as_user("viewer", "demo")
    net = post(demo, "networks", "network", name="demo-sip")
    subnet = post(
        demo, "subnets", "subnet", network_id=net["id"], ip_version=4, cidr="10.47.0.0/24"
    )
    d1 = post(demo, "ports", "port", network_id=net["id"], name="d1")["id"]
    d2 = post(demo, "ports", "port", network_id=net["id"], name="d2")["id"]
    alt_net = post(alt, "networks", "network", name="alt-sip")
    post(alt, "subnets", "subnet", network_id=alt_net["id"], ip_version=4, cidr="10.48.0.0/24")
    a1 = post(alt, "ports", "port", network_id=alt_net["id"], name="a1")["id"]

    made = create(
        demo, name="api", subnet_id=subnet["id"], active_port_id=d1, standby_port_ids=[d2]
    )
    assert made.status_code == 201, made.text
    sip = made.json()["service_ip"]
    assert sip["project_id"] == demo.get("/ports/" + d1).json()["port"]["project_id"]
    assert sip["status"] == "DOWN"  # the port is not bound to a host yet

    hidden = (404, "HTTPNotFound", "The resource could not be found.")
    assert_fault(
        alt.get(f"/service_ips/{sip['id']}"),
        404,
        "ServiceIpNotFound",
        f"Service IP {sip['id']} could not be found.",
    )
    assert_fault(alt.put(f"/service_ips/{sip['id']}", json={"service_ip": {"name": "x"}}), *hidden)
    assert_fault(alt.delete(f"/service_ips/{sip['id']}"), *hidden)
    assert alt.get("/service_ips").json()["service_ips"] == []
    assert_fault(
        create(alt, subnet_id=subnet["id"], active_port_id=d1),
        404,
        "PortNotFound",
        f"Port {d1} could not be found.",
    )
    assert_fault(
        create(demo, subnet_id=subnet["id"], active_port_id=d1, standby_port_ids=[a1]),
        404,
        "PortNotFound",
        f"Port {a1} could not be found.",
    )

    for response, action in (
        (create(viewer, subnet_id=subnet["id"], active_port_id=d2), "create_service_ip"),
        (
            viewer.put(f"/service_ips/{sip['id']}", json={"service_ip": {"active_port_id": d2}}),
            "update_service_ip",
        ),
        (viewer.delete(f"/service_ips/{sip['id']}"), "delete_service_ip"),
    ):
        assert_fault(response, 403, "PolicyNotAuthorized", f"rule:{action} is disallowed by policy")
    assert viewer.get(f"/service_ips/{sip['id']}").json()["service_ip"]["active_port_id"] == d1

    assert sip["id"] in {s["id"] for s in http.get("/service_ips").json()["service_ips"]}
    listed = demo.get(
        "/service_ips", params={"active_port_id": d1, "fields": ["id", "ip_address"]}
    ).json()["service_ips"]
    assert listed == [{"id": sip["id"], "ip_address": sip["ip_address"]}]
    assert demo.get("/service_ips", params={"active_port_id": d2}).json()["service_ips"] == []
    assert_fault(
        demo.get("/service_ips", params={"moves": "x"}),
        400,
        "HTTPBadRequest",
        "['moves'] is invalid attribute for filtering",
    )

    moved = demo.put(f"/service_ips/{sip['id']}", json={"service_ip": {"active_port_id": d2}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["service_ip"]["moves"][0]["reason"] == "manual"
    assert sip["ip_address"] in addresses(demo, d2)


def test_a_deleted_active_port_leaves_the_service_ip_in_error_until_moved(
    http: httpx.Client, store: Store, world: dict[str, Any]
) -> None:
    net = world["net"]["id"]
    doomed = post(http, "ports", "port", network_id=net, name="doomed")["id"]
    spare = world["web3"]
    made = create(http, ip_address="10.45.0.210", active_port_id=doomed, standby_port_ids=[spare])
    assert made.status_code == 201, made.text
    sip = made.json()["service_ip"]
    assert http.delete(f"/ports/{doomed}").status_code == 204
    shown = http.get(f"/service_ips/{sip['id']}").json()["service_ip"]
    assert shown["status"] == "ERROR"

    moved = http.put(f"/service_ips/{sip['id']}", json={"service_ip": {"active_port_id": spare}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["service_ip"]["status"] == "ACTIVE"
    assert "10.45.0.210" in addresses(http, spare)
    assert stored(store, f"ipam/{world['subnet']['id']}/10.45.0.210") == {"port_id": spare}
    assert http.delete(f"/service_ips/{sip['id']}").status_code == 204
