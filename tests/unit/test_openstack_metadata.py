"""Unit: the OpenStack and EC2 metadata documents built from a port's record and document
— ``meta_data.json`` names the instance, ``network_data.json`` says what Nova would say
for the same Neutron port and subnets (DHCP or static IPv4, IPv6 by address mode, the
default route and host routes, DNS), listings are the lines cloud-init reads, and what
does not exist is a 404."""

from __future__ import annotations

from typing import Any

import pytest

from routeplane.agent.openstack_metadata import (
    OPENSTACK_VERSIONS,
    Asker,
    answer,
    is_metadata_path,
    network_data,
)
from routeplane.model.endpoint import Addressing, EndpointRecord

pytestmark = pytest.mark.unit


def addressing(
    address: str, cidr: str, gateway: str, dns: str, route: tuple[str, str]
) -> Addressing:
    """A fixed IP on a DHCP-enabled subnet with one DNS server and one host route."""
    return Addressing(
        ip_address=address,
        subnet_id=f"subnet-{cidr}",
        cidr=cidr,
        gateway_ip=gateway,
        dns_nameservers=[dns],
        host_routes=[{"destination": route[0], "nexthop": route[1]}],
        enable_dhcp=True,
    )


V4 = addressing(
    "10.28.0.13", "10.28.0.0/16", "10.28.0.1", "10.28.0.53", ("192.168.50.0/24", "10.28.0.9")
)
V6 = addressing("fd5f::13", "fd5f::/64", "fd5f::1", "fd5f::53", ("fd99::/64", "fd5f::9"))
RECORD: EndpointRecord = {
    "port_id": "port-1",
    "network_id": "net-1",
    "project_id": "proj-1",
    "interface": "tapport-1",
    "mac_address": "fa:16:3e:00:00:01",
    "fixed_ips": ["fd5f::13", "10.28.0.13"],
    "floating_ips": [{"floating_ip_address": "172.24.4.7", "fixed_ip_address": "10.28.0.13"}],
    "addressing": [V4, V6],
    "mtu": 1450,
    "hostname": "testvm1",
}
PORT = {"name": "testvm1-port", "device_id": "inst-uuid-1", "project_id": "proj-1"}


def asker(record: EndpointRecord = RECORD, port: dict[str, Any] | None = None) -> Asker:
    return Asker("port-1", record, PORT if port is None else port, "az1")


def static_network(
    name: str, kind: str, address: tuple[str, str], routes: list[tuple[str, str, str]], dns: str
) -> dict[str, Any]:
    """A static network of ``network_data.json`` on the port's tap, as Nova writes it."""
    return {
        "id": name,
        "link": "tapport-1",
        "network_id": "net-1",
        "type": kind,
        "ip_address": address[0],
        "netmask": address[1],
        "routes": [{"network": n, "netmask": m, "gateway": g} for n, m, g in routes],
        "services": [{"type": "dns", "address": dns}],
    }


def test_meta_data_names_the_instance() -> None:
    status, body = answer("/openstack/latest/meta_data.json", asker())
    assert status == 200
    assert isinstance(body, dict)
    assert {k: body[k] for k in ("uuid", "name", "hostname", "project_id")} == {
        "uuid": "inst-uuid-1",
        "name": "testvm1-port",
        "hostname": "testvm1",
        "project_id": "proj-1",
    }
    assert (body["availability_zone"], body["launch_index"]) == ("az1", 0)
    # a port without a device: the port stands for the instance
    _, bare = answer("/openstack/2018-08-27/meta_data.json", asker(port={}))
    assert isinstance(bare, dict)
    assert bare["uuid"] == "port-1"


def test_network_data_as_nova_builds_it_for_dhcp_v4_and_static_v6() -> None:
    assert network_data(asker()) == {
        "links": [
            {
                "id": "tapport-1",
                "vif_id": "port-1",
                "type": "tap",
                "ethernet_mac_address": "fa:16:3e:00:00:01",
                "mtu": 1450,
            }
        ],
        "networks": [
            {"id": "network0", "link": "tapport-1", "network_id": "net-1", "type": "ipv4_dhcp"},
            static_network(
                "network1",
                "ipv6",
                ("fd5f::13", "ffff:ffff:ffff:ffff::"),
                [("::", "::", "fd5f::1"), ("fd99::", "ffff:ffff:ffff:ffff::", "fd5f::9")],
                "fd5f::53",
            ),
        ],
        "services": [
            {"type": "dns", "address": "10.28.0.53"},
            {"type": "dns", "address": "fd5f::53"},
        ],
    }


def test_static_v4_without_dhcp_carries_address_mask_routes_and_dns() -> None:
    static = Addressing(**{**V4, "enable_dhcp": False})
    record: EndpointRecord = {**RECORD, "addressing": [static], "mtu": 0}
    data = network_data(asker(record))
    assert "mtu" not in data["links"][0]
    assert data["networks"] == [
        static_network(
            "network0",
            "ipv4",
            ("10.28.0.13", "255.255.0.0"),
            [("0.0.0.0", "0.0.0.0", "10.28.0.1"), ("192.168.50.0", "255.255.255.0", "10.28.0.9")],
            "10.28.0.53",
        )
    ]


@pytest.mark.parametrize("mode", ["slaac", "dhcpv6-stateful", "dhcpv6-stateless"])
def test_ipv6_networks_are_typed_by_the_subnets_address_mode(mode: str) -> None:
    record: EndpointRecord = {
        **RECORD,
        "addressing": [Addressing(**{**V6, "ipv6_address_mode": mode})],
    }
    assert network_data(asker(record))["networks"][0]["type"] == f"ipv6_{mode}"


def test_listings_are_lines_cloud_init_reads() -> None:
    versions = answer("/openstack", asker())
    assert versions == (200, "".join(f"{v}\n" for v in [*OPENSTACK_VERSIONS, "latest"]))
    assert answer("/openstack/latest/", asker()) == (
        200,
        "meta_data.json\nnetwork_data.json\nvendor_data.json\n",
    )
    assert answer("/openstack/2013-04-04/vendor_data.json", asker()) == (200, {})
    assert answer("/latest/meta-data/", asker()) == (
        200,
        "hostname\ninstance-id\nlocal-hostname\nlocal-ipv4\npublic-ipv4\n",
    )


def test_ec2_leaves() -> None:
    assert answer("/latest/meta-data/instance-id", asker()) == (200, "inst-uuid-1")
    assert answer("/2009-04-04/meta-data/local-ipv4", asker()) == (200, "10.28.0.13")
    assert answer("/latest/meta-data/public-ipv4", asker()) == (200, "172.24.4.7")
    assert answer("/latest/meta-data/hostname", asker()) == (200, "testvm1")
    no_floating: EndpointRecord = {**RECORD, "floating_ips": []}
    assert answer("/latest/meta-data/public-ipv4", asker(no_floating))[0] == 404
    assert "public-ipv4" not in str(answer("/latest/meta-data/", asker(no_floating))[1])


@pytest.mark.parametrize(
    "path",
    [
        "/openstack/latest/user_data",  # there is none
        "/openstack/1999-01-01/meta_data.json",
        "/openstack/latest/meta_data.json/more",
        "/openstack/latest/password",
        "/latest/user-data",
        "/latest/meta-data/nothing",
        "/latest/meta-data/instance-id/x",
    ],
)
def test_what_does_not_exist_is_404(path: str) -> None:
    assert is_metadata_path(path)
    assert answer(path, asker())[0] == 404


def test_which_paths_are_metadata() -> None:
    assert all(map(is_metadata_path, ["/", "/openstack", "/latest/meta-data/", "/2009-04-04"]))
    assert not any(map(is_metadata_path, ["/routeplane/v1/addresses", "/nothing", "/2007-01-19"]))
