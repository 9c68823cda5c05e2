"""Which subnets a router joins, and the checks that hang on it.

A router's interfaces are the ports whose ``device_id`` is the router and whose
``device_owner`` is ``network:router_interface``; its gateway is the port named by the
router document's ``gw_port_id``. From these follow Neutron's rules: no two ports of a
router on one subnet and no overlapping subnets behind it, an interface stays while
floating IPs or extra routes use it, extra routes need a connected nexthop, and
:meth:`RouterTopology.router_for` finds the router a floating IP goes through. Read only:
the callers write, and depend on the router documents these answers came from.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from routeplane.services.errors import ApiFault, bad_resource_request
from routeplane.services.l3.router_requests import GATEWAY_OWNER, INTERFACE_OWNER
from routeplane.services.repo import Change, Doc, Repo


class RouterTopology:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def interfaces(self, router_id: str) -> list[Doc]:
        return [
            p
            for p in self.repo.list("ports")
            if p.value.get("device_id") == router_id
            and p.value.get("device_owner") == INTERFACE_OWNER
        ]

    def router_for(
        self, change: Change, port: dict[str, Any], subnet: dict[str, Any], external_net: str
    ) -> str | None:
        """Neutron's ``get_router_for_floatingip``: a router with an interface on ``subnet``
        and its gateway on ``external_net``; the one holding the subnet's gateway IP first."""
        first: str | None = None
        for iface in self.repo.list("ports"):
            value = iface.value
            if value.get("device_owner") != INTERFACE_OWNER:
                continue
            if value.get("network_id") != port["network_id"]:
                continue
            held = [ip for ip in value.get("fixed_ips", []) if ip["subnet_id"] == subnet["id"]]
            router = self.repo.get("routers", str(value.get("device_id"))) if held else None
            if router is None:
                continue
            gateway = router.value.get("external_gateway_info") or {}
            if gateway.get("network_id") != external_net:
                continue
            if any(ip["ip_address"] == subnet.get("gateway_ip") for ip in held):
                change.depends_on(router)
                return str(router.value["id"])
            if first is None:
                change.depends_on(router)
                first = str(router.value["id"])
        return first

    # what a router joins ---------------------------------------------------------------
    def check_new_subnets(self, router: dict[str, Any], new: list[dict[str, Any]]) -> None:
        """Neutron's ``_check_for_dup_router_subnets``: no second port on a subnet, and no
        overlap with what the router already joins (the whole external network for the
        gateway)."""
        attached = self.interfaces(router["id"])
        gateway = self.repo.get("ports", str(router.get("gw_port_id")))
        if gateway is not None:
            attached.append(gateway)
        new_ids = {s["id"] for s in new}
        joined: list[str] = []
        for port in attached:
            for ip in port.value.get("fixed_ips", []):
                if ip["subnet_id"] in new_ids:
                    raise bad_resource_request(
                        "router", f"Router already has a port on subnet {ip['subnet_id']}"
                    )
            if port.value.get("device_owner") == GATEWAY_OWNER:
                net = self.repo.get("networks", str(port.value["network_id"]))
                joined += [] if net is None else net.value.get("subnets", [])
            else:
                joined += [ip["subnet_id"] for ip in port.value.get("fixed_ips", [])]
        for subnet_id in dict.fromkeys(joined):
            old = self.repo.get("subnets", subnet_id)
            for subnet in new if old is not None else []:
                assert old is not None
                if ipaddress.ip_network(old.value["cidr"]).overlaps(
                    ipaddress.ip_network(subnet["cidr"])
                ):
                    raise bad_resource_request(
                        "router",
                        f"Cidr {subnet['cidr']} of subnet {subnet['id']} overlaps with cidr "
                        f"{old.value['cidr']} of subnet {subnet_id}",
                    )

    def check_unused(self, router: dict[str, Any], subnet: dict[str, Any]) -> None:
        """An interface floating IPs or extra routes go through stays."""
        net = ipaddress.ip_network(subnet["cidr"])
        for fip in self.repo.list("floatingips"):
            fixed = fip.value.get("fixed_ip_address")
            used = fip.value.get("router_id") == router["id"]
            if used and fixed and ipaddress.ip_address(fixed) in net:
                raise ApiFault(
                    "RouterInterfaceInUseByFloatingIP",
                    409,
                    f"Router interface for subnet {subnet['id']} on router {router['id']} "
                    "cannot be deleted, as it is required by one or more floating IPs.",
                )
        for route in router.get("routes") or []:
            if ipaddress.ip_address(route["nexthop"]) in net:
                raise ApiFault(
                    "RouterInterfaceInUseByRoute",
                    409,
                    f"Router interface for subnet {subnet['id']} on router {router['id']} "
                    "cannot be deleted, as it is required by one or more routes.",
                )

    def check_routes(self, router: dict[str, Any]) -> None:
        routes = router.get("routes") or []
        ports = self.interfaces(router["id"])
        gateway = self.repo.get("ports", str(router.get("gw_port_id")))
        ports += [] if gateway is None else [gateway]
        held = [ip for p in ports for ip in p.value.get("fixed_ips", [])]
        nets = []
        for ip in held:
            subnet = self.repo.get("subnets", ip["subnet_id"])
            if subnet is not None:
                nets.append(ipaddress.ip_network(subnet.value["cidr"]))
        for route in routes:
            nexthop = ipaddress.ip_address(route["nexthop"])
            reason = None
            if not any(nexthop in net for net in nets):
                reason = "the nexthop is not connected with router"
            elif str(nexthop) in {ip["ip_address"] for ip in held}:
                reason = "the nexthop is used by router"
            if reason:
                raise ApiFault(
                    "InvalidRoutes", 400, f"Invalid format for routes: {routes}, {reason}"
                )


def check_address_mode(subnet: dict[str, Any]) -> None:
    """IPv6 subnets told to take RAs from an outside router cannot join a Neutron router."""
    if (
        subnet.get("ip_version") == 6
        and subnet.get("ipv6_ra_mode") is None
        and subnet.get("ipv6_address_mode") is not None
    ):
        raise bad_resource_request(
            "router",
            f"IPv6 subnet {subnet['id']} configured to receive RAs from an external router "
            "cannot be added to Neutron Router.",
        )


__all__ = ["RouterTopology", "check_address_mode"]
