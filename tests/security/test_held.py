"""Red team: what held against today's main, kept held.

B (project ``alt``) tries, against A (project ``demo``): to move A's address onto its
port, to name A's port in a service IP or a floating IP, to use A's security group as a
remote group or on its own port, to forge a token, and to bind its port to a host of its
choosing. Each gets nothing, and A's resources are unchanged.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from routeplane.testing.api import ApiServer
from tests.api.helpers import assert_fault, client
from tests.security.tenants import Tenants, created

pytestmark = [pytest.mark.api]


@pytest.fixture(scope="module")
def world(tenants: Tenants) -> dict[str, Any]:
    net_a = tenants.network(tenants.a, name="a-held")
    subnet_a = tenants.subnet(tenants.a, net_a["id"], "10.101.0.0/24")
    net_b = tenants.network(tenants.b, name="b-held")
    subnet_b = tenants.subnet(tenants.b, net_b["id"], "10.102.0.0/24")
    public = tenants.network(tenants.admin, name="public-held", **{"router:external": True})
    tenants.subnet(tenants.admin, public["id"], "203.0.113.0/24")
    group_a = created(
        tenants.a.post("/security-groups", json={"security_group": {"name": "a-sg"}}),
        "security_group",
    )
    return {
        "net_a": net_a,
        "subnet_a": subnet_a,
        "net_b": net_b,
        "subnet_b": subnet_b,
        "public": public,
        "group_a": group_a,
        "port_a": tenants.port(tenants.a, net_a["id"], name="a-vm"),
        "port_b": tenants.port(tenants.b, net_b["id"], name="b-vm"),
    }


def port_not_found(port_id: str) -> tuple[int, str, str]:
    return 404, "PortNotFound", f"Port {port_id} could not be found."


def test_move_another_projects_address(tenants: Tenants, world: dict[str, Any]) -> None:
    port_a, port_b = world["port_a"], world["port_b"]
    address = port_a["fixed_ips"][0]["ip_address"]
    body = {"fixed_ip": {"ip_address": address, "from_port_id": port_a["id"]}}
    moved = tenants.b.put(f"/ports/{port_b['id']}/move_fixed_ip", json=body)
    assert_fault(moved, *port_not_found(port_a["id"]))
    assert (
        tenants.a.get(f"/ports/{port_a['id']}").json()["port"]["fixed_ips"] == port_a["fixed_ips"]
    )


def test_service_ip_naming_another_projects_port(tenants: Tenants, world: dict[str, Any]) -> None:
    port_a, port_b = world["port_a"], world["port_b"]
    for fields in (
        {"subnet_id": world["subnet_b"]["id"], "active_port_id": port_a["id"]},
        {
            "subnet_id": world["subnet_b"]["id"],
            "active_port_id": port_b["id"],
            "standby_port_ids": [port_a["id"]],
        },
    ):
        assert_fault(
            tenants.b.post("/service_ips", json={"service_ip": fields}),
            *port_not_found(port_a["id"]),
        )
    assert tenants.b.get("/service_ips").json()["service_ips"] == []


def test_floating_ip_to_another_projects_port(tenants: Tenants, world: dict[str, Any]) -> None:
    port_a = world["port_a"]
    body = {"floatingip": {"floating_network_id": world["public"]["id"], "port_id": port_a["id"]}}
    assert_fault(tenants.b.post("/floatingips", json=body), *port_not_found(port_a["id"]))
    fip = created(
        tenants.b.post(
            "/floatingips", json={"floatingip": {"floating_network_id": world["public"]["id"]}}
        ),
        "floatingip",
    )
    associate = {"floatingip": {"port_id": port_a["id"]}}
    assert_fault(
        tenants.b.put(f"/floatingips/{fip['id']}", json=associate), *port_not_found(port_a["id"])
    )
    assert tenants.b.get(f"/floatingips/{fip['id']}").json()["floatingip"]["port_id"] is None


def test_another_projects_security_group(tenants: Tenants, world: dict[str, Any]) -> None:
    group_a, port_b = world["group_a"]["id"], world["port_b"]
    missing = (404, "SecurityGroupNotFound", f"Security group {group_a} does not exist")
    group_b = created(
        tenants.b.post("/security-groups", json={"security_group": {"name": "b-sg"}}),
        "security_group",
    )
    rule = {"security_group_id": group_b["id"], "direction": "ingress", "remote_group_id": group_a}
    assert_fault(
        tenants.b.post("/security-group-rules", json={"security_group_rule": rule}), *missing
    )
    on_port = tenants.b.put(f"/ports/{port_b['id']}", json={"port": {"security_groups": [group_a]}})
    assert_fault(on_port, *missing)
    into_a = {"security_group_id": group_a, "direction": "ingress", "remote_ip_prefix": "0.0.0.0/0"}
    assert (
        tenants.b.post("/security-group-rules", json={"security_group_rule": into_a}).status_code
        == 404
    )


def forge(token: str, **claims: Any) -> str:
    """B's token with its claims rewritten and its signature kept."""
    payload, _, signature = token.partition(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    return f"{forged}.{signature}"


def test_forged_tokens(api: ApiServer, tenants: Tenants, world: dict[str, Any]) -> None:
    token = str(tenants.b.headers["X-Auth-Token"])
    a_project = world["net_a"]["project_id"]
    for forged in (
        forge(token, r=["admin"]),
        forge(token, p=a_project),
        forge(token, e=4102444800),
        token.partition(".")[0],
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "s3cret-but-not-the-admin-token",
    ):
        with client(api, forged) as http:
            answer = http.get(f"/networks/{world['net_a']['id']}")
            assert answer.status_code == 401, (forged, answer.text)
            assert http.post("/networks", json={"network": {"name": "forged"}}).status_code == 401


def test_binding_by_a_member(tenants: Tenants, world: dict[str, Any]) -> None:
    port_b = world["port_b"]
    denied = "(rule:update_port and rule:update_port:binding:host_id) is disallowed by policy"
    bind = tenants.b.put(
        f"/ports/{port_b['id']}", json={"port": {"binding:host_id": "compute-of-my-choice"}}
    )
    assert_fault(bind, 403, "PolicyNotAuthorized", denied)
    body = {"network_id": world["net_b"]["id"], "binding:host_id": "compute-of-my-choice"}
    created_denied = (
        "(rule:create_port and rule:create_port:binding:host_id) is disallowed by policy"
    )
    assert_fault(
        tenants.b.post("/ports", json={"port": body}), 403, "PolicyNotAuthorized", created_denied
    )
