"""The host's router-advertisement socket: router solicitations in from any tap, router
advertisements out to one tap, from one ICMPv6 raw socket per host namespace.

Why a raw ICMPv6 socket (and not a packet socket, as DHCP needs): every party here
has an IPv6 address already — the guest solicits from its link-local address, the tap
has the host's — so the kernel fills in the checksum and tells the ingress interface
(``IPV6_PKTINFO``). The socket's ICMPv6 filter passes only router solicitations; hop
limit 255 as neighbour discovery requires (a guest drops an advertisement with less).

The source of every advertisement is set explicitly to the tap's own link-local address
(``IPV6_PKTINFO`` on send), which becomes the guest's default router. Left to the
kernel, an advertisement sent while the tap's link-local address is still tentative
(duplicate address detection, the first second of a tap) goes out from another of the
host's addresses — its fabric address, say — and the guest ignores it (RFC 4861 6.1.2:
the source must be link-local). Until the tap has a usable link-local address,
:meth:`RaSocket.send` raises ``OSError`` and the caller tries again at its next tick.
"""

from __future__ import annotations

import socket
import struct

from routeplane.dataplane.linux.host_socket import HostSocket

ICMP6_FILTER = 1
ALL_NODES = "ff02::1"
ROUTER_SOLICIT = 133


def _filter_only(icmp_type: int) -> bytes:
    """An ICMP6_FILTER that blocks every type but ``icmp_type`` (a set bit blocks)."""
    words = [0xFFFFFFFF] * 8
    words[icmp_type >> 5] &= ~(1 << (icmp_type & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


class RaSocket(HostSocket):
    """Router solicitations in, advertisements out, in namespace ``netns`` (None: ours)."""

    what = "router advertisement socket"

    def __init__(self, netns: str | None) -> None:
        super().__init__(netns)
        self._names: dict[int, str] = {}

    def _new(self) -> socket.socket:
        return socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)

    def _configure(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _filter_only(ROUTER_SOLICIT))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)

    def _name(self, index: int) -> str:
        name = self._names.get(index)
        if name is None:
            name = self.namespace.run(lambda: socket.if_indextoname(index))
            self._names = {**self._names, index: name} if len(self._names) < 4096 else {}
        return name

    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        """The next solicitation as (interface name, ICMPv6 message); None after
        ``timeout`` seconds or when its interface is gone."""
        self.sock.settimeout(timeout)
        try:
            message, ancillary, _, _ = self.sock.recvmsg(1500, socket.CMSG_SPACE(20))
        except TimeoutError:
            return None
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
                try:
                    return self._name(struct.unpack("=16sI", data[:20])[1]), message
                except OSError:
                    return None
        return None

    def send(self, interface: str, message: bytes) -> None:
        """``message`` to all nodes on ``interface``, from its link-local address;
        ``OSError`` when it is gone or has no usable link-local address yet."""
        index, source = self.source(interface)
        pktinfo = (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("=16sI", source, index))
        self.sock.sendmsg([message], [pktinfo], 0, (ALL_NODES, 0, 0, index))


__all__ = ["RaSocket"]
