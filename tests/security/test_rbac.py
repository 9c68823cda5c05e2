"""Red team: network RBAC (``/v2.0/rbac-policies``) between two projects.

A network is shared with one project by a targeted ``access_as_shared`` policy, with all
by ``shared=True`` (which is the wildcard policy). The attacks: a project reaching a
network nobody shared with it, sharing someone else's network, sharing with everyone
without being admin, revoking (or retargeting) a grant that another project's ports
stand on, creating ports while the grant is being revoked, and using a network it was
only given as external. Each asserts the attacker got nothing; the errors are Neutron's
(checked against the neutron-peer; its RbacPolicyInUse names an internal callback too).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_fault
from tests.security.tenants import Tenants, created, project_of

pytestmark = [pytest.mark.api]


FIELDS = ("id", "project_id", "tenant_id", "object_type", "object_id", "action", "target_tenant")


def policy(who: httpx.Client, network_id: str, target: str, **fields: Any) -> httpx.Response:
    body = {
        "object_type": "network",
        "object_id": network_id,
        "action": "access_as_shared",
        "target_tenant": target,
        **fields,
    }
    return who.post("/rbac-policies", json={"rbac_policy": body})


def in_use(network_id: str) -> str:
    return (
        f"RBAC policy on object {network_id} cannot be removed because other objects depend "
        f"on it.\nDetails: Unable to reconfigure sharing settings for network {network_id}. "
        "Multiple projects are using it."
    )


def test_a_network_shared_with_one_project_only(tenants: Tenants) -> None:
    """B cannot see or use A's network until A shares it with B, and then only that one."""
    net = tenants.network(tenants.a, name="a-rbac")
    tenants.subnet(tenants.a, net["id"], "10.91.0.0/24")
    b_project = project_of(tenants.b)
    assert tenants.b.get(f"/networks/{net['id']}").status_code == 404
    refused = tenants.b.post("/ports", json={"port": {"network_id": net["id"]}})
    assert_fault(refused, 404, "NetworkNotFound", f"Network {net['id']} could not be found.")
    grant = created(policy(tenants.a, net["id"], b_project), "rbac_policy")
    assert grant["target_tenant"] == b_project
    assert set(grant) == set(FIELDS)
    seen = tenants.b.get(f"/networks/{net['id']}").json()["network"]
    assert seen["shared"] is True  # as Neutron shows it to the project it is shared with
    assert tenants.a.get(f"/networks/{net['id']}").json()["network"]["shared"] is False
    assert [s["cidr"] for s in tenants.b.get("/subnets").json()["subnets"]] == ["10.91.0.0/24"]
    port = tenants.port(tenants.b, net["id"], name="b-on-a")
    assert port["fixed_ips"][0]["ip_address"].startswith("10.91.0.")
    # B sees the network, not A's policy; B cannot revoke or widen it
    assert tenants.b.get("/rbac-policies").json()["rbac_policies"] == []
    assert tenants.b.delete(f"/rbac-policies/{grant['id']}").status_code == 404
    # revoking it while B's port stands on it: refused, and nothing changed
    assert_fault(
        tenants.a.delete(f"/rbac-policies/{grant['id']}"), 409, "RbacPolicyInUse", in_use(net["id"])
    )
    assert_fault(
        tenants.a.put(
            f"/rbac-policies/{grant['id']}",
            json={"rbac_policy": {"target_tenant": "0" * 32}},
        ),
        409,
        "RbacPolicyInUse",
        in_use(net["id"]),
    )
    assert tenants.b.get(f"/networks/{net['id']}").status_code == 200
    assert tenants.b.delete(f"/ports/{port['id']}").status_code == 204
    assert tenants.a.delete(f"/rbac-policies/{grant['id']}").status_code == 204
    assert tenants.b.get(f"/networks/{net['id']}").status_code == 404


def test_sharing_what_is_not_ones_own_or_with_everyone(tenants: Tenants) -> None:
    net_a = tenants.network(tenants.a, name="a-rbac2")
    a_project = project_of(tenants.a)
    # B shares A's network with itself
    assert_fault(
        policy(tenants.b, net_a["id"], project_of(tenants.b)),
        400,
        "InvalidInput",
        f"Invalid input for operation: Network {net_a['id']} could not be found.",
    )
    # A shares its own with everyone: admins only
    assert_fault(
        policy(tenants.a, net_a["id"], "*"),
        403,
        "PolicyNotAuthorized",
        "(rule:create_rbac_policy and rule:create_rbac_policy:target_tenant) is disallowed "
        "by policy",
    )
    assert tenants.b.get(f"/networks/{net_a['id']}").status_code == 404
    assert tenants.a.get("/rbac-policies").json()["rbac_policies"] == []
    created(policy(tenants.a, net_a["id"], "0" * 32), "rbac_policy")
    assert_fault(
        policy(tenants.a, net_a["id"], "0" * 32),
        409,
        "DuplicateRbacPolicy",
        "An RBAC policy already exists with those values.",
    )
    bad: list[tuple[dict[str, str], int, str, str]] = [
        (
            {"target_tenant": "projB"},
            400,
            "InvalidInput",
            "Invalid input for operation: 'projB' is not a valid target project ID; expected a "
            "UUID or '*'.",
        ),
        (
            {"object_type": "bogus"},
            400,
            "InvalidInput",
            "Invalid input for operation: 'bogus' is not a valid RBAC object type.",
        ),
        (
            {"action": "access_as_bogus"},
            400,
            "InvalidActionForType",
            "Invalid action 'access_as_bogus' for object type 'network'. Valid actions: "
            "('access_as_shared', 'access_as_external')",
        ),
    ]
    for fields, code, type_name, message in bad:
        target = fields.pop("target_tenant", a_project)
        assert_fault(policy(tenants.a, net_a["id"], target, **fields), code, type_name, message)


def test_shared_true_is_the_wildcard_policy(tenants: Tenants) -> None:
    """The admin's ``shared=True`` is a wildcard policy: listed, and deleting it unshares;
    unsharing under another project's port is refused either way."""
    net = tenants.network(tenants.admin, name="admin-shared", shared=True)
    listed = tenants.admin.get("/rbac-policies", params={"object_id": net["id"]}).json()
    (wildcard,) = listed["rbac_policies"]
    assert (wildcard["action"], wildcard["target_tenant"]) == ("access_as_shared", "*")
    port = tenants.port(tenants.b, net["id"], name="b-on-shared")
    assert_fault(
        tenants.admin.put(f"/networks/{net['id']}", json={"network": {"shared": False}}),
        409,
        "InvalidSharedSetting",
        "Unable to reconfigure sharing settings for network admin-shared. Multiple projects "
        "are using it.",
    )
    assert_fault(
        tenants.admin.delete(f"/rbac-policies/{wildcard['id']}"),
        409,
        "RbacPolicyInUse",
        in_use(net["id"]),
    )
    # a targeted grant for B keeps B's port admitted: now the wildcard may go
    created(policy(tenants.admin, net["id"], project_of(tenants.b)), "rbac_policy")
    assert tenants.admin.delete(f"/rbac-policies/{wildcard['id']}").status_code == 204
    assert tenants.admin.get(f"/networks/{net['id']}").json()["network"]["shared"] is False
    assert tenants.a.get(f"/networks/{net['id']}").status_code == 404
    assert tenants.b.get(f"/ports/{port['id']}").status_code == 200


def test_external_only_is_no_right_to_attach(tenants: Tenants) -> None:
    """Given the admin's network as external for B only, B sees it as external and takes
    a floating IP from it, but cannot put a VM port on it; A sees nothing of it."""
    net = tenants.network(tenants.admin, name="admin-ext")
    tenants.subnet(tenants.admin, net["id"], "10.92.0.0/24")
    body = {"action": "access_as_external"}
    created(policy(tenants.admin, net["id"], project_of(tenants.b), **body), "rbac_policy")
    seen = tenants.b.get(f"/networks/{net['id']}").json()["network"]
    assert seen["router:external"] is True  # any external policy, as Neutron shows it
    assert tenants.a.get(f"/networks/{net['id']}").status_code == 404
    fip = tenants.b.post("/floatingips", json={"floatingip": {"floating_network_id": net["id"]}})
    assert fip.status_code == 201, fip.text
    refused = tenants.a.post(
        "/floatingips", json={"floatingip": {"floating_network_id": net["id"]}}
    )
    assert refused.status_code == 404, refused.text
    assert_fault(
        tenants.b.post("/ports", json={"port": {"network_id": net["id"]}}),
        403,
        "PolicyNotAuthorized",
        "rule:create_port is disallowed by policy",
    )


def test_ports_racing_a_revocation(tenants: Tenants) -> None:
    """B creates ports while A revokes B's grant: either the revocation was refused
    (B's port came first) or B holds no port on the network afterwards."""
    net = tenants.network(tenants.a, name="a-race")
    tenants.subnet(tenants.a, net["id"], "10.93.0.0/24")
    grant = created(policy(tenants.a, net["id"], project_of(tenants.b)), "rbac_policy")

    def attempt(i: int) -> httpx.Response:
        if i == 3:
            return tenants.a.delete(f"/rbac-policies/{grant['id']}")
        return tenants.b.post("/ports", json={"port": {"network_id": net["id"]}})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(attempt, range(8)))
    revoked = answers[3].status_code == 204
    b_ports = [
        p for p in tenants.admin.get("/ports").json()["ports"] if p["network_id"] == net["id"]
    ]
    if revoked:
        assert b_ports == []
    else:
        assert answers[3].status_code == 409, answers[3].text
        assert b_ports
