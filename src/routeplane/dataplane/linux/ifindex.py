"""Interface indexes by name, looked up from any thread.

``socket.if_nametoindex`` asks the namespace of the calling thread, so for another
namespace each lookup would be a hand-off to the thread that lives there (see
``namespace``): tens to hundreds of microseconds when other threads hold the GIL, on
every change the agent applies. The ``SIOCGIFINDEX`` ioctl instead asks the namespace
of the *socket* it is made on, so one datagram socket created in the namespace (once,
by that thread) answers from whichever thread asks, in a couple of microseconds, and
always as the kernel sees it now (no cache to go stale when a tap is recreated).
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
from collections.abc import Iterable

SIOCGIFINDEX = 0x8933  # linux/sockios.h
_IFREQ = struct.Struct("16si20x")  # struct ifreq: name, then the union (ifr_ifindex first)


class IndexLookup:
    """Name → index in the namespace ``sock`` was created in."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def open(cls) -> IndexLookup:
        """A lookup for the calling thread's namespace (call it from inside it)."""
        return cls(socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC))

    def index(self, name: str) -> int | None:
        """The interface's index, or None when there is no interface of that name."""
        raw = name.encode()
        if not raw or len(raw) >= 16 or b"\0" in raw:
            return None
        try:
            answer = fcntl.ioctl(self._sock.fileno(), SIOCGIFINDEX, _IFREQ.pack(raw, 0))
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        return int(_IFREQ.unpack(answer)[1])

    def indexes(self, names: Iterable[str]) -> dict[str, int]:
        """Indexes by name, for the names that exist."""
        found = {}
        for name in names:
            index = self.index(name)
            if index is not None:
                found[name] = index
        return found

    def close(self) -> None:
        self._sock.close()


__all__ = ["IndexLookup"]
