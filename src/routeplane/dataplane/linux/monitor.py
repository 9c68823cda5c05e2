"""Link events: a netlink socket subscribed to the namespace's link group.

The agent learns that a tap appeared, came up, lost carrier or was recreated (a rebooted
VM) the moment the kernel says so, instead of at its next periodic read. The socket is
created in the namespace it watches (by the caller, through ``Namespace.run``), never
blocks, and is separate from the request socket so unsolicited messages never mix with
acknowledgements.

What this module must not do: send anything, or decide what a change means (the
caller does): it only hands over the parsed messages and says when some were lost.
"""

from __future__ import annotations

import contextlib
import errno
import socket

from routeplane.dataplane.linux import rtnl


class LinkMonitor:
    """A NETLINK_ROUTE socket subscribed to the link group, read without blocking.

    The kernel queues a message for every change of every interface until it is read;
    if the queue fills, the excess is dropped and the next read reports ``ENOBUFS``, so a
    reader knows to read every link again rather than trust what it missed.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, rtnl.SO_RCVBUFFORCE, rtnl.BUFFER)
        sock.bind((0, 1 << (rtnl.RTNLGRP_LINK - 1)))
        sock.setblocking(False)

    @classmethod
    def open(cls) -> LinkMonitor:
        """Subscribed in the calling thread's network namespace."""
        return rtnl.on_route_socket(cls)

    def drain(self, limit: int = 10_000) -> tuple[list[rtnl.LinkChange], bool]:
        """Every queued change, oldest first, and whether some were lost (``ENOBUFS``).
        At most ``limit`` datagrams per call; the rest wait for the next one."""
        changes: list[rtnl.LinkChange] = []
        lost = False
        for _ in range(limit):
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                lost = True
                continue
            changes.extend(rtnl.parse_link_changes(data))
        return changes, lost

    def close(self) -> None:
        self._sock.close()


__all__ = ["LinkMonitor"]
