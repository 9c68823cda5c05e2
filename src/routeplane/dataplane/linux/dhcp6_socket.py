"""The host's DHCPv6 socket: one packet socket per host namespace that sees every DHCPv6
message a guest sends on any interface, and sends answers as frames to one MAC on one
interface.

Why a packet socket, as for DHCPv4 (``dhcp_socket.py``), and not a UDP socket on port
547: the server must know the ingress tap *and* the sender's MAC (a guest is identified
by its tap and MAC, never by what it writes in its DUID), and a UDP socket would have to
join ff02::1:2 on every tap as taps come and go, behind the host's input policy. An
``AF_PACKET``/``SOCK_DGRAM`` socket bound to ``ETH_P_IPV6`` gets every message with both;
a classic BPF filter in the kernel passes only UDP to port 547 straight after the IPv6
header, so the VMs' routed traffic never wakes the process. An answer is a whole IPv6
packet from the tap's link-local address (``HostSocket.source``); the kernel writes
its Ethernet header. What this module must not do: decide anything about a message, or
send anywhere but the interface and MAC it is given.
"""

from __future__ import annotations

from routeplane.dataplane.linux.dhcp_socket import FrameSocket

ETH_P_IPV6 = 0x86DD

# ldb [6]; jeq UDP; ldh [42]; jeq 547 -> accept; else drop
_FILTER = (
    (0x30, 0, 0, 6),
    (0x15, 0, 3, 17),
    (0x28, 0, 0, 42),
    (0x15, 0, 1, 547),
    (0x06, 0, 0, 0xFFFF),
    (0x06, 0, 0, 0),
)


class Dhcp6Socket(FrameSocket):
    """DHCPv6 messages in, answers out, in network namespace ``netns`` (None: our own)."""

    what = "DHCPv6 packet socket"
    ethertype = ETH_P_IPV6
    program = _FILTER

    def receive(self, timeout: float) -> tuple[str, str, bytes] | None:
        """The next message as (interface name, sender MAC, IPv6 packet)."""
        return self.frame(timeout)


__all__ = ["Dhcp6Socket"]
