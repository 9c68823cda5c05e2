"""The walkthrough's starting point, made through the api by ``lab up`` (unless ``--empty``).

- ``demo-net`` with ``demo-v4`` 10.28.0.0/16 and ``demo-v6`` fd5f:5d21:845:1c2e::/64;
- an external network ``public`` (172.24.4.0/24, ``router:external``) and a router
  ``demo-router`` joining demo-net to it, so floating IPs can be tried;
- in the default security group, the walkthrough's "SSH from the access machine" rule
  (ingress tcp/22 from 192.168.8.1/32) and its IPv6 twin from the access node's fabric
  address, so the access node can reach VMs over both families.
"""

from __future__ import annotations

from dataclasses import dataclass

from routeplane.lab.neutron import Neutron
from routeplane.lab.topology import FABRIC_V4, FABRIC_V6, Node

DEMO_NET = "demo-net"
DEMO_V4 = "10.28.0.0/16"
DEMO_V6 = "fd5f:5d21:845:1c2e::/64"
PUBLIC_NET = "public"
PUBLIC_V4 = "172.24.4.0/24"
ROUTER = "demo-router"
ADMIN_PROJECT = "admin"


@dataclass(frozen=True)
class Seeded:
    network: str
    subnet_v4: str
    subnet_v6: str
    public: str
    router: str
    security_group: str


def _ssh_rule(group: str, ethertype: str, prefix: str) -> dict[str, object]:
    return {
        "security_group_id": group,
        "direction": "ingress",
        "ethertype": ethertype,
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "remote_ip_prefix": prefix,
    }


def seed(api: Neutron, access: Node) -> Seeded:
    net = api.create("network", {"name": DEMO_NET})
    v4 = api.create(
        "subnet",
        {"network_id": net["id"], "name": "demo-v4", "ip_version": 4, "cidr": DEMO_V4},
    )
    v6 = api.create(
        "subnet",
        {
            "network_id": net["id"],
            "name": "demo-v6",
            "ip_version": 6,
            "cidr": DEMO_V6,
            # the VMs' addresses from the hosts' DHCPv6 servers, routes from their adverts
            "ipv6_address_mode": "dhcpv6-stateful",
            "ipv6_ra_mode": "dhcpv6-stateful",
        },
    )
    public = api.create("network", {"name": PUBLIC_NET, "router:external": True})
    api.create(
        "subnet",
        {"network_id": public["id"], "name": "public-v4", "ip_version": 4, "cidr": PUBLIC_V4},
    )
    router = api.create(
        "router", {"name": ROUTER, "external_gateway_info": {"network_id": public["id"]}}
    )
    api.request("PUT", f"routers/{router['id']}/add_router_interface", {"subnet_id": v4["id"]})
    group = api.find("security_group", "default", project_id=ADMIN_PROJECT)
    prefix4 = f"{access.ipv4}/{FABRIC_V4.max_prefixlen}"
    prefix6 = f"{access.ipv6}/{FABRIC_V6.max_prefixlen}"
    api.create("security_group_rule", _ssh_rule(group["id"], "IPv4", prefix4))
    api.create("security_group_rule", _ssh_rule(group["id"], "IPv6", prefix6))
    return Seeded(net["id"], v4["id"], v6["id"], public["id"], router["id"], group["id"])


__all__ = ["DEMO_NET", "DEMO_V4", "DEMO_V6", "PUBLIC_NET", "PUBLIC_V4", "Seeded", "seed"]
