"""The lease decision: what the host answers a DHCP request on a tap. Pure.

Stateless by design: a port's lease is its fixed IP, so the answer is a function of the
request and the endpoint records on the tap it came in on — no lease database to lose
on a restart, nothing to expire, and a changed subnet reaches the next request because
the records changed. Only a record on *this* tap whose MAC is the request's ``chaddr``
gets an answer; the address is the port's first IPv4 fixed IP, on a subnet with DHCP
enabled.

What is handed out (Neutron's DHCP agent hands out the same): the address with the whole
subnet's mask, router = the subnet's gateway (the host stands for it: the server
identifier is that address, so a renewal unicast to it comes to the host), DNS servers,
broadcast address, the network's MTU, the hostname, lease/renewal/rebinding times, the
subnet's host routes as classless static routes (option 121, the default route
appended, since a client taking 121 ignores option 3), then the port's
``extra_dhcp_opts`` (IPv4 ones), which override the above as in Neutron.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from routeplane.dataplane import dhcp_packet as wire
from routeplane.model.endpoint import Addressing, DhcpOption, EndpointRecord

LEASE_TIME = 86400  # Neutron's dhcp_lease_duration default
FALLBACK_SERVER = ipaddress.IPv4Address("169.254.169.254")  # a subnet without a gateway

# Neutron's (dnsmasq's) option names: code and how the value is written
_IPS, _U16, _U32, _TEXT = "ips", "u16", "u32", "text"
NAMED_OPTIONS: dict[str, tuple[int, str]] = {
    "netmask": (1, _IPS),
    "router": (3, _IPS),
    "dns-server": (6, _IPS),
    "log-server": (7, _IPS),
    "lpr-server": (9, _IPS),
    "hostname": (12, _TEXT),
    "domain-name": (15, _TEXT),
    "root-path": (17, _TEXT),
    "mtu": (26, _U16),
    "broadcast": (28, _IPS),
    "ntp-server": (42, _IPS),
    "netbios-ns": (44, _IPS),
    "lease-time": (51, _U32),
    "T1": (58, _U32),
    "T2": (59, _U32),
    "tftp-server": (66, _TEXT),
    "bootfile-name": (67, _TEXT),
}
_KIND_BY_CODE = dict(NAMED_OPTIONS.values())


def _ips(addresses: Iterable[str]) -> bytes:
    return b"".join(ipaddress.IPv4Address(a).packed for a in addresses)


def option_value(option: DhcpOption) -> tuple[int, bytes] | None:
    """One ``extra_dhcp_opts`` entry as (code, bytes), or None: an IPv6 option, a name
    not known, or a value that does not fit its option. A numeric name whose kind is not
    known carries addresses when every part is one, else the text."""
    name = option["opt_name"].removeprefix("option:")
    if option.get("ip_version", 4) != 4:
        return None
    if name.isdigit() and 0 < int(name) < 255:
        code = int(name)
        kind = _KIND_BY_CODE.get(code, "")
    elif name in NAMED_OPTIONS:
        code, kind = NAMED_OPTIONS[name]
    else:
        return None
    value = option["opt_value"]
    parts = [p.strip() for p in value.split(",") if p.strip()]
    try:
        if kind == _IPS or (not kind and parts and all(_is_v4(p) for p in parts)):
            return code, _ips(parts)
        if kind in (_U16, _U32):
            return code, struct.pack("!H" if kind == _U16 else "!I", int(value))
    except (ValueError, struct.error):
        return None
    encoded = value.encode()
    return (code, encoded) if 0 < len(encoded) <= 255 else None


def _is_v4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def classless_routes(routes: Iterable[tuple[str, str]]) -> bytes:
    """Option 121's value: each (destination CIDR, next hop) as RFC 3442 writes it."""
    out = bytearray()
    for destination, nexthop in routes:
        net = ipaddress.IPv4Network(destination, strict=False)
        significant = (net.prefixlen + 7) // 8
        out += bytes((net.prefixlen,)) + net.network_address.packed[:significant]
        out += ipaddress.IPv4Address(nexthop).packed
    return bytes(out)


def dhcp_addressing(record: EndpointRecord) -> Addressing | None:
    """The fixed IP the port's DHCP lease is for: its first IPv4 one, if DHCP is on."""
    for addressing in record.get("addressing", []):
        if ipaddress.ip_address(addressing["ip_address"]).version == 4:
            return addressing if addressing["enable_dhcp"] else None
    return None


def server_address(addressing: Addressing) -> ipaddress.IPv4Address:
    """The server identifier: the subnet's gateway, which the host stands for."""
    gateway = addressing["gateway_ip"]
    return ipaddress.IPv4Address(gateway) if gateway else FALLBACK_SERVER


def lease_options(record: EndpointRecord, addressing: Addressing, lease: int) -> wire.Options:
    """Everything the lease carries but its message type and server identifier."""
    subnet = ipaddress.IPv4Network(addressing["cidr"], strict=False)
    address = addressing["ip_address"]
    options: wire.Options = {
        wire.SUBNET_MASK: subnet.netmask.packed,
        wire.BROADCAST_ADDRESS: subnet.broadcast_address.packed,
        wire.LEASE_TIME: struct.pack("!I", lease),
        wire.RENEWAL_TIME: struct.pack("!I", lease // 2),
        wire.REBINDING_TIME: struct.pack("!I", lease * 7 // 8),
    }
    gateway = addressing["gateway_ip"]
    if gateway:
        options[wire.ROUTER] = _ips([gateway])
    dns = [d for d in addressing["dns_nameservers"] if _is_v4(d)]
    if dns:
        options[wire.DNS] = _ips(dns)
    if record.get("mtu", 0) >= 68:
        options[wire.MTU] = struct.pack("!H", min(record["mtu"], 0xFFFF))
    hostname = record.get("hostname") or "host-" + address.replace(".", "-")
    options[wire.HOSTNAME] = hostname.encode()[:63]
    routes = [
        (r["destination"], r["nexthop"])
        for r in addressing["host_routes"]
        if _is_v4(r["nexthop"]) and "." in r["destination"]
    ]
    if routes:
        default = [("0.0.0.0/0", gateway)] if gateway else []
        options[wire.CLASSLESS_ROUTES] = classless_routes(routes + default)
    for option in record.get("extra_dhcp_opts", []):
        found = option_value(option)
        if found is not None:
            options[found[0]] = found[1]
    return options


def _message(kind: int, server: ipaddress.IPv4Address) -> wire.Options:
    return {wire.MESSAGE_TYPE: bytes((kind,)), wire.SERVER_ID: server.packed}


def answer(
    request: wire.Request, on_tap: Iterable[EndpointRecord], lease: int = LEASE_TIME
) -> wire.Reply | None:
    """The reply to ``request`` given the endpoint records on the tap it came in on, or
    None: not a port of this tap, no DHCP for it, or a message the server leaves alone
    (RELEASE, DECLINE: the address is the port's whatever the client says; a REQUEST
    naming another server)."""
    record = next(
        (
            r
            for r in on_tap
            if r.get("mac_address", "").lower() == request.mac and r.get("admin_state_up", True)
        ),
        None,
    )
    addressing = None if record is None else dhcp_addressing(record)
    if record is None or addressing is None:
        return None
    server = server_address(addressing)
    address = ipaddress.IPv4Address(addressing["ip_address"])
    kind = request.message_type
    if kind == wire.DISCOVER:
        options = {**_message(wire.OFFER, server), **lease_options(record, addressing, lease)}
        return wire.build_reply(request, server, address, options)
    if kind == wire.INFORM:
        options = {**_message(wire.ACK, server), **lease_options(record, addressing, lease)}
        for timer in (wire.LEASE_TIME, wire.RENEWAL_TIME, wire.REBINDING_TIME):
            del options[timer]
        return wire.build_reply(request, server, wire.ANY, options)
    if kind != wire.REQUEST or request.server_id not in (None, server):
        return None
    wanted = request.requested_ip or request.ciaddr
    if wanted != address:
        return wire.build_reply(request, server, wire.ANY, _message(wire.NAK, server))
    options = {**_message(wire.ACK, server), **lease_options(record, addressing, lease)}
    return wire.build_reply(request, server, address, options)


__all__ = [
    "FALLBACK_SERVER",
    "LEASE_TIME",
    "NAMED_OPTIONS",
    "answer",
    "classless_routes",
    "dhcp_addressing",
    "lease_options",
    "option_value",
    "server_address",
]
