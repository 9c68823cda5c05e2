"""What the host's DHCP server hands out reaches it: the endpoint records follow the
subnet's ``dns_nameservers``, ``host_routes`` and ``enable_dhcp`` and the network's
``mtu``, and carry the port's hostname and ``extra_dhcp_opts``.

The host's DHCP server answers from the endpoint record alone, so a change that the
record does not carry would never reach a renewing guest. Driven over HTTP against a
started api; the records are read from its store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from routeplane.store import Store
from routeplane.testing.api import ApiServer
from tests.api.helpers import client, post
from tests.api.test_subnet_gateway_refresh import record

pytestmark = [pytest.mark.api]


@pytest.fixture(scope="module")
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with client(api, api.admin_token) as admin:
        yield admin


def bound(http: httpx.Client, name: str, cidr: str, **port: Any) -> dict[str, Any]:
    net = post(http, "networks", "network", name=name, mtu=1450)
    sub = post(
        http, "subnets", "subnet", network_id=net["id"], ip_version=4, cidr=cidr,
        dns_nameservers=["10.0.0.53"],
    )  # fmt: skip
    vm = post(
        http, "ports", "port", network_id=net["id"], name=f"{name}-vm",
        **{"binding:host_id": "compute1"}, **port,
    )  # fmt: skip
    return {"net": net, "sub": sub, "vm": vm}


def test_the_record_carries_what_dhcp_hands_out(http: httpx.Client, store: Store) -> None:
    opts = [{"opt_name": "ntp-server", "opt_value": "10.0.0.123", "ip_version": 4}]
    lab = bound(http, "dhcp-facts", "10.62.0.0/16", extra_dhcp_opts=opts)
    vm = lab["vm"]
    held = record(store, "compute1", vm["id"])
    assert held["addressing"] == [
        {
            "ip_address": vm["fixed_ips"][0]["ip_address"],
            "subnet_id": lab["sub"]["id"],
            "cidr": "10.62.0.0/16",
            "gateway_ip": "10.62.0.1",
            "dns_nameservers": ["10.0.0.53"],
            "host_routes": [],
            "enable_dhcp": True,
        }
    ]
    assert (held["mtu"], held["hostname"]) == (1450, "dhcp-facts-vm")
    assert held["extra_dhcp_opts"] == opts


def test_subnet_dns_routes_and_dhcp_switch_rewrite_the_record(
    http: httpx.Client, store: Store
) -> None:
    lab = bound(http, "dhcp-subnet", "10.63.0.0/24")
    routes = [{"destination": "10.99.0.0/16", "nexthop": "10.63.0.254"}]
    change = {"dns_nameservers": ["10.0.0.54", "10.0.0.55"], "host_routes": routes}
    done = http.put(f"/subnets/{lab['sub']['id']}", json={"subnet": change})
    assert done.status_code == 200, done.text
    addressing = record(store, "compute1", lab["vm"]["id"])["addressing"][0]
    assert addressing["dns_nameservers"] == ["10.0.0.54", "10.0.0.55"]
    assert addressing["host_routes"] == routes
    done = http.put(f"/subnets/{lab['sub']['id']}", json={"subnet": {"enable_dhcp": False}})
    assert done.status_code == 200, done.text
    assert record(store, "compute1", lab["vm"]["id"])["addressing"][0]["enable_dhcp"] is False


def test_the_network_mtu_rewrites_the_record(http: httpx.Client, store: Store) -> None:
    lab = bound(http, "dhcp-mtu", "10.64.0.0/24")
    done = http.put(f"/networks/{lab['net']['id']}", json={"network": {"mtu": 1400}})
    assert done.status_code == 200, done.text
    assert record(store, "compute1", lab["vm"]["id"])["mtu"] == 1400


def test_a_new_dns_name_or_extra_option_rewrites_the_record(
    http: httpx.Client, store: Store
) -> None:
    lab = bound(http, "dhcp-port", "10.65.0.0/24")
    opts = [{"opt_name": "26", "opt_value": "1300", "ip_version": 4}]
    done = http.put(f"/ports/{lab['vm']['id']}", json={"port": {"extra_dhcp_opts": opts}})
    assert done.status_code == 200, done.text
    assert record(store, "compute1", lab["vm"]["id"])["extra_dhcp_opts"] == opts
