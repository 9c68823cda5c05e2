"""Security-group rules: checking and normalising a rule as Neutron does.

Order and texts follow securitygroups_db._validate_security_group_rule: the attribute
converters first (protocol by name or 0-255, ports 0-65535, ethertype in any case,
``remote_ip_prefix`` as a CIDR), then the full range 1-65535 becomes "any port", the
port range is checked against the protocol (TCP-like protocols need both ends, non-zero
and ordered; ICMP type and code are 0-255, a code needs a type), the prefix must match the
ethertype, and only one remote may be given. ``remote_ip_prefix`` keeps what was sent
(``10.0.0.1`` → ``10.0.0.1/32``, host bits stay) and ``normalized_cidr`` is its network.
Two rules are duplicates when every compared field is equal (``0.0.0.0/0`` and ``::/0``
count as no prefix, protocols compare by number).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from routeplane.services.attributes import Attr, is_uuid, one_of, uuid_or_none
from routeplane.services.common import standard_attrs
from routeplane.services.errors import ApiFault

PROTOCOLS = {
    "ah": 51,
    "dccp": 33,
    "egp": 8,
    "esp": 50,
    "gre": 47,
    "hopopt": 0,
    "icmp": 1,
    "igmp": 2,
    "ip": 0,
    "ipip": 4,
    "ipv6-encap": 41,
    "ipv6-frag": 44,
    "ipv6-icmp": 58,
    "icmpv6": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "ipv6-route": 43,
    "ospf": 89,
    "pgm": 113,
    "rsvp": 46,
    "sctp": 132,
    "tcp": 6,
    "udp": 17,
    "udplite": 136,
    "vrrp": 112,
}
IPV6_ONLY = {
    "ipv6-encap",
    "ipv6-frag",
    "ipv6-icmp",
    "icmpv6",
    "ipv6-nonxt",
    "ipv6-opts",
    "ipv6-route",
    *("41", "44", "58", "59", "60", "43"),
}

SUPPORTED_PROTOCOLS = (
    "(None, 'any', 'ah', 'dccp', 'egp', 'esp', 'gre', 'hopopt', 'icmp', 'igmp', 'ip', "
    "'ipip', 'ipv6-encap', 'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', "
    "'ipv6-route', 'ospf', 'pgm', 'rsvp', 'sctp', 'tcp', 'udp', 'udplite', 'vrrp')"
)
PORT_PROTOCOL_NUMBERS = (6, 17, 33, 132, 136)  # tcp, udp, dccp, sctp, udplite
ICMP_NUMBERS = (1, 58)


def _port(value: Any) -> int | None:
    """neutron-lib's convert_validate_port_value."""
    if value is None:
        return None
    try:
        if isinstance(value, bool | float):
            raise ValueError
        port = int(value)
        if not 0 <= port <= 65535:
            raise ValueError
    except (TypeError, ValueError):
        raise ApiFault(
            "SecurityGroupInvalidPortValue", 400, f"Invalid value for port {value}"
        ) from None
    return port


def _protocol(value: Any) -> str | None:
    """neutron-lib's convert_protocol: a known name (lower case) or a number 0-255."""
    if value is None:
        return None
    text = str(value)
    if text.isdigit() and 0 <= int(text) <= 255:
        return text
    if text.lower() in PROTOCOLS or text.lower() == "any":
        return text.lower()
    raise ApiFault(
        "SecurityGroupRuleInvalidProtocol",
        400,
        f"Security group rule protocol {value} not supported. Only protocol values "
        f"{SUPPORTED_PROTOCOLS} and integer representations [0 to 255] are supported.",
    )


def _ethertype(value: Any) -> str:
    if value is None:
        return "IPv4"
    for known in ("IPv4", "IPv6"):
        if isinstance(value, str) and value.lower() == known.lower():
            return known
    raise ApiFault(
        "SecurityGroupRuleInvalidEtherType",
        400,
        f"Security group rule for ethertype '{value}' not supported. Allowed values are ['IPv4', 'IPv6'].",
    )


def _prefix(value: Any) -> str | None:
    """neutron-lib's convert_ip_prefix_to_cidr: the prefix as sent, with a mask."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_interface(str(value).strip()))
    except ValueError:
        raise ApiFault("InvalidCIDR", 400, f"Invalid CIDR {value} given as IP prefix.") from None


RULE_ATTRS: dict[str, Attr] = {
    **{k: v for k, v in standard_attrs().items() if k not in ("name", "tags")},
    "security_group_id": Attr(put=False, validate=is_uuid),
    "direction": Attr(put=False, validate=one_of("ingress", "egress")),
    "ethertype": Attr(put=False, default="IPv4", convert=_ethertype),
    "protocol": Attr(put=False, default=None, convert=_protocol),
    "port_range_min": Attr(put=False, default=None, convert=_port),
    "port_range_max": Attr(put=False, default=None, convert=_port),
    "remote_ip_prefix": Attr(put=False, default=None, convert=_prefix),
    # not validated (as in neutron-lib): a group that is no UUID is a group not found
    "remote_group_id": Attr(put=False, default=None),
    "remote_address_group_id": Attr(put=False, default=None, validate=uuid_or_none),
    "normalized_cidr": Attr(post=False, put=False, default=None),
    "belongs_to_default_sg": Attr(post=False, put=False, default=False),
}


def _number(protocol: str | None) -> int | None:
    if protocol is None or protocol == "any":
        return None
    return int(protocol) if protocol.isdigit() else PROTOCOLS[protocol]


def _check_ports(protocol: str | None, low: int | None, high: int | None) -> None:
    """securitygroups_db._validate_port_range."""
    if low is None and high is None:
        return
    number = _number(protocol)
    if number is None:
        raise ApiFault(
            "SecurityGroupProtocolRequiredWithPorts",
            400,
            "Must also specify protocol if port range is given.",
        )
    if number in PORT_PROTOCOL_NUMBERS:
        if low == 0 or high == 0:
            raise ApiFault("SecurityGroupInvalidPortValue", 400, "Invalid value for port 0")
        if low is None or high is None or low > high:
            raise ApiFault(
                "SecurityGroupInvalidPortRange",
                400,
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )
    elif number in ICMP_NUMBERS:
        for attr, what, value in (
            ("port_range_min", "type", low),
            ("port_range_max", "code", high),
        ):
            if value is not None and not 0 <= value <= 255:
                raise ApiFault(
                    "SecurityGroupInvalidIcmpValue",
                    400,
                    f"Invalid value for ICMP {what} ({attr}) {value}. It must be 0 to 255.",
                )
        if low is None:
            raise ApiFault(
                "SecurityGroupMissingIcmpType",
                400,
                f"ICMP code (port-range-max) {high} is provided but ICMP type (port-range-min) is missing.",
            )
    else:
        raise ApiFault(
            "SecurityGroupInvalidProtocolForPort",
            400,
            f"Invalid protocol {number} for port range, only supported for "
            "DCCP, SCTP, TCP, UDP, UDPLITE protocols.",
        )


def check_rule(data: dict[str, Any]) -> dict[str, Any]:
    """A converted rule body (see RULE_ATTRS) → the fields of the rule to store."""
    ethertype = _ethertype(data.get("ethertype"))
    protocol = data.get("protocol")
    if ethertype == "IPv6" and protocol in ("icmp", "1"):
        protocol = "ipv6-icmp" if protocol == "icmp" else "58"
    low, high = data.get("port_range_min"), data.get("port_range_max")
    if low == 1 and high == 65535:  # the whole range is "any port"
        low = high = None
    _check_ports(protocol, low, high)
    prefix = data.get("remote_ip_prefix")
    normalized = None
    if prefix:
        network = ipaddress.ip_interface(prefix).network
        if f"IPv{network.version}" != ethertype:
            raise ApiFault(
                "SecurityGroupRuleParameterConflict",
                400,
                f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
            )
        normalized = str(network)
    if ethertype == "IPv4" and protocol in IPV6_ONLY:
        raise ApiFault(
            "SecurityGroupEthertypeConflictWithProtocol",
            400,
            f"Invalid ethertype {ethertype} for protocol {protocol}.",
        )
    remotes = [
        n for n in ("remote_ip_prefix", "remote_group_id", "remote_address_group_id") if data.get(n)
    ]
    if len(remotes) > 1:
        raise ApiFault(
            "SecurityGroupMultipleRemoteEntites",
            400,
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
        )
    return {
        "direction": data["direction"],
        "ethertype": ethertype,
        "protocol": protocol,
        "port_range_min": low,
        "port_range_max": high,
        "remote_ip_prefix": prefix,
        "normalized_cidr": normalized,
        "remote_group_id": data.get("remote_group_id"),
        "remote_address_group_id": data.get("remote_address_group_id"),
        "description": data.get("description", "") or "",
    }


def _signature(rule: dict[str, Any]) -> tuple[Any, ...]:
    """securitygroups_db._rule_to_key, without the group (rules are compared per group)."""
    prefix = rule.get("remote_ip_prefix")
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None
    return (
        rule["direction"],
        rule["ethertype"],
        rule.get("port_range_max"),
        rule.get("port_range_min"),
        _number(rule.get("protocol")),
        rule.get("remote_group_id"),
        rule.get("remote_address_group_id"),
        prefix,
    )


def duplicate_of(rule: dict[str, Any], existing: list[dict[str, Any]]) -> str | None:
    mine = _signature(rule)
    for other in existing:
        if _signature(other) == mine:
            return str(other["id"])
    return None


__all__ = ["RULE_ATTRS", "check_rule", "duplicate_of"]
