"""Networks: the container of subnets and ports.

In a routed network a "network" is not a layer-2 segment; it groups subnets (address
ranges) for IPAM and policy. ``router:external`` marks the network floating IPs come
from; ``shared`` lets every project attach ports; each flag is a wildcard RBAC policy, and
a policy may grant either to one project instead (:mod:`routeplane.services.core.
network_access`). Both flags are admin-only settings, as are
the ``provider:*`` attributes (kept for clients that send them; only ``local`` and
``flat`` are accepted, the types of the reference deployment). Creating a network
creates its project's default security group if there is none yet, as Neutron does.
Deleting a network deletes its subnets and, for an external network, its floating IPs
that are not associated (Neutron's ``delete_disassociated_floatingips``); it is refused
while user ports remain, an associated floating IP's among them (the 409 names them,
oldest first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routeplane.services.attributes import (
    Attr,
    policy_denied,
    string,
    string_or_none,
    to_boolean,
    to_int,
)
from routeplane.services.common import new_doc, require_write, standard_attrs
from routeplane.services.context import Context
from routeplane.services.core import network_access
from routeplane.services.core.endpoint_refresh import (
    NETWORK_FIELDS,
    PORTS_PER_TXN,
    add_rewrites,
    changed,
    converge,
    holders,
    rewrites,
)
from routeplane.services.documents import DocService
from routeplane.services.errors import ApiFault, invalid_input
from routeplane.services.repo import Change, Doc, Outcome, Repo, key, prefix
from routeplane.services.security import port_security
from routeplane.services.security.groups import SecurityGroupService

NETWORK_TYPES = ("local", "flat")

ATTRS: dict[str, Attr] = {
    **standard_attrs(),
    "admin_state_up": Attr(default=True, convert=to_boolean, sort=True),
    "status": Attr(post=False, put=False, default="ACTIVE", sort=True),
    "subnets": Attr(post=False, put=False, default=list),
    "shared": Attr(default=False, convert=to_boolean, sort=True),
    "router:external": Attr(default=False, convert=to_boolean),
    "mtu": Attr(default=1500, convert=to_int, sort=True),
    "port_security_enabled": Attr(default=True, convert=to_boolean),
    "availability_zone_hints": Attr(default=list, put=False, filter=False),
    "availability_zones": Attr(post=False, put=False, default=list, filter=False),
    "ipv4_address_scope": Attr(post=False, put=False, default=None),
    "ipv6_address_scope": Attr(post=False, put=False, default=None),
    "is_default": Attr(default=False, convert=to_boolean),
    "provider:network_type": Attr(
        put=False, default="local", validate=string(255), admin_only=True
    ),
    "provider:physical_network": Attr(
        put=False, default=None, validate=string_or_none(64), admin_only=True
    ),
    "provider:segmentation_id": Attr(
        put=False, default=None, convert=lambda v: None if v is None else to_int(v), admin_only=True
    ),
    "vlan_transparent": Attr(put=False, default=False, convert=to_boolean),
    "qinq": Attr(put=False, default=False, convert=to_boolean),
    # ours, from extensions the reference deployment does not load: dns-integration
    # and l2_adjacency
    "dns_domain": Attr(default="", validate=string(255)),
    "l2_adjacency": Attr(post=False, put=False, default=True),
}
ADMIN_ONLY_SETTINGS = ("shared", "router:external", "is_default")
# Ports that belong to the network itself, deleted along with it.
SERVICE_OWNERS = ("network:dhcp", "network:router_interface_distributed")
# What else a network's deletion removes, in its transaction: from the network as read
# and the change being built, the ids of the ports it deleted with them.
Dependent = Callable[[Doc, Change], set[str]]


IPV4_MIN_MTU = 68
IPV6_MIN_MTU = 1280


def mtu_conflict(net: dict[str, Any], versions: set[int]) -> ApiFault | None:
    """Neutron's NetworkMTUSubnetConflict: a network with subnets of ``versions`` needs
    an MTU of at least 68 (any subnet) or 1280 (an IPv6 one)."""
    mtu = int(net.get("mtu") or 0)
    if not mtu or mtu >= IPV6_MIN_MTU or not versions:
        return None
    needed = IPV4_MIN_MTU if mtu < IPV4_MIN_MTU else IPV6_MIN_MTU if 6 in versions else 0
    if not needed:
        return None
    return ApiFault(
        "NetworkMTUSubnetConflict",
        409,
        f"MTU of {net['id']} is not valid, subnet requires a minimum of {needed}",
    )


class NetworkService(DocService):
    name = "network"
    collection = "networks"
    kind = "networks"
    attrs = ATTRS
    not_found_type = "NetworkNotFound"
    not_found_message = "Network {id} could not be found."

    def __init__(self, repo: Repo) -> None:
        super().__init__(repo)
        self.groups = SecurityGroupService(repo)
        self.dependents: list[Dependent] = []  # e.g. an external network's floating IPs

    def shared_with(self, ctx: Context, doc: dict[str, Any]) -> bool:
        return network_access.has(ctx, self.repo, doc, network_access.ACTIONS)

    def may_attach(self, ctx: Context, doc: dict[str, Any]) -> bool:
        """Whether the caller may put a port on the network: its own, shared with its
        project (flag or policy), or external to every project (floating IP and gateway
        ports; not one external to the caller's project only)."""
        return network_access.owns(ctx, doc) or network_access.has(
            ctx, self.repo, doc, (network_access.SHARED,), external_to_all=True
        )

    def render(self, ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
        """``shared`` as Neutron shows it: also true for a project a policy shares it with."""
        shown = super().render(ctx, doc)
        if not shown.get("shared") and not network_access.owns(ctx, doc):
            held = network_access.grants(self.repo, str(doc["id"]))
            shown["shared"] = (network_access.SHARED, ctx.project_id) in held
        return shown

    def _check_admin_settings(
        self, ctx: Context, data: dict[str, Any], action: str, *, create: bool
    ) -> None:
        """Neutron's policy looks at these on create when not default, on update when sent."""
        for name in ADMIN_ONLY_SETTINGS:
            if ctx.is_admin or name not in data:
                continue
            if not create or data[name] != ATTRS[name].default:
                raise policy_denied(action, name)

    def create(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        require_write(ctx, "create_network")
        self._check_admin_settings(ctx, data, "create_network", create=True)
        port_security.may_set(ctx, "create_network", data.get("port_security_enabled"))
        network_type = data.get("provider:network_type", "local")
        if network_type not in NETWORK_TYPES:
            raise invalid_input(f"network_type value '{network_type}' not supported")
        # Neutron writes a new network twice (its extensions), so it starts at revision 1.
        doc = new_doc(ctx, data, revision=1)
        doc["subnets"] = []
        doc["status"] = "ACTIVE"

        def use_case() -> Outcome[None]:
            change = Change()
            change.claim(key(self.kind, doc["id"]), doc)
            network_access.wildcards_for(self.repo, change, doc, None)
            self.groups.default_group(doc["project_id"], change)
            return Outcome(change, None)

        self.repo.run(use_case)
        return self.render(ctx, doc)

    def update(
        self, ctx: Context, resource_id: str, data: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        updated = self.update_doc(
            ctx,
            resource_id,
            if_match,
            lambda doc, change: self._apply(doc, change, data),
            authorize=lambda doc: self._authorize(ctx, doc, data),
        )
        if any(f in data for f in NETWORK_FIELDS):
            converge(self.repo, *updated.get("subnets", []))  # what one transaction missed
        return self.render(ctx, updated)

    def _apply(self, doc: Doc, change: Change, data: dict[str, Any]) -> dict[str, Any]:
        """The network changed: an MTU its subnets allow; unsharing only while no other
        project uses it, and the wildcard policies follow the flags."""
        merged = {**doc.value, **data}
        if "mtu" in data:
            versions: set[int] = set()
            for subnet_id in doc.value.get("subnets", []):
                subnet = self.repo.get("subnets", subnet_id)
                if subnet is not None:
                    versions.add(int(subnet.value.get("ip_version", 4)))
            conflict = mtu_conflict(merged, versions)
            if conflict is not None:
                raise conflict
        if doc.value.get("shared") and not merged.get("shared"):
            held = network_access.grants(self.repo, doc.value["id"])
            remaining = set(held) - {(network_access.SHARED, network_access.WILDCARD)}
            if network_access.users_left_out(self.repo, doc.value, remaining):
                raise ApiFault(
                    "InvalidSharedSetting",
                    409,
                    "Unable to reconfigure sharing settings for network "
                    f"{doc.value.get('name') or doc.value['id']}. Multiple projects are using it.",
                )
        network_access.wildcards_for(self.repo, change, merged, doc.value)
        return merged

    def _authorize(self, ctx: Context, doc: Doc, data: dict[str, Any]) -> None:
        self._check_admin_settings(ctx, data, "update_network", create=False)
        current = bool(doc.value.get("port_security_enabled", True))
        port_security.may_set(ctx, "update_network", data.get("port_security_enabled"), current)

    def after_update(self, change: Change, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Subnets show their network's router:external (subnet-external-network); the
        endpoint records of its bound ports follow its MTU (as many as fit)."""
        if changed(NETWORK_FIELDS, old, new):
            ports = holders(self.repo, *old.get("subnets", []))
            add_rewrites(change, rewrites(self.repo, ports, {old["id"]: new})[:PORTS_PER_TXN])
        if bool(new.get("router:external")) == bool(old.get("router:external")):
            return
        for subnet_id in old.get("subnets", []):
            subnet = self.repo.get("subnets", subnet_id)
            if subnet is not None:
                change.depends_on(subnet)
                external = bool(new["router:external"])
                change.put(subnet.key, {**subnet.value, "router:external": external})

    def delete(self, ctx: Context, resource_id: str, if_match: int | None) -> None:
        self.delete_doc(ctx, resource_id, if_match, remove=self._remove)

    def _ports_in_use(self, doc: Doc, released: set[str]) -> None:
        """The network's own ports go with it, and those its dependents ``released``; any
        other keeps it (oldest named first)."""
        network_id = doc.value["id"]
        in_use = [
            kv.value
            for kv in sorted(
                self.repo.store.range(prefix("ports")).items,
                key=lambda kv: kv.create_revision,  # oldest first, as Neutron lists them
            )
            if isinstance(kv.value, dict)
            and kv.value.get("network_id") == network_id
            and kv.value.get("device_owner") not in SERVICE_OWNERS
            and kv.value.get("id") not in released
        ]
        if in_use:
            raise ApiFault(
                "NetworkInUse",
                409,
                f"Unable to complete operation on network {network_id}. "
                "There are one or more ports still in use on the network, id for these "
                f"ports is: {','.join(str(p['id']) for p in in_use)}.",
            )

    def _remove(self, doc: Doc, change: Change) -> None:
        network_access.drop_all(self.repo, change, doc.value["id"])
        released: set[str] = set()
        for dependent in self.dependents:
            released |= dependent(doc, change)
        self._ports_in_use(doc, released)
        for subnet_id in doc.value.get("subnets", []):
            subnet = self.repo.get("subnets", subnet_id)
            change.depends_on(subnet, key("subnets", subnet_id))
            if subnet is not None:
                change.delete(subnet.key)


__all__ = ["ATTRS", "NetworkService"]
