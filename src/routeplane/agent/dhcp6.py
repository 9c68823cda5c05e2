"""The host's DHCPv6 server: answers each VM's DHCPv6 client on its own tap, from the store.

The same shape as the DHCPv4 server (``agent/dhcp.py``): a :class:`TapService` following
the host's endpoint records into a table by tap, one packet socket in the host's
namespace (``dataplane/linux/dhcp6_socket.py``), and a pure decision
(``agent/dhcp6_lease.py``). A binding is the port's fixed IPv6 address, derived per
message, never stored: a changed subnet reaches the next Renew, and a restarted agent
answers as soon as its first snapshot is in. The answer goes from the tap's link-local
address (which the router advertisements also come from) to the client's address, in a
frame to the sender's MAC on the tap it asked on.

Bad input: a message that does not parse, from a MAC no port on that tap has, with a
DUID naming another MAC, or from a tap that is no port's, is dropped without a word at
INFO (DEBUG says why); a flooding tap is held to the token bucket of
:meth:`TapService.allowed` before anything is parsed. What it must not do: answer on any
interface but the one a message came in on, or write anything to the store.
"""

from __future__ import annotations

import logging
from typing import Protocol

from routeplane.agent.dhcp6_lease import answer
from routeplane.agent.tap_service import TapService
from routeplane.dataplane.dhcp6_packet import parse_request, wrap

LOG = logging.getLogger("routeplane.agent.dhcp6")


class Packet6Socket(Protocol):
    """``dataplane.linux.dhcp6_socket.Dhcp6Socket``, or a test's stand-in."""

    def receive(self, timeout: float) -> tuple[str, str, bytes] | None: ...

    def send(self, interface: str, mac: str, packet: bytes) -> None: ...

    def source(self, interface: str) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


class Dhcp6Service(TapService[Packet6Socket]):
    """Answers this host's VMs' DHCPv6 messages from a feed of the host's endpoint records."""

    counted = True
    name = "dhcp6"

    def handle(self, tap: str, mac: str, packet: bytes) -> None:
        """Answer one message that came in on ``tap`` from ``mac`` (or drop it)."""
        on_tap = self.admitted(tap)
        if not on_tap:
            self.tally.add("refused")
            return
        request = parse_request(packet)
        if request is None:
            self.tally.add("refused")
            LOG.debug("dhcp6: malformed message on %s dropped", tap)
            return
        reply = answer(request, on_tap, mac)
        if reply is None:
            self.tally.add("refused")
            LOG.debug("dhcp6: nothing for %s (type %d) on %s", mac, request.kind, tap)
            return
        try:
            _index, source = self.sock.source(tap)
            self.sock.send(tap, mac, wrap(source, reply.destination, reply.payload))
            self.tally.add("answered")
        except OSError as exc:
            self.tally.add("failed")
            LOG.debug("dhcp6: cannot answer on %s: %s", tap, exc)


__all__ = ["Dhcp6Service", "Packet6Socket"]
