"""What a port request may say, checked as Neutron checks it, and the port filters.

The attribute table of ports (``ATTRS``) with the validators neutron-lib applies to MAC
addresses and ``allowed_address_pairs`` (each raising Neutron's own fault and message),
how stored pairs take the port's MAC, and the ``fixed_ips=`` list filter. Pure: no
store, no policy; the port service (``ports``) decides what a request does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from routeplane.services.attributes import Attr, is_uuid, string, to_boolean, uuid_list
from routeplane.services.common import standard_attrs
from routeplane.services.core.fixed_ips import check_format
from routeplane.services.errors import ApiFault, bad_request

MAC_CHARS = set("0123456789abcdef:")
INVALID_MACS = ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff")
MAX_ADDRESS_PAIRS = 10


def _mac(value: Any) -> str | None:
    if (
        not isinstance(value, str)
        or len(value) != 17
        or not set(value.lower()) <= MAC_CHARS
        or value.lower() in INVALID_MACS
    ):
        return f"'{value}' is not a valid MAC address"
    return None


def _pairs(value: Any) -> list[dict[str, Any]]:
    """neutron-lib's allowed-address-pairs validator; it raises its own faults."""
    if not isinstance(value, list):
        raise bad_request("Allowed address pairs must be a list.")
    if len(value) > MAX_ADDRESS_PAIRS:
        raise ApiFault(
            "AllowedAddressPairExhausted",
            400,
            f"The number of allowed address pair exceeds the maximum {MAX_ADDRESS_PAIRS}.",
        )
    seen: set[tuple[Any, Any]] = set()
    for pair in value:
        if not isinstance(pair, dict):
            raise bad_request(
                f"Invalid input for allowed_address_pairs. Reason: '{pair}' is not a dictionary."
            )
        if "mac_address" in pair:
            reason = _mac(pair["mac_address"])
            if reason:
                raise bad_request(reason)
        if "ip_address" not in pair:
            raise ApiFault(
                "AllowedAddressPairsMissingIP", 400, "AllowedAddressPair must contain ip_address"
            )
        mac, address = pair.get("mac_address"), pair["ip_address"]
        if (mac, address) in seen:
            raise ApiFault(
                "DuplicateAddressPairInRequest",
                400,
                f"Request contains duplicate address pair: mac_address {mac} ip_address {address}.",
            )
        seen.add((mac, address))
        extra = set(pair) - {"mac_address", "ip_address"}
        if extra:
            raise bad_request(f"Unrecognized attribute(s) '{', '.join(sorted(extra))}'")
        try:
            if not isinstance(address, str):
                raise ValueError
            if "/" in address:
                ipaddress.ip_network(address, strict=False)
            else:
                ipaddress.ip_address(address)
        except ValueError:
            kind = "IP subnet" if isinstance(address, str) and "/" in address else "IP address"
            raise bad_request(f"'{address}' is not a valid {kind}") from None
    return value


def with_macs(pairs: list[dict[str, Any]], mac: str) -> list[dict[str, Any]]:
    """Pairs as stored and shown: a pair without a MAC takes the port's."""
    return [
        {"ip_address": p["ip_address"], "mac_address": p.get("mac_address") or mac} for p in pairs
    ]


ATTRS: dict[str, Attr] = {
    **standard_attrs(),
    "network_id": Attr(put=False, validate=is_uuid, sort=True),
    "mac_address": Attr(default=None, validate=lambda v: None if v is None else _mac(v), sort=True),
    "admin_state_up": Attr(default=True, convert=to_boolean, sort=True),
    "status": Attr(post=False, put=False, default="DOWN", sort=True),
    "device_id": Attr(default="", validate=string(255), sort=True),
    "device_owner": Attr(default="", validate=string(255), sort=True),
    "fixed_ips": Attr(default=None, validate=check_format),
    "allowed_address_pairs": Attr(default=list, convert=_pairs, filter=False),
    "security_groups": Attr(
        default=None, convert=lambda v: [] if v is None else v, validate=uuid_list
    ),
    "port_security_enabled": Attr(
        default=None, convert=lambda v: None if v is None else to_boolean(v)
    ),
    # null unbinds, as "" does (Nova's unbind sends null)
    "binding:host_id": Attr(
        default="", convert=lambda v: "" if v is None else v, validate=string(255), admin_only=True
    ),
    "binding:vif_type": Attr(post=False, put=False, default="unbound", admin_only=True),
    "binding:vif_details": Attr(post=False, put=False, default=dict, admin_only=True, filter=False),
    "binding:vnic_type": Attr(default="normal", validate=string(64)),
    "binding:profile": Attr(default=dict, admin_only=True, filter=False),
    "extra_dhcp_opts": Attr(default=list, filter=False),
    # ours, from extensions the reference deployment does not load: ip_allocation,
    # dns-integration and dns-domain-ports
    "ip_allocation": Attr(post=False, put=False, default="immediate", sort=True),
    "dns_name": Attr(default="", validate=string(255)),
    "dns_assignment": Attr(post=False, put=False, default=list, filter=False),
    "dns_domain": Attr(default="", validate=string(255)),
}


def fixed_ips_match(item: Mapping[str, Any], wanted: list[str]) -> bool:
    """``fixed_ips=ip_address=X`` / ``subnet_id=S`` / ``ip_address_substr=Y``: any of each kind.

    Other keys (``fixed_ips=bogus=1``) are ignored, as Neutron ignores them.
    """
    asked: dict[str, list[str]] = {}
    for spec in wanted:
        name, _, value = spec.partition("=")
        if name in ("ip_address", "subnet_id", "ip_address_substr"):
            asked.setdefault(name, []).append(value)
    held = item.get("fixed_ips") or []
    for name, values in asked.items():
        if name == "ip_address_substr":
            ok = any(v in ip["ip_address"] for ip in held for v in values)
        else:
            ok = any(str(ip.get(name)) in values for ip in held)
        if not ok:
            return False
    return True


__all__ = ["ATTRS", "MAX_ADDRESS_PAIRS", "fixed_ips_match", "with_macs"]
