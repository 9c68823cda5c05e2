"""Unit: the DHCPv6 codec (``dataplane.dhcp6_packet``: untrusted bytes in, whole IPv6
packets out) and the decision (``agent.dhcp6_lease``: which record, which message, which
options), without sockets; a client's messages are built here field by field."""

from __future__ import annotations

import ipaddress
import random
import struct
from typing import Any, cast

import pytest

from routeplane.agent.dhcp6_lease import LEASE, SERVER_DUID, T1, T2, answer
from routeplane.dataplane import dhcp6_packet as wire
from routeplane.dataplane.dhcp_packet import checksum
from routeplane.model.endpoint import EndpointRecord

pytestmark = pytest.mark.unit

MAC = "fa:16:3e:00:00:01"
CLIENT = ipaddress.IPv6Address("fe80::f816:3eff:fe00:1")
ADDRESS = "2001:db8:1::5"
DUID_LL = struct.pack("!HH", 3, 1) + bytes.fromhex(MAC.replace(":", ""))
IAID = b"\x00\x00\x00\x07"


def v6(mode: str) -> dict[str, Any]:
    return {
        "ip_address": ADDRESS,
        "subnet_id": "s6",
        "cidr": "2001:db8:1::/64",
        "gateway_ip": "2001:db8:1::1",
        "dns_nameservers": ["2001:db8::53", "10.0.0.2"],
        "host_routes": [],
        "enable_dhcp": True,
        "ipv6_address_mode": mode,
        "ipv6_ra_mode": mode,
    }


def record(mode: str = "dhcpv6-stateful") -> EndpointRecord:
    return cast(
        EndpointRecord,
        {
            "port_id": "p1",
            "interface": "tapp1",
            "mac_address": MAC,
            "addressing": [v6(mode)],
            "version": 4,
        },
    )


def client_packet(kind: int, *options: bytes) -> bytes:
    """A client's message in an IPv6/UDP packet to ff02::1:2 (checksum not checked)."""
    payload = bytes([kind]) + b"\x01\x02\x03" + b"".join(options)
    udp = struct.pack("!HHHH", 546, 547, 8 + len(payload), 0) + payload
    dest = ipaddress.IPv6Address("ff02::1:2").packed
    return struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 1, CLIENT.packed, dest) + udp


def ia(*addresses: str) -> bytes:
    inner = b"".join(wire.option(5, ipaddress.IPv6Address(a).packed + bytes(8)) for a in addresses)
    return wire.option(wire.IA_NA, IAID + bytes(8) + inner)


def decide(kind: int, *options: bytes, rec: EndpointRecord | None = None, mac: str = MAC) -> Any:
    request = wire.parse_request(client_packet(kind, *options))
    assert request is not None
    return answer(request, [rec or record()], mac)


def options_of(payload: bytes) -> dict[int, list[bytes]]:
    found: dict[int, list[bytes]] = {}
    at = 4
    while at < len(payload):
        code, length = struct.unpack_from("!HH", payload, at)
        found.setdefault(code, []).append(payload[at + 4 : at + 4 + length])
        at += 4 + length
    return found


def addresses_in(ia_value: bytes) -> list[tuple[str, int, int]]:
    found = []
    for code, value in options_of(b"\0\0\0\0" + ia_value[12:]).items():
        if code == 5:
            for v in value:
                preferred, valid = struct.unpack("!II", v[16:24])
                found.append((str(ipaddress.IPv6Address(v[:16])), preferred, valid))
    return found


CID = wire.option(wire.CLIENTID, DUID_LL)
SID = wire.option(wire.SERVERID, SERVER_DUID)


def test_a_solicit_is_advertised_the_ports_address_and_dns() -> None:
    got = decide(wire.SOLICIT, CID, ia(), wire.option(wire.ORO, struct.pack("!H", 23)))
    assert got.destination == CLIENT
    assert got.payload[0] == wire.ADVERTISE
    assert got.payload[1:4] == b"\x01\x02\x03"  # the transaction, echoed
    found = options_of(got.payload)
    assert found[wire.CLIENTID] == [DUID_LL]
    assert found[wire.SERVERID] == [SERVER_DUID]
    (ia_value,) = found[wire.IA_NA]
    assert ia_value[:4] == IAID
    assert struct.unpack("!II", ia_value[4:12]) == (T1, T2)
    assert addresses_in(ia_value) == [(ADDRESS, LEASE, LEASE)]
    assert found[wire.DNS_SERVERS] == [ipaddress.IPv6Address("2001:db8::53").packed]


def test_rapid_commit_gets_a_reply_at_once() -> None:
    got = decide(wire.SOLICIT, CID, ia(), wire.option(wire.RAPID_COMMIT, b""))
    assert got.payload[0] == wire.REPLY
    assert wire.RAPID_COMMIT in options_of(got.payload)


def test_request_and_renew_must_name_this_server_rebind_must_not() -> None:
    assert decide(wire.REQUEST, CID, SID, ia()).payload[0] == wire.REPLY
    assert decide(wire.RENEW, CID, SID, ia(ADDRESS)).payload[0] == wire.REPLY
    assert decide(wire.REBIND, CID, ia(ADDRESS)).payload[0] == wire.REPLY
    other = wire.option(wire.SERVERID, b"\x00\x03\x00\x01abcdef")
    assert decide(wire.REQUEST, CID, other, ia()) is None
    assert decide(wire.REQUEST, CID, ia()) is None
    assert decide(wire.SOLICIT, CID, SID, ia()) is None


def test_a_renewed_address_no_longer_the_ports_is_given_lifetime_zero() -> None:
    got = decide(wire.RENEW, CID, SID, ia("2001:db8:1::99"))
    (ia_value,) = options_of(got.payload)[wire.IA_NA]
    assert addresses_in(ia_value) == [(ADDRESS, LEASE, LEASE), ("2001:db8:1::99", 0, 0)]


def test_only_the_ports_own_mac_and_duid_get_an_answer() -> None:
    assert decide(wire.SOLICIT, CID, ia(), mac="fa:16:3e:00:00:02") is None
    foreign = wire.option(wire.CLIENTID, struct.pack("!HH", 3, 1) + b"\xfa\x16\x3e\x00\x00\x02")
    assert decide(wire.SOLICIT, foreign, ia()) is None
    uuid_duid = wire.option(wire.CLIENTID, b"\x00\x04" + bytes(16))  # names no MAC
    assert decide(wire.SOLICIT, uuid_duid, ia()) is not None
    assert decide(wire.SOLICIT, ia()) is None  # no client identifier


def test_stateless_and_modeless_ports() -> None:
    stateless = record("dhcpv6-stateless")
    assert decide(wire.SOLICIT, CID, ia(), rec=stateless) is None  # no address to give
    got = decide(wire.INFORMATION_REQUEST, CID, rec=stateless)
    assert got.payload[0] == wire.REPLY
    assert wire.IA_NA not in options_of(got.payload)
    assert options_of(got.payload)[wire.DNS_SERVERS] == [
        ipaddress.IPv6Address("2001:db8::53").packed
    ]
    assert decide(wire.INFORMATION_REQUEST, CID, rec=record("slaac")) is None
    assert decide(wire.SOLICIT, CID, ia(), rec=record("")) is None


def test_release_is_acknowledged_and_confirm_gets_nothing() -> None:
    got = decide(wire.RELEASE, CID, SID, ia(ADDRESS))
    assert options_of(got.payload)[13] == [b"\x00\x00"]
    assert decide(wire.CONFIRM, CID, ia(ADDRESS)) is None


def test_the_answer_is_a_whole_packet_with_a_valid_udp_checksum() -> None:
    got = decide(wire.SOLICIT, CID, ia())
    source = ipaddress.IPv6Address("fe80::1").packed
    packet = wire.wrap(source, got.destination, got.payload)
    first, length, next_header, hops, src, dst = struct.unpack_from("!IHBB16s16s", packet)
    assert (first >> 28, next_header, hops, src, dst) == (6, 17, 255, source, CLIENT.packed)
    udp = packet[40:]
    assert length == len(udp)
    assert struct.unpack("!HH", udp[:4]) == (547, 546)
    assert checksum(src + dst + struct.pack("!I3xB", len(udp), 17) + udp) == 0


def test_malformed_packets_parse_to_nothing_and_never_raise() -> None:
    good = client_packet(wire.SOLICIT, CID, ia())
    assert wire.parse_request(good) is not None
    assert wire.parse_request(good[:60]) is None  # an option cut short
    assert wire.parse_request(b"\x45" + good[1:]) is None  # not IPv6
    assert wire.parse_request(good + bytes(2000)) is None  # oversize
    many = client_packet(wire.SOLICIT, *[wire.option(99, b"")] * 100)
    assert wire.parse_request(many) is None
    rng = random.Random(12)
    for _ in range(2000):
        noise = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            noise[rng.randrange(len(noise))] = rng.randrange(256)
        request = wire.parse_request(bytes(noise[: rng.randint(0, len(noise))]))
        if request is not None:
            answer(request, [record()], MAC)
