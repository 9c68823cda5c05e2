"""Routers: what joins a project's subnets to an external network, for floating IPs.

In a routed network no router appliance forwards anything; every host routes. A router is
kept as Neutron's bookkeeping because floating-IP semantics hang on it: a floating IP may
only be associated with a port whose subnet some router joins to the floating IP's
external network, and the floating IP reports that router as its ``router_id``.

- The gateway (``external_gateway_info``) holds an address on the external network through
  a port (``network:router_gateway``, project ``""``, hidden from tenants) created in the
  same transaction as the router change, so the address claim commits or fails with it.
- An interface on a subnet is a port holding the subnet's gateway IP
  (``network:router_interface``, the router's project). The interface ports are the truth
  about what a router joins: every port whose ``device_id`` is the router.
- Every change to what a router joins rewrites the router document. A floating IP
  association depends on the router document it found, so the two never interleave; and
  an interface or gateway that floating IPs depend on cannot be removed (Neutron's 409s).

Request shapes and their Neutron messages are in :mod:`routeplane.services.l3.router_requests`,
what a router joins (and the checks on it) in :mod:`routeplane.services.l3.router_topology`.
"""

from __future__ import annotations

from typing import Any

from routeplane.services.attributes import to_boolean, visible
from routeplane.services.common import bump, check_if_match, new_doc, require_write
from routeplane.services.context import ADMIN, Context
from routeplane.services.core.networks import NetworkService
from routeplane.services.core.ports import PortService
from routeplane.services.core.subnets import SubnetService
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, bad_resource_request
from routeplane.services.l3.router_requests import (
    ATTRS,
    FIELDS,
    GATEWAY_OWNER,
    INTERFACE_OWNER,
    drop_service_port,
    external_ips_changed,
    gateway_policy,
    interface_info,
    interface_request,
)
from routeplane.services.l3.router_topology import RouterTopology, check_address_mode
from routeplane.services.repo import Change, Doc, Outcome, Repo, key


class RouterService(DocService):
    name = "router"
    collection = "routers"
    kind = "routers"
    attrs = ATTRS
    not_found_type = "RouterNotFound"
    not_found_message = "Router {id} could not be found"

    def __init__(
        self, repo: Repo, networks: NetworkService, subnets: SubnetService, ports: PortService
    ) -> None:
        super().__init__(repo)
        self.networks = networks
        self.subnets = subnets
        self.ports = ports
        self.topology = RouterTopology(repo)

    # reading -------------------------------------------------------------------------
    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        """Neutron's key order; the gateway's addresses are read from its port."""
        shown = {name: doc.get(name, ATTRS[name].default_value()) for name in FIELDS}
        gateway = doc.get("external_gateway_info")
        if gateway:
            port = self.repo.get("ports", str(doc.get("gw_port_id")))
            shown["external_gateway_info"] = {
                "network_id": gateway["network_id"],
                "external_fixed_ips": [
                    {"subnet_id": ip["subnet_id"], "ip_address": ip["ip_address"]}
                    for ip in ([] if port is None else port.value["fixed_ips"])
                ],
                "enable_snat": gateway["enable_snat"],
            }
        return visible(self.attrs, shown, is_admin=ctx.is_admin)

    # the gateway -----------------------------------------------------------------------
    def _attach_gateway(
        self, ctx: Context, change: Change, router: dict[str, Any], gateway: dict[str, Any]
    ) -> None:
        net = self.networks.load(ctx, str(gateway["network_id"]))
        change.depends_on(net)
        if not net.value.get("router:external"):
            raise bad_resource_request(
                "router", f"Network {net.value['id']} is not an external network"
            )
        subnets = [
            s.value for sid in net.value.get("subnets", []) if (s := self.repo.get("subnets", sid))
        ]
        wanted = list(gateway.get("external_fixed_ips") or [])
        for ip in wanted:
            if any(
                s.get("gateway_ip") and ip.get("ip_address") == s["gateway_ip"] for s in subnets
            ):
                raise bad_resource_request(
                    "router", f"External IP {ip['ip_address']} is the same as the gateway IP"
                )
        self.topology.check_new_subnets(router, subnets)
        fields: dict[str, Any] = {
            "project_id": "",  # Neutron: hidden from the tenant
            "device_id": router["id"],
            "device_owner": GATEWAY_OWNER,
        }
        if wanted:
            fields["fixed_ips"] = wanted
        port = self.ports.create_service_port(change, net, fields)
        router["gw_port_id"] = port["id"]
        router["external_gateway_info"] = {
            "network_id": net.value["id"],
            "enable_snat": to_boolean(gateway.get("enable_snat", True)),
        }

    def _detach_gateway(self, change: Change, router: dict[str, Any]) -> None:
        gateway = router.get("external_gateway_info")
        if not gateway:
            return
        if any(f.value.get("router_id") == router["id"] for f in self.repo.list("floatingips")):
            raise ApiFault(
                "RouterExternalGatewayInUseByFloatingIp",
                409,
                f"Gateway cannot be updated for router {router['id']}, since a gateway to "
                f"external network {gateway['network_id']} is required by one or more floating IPs.",
            )
        port = self.repo.get("ports", str(router.get("gw_port_id")))
        if port is not None:
            drop_service_port(self.repo, change, port)
        router["external_gateway_info"] = None
        router["gw_port_id"] = None

    def _set_gateway(
        self, ctx: Context, change: Change, router: dict[str, Any], gateway: dict[str, Any] | None
    ) -> None:
        current = router.get("external_gateway_info")
        if gateway and current and current["network_id"] == gateway["network_id"]:
            if "enable_snat" in gateway:
                snat = to_boolean(gateway["enable_snat"])
                router["external_gateway_info"] = {**current, "enable_snat": snat}
            return
        self._detach_gateway(change, router)
        if gateway:
            self._attach_gateway(ctx, change, router, gateway)

    def _readdress_gateway(
        self, ctx: Context, router_id: str, gateway: dict[str, Any], if_match: int | None
    ) -> None:
        """New addresses on the same external network: the gateway port is updated in place,
        in its own transaction, as Neutron's ``_update_current_gw_port`` does."""
        router = self.load_for_write(ctx, router_id, "update_router").value
        check_if_match(router, if_match)
        current = router.get("external_gateway_info")
        if not current or current["network_id"] != gateway["network_id"]:
            return
        port = self.repo.get("ports", str(router.get("gw_port_id")))
        wanted = gateway.get("external_fixed_ips") or []
        if port is None or not external_ips_changed(port.value, wanted):
            return
        for subnet_id in self.networks.load(ctx, current["network_id"]).value.get("subnets", []):
            subnet = self.repo.get("subnets", subnet_id)
            gateway_ip = None if subnet is None else subnet.value.get("gateway_ip")
            if gateway_ip and any(ip.get("ip_address") == gateway_ip for ip in wanted):
                raise bad_resource_request(
                    "router", f"External IP {gateway_ip} is the same as the gateway IP"
                )
        self.ports.update(ADMIN, port.value["id"], {"fixed_ips": wanted}, None)

    # create, update, delete ------------------------------------------------------------
    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_router")
        gateway = data.pop("external_gateway_info", None) or None
        gateway_policy(ctx, gateway, "create_router")
        base = new_doc(ctx, data)

        def use_case() -> Outcome[dict[str, Any]]:
            doc = {**base, "status": "ACTIVE", "external_gateway_info": None, "gw_port_id": None}
            change = Change()
            if gateway:
                self._attach_gateway(ctx, change, doc, gateway)
                doc["revision_number"] = 2  # Neutron bumps twice attaching the gateway port
            change.claim(key(self.kind, doc["id"]), doc)
            return Outcome(change, doc)

        return self.render(ctx, self.repo.run(use_case))

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        changes = dict(data)
        has_gateway = "external_gateway_info" in changes
        gateway = changes.pop("external_gateway_info", None) or None
        if has_gateway:
            gateway_policy(ctx, gateway, "update_router")
        if gateway and gateway.get("external_fixed_ips"):
            self._readdress_gateway(ctx, resource_id, gateway, if_match)

        def apply(doc: Doc, change: Change) -> dict[str, Any]:
            updated = {**doc.value, **changes}
            if has_gateway:
                self._set_gateway(ctx, change, updated, gateway)
            if "routes" in changes:
                self.topology.check_routes(updated)
            return updated

        # An empty body changes nothing; any attribute sent makes a new revision.
        updated = self.update_doc(ctx, resource_id, if_match, apply, no_change=lambda *_: not data)
        return self.render(ctx, updated)

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        self.delete_doc(
            ctx,
            resource_id,
            if_match,
            in_use=self._interfaces_left,
            remove=lambda doc, change: self._detach_gateway(change, dict(doc.value)),
        )

    def _interfaces_left(self, doc: Doc) -> None:
        attached = self.topology.interfaces(doc.value["id"])
        if attached:
            raise ApiFault(
                "RouterInUse",
                409,
                f"Router {doc.value['id']} has ports still attached: "
                + ", ".join(p.value["id"] for p in attached),
            )

    # interfaces ------------------------------------------------------------------------
    def add_interface(self, ctx: Context, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /routers/{id}/add_router_interface``: a subnet (a new port holding its
        gateway IP) or an existing unattached port becomes an interface of the router."""

        def use_case() -> Outcome[dict[str, Any]]:
            router = self.load_for_write(ctx, router_id, "add_router_interface")
            port_id, subnet_id = interface_request(body, removal=False)
            change = Change()
            change.depends_on(router)
            if port_id is not None:
                port, subnets = self._attach_port(ctx, change, router.value, port_id)
            else:
                assert subnet_id is not None
                port, subnets = self._attach_subnet(ctx, change, router.value, subnet_id)
            change.put(router.key, bump(router.value))
            ids = [s["id"] for s in subnets]
            return Outcome(change, interface_info(router_id, port, ids[-1], ids))

        return self.repo.run(use_case)

    def _attach_subnet(
        self, ctx: Context, change: Change, router: dict[str, Any], subnet_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        doc = self.subnets.load(ctx, subnet_id)
        change.depends_on(doc)
        subnet = doc.value
        if not subnet.get("gateway_ip"):
            raise bad_resource_request(
                "router", "Subnet for router interface must have a gateway IP"
            )
        if not ctx.is_admin and subnet.get("project_id") != ctx.project_id:
            raise bad_resource_request(
                "router",
                f"Cannot add interface to router because subnet {subnet_id} is not owned by "
                "project making the request",
            )
        check_address_mode(subnet)
        self.topology.check_new_subnets(router, [subnet])
        net = self.networks.load(ADMIN, str(subnet["network_id"]))
        fields = {
            "project_id": router["project_id"],
            "device_id": router["id"],
            "device_owner": INTERFACE_OWNER,
            "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}],
        }
        return self.ports.create_service_port(change, net, fields), [subnet]

    def _attach_port(
        self, ctx: Context, change: Change, router: dict[str, Any], port_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        doc = self.ports.load(ctx, port_id)
        change.depends_on(doc)
        port = doc.value
        if port.get("device_id"):
            raise ApiFault(
                "PortInUse",
                409,
                f"Unable to complete operation on port {port_id} for network "
                f"{port['network_id']}. Port already has an attached device {port['device_id']}.",
            )
        if not port.get("fixed_ips"):
            raise bad_resource_request("router", "Router port must have at least one fixed IP")
        subnets = [self.subnets.load(ADMIN, ip["subnet_id"]).value for ip in port["fixed_ips"]]
        for subnet in subnets:
            check_address_mode(subnet)
        self.topology.check_new_subnets(router, subnets)
        if len([s for s in subnets if s["ip_version"] == 4]) > 1:
            raise bad_resource_request("router", "Cannot have multiple IPv4 subnets on router port")
        updated = bump({**port, "device_id": router["id"], "device_owner": INTERFACE_OWNER})
        change.put(doc.key, updated)
        self.ports.after_update(change, port, updated)
        return updated, subnets

    def remove_interface(
        self, ctx: Context, router_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """``PUT /routers/{id}/remove_router_interface``: by port (the port is deleted) or by
        subnet (the interface port on it is deleted, or loses that subnet's address)."""

        def use_case() -> Outcome[dict[str, Any]]:
            router = self.load_for_write(ctx, router_id, "remove_router_interface")
            port_id, subnet_id = interface_request(body, removal=True)
            change = Change()
            change.depends_on(router)
            if port_id is not None:
                port, ids = self._detach_port(change, router.value, port_id, subnet_id)
            else:
                assert subnet_id is not None
                port, ids = self._detach_subnet(ctx, change, router.value, subnet_id)
            change.put(router.key, bump(router.value))
            return Outcome(change, interface_info(router_id, port, ids[0], ids))

        return self.repo.run(use_case)

    def _detach_port(
        self, change: Change, router: dict[str, Any], port_id: str, subnet_id: str | None
    ) -> tuple[dict[str, Any], list[str]]:
        found = [p for p in self.topology.interfaces(router["id"]) if p.value["id"] == port_id]
        if not found:
            raise ApiFault(
                "RouterInterfaceNotFound",
                404,
                f"Router {router['id']} does not have an interface with id {port_id}",
            )
        port = found[0]
        ids = [ip["subnet_id"] for ip in port.value.get("fixed_ips", [])]
        if subnet_id and subnet_id not in ids:
            raise ApiFault(
                "SubnetMismatchForPort",
                400,
                f"Subnet on port {port_id} does not match the requested subnet {subnet_id}.",
            )
        for sid in dict.fromkeys(ids):
            subnet = self.repo.get("subnets", sid)
            if subnet is not None:
                self.topology.check_unused(router, subnet.value)
        drop_service_port(self.repo, change, port)
        return port.value, ids

    def _detach_subnet(
        self, ctx: Context, change: Change, router: dict[str, Any], subnet_id: str
    ) -> tuple[dict[str, Any], list[str]]:
        subnet = self.subnets.load(ctx, subnet_id).value
        ports = [
            p
            for p in self.topology.interfaces(router["id"])
            if p.value["network_id"] == subnet["network_id"]
        ]
        if ports:
            self.topology.check_unused(router, subnet)
        for port in ports:
            held = port.value.get("fixed_ips", [])
            if not any(ip["subnet_id"] == subnet_id for ip in held):
                continue
            if len({ip["subnet_id"] for ip in held}) == 1:
                drop_service_port(self.repo, change, port)
                return port.value, [subnet_id]
            # a port with addresses on several subnets only loses this subnet's
            change.depends_on(port)
            kept = [ip for ip in held if ip["subnet_id"] != subnet_id]
            for ip in held:
                if ip["subnet_id"] == subnet_id:
                    change.delete(key("ipam", subnet_id, ip["ip_address"]))
            updated = bump({**port.value, "fixed_ips": kept})
            change.put(port.key, updated)
            self.ports.after_update(change, port.value, updated)
            return port.value, [subnet_id]
        raise ApiFault(
            "RouterInterfaceNotFoundForSubnet",
            404,
            f"Router {router['id']} has no interface on subnet {subnet_id}",
        )


__all__ = ["RouterService"]
