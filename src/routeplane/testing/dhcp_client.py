"""A DHCPv4 client for many interfaces at once, and a flooder: for tests and benchmarks.

Real clients (``udhcpc``, ``dhclient``, ``dhcpcd``) prove that a guest is configured;
this one measures. It runs inside a VM namespace (``python -m
routeplane.testing.dhcp_client``) with one packet socket for all of the namespace's
interfaces, does DISCOVER → OFFER → REQUEST → ACK on each interface given, resending
what is unanswered every ``--retry`` seconds, and prints for each interface the address
it was given and the seconds from start to its ACK (JSON). ``flood`` sends a number of
DISCOVERs from one interface as fast as it can (the host must stay responsive to the
others). Bounded: every loop ends by count or by ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import time
from dataclasses import dataclass

from routeplane.dataplane import dhcp_packet as wire

ETH_P_IP = 0x0800
BROADCAST = bytes.fromhex("ffffffffffff")


@dataclass
class Client:
    """One interface's exchange."""

    interface: str
    mac: str
    xid: int
    offered: tuple[str, bytes] | None = None  # (address, server id) once offered
    address: str = ""  # once acknowledged
    seconds: float = 0.0

    def message(self) -> bytes:
        if self.offered is None:
            return wire.build_request(self.mac, wire.DISCOVER, self.xid)
        address, server = self.offered
        options = {wire.REQUESTED_IP: socket.inet_aton(address), wire.SERVER_ID: server}
        return wire.build_request(self.mac, wire.REQUEST, self.xid, options)


def packet_socket() -> socket.socket:
    """A packet socket for IPv4 on every interface of the caller's namespace."""
    return _packet_socket()


def _packet_socket() -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


def _send(sock: socket.socket, client: Client) -> None:
    sock.sendto(client.message(), (client.interface, ETH_P_IP, 0, 0, BROADCAST))


def _reply(packet: bytes) -> tuple[int, str, wire.Options] | None:
    """(xid, yiaddr, options) of a server's reply to a client, or None."""
    if len(packet) < 28 or packet[9] != wire.UDP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if int.from_bytes(packet[ihl + 2 : ihl + 4], "big") != wire.CLIENT_PORT:
        return None
    parsed = wire.parse_reply(packet)
    if parsed is None or len(packet) < ihl + 8 + 8:
        return None
    xid = int.from_bytes(packet[ihl + 8 + 4 : ihl + 8 + 8], "big")
    return xid, str(parsed[0]), parsed[1]


def lease(
    interfaces: dict[str, str], timeout: float, retry: float, sock: socket.socket | None = None
) -> dict[str, dict[str, object]]:
    """Lease an address on each interface (name → MAC); what each got and when. On
    ``sock`` (:func:`packet_socket`, made in the interfaces' namespace) when given."""
    own = sock is None
    sock = _packet_socket() if sock is None else sock
    start = time.monotonic()
    clients = {}
    for name, mac in interfaces.items():
        client = Client(name, mac, random.getrandbits(32))
        clients[client.xid] = client
        _send(sock, client)
    pending = set(clients)
    resend = start + retry
    while pending and time.monotonic() < start + timeout:
        sock.settimeout(max(0.001, min(resend, start + timeout) - time.monotonic()))
        try:
            got = _reply(sock.recv(2048))
        except TimeoutError:
            got = None
        now = time.monotonic()
        if got is not None and got[0] in pending:
            client = clients[got[0]]
            kind = got[2].get(wire.MESSAGE_TYPE)
            if kind == bytes((wire.OFFER,)) and client.offered is None:
                client.offered = (got[1], got[2].get(wire.SERVER_ID, b""))
                _send(sock, client)
            elif kind == bytes((wire.ACK,)) and client.offered is not None:
                client.address, client.seconds = got[1], now - start
                pending.discard(client.xid)
        if now >= resend:
            for xid in pending:
                _send(sock, clients[xid])
            resend = now + retry
    if own:
        sock.close()
    return {c.interface: {"address": c.address, "seconds": c.seconds} for c in clients.values()}


def flood(interface: str, mac: str, count: int) -> float:
    """Send ``count`` DISCOVERs from ``interface``; the seconds it took."""
    sock = _packet_socket()
    packet = wire.build_request(mac, wire.DISCOVER, 7)
    start = time.monotonic()
    for _ in range(count):
        try:
            sock.sendto(packet, (interface, ETH_P_IP, 0, 0, BROADCAST))
        except BlockingIOError:
            time.sleep(0.0001)  # the interface's queue is full: the flood goes on
    sock.close()
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(prog="dhcp_client")
    commands = parser.add_subparsers(dest="command", required=True)
    leasing = commands.add_parser("lease")
    leasing.add_argument("interfaces", nargs="+", metavar="NAME=MAC")
    leasing.add_argument("--timeout", type=float, default=5.0)
    leasing.add_argument("--retry", type=float, default=0.1)
    flooding = commands.add_parser("flood")
    flooding.add_argument("interface")
    flooding.add_argument("mac")
    flooding.add_argument("count", type=int)
    args = parser.parse_args()
    if args.command == "lease":
        wanted = dict(i.split("=", 1) for i in args.interfaces)
        print(json.dumps(lease(wanted, args.timeout, args.retry)))
    else:
        print(json.dumps({"seconds": flood(args.interface, args.mac, args.count)}))


if __name__ == "__main__":
    main()
