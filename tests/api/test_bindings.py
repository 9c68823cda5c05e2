"""Port bindings as Nova drives them (issue 14, item 4), against a started api.

Nova binds a port by setting ``binding:host_id`` and reads ``binding:vif_type`` and
``binding:vif_details`` to plug the tap; on server delete it unbinds with
``{"binding:host_id": null, "device_id": "", "device_owner": "", "dns_name": ""}``
(``nova/network/neutron.py``). What the host's agent acts on is the endpoint record
``endpoints/<host>/<port>``: it must leave with the binding, so the host withdraws the
port's routes.
"""

from __future__ import annotations

import httpx
import pytest

from routeplane.store import Store
from tests.api.helpers import live_agents, stored

pytestmark = pytest.mark.api

NOVA_UNBIND = {"binding:host_id": None, "device_id": "", "device_owner": "", "dns_name": ""}


@pytest.fixture(scope="module")
def net(admin_v2: httpx.Client) -> str:
    net = admin_v2.post("/networks", json={"network": {"name": "bind-net"}}).json()["network"]
    subnet = {"network_id": net["id"], "ip_version": 4, "cidr": "10.90.0.0/24"}
    assert admin_v2.post("/subnets", json={"subnet": subnet}).status_code == 201
    return str(net["id"])


def bound_port(http: httpx.Client, net: str, host: str) -> dict[str, object]:
    body = {"network_id": net, "binding:host_id": host, "device_owner": "compute:nova"}
    response = http.post("/ports", json={"port": body})
    assert response.status_code == 201, response.text
    port: dict[str, object] = response.json()["port"]
    return port


def test_a_bound_port_has_a_tap_with_a_mac_of_its_own(
    admin_v2: httpx.Client, net: str, store: Store
) -> None:
    with live_agents(store, "compute1"):
        port = bound_port(admin_v2, net, "compute1")
    mac = str(port["mac_address"])
    assert port["binding:vif_type"] == "tap"
    assert port["binding:vif_details"] == {"port_filter": True, "mac_address": "fe" + mac[2:]}


def test_novas_unbind_takes_the_endpoint_off_its_host(
    admin_v2: httpx.Client, net: str, store: Store
) -> None:
    port = bound_port(admin_v2, net, "compute1")
    assert stored(store, f"endpoints/compute1/{port['id']}") is not None
    response = admin_v2.put(f"/ports/{port['id']}", json={"port": NOVA_UNBIND})
    assert response.status_code == 200, response.text
    unbound = response.json()["port"]
    expected = {
        "binding:host_id": "",
        "binding:vif_type": "unbound",
        "binding:vif_details": {},
        "device_owner": "",
        "dns_name": "",
        "status": "DOWN",
    }
    assert {k: unbound[k] for k in expected} == expected
    assert stored(store, f"endpoints/compute1/{port['id']}") is None


def test_an_empty_host_unbinds_too(admin_v2: httpx.Client, net: str, store: Store) -> None:
    port = bound_port(admin_v2, net, "compute2")
    response = admin_v2.put(f"/ports/{port['id']}", json={"port": {"binding:host_id": ""}})
    assert response.json()["port"]["binding:vif_type"] == "unbound", response.text
    assert stored(store, f"endpoints/compute2/{port['id']}") is None
