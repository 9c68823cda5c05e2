"""DHCPv6 on the wire (RFC 8415): a client's message in an IPv6/UDP packet, read from
untrusted bytes, and the server's message wrapped in one. Pure: bytes in, bytes out.

The host's DHCPv6 server sees whole IPv6 packets (a packet socket, as for DHCPv4: the
ingress tap and the sender's MAC come with each) and answers with whole packets. What is
read: the IPv6 source (the client's link-local address, where the answer goes), the
message type and transaction id, and the options a stateless server needs — client and
server identifiers, IA_NA (its IAID and the addresses the client names), the option
request, rapid commit. Bounded: a packet longer than :data:`MAX_PACKET`, an extension
header, a truncated option, or more than :data:`MAX_OPTIONS` options gives None, never
an exception.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from routeplane.dataplane.dhcp_packet import checksum

UDP = 17
CLIENT_PORT, SERVER_PORT = 546, 547
MAX_PACKET = 1500
MAX_OPTIONS = 64
HOP_LIMIT = 255  # replies never leave the link

# message types
SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY, RELEASE, DECLINE = range(1, 10)
INFORMATION_REQUEST = 11
# options
CLIENTID, SERVERID, IA_NA, IAADDR, ORO = 1, 2, 3, 5, 6
STATUS_CODE, RAPID_COMMIT, DNS_SERVERS = 13, 14, 23
# status codes
SUCCESS, NO_ADDRS_AVAIL, NO_BINDING = 0, 2, 3
# DUID types
DUID_LLT, DUID_LL = 1, 3
ETHERNET = 1

_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_OPTION = struct.Struct("!HH")


@dataclass(frozen=True)
class IdentityAssociation:
    """An IA_NA as the client sent it: its IAID and the addresses it names."""

    iaid: bytes
    addresses: tuple[ipaddress.IPv6Address, ...] = ()


@dataclass(frozen=True)
class Request:
    """What the server needs of a client's message."""

    kind: int
    transaction: bytes  # 3 bytes, echoed
    source: ipaddress.IPv6Address  # the client's (link-local) address: the answer's destination
    client_id: bytes | None = None  # the DUID, echoed
    server_id: bytes | None = None
    ias: tuple[IdentityAssociation, ...] = ()
    requested: frozenset[int] = field(default_factory=frozenset)
    rapid_commit: bool = False


def _options(data: bytes) -> Iterator[tuple[int, bytes]] | None:
    """(code, value) of each option in ``data``; None when one is cut short."""
    found: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        if at + 4 > len(data) or len(found) >= MAX_OPTIONS:
            return None
        code, length = _OPTION.unpack_from(data, at)
        value = data[at + 4 : at + 4 + length]
        if len(value) != length:
            return None
        found.append((code, value))
        at += 4 + length
    return iter(found)


def _ia(value: bytes) -> IdentityAssociation | None:
    if len(value) < 12:
        return None
    suboptions = _options(value[12:])
    if suboptions is None:
        return None
    addresses = tuple(
        ipaddress.IPv6Address(sub[:16])
        for code, sub in suboptions
        if code == IAADDR and len(sub) >= 24
    )
    return IdentityAssociation(value[:4], addresses)


def parse_request(packet: bytes) -> Request | None:
    """The client's message in an IPv6 packet to UDP port 547, or None."""
    if not 48 + 4 <= len(packet) <= MAX_PACKET:
        return None
    first, _length, next_header, _hops, source, _dest = _IPV6.unpack_from(packet)
    if first >> 28 != 6 or next_header != UDP:
        return None
    _sport, dport, udp_length, _sum = _UDP.unpack_from(packet, 40)
    if dport != SERVER_PORT or udp_length < 12 or 40 + udp_length > len(packet):
        return None
    message = packet[48 : 40 + udp_length]
    options = _options(message[4:])
    if options is None:
        return None
    values: dict[int, bytes] = {}
    ias: list[IdentityAssociation] = []
    for code, value in options:
        if code == IA_NA:
            ia = _ia(value)
            if ia is None:
                return None
            ias.append(ia)
        else:
            values.setdefault(code, value)
    oro = values.get(ORO, b"")
    requested = frozenset(struct.unpack(f"!{len(oro) // 2}H", oro[: len(oro) // 2 * 2]))
    return Request(
        kind=message[0],
        transaction=message[1:4],
        source=ipaddress.IPv6Address(source),
        client_id=values.get(CLIENTID),
        server_id=values.get(SERVERID),
        ias=tuple(ias),
        requested=requested,
        rapid_commit=RAPID_COMMIT in values,
    )


def duid_mac(duid: bytes) -> str | None:
    """The MAC address a DUID-LL or DUID-LLT of an Ethernet interface carries; None for
    another kind of DUID (one naming no MAC)."""
    if len(duid) == 10 and duid[:4] == struct.pack("!HH", DUID_LL, ETHERNET):
        return duid[4:].hex(":")
    if len(duid) == 14 and duid[:4] == struct.pack("!HH", DUID_LLT, ETHERNET):
        return duid[8:].hex(":")
    return None


def option(code: int, value: bytes) -> bytes:
    return _OPTION.pack(code, len(value)) + value


def status(code: int, text: str = "") -> bytes:
    return option(STATUS_CODE, struct.pack("!H", code) + text.encode())


def ia_na(iaid: bytes, t1: int, t2: int, addresses: Iterable[tuple[str, int, int]]) -> bytes:
    """An IA_NA with (address, preferred lifetime, valid lifetime) for each address."""
    inner = b"".join(
        option(IAADDR, ipaddress.IPv6Address(a).packed + struct.pack("!II", preferred, valid))
        for a, preferred, valid in addresses
    )
    return option(IA_NA, iaid + struct.pack("!II", t1, t2) + inner)


def dns_servers(addresses: Iterable[str]) -> bytes:
    return option(DNS_SERVERS, b"".join(ipaddress.IPv6Address(a).packed for a in addresses))


def message(kind: int, transaction: bytes, options: Iterable[bytes]) -> bytes:
    return bytes([kind]) + transaction + b"".join(options)


def wrap(source: bytes, destination: ipaddress.IPv6Address, payload: bytes) -> bytes:
    """``payload`` (a DHCPv6 message) in an IPv6/UDP packet from the server port at
    ``source`` (16 bytes: the tap's link-local address) to the client port."""
    length = 8 + len(payload)
    pseudo = source + destination.packed + struct.pack("!I3xB", length, UDP)
    udp = _UDP.pack(SERVER_PORT, CLIENT_PORT, length, 0) + payload
    total = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", total) + udp[8:]
    return _IPV6.pack(6 << 28, length, UDP, HOP_LIMIT, source, destination.packed) + udp


__all__ = [
    "ADVERTISE",
    "CLIENTID",
    "CONFIRM",
    "DECLINE",
    "DNS_SERVERS",
    "IA_NA",
    "INFORMATION_REQUEST",
    "NO_ADDRS_AVAIL",
    "RAPID_COMMIT",
    "REBIND",
    "RELEASE",
    "RENEW",
    "REPLY",
    "REQUEST",
    "SERVERID",
    "SOLICIT",
    "SUCCESS",
    "IdentityAssociation",
    "Request",
    "dns_servers",
    "duid_mac",
    "ia_na",
    "message",
    "option",
    "parse_request",
    "status",
    "wrap",
]
