"""Floating IPs: an external address DNAT'd, on the VM's host, to one fixed IP of a port.

Semantics are Neutron's (``l3_db``): the address comes from a ``router:external`` network
through a port the floating IP owns (``network:floatingip``, project ``""``, hidden from
tenants); association names a port and, when the port has several IPv4 addresses, which
one; a router must join that address's subnet to the external network, and it becomes
``router_id``. ``port_id: null`` disassociates; a PUT without ``port_id`` keeps the
association. Deleting the port disassociates (the port service does that); deleting the
floating IP frees the address; deleting its external network deletes it unless associated.

What the agent sees: in the same transaction as every (dis)association, the index
``fip_by_port/<port>/<fip>`` = ``{id, floating_ip_address, fixed_ip_address}`` is written or
deleted, and the port's endpoint record (if the port is bound) is rewritten from that index,
so the host's NAT pairs change atomically with the API state. The port document itself is
rewritten unchanged ("touched"): a concurrent port update, which derives the endpoint from
the same index, then conflicts and re-reads instead of overwriting the NAT pairs.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from routeplane.model.endpoint import encode
from routeplane.services.attributes import Attr, ip_address, is_uuid, uuid_or_none, visible
from routeplane.services.common import new_doc, require_write, standard_attrs
from routeplane.services.context import ADMIN, Context
from routeplane.services.core.endpoints import endpoint_key, endpoint_record, record_inputs
from routeplane.services.core.networks import NetworkService
from routeplane.services.core.ports import PortService
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, bad_resource_request
from routeplane.services.l3.router_requests import FLOATINGIP_OWNER, drop_service_port
from routeplane.services.l3.router_topology import RouterTopology
from routeplane.services.repo import Change, Doc, Outcome, Repo, key


def _ip_or_none(value: Any) -> str | None:
    return None if value is None else ip_address(value)


ATTRS: dict[str, Attr] = {
    **{name: attr for name, attr in standard_attrs().items() if name != "name"},
    "floating_ip_address": Attr(put=False, default=None, validate=_ip_or_none, sort=True),
    "floating_network_id": Attr(put=False, validate=is_uuid, sort=True),
    "subnet_id": Attr(put=False, default=None, validate=uuid_or_none, filter=False),
    "router_id": Attr(post=False, put=False, default=None, sort=True),
    "port_id": Attr(default=None, validate=uuid_or_none, sort=True),
    "fixed_ip_address": Attr(default=None, validate=_ip_or_none, sort=True),
    "status": Attr(post=False, put=False, default="DOWN", sort=True),
    "port_details": Attr(post=False, put=False, default=None, filter=False),
}
# The order Neutron answers with (oracle transcript, section 10).
FIELDS = (
    "id", "tenant_id", "project_id", "floating_ip_address", "floating_network_id",
    "router_id", "port_id", "fixed_ip_address", "status", "description", "port_details",
    "tags", "created_at", "updated_at", "revision_number",
)  # fmt: skip
CHANGEABLE = ("description", "port_id", "fixed_ip_address", "router_id")
PORT_DETAILS = (
    "name", "network_id", "mac_address", "admin_state_up", "status", "device_id", "device_owner",
)  # fmt: skip


def _bad(message: str) -> ApiFault:
    return bad_resource_request("floatingip", message)


def _same_association(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(new.get(k) == old.get(k) for k in CHANGEABLE)


class FloatingIPService(DocService):
    name = "floatingip"
    collection = "floatingips"
    kind = "floatingips"
    attrs = ATTRS
    not_found_type = "FloatingIPNotFound"
    not_found_message = "Floating IP {id} could not be found"

    def __init__(
        self, repo: Repo, networks: NetworkService, ports: PortService, routers: RouterTopology
    ) -> None:
        super().__init__(repo)
        self.networks = networks
        self.ports = ports
        self.routers = routers
        networks.dependents.append(self._remove_with_network)

    # reading -------------------------------------------------------------------------
    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        """Neutron's key order; ``port_details`` (fip-port-details) and ``status`` follow the
        associated port as it is now: ACTIVE while that port is bound to a host."""
        shown = {name: doc.get(name, ATTRS[name].default_value()) for name in FIELDS}
        port = self.repo.get("ports", str(doc["port_id"])) if doc.get("port_id") else None
        shown["status"] = "DOWN"
        if port is not None:
            live = self.ports.render(ADMIN, port.value)
            shown["port_details"] = {name: live.get(name) for name in PORT_DETAILS}
            shown["status"] = "ACTIVE" if port.value.get("binding:host_id") else "DOWN"
        return visible(self.attrs, shown, is_admin=ctx.is_admin)

    # association ---------------------------------------------------------------------
    def _port(self, ctx: Context, port_id: str) -> Doc:
        """The port to associate, if the caller may see it: its own, or one on a network
        the caller owns (Neutron's port query hook shows ports to the network owner)."""
        doc = self.repo.get("ports", port_id) if "/" not in port_id else None
        if doc is not None and not ctx.sees(str(doc.value.get("project_id"))):
            net = self.repo.get("networks", str(doc.value.get("network_id")))
            if net is None or not ctx.sees(str(net.value.get("project_id"))):
                doc = None
        if doc is None:
            raise self.ports.not_found(port_id)
        return doc

    def _fixed_ip(self, port: dict[str, Any], asked: str | None) -> tuple[str, str]:
        """``(subnet_id, ip_address)`` of the port that the floating IP is to reach."""
        if asked:
            if ipaddress.ip_address(asked).version != 4:
                raise _bad(
                    f"Cannot process floating IP association with {asked}, since that is not "
                    "an IPv4 address"
                )
            for ip in port.get("fixed_ips", []):
                if ipaddress.ip_address(ip["ip_address"]) == ipaddress.ip_address(asked):
                    return ip["subnet_id"], ip["ip_address"]
            raise _bad(f"Port {port['id']} does not have fixed ip {asked}")
        v4 = [
            ip
            for ip in port.get("fixed_ips", [])
            if ipaddress.ip_address(ip["ip_address"]).version == 4
        ]
        if not v4:
            raise _bad(
                f"Cannot add floating IP to port {port['id']} that has no fixed IPv4 addresses"
            )
        if len(v4) > 1:
            raise _bad(
                f"Port {port['id']} has multiple fixed IPv4 addresses.  Must provide a specific "
                "IPv4 address when assigning a floating IP"
            )
        return v4[0]["subnet_id"], v4[0]["ip_address"]

    def _associate(
        self, ctx: Context, change: Change, fip: dict[str, Any], asked: dict[str, Any]
    ) -> None:
        """Neutron's ``_check_and_get_fip_assoc``: set port_id, fixed_ip_address and
        router_id of ``fip`` from what the request ``asked`` (checks in Neutron's order)."""
        if asked.get("fixed_ip_address") and not asked.get("port_id"):
            raise _bad("fixed_ip_address cannot be specified without a port_id")
        if "port_id" not in asked:
            return  # bug 1610045: omitting port_id keeps the association
        if asked["port_id"] is None:
            fip.update(port_id=None, fixed_ip_address=None, router_id=None)
            return
        doc = self._port(ctx, str(asked["port_id"]))
        change.depends_on(doc)
        port = doc.value
        if port.get("project_id") != fip["project_id"] and not ctx.is_admin:
            raise _bad(
                f"Cannot process floating IP association with Port {port['id']}, since that "
                "port is owned by a different project"
            )
        if port.get("device_owner") == "network:dhcp":
            raise _bad("Port %(id)s is unable to be assigned a floating IP")  # sic, Neutron
        subnet_id, fixed = self._fixed_ip(port, asked.get("fixed_ip_address"))
        subnet = self.repo.get("subnets", subnet_id)
        router_id = None
        if subnet is not None:
            router_id = self.routers.router_for(
                change, port, subnet.value, fip["floating_network_id"]
            )
        if router_id is None:
            raise ApiFault(
                "ExternalGatewayForFloatingIPNotFound",
                404,
                f"External network {fip['floating_network_id']} is not reachable from subnet "
                f"{subnet_id}.  Therefore, cannot associate Port {port['id']} with a Floating IP.",
            )
        for index in self.repo.list("fip_by_port", port["id"]):
            other = self.repo.get(self.kind, str(index.value.get("id")))
            if other is None or other.value["id"] == fip["id"]:
                continue
            same_net = other.value["floating_network_id"] == fip["floating_network_id"]
            if same_net and index.value.get("fixed_ip_address") == fixed:
                raise ApiFault(
                    "FloatingIPPortAlreadyAssociated",
                    409,
                    f"Cannot associate floating IP {fip['floating_ip_address']} ({fip['id']}) "
                    f"with port {port['id']} using fixed IP {fixed}, as that fixed IP already "
                    f"has a floating IP on external network {fip['floating_network_id']}.",
                )
        fip.update(port_id=port["id"], fixed_ip_address=fixed, router_id=router_id)

    def _sync_ports(
        self, change: Change, fip_id: str, before: dict[str, Any], after: dict[str, Any] | None
    ) -> None:
        """The index entries and endpoint records of the ports the floating IP left and
        reached; nothing when the NAT pair did not change."""
        pair = ("port_id", "fixed_ip_address", "floating_ip_address")
        if after is not None and all(before.get(k) == after.get(k) for k in pair):
            return
        entries: dict[str, dict[str, Any] | None] = {}
        if before.get("port_id"):
            entries[before["port_id"]] = None
        if after is not None and after.get("port_id"):
            entries[after["port_id"]] = {
                "id": fip_id,
                "floating_ip_address": after["floating_ip_address"],
                "fixed_ip_address": after["fixed_ip_address"],
            }
        for port_id, entry in entries.items():
            index_key = key("fip_by_port", port_id, fip_id)
            if entry is None:
                change.delete(index_key)
            else:
                change.put(index_key, entry)
            port = self.repo.get("ports", port_id)
            if port is None:
                continue
            change.depends_on(port)
            change.put(port.key, port.value)  # touched: see the module docstring
            host = port.value.get("binding:host_id")
            if host:
                floating = [
                    d.value for d in self.repo.list("fip_by_port", port_id) if d.key != index_key
                ]
                floating += [] if entry is None else [entry]
                inputs = record_inputs(self.repo, port.value, change=change)
                record = endpoint_record(port.value, floating, inputs)
                change.put(endpoint_key(host, port_id), encode(record))

    # create, update, delete ------------------------------------------------------------
    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_floatingip")
        if data.get("floating_ip_address") is not None and not ctx.is_admin:
            raise ApiFault(
                "PolicyNotAuthorized",
                403,
                "(rule:create_floatingip:floating_ip_address) is disallowed by policy",
            )
        asked: dict[str, Any] = {
            k: data.pop(k) for k in ("port_id", "fixed_ip_address") if k in data
        }
        if asked.get("port_id") is None:
            asked.pop("port_id", None)
        base = new_doc(ctx, data)

        def use_case() -> Outcome[dict[str, Any]]:
            doc = dict(base)
            change = Change()
            net = self.networks.load(ctx, str(doc["floating_network_id"]))
            change.depends_on(net)
            self._check_external(net)
            wanted = {
                k: v
                for k, v in (("subnet_id", doc.pop("subnet_id", None)),
                             ("ip_address", doc.get("floating_ip_address")))
                if v is not None
            }  # fmt: skip
            fields: dict[str, Any] = {
                "project_id": "",  # Neutron: never exposed to the tenant
                "device_id": doc["id"],
                "device_owner": FLOATINGIP_OWNER,
            }
            if wanted:
                fields["fixed_ips"] = [wanted]
            port = self.ports.create_service_port(change, net, fields)
            v4 = [
                ip
                for ip in port["fixed_ips"]
                if ipaddress.ip_address(ip["ip_address"]).version == 4
            ]
            if not v4:
                raise ApiFault(
                    "ExternalIpAddressExhausted",
                    400,
                    f"Unable to find any IP address on external network {net.value['id']}.",
                )
            doc.update(
                floating_ip_address=v4[0]["ip_address"],
                floating_port_id=port["id"],
                port_id=None,
                fixed_ip_address=None,
                router_id=None,
            )
            self._associate(ctx, change, doc, asked)
            doc["status"] = self._status(doc)
            self._sync_ports(change, doc["id"], {}, doc)
            change.claim(key(self.kind, doc["id"]), doc)
            return Outcome(change, doc)

        return self.render(ctx, self.repo.run(use_case))

    def _check_external(self, net: Doc) -> None:
        net_id = net.value["id"]
        if not net.value.get("router:external"):
            raise _bad(f"Network {net_id} is not a valid external network")
        for subnet_id in net.value.get("subnets", []):
            subnet = self.repo.get("subnets", subnet_id)
            if subnet is not None and subnet.value.get("ip_version") == 4:
                return
        raise _bad(f"Network {net_id} does not contain any IPv4 subnet")

    def _status(self, doc: dict[str, Any]) -> str:
        """ACTIVE while associated with a bound port (until the agent reports its own)."""
        port = self.repo.get("ports", str(doc["port_id"])) if doc.get("port_id") else None
        return "ACTIVE" if port is not None and port.value.get("binding:host_id") else "DOWN"

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        def apply(doc: Doc, change: Change) -> dict[str, Any]:
            updated = dict(doc.value)
            if "description" in data:
                updated["description"] = data["description"]
            asked: dict[str, Any] = {
                k: data[k] for k in ("port_id", "fixed_ip_address") if k in data
            }
            self._associate(ctx, change, updated, asked)
            updated["status"] = self._status(updated)
            self._sync_ports(change, resource_id, doc.value, updated)
            return updated

        # Neutron: no change, no new revision (a status that moved on alone is no change)
        updated = self.update_doc(ctx, resource_id, if_match, apply, no_change=_same_association)
        return self.render(ctx, updated)

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        self.delete_doc(ctx, resource_id, if_match, remove=self._release)

    def _remove_with_network(self, net: Doc, change: Change) -> set[str]:
        """An external network's deletion takes its disassociated floating IPs along
        (Neutron's ``delete_disassociated_floatingips``); the ids of their ports."""
        released: set[str] = set()
        for fip in self.repo.list(self.kind):
            if fip.value.get("floating_network_id") == net.value["id"]:
                change.depends_on(fip)
                if fip.value.get("port_id"):
                    continue
                self._release(fip, change)
                change.delete(fip.key)
                released.add(str(fip.value.get("floating_port_id")))
        return released

    def _release(self, doc: Doc, change: Change) -> None:
        """Disassociated, and the address freed with the port that held it."""
        self._sync_ports(change, doc.value["id"], doc.value, None)
        port = self.repo.get("ports", str(doc.value.get("floating_port_id")))
        if port is not None:
            drop_service_port(self.repo, change, port)


__all__ = ["ATTRS", "FloatingIPService"]
