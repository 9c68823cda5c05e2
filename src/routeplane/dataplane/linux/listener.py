"""The metadata service's listening socket, in the host's namespace, and the address it
listens on.

A VM is identified by the interface its connection came in on *and* its source address,
never by anything it says. The interface is not in the socket API for TCP, but Linux
keeps it: with ``IP_PKTINFO`` set on the listener, ``getsockopt(IP_PKTOPTIONS)`` on an
accepted connection returns an ``in_pktinfo`` whose ``ipi_ifindex`` is the interface the
handshake arrived on (``tcp_v4_syn_recv_sock`` records it for every child socket). The
index is turned into a name inside the host's namespace, where it means something.

IPv6 (``fe80::a9fe:a9fe``, the address every tap holds: ``dataplane.model``): a
link-local address can only be bound together with one interface, and there are as many
as there are taps, so the listener is bound to ``[::]``, IPv6 only, and a connection's
local address tells both what it was made to and (its scope) the tap it came in on. A
connection to any other of the host's IPv6 addresses is named no interface, so it is
answered as from no VM (the host's policy lets the VMs reach only the metadata address).

The socket is created by the namespace's own thread (``Namespace.run``: a socket belongs
for its life to the namespace it was made in) and then used from any thread, as the
health probes do. ``hold_address`` puts the listening address on the host's ``lo`` when
it is not there: ``169.254.169.254/32`` labelled ``lo:routeplane``, the mark by which a
restarted agent (or a person) knows it is the agent's; it stays when the agent stops, so
VMs asking while the agent restarts are refused at once instead of routed elsewhere.

What this module must not do: add an address anywhere but the namespace it is given, or
serve anything (the HTTP part is the agent's, ``agent/metadata.py``).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess

from routeplane.dataplane.linux.namespace import Namespace
from routeplane.model.errors import DataplaneError

IP_PKTINFO = 8  # linux/in.h (the socket module lacks both on some builds)
IP_PKTOPTIONS = 9
ADDRESS_LABEL = "lo:routeplane"
_CMSG = struct.Struct("@NII")  # struct cmsghdr: cmsg_len, cmsg_level, cmsg_type
_PKTINFO = struct.Struct("@i4s4s")  # struct in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr
_WORD = struct.calcsize("@N")  # CMSG_ALIGN: control messages are aligned to a size_t


def _align(length: int) -> int:
    return (length + _WORD - 1) // _WORD * _WORD


def ingress_index(options: bytes) -> int | None:
    """The interface index in an ``IP_PKTOPTIONS`` answer (control messages), if any."""
    offset = 0
    while offset + _CMSG.size <= len(options):
        length, level, kind = _CMSG.unpack_from(options, offset)
        if length < _CMSG.size or offset + length > len(options):
            return None
        data = offset + _align(_CMSG.size)
        if (
            level == socket.IPPROTO_IP
            and kind == IP_PKTINFO
            and data + _PKTINFO.size <= len(options)
        ):
            index = int(_PKTINFO.unpack_from(options, data)[0])
            return index if index > 0 else None
        offset += _align(length)
    return None


class NamespaceListener:
    """A listening TCP socket on ``address``:``port`` in network namespace ``netns``
    (``None``: the caller's own) that names each connection's incoming interface."""

    def __init__(self, netns: str | None, address: str, port: int, backlog: int = 128) -> None:
        self.address, self.port = address, port
        self.ipv6 = ipaddress.ip_address(address).version == 6
        if self.ipv6 and not ipaddress.IPv6Address(address).is_link_local:
            raise ValueError("the metadata listener's IPv6 address is link-local")
        family = socket.AF_INET6 if self.ipv6 else socket.AF_INET
        self.namespace = Namespace(netns)
        sock = self.namespace.run(lambda: socket.socket(family, socket.SOCK_STREAM))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.ipv6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(("::", port))
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                sock.bind((address, port))
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            self.namespace.close()
            raise DataplaneError(f"metadata listener {address}:{port}: {exc}") from exc
        self.sock = sock

    def interface_of(self, conn: socket.socket) -> str | None:
        """The name of the interface ``conn`` came in on (None: not known, or an IPv6
        connection not made to the listener's address)."""
        try:
            if self.ipv6:
                local, _port, _flow, index = conn.getsockname()
                if ipaddress.ip_address(local.split("%")[0]) != ipaddress.ip_address(self.address):
                    return None
            else:
                index = ingress_index(conn.getsockopt(socket.IPPROTO_IP, IP_PKTOPTIONS, 256))
        except OSError:
            return None
        if index is None:
            return None
        try:
            return self.namespace.run(lambda: socket.if_indextoname(index))
        except OSError:
            return None  # the interface went away since

    def new_socket(self, family: int) -> socket.socket:
        """An unconnected TCP socket of the listener's namespace (for the agent's own
        connections from there, such as to nova-metadata in proxy mode)."""
        return self.namespace.run(lambda: socket.socket(family, socket.SOCK_STREAM))

    def close(self) -> None:
        self.sock.close()
        self.namespace.close()


def hold_address(netns: str | None, address: str, interface: str = "lo") -> None:
    """Put ``address``/32 on ``interface`` of namespace ``netns`` unless it is there
    (``ip addr replace`` is idempotent); ``DataplaneError`` when that fails."""
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    command = [*prefix, "addr", "replace", f"{address}/32", "dev", interface]
    if interface == "lo":
        command += ["label", ADDRESS_LABEL]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataplaneError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        raise DataplaneError(f"{' '.join(command)}: {done.stderr.strip()}")


__all__ = ["ADDRESS_LABEL", "NamespaceListener", "hold_address", "ingress_index"]
