"""What the host's per-namespace sockets share: a socket made by the namespace's own
thread (a socket belongs for its whole life to the namespace it was made in), closed on
any error while it is configured, and the link-local address of one of the namespace's
interfaces (the source of everything the host says to a guest over IPv6).

The DHCPv4 and DHCPv6 packet sockets and the router-advertisement socket are
:class:`HostSocket`\\ s; each says how its socket is made and configured. What this
module must not do: send or receive anything itself.
"""

from __future__ import annotations

import ipaddress
import socket

from routeplane.dataplane.linux.namespace import Namespace
from routeplane.dataplane.model import METADATA_ADDRESS6
from routeplane.model.errors import DataplaneError

IF_INET6 = "/proc/thread-self/net/if_inet6"  # the calling thread's namespace's addresses
SCOPE_LINK = 0x20
_UNUSABLE = 0x40 | 0x08 | 0x20  # tentative, DAD failed, deprecated (IFA_F_*)
_NOT_OURS = ipaddress.IPv6Address(METADATA_ADDRESS6).packed.hex()  # every tap's, a service's


def link_local(if_inet6: str, index: int) -> bytes | None:
    """Interface ``index``'s usable link-local address (16 bytes) in the text of
    ``/proc/net/if_inet6``; None while it has none (tentative, or IPv6 off). The
    metadata address every tap also holds is never it."""
    for line in if_inet6.splitlines():
        fields = line.split()
        if len(fields) < 6 or int(fields[1], 16) != index or fields[0] == _NOT_OURS:
            continue
        if int(fields[3], 16) == SCOPE_LINK and not int(fields[4], 16) & _UNUSABLE:
            return bytes.fromhex(fields[0])
    return None


class HostSocket:
    """One socket in network namespace ``netns`` (None: our own); subclasses say how
    it is made (:meth:`_new`) and configured (:meth:`_configure`)."""

    what = "socket"  # for the error a failure to make it raises

    def __init__(self, netns: str | None) -> None:
        self.namespace = Namespace(netns)
        try:
            self.sock = self.namespace.run(self._make)
        except OSError as exc:
            self.namespace.close()
            raise DataplaneError(f"{self.what}: {exc}") from exc

    def _make(self) -> socket.socket:
        sock = self._new()
        try:
            self._configure(sock)
        except OSError:
            sock.close()
            raise
        return sock

    def _new(self) -> socket.socket:
        raise NotImplementedError

    def _configure(self, sock: socket.socket) -> None:
        """Options and filters, before anything is read (the default: none)."""

    def source(self, interface: str) -> tuple[int, bytes]:
        """(index, usable link-local address) of ``interface``; ``OSError`` when it is
        gone or its link-local address is not usable yet (duplicate address detection)."""

        def read() -> tuple[int, bytes]:
            index = socket.if_nametoindex(interface)
            with open(IF_INET6, encoding="ascii") as table:
                address = link_local(table.read(), index)
            if address is None:
                raise OSError(f"{interface} has no usable link-local address yet")
            return index, address

        return self.namespace.run(read)

    def close(self) -> None:
        self.sock.close()
        self.namespace.close()


__all__ = ["HostSocket", "link_local"]
