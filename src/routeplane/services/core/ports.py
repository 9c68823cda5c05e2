"""Ports: a VM's attachment, its addresses, and the endpoint record its host realises.

Every change to a port is one store transaction that writes, together: the port
document, the address claims it takes (``ipam/<subnet>/<ip>``, create-if-absent) and
releases, its MAC claim, and — when it is bound to a host — the endpoint record
``endpoints/<host>/<port>`` that host's agent programs (ARCHITECTURE "Store"). A move of
``binding:host_id`` deletes the old host's record in the same transaction. The port's
``status`` is ``DOWN`` until the agent on its host reports the endpoint programmed.

Request checks follow Neutron's: ``fixed_ips`` entries keep only ``subnet_id`` and
``ip_address`` (other keys are ignored); ``allowed_address_pairs`` get the port's MAC
where none is given; a MAC may change while the port is not bound to a host (``null``
makes a new one); port security off excludes security groups and address pairs.
Which addresses a port may hold through address pairs, and who may set them, is decided
in :mod:`routeplane.services.core.held_addresses` (one flat routed space).
A PUT that changes nothing keeps the revision.

A port bound to a host without a live agent (``services.agents``) shows Neutron's
``binding:vif_type`` ``binding_failed`` and no ``vif_details``, so Nova does not plug a
tap nobody will serve; it shows ``tap`` as soon as the host's agent is alive (the binding
is decided when shown, not stored). Its endpoint record is written all the same: the
agent finds it when it starts and the port goes ACTIVE then, with no second request. The attribute table and the validators
of MACs and address pairs are in :mod:`routeplane.services.core.port_attrs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from routeplane.ipam.pools import IPAddress
from routeplane.model import keys
from routeplane.model.endpoint import encode
from routeplane.services.agents import AgentService
from routeplane.services.common import bump, new_doc, require_write
from routeplane.services.context import Context
from routeplane.services.core.endpoints import (
    endpoint_hosts,
    endpoint_key,
    endpoint_record,
    record_inputs,
    write_members,
)
from routeplane.services.core.fixed_ips import FixedIP, Resolver, clean, parse_held
from routeplane.services.core.held_addresses import HeldAddresses, may_set_pairs
from routeplane.services.core.networks import NetworkService
from routeplane.services.core.port_attrs import ATTRS, fixed_ips_match, with_macs
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, bad_request, forbidden
from routeplane.services.listing import Matcher
from routeplane.services.repo import Change, Doc, Outcome, Repo, key, new_mac
from routeplane.services.security import port_security
from routeplane.services.security.groups import SecurityGroupService
from routeplane.services.service_ips.hints import public, service_ip_index

UNBOUND_VIF_TYPES = ("unbound", "binding_failed")
MAC_ATTEMPTS = 16  # generated MACs drawn before MacAddressGenerationFailure (Neutron: 16)
ROUTER_INTERFACES = (
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
)
ROUTER_OWNED = (
    *ROUTER_INTERFACES,
    "network:router_gateway",
    "network:floatingip",
)


def vif_details(mac: str) -> dict[str, Any]:
    """What Nova needs to plug a tap: ``mac_address`` is the host side's MAC, the port's
    MAC with ``fe`` as first octet (libvirt's own rule for tap devices): unique per
    port and never the guest's own. networking-calico still sends the constant
    ``00:61:fe:ed:ca:fe``, the same on every tap."""
    return {"port_filter": True, "mac_address": "fe" + mac[2:]}


class PortService(DocService):
    name = "port"
    collection = "ports"
    kind = "ports"
    attrs = ATTRS
    matchers: ClassVar[Mapping[str, Matcher]] = {"fixed_ips": fixed_ips_match}
    not_found_type = "PortNotFound"
    not_found_message = "Port {id} could not be found."

    def __init__(
        self,
        repo: Repo,
        networks: NetworkService,
        groups: SecurityGroupService,
        agents: AgentService,
        mac_source: Callable[[], str] = new_mac,
    ) -> None:
        super().__init__(repo)
        self.mac_source = mac_source  # generated MACs (tests inject collisions)
        self.networks = networks
        self.groups = groups
        self.agents = agents
        self._hints: dict[str, IPAddress] = {}
        self.held = HeldAddresses(repo)

    # showing -------------------------------------------------------------------------
    def _status(self, doc: dict[str, Any], programmed: set[str] | None = None) -> str:
        """A router's interface is realised by every host as soon as it exists (there is
        no router appliance to wait for): ACTIVE unless administratively down."""
        host = doc.get("binding:host_id")
        if not doc.get("admin_state_up", True):
            return "DOWN"
        if doc.get("device_owner") in ROUTER_INTERFACES:
            return "ACTIVE"
        if not host:
            return "DOWN"
        if programmed is not None:
            return "ACTIVE" if f"{host}/{doc['id']}" in programmed else "DOWN"
        return "ACTIVE" if self.repo.get_key(key("status", host, doc["id"])) else "DOWN"

    def render(
        self,
        ctx: Context,
        doc: dict[str, Any],
        programmed: set[str] | None = None,
        live: set[str] | None = None,
    ) -> dict[str, Any]:
        shown = public(doc)  # without the private bookkeeping (move hints, bindings)
        shown["status"] = self._status(doc, programmed)
        shown.update(self.render_binding(doc, live))
        return super().render(ctx, shown)

    def render_binding(self, doc: dict[str, Any], live: set[str] | None = None) -> dict[str, Any]:
        """``binding:vif_type`` and ``vif_details`` as shown: a failed binding while the
        host has no live agent to plug the tap."""
        host = doc.get("binding:host_id")
        shown = {k: doc.get(k) for k in ("binding:vif_type", "binding:vif_details")}
        if host and doc.get("binding:vif_type") == "tap":
            alive = host in live if live is not None else self.agents.is_live(host)
            if not alive:
                shown = {"binding:vif_type": "binding_failed", "binding:vif_details": {}}
        return shown

    def _read_with_commit(self, change: Change, doc: dict[str, Any]) -> None:
        """What the answer shows of a bound port's host (its status, the host's agent),
        read in the commit's own transaction rather than in two more round trips."""
        host = doc.get("binding:host_id")
        if host:
            change.read_after += [key("status", host, doc["id"]), keys.agent_key(host)]

    def render_committed(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        """:meth:`render` of a port just written, from what its commit read (when it
        committed: a request that changed nothing reads as any ``GET``)."""
        found = self.repo.after_commit()
        host = doc.get("binding:host_id")
        status_key = key("status", str(host), str(doc["id"]))
        if not host or status_key not in found:
            return self.render(ctx, doc)
        programmed = {f"{host}/{doc['id']}"} if found[status_key] is not None else set()
        live = {str(host)} if found.get(keys.agent_key(host)) is not None else set()
        return self.render(ctx, doc, programmed, live)

    def list_visible(self, ctx: Context) -> list[dict[str, Any]]:
        programmed = set(self.repo.keys("status"))
        live = self.agents.live_hosts()
        return [
            self.render(ctx, d.value, programmed, live)
            for d in self.repo.list(self.kind)
            if self.visible_to(ctx, d.value)
        ]

    def visible_to(self, ctx: Context, doc: dict[str, Any]) -> bool:
        return ctx.sees(str(doc.get("project_id")))

    # the address side ----------------------------------------------------------------
    def _resolver(self, net: Doc, port_id: str, change: Change, mac: str, project: str) -> Resolver:
        """Addresses for a port of ``project`` with ``mac`` on ``net`` (SLAAC subnets: the
        EUI-64 address of the MAC): free means claimed by no port and held as a pair by no
        port of another project."""
        subnets: dict[str, dict[str, Any]] = {}
        for subnet_id in net.value.get("subnets", []):
            subnet = self.repo.get("subnets", subnet_id)
            if subnet is not None:
                change.depends_on(subnet)
                subnets[subnet_id] = subnet.value

        def holder(subnet_id: str, ip: str) -> str | None:
            claim = self.repo.get_key(key("ipam", subnet_id, ip))
            if claim is not None:
                return str(claim.value.get("port_id"))
            return self.held.pair_holder(ip, project)

        return Resolver(
            network_id=net.value["id"],
            subnets=subnets,
            subnet_exists=lambda sid: self.repo.get("subnets", sid) is not None,
            hints=self._hints,
            holder=holder,
            port_id=port_id,
            attempt=self.repo.attempt(),
            mac=mac,
        )

    def _claim_addresses(
        self, change: Change, port: dict[str, Any], old: list[FixedIP], new: list[FixedIP]
    ) -> None:
        """Release what the port no longer holds, claim what it newly holds (never an
        address another project holds as a pair: see held_addresses)."""
        old_set, new_set = set(old), set(new)
        for ip in old_set - new_set:
            change.delete(key("ipam", ip.subnet_id, ip.ip_address))
        for ip in new_set - old_set:
            change.claim(key("ipam", ip.subnet_id, ip.ip_address), {"port_id": port["id"]})
        fresh = [ip.ip_address for ip in new_set - old_set]
        self.held.guard_fixed(change, str(port.get("project_id")), fresh)

    def _write_endpoint(
        self, change: Change, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        """The endpoint records follow the port: on its host and the hosts it migrates to,
        gone from a host it left; and its entries in the security-group member index with
        them."""
        write_members(change, old, new)
        wanted = endpoint_hosts(new)
        for host in endpoint_hosts(old):
            if host not in wanted:
                change.delete(endpoint_key(host, str((old or {})["id"])))
        if new is None or not wanted:
            return
        # a port being created has no floating IP yet (an association needs the port)
        floating = (
            [] if old is None else [d.value for d in self.repo.list("fip_by_port", new["id"])]
        )
        inputs = record_inputs(self.repo, new, change=change)
        record = endpoint_record(new, floating, inputs)
        for host, target in wanted.items():
            written = record
            if target:
                written = record.copy()
                written["migration_target"] = True
            change.put(endpoint_key(host, new["id"]), encode(written))

    def after_update(self, change: Change, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._write_endpoint(change, old, new)

    @staticmethod
    def _binding(doc: dict[str, Any]) -> None:
        bound = bool(doc.get("binding:host_id"))
        doc["binding:vif_type"] = "tap" if bound else "unbound"
        doc["binding:vif_details"] = vif_details(str(doc["mac_address"])) if bound else {}

    # create --------------------------------------------------------------------------
    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_port")
        port_security.may_set(ctx, "create_port", data.get("port_security_enabled"))
        if "network_id" not in data:
            raise bad_request(
                "Failed to parse request. Required attribute 'network_id' not specified"
            )
        # Neutron writes a new port twice (binding, port security), so it starts at 1.
        base = new_doc(ctx, dict(data), revision=1)

        def use_case() -> Outcome[dict[str, Any]]:
            doc = dict(base)
            net = self.networks.load(ctx, str(doc["network_id"]))
            if not self.networks.may_attach(ctx, net.value):  # external to it by policy only
                raise forbidden("create_port")
            change = Change()
            change.depends_on(net)
            mac = self._claim_mac(change, net.value["id"], doc.get("mac_address"), doc["id"])
            doc["mac_address"] = mac
            resolver = self._resolver(net, doc["id"], change, mac, str(doc["project_id"]))
            requested = doc.get("fixed_ips")
            fixed = (
                resolver.automatic() if requested is None else resolver.requested(clean(requested))
            )
            doc["fixed_ips"] = [ip.as_json() for ip in fixed]
            self._claim_addresses(change, doc, [], fixed)
            if doc.get("port_security_enabled") is None:
                doc["port_security_enabled"] = bool(net.value.get("port_security_enabled", True))
            if not doc["port_security_enabled"] and doc.get("security_groups"):
                raise ApiFault(
                    "PortSecurityAndIPRequiredForSecurityGroups",
                    400,
                    "Port security must be enabled and port must have an IP address in order "
                    "to use security groups.",
                )
            doc["security_groups"] = self._groups(ctx, doc, change)
            doc["allowed_address_pairs"] = with_macs(doc.get("allowed_address_pairs", []), mac)
            if data.get("allowed_address_pairs"):  # explicitly set: not its default
                may_set_pairs(ctx, net.value, "create_port")
            self._check_port_security(doc)
            self.held.check(ctx, change, doc, [])
            self.held.index(change, doc, None)
            self._binding(doc)
            change.claim(key(self.kind, doc["id"]), doc)
            self._write_endpoint(change, None, doc)
            self._read_with_commit(change, doc)
            return Outcome(change, doc)

        return self.render_committed(ctx, self.repo.run(use_case))

    def _claim_mac(self, change: Change, network_id: str, asked: str | None, port_id: str) -> str:
        """Claim the MAC asked for (``MacAddressInUse`` if taken), or a generated one:
        a generated MAC that is taken is drawn again, as Neutron does (three random
        octets collide among 1,200 ports of a network about once in 25)."""
        for _ in range(MAC_ATTEMPTS):
            mac = (asked or self.mac_source()).lower()
            mac_key = key("macs", network_id, mac)
            if self.repo.get_key(mac_key) is None:
                change.claim(mac_key, {"port_id": port_id})
                return mac
            if asked:
                raise ApiFault(
                    "MacAddressInUse",
                    409,
                    f"Unable to complete operation for network {network_id}. The mac address {mac} is in use.",
                )
        raise ApiFault(
            "MacAddressGenerationFailure",
            503,
            f"Unable to generate unique mac on network {network_id}.",
        )

    @staticmethod
    def _check_port_security(doc: dict[str, Any]) -> None:
        """With port security off a port has neither security groups nor address pairs."""
        if doc["port_security_enabled"]:
            return
        if doc.get("security_groups"):
            raise ApiFault(
                "PortSecurityPortHasSecurityGroup",
                409,
                "Port has security group associated. Cannot disable port security or IP "
                "address until security group is removed.",
            )
        if doc.get("allowed_address_pairs"):
            raise ApiFault(
                "AddressPairAndPortSecurityRequired",
                409,
                "Port Security must be enabled in order to have allowed address pairs on a port.",
            )

    def _groups(self, ctx: Context, doc: dict[str, Any], change: Change) -> list[str]:
        requested = doc.get("security_groups")
        if requested is None:
            if (
                str(doc.get("device_owner", "")).startswith("network:")
                or not doc["port_security_enabled"]
            ):
                return []
            return [self.groups.default_group(doc["project_id"], change)]
        for group_id in requested:
            group = self.groups.load(ctx, str(group_id))
            change.depends_on(group)
        return sorted(set(map(str, requested)), key=requested.index)

    # update --------------------------------------------------------------------------
    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        def apply(doc: Doc, change: Change) -> dict[str, Any]:
            updated = {**doc.value, **data}
            current = bool(doc.value.get("port_security_enabled", True))
            port_security.may_set(ctx, "update_port", data.get("port_security_enabled"), current)
            if updated.get("port_security_enabled") is None:  # null: keep what it was
                updated["port_security_enabled"] = doc.value.get("port_security_enabled", True)
            if "mac_address" in data:
                updated["mac_address"] = self._new_mac(change, doc.value, data["mac_address"])
            if "fixed_ips" in data:
                net = self.networks.load(ctx, str(doc.value["network_id"]))
                old = parse_held(doc.value.get("fixed_ips"))
                mac = str(updated["mac_address"])
                project = str(doc.value["project_id"])
                new = self._resolver(net, resource_id, change, mac, project).requested(
                    clean(data["fixed_ips"]), old
                )
                self._guard_floating(resource_id, old, new)
                self._guard_service_ips(resource_id, old, new, change)
                updated["fixed_ips"] = [ip.as_json() for ip in new]
                self._claim_addresses(change, doc.value, old, new)
            if "security_groups" in data:
                if data["security_groups"] and not updated["port_security_enabled"]:
                    raise ApiFault(
                        "PortSecurityAndIPRequiredForSecurityGroups",
                        400,
                        "Port security must be enabled and port must have an IP address in "
                        "order to use security groups.",
                    )
                updated["security_groups"] = self._groups(ctx, updated, change)
            if "allowed_address_pairs" in data or "mac_address" in data:
                pairs = data.get("allowed_address_pairs", doc.value.get("allowed_address_pairs"))
                if "allowed_address_pairs" not in data:  # stored pairs took the old MAC
                    old_mac = doc.value["mac_address"]
                    pairs = [
                        {**p, "mac_address": None} if p.get("mac_address") == old_mac else p
                        for p in pairs or []
                    ]
                updated["allowed_address_pairs"] = with_macs(pairs or [], updated["mac_address"])
            if "allowed_address_pairs" in data:
                net_doc = self.repo.get("networks", str(doc.value["network_id"]))
                may_set_pairs(ctx, {} if net_doc is None else net_doc.value, "update_port")
            self._check_port_security(updated)
            self.held.check(ctx, change, updated, doc.value.get("allowed_address_pairs", []))
            self.held.index(change, updated, doc.value)
            self._binding(updated)
            self._read_with_commit(change, updated)
            return updated

        return self.render_committed(ctx, self.update_doc(ctx, resource_id, if_match, apply))

    def _new_mac(self, change: Change, port: dict[str, Any], asked: str | None) -> str:
        """A MAC change (``null``: a fresh one), refused while the port is bound."""
        old = str(port["mac_address"])
        if asked is not None and asked.lower() == old:
            return old
        vif_type = port.get("binding:vif_type", "unbound")
        if vif_type not in UNBOUND_VIF_TYPES:
            mac = (asked or self.mac_source()).lower()
            raise ApiFault(
                "PortBound",
                409,
                f"Unable to complete operation on port {port['id']}, port is already bound, "
                f"port type: {vif_type}, old_mac {old}, new_mac {mac}.",
            )
        mac = self._claim_mac(change, str(port["network_id"]), asked, str(port["id"]))
        change.delete(key("macs", str(port["network_id"]), old))
        return mac

    def _guard_floating(self, port_id: str, old: list[FixedIP], new: list[FixedIP]) -> None:
        removed = {ip.ip_address for ip in set(old) - set(new)}
        for fip in self.repo.list("fip_by_port", port_id):
            if fip.value.get("fixed_ip_address") in removed:
                raise ApiFault(
                    "BadRequest",
                    400,
                    f"Bad port request: Cannot update the fixed_ips of the port {port_id}, "
                    "because its original fixed_ip has been associated to a floating ip.",
                )

    def _guard_service_ips(
        self, port_id: str, old: list[FixedIP], new: list[FixedIP], change: Change
    ) -> None:
        """A service IP's address leaves its port only by a move (``fixed_ip_moves``)."""
        for ip in set(old) - set(new):
            index_key = service_ip_index(ip.subnet_id, ip.ip_address)
            index = self.repo.get_key(index_key)
            change.depends_on(index, index_key)
            if index is not None:
                raise ApiFault(
                    "BadRequest",
                    400,
                    f"Bad port request: Cannot update the fixed_ips of the port {port_id}, "
                    f"because its fixed_ip {ip.ip_address} is the address of service IP "
                    f"{index.value.get('id')}.",
                )

    # delete --------------------------------------------------------------------------
    def _guard_service_port(self, port: dict[str, Any]) -> None:
        """l3_db.prevent_l3_port_deletion: a live router's or floating IP's port stays."""
        owner = str(port.get("device_owner", ""))
        kind = "floatingips" if owner == "network:floatingip" else "routers"
        if owner not in ROUTER_OWNED or self.repo.get(kind, str(port.get("device_id"))) is None:
            return
        raise ApiFault(
            "ServicePortInUse",
            409,
            f"Port {port['id']} cannot be deleted directly via the port API: "
            f"has device owner {owner}.",
        )

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        self.delete_doc(
            ctx,
            resource_id,
            if_match,
            in_use=lambda doc: self._guard_service_port(doc.value),
            remove=self._remove,
        )

    def _remove(self, doc: Doc, change: Change) -> None:
        """Its claims, the port, its endpoint; its floating IPs survive, disassociated."""
        port_id = doc.value["id"]
        self._claim_addresses(change, doc.value, parse_held(doc.value.get("fixed_ips")), [])
        self.held.index(change, None, doc.value)
        change.delete(key("macs", doc.value["network_id"], doc.value["mac_address"]))
        change.delete(doc.key)
        self._write_endpoint(change, doc.value, None)
        for index in self.repo.list("fip_by_port", port_id):
            change.delete(index.key)
            fip = self.repo.get("floatingips", str(index.value.get("id")))
            if fip is not None:
                change.depends_on(fip)
                loose = {
                    "port_id": None,
                    "fixed_ip_address": None,
                    "router_id": None,
                    "status": "DOWN",
                }
                change.put(fip.key, bump({**fip.value, **loose}))

    # service ports (routers, floating IPs) -------------------------------------------
    def create_service_port(
        self, change: Change, net: Doc, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """A port another resource owns, created inside that resource's transaction.

        Router gateways and interfaces and floating IPs hold their addresses through a
        port, as in Neutron; writing it into the caller's ``change`` makes the address
        claims commit or fail with the router or floating IP. ``fields`` names the owner
        (``project_id``, ``device_id``, ``device_owner``) and may ask for ``fixed_ips``;
        the rest takes the port defaults. Such ports are unbound, with no security
        groups and port security off (Neutron's trusted ``network:*`` ports).
        """
        data = {n: a.default_value() for n, a in ATTRS.items() if not a.required}
        data.update(network_id=net.value["id"], port_security_enabled=False)
        data.update(security_groups=[], **fields)
        owner = Context(str(data["project_id"]), frozenset({"admin"}))  # elevated
        doc = new_doc(owner, data, revision=1)  # as a port created through the API
        doc["mac_address"] = self._claim_mac(change, net.value["id"], None, doc["id"])
        resolver = self._resolver(
            net, doc["id"], change, str(doc["mac_address"]), str(doc["project_id"])
        )
        requested = doc.get("fixed_ips")
        fixed = resolver.automatic() if requested is None else resolver.requested(requested)
        doc["fixed_ips"] = [ip.as_json() for ip in fixed]
        self._claim_addresses(change, doc, [], fixed)
        self._binding(doc)
        change.claim(key(self.kind, doc["id"]), doc)
        return doc


__all__ = ["ATTRS", "PortService", "vif_details"]
