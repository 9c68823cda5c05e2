"""The router resource's shape: attributes, request checks, and its service ports.

Separate from :mod:`routeplane.services.l3.routers` so that the rules a request must pass (with
Neutron's messages, from neutron-lib's ``l3`` definitions and validators) read as one
table, apart from what a router change writes. Also here: how a port a router or a
floating IP owns is deleted inside the owner's transaction, shared by both services.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from routeplane.services.attributes import (
    Attr,
    Invalid,
    ip_address,
    is_uuid,
    to_boolean,
)
from routeplane.services.common import bump, standard_attrs
from routeplane.services.context import Context
from routeplane.services.core.endpoints import endpoint_key, write_members
from routeplane.services.core.fixed_ips import check_format
from routeplane.services.errors import ApiFault, bad_resource_request
from routeplane.services.repo import Change, Doc, Repo, key

GATEWAY_OWNER = "network:router_gateway"
INTERFACE_OWNER = "network:router_interface"
FLOATINGIP_OWNER = "network:floatingip"
_GATEWAY_KEYS = ("network_id", "enable_snat", "external_fixed_ips")


def _gateway_info(value: Any) -> str | None:
    """neutron-lib ``type:dict_or_nodata`` over the gateway's keys; ``{}``/null clear it."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        return f"'{value}' is not a dictionary"
    if "network_id" not in value:
        return (
            "Validation of dictionary's keys failed. Expected keys: {'network_id'} "
            f"Provided keys: {set(value)}"
        )
    unexpected = [k for k in value if k not in _GATEWAY_KEYS]
    if unexpected:
        return f"Unexpected keys supplied: {', '.join(unexpected)}"
    reason = is_uuid(value["network_id"])
    if reason is None and "enable_snat" in value:
        try:
            to_boolean(value["enable_snat"])
        except Invalid as exc:
            reason = str(exc)
    if reason is None and value.get("external_fixed_ips") is not None:
        reason = check_format(value["external_fixed_ips"])
    return reason


def _none_to_empty(value: Any) -> Any:
    """neutron-lib ``convert_none_to_empty_list``: ``"routes": null`` clears them."""
    return [] if value is None else value


def _routes(value: Any) -> str | None:
    """neutron-lib ``type:hostroutes``."""
    if not isinstance(value, list):
        return f"Invalid data format for hostroute: '{value}'"
    seen: list[Any] = []
    for route in value:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            return (
                "Validation of dictionary's keys failed. Expected keys: "
                f"['destination', 'nexthop'] Provided keys: {route}"
            )
        try:
            ipaddress.ip_network(str(route["destination"]))
        except ValueError:
            return f"'{route['destination']}' is not a valid IP subnet"
        reason = ip_address(route["nexthop"])
        if reason:
            return reason
        if route in seen:
            return f"Duplicate hostroute '{route}'"
        seen.append(route)
    return None


ATTRS: dict[str, Attr] = {
    **standard_attrs(),
    "admin_state_up": Attr(default=True, convert=to_boolean, sort=True),
    "status": Attr(post=False, put=False, default="ACTIVE", sort=True),
    "external_gateway_info": Attr(default=None, validate=_gateway_info, filter=False),
    "routes": Attr(
        post=False, default=list, convert=_none_to_empty, validate=_routes, filter=False
    ),
    "distributed": Attr(default=False, convert=to_boolean, admin_only=True),
    "ha": Attr(default=False, convert=to_boolean, admin_only=True),
    "availability_zone_hints": Attr(put=False, default=list, filter=False),
    "availability_zones": Attr(post=False, put=False, default=list, filter=False),
    "flavor_id": Attr(put=False, default=None),
}
# The order Neutron answers with (oracle transcript, section 10).
FIELDS = (
    "id", "name", "project_id", "admin_state_up", "status", "external_gateway_info",
    "description", "availability_zones", "distributed", "ha", "availability_zone_hints",
    "routes", "flavor_id", "tags", "created_at", "updated_at", "revision_number", "tenant_id",
)  # fmt: skip


def gateway_policy(ctx: Context, gateway: dict[str, Any] | None, action: str) -> None:
    """Only admins choose the gateway's SNAT mode and addresses (Neutron's policy)."""
    for name in ("enable_snat", "external_fixed_ips"):
        if gateway and name in gateway and not ctx.is_admin:
            raise ApiFault(
                "PolicyNotAuthorized",
                403,
                f"(rule:{action}:external_gateway_info:{name}) is disallowed by policy",
            )


def interface_request(body: dict[str, Any], *, removal: bool) -> tuple[str | None, str | None]:
    """The ``(port_id, subnet_id)`` of an add/remove_router_interface body."""
    has_port, has_subnet = "port_id" in body, "subnet_id" in body
    if not (has_port or has_subnet):
        raise bad_resource_request("router", "Either subnet_id or port_id must be specified")
    for name in ("port_id", "subnet_id"):
        reason = is_uuid(body[name]) if name in body else None
        if reason:
            raise bad_resource_request("router", reason)
    if not removal and has_port and has_subnet:
        raise bad_resource_request("router", "Cannot specify both subnet-id and port-id")
    port_id = str(body["port_id"]) if has_port else None
    subnet_id = str(body["subnet_id"]) if has_subnet else None
    return port_id, subnet_id


def interface_info(
    router_id: str, port: dict[str, Any], subnet_id: str, subnet_ids: list[str]
) -> dict[str, Any]:
    """The bare (unwrapped) answer of add/remove_router_interface."""
    return {
        "id": router_id,
        "project_id": port["project_id"],
        "port_id": port["id"],
        "network_id": port["network_id"],
        "subnet_id": subnet_id,
        "subnet_ids": subnet_ids,
    }


def external_ips_changed(port: dict[str, Any], wanted: list[dict[str, Any]]) -> bool:
    """Neutron's ``_check_for_external_ip_change``: other subnets, or other addresses."""
    held = port.get("fixed_ips", [])
    if {ip["subnet_id"] for ip in held} != {w["subnet_id"] for w in wanted if w.get("subnet_id")}:
        return True
    return {ip["ip_address"] for ip in held} != {
        w["ip_address"] for w in wanted if w.get("ip_address")
    }


def drop_service_port(repo: Repo, change: Change, port: Doc) -> None:
    """Delete a port a router or floating IP owns, inside the owner's transaction: its
    address and MAC claims, its endpoint record if bound, and (as a port delete does) the
    association of any floating IP pointing at it."""
    value = port.value
    change.depends_on(port)
    for ip in value.get("fixed_ips", []):
        change.delete(key("ipam", ip["subnet_id"], ip["ip_address"]))
    change.delete(key("macs", value["network_id"], value["mac_address"]))
    if value.get("binding:host_id"):
        change.delete(endpoint_key(value["binding:host_id"], value["id"]))
    write_members(change, value, None)
    for index in repo.list("fip_by_port", value["id"]):
        change.delete(index.key)
        fip = repo.get("floatingips", str(index.value.get("id")))
        if fip is not None:
            change.depends_on(fip)
            loose = {"port_id": None, "fixed_ip_address": None, "router_id": None, "status": "DOWN"}
            change.put(fip.key, bump({**fip.value, **loose}))
    change.delete(port.key)


__all__ = [
    "ATTRS",
    "FIELDS",
    "FLOATINGIP_OWNER",
    "GATEWAY_OWNER",
    "INTERFACE_OWNER",
    "drop_service_port",
    "external_ips_changed",
    "gateway_policy",
    "interface_info",
    "interface_request",
]
