"""Unit: what the host advertises on a VM's tap (``dataplane.ra_packet``) and when
(``agent.router_adverts``), with a stand-in socket and clock; the bytes are checked
field by field against RFC 4861/8106's layout."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from routeplane.agent.router_adverts import INTERVAL, MIN_GAP, RouterAdverts
from routeplane.dataplane.linux.host_socket import link_local
from routeplane.dataplane.ra_packet import advert_for, encode
from routeplane.store import KeyValue
from routeplane.store.watcher import Snapshot

pytestmark = pytest.mark.unit

PREFIX = "/routeplane/v1/endpoints/node1/"


def v6(mode: str, dns: list[str] | None = None) -> dict[str, Any]:
    return {
        "ip_address": "2001:db8:1::5",
        "subnet_id": "s6",
        "cidr": "2001:db8:1::/64",
        "gateway_ip": "2001:db8:1::1",
        "dns_nameservers": dns or [],
        "host_routes": [],
        "enable_dhcp": True,
        "ipv6_address_mode": mode,
        "ipv6_ra_mode": mode,
    }


V4 = {
    "ip_address": "10.0.0.5",
    "subnet_id": "s4",
    "cidr": "10.0.0.0/24",
    "gateway_ip": "10.0.0.1",
    "dns_nameservers": ["10.0.0.2"],
    "host_routes": [],
    "enable_dhcp": True,
}


def options(message: bytes) -> dict[int, bytes]:
    found, at = {}, 16
    while at < len(message):
        kind, length = message[at], message[at + 1] * 8
        found[kind] = message[at : at + length]
        at += length
    return found


@pytest.mark.parametrize(
    ("mode", "flags", "autonomous"),
    [("slaac", 0x00, 0x40), ("dhcpv6-stateless", 0x40, 0x40), ("dhcpv6-stateful", 0x80, 0x00)],
)
def test_the_flags_follow_the_subnets_mode_and_nothing_is_on_link(
    mode: str, flags: int, autonomous: int
) -> None:
    advert = advert_for([V4, v6(mode, ["2001:db8::53", "10.0.0.2"])], 1450)  # type: ignore[list-item]
    assert advert is not None
    message = encode(advert)
    kind, code, _, hops, got_flags, lifetime = struct.unpack("!BBHBBH", message[:8])
    assert (kind, code, hops, got_flags, lifetime) == (134, 0, 64, flags, 1800)
    found = options(message)
    prefix = found[3]
    assert prefix[2] == 64
    assert prefix[3] == autonomous  # L (0x80) never: everything goes through the host
    assert prefix[16:32] == bytes.fromhex("20010db8000100000000000000000000")
    assert struct.unpack("!I", found[5][4:8]) == (1450,)
    assert found[25][8:24] == bytes.fromhex("20010db8000000000000000000000053")
    assert len(found[25]) == 24  # the IPv4 DNS server is not in it


def test_a_port_without_an_ipv6_mode_gets_no_advert() -> None:
    assert advert_for([V4], 1500) is None  # type: ignore[list-item]
    assert advert_for([v6("")], 1500) is None  # type: ignore[list-item]


class Socket:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        return None

    def send(self, interface: str, message: bytes) -> None:
        self.sent.append((interface, message))

    def close(self) -> None:
        pass


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def service(*records: dict[str, Any]) -> tuple[RouterAdverts, Socket, Clock]:
    sock, clock = Socket(), Clock()
    adverts = RouterAdverts("node1", sock, None, clock=clock)  # type: ignore[arg-type]
    items = {PREFIX + r["port_id"]: KeyValue(PREFIX + r["port_id"], r, 1, 1, 1) for r in records}
    adverts.leases.take(Snapshot(items, 1), PREFIX)
    return adverts, sock, clock


RS = bytes([133, 0, 0, 0, 0, 0, 0, 0])
PORT = {
    "port_id": "p1",
    "interface": "tapp1",
    "mac_address": "fa:16:3e:00:00:01",
    "addressing": [v6("slaac")],
    "mtu": 1450,
    "version": 4,
}
STATIC = {
    "port_id": "p2",
    "interface": "tapp2",
    "mac_address": "fa:16:3e:00:00:02",
    "addressing": [V4],
    "mtu": 1450,
    "version": 4,
}


def test_new_taps_are_advertised_at_once_then_every_interval() -> None:
    adverts, sock, clock = service(PORT, STATIC)
    adverts.tick()
    assert [tap for tap, _ in sock.sent] == ["tapp1"]  # tapp2's port has no IPv6 mode
    clock.now += INTERVAL - 1
    adverts.tick()
    assert len(sock.sent) == 1
    clock.now += 1
    adverts.tick()
    assert len(sock.sent) == 2


def test_a_solicitation_is_answered_on_its_tap_but_a_flood_is_not() -> None:
    adverts, sock, clock = service(PORT)
    for _ in range(1000):
        adverts.handle("tapp1", RS)
    assert [tap for tap, _ in sock.sent] == ["tapp1"]
    clock.now += MIN_GAP
    adverts.handle("tapp1", RS)
    adverts.handle("tapother", RS)  # no port's tap
    adverts.handle("tapp1", b"\x87\x00")  # not a solicitation
    assert [tap for tap, _ in sock.sent] == ["tapp1", "tapp1"]


IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
fd000000000000000000000000000003 02 40 00 80     tapx
fe8000000000000024291ffffe629307 02 40 20 80     tapx
fe80000000000000f8163efffe000001 03 40 20 c0   tapnew
"""


def test_the_source_is_the_taps_link_local_address_once_it_is_usable() -> None:
    assert link_local(IF_INET6, 2) == bytes.fromhex("fe8000000000000024291ffffe629307")
    assert link_local(IF_INET6, 3) is None  # tentative (0x40): duplicate address detection
    assert link_local(IF_INET6, 1) is None  # loopback: no link-local address
    assert link_local(IF_INET6, 9) is None  # gone
