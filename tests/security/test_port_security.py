"""Red team: switching off one's own anti-spoofing.

With port security off a VM may send from any address (hole 3 of issue 13 by another
door), so only an admin may turn it off, on a port or on a network whose ports inherit it.
Neutron's coupling with address pairs holds, with Neutron's own 409.
"""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_fault
from tests.security.tenants import Tenants

pytestmark = [pytest.mark.api]

PAIRS_NEED_SECURITY = (
    "Port Security must be enabled in order to have allowed address pairs on a port."
)


def denied(action: str) -> str:
    return f"(rule:{action} and rule:{action}:port_security_enabled) is disallowed by policy"


def test_a_member_cannot_turn_it_off(tenants: Tenants) -> None:
    net = tenants.network(tenants.b, name="b-secure")
    tenants.subnet(tenants.b, net["id"], "10.81.0.0/24")
    port = tenants.port(tenants.b, net["id"], name="b-vm")
    off = {"port_security_enabled": False, "security_groups": []}
    assert_fault(
        tenants.b.put(f"/ports/{port['id']}", json={"port": off}),
        403,
        "PolicyNotAuthorized",
        denied("update_port"),
    )
    assert_fault(
        tenants.b.post("/ports", json={"port": {"network_id": net["id"], **off}}),
        403,
        "PolicyNotAuthorized",
        denied("create_port"),
    )
    assert_fault(
        tenants.b.post("/networks", json={"network": {"port_security_enabled": False}}),
        403,
        "PolicyNotAuthorized",
        denied("create_network"),
    )
    assert_fault(
        tenants.b.put(f"/networks/{net['id']}", json={"network": {"port_security_enabled": False}}),
        403,
        "PolicyNotAuthorized",
        denied("update_network"),
    )
    assert tenants.b.get(f"/ports/{port['id']}").json()["port"]["port_security_enabled"] is True
    by_admin = tenants.admin.put(f"/ports/{port['id']}", json={"port": off})
    assert by_admin.status_code == 200, by_admin.text
    back_on = tenants.b.put(f"/ports/{port['id']}", json={"port": {"port_security_enabled": True}})
    assert back_on.status_code == 200, back_on.text


def test_pairs_need_port_security(tenants: Tenants) -> None:
    """Neutron's coupling both ways (the neutron-peer answers the same)."""
    net = tenants.network(tenants.b, name="b-pairs-secure")
    tenants.subnet(tenants.b, net["id"], "10.82.0.0/24")
    pair = [{"ip_address": "10.82.0.50"}]
    unsecured = tenants.port(
        tenants.admin, net["id"], port_security_enabled=False, project_id=net["project_id"]
    )
    assert_fault(
        tenants.admin.put(
            f"/ports/{unsecured['id']}", json={"port": {"allowed_address_pairs": pair}}
        ),
        409,
        "AddressPairAndPortSecurityRequired",
        PAIRS_NEED_SECURITY,
    )
    paired = tenants.port(tenants.b, net["id"], allowed_address_pairs=pair)
    assert_fault(
        tenants.admin.put(
            f"/ports/{paired['id']}",
            json={"port": {"port_security_enabled": False, "security_groups": []}},
        ),
        409,
        "AddressPairAndPortSecurityRequired",
        PAIRS_NEED_SECURITY,
    )
