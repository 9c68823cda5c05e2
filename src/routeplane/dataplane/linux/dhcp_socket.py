"""The host's DHCP socket: one packet socket per host namespace that sees every DHCP
request arriving on any interface, and sends replies as frames to one MAC on one
interface.

Why a packet socket and not a UDP socket on port 67: a client without an address
broadcasts from 0.0.0.0, a renewing client unicasts to its gateway — an address the host
does not hold (it only stands for it) — and the server must know which tap each request
came in on and answer on that tap only, to a client that has no address yet (no ARP, no
route). An ``AF_PACKET``/``SOCK_DGRAM`` socket bound to ``ETH_P_IP`` on every interface
gets all of these, with the ingress interface and the sender's MAC in its address; the
kernel writes the Ethernet header of a reply. A classic BPF filter in the kernel passes
only unfragmented UDP to port 67, so the routed traffic of the host's VMs never wakes the
process. Packets the host sends itself (``PACKET_OUTGOING``) are dropped here.

The socket is created by the namespace's own thread (a socket belongs to the namespace
it was made in; interface names in its addresses are resolved there). What this module
must not do: decide anything about a packet, or send anywhere but the interface and MAC
it is given.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
from collections.abc import Sequence

from routeplane.dataplane.linux.host_socket import HostSocket

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
RECEIVE_BUFFER = 1 << 20  # ~600 full-size requests queued; beyond that the kernel drops

# ldb [9]; jeq UDP; ldh [6]; jset fragment -> drop; ldxb 4*([0]&0xf); ldh [x+2]; jeq 67
_FILTER = (
    (0x30, 0, 0, 9),
    (0x15, 0, 6, 17),
    (0x28, 0, 0, 6),
    (0x45, 4, 0, 0x3FFF),
    (0xB1, 0, 0, 0),
    (0x48, 0, 0, 2),
    (0x15, 0, 1, 67),
    (0x06, 0, 0, 0xFFFF),
    (0x06, 0, 0, 0),
)


def attach_filter(sock: socket.socket, program: Sequence[tuple[int, int, int, int]]) -> None:
    """Attach the classic BPF ``program``, size the receive buffer, and read away what
    arrived before: every packet read later has passed the filter."""
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while sock.recv(1):
            pass


class FrameSocket(HostSocket):
    """A packet socket for one ethertype (:attr:`ethertype`) behind a BPF filter
    (:attr:`program`): whole packets in with the ingress interface and the sender's MAC,
    whole packets out in a frame to one MAC on one interface."""

    ethertype = ETH_P_IP
    program: Sequence[tuple[int, int, int, int]] = _FILTER

    def _new(self) -> socket.socket:
        # every interface's packets of the type (a bind would name one interface)
        return socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(self.ethertype))

    def _configure(self, sock: socket.socket) -> None:
        attach_filter(sock, self.program)

    def frame(self, timeout: float) -> tuple[str, str, bytes] | None:
        """The next packet as (interface name, sender MAC, packet); None after
        ``timeout`` seconds, or for a packet the host sent itself."""
        self.sock.settimeout(timeout)
        try:
            packet, address = self.sock.recvfrom(2048)
        except TimeoutError:
            return None
        if address[2] == PACKET_OUTGOING:
            return None
        return str(address[0]), bytes(address[4][:6]).hex(":"), packet

    def send(self, interface: str, mac: str, packet: bytes) -> None:
        """``packet`` (a whole packet) in a frame to ``mac`` on ``interface``;
        ``OSError`` when the interface is gone or its queue full."""
        destination = bytes.fromhex(mac.replace(":", ""))
        self.sock.sendto(packet, (interface, self.ethertype, 0, 0, destination))


class DhcpSocket(FrameSocket):
    """DHCP requests in, replies out, in network namespace ``netns`` (None: our own)."""

    what = "DHCP packet socket"

    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        """The next request as (interface name, IPv4 packet): the client's MAC is in it."""
        got = self.frame(timeout)
        return None if got is None else (got[0], got[2])


__all__ = ["DhcpSocket", "FrameSocket", "attach_filter"]
