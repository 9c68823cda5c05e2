"""Health probes from the host's network namespace: a TCP connect, or an HTTP GET.

The agent may run outside the host's namespace (the lab), and a socket belongs to the
namespace it was created in; so the socket is created by the namespace's own thread
(``Namespace.run``) and then used from the calling thread, which may be any of the
health checker's workers. A probe is healthy when the connection is accepted (TCP) or
the answer's status is 2xx or 3xx (HTTP), within the timeout.
"""

from __future__ import annotations

import ipaddress
import socket

from routeplane.dataplane.health import Check
from routeplane.dataplane.linux.namespace import Namespace


class NamespaceProbe:
    """Probes from network namespace ``netns`` (``None``: the caller's own)."""

    def __init__(self, netns: str | None) -> None:
        self.namespace = Namespace(netns)

    def __call__(self, check: Check, timeout: float) -> bool:
        address, port = check.address, check.port
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        sock = self.namespace.run(lambda: socket.socket(family, socket.SOCK_STREAM))
        with sock:
            sock.settimeout(timeout)
            try:
                sock.connect((address, port))
                if check.type != "http":
                    return True
                request = f"GET {check.path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: routeplane\r\n\r\n"
                sock.sendall(request.encode())
                status = sock.recv(64).split(b" ", 2)
            except OSError:
                return False
        return len(status) >= 2 and status[1][:1] in (b"2", b"3")

    def close(self) -> None:
        self.namespace.close()


__all__ = ["NamespaceProbe"]
