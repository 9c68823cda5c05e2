"""Port bindings as Nova's live migration drives them (issue 14, item 4, extension
``binding-extended``), against a started api with agents registered on the hosts:
Neutron's codes, types and messages (ML2's ``create_port_binding``, ``activate``,
``delete_port_binding`` and their policies, checked against a real Neutron 29 where it
can answer), and the endpoint records that follow: the destination host gets the port's
record marked ``migration_target`` while the binding is inactive, the source loses its
record when the destination's binding is activated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from routeplane.store import Store
from tests.api.helpers import assert_fault, live_agents, post, stored

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def nova(as_user: Callable[[str, str], httpx.Client]) -> httpx.Client:
    """Nova's service user: the ``service`` role, in the ``service`` project."""
    return as_user("nova", "service")


@pytest.fixture(scope="module")
def hosts(store: Store) -> Iterator[None]:
    with live_agents(store, "src", "dst"):
        yield


@pytest.fixture(scope="module")
def net(admin_v2: httpx.Client) -> str:
    net_id = str(post(admin_v2, "networks", "network", name="mig-net")["id"])
    post(admin_v2, "subnets", "subnet", network_id=net_id, ip_version=4, cidr="10.92.0.0/24")
    return net_id


def vm_port(admin_v2: httpx.Client, net: str, **fields: Any) -> dict[str, Any]:
    body = {"network_id": net, "binding:host_id": "src", "device_owner": "compute:nova", **fields}
    response = admin_v2.post("/ports", json={"port": body})
    assert response.status_code == 201, response.text
    port: dict[str, Any] = response.json()["port"]
    return port


def record(store: Store, host: str, port_id: str) -> dict[str, Any] | None:
    return stored(store, f"endpoints/{host}/{port_id}")


def test_a_binding_moves_a_port_as_nova_moves_a_vm(
    admin_v2: httpx.Client, nova: httpx.Client, store: Store, hosts: None, net: str
) -> None:
    unbound = vm_port(admin_v2, net, **{"binding:host_id": ""})
    assert nova.get(f"/ports/{unbound['id']}/bindings").json() == {
        "bindings": [
            {
                "host": "",
                "vif_type": "unbound",
                "vnic_type": "normal",
                "status": "ACTIVE",
                "profile": {},
                "vif_details": {},
            }
        ]
    }
    port = vm_port(admin_v2, net)
    pid, mac = port["id"], port["mac_address"]
    url = f"/ports/{pid}/bindings"
    details = {"port_filter": True, "mac_address": "fe" + mac[2:]}
    active_src = {
        "host": "src",
        "vif_type": "tap",
        "vnic_type": "normal",
        "status": "ACTIVE",
        "profile": {},
        "vif_details": details,
    }
    assert nova.get(url).json() == {"bindings": [active_src]}
    created = nova.post(url, json={"binding": {"host": "dst", "profile": {"os": "x"}}})
    assert created.status_code == 201, created.text
    inactive_dst = {**active_src, "host": "dst", "status": "INACTIVE", "profile": {"os": "x"}}
    assert created.json() == {"binding": inactive_dst}
    assert nova.get(f"{url}/dst").json() == {"binding": inactive_dst}
    # the destination prepares the port; the source still serves it
    assert (record(store, "dst", pid) or {}).get("migration_target") is True
    assert (record(store, "src", pid) or {}).get("migration_target") is False
    shown = admin_v2.get(f"/ports/{pid}").json()["port"]
    assert shown["binding:host_id"] == "src"
    assert "_bindings" not in shown

    activated = nova.put(f"{url}/dst/activate")
    assert activated.status_code == 200, activated.text
    assert activated.json() == {"binding": {**inactive_dst, "status": "ACTIVE"}}
    moved = admin_v2.get(f"/ports/{pid}").json()["port"]
    assert (moved["binding:host_id"], moved["binding:profile"]) == ("dst", {"os": "x"})
    assert [(b["host"], b["status"]) for b in nova.get(url).json()["bindings"]] == [
        ("dst", "ACTIVE"),
        ("src", "INACTIVE"),
    ]
    assert record(store, "src", pid) is None  # the source's routes leave
    assert (record(store, "dst", pid) or {}).get("migration_target") is False
    assert nova.delete(f"{url}/src").status_code == 204
    assert [b["host"] for b in nova.get(url).json()["bindings"]] == ["dst"]
    missing = f"Binding for port {pid} for host src could not be found."
    assert_fault(nova.delete(f"{url}/src"), 404, "PortBindingNotFound", missing)
    assert_fault(nova.get(f"{url}/src"), 404, "PortBindingNotFound", missing)


def test_neutrons_errors_change_nothing(
    admin_v2: httpx.Client, nova: httpx.Client, store: Store, hosts: None, net: str
) -> None:
    port = vm_port(admin_v2, net)
    pid = port["id"]
    url = f"/ports/{pid}/bindings"
    assert nova.post(url, json={"binding": {"host": "dst"}}).status_code == 201
    revision = admin_v2.get(f"/ports/{pid}").json()["port"]["revision_number"]
    for host in ("dst", "src"):
        assert_fault(
            nova.post(url, json={"binding": {"host": host}}),
            409,
            "PortBindingAlreadyExists",
            f"Binding for port {pid} on host {host} already exists.",
        )
    assert_fault(
        nova.post(url, json={"binding": {"host": "no-agent-here"}}),
        500,
        "PortBindingError",
        f"Binding for port {pid} on host no-agent-here could not be created or updated.",
    )
    assert_fault(
        nova.put(f"{url}/src/activate"),
        409,
        "PortBindingAlreadyActive",
        f"Binding for port {pid} on host src is already active.",
    )
    assert_fault(
        nova.put(f"{url}/elsewhere/activate"),
        404,
        "PortBindingNotFound",
        f"Binding for port {pid} for host elsewhere could not be found.",
    )
    for body, message in (
        ({}, "Resource body required"),
        ({"x": 1}, "Unable to find 'binding' in request body"),
        ({"binding": "x"}, "Object 'binding' contains invalid data"),
        ({"binding": {}}, "Failed to parse request. Required attribute 'host' not specified"),
    ):
        assert_fault(nova.post(url, json=body), 400, "HTTPBadRequest", message)
    assert_fault(
        nova.post(url, json={"binding": {"host": "dst", "vif_type": "x"}}),
        400,
        "HTTPBadRequest",
        "Attribute 'vif_type' not allowed in POST",
    )
    assert admin_v2.get(f"/ports/{pid}").json()["port"]["revision_number"] == revision
    assert record(store, "no-agent-here", pid) is None
    # only the service role writes bindings (Neutron's rule:service_api), admins read them
    assert_fault(
        admin_v2.post(url, json={"binding": {"host": "dst"}}),
        403,
        "PolicyNotAuthorized",
        "rule:create_port_binding is disallowed by policy",
    )
    assert admin_v2.get(url).status_code == 200
    ghost = "00000000-0000-0000-0000-000000000000"
    assert_fault(
        nova.get(f"/ports/{ghost}/bindings"),
        404,
        "PortNotFound",
        f"Port {ghost} could not be found.",
    )
    plain = admin_v2.post("/ports", json={"port": {"network_id": net}}).json()["port"]
    assert_fault(
        nova.get(f"/ports/{plain['id']}/bindings"),
        400,
        "BadRequest",
        f"Bad port request: Invalid port {plain['id']}. Operation only valid on compute "
        "and shared filesystem ports.",
    )
    assert admin_v2.delete(f"/ports/{pid}").status_code == 204
    assert record(store, "dst", pid) is None  # the target's record leaves with the port


def test_migrating_to_in_the_profile_gives_the_target_the_port_too(
    admin_v2: httpx.Client, store: Store, hosts: None, net: str
) -> None:
    port = vm_port(admin_v2, net)
    pid = port["id"]
    moving = {"port": {"binding:profile": {"migrating_to": "dst"}}}
    assert admin_v2.put(f"/ports/{pid}", json=moving).status_code == 200
    assert (record(store, "dst", pid) or {}).get("migration_target") is True
    done = {"port": {"binding:host_id": "dst", "binding:profile": {}}}
    assert admin_v2.put(f"/ports/{pid}", json=done).status_code == 200
    assert record(store, "src", pid) is None
    assert (record(store, "dst", pid) or {}).get("migration_target") is False


def test_the_extension_is_listed(admin_v2: httpx.Client) -> None:
    aliases = {e["alias"] for e in admin_v2.get("/extensions").json()["extensions"]}
    assert "binding-extended" in aliases
