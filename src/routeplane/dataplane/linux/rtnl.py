"""A minimal rtnetlink client: the few messages the host agent sends and reads, encoded with
``struct``, sent many to a datagram, each acknowledged on its own.

Why not pyroute2 or ``ip -batch`` on this path (measured in a namespace, Linux 6.18):

- pyroute2 decodes every attribute of every message: ~600 µs per link (statistics and
  per-family configuration included), ~70 µs per route, ~85 µs per neighbour; 10,000
  taps would take seconds to read back, and one change is one round trip (~3,200/s);
- ``ip -force -batch`` programs routes at ~57,000/s, but a neighbour command the kernel
  rejects makes ``ip`` exit (``ipneigh_modify`` calls ``exit(2)``, ``-force`` or not), so
  every later line is silently not run; and each batch costs a ``fork``/``exec``
  (~2 ms), most of the budget of one endpoint change.

Here a batch is one ``sendmsg`` per 256 requests, each with ``NLM_F_ACK`` and its own
sequence number; the kernel handles them in order and answers each, so the caller learns
exactly which request failed and why (``errno`` plus the kernel's extended-ack text),
at the kernel's own speed (~55,000 routes/s). Dumps decode only the attributes asked for.

Link changes are followed on a second socket of their own (``monitor.LinkMonitor``),
subscribed to the link multicast group and read without blocking, so unsolicited
messages never mix with the answers the request socket waits for; this module parses
what it reads (:func:`parse_link_changes`).

What this module must not do: subscribe the request socket to multicast groups, or know
anything of routeplane's policy (which protocol number, which interfaces): callers pass
that in.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

# netlink and rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/neighbour.h)
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTNLGRP_LINK = 1
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_NEWADDR = 20
IFA_ADDRESS, IFA_FLAGS = 1, 8
IFA_F_NODAD, IFA_F_NOPREFIXROUTE = 0x02, 0x200
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP_INTR = 0x1, 0x4, 0x10
NLM_F_DUMP, NLM_F_REPLACE, NLM_F_CREATE = 0x300, 0x100, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # in the flags of an NLMSG_ERROR answer
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK = 270, 10, 11, 12
NLMSGERR_ATTR_MSG = 1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS = 1, 3, 29, 1 << 3
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
IFLA_STATS64 = 23  # struct rtnl_link_stats64: rx_packets first
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
RT_TABLE_MAIN, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 254, 0, 253, 255
RTN_UNICAST = 1
NDA_DST, NDA_LLADDR, NDA_PROTOCOL = 1, 2, 12
NUD_PERMANENT = 0x80
NTF_PROXY, NTF_ROUTER = 0x08, 0x80

T = TypeVar("T")
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_ATTR = struct.Struct("=HH")  # rtattr: length, type
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table proto scope type flags
_IFADDRMSG = struct.Struct("=BBBBi")  # ifaddrmsg: family, prefixlen, flags, scope, index
_NDMSG = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
_ERRNO = struct.Struct("=i")

BATCH = 256  # requests per sendmsg: their answers fit the receive buffer many times over
BUFFER = 4 << 20
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # asm-generic/socket.h; not in Python's socket
TIMEOUT = 10.0
DUMP_ATTEMPTS = 3


@dataclass(frozen=True)
class NetlinkError:
    """Why the kernel refused one request."""

    errno: int
    message: str = ""  # the kernel's extended-ack text, when it gave one

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno, str(self.errno))
        text = f"{os.strerror(self.errno)} ({name})"
        return f"{text}: {self.message}" if self.message else text


class Request(NamedTuple):
    """One netlink request, without its header (a tuple: a cold start builds tens of
    thousands)."""

    type: int
    flags: int
    body: bytes

    def encode(self, seq: int, *, ack: bool = True) -> bytes:
        """The message; without ``ack`` the kernel answers only if it refuses it."""
        flags = self.flags | NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
        return _HEADER.pack(_HEADER.size + len(self.body), self.type, flags, seq, 0) + self.body


def _attr(kind: int, data: bytes) -> bytes:
    length = _ATTR.size + len(data)
    return _ATTR.pack(length, kind) + data + b"\0" * (-length % 4)


def _attrs(payload: bytes, offset: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    end = len(payload)
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(payload, offset)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = payload[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


class _Ip(NamedTuple):
    """An address as the requests need it: ``socket.inet_pton`` instead of ``ipaddress``,
    which was a large share of a cold start's CPU (tens of thousands of requests)."""

    version: int
    packed: bytes
    max_prefixlen: int


def _ip(address: str) -> _Ip:
    try:
        if ":" in address:  # only IPv6 text has one: no failed IPv4 parse first
            return _Ip(6, socket.inet_pton(socket.AF_INET6, address), 128)
        return _Ip(4, socket.inet_pton(socket.AF_INET, address), 32)
    except OSError:
        raise ValueError(f"{address!r} does not appear to be an IPv4 or IPv6 address") from None


def _family(address: _Ip) -> int:
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# --- requests ---------------------------------------------------------------------------
def link_up(index: int) -> Request:
    return Request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))


def _route_target(ip: _Ip, index: int, via: str, metric: int) -> bytes:
    """The attributes naming one host route: destination, where it goes (a link, a next
    hop, or both), metric."""
    body = _attr(RTA_DST, ip.packed)
    if via:
        hop = _ip(via)
        if hop.version != ip.version:
            raise ValueError(f"next hop {via} is not of the family of the destination")
        body += _attr(RTA_GATEWAY, hop.packed)
    if index:
        body += _attr(RTA_OIF, struct.pack("=i", index))
    return body + _attr(RTA_PRIORITY, struct.pack("=I", metric))


# The two requests a cold start is made of, tens of thousands of each, packed in one go
# (the same bytes as ``_attr`` by ``_attr`` gives: see the unit tests): a host route on a
# link, and a neighbour with a six-byte MAC, per family.
_ROUTE_ON_LINK = {
    4: struct.Struct("=BBBBBBBBI HH4s HHi HHI"),  # (struct ignores the spaces)
    6: struct.Struct("=BBBBBBBBI HH16s HHi HHI"),
}
_NEIGHBOUR = {
    4: struct.Struct("=BxxxiHBB HH4s HH6s2x"),
    6: struct.Struct("=BxxxiHBB HH16s HH6s2x"),
}


def route_replace(
    address: str, index: int, protocol: int, metric: int = 0, via: str = ""
) -> Request:
    """``replace <address>/32|/128 dev <index> scope link proto <protocol> metric
    <metric>`` (main table), or with ``via`` (``index`` 0: the kernel finds the link)
    ``replace <address> via <via> proto <protocol> metric <metric>``. The kernel keys the
    route by address and metric: another metric makes a second route."""
    ip = _ip(address)
    if not via and index:
        size = len(ip.packed)
        body = _ROUTE_ON_LINK[ip.version].pack(
            _family(ip), ip.max_prefixlen, 0, 0, RT_TABLE_MAIN, protocol, RT_SCOPE_LINK,
            RTN_UNICAST, 0, _ATTR.size + size, RTA_DST, ip.packed, 8, RTA_OIF, index, 8,
            RTA_PRIORITY, metric,
        )  # fmt: skip
        return Request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)
    scope = RT_SCOPE_UNIVERSE if via else RT_SCOPE_LINK
    head = _RTMSG.pack(
        _family(ip), ip.max_prefixlen, 0, 0, RT_TABLE_MAIN, protocol, scope, RTN_UNICAST, 0
    )
    body = head + _route_target(ip, index, via, metric)
    return Request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)


def route_delete(
    address: str, index: int, protocol: int, metric: int = 0, via: str = ""
) -> Request:
    """Delete the host route only if it is on ``index`` (or goes ``via``), has ``metric``
    *and* carries ``protocol``: the kernel matches them all, so another owner's route
    for the same address is never hit (metric 0 matches any)."""
    ip = _ip(address)
    head = _RTMSG.pack(
        _family(ip), ip.max_prefixlen, 0, 0, RT_TABLE_MAIN, protocol, RT_SCOPE_NOWHERE, 0, 0
    )
    body = head + _route_target(ip, index, via, metric)
    return Request(RTM_DELROUTE, 0, body)


def neighbour_replace(address: str, index: int, mac: str) -> Request:
    ip = _ip(address)
    try:
        lladdr = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    except ValueError:
        lladdr = b""
    if not lladdr:
        raise ValueError(f"not a MAC address: {mac!r}")
    if len(lladdr) == 6:
        body = _NEIGHBOUR[ip.version].pack(
            _family(ip), index, NUD_PERMANENT, 0, 0, _ATTR.size + len(ip.packed), NDA_DST,
            ip.packed, _ATTR.size + 6, NDA_LLADDR, lladdr,
        )  # fmt: skip
        return Request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body)
    body = _NDMSG.pack(_family(ip), index, NUD_PERMANENT, 0, 0)
    body += _attr(NDA_DST, ip.packed) + _attr(NDA_LLADDR, lladdr)
    return Request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body)


def neighbour_delete(address: str, index: int) -> Request:
    ip = _ip(address)
    body = _NDMSG.pack(_family(ip), index, 0, 0, 0) + _attr(NDA_DST, ip.packed)
    return Request(RTM_DELNEIGH, 0, body)


def proxy_replace(address: str, index: int, protocol: int) -> Request:
    """``neigh replace proxy <address> dev <index> router protocol <protocol>``: answer
    neighbour solicitations for ``address`` on that interface, as a router."""
    ip = _ip(address)
    body = _NDMSG.pack(_family(ip), index, NUD_PERMANENT, NTF_PROXY | NTF_ROUTER, 0)
    body += _attr(NDA_DST, ip.packed) + _attr(NDA_PROTOCOL, struct.pack("=B", protocol))
    return Request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body)


def link_local_replace(address: str, index: int) -> Request:
    """``addr replace <address>/64 dev <index> scope link nodad noprefixroute``: an
    extra link-local address, usable at once, adding no route."""
    ip = _ip(address)
    body = _IFADDRMSG.pack(socket.AF_INET6, 64, IFA_F_NODAD, RT_SCOPE_LINK, index)
    body += _attr(IFA_ADDRESS, ip.packed)
    body += _attr(IFA_FLAGS, struct.pack("=I", IFA_F_NODAD | IFA_F_NOPREFIXROUTE))
    return Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, body)


def proxy_delete(address: str, index: int) -> Request:
    ip = _ip(address)
    body = _NDMSG.pack(_family(ip), index, 0, NTF_PROXY, 0) + _attr(NDA_DST, ip.packed)
    return Request(RTM_DELNEIGH, 0, body)


# --- what dumps return ----------------------------------------------------------------
@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    flags: int
    mac: str


@dataclass(frozen=True)
class RouteInfo:
    family: int
    destination: str  # "" for a default route
    prefix_length: int
    table: int
    protocol: int
    type: int
    oif: int  # 0 when the route has no single output interface (multipath, blackhole)
    metric: int = 0  # RTA_PRIORITY (0 when absent: an IPv4 route added without one)
    gateway: str = ""  # RTA_GATEWAY: the next hop, when the route has one


@dataclass(frozen=True)
class NeighbourInfo:
    family: int
    index: int
    state: int
    address: str
    mac: str
    protocol: int = 0  # who made it (proxy entries and neighbours may carry one)


def _link_info(payload: bytes) -> LinkInfo:
    """Index, flags, name and MAC of one link message. Only the two attributes wanted are
    taken out of the forty-odd a link has (a host with thousands of taps dumps them all
    on every full read-back)."""
    _, _, index, flags, _ = _IFINFO.unpack_from(payload, 0)
    name, mac = b"", b""
    offset, end = _IFINFO.size, len(payload)
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(payload, offset)
        if length < _ATTR.size:
            break
        kind &= 0x3FFF
        if kind == IFLA_IFNAME:
            name = payload[offset + _ATTR.size : offset + length]
        elif kind == IFLA_ADDRESS:
            mac = payload[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return LinkInfo(index, name.rstrip(b"\0").decode(errors="replace"), flags, mac_text(mac))


@dataclass(frozen=True)
class LinkChange:
    """One link message: the interface as it is now, or as it was when ``deleted``."""

    info: LinkInfo
    deleted: bool


def parse_link_changes(data: bytes) -> list[LinkChange]:
    """The link messages of one datagram of the link multicast group (others skipped:
    only ``AF_UNSPEC`` messages describe the interface itself; bridge ports' are not)."""
    found = []
    for kind, _flags, _seq, payload in _messages(data):
        if kind not in (RTM_NEWLINK, RTM_DELLINK) or len(payload) < _IFINFO.size:
            continue
        if payload[0] != socket.AF_UNSPEC:
            continue
        found.append(LinkChange(_link_info(payload), kind == RTM_DELLINK))
    return found


def on_route_socket(make: Callable[[socket.socket], T]) -> T:
    """``make`` on a new rtnetlink socket of the calling thread's namespace; the socket
    is closed if ``make`` fails."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        return make(sock)
    except OSError:
        sock.close()
        raise


class Rtnl:
    """A NETLINK_ROUTE socket (created by the caller, in the namespace it must act on)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0
        sock.bind((0, 0))
        sock.settimeout(TIMEOUT)
        # without CAP_NET_ADMIN the buffers stay at the (ample) defaults
        for option in (SO_SNDBUFFORCE, SO_RCVBUFFORCE):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, BUFFER)
        # short acknowledgements, the kernel's error texts, filtered dumps: all optional
        for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK):
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_NETLINK, option, 1)

    @classmethod
    def open(cls) -> Rtnl:
        """A socket in the calling thread's network namespace."""
        return on_route_socket(cls)

    def close(self) -> None:
        self._sock.close()

    def _next_seq(self, count: int) -> int:
        first = self._seq + 1
        self._seq = (self._seq + count) % 0x7FFF0000
        return first

    # --- changes ----------------------------------------------------------------------
    def execute(self, requests: Sequence[Request]) -> list[NetlinkError | None]:
        """Send every request, in order; the result at each index is ``None`` (done) or
        why the kernel refused it. Raises ``OSError`` only if the socket itself fails.

        Only the last request of each sendmsg asks for an acknowledgement: the kernel
        answers a refused request whether asked or not, and handles one sendmsg's
        requests in order, so once the last one is answered every refusal before it has
        been read. One receive per batch instead of one per request: a cold start sends
        tens of thousands."""
        results: list[NetlinkError | None] = [None] * len(requests)
        for start in range(0, len(requests), BATCH):
            chunk = requests[start : start + BATCH]
            first = self._next_seq(len(chunk))
            last = len(chunk) - 1
            self._sock.sendall(
                b"".join(r.encode(first + i, ack=i == last) for i, r in enumerate(chunk))
            )
            answered = False
            try:
                while not answered:
                    for kind, flags, seq, payload in self._receive():
                        index = seq - first
                        if kind != NLMSG_ERROR or not 0 <= index <= last:
                            continue  # a late answer to an earlier, abandoned batch
                        results[start + index] = _error(flags, payload)
                        answered |= index == last
            except (TimeoutError, OSError) as exc:
                # ENOBUFS: answers were dropped; a timeout: none came. The requests may or
                # may not have been applied; report them failed so they are retried.
                code = exc.errno if isinstance(exc.errno, int) else errno.ETIMEDOUT
                for index in range(len(chunk)):
                    results[start + index] = NetlinkError(code, "no acknowledgement")
        return results

    # --- dumps ------------------------------------------------------------------------
    def links(self) -> list[LinkInfo]:
        request = _IFINFO.pack(0, 0, 0, 0, 0) + _attr(
            IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS)
        )
        return [_link_info(payload) for payload in self._dump(RTM_GETLINK, request)]

    def received(self, name: str) -> int | None:
        """The packets link ``name`` has received (its ``rx_packets``); None: no such
        link. One request for one link, not a dump: it is asked of a few taps often."""
        request = Request(
            RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
        )
        seq = self._next_seq(1)
        self._sock.sendall(request.encode(seq, ack=False))
        while True:
            for kind, flags, msg_seq, payload in self._receive():
                if msg_seq != seq:
                    continue  # a late answer to an earlier, abandoned request
                if kind == NLMSG_ERROR:
                    failure = _error(flags, payload)
                    if failure is not None and failure.errno == errno.ENODEV:
                        return None
                    raise OSError(failure.errno if failure else errno.EIO, f"link {name}")
                stats = _attrs(payload, _IFINFO.size).get(IFLA_STATS64, b"")
                return int(struct.unpack_from("=Q", stats)[0]) if len(stats) >= 8 else 0

    def routes(self, family: int, table: int, protocol: int) -> list[RouteInfo]:
        """Routes of ``family`` in ``table`` with ``protocol`` (filtered by the kernel when
        it supports strict dumps, and here in any case)."""
        request = _RTMSG.pack(family, 0, 0, 0, table, protocol, 0, 0, 0)
        found = []
        for payload in self._dump(RTM_GETROUTE, request):
            fam, dst_len, _src, _tos, tab, proto, _scope, kind, _fl = _RTMSG.unpack_from(payload)
            attrs = _attrs(payload, _RTMSG.size)
            if RTA_TABLE in attrs:
                tab = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if fam != family or tab != table or proto != protocol:
                continue
            dst = attrs.get(RTA_DST)
            oif = attrs.get(RTA_OIF)
            priority = attrs.get(RTA_PRIORITY)
            gateway = attrs.get(RTA_GATEWAY)
            found.append(
                RouteInfo(
                    family=fam,
                    destination=str(ipaddress.ip_address(dst)) if dst else "",
                    prefix_length=dst_len,
                    table=tab,
                    protocol=proto,
                    type=kind,
                    oif=struct.unpack("=i", oif)[0] if oif else 0,
                    metric=struct.unpack("=I", priority)[0] if priority else 0,
                    gateway=str(ipaddress.ip_address(gateway)) if gateway else "",
                )
            )
        return found

    def neighbours(self, family: int, *, proxy: bool = False) -> list[NeighbourInfo]:
        """The neighbour entries of ``family``, or (``proxy``) its proxy entries: the
        kernel keeps those in a table of their own, dumped only when asked by flag."""
        flags = NTF_PROXY if proxy else 0
        found = []
        for payload in self._dump(RTM_GETNEIGH, _NDMSG.pack(family, 0, 0, flags, 0)):
            fam, index, state, got_flags, _type = _NDMSG.unpack_from(payload)
            attrs = _attrs(payload, _NDMSG.size)
            dst = attrs.get(NDA_DST)
            if fam != family or not dst or bool(got_flags & NTF_PROXY) != proxy:
                continue
            address = str(ipaddress.ip_address(dst))
            protocol = attrs.get(NDA_PROTOCOL, b"\0")[0]
            mac = mac_text(attrs.get(NDA_LLADDR, b""))
            found.append(NeighbourInfo(fam, index, state, address, mac, protocol))
        return found

    def _dump(self, kind: int, body: bytes) -> list[bytes]:
        """Every payload of one dump; done again if the kernel says the set changed while
        it was being dumped (NLM_F_DUMP_INTR), so the result is one consistent picture."""
        for _ in range(DUMP_ATTEMPTS):
            seq = self._next_seq(1)
            header = _HEADER.pack(
                _HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
            )
            self._sock.sendall(header + body)
            payloads: list[bytes] = []
            interrupted = False
            done = False
            while not done:
                for msg_type, flags, msg_seq, payload in self._receive():
                    if msg_seq != seq:
                        continue
                    interrupted |= bool(flags & NLM_F_DUMP_INTR)
                    if msg_type == NLMSG_DONE:
                        done = True
                    elif msg_type == NLMSG_ERROR:
                        failure = _error(flags, payload)
                        if failure is not None:
                            raise OSError(failure.errno, f"netlink dump {kind}: {failure}")
                        done = True
                    else:
                        payloads.append(payload)
            if not interrupted:
                return payloads
        return payloads

    def _receive(self) -> Iterator[tuple[int, int, int, bytes]]:
        """The messages of one datagram: (type, flags, seq, payload)."""
        return _messages(self._sock.recv(1 << 18))


def _messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """The messages of one datagram: (type, flags, seq, payload)."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        yield kind, flags, seq, data[offset + _HEADER.size : offset + length]
        offset += (length + 3) & ~3


def _error(flags: int, payload: bytes) -> NetlinkError | None:
    """An NLMSG_ERROR payload: ``None`` for an acknowledgement, else the error. After the
    error code comes the request's header (and, unless capped, its body), then the
    extended-ack attributes when the kernel sent any."""
    (code,) = _ERRNO.unpack_from(payload)
    if code == 0:
        return None
    message = ""
    if flags & NLM_F_ACK_TLVS and len(payload) >= _ERRNO.size + _HEADER.size:
        offset = _ERRNO.size + _HEADER.size
        if not flags & NLM_F_CAPPED:
            (request_length,) = struct.unpack_from("=I", payload, _ERRNO.size)
            offset = _ERRNO.size + ((request_length + 3) & ~3)
        text = _attrs(payload, offset).get(NLMSGERR_ATTR_MSG, b"")
        message = text.rstrip(b"\0").decode(errors="replace")
    return NetlinkError(-code, message)


__all__ = [
    "LinkChange",
    "LinkInfo",
    "NeighbourInfo",
    "NetlinkError",
    "Request",
    "RouteInfo",
    "Rtnl",
    "link_up",
    "mac_text",
    "neighbour_delete",
    "neighbour_replace",
    "on_route_socket",
    "parse_link_changes",
    "proxy_delete",
    "proxy_replace",
    "route_delete",
    "route_replace",
]
