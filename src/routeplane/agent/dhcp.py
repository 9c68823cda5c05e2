"""The host's DHCPv4 server: answers each VM's DHCP client on its own tap, from the store.

It follows the host's endpoint records (a branch of the reconcile loop's follower, as
the metadata service does) into a table by tap (``agent/tap_service.py``), and answers every request from one
packet socket in the host's namespace (``dataplane/linux/dhcp_socket.py``) with the lease
decision (``agent/dhcp_lease.py``). Two threads: the follower's, which swaps records in
the table, and the server's, which reads a request, looks its tap up and answers. A
change in the store (a new port, a new fixed IP, a subnet's DNS servers, the network's
MTU) is in the table within the follower's latency and in the next answer — no server
to restart, no lease file to rewrite — and leases are derived, never stored, so a
restarted agent answers renewals as before as soon as its first snapshot is in.

Bad input: a request that does not parse, comes from a MAC no port on that tap has, or
from a tap that is no port's, is dropped without a word at INFO (DEBUG says why). A tap
that floods has at most :data:`BURST` requests looked at once and :data:`RATE` a second
after that (counted before parsing, so the rest of a flood costs a dictionary lookup
each, and the other taps' requests behind it in the queue wait microseconds, not the
~0.2 ms a decision takes); the buckets exist only for taps that have ports, so memory is bounded by the
host's ports, and the kernel bounds the socket's queue. What it must not do: answer on
any interface but the one a request came in on, or write anything to the store.
"""

from __future__ import annotations

import logging
from typing import Protocol

from routeplane.agent.dhcp_lease import answer
from routeplane.agent.tap_service import BURST, RATE, TapService
from routeplane.dataplane.dhcp_packet import parse_request

LOG = logging.getLogger("routeplane.agent.dhcp")


class PacketSocket(Protocol):
    """``dataplane.linux.dhcp_socket.DhcpSocket``, or a test's stand-in."""

    def receive(self, timeout: float) -> tuple[str, bytes] | None: ...

    def send(self, interface: str, mac: str, packet: bytes) -> None: ...

    def close(self) -> None: ...


class DhcpService(TapService[PacketSocket]):
    """Answers this host's VMs' DHCP requests from a feed of the host's endpoint records."""

    counted = True
    name = "dhcp"

    def handle(self, tap: str, packet: bytes) -> None:
        """Answer one request that came in on ``tap`` (or drop it)."""
        on_tap = self.admitted(tap)
        if not on_tap:
            self.tally.add("refused")
            return
        request = parse_request(packet)
        if request is None:
            self.tally.add("refused")
            LOG.debug("dhcp: malformed request on %s dropped", tap)
            return
        try:
            reply = answer(request, on_tap)
        except ValueError as exc:  # a record the lease cannot be made from
            self.tally.add("failed")
            LOG.debug("dhcp: no answer on %s for %s: %s", tap, request.mac, exc)
            return
        if reply is None:
            self.tally.add("refused")
            LOG.debug("dhcp: nothing for %s on %s", request.mac, tap)
            return
        try:
            self.sock.send(tap, reply.mac, reply.packet)
            self.tally.add("answered")
        except OSError as exc:
            self.tally.add("failed")
            LOG.debug("dhcp: cannot answer on %s: %s", tap, exc)


__all__ = ["BURST", "RATE", "DhcpService", "PacketSocket"]
