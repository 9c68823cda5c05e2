"""DHCPv4 on the wire: parse a client's request, build the server's reply. Pure.

The host's DHCP server (``agent/dhcp.py``) receives whole IPv4 packets from a packet
socket (no kernel UDP socket: the host holds none of the addresses it answers as) and
sends whole IPv4 packets back inside an Ethernet frame to the client's MAC. So this
module does the IPv4 and UDP headers as well as BOOTP (RFC 951/2131) and the options
(RFC 2132; classless static routes, RFC 3442).

Inputs are untrusted bytes from a VM: every length is checked against the packet, the
option walk is bounded by the packet, and anything malformed is ``None`` — never an
exception. What it must not do: decide *whether* or *what* to answer (that is the lease
decision, ``agent/dhcp_lease.py``), or touch a socket.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

SERVER_PORT, CLIENT_PORT = 67, 68
UDP = 17
MAGIC = b"\x63\x82\x53\x63"
BROADCAST = ipaddress.IPv4Address("255.255.255.255")
ANY = ipaddress.IPv4Address(0)  # a client without an address yet
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
MIN_REPLY = 576  # what every client must accept (RFC 2131 §2)
MAX_REPLY = 1500

# message types (option 53)
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
# options
SUBNET_MASK, ROUTER, DNS, HOSTNAME, DOMAIN_NAME, MTU, BROADCAST_ADDRESS = 1, 3, 6, 12, 15, 26, 28
REQUESTED_IP, LEASE_TIME, MESSAGE_TYPE, SERVER_ID, MAX_SIZE = 50, 51, 53, 54, 57
RENEWAL_TIME, REBINDING_TIME, CLASSLESS_ROUTES = 58, 59, 121
PAD, END = 0, 255

_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_BOOTP = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # up to the magic cookie
_FLAG_BROADCAST = 0x8000

Options = dict[int, bytes]


@dataclass(frozen=True)
class Request:
    """A client's DHCP message, as far as the server needs it."""

    message_type: int
    xid: int
    flags: int
    ciaddr: ipaddress.IPv4Address
    giaddr: ipaddress.IPv4Address
    mac: str  # chaddr, lower case, colon separated
    options: Options

    @property
    def requested_ip(self) -> ipaddress.IPv4Address | None:
        return _address(self.options.get(REQUESTED_IP))

    @property
    def server_id(self) -> ipaddress.IPv4Address | None:
        return _address(self.options.get(SERVER_ID))

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & _FLAG_BROADCAST)

    @property
    def max_size(self) -> int:
        """The largest reply (IP packet) the client takes: option 57, within bounds."""
        given = self.options.get(MAX_SIZE, b"")
        size = int.from_bytes(given) if len(given) == 2 else MIN_REPLY
        return max(MIN_REPLY, min(MAX_REPLY, size))


def _address(value: bytes | None) -> ipaddress.IPv4Address | None:
    return ipaddress.IPv4Address(value) if value is not None and len(value) == 4 else None


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw[:6])


def parse_options(data: bytes) -> Options | None:
    """The options after the magic cookie; None if an option runs past the end. A
    repeated option is concatenated (RFC 3396)."""
    options: Options = {}
    at = 0
    while at < len(data):
        code = data[at]
        if code == PAD:
            at += 1
            continue
        if code == END:
            return options
        if at + 2 > len(data) or at + 2 + data[at + 1] > len(data):
            return None
        length = data[at + 1]
        options[code] = options.get(code, b"") + data[at + 2 : at + 2 + length]
        at += 2 + length
    return options


def parse_request(packet: bytes) -> Request | None:
    """The DHCP request in an IPv4 packet (from its IP header on), or None: not an
    unfragmented UDP packet to port 67 holding a well-formed client message."""
    if len(packet) < _IP.size:
        return None
    version_ihl, _tos, total, _id, frag, _ttl, proto, _sum, _src, _dst = _IP.unpack_from(packet)
    ihl = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or ihl < _IP.size or proto != UDP or frag & 0x3FFF:
        return None
    end = min(len(packet), total)
    if end < ihl + _UDP.size:
        return None
    _sport, dport, length, _csum = _UDP.unpack_from(packet, ihl)
    payload = packet[ihl + _UDP.size : min(end, ihl + length)]
    if dport != SERVER_PORT or len(payload) < _BOOTP.size + len(MAGIC):
        return None
    op, htype, hlen, _hops, xid, _secs, flags, ciaddr, _yi, _si, giaddr, chaddr, _sname, _file = (
        _BOOTP.unpack_from(payload)
    )
    if op != 1 or htype != 1 or hlen != 6 or payload[_BOOTP.size : _BOOTP.size + 4] != MAGIC:
        return None
    options = parse_options(payload[_BOOTP.size + 4 :])
    if options is None or len(options.get(MESSAGE_TYPE, b"")) != 1:
        return None
    return Request(
        message_type=options[MESSAGE_TYPE][0],
        xid=xid,
        flags=flags,
        ciaddr=ipaddress.IPv4Address(ciaddr),
        giaddr=ipaddress.IPv4Address(giaddr),
        mac=_mac(chaddr),
        options=options,
    )


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(int.from_bytes(data[i : i + 2]) for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def encode_options(options: Options, room: int) -> bytes:
    """``options`` in order (53 first), each at most 255 bytes, as many as fit in
    ``room`` bytes with the END mark; the rest are left out."""
    out = bytearray()
    ordered = sorted(options.items(), key=lambda item: item[0] != MESSAGE_TYPE)
    for code, value in ordered:
        encoded = bytes((code, min(len(value), 255))) + value[:255]
        if len(out) + len(encoded) + 1 <= room:
            out += encoded
    return bytes(out) + bytes((END,))


@dataclass(frozen=True)
class Reply:
    """What the server sends: to ``mac`` on the interface the request came in on."""

    mac: str
    packet: bytes  # the whole IPv4 packet


def build_reply(
    request: Request,
    server: ipaddress.IPv4Address,
    yiaddr: ipaddress.IPv4Address,
    options: Options,
) -> Reply:
    """The server's answer to ``request``: BOOTP reply with ``yiaddr`` and ``options``
    (53 included), addressed as RFC 2131 §4.1 says for a client on the same link: to
    ``ciaddr`` when it has one (a renewal; a NAK is broadcast), else broadcast when it
    asks for that, else to the offered address at the client's MAC."""
    nak = options.get(MESSAGE_TYPE) == bytes((NAK,))
    if request.ciaddr != ANY and not nak:
        dst, mac = request.ciaddr, request.mac
    elif request.broadcast or nak:
        dst, mac = BROADCAST, BROADCAST_MAC
    else:
        dst, mac = yiaddr, request.mac
    chaddr = bytes.fromhex(request.mac.replace(":", "")).ljust(16, b"\0")
    bootp = _BOOTP.pack(
        2,
        1,
        6,
        0,
        request.xid,
        0,
        request.flags,
        request.ciaddr.packed,
        yiaddr.packed,
        ANY.packed,
        request.giaddr.packed,
        chaddr,
        b"",
        b"",
    )
    room = request.max_size - _IP.size - _UDP.size - len(bootp) - len(MAGIC)
    payload = bootp + MAGIC + encode_options(options, room)
    payload += b"\0" * max(0, 300 - len(payload))  # BOOTP's minimum, which old clients want
    udp_length = _UDP.size + len(payload)
    pseudo = server.packed + dst.packed + struct.pack("!BBH", 0, UDP, udp_length)
    udp = _UDP.pack(SERVER_PORT, CLIENT_PORT, udp_length, 0) + payload
    udp_sum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    header = _IP.pack(0x45, 0x10, _IP.size + len(udp), 0, 0, 64, UDP, 0, server.packed, dst.packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return Reply(mac, header + udp)


def parse_reply(packet: bytes) -> tuple[ipaddress.IPv4Address, Options] | None:
    """``yiaddr`` and options of a server's reply (for tests and benchmarks)."""
    if len(packet) < _IP.size + _UDP.size + _BOOTP.size + 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    payload = packet[ihl + _UDP.size :]
    fields = _BOOTP.unpack_from(payload)
    options = parse_options(payload[_BOOTP.size + 4 :])
    return None if options is None else (ipaddress.IPv4Address(fields[8]), options)


def build_request(
    mac: str, message_type: int, xid: int = 1, options: Options | None = None
) -> bytes:
    """A client's broadcast request as an IPv4 packet (for tests and benchmarks)."""
    chaddr = bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0")
    bootp = _BOOTP.pack(
        1, 1, 6, 0, xid, 0, 0, ANY.packed, ANY.packed, ANY.packed, ANY.packed, chaddr, b"", b""
    )
    opts = {MESSAGE_TYPE: bytes((message_type,)), **(options or {})}
    payload = bootp + MAGIC + encode_options(opts, MAX_REPLY)
    udp = _UDP.pack(CLIENT_PORT, SERVER_PORT, _UDP.size + len(payload), 0) + payload
    header = _IP.pack(0x45, 0, _IP.size + len(udp), 0, 0, 64, UDP, 0, ANY.packed, BROADCAST.packed)
    return header + udp


__all__ = [
    "ACK",
    "DISCOVER",
    "INFORM",
    "NAK",
    "OFFER",
    "REQUEST",
    "Options",
    "Reply",
    "Request",
    "build_reply",
    "build_request",
    "checksum",
    "encode_options",
    "parse_options",
    "parse_reply",
    "parse_request",
]
