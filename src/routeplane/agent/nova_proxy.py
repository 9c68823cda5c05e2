"""Proxy mode: a cloud that runs Nova's metadata API gets the guest's questions forwarded.

With ``routeplane agent --nova-metadata URL --metadata-secret-file FILE``, the metadata
service answers its own ``/routeplane/v1/…`` as always and forwards every OpenStack and
EC2 request to nova-metadata, so that what only Nova knows (user data, SSH keys,
instance metadata) reaches the guest. Nova must be told which instance asks, and must
be able to trust it, so each forwarded request carries what Neutron's metadata proxy
sends: ``X-Instance-ID`` (the port's ``device_id``), ``X-Tenant-ID`` (its project),
``X-Forwarded-For`` (the VM's address) and ``X-Instance-ID-Signature``, the HMAC-SHA256
of the instance id keyed with the secret Nova and the proxy share (hex digest). The
asker is identified by the host as before (tap and source address); nothing the guest
sends chooses the instance.

Nova's answer is passed back with its status and content type (200, 400, 403, 404,
409); a failure of Nova (5xx) is a 500, an unreachable or too slow one 502, an answer
over ``MAX_BODY`` bytes 502. The connection is made from a socket the caller provides
(the agent's is made in the host's namespace, where nova-metadata is reachable).

What this module must not do: forward a request for a port without an instance, or let
the guest set any of the four headers.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from routeplane.agent.metadata_http import Answer, Raw

LOG = logging.getLogger("routeplane.agent")
TIMEOUT = 10.0
MAX_BODY = 1 << 20  # Nova caps user data at 64 KiB; anything much larger is no answer
PASSED = (200, 400, 403, 404, 409)  # Nova's answers a guest is shown as they are

SocketMaker = Callable[[int], socket.socket]  # address family -> an unconnected TCP socket


def sign(secret: bytes, instance_id: str) -> str:
    """``X-Instance-ID-Signature``: Nova recomputes it with the shared secret."""
    return hmac.new(secret, instance_id.encode(), hashlib.sha256).hexdigest()


def proxy_headers(secret: bytes, instance_id: str, project_id: str, source: str) -> dict[str, str]:
    """The headers that tell nova-metadata who asks."""
    return {
        "X-Forwarded-For": source,
        "X-Instance-ID": instance_id,
        "X-Tenant-ID": project_id,
        "X-Instance-ID-Signature": sign(secret, instance_id),
    }


def _tcp_socket(family: int) -> socket.socket:
    return socket.socket(family, socket.SOCK_STREAM)


class _Connection(http.client.HTTPConnection):
    """An HTTP connection whose socket comes from a :data:`SocketMaker`."""

    def __init__(self, host: str, port: int, timeout: float, make: SocketMaker) -> None:
        super().__init__(host, port, timeout=timeout)
        self._make = make

    def connect(self) -> None:
        family, _, _, _, address = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[
            0
        ]
        sock = self._make(family)
        try:
            sock.settimeout(self.timeout)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class NovaProxy:
    """Forwards a guest's metadata request to nova-metadata at ``url`` (``http://``)."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout: float = TIMEOUT,
        make_socket: SocketMaker = _tcp_socket,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"nova-metadata URL must be http://HOST[:PORT]: {url!r}")
        if not secret:
            raise ValueError("the metadata proxy's shared secret is empty")
        self.url = url
        self.host, self.port = parts.hostname, parts.port or 8775
        self.prefix = parts.path.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self.make_socket = make_socket

    def using(self, make_socket: SocketMaker) -> NovaProxy:
        """The same proxy, connecting from sockets ``make_socket`` makes."""
        return NovaProxy(self.url, self.secret, timeout=self.timeout, make_socket=make_socket)

    def forward(self, target: str, instance_id: str, project_id: str, source: str) -> Answer:
        """Nova's answer to ``GET target`` (path and query) asked by ``instance_id``."""
        headers = proxy_headers(self.secret, instance_id, project_id, source)
        conn = _Connection(self.host, self.port, self.timeout, self.make_socket)
        try:
            conn.request("GET", self.prefix + target, headers=headers)
            response = conn.getresponse()
            body = response.read(MAX_BODY + 1)
        except (OSError, http.client.HTTPException) as exc:
            LOG.warning("metadata: nova-metadata at %s:%d: %s", self.host, self.port, exc)
            return 502, {"error": "the remote metadata server is unreachable"}
        finally:
            conn.close()
        if len(body) > MAX_BODY:
            return 502, {"error": "the remote metadata server's answer is too large"}
        if response.status not in PASSED:
            LOG.warning("metadata: nova-metadata answered %d for %s", response.status, target)
            return 500, {"error": "the remote metadata server failed"}
        content_type = response.getheader("Content-Type") or "application/octet-stream"
        return response.status, Raw(content_type, body)


__all__ = ["MAX_BODY", "NovaProxy", "SocketMaker", "proxy_headers", "sign"]
