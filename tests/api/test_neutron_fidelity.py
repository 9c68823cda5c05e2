"""Neutron fidelity: the api answers as a real Neutron 29 does.

Scope: status codes, NeutronError ``type`` and ``message`` texts, and the field sets and
defaults of network, subnet, port, security group and rule bodies, as recorded in
docs/design/neutron-oracle.md — fixed_ips semantics on POST and PUT, body and attribute
errors, lists (filters, ``fields``, sorting, pagination links), If-Match, bulk create,
tags, version documents and extensions, and what other projects and readers may do.
Where the oracle shows a Neutron bug (a 500), the test pins our non-5xx answer instead.
Raw HTTP (httpx) checks exact bodies; openstacksdk connections act as the demo, alt and
viewer users.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openstack.connection
import openstack.exceptions
import pytest

from routeplane.testing.api import ApiServer

pytestmark = pytest.mark.api

UNKNOWN = "12345678-1234-5678-1234-567812345678"
Connect = Callable[..., openstack.connection.Connection]


# --- helpers -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def http(api: ApiServer) -> Iterator[httpx.Client]:
    """An admin client (the static admin token), raw HTTP."""
    with httpx.Client(
        base_url=api.url, headers={"X-Auth-Token": api.admin_token}, timeout=30
    ) as client:
        yield client


def fault(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"NeutronError"}, body
    error = body["NeutronError"]
    assert error["detail"] == ""
    return response.status_code, error["type"], error["message"]


def created(response: httpx.Response, member: str) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()[member]
    return item


def post(http: httpx.Client, collection: str, member: str, **fields: Any) -> dict[str, Any]:
    return created(http.post(f"/v2.0/{collection}", json={member: fields}), member)


def port_of(http: httpx.Client, port_id: str) -> dict[str, Any]:
    response = http.get(f"/v2.0/ports/{port_id}")
    assert response.status_code == 200, response.text
    port: dict[str, Any] = response.json()["port"]
    return port


@pytest.fixture(scope="module")
def ids(http: httpx.Client) -> dict[str, str]:
    """The oracle's topology: demo-net (v4 + v6), other-net, a /30 with its one address
    taken, a network without subnets, and ports pa (10.28.0.5) and pb."""
    demo = post(http, "networks", "network", name="demo-net")["id"]
    v4 = post(
        http, "subnets", "subnet", network_id=demo, ip_version=4, cidr="10.28.0.0/16", name="v4"
    )["id"]
    v6 = post(
        http,
        "subnets",
        "subnet",
        network_id=demo,
        ip_version=6,
        cidr="fd5f:5d21:845:1c2e::/64",
        name="v6",
    )["id"]
    other = post(http, "networks", "network", name="other-net")["id"]
    other_v4 = post(http, "subnets", "subnet", network_id=other, ip_version=4, cidr="10.99.0.0/24")[
        "id"
    ]
    tiny = post(http, "networks", "network", name="tiny-net")["id"]
    tiny_v4 = post(http, "subnets", "subnet", network_id=tiny, ip_version=4, cidr="10.77.0.0/30")[
        "id"
    ]
    t1 = post(http, "ports", "port", network_id=tiny, name="t1")
    assert t1["fixed_ips"] == [{"subnet_id": tiny_v4, "ip_address": "10.77.0.2"}]
    bare = post(http, "networks", "network", name="bare-net")["id"]
    pa = post(
        http, "ports", "port", network_id=demo, name="pa", fixed_ips=[{"ip_address": "10.28.0.5"}]
    )["id"]
    pb = post(http, "ports", "port", network_id=demo, name="pb")["id"]
    return {
        "demo": demo,
        "v4": v4,
        "v6": v6,
        "other": other,
        "other_v4": other_v4,
        "tiny": tiny,
        "tiny_v4": tiny_v4,
        "t1": t1["id"],
        "bare": bare,
        "pa": pa,
        "pb": pb,
    }


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


# --- fixed_ips: the negative cases, on POST and on PUT ---------------------------
FIXED_IP_ERRORS = [
    pytest.param(
        [{"ip_address": "10.28.0.5"}],
        (409, "IpAddressAlreadyAllocated", "IP address 10.28.0.5 already allocated in subnet {v4}"),
        id="ip-in-use",
    ),
    pytest.param(
        [{"subnet_id": "{v4}", "ip_address": "10.28.0.5"}],
        (409, "IpAddressAlreadyAllocated", "IP address 10.28.0.5 already allocated in subnet {v4}"),
        id="ip-in-use-with-subnet",
    ),
    pytest.param(
        [{"subnet_id": "{v4}", "ip_address": "10.99.0.5"}],
        (
            400,
            "InvalidIpForSubnet",
            "IP address 10.99.0.5 is not a valid IP for the specified subnet.",
        ),
        id="ip-outside-subnet",
    ),
    pytest.param(
        [{"subnet_id": "{v4}", "ip_address": "10.28.255.255"}],
        (
            400,
            "InvalidIpForSubnet",
            "IP address 10.28.255.255 is not a valid IP for the specified subnet.",
        ),
        id="broadcast-with-subnet",
    ),
    pytest.param(
        [{"ip_address": "192.168.77.5"}],
        (
            400,
            "InvalidIpForNetwork",
            "IP address 192.168.77.5 is not a valid IP for any of the subnets on the specified network.",
        ),
        id="ip-on-no-subnet",
    ),
    pytest.param(
        [{"ip_address": "10.28.0.0"}],
        (
            400,
            "InvalidIpForNetwork",
            "IP address 10.28.0.0 is not a valid IP for any of the subnets on the specified network.",
        ),
        id="network-address",
    ),
    pytest.param(
        [{"subnet_id": "{other_v4}"}],
        (
            400,
            "InvalidInput",
            "Invalid input for operation: Failed to create port on network {demo}, "
            "because fixed_ips included invalid subnet {other_v4}.",
        ),
        id="subnet-of-another-network",
    ),
    pytest.param(
        [{"subnet_id": "11111111-2222-3333-4444-555555555555"}],
        (404, "SubnetNotFound", "Subnet 11111111-2222-3333-4444-555555555555 could not be found."),
        id="unknown-subnet",
    ),
    pytest.param(
        [{"subnet_id": "nope"}],
        (400, "HTTPBadRequest", "Invalid input for fixed_ips. Reason: 'nope' is not a valid UUID."),
        id="malformed-subnet-id",
    ),
    pytest.param(
        [{"ip_address": "10.28.0.999"}],
        (
            400,
            "HTTPBadRequest",
            "Invalid input for fixed_ips. Reason: '10.28.0.999' is not a valid IP address.",
        ),
        id="malformed-address",
    ),
    pytest.param(
        [{"ip_address": 5}],
        (
            400,
            "HTTPBadRequest",
            "Invalid input for fixed_ips. Reason: '5' is not a valid IP address.",
        ),
        id="address-not-a-string",
    ),
    pytest.param(
        [{"ip_address": "10.28.0.77"}, {"ip_address": "10.28.0.77"}],
        (
            400,
            "HTTPBadRequest",
            "Invalid input for fixed_ips. Reason: Duplicate IP address '10.28.0.77'.",
        ),
        id="duplicate-address",
    ),
    pytest.param(
        None,
        (
            400,
            "HTTPBadRequest",
            "Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: 'None'.",
        ),
        id="null",
    ),
    pytest.param(
        {"ip_address": "10.28.0.7"},
        (
            400,
            "HTTPBadRequest",
            "Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: "
            "'{{'ip_address': '10.28.0.7'}}'.",
        ),
        id="not-a-list",
    ),
    # Neutron: 400 on POST, but a 500 (KeyError) on PUT; we answer the POST way on both.
    pytest.param(
        [{"foo": 1}],
        (
            400,
            "InvalidInput",
            "Invalid input for operation: IP allocation requires subnet_id or ip_address.",
        ),
        id="entry-without-subnet-or-address",
    ),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(("fixed_ips", "expected"), FIXED_IP_ERRORS)
def test_fixed_ips_errors(
    http: httpx.Client,
    ids: dict[str, str],
    method: str,
    fixed_ips: Any,
    expected: tuple[int, str, str],
) -> None:
    before = port_of(http, ids["pb"])
    if method == "POST":
        body = {"port": {"network_id": ids["demo"], "fixed_ips": fill(fixed_ips, ids)}}
        response = http.post("/v2.0/ports", json=body)
    else:
        body = {"port": {"fixed_ips": fill(fixed_ips, ids)}}
        response = http.put(f"/v2.0/ports/{ids['pb']}", json=body)
    code, type_name, message = expected
    assert fault(response) == (code, type_name, message.format(**ids))
    after = port_of(http, ids["pb"])  # a failed request changes nothing
    assert (after["fixed_ips"], after["revision_number"]) == (
        before["fixed_ips"],
        before["revision_number"],
    )


def test_exhausted_pool(http: httpx.Client, ids: dict[str, str]) -> None:
    expected = (
        409,
        "IpAddressGenerationFailure",
        f"No more IP addresses available on network {ids['tiny']}.",
    )
    assert fault(http.post("/v2.0/ports", json={"port": {"network_id": ids["tiny"]}})) == expected
    by_subnet = {"network_id": ids["tiny"], "fixed_ips": [{"subnet_id": ids["tiny_v4"]}]}
    assert fault(http.post("/v2.0/ports", json={"port": by_subnet})) == expected
    # t1 keeps its address for the first entry; the second needs a new one
    two = {"fixed_ips": [{"subnet_id": ids["tiny_v4"]}, {"subnet_id": ids["tiny_v4"]}]}
    assert fault(http.put(f"/v2.0/ports/{ids['t1']}", json={"port": two})) == expected
    # a specific address need not be in the pool: the gateway is free to take
    gateway = post(
        http, "ports", "port", network_id=ids["tiny"], fixed_ips=[{"ip_address": "10.77.0.1"}]
    )
    assert gateway["fixed_ips"] == [{"subnet_id": ids["tiny_v4"], "ip_address": "10.77.0.1"}]


def test_fixed_ips_accepted_forms(http: httpx.Client, ids: dict[str, str]) -> None:
    # unknown keys in an entry are ignored, and not stored
    odd = post(
        http,
        "ports",
        "port",
        network_id=ids["demo"],
        fixed_ips=[{"ip_address": "10.28.200.7", "foo": 1}],
    )
    assert odd["fixed_ips"] == [{"subnet_id": ids["v4"], "ip_address": "10.28.200.7"}]
    # [] is a port with no address; a network without subnets gives one automatically
    assert post(http, "ports", "port", network_id=ids["demo"], fixed_ips=[])["fixed_ips"] == []
    assert post(http, "ports", "port", network_id=ids["bare"])["fixed_ips"] == []
    assert fault(
        http.post(
            "/v2.0/ports",
            json={"port": {"network_id": ids["bare"], "fixed_ips": [{"ip_address": "10.1.1.1"}]}},
        )
    ) == (
        400,
        "InvalidInput",
        "Invalid input for operation: IP allocation requires subnets for network.",
    )
    # PUT with only subnet_id where the port has an address keeps it; a second is new
    port = post(http, "ports", "port", network_id=ids["demo"])
    mine = next(ip for ip in port["fixed_ips"] if ip["subnet_id"] == ids["v4"])
    twice = [{"subnet_id": ids["v4"]}, {"subnet_id": ids["v4"]}]
    response = http.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": twice}})
    assert response.status_code == 200, response.text
    held = response.json()["port"]["fixed_ips"]
    assert len(held) == 2
    assert mine in held
    assert all(ip["subnet_id"] == ids["v4"] for ip in held)


# --- body errors ---------------------------------------------------------------------------
def test_unknown_and_read_only_attributes(http: httpx.Client, ids: dict[str, str]) -> None:
    pb = f"/v2.0/ports/{ids['pb']}"
    unknown = (400, "HTTPBadRequest", "Unrecognized attribute(s) 'foo'")
    assert (
        fault(http.post("/v2.0/ports", json={"port": {"network_id": ids["demo"], "foo": 1}}))
        == unknown
    )
    assert fault(http.put(pb, json={"port": {"foo": 1}})) == unknown
    for name, value, shown in [
        ("network_id", ids["other"], "network_id"),
        ("network_id", ids["demo"], "network_id"),  # even when unchanged
        ("id", UNKNOWN, "id"),
        ("status", "ACTIVE", "status"),
        ("tenant_id", "other", "tenant_id"),
        ("project_id", "other", "tenant_id"),  # Neutron names the attribute it maps to
        ("revision_number", 7, "revision_number"),
        ("created_at", "2020-01-01T00:00:00Z", "created_at"),
    ]:
        assert fault(http.put(pb, json={"port": {name: value}})) == (
            400,
            "HTTPBadRequest",
            f"Cannot update read-only attribute {shown}",
        ), name
    for name in ("id", "status"):
        body = {"port": {"network_id": ids["demo"], name: "ACTIVE"}}
        assert fault(http.post("/v2.0/ports", json=body)) == (
            400,
            "HTTPBadRequest",
            f"Attribute '{name}' not allowed in POST",
        )


def test_admin_state_up_takes_neutrons_booleans(http: httpx.Client, ids: dict[str, str]) -> None:
    for given in ("yes", "true", "On", 1):
        port = post(http, "ports", "port", network_id=ids["demo"], admin_state_up=given)
        assert port["admin_state_up"] is True
    off = post(http, "ports", "port", network_id=ids["demo"], admin_state_up="no")
    assert off["admin_state_up"] is False
    assert post(http, "networks", "network", admin_state_up="yes")["admin_state_up"] is True
    assert fault(
        http.post(
            "/v2.0/ports", json={"port": {"network_id": ids["demo"], "admin_state_up": "maybe"}}
        )
    ) == (
        400,
        "InvalidInput",
        "Invalid input for operation: 'maybe' cannot be converted to boolean.",
    )
    # a PUT that sets the current value (or nothing) changes nothing, revision included
    revision = off["revision_number"]
    for body in ({"admin_state_up": "no"}, {}):
        response = http.put(f"/v2.0/ports/{off['id']}", json={"port": body})
        assert response.status_code == 200, response.text
        assert response.json()["port"]["revision_number"] == revision
    response = http.put(f"/v2.0/ports/{off['id']}", json={"port": {"admin_state_up": "yes"}})
    assert response.json()["port"]["admin_state_up"] is True
    assert response.json()["port"]["revision_number"] == revision + 1


def test_mac_address_changes(http: httpx.Client, ids: dict[str, str]) -> None:
    one = post(http, "ports", "port", network_id=ids["demo"])
    two = post(http, "ports", "port", network_id=ids["demo"])
    response = http.put(
        f"/v2.0/ports/{one['id']}", json={"port": {"mac_address": "fa:16:3e:00:00:02"}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["port"]["mac_address"] == "fa:16:3e:00:00:02"
    in_use = (
        409,
        "MacAddressInUse",
        f"Unable to complete operation for network {ids['demo']}. "
        "The mac address fa:16:3e:00:00:02 is in use.",
    )
    body = {"port": {"mac_address": "fa:16:3e:00:00:02"}}
    assert fault(http.put(f"/v2.0/ports/{two['id']}", json=body)) == in_use
    assert (
        fault(http.post("/v2.0/ports", json={"port": {"network_id": ids["demo"], **body["port"]}}))
        == in_use
    )
    # the old MAC was released
    again = {"network_id": ids["demo"], "mac_address": one["mac_address"]}
    assert (
        created(http.post("/v2.0/ports", json={"port": again}), "port")["mac_address"]
        == one["mac_address"]
    )
    # Neutron refuses the change on a bound port (its oracle port only failed to bind)
    bound = post(http, "ports", "port", network_id=ids["demo"], **{"binding:host_id": "node1"})
    assert bound["binding:vif_type"] != "unbound"
    status, type_name, message = fault(
        http.put(f"/v2.0/ports/{bound['id']}", json={"port": {"mac_address": "fa:16:3e:00:00:09"}})
    )
    assert (status, type_name) == (409, "PortBound")
    assert message.startswith(
        f"Unable to complete operation on port {bound['id']}, port is already bound"
    )


# --- the table: error cases from the oracle ------------------------------------------------
PROTOCOLS = (
    "(None, 'any', 'ah', 'dccp', 'egp', 'esp', 'gre', 'hopopt', 'icmp', 'igmp', 'ip', 'ipip', "
    "'ipv6-encap', 'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', 'ipv6-route', "
    "'ospf', 'pgm', 'rsvp', 'sctp', 'tcp', 'udp', 'udplite', 'vrrp')"
)
SN = "/v2.0/subnets"
RULES = "/v2.0/security-group-rules"


def _subnet(**fields: Any) -> dict[str, Any]:
    return {"subnet": {"network_id": "{other}", "ip_version": 4, **fields}}


def _rule(**fields: Any) -> dict[str, Any]:
    return {"security_group_rule": {"security_group_id": "{sg}", "direction": "ingress", **fields}}


# (method, path, body or raw text, headers) -> (code, type, message); {names} from ``ids``
ORACLE_ERRORS: list[Any] = [
    # networks and subnets
    ("PUT", "/v2.0/networks/{other}", {"network": {"id": "x"}}, None,
     (400, "HTTPBadRequest", "Cannot update read-only attribute id")),
    ("GET", "/v2.0/networks/nope", None, None,
     (404, "NetworkNotFound", "Network nope could not be found.")),
    ("DELETE", f"/v2.0/networks/{UNKNOWN}", None, None,
     (404, "NetworkNotFound", f"Network {UNKNOWN} could not be found.")),
    ("POST", SN, {"subnet": {"network_id": "{demo}", "ip_version": 4, "cidr": "10.28.5.0/24"}}, None,
     (400, "InvalidInput", "Invalid input for operation: Requested subnet with cidr: 10.28.5.0/24 "
      "for network: {demo} overlaps with another subnet.")),
    ("POST", SN, _subnet(cidr="foo"), None,
     (400, "InvalidInput", "Invalid input for operation: foo is not in a CIDR format.")),
    ("POST", SN, _subnet(cidr="10.50.0.0/33"), None,
     (400, "InvalidInput", "Invalid input for operation: 10.50.0.0/33 is not in a CIDR format.")),
    ("POST", SN, _subnet(cidr="10.50.0.1/32"), None,
     (400, "InvalidInput", "Invalid input for operation: Subnet has a prefix length that is "
      "incompatible with DHCP service enabled.")),
    ("POST", SN, _subnet(cidr="10.50.2.0/24", gateway_ip="10.50.2.10",
                         allocation_pools=[{"start": "10.50.2.5", "end": "10.50.2.20"}]), None,
     (409, "GatewayConflictWithAllocationPools",
      "Gateway ip 10.50.2.10 conflicts with allocation pool 10.50.2.5-10.50.2.20.")),
    ("POST", SN, _subnet(cidr="10.50.3.0/24", gateway_ip="10.50.3.0"), None,
     (400, "InvalidInput", "Invalid input for operation: Gateway is not valid on subnet.")),
    ("POST", SN, _subnet(cidr="10.50.3.0/24", gateway_ip="bad"), None,
     (400, "HTTPBadRequest", "Invalid input for gateway_ip. Reason: 'bad' is not a valid IP address.")),
    ("POST", SN, _subnet(ip_version=6, cidr="10.60.0.0/24"), None,
     (400, "InvalidInput", "Invalid input for operation: cidr '10.60.0.0/24' does not match the "
      "ip_version '6'.")),
    ("POST", SN, _subnet(ip_version=5, cidr="10.60.0.0/24"), None,
     (400, "HTTPBadRequest", "Invalid input for ip_version. Reason: 5 is not in valid_values.")),
    ("POST", SN, {"subnet": {"network_id": "{other}", "cidr": "10.60.0.0/24"}}, None,
     (400, "HTTPBadRequest", "Failed to parse request. Required attribute 'ip_version' not specified")),
    ("POST", SN, _subnet(), None,
     (400, "BadRequest", "Bad subnets request: a subnetpool must be specified in the absence of a cidr.")),
    ("POST", SN, {"subnet": {"network_id": UNKNOWN, "ip_version": 4, "cidr": "10.60.0.0/24"}}, None,
     (404, "NetworkNotFound", f"Network {UNKNOWN} could not be found.")),
    ("POST", SN, _subnet(cidr="10.60.0.0/24", allocation_pools=[{"start": "10.61.0.5", "end": "10.61.0.20"}]), None,
     (400, "OutOfBoundsAllocationPool",
      "The allocation pool 10.61.0.5-10.61.0.20 spans beyond the subnet cidr 10.60.0.0/24.")),
    ("POST", SN, _subnet(cidr="10.60.0.0/24", allocation_pools=[{"start": "10.60.0.20", "end": "10.60.0.5"}]), None,
     (400, "InvalidAllocationPool",
      "The allocation pool {{'start': '10.60.0.20', 'end': '10.60.0.5'}} is not valid.")),
    ("POST", SN, _subnet(cidr="10.60.0.0/24", ipv6_ra_mode="slaac"), None,
     (400, "InvalidInput", "Invalid input for operation: ipv6_ra_mode is not valid when ip_version is 4.")),
    ("PUT", "/v2.0/subnets/{other_v4}", {"subnet": {"cidr": "10.99.0.0/25"}}, None,
     (400, "HTTPBadRequest", "Cannot update read-only attribute cidr")),
    # ports: attributes
    ("POST", "/v2.0/ports", {"port": {"name": "x"}}, None,
     (400, "HTTPBadRequest", "Failed to parse request. Required attribute 'network_id' not specified")),
    ("POST", "/v2.0/ports", {"port": {"network_id": "nope"}}, None,
     (400, "HTTPBadRequest", "Invalid input for network_id. Reason: 'nope' is not a valid UUID.")),
    ("POST", "/v2.0/ports", {"port": {"network_id": UNKNOWN}}, None,
     (404, "NetworkNotFound", f"Network {UNKNOWN} could not be found.")),
    ("POST", "/v2.0/ports", {"port": {"network_id": "{demo}", "name": 123}}, None,
     (400, "HTTPBadRequest", "Invalid input for name. Reason: '123' is not a valid string.")),
    ("PUT", "/v2.0/ports/{pb}", {"port": {"name": None}}, None,
     (400, "HTTPBadRequest", "Invalid input for name. Reason: 'None' is not a valid string.")),
    ("PUT", "/v2.0/ports/{pb}", {"port": {"security_groups": "x"}}, None,
     (400, "HTTPBadRequest", "Invalid input for security_groups. Reason: 'x' is not a list.")),
    ("PUT", "/v2.0/ports/{pb}", {"port": {"security_groups": [UNKNOWN]}}, None,
     (404, "SecurityGroupNotFound", f"Security group {UNKNOWN} does not exist")),
    ("PUT", "/v2.0/ports/{pb}", {"port": {"allowed_address_pairs": [{"ip_address": "bad"}]}}, None,
     (400, "HTTPBadRequest", "'bad' is not a valid IP address")),
    ("PUT", "/v2.0/ports/{pb}", {"port": {"mac_address": "zz:16:3e:00:00:02"}}, None,
     (400, "HTTPBadRequest", "Invalid input for mac_address. Reason: 'zz:16:3e:00:00:02' is not a "
      "valid MAC address.")),
    ("PUT", "/v2.0/ports/{pb}", {"port": {"port_security_enabled": False}}, None,
     (409, "PortSecurityPortHasSecurityGroup", "Port has security group associated. Cannot "
      "disable port security or IP address until security group is removed.")),
    # ports: bodies and URLs
    ("POST", "/v2.0/ports", "{not json", None,
     (400, "HTTPBadRequest", "Body contains invalid data")),
    ("POST", "/v2.0/ports", "[1, 2]", None, (400, "HTTPBadRequest", "Body contains invalid data")),
    ("POST", "/v2.0/ports", "", None,
     (400, "HTTPBadRequest", "Unable to find 'port' in request body")),
    ("POST", "/v2.0/ports", {"network": {"name": "x"}}, None,
     (400, "HTTPBadRequest", "Unable to find 'port' in request body")),
    ("POST", "/v2.0/ports", {"port": "x"}, None,
     (400, "HTTPBadRequest", "Object 'port' contains invalid data")),
    ("POST", "/v2.0/ports/{pb}", {"port": {"name": "x"}}, None,
     (400, "HTTPBadRequest", "Failed to parse request. Required attribute 'network_id' not specified")),
    ("PUT", "/v2.0/ports", {"port": {"name": "x"}}, None,
     (404, "PortNotFound", "Port None could not be found.")),
    ("DELETE", "/v2.0/ports", None, None, (404, "PortNotFound", "Port None could not be found.")),
    ("PATCH", "/v2.0/ports/{pb}", {"port": {"name": "x"}}, None,
     (405, "HTTPMethodNotAllowed", "The server could not comply with the request since it is "
      "either malformed or otherwise incorrect.")),
    ("GET", "/v2.0/ports/nope", None, None, (404, "PortNotFound", "Port nope could not be found.")),
    ("GET", "/v2.0/bogus", None, None, (404, "HTTPNotFound", "The resource could not be found.")),
    ("GET", "/v2.0", None, None, (404, "HTTPNotFound", "The resource could not be found.")),
    # bulk
    ("POST", "/v2.0/ports", {"ports": []}, None, (400, "HTTPBadRequest", "Resources required")),
    ("POST", "/v2.0/ports", {"ports": {"network_id": "{demo}"}}, None,
     (400, "HTTPBadRequest", "Object 'port' contains invalid data")),
    # lists
    ("GET", "/v2.0/ports?unknown_filter=1", None, None,
     (400, "HTTPBadRequest", "['unknown_filter'] is invalid attribute for filtering")),
    ("GET", "/v2.0/ports?sort_key=bogus", None, None,
     (400, "HTTPBadRequest", "The number of sort_keys and sort_dirs must be same")),
    ("GET", "/v2.0/ports?sort_key=fixed_ips&sort_dir=asc", None, None,
     (400, "HTTPBadRequest", "['fixed_ips'] is invalid attribute for sort_keys")),
    ("GET", "/v2.0/ports?sort_key=name&sort_dir=up", None, None,
     (400, "HTTPBadRequest", "['up'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'")),
    ("GET", "/v2.0/ports?limit=x", None, None,
     (400, "BadRequest", "Bad limit request: Limit must be an integer 0 or greater and not 'x'.")),
    ("GET", "/v2.0/ports?limit=1&marker=nope", None, None,
     (404, "PortNotFound", "Port nope could not be found.")),
    ("GET", "/v2.0/subnets?ip_version=x", None, None,
     (400, "InvalidInput", "Invalid input for operation: 'x' is not an integer.")),
    # If-Match
    ("PUT", "/v2.0/ports/{pb}", {"port": {"name": "pb"}}, {"If-Match": "revision_number=x"},
     (400, "BadRequest", "Bad if-match request: Revision number etag must be in the format of "
      "revision_number=<int>.")),
    # security groups and rules
    ("POST", "/v2.0/security-groups", {"security_group": {"name": "default"}}, None,
     (409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")),
    ("GET", f"/v2.0/security-groups/{UNKNOWN}", None, None,
     (404, "SecurityGroupNotFound", f"Security group {UNKNOWN} does not exist")),
    ("PUT", f"{RULES}/{UNKNOWN}", {"security_group_rule": {"description": "x"}}, None,
     (404, "SecurityGroupRuleNotFound", f"Security group rule {UNKNOWN} does not exist")),
    ("POST", RULES, {"security_group_rule": {"security_group_id": UNKNOWN, "direction": "ingress"}}, None,
     (404, "SecurityGroupNotFound", f"Security group {UNKNOWN} does not exist")),
    ("POST", RULES, _rule(remote_group_id=UNKNOWN), None,
     (404, "SecurityGroupNotFound", f"Security group {UNKNOWN} does not exist")),
    ("POST", RULES, _rule(protocol="tcp", port_range_min=100, port_range_max=10), None,
     (400, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")),
    ("POST", RULES, _rule(protocol="tcp", port_range_min=1, port_range_max=70000), None,
     (400, "SecurityGroupInvalidPortValue", "Invalid value for port 70000")),
    ("POST", RULES, _rule(protocol="tcp", port_range_min=0, port_range_max=0), None,
     (400, "SecurityGroupInvalidPortValue", "Invalid value for port 0")),
    ("POST", RULES, _rule(port_range_min=1, port_range_max=2), None,
     (400, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")),
    ("POST", RULES, _rule(ethertype="IPv6", protocol="tcp", remote_ip_prefix="10.0.0.0/8"), None,
     (400, "SecurityGroupRuleParameterConflict", "Conflicting value ethertype IPv6 for CIDR 10.0.0.0/8")),
    ("POST", RULES, _rule(remote_ip_prefix="10.0.0.0/8", remote_group_id="{sg}"), None,
     (400, "SecurityGroupMultipleRemoteEntites", "Only one of remote_ip_prefix or remote_group_id "
      "or remote_address_group_id may be provided.")),
    ("POST", RULES, _rule(protocol="foo"), None,
     (400, "SecurityGroupRuleInvalidProtocol", f"Security group rule protocol foo not supported. "
      f"Only protocol values {PROTOCOLS} and integer representations [0 to 255] are supported.")),
    ("POST", RULES, _rule(direction="sideways"), None,
     (400, "HTTPBadRequest", "Invalid input for direction. Reason: sideways is not in valid_values.")),
    ("POST", RULES, _rule(ethertype="IPv5"), None,
     (400, "SecurityGroupRuleInvalidEtherType", "Security group rule for ethertype 'IPv5' not "
      "supported. Allowed values are ['IPv4', 'IPv6'].")),
    ("POST", RULES, {"security_group_rule": {"security_group_id": "{sg}"}}, None,
     (400, "HTTPBadRequest", "Failed to parse request. Required attribute 'direction' not specified")),
    ("POST", RULES, _rule(protocol="icmp", port_range_max=0), None,
     (400, "SecurityGroupMissingIcmpType", "ICMP code (port-range-max) 0 is provided but ICMP type "
      "(port-range-min) is missing.")),
    ("POST", RULES, _rule(protocol="icmp", port_range_min=256), None,
     (400, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP type (port_range_min) 256. "
      "It must be 0 to 255.")),
    # tags (Neutron's tag controller answers InvalidInput)
    ("PUT", "/v2.0/ports/{pb}/tags", {"tags": [1]}, None,
     (400, "InvalidInput", "Invalid input for operation: '1' is not a valid string.")),
    ("PUT", "/v2.0/ports/{pb}/tags", {"tags": "a"}, None,
     (400, "InvalidInput", "Invalid input for operation: 'a' is not a list.")),
    ("PUT", "/v2.0/ports/{pb}/tags", {"tag": ["a"]}, None,
     (400, "InvalidInput", "Invalid input for operation: Invalid tags body.")),
    ("PUT", "/v2.0/ports/{pb}/tags", {"tags": ["d", "d"]}, None,
     (400, "InvalidInput", "Invalid input for operation: Duplicate items in the list: 'd'.")),
    ("PUT", "/v2.0/ports/{pb}/tags/" + "x" * 256, None, None,
     (400, "InvalidInput", f"Invalid input for operation: '{'x' * 256}' exceeds maximum length of 255.")),
    ("GET", "/v2.0/ports/{pb}/tags/zzz", None, None, (404, "TagNotFound", "Tag zzz could not be found.")),
    # Neutron fails these with a 500; the resource's own 404 is the sensible answer
    ("GET", f"/v2.0/ports/{UNKNOWN}/tags", None, None,
     (404, "PortNotFound", f"Port {UNKNOWN} could not be found.")),
    ("PUT", f"/v2.0/ports/{UNKNOWN}/tags/c", None, None,
     (404, "PortNotFound", f"Port {UNKNOWN} could not be found.")),
]  # fmt: skip


@pytest.fixture(scope="module")
def table_ids(http: httpx.Client, ids: dict[str, str]) -> dict[str, str]:
    return {**ids, "sg": post(http, "security-groups", "security_group", name="table")["id"]}


@pytest.mark.parametrize(
    "case", ORACLE_ERRORS, ids=[f"{c[0]} {c[1][:60]} {c[4][1]}" for c in ORACLE_ERRORS]
)
def test_oracle_errors(http: httpx.Client, table_ids: dict[str, str], case: Any) -> None:
    method, path, body, headers, (code, type_name, message) = case
    content = body if body is None or isinstance(body, str) else json.dumps(fill(body, table_ids))
    response = http.request(
        method,
        path.format(**table_ids),
        content=content,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )
    assert fault(response) == (code, type_name, message.format(**table_ids))


# --- resource bodies: Neutron's field sets and defaults -----------------------------------
ORACLE_KEYS = {
    "network": {
        "id", "name", "tenant_id", "project_id", "admin_state_up", "mtu", "status", "subnets",
        "shared", "port_security_enabled", "router:external", "provider:network_type",
        "provider:physical_network", "provider:segmentation_id", "vlan_transparent", "qinq",
        "is_default", "availability_zone_hints", "availability_zones", "ipv4_address_scope",
        "ipv6_address_scope", "description", "tags", "created_at", "updated_at",
        "revision_number",
    },
    "subnet": {
        "id", "name", "project_id", "network_id", "ip_version", "subnetpool_id", "enable_dhcp",
        "ipv6_ra_mode", "ipv6_address_mode", "gateway_ip", "cidr", "allocation_pools",
        "host_routes", "dns_nameservers", "description", "router:external", "service_types",
        "tags", "created_at", "updated_at", "revision_number", "tenant_id",
    },
    "port": {
        "id", "name", "network_id", "project_id", "mac_address", "admin_state_up", "status",
        "device_id", "device_owner", "fixed_ips", "tenant_id", "port_security_enabled",
        "security_groups", "binding:vnic_type", "binding:profile", "binding:host_id",
        "binding:vif_type", "binding:vif_details", "allowed_address_pairs", "extra_dhcp_opts",
        "description", "tags", "created_at", "updated_at", "revision_number",
    },
    "security_group": {
        "id", "name", "stateful", "tenant_id", "project_id", "description", "shared",
        "security_group_rules", "tags", "created_at", "updated_at", "revision_number",
    },
    "security_group_rule": {
        "id", "project_id", "security_group_id", "ethertype", "direction", "protocol",
        "port_range_min", "port_range_max", "remote_ip_prefix", "remote_address_group_id",
        "normalized_cidr", "remote_group_id", "belongs_to_default_sg", "description",
        "created_at", "updated_at", "revision_number", "tenant_id",
    },
}  # fmt: skip
# Ours on top, from extensions the oracle's deployment does not load (dns-integration,
# dns-domain-ports, subnet-dns-publish-fixed-ip, ip_allocation, l2_adjacency).
OURS_EXTRA = {
    "network": {"dns_domain", "l2_adjacency"},
    "subnet": {"dns_publish_fixed_ip"},
    "port": {"dns_name", "dns_assignment", "dns_domain", "ip_allocation"},
    "security_group": set(),
    "security_group_rule": set(),
}
# Neutron also shows an embedded rule's ``standard_attr_id`` (a database row number).
EMBEDDED_RULE_KEYS = ORACLE_KEYS["security_group_rule"] | {"tags"}

ORACLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "network": {
        "name": "", "admin_state_up": True, "mtu": 1500, "status": "ACTIVE", "subnets": [],
        "shared": False, "port_security_enabled": True, "router:external": False,
        "provider:network_type": "local", "provider:physical_network": None,
        "provider:segmentation_id": None, "vlan_transparent": False, "qinq": False,
        "is_default": False, "availability_zone_hints": [], "availability_zones": [],
        "ipv4_address_scope": None, "ipv6_address_scope": None, "description": "", "tags": [],
        "revision_number": 1,
    },
    "subnet": {
        "name": "", "subnetpool_id": None, "enable_dhcp": True, "ipv6_ra_mode": None,
        "ipv6_address_mode": None, "gateway_ip": "10.40.0.1", "cidr": "10.40.0.0/24",
        "allocation_pools": [{"start": "10.40.0.2", "end": "10.40.0.254"}], "host_routes": [],
        "dns_nameservers": [], "description": "", "router:external": False,
        "service_types": [], "tags": [], "revision_number": 0,
    },
    "port": {
        "name": "", "admin_state_up": True, "status": "DOWN", "device_id": "", "device_owner": "",
        "port_security_enabled": True, "binding:vnic_type": "normal", "binding:profile": {},
        "binding:host_id": "", "binding:vif_type": "unbound", "binding:vif_details": {},
        "allowed_address_pairs": [], "extra_dhcp_opts": [], "description": "", "tags": [],
        "revision_number": 1,
    },
    "security_group": {"name": "", "stateful": True, "description": "", "shared": False, "tags": [],
                       "revision_number": 1},
}  # fmt: skip


def test_resource_bodies_have_neutrons_fields(http: httpx.Client) -> None:
    network = post(http, "networks", "network")
    subnet = post(
        http, "subnets", "subnet", network_id=network["id"], ip_version=4, cidr="10.40.0.0/24"
    )
    port = post(http, "ports", "port", network_id=network["id"])
    group = post(http, "security-groups", "security_group")
    rule = post(
        http,
        "security-group-rules",
        "security_group_rule",
        security_group_id=group["id"],
        direction="ingress",
    )
    shown = http.get(f"/v2.0/networks/{network['id']}").json()["network"]
    bodies = {
        "network": network,
        "subnet": subnet,
        "port": port,
        "security_group": group,
        "security_group_rule": rule,
    }
    for name, body in bodies.items():
        assert set(body) == ORACLE_KEYS[name] | OURS_EXTRA[name], name
        for key, value in ORACLE_DEFAULTS.get(name, {}).items():
            assert body[key] == value, (name, key)
        assert body["tenant_id"] == body["project_id"]
    assert set(shown) == set(network)
    assert shown["subnets"] == [subnet["id"]]
    assert shown["revision_number"] == 2  # a new subnet is a change of its network
    assert port["mac_address"].startswith("fa:16:3e:")
    assert len(port["security_groups"]) == 1
    for embedded in group["security_group_rules"]:
        assert set(embedded) == EMBEDDED_RULE_KEYS
    assert rule["description"] == ""
    assert rule["belongs_to_default_sg"] is False


def test_ipv6_subnet_defaults(http: httpx.Client) -> None:
    network = post(http, "networks", "network")
    subnet = post(
        http, "subnets", "subnet", network_id=network["id"], ip_version=6, cidr="fd00:99::/64"
    )
    # Neutron's IPv6 gateway is the subnet-router anycast address, the pool the rest
    assert subnet["gateway_ip"] == "fd00:99::"
    assert subnet["allocation_pools"] == [
        {"start": "fd00:99::1", "end": "fd00:99::ffff:ffff:ffff:ffff"}
    ]
    odd = post(
        http, "subnets", "subnet", network_id=network["id"], ip_version=4, cidr="10.50.0.1/24"
    )
    assert (odd["cidr"], odd["gateway_ip"]) == ("10.50.0.0/24", "10.50.0.1")
    outside = post(
        http,
        "subnets",
        "subnet",
        network_id=network["id"],
        ip_version=4,
        cidr="10.50.1.0/24",
        gateway_ip="10.50.9.1",
    )
    assert outside["allocation_pools"] == [{"start": "10.50.1.1", "end": "10.50.1.254"}]


def test_security_group_rules_as_neutron_shows_them(http: httpx.Client) -> None:
    project = "proj-new"
    listed = http.get(f"/v2.0/security-groups?project_id={project}").json()["security_groups"]
    (default,) = listed  # listing a project's groups as admin creates its default group
    assert (default["name"], default["description"]) == ("default", "Default security group")
    rules = default["security_group_rules"]
    assert sorted((r["direction"], r["ethertype"], r["remote_group_id"]) for r in rules) == [
        ("egress", "IPv4", None),
        ("egress", "IPv6", None),
        ("ingress", "IPv4", default["id"]),
        ("ingress", "IPv6", default["id"]),
    ]
    assert all(r["description"] is None and r["belongs_to_default_sg"] is True for r in rules)
    alone = http.get(f"/v2.0/security-group-rules?security_group_id={default['id']}").json()
    assert all("tags" not in r for r in alone["security_group_rules"])
    assert fault(
        http.put(f"/v2.0/security-groups/{default['id']}", json={"security_group": {"name": "x"}})
    ) == (409, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
    renamed = http.put(
        f"/v2.0/security-groups/{default['id']}", json={"security_group": {"description": "d"}}
    )
    assert renamed.json()["security_group"]["description"] == "d"

    group = post(http, "security-groups", "security_group", name="sg1")
    assert [
        (r["direction"], r["belongs_to_default_sg"]) for r in group["security_group_rules"]
    ] == [
        ("egress", False),
        ("egress", False),
    ]
    assert fault(
        http.put(
            f"/v2.0/security-groups/{group['id']}", json={"security_group": {"name": "default"}}
        )
    ) == (409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
    tcp22 = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp"}
    tcp22 |= {"port_range_min": 22, "port_range_max": 22}
    first = post(
        http,
        "security-group-rules",
        "security_group_rule",
        remote_ip_prefix="192.168.8.1/32",
        **tcp22,
    )
    assert (first["remote_ip_prefix"], first["normalized_cidr"]) == (
        "192.168.8.1/32",
        "192.168.8.1/32",
    )
    exists = (
        409,
        "SecurityGroupRuleExists",
        f"Security group rule already exists. Rule id is {first['id']}.",
    )
    for prefix in ("192.168.8.1/32", "192.168.8.1"):  # the same rule, with or without mask
        body = {"security_group_rule": {**tcp22, "remote_ip_prefix": prefix}}
        assert fault(http.post("/v2.0/security-group-rules", json=body)) == exists
    wide = post(
        http,
        "security-group-rules",
        "security_group_rule",
        remote_ip_prefix="192.168.8.1/24",
        **tcp22,
    )
    assert (wide["remote_ip_prefix"], wide["normalized_cidr"]) == (
        "192.168.8.1/24",
        "192.168.8.0/24",
    )
    numbered = {**tcp22, "protocol": "6", "port_range_min": 443, "port_range_max": 443}
    assert post(http, "security-group-rules", "security_group_rule", **numbered)["protocol"] == "6"


# --- other projects and readers -------------------------------------------------------------
def neutron_error(
    exc: pytest.ExceptionInfo[openstack.exceptions.HttpException],
) -> tuple[int, str, str]:
    response = exc.value.response
    assert response is not None
    error = response.json()["NeutronError"]
    return response.status_code, error["type"], error["message"]


@pytest.fixture(scope="module")
def demo_port(connect: Connect) -> dict[str, str]:
    demo = connect("demo")
    net = demo.network.create_network(name="demo-private")
    demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.11.0.0/24")
    port = demo.network.create_port(network_id=net.id, name="demo-port")
    return {"network": net.id, "port": port.id}


def test_another_projects_port_does_not_exist(connect: Connect, demo_port: dict[str, str]) -> None:
    alt = connect("alt")
    port_id = demo_port["port"]
    with pytest.raises(openstack.exceptions.NotFoundException) as read:
        alt.network.get_port(port_id)
    assert neutron_error(read) == (404, "PortNotFound", f"Port {port_id} could not be found.")
    # writes go through Neutron's policy hook, which hides what the caller cannot see
    hidden = (404, "HTTPNotFound", "The resource could not be found.")
    with pytest.raises(openstack.exceptions.NotFoundException) as write:
        alt.network.update_port(port_id, name="stolen")
    assert neutron_error(write) == hidden
    with pytest.raises(openstack.exceptions.NotFoundException) as delete:
        alt.network.delete_port(port_id, ignore_missing=False)
    assert neutron_error(delete) == hidden
    assert port_id not in {p.id for p in alt.network.ports()}
    assert connect("demo").network.get_port(port_id).name == "demo-port"


def test_reader_cannot_write(connect: Connect, demo_port: dict[str, str]) -> None:
    viewer = connect("viewer", "demo")
    port_id = demo_port["port"]
    assert viewer.network.get_port(port_id).name == "demo-port"
    with pytest.raises(openstack.exceptions.ForbiddenException) as update:
        viewer.network.update_port(port_id, name="changed")
    assert neutron_error(update) == (
        403,
        "PolicyNotAuthorized",
        "rule:update_port is disallowed by policy",
    )
    with pytest.raises(openstack.exceptions.ForbiddenException) as create:
        viewer.network.create_port(network_id=demo_port["network"])
    assert neutron_error(create) == (
        403,
        "PolicyNotAuthorized",
        "rule:create_port is disallowed by policy",
    )
    with pytest.raises(openstack.exceptions.ForbiddenException) as delete:
        viewer.network.delete_port(port_id, ignore_missing=False)
    assert neutron_error(delete) == (
        403,
        "PolicyNotAuthorized",
        "rule:delete_port is disallowed by policy",
    )
    assert connect("demo").network.get_port(port_id).name == "demo-port"


# --- lists --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def listed(http: httpx.Client) -> dict[str, Any]:
    """A network with three ports, named so that name order differs from id order."""
    net = post(http, "networks", "network", name="list-net")["id"]
    post(http, "subnets", "subnet", network_id=net, ip_version=4, cidr="10.12.0.0/24")
    ports = [post(http, "ports", "port", network_id=net, name=n) for n in ("c", "a", "b")]
    return {"net": net, "ids": sorted(p["id"] for p in ports), "ports": ports}


def test_filters_and_fields(http: httpx.Client, listed: dict[str, Any]) -> None:
    net = listed["net"]

    def names(query: str) -> list[str]:
        response = http.get(f"/v2.0/ports?network_id={net}&{query}")
        assert response.status_code == 200, response.text
        return sorted(p["name"] for p in response.json()["ports"])

    assert names("name=a&name=b") == ["a", "b"]  # the same key twice: either
    assert names("admin_state_up=yes") == ["a", "b", "c"]  # converted like a body value
    assert names("admin_state_up=false") == []
    assert names("fixed_ips=bogus%3D1") == ["a", "b", "c"]  # unknown fixed_ips keys: ignored
    address = listed["ports"][0]["fixed_ips"][0]["ip_address"]
    assert names(f"fixed_ips=ip_address%3D{address}") == ["c"]
    assert names("fixed_ips=ip_address%3D10.12.0.999") == []
    response = http.get(f"/v2.0/ports?network_id={net}&fields=bogus")
    assert response.json() == {"ports": [{}, {}, {}]}
    response = http.get(
        f"/v2.0/ports?network_id={net}&fields=id&fields=name&sort_key=name&sort_dir=desc"
    )
    assert [p["name"] for p in response.json()["ports"]] == ["c", "b", "a"]
    assert all(set(p) == {"id", "name"} for p in response.json()["ports"])
    shown = http.get(f"/v2.0/ports/{listed['ports'][0]['id']}?fields=name")
    assert shown.json() == {"port": {"name": "c"}}


def test_pagination_links(http: httpx.Client, api: ApiServer, listed: dict[str, Any]) -> None:
    net, (first, second, third) = listed["net"], listed["ids"]
    base = f"{api.url}/v2.0/ports?network_id={net}&limit=1"

    def page(query: str) -> dict[str, Any]:
        response = http.get(f"/v2.0/ports?network_id={net}&{query}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    # the first page already has both links
    body = page("limit=1")
    assert [p["id"] for p in body["ports"]] == [first]
    assert body["ports_links"] == [
        {"rel": "next", "href": f"{base}&marker={first}"},
        {"rel": "previous", "href": f"{base}&marker={first}&page_reverse=True"},
    ]
    body = page(f"limit=1&marker={first}")
    assert [p["id"] for p in body["ports"]] == [second]
    assert body["ports_links"][0] == {"rel": "next", "href": f"{base}&marker={second}"}
    # a short last page has no next link
    body = page(f"limit=2&marker={second}")
    assert [p["id"] for p in body["ports"]] == [third]
    assert [link["rel"] for link in body["ports_links"]] == ["previous"]
    # backwards from the first: nothing, and a next link without a marker
    body = page(f"limit=1&marker={first}&page_reverse=True")
    assert body == {"ports": [], "ports_links": [{"rel": "next", "href": base}]}
    body = page("limit=2&page_reverse=True")
    assert [p["id"] for p in body["ports"]] == [second, third]
    # limit=0 is no limit, and no links
    assert set(page("limit=0")) == {"ports"}
    # an unknown marker is the resource's 404
    assert fault(http.get(f"/v2.0/ports?limit=1&marker={UNKNOWN}")) == (
        404,
        "PortNotFound",
        f"Port {UNKNOWN} could not be found.",
    )


# --- If-Match, bulk, tags ---------------------------------------------------------------------
def test_if_match(http: httpx.Client, ids: dict[str, str]) -> None:
    port = post(http, "ports", "port", network_id=ids["other"], name="ifm")
    url = f"/v2.0/ports/{port['id']}"
    assert port["revision_number"] == 1
    response = http.put(url, json={"port": {"name": "ifm2"}})
    assert response.json()["port"]["revision_number"] == 2
    for stale in (1, 7):
        headers = {"If-Match": f"revision_number={stale}"}
        expected = (
            412,
            "RevisionNumberConstraintFailed",
            f"Constrained to {stale}, but current revision is 2",
        )
        assert fault(http.put(url, json={"port": {"name": "x"}}, headers=headers)) == expected
        assert fault(http.delete(url, headers=headers)) == expected
    assert port_of(http, port["id"])["name"] == "ifm2"  # neither went through
    ignored = http.put(url, json={"port": {"name": "ifm3"}}, headers={"If-Match": '"abc"'})
    assert ignored.status_code == 200
    assert ignored.json()["port"]["revision_number"] == 3
    matching = http.delete(url, headers={"If-Match": "revision_number=3"})
    assert matching.status_code == 204


def test_bulk_create_is_all_or_nothing(http: httpx.Client, ids: dict[str, str]) -> None:
    demo = ids["demo"]

    def bulk_names() -> list[str]:
        query = "name=bulk1&name=bulk2&name=bulk3"
        return [p["name"] for p in http.get(f"/v2.0/ports?{query}").json()["ports"]]

    entries = [
        {"network_id": demo, "name": "bulk1"},
        {"network_id": demo, "name": "bulk2", "fixed_ips": [{"ip_address": "10.28.0.5"}]},
        {"network_id": demo, "name": "bulk3"},
    ]
    assert fault(http.post("/v2.0/ports", json={"ports": entries})) == (
        409,
        "IpAddressAlreadyAllocated",
        f"IP address 10.28.0.5 already allocated in subnet {ids['v4']}",
    )
    assert bulk_names() == []
    entries[1] = {"network_id": demo, "name": "bulk2", "foo": 1}
    assert fault(http.post("/v2.0/ports", json={"ports": entries})) == (
        400,
        "HTTPBadRequest",
        "Unrecognized attribute(s) 'foo'",
    )
    same = [
        {"network_id": demo, "name": n, "fixed_ips": [{"ip_address": "10.28.9.9"}]}
        for n in ("bulk1", "bulk2")
    ]
    assert fault(http.post("/v2.0/ports", json={"ports": same}))[1] == "IpAddressAlreadyAllocated"
    assert bulk_names() == []
    good = [{"network_id": ids["other"], "name": n} for n in ("bulk-ok1", "bulk-ok2")]
    response = http.post("/v2.0/ports", json={"ports": good})
    assert response.status_code == 201
    assert [p["name"] for p in response.json()["ports"]] == ["bulk-ok1", "bulk-ok2"]


def test_tags(http: httpx.Client, ids: dict[str, str]) -> None:
    port = post(http, "ports", "port", network_id=ids["other"], tags=["t1", "t2"])
    assert port["tags"] == ["t1", "t2"]  # kept (Neutron 29 drops them for ports)
    url = f"/v2.0/ports/{port['id']}/tags"
    revision = port["revision_number"]
    response = http.put(url, json={"tags": ["a", "b"]})
    assert (response.status_code, response.json()) == (200, {"tags": ["a", "b"]})
    response = http.put(f"{url}/c")
    assert (response.status_code, response.content) == (201, b"null")
    assert http.get(f"{url}/c").status_code == 204
    assert http.delete(f"{url}/a").status_code == 204
    assert fault(http.delete(f"{url}/a")) == (404, "TagNotFound", "Tag a could not be found.")
    assert http.get(url).json() == {"tags": ["b", "c"]}
    assert port_of(http, port["id"])["revision_number"] == revision + 3
    for odd in ([""], ["a,b"]):  # accepted as they are
        assert http.put(url, json={"tags": odd}).json() == {"tags": odd}
    response = http.post(url, json={"tags": ["x", "y"]})  # tag-creation: adds
    assert (response.status_code, response.json()) == (201, {"tags": ["a,b", "x", "y"]})
    tagged = http.get(f"/v2.0/ports?tags=x&network_id={ids['other']}").json()["ports"]
    assert [p["id"] for p in tagged] == [port["id"]]
    untagged = http.get(f"/v2.0/ports?not-tags=x&network_id={ids['other']}").json()["ports"]
    assert port["id"] not in {p["id"] for p in untagged}
    assert http.delete(url).status_code == 204
    assert http.get(url).json() == {"tags": []}
    net_tag = http.put(f"/v2.0/networks/{ids['other']}/tags/x")
    assert (net_tag.status_code, net_tag.content) == (201, b"null")


def test_network_in_use_names_its_ports_oldest_first(http: httpx.Client) -> None:
    net = post(http, "networks", "network")["id"]
    post(http, "subnets", "subnet", network_id=net, ip_version=4, cidr="10.13.0.0/24")
    ports = [post(http, "ports", "port", network_id=net)["id"] for _ in range(3)]
    assert fault(http.delete(f"/v2.0/networks/{net}")) == (
        409,
        "NetworkInUse",
        f"Unable to complete operation on network {net}. There are one or more ports still in "
        f"use on the network, id for these ports is: {','.join(ports)}.",
    )


# --- version documents and extensions ------------------------------------------------------
# As the oracle lists them; we must give exactly these texts for what we implement.
ORACLE_EXTENSIONS = {
    "allowed-address-pairs": ("Allowed Address Pairs", "Provides allowed address pairs", "2013-07-23T10:00:00-00:00"),
    "binding": ("Port Binding", "Expose port bindings of a virtual port to external application", "2014-02-03T10:00:00-00:00"),
    "empty-string-filtering": ("Empty String Filtering Extension", "Allow filtering by attributes with empty string value", "2018-05-01T10:00:00-00:00"),
    "external-net": ("Neutron external network", "Adds external network attribute to network resource.", "2013-01-14T10:00:00-00:00"),
    "filter-validation": ("Filter parameters validation", "Provides validation on filter parameters.", "2018-07-04T10:00:00-00:00"),
    "fip-port-details": ("Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource", "2018-04-09T10:00:00-00:00"),
    "ip-substring-filtering": ("IP address substring filtering", "Provides IP address substring filtering when listing ports", "2017-11-28T09:00:00-00:00"),
    "router": ("Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.", "2012-07-20T10:00:00-00:00"),
    "net-mtu": ("Network MTU", "Provides MTU attribute for a network resource.", "2015-03-25T10:00:00-00:00"),
    "pagination": ("Pagination support", "Extension that indicates that pagination is enabled.", "2016-06-12T00:00:00-00:00"),
    "port-security": ("Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"),
    "project-id": ("project_id field enabled", "Extension that indicates that project_id field is enabled.", "2016-09-09T09:09:09-09:09"),
    "revision-if-match": ("If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported.", "2016-12-11T00:00:00-00:00"),
    "standard-attr-revisions": ("Resource revision numbers", "This extension will display the revision number of neutron resources.", "2016-04-11T10:00:00-00:00"),
    "security-group": ("security-group", "The security groups extension.", "2012-10-05T10:00:00-00:00"),
    "sorting": ("Sorting support", "Extension that indicates that sorting is enabled.", "2016-06-12T00:00:00-00:00"),
    "standard-attr-description": ("standard-attr-description", "Extension to add descriptions to standard attributes", "2016-02-10T10:00:00-00:00"),
    "tag-creation": ("Tag creation extension", "Allow to create multiple tags for a resource", "2024-23-07T10:00:00-00:00"),
    "standard-attr-tag": ("Tag support for resources with standard attribute: port, subnet, subnetpool, network, security_group, router, floatingip, policy, trunk, network_segment_range", "Enables to set tag on resources with standard attribute.", "2017-01-01T00:00:00-00:00"),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", "2016-09-12T10:00:00-00:00"),
    "subnet_allocation": ("Subnet Allocation", "Enables allocation of subnets from a subnet pool", "2015-03-30T10:00:00-00:00"),
    "default-subnetpools": ("Default Subnetpools", "Provides ability to mark and use a subnetpool as the default.", "2016-02-18T18:00:00-00:00"),
    "subnetpool-prefix-ops": ("Subnet Pool Prefix Operations", "Provides support for adjusting the prefix list of subnet pools", "2019-02-08T10:00:00-00:00"),
    "rbac-policies": ("RBAC Policies", "Allows creation and modification of policies that control project access to resources.", "2015-06-17T12:15:12-00:00"),
}  # fmt: skip


def test_version_documents(http: httpx.Client, api: ApiServer) -> None:
    root = httpx.get(f"{api.url}/", timeout=30)  # no token needed
    assert root.json() == {
        "versions": [
            {
                "id": "v2.0",
                "status": "CURRENT",
                "links": [{"rel": "self", "href": f"{api.url}/v2.0/"}],
            }
        ]
    }
    resources = http.get("/v2.0/").json()["resources"]
    assert [(r["name"], r["collection"]) for r in resources] == [
        ("network", "networks"),
        ("subnet", "subnets"),
        ("subnetpool", "subnetpools"),
        ("port", "ports"),
    ]
    assert resources[0]["links"] == [{"rel": "self", "href": f"{api.url}/v2.0/networks"}]


def test_extensions(http: httpx.Client) -> None:
    listed = http.get("/v2.0/extensions").json()["extensions"]
    assert http.get("/v2.0/extensions.json").json()["extensions"] == listed
    by_alias = {e["alias"]: e for e in listed}
    assert len(by_alias) == len(listed)
    for alias, (name, description, updated) in ORACLE_EXTENSIONS.items():
        assert by_alias[alias] == {
            "alias": alias,
            "name": name,
            "description": description,
            "updated": updated,
            "links": [],
        }, alias
    # nothing listed that we do not implement
    assert not {"qos", "trunk", "segment", "provider", "address-scope"} & set(by_alias)
    shown = http.get("/v2.0/extensions/security-group")
    assert shown.json() == {"extension": by_alias["security-group"]}
    missing = http.get("/v2.0/extensions/no-such-ext")
    assert (missing.status_code, missing.json()) == (
        404,
        {
            "message": "The resource could not be found.<br /><br />\n"
            "Extension with alias no-such-ext does not exist\n\n",
            "code": "404 Not Found",
            "title": "Not Found",
        },
    )
