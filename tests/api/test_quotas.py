"""Neutron's quota API against a started api (issue 14, item 2): the answers of a real
Neutron 29 (``shared/tools/neutron-peer``), with Neutron's default limits; admins set and
reset limits, a member reads its own project's; ``OverQuota`` when a create would pass
a limit. The race for the last unit: ``test_concurrency.py`` and
``tests/contract/test_quota_interleaving.py``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import assert_fault

pytestmark = [
    pytest.mark.api,
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
]
# Neutron's defaults, in Neutron's order (neutron/conf/quota.py)
NAMES = "network subnet subnetpool port router_route router floatingip rbac_policy"
DEFAULTS = dict(
    zip(
        [*NAMES.split(), "security_group", "security_group_rule"],
        [100, 100, -1, 500, 30, 10, 50, 10, 10, 100],
        strict=True,
    )
)


def test_a_project_starts_with_neutrons_defaults(admin_v2: httpx.Client) -> None:
    assert admin_v2.get("/quotas/fresh").json() == {"quota": DEFAULTS}
    assert admin_v2.get("/quotas/fresh/default").json() == {"quota": DEFAULTS}
    details = admin_v2.get("/quotas/fresh/details").json()["quota"]
    assert details["network"] == {"limit": 100, "used": 0, "reserved": 0}
    aliases = {e["alias"] for e in admin_v2.get("/extensions").json()["extensions"]}
    assert {"quotas", "quota_details"} <= aliases


def test_an_admin_sets_and_resets_a_limit(admin_v2: httpx.Client) -> None:
    updated = admin_v2.put("/quotas/q1", json={"quota": {"network": 1, "port": -1}})
    assert updated.json() == {"quota": {**DEFAULTS, "network": 1, "port": -1}}, updated.text
    listed = admin_v2.get("/quotas").json()["quotas"]
    assert {**DEFAULTS, "network": 1, "port": -1, "project_id": "q1", "tenant_id": "q1"} in listed
    assert admin_v2.post("/networks", json={"network": {"project_id": "q1"}}).status_code == 201
    assert_fault(
        admin_v2.post("/networks", json={"network": {"project_id": "q1"}}),
        409,
        "OverQuota",
        "Quota exceeded for resources: ['network'].",
    )
    used = admin_v2.get("/quotas/q1/details").json()["quota"]
    assert used["network"] == {"limit": 1, "used": 1, "reserved": 0}
    assert used["security_group"]["used"] == 1  # the project's default group
    assert admin_v2.delete("/quotas/q1").status_code == 204
    assert admin_v2.get("/quotas/q1").json() == {"quota": DEFAULTS}
    assert admin_v2.post("/networks", json={"network": {"project_id": "q1"}}).status_code == 201


@pytest.mark.parametrize(
    ("value", "code", "type_name", "message"),
    [
        (
            -2,
            400,
            "HTTPBadRequest",
            "Invalid input for network. Reason: '-2' is too small - must be at least '-1'.",
        ),
        ("x", 400, "InvalidInput", "Invalid input for operation: 'x' is not an integer."),
    ],
)
def test_a_bad_limit_is_refused_and_changes_nothing(
    admin_v2: httpx.Client, value: object, code: int, type_name: str, message: str
) -> None:
    response = admin_v2.put("/quotas/q2", json={"quota": {"network": value}})
    assert_fault(response, code, type_name, message)
    assert admin_v2.get("/quotas/q2").json() == {"quota": DEFAULTS}
    assert_fault(
        admin_v2.put("/quotas/q2", json={"quota": {"bogus": 1}}),
        400,
        "HTTPBadRequest",
        "Unrecognized attribute(s) 'bogus'",
    )


def test_a_member_reads_its_own_quota_only(admin_v2: httpx.Client, demo_v2: httpx.Client) -> None:
    own = demo_v2.get("/security-groups").json()["security_groups"]
    demo_project = own[0]["project_id"]
    assert demo_v2.get(f"/quotas/{demo_project}").json() == {"quota": DEFAULTS}
    assert demo_v2.get("/quotas/alt").status_code == 403
    assert demo_v2.put(f"/quotas/{demo_project}", json={"quota": {"port": 1}}).status_code == 403
    assert demo_v2.get("/quotas").status_code == 403
    assert admin_v2.get(f"/quotas/{demo_project}").json() == {"quota": DEFAULTS}
