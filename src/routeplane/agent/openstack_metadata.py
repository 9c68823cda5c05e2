"""The documents a cloud image reads at boot: OpenStack's and EC2's metadata, per port.

cloud-init (its OpenStack datasource), CirrOS and the like ask ``169.254.169.254`` for
``/openstack/<version>/meta_data.json`` (who they are), ``network_data.json`` (how to
configure their interfaces) and the EC2-style ``/latest/meta-data/`` tree. Nova answers
them from the instance; a routeplane host answers them from what it has: the asker's
endpoint record (addresses, each fixed IP's subnet, MTU, hostname, floating IPs) and
its port document (``device_id`` names the instance, the port's name and project).

``network_data.json`` is built as Nova builds it from Neutron's port and subnets: one
link (the tap, its MAC and MTU, type ``tap``), one network per fixed IP — ``ipv4_dhcp``
when the subnet has DHCP on (the host answers it), else static with the address, the
subnet's netmask, routes (the default via the gateway, then the host routes) and DNS;
IPv6 by the subnet's address mode (``ipv6_slaac``, ``ipv6_dhcpv6-stateful``, …, or
static ``ipv6``) — and the DNS servers of all subnets as services.

Pure: :func:`answer` maps a path and the asker's facts to an answer; the service
(``agent/metadata.py``) finds the asker and reads the port. What this module must not
do: answer with anything but the asker's own facts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from routeplane.agent.metadata_http import Answer
from routeplane.model.endpoint import Addressing, EndpointRecord

# Nova's dated versions (nova/api/metadata/base.py), oldest first; "latest" is the newest
OPENSTACK_VERSIONS = (
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
)
EC2_VERSIONS = ("2009-04-04",)
OPENSTACK_FILES = ("meta_data.json", "network_data.json", "vendor_data.json")
EC2_KEYS = ("hostname", "instance-id", "local-hostname", "local-ipv4", "public-ipv4")
AVAILABILITY_ZONE = "nova"  # Nova's default_availability_zone


@dataclass(frozen=True)
class Asker:
    """What the host knows about the port that asks."""

    port_id: str
    record: EndpointRecord
    port: Mapping[str, Any]  # its port document ({}: gone)
    availability_zone: str = AVAILABILITY_ZONE

    @property
    def instance_id(self) -> str:
        return str(self.port.get("device_id") or self.port_id)

    @property
    def hostname(self) -> str:
        return str(self.record.get("hostname") or self.port.get("name") or "")


def _not_found(path: str) -> Answer:
    return 404, {"error": f"no such resource: {path}"}


def _listing(names: tuple[str, ...] | list[str]) -> str:
    return "".join(f"{name}\n" for name in names)


def meta_data(asker: Asker) -> dict[str, Any]:
    """``meta_data.json``: who the instance is."""
    return {
        "uuid": asker.instance_id,
        "name": str(asker.port.get("name") or asker.hostname),
        "hostname": asker.hostname,
        "project_id": str(asker.record.get("project_id", "")),
        "availability_zone": asker.availability_zone,
        "launch_index": 0,
        "meta": {},
        "devices": [],
    }


def _route(network: str, gateway: str) -> dict[str, str]:
    net = ipaddress.ip_network(network, strict=False)
    return {"network": str(net.network_address), "netmask": str(net.netmask), "gateway": gateway}


def _dns(addressing: Addressing) -> list[dict[str, str]]:
    return [{"type": "dns", "address": d} for d in addressing["dns_nameservers"]]


def _routes(addressing: Addressing, version: int) -> list[dict[str, str]]:
    """The default route via the gateway (when there is one), then the host routes."""
    routes = []
    if addressing["gateway_ip"]:
        default = "0.0.0.0/0" if version == 4 else "::/0"
        routes.append(_route(default, addressing["gateway_ip"]))
    for r in addressing["host_routes"]:
        if ipaddress.ip_network(r["destination"], strict=False).version == version:
            routes.append(_route(r["destination"], r["nexthop"]))
    return routes


def _network(index: int, link: str, network_id: str, addressing: Addressing) -> dict[str, Any]:
    """One fixed IP's network: ``ipv4_dhcp`` when its subnet has DHCP on, else static;
    IPv6 typed by its subnet's address mode (Neutron allows one only with DHCP on)."""
    version = ipaddress.ip_address(addressing["ip_address"]).version
    net: dict[str, Any] = {"id": f"network{index}", "link": link, "network_id": network_id}
    if version == 4 and addressing["enable_dhcp"]:
        return {**net, "type": "ipv4_dhcp"}
    mode = addressing.get("ipv6_address_mode") or ""
    netmask = ipaddress.ip_network(addressing["cidr"], strict=False).netmask
    return {
        **net,
        "type": f"ipv6_{mode}" if version == 6 and mode else f"ipv{version}",
        "ip_address": addressing["ip_address"],
        "netmask": str(netmask),
        "routes": _routes(addressing, version),
        "services": _dns(addressing),
    }


def network_data(asker: Asker) -> dict[str, Any]:
    """``network_data.json``: the tap as one link, one network per fixed IP, the DNS."""
    record = asker.record
    link = str(record.get("interface", ""))
    tap: dict[str, Any] = {
        "id": link,
        "vif_id": asker.port_id,
        "type": "tap",
        "ethernet_mac_address": str(record.get("mac_address", "")),
    }
    if record.get("mtu"):
        tap["mtu"] = record["mtu"]
    network_id = str(record.get("network_id", ""))
    addressing = record.get("addressing", [])
    networks = [_network(i, link, network_id, a) for i, a in enumerate(addressing)]
    services: list[dict[str, str]] = []
    for a in addressing:
        services += [s for s in _dns(a) if s not in services]
    return {"links": [tap], "networks": networks, "services": services}


def vendor_data(_asker: Asker) -> dict[str, Any]:
    """``vendor_data.json``: routeplane has no vendor data to give."""
    return {}


def _first_v4(addresses: list[str]) -> str:
    return next((a for a in addresses if ipaddress.ip_address(a).version == 4), "")


def ec2_meta_data(asker: Asker) -> dict[str, str]:
    """The EC2 ``meta-data`` leaves this port has (no public-ipv4 without a floating IP)."""
    floating = [n["floating_ip_address"] for n in asker.record.get("floating_ips", [])]
    leaves = {
        "hostname": asker.hostname,
        "instance-id": asker.instance_id,
        "local-hostname": asker.hostname,
        "local-ipv4": _first_v4(list(asker.record.get("fixed_ips", []))),
        "public-ipv4": _first_v4(floating),
    }
    return {name: value for name, value in leaves.items() if value}


def _openstack(parts: list[str], path: str, asker: Asker) -> Answer:
    if not parts:
        return 200, _listing([*OPENSTACK_VERSIONS, "latest"])
    if parts[0] not in (*OPENSTACK_VERSIONS, "latest"):
        return _not_found(path)
    if len(parts) == 1:
        return 200, _listing(OPENSTACK_FILES)
    documents: dict[str, Callable[[Asker], dict[str, Any]]] = {
        "meta_data.json": meta_data,
        "network_data.json": network_data,
        "vendor_data.json": vendor_data,
    }
    build = documents.get(parts[1]) if len(parts) == 2 else None
    return (200, build(asker)) if build is not None else _not_found(path)  # user_data: none


def _ec2(parts: list[str], path: str, asker: Asker) -> Answer:
    if parts[0] not in (*EC2_VERSIONS, "latest"):
        return _not_found(path)
    if len(parts) == 1:
        return 200, _listing(["meta-data/"])
    if parts[1] != "meta-data":
        return _not_found(path)  # user-data: none
    leaves = ec2_meta_data(asker)
    if len(parts) == 2:
        return 200, _listing(sorted(leaves))
    value = leaves.get(parts[2]) if len(parts) == 3 else None
    return (200, value) if value is not None else _not_found(path)


def is_metadata_path(path: str) -> bool:
    """Whether ``path`` is one of the OpenStack or EC2 trees (answered or proxied)."""
    top = path.strip("/").split("/", 1)[0]
    return path == "/" or top in ("openstack", "latest", *EC2_VERSIONS)


def answer(path: str, asker: Asker) -> Answer:
    """``GET path`` by ``asker`` (a path :func:`is_metadata_path` accepted)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return 200, _listing([*EC2_VERSIONS, "latest"])
    if parts[0] == "openstack":
        return _openstack(parts[1:], path, asker)
    return _ec2(parts, path, asker)


__all__ = [
    "AVAILABILITY_ZONE",
    "OPENSTACK_VERSIONS",
    "Asker",
    "answer",
    "ec2_meta_data",
    "is_metadata_path",
    "meta_data",
    "network_data",
]
