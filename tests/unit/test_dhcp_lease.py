"""Unit: DHCPv4 on the wire (``dataplane.dhcp_packet``) and the lease decision
(``agent.dhcp_lease``): what a client's request parses to, what the host answers whom,
and that malformed or foreign requests get nothing and raise nothing."""

from __future__ import annotations

import ipaddress
import random
import struct
from typing import Any, cast

import pytest

from routeplane.agent import dhcp_lease
from routeplane.agent.tap_service import Leases
from routeplane.dataplane import dhcp_packet as wire
from routeplane.model.endpoint import Addressing, EndpointRecord, encode
from routeplane.services.core.endpoints import RecordInputs, endpoint_record
from routeplane.store import Event, EventType, KeyValue
from routeplane.store.watcher import Snapshot

pytestmark = pytest.mark.unit

MAC = "fa:16:3e:00:00:01"
ADDRESSING: Any = {
    "ip_address": "10.28.0.13", "subnet_id": "s4", "cidr": "10.28.0.0/16",
    "gateway_ip": "10.28.0.1", "dns_nameservers": ["10.0.0.53", "10.0.0.54"],
    "host_routes": [], "enable_dhcp": True,
}  # fmt: skip
PORT: dict[str, Any] = {
    "id": "9a7e0868-da7a-419e-a7ad-9d37e11091b8", "network_id": "n", "project_id": "p",
    "binding:host_id": "node1", "mac_address": MAC.upper(), "name": "vm1",
    "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.28.0.13"}],
}  # fmt: skip


def record(**changes: Any) -> EndpointRecord:
    addressing = cast(Addressing, {**ADDRESSING, **changes.pop("addressing", {})})
    port = {**PORT, **changes}
    return endpoint_record(port, [], RecordInputs(["10.28.0.1"], [addressing], 1450))


def ask(kind: int, mac: str = MAC, **options: bytes) -> wire.Request:
    codes = {"requested": wire.REQUESTED_IP, "server": wire.SERVER_ID}
    parsed = wire.parse_request(
        wire.build_request(mac, kind, 7, {codes[k]: v for k, v in options.items()})
    )
    assert parsed is not None
    return parsed


def reply_of(request: wire.Request, *records: EndpointRecord) -> tuple[Any, wire.Options]:
    reply = dhcp_lease.answer(request, records or [record()])
    assert reply is not None
    parsed = wire.parse_reply(reply.packet)
    assert parsed is not None
    return parsed


def test_a_discover_gets_the_port_address_with_the_whole_subnet_mask_and_all_options() -> None:
    yiaddr, options = reply_of(ask(wire.DISCOVER))
    assert yiaddr == ipaddress.IPv4Address("10.28.0.13")
    assert options[wire.MESSAGE_TYPE] == bytes((wire.OFFER,))
    assert options[wire.SUBNET_MASK] == ipaddress.IPv4Address("255.255.0.0").packed
    assert options[wire.ROUTER] == options[wire.SERVER_ID] == bytes((10, 28, 0, 1))
    assert options[wire.DNS] == bytes((10, 0, 0, 53, 10, 0, 0, 54))
    assert struct.unpack("!H", options[wire.MTU]) == (1450,)
    assert options[wire.HOSTNAME] == b"vm1"
    assert struct.unpack("!I", options[wire.LEASE_TIME]) == (dhcp_lease.LEASE_TIME,)
    assert wire.CLASSLESS_ROUTES not in options


def test_the_reply_has_valid_ip_and_udp_checksums_and_goes_to_the_client_mac() -> None:
    reply = dhcp_lease.answer(ask(wire.DISCOVER), [record()])
    assert reply is not None
    assert reply.mac == MAC
    header = reply.packet[:20]
    assert wire.checksum(header) == 0
    assert header[16:20] == bytes((10, 28, 0, 13))  # to the offered address
    udp = reply.packet[20:]
    pseudo = header[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert wire.checksum(pseudo + udp) == 0


def test_a_request_for_its_address_is_acked_and_for_another_nakked() -> None:
    ours = ipaddress.IPv4Address("10.28.0.13").packed
    _, options = reply_of(ask(wire.REQUEST, requested=ours, server=bytes((10, 28, 0, 1))))
    assert options[wire.MESSAGE_TYPE] == bytes((wire.ACK,))
    yiaddr, options = reply_of(ask(wire.REQUEST, requested=bytes((10, 28, 0, 99))))
    assert options[wire.MESSAGE_TYPE] == bytes((wire.NAK,))
    assert yiaddr == wire.ANY


def test_a_request_naming_another_server_and_a_release_get_nothing() -> None:
    ours = ipaddress.IPv4Address("10.28.0.13").packed
    elsewhere = ask(wire.REQUEST, requested=ours, server=bytes((10, 9, 9, 9)))
    assert dhcp_lease.answer(elsewhere, [record()]) is None
    assert dhcp_lease.answer(ask(wire.RELEASE), [record()]) is None


@pytest.mark.parametrize(
    "records",
    [
        [],  # no port on the tap
        [record(mac_address="fa:16:3e:99:99:99")],  # another MAC
        [record(addressing={"enable_dhcp": False})],  # DHCP off on the subnet
        [record(admin_state_up=False)],
    ],
)
def test_only_a_port_of_this_tap_with_dhcp_on_gets_an_answer(
    records: list[EndpointRecord],
) -> None:
    assert dhcp_lease.answer(ask(wire.DISCOVER), records) is None


def test_host_routes_become_classless_routes_with_the_default_appended() -> None:
    routes = [{"destination": "10.99.0.0/16", "nexthop": "10.28.0.254"}]
    _, options = reply_of(ask(wire.DISCOVER), record(addressing={"host_routes": routes}))
    assert options[wire.CLASSLESS_ROUTES] == bytes((16, 10, 99, 10, 28, 0, 254, 0, 10, 28, 0, 1))


def test_extra_dhcp_opts_by_name_and_number_override_the_standard_ones() -> None:
    opts = [
        {"opt_name": "ntp-server", "opt_value": "10.0.0.123,10.0.0.124", "ip_version": 4},
        {"opt_name": "26", "opt_value": "1300", "ip_version": 4},
        {"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
        {"opt_name": "no-such-option", "opt_value": "x", "ip_version": 4},
        {"opt_name": "dns-server", "opt_value": "not-an-address", "ip_version": 4},
        {"opt_name": "dns-server", "opt_value": "2001:db8::1", "ip_version": 6},
    ]
    _, options = reply_of(ask(wire.DISCOVER), record(extra_dhcp_opts=opts))
    assert options[42] == bytes((10, 0, 0, 123, 10, 0, 0, 124))
    assert struct.unpack("!H", options[wire.MTU]) == (1300,)
    assert options[67] == b"pxelinux.0"
    assert options[wire.DNS] == bytes((10, 0, 0, 53, 10, 0, 0, 54))  # the bad ones left out


def test_a_port_without_name_gets_neutrons_host_name() -> None:
    _, options = reply_of(ask(wire.DISCOVER), record(name=""))
    assert options[wire.HOSTNAME] == b"host-10-28-0-13"


def test_malformed_and_truncated_requests_parse_to_nothing_and_never_raise() -> None:
    good = wire.build_request(MAC, wire.DISCOVER)
    assert wire.parse_request(good) is not None
    rng = random.Random(12)
    for cut in range(len(good)):
        wire.parse_request(good[:cut])
    for _ in range(2000):
        mangled = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        request = wire.parse_request(bytes(mangled))
        if request is not None:
            dhcp_lease.answer(request, [record()])  # may answer; must not raise
    overlong = good[:-1] + bytes((wire.HOSTNAME, 200)) + b"x" * 10  # runs past the end
    assert wire.parse_request(overlong) is None


def test_the_table_follows_the_tap_of_each_record() -> None:
    leases = Leases()
    assert leases.on_tap("tap9a7e0868-da") == []
    prefix = "/routeplane/v1/endpoints/node1/"
    kv = KeyValue(prefix + PORT["id"], encode(record()), 5, 5, 1)
    leases.take(Snapshot({kv.key: kv}, 5), prefix)
    assert [r["port_id"] for r in leases.on_tap("tap9a7e0868-da")] == [PORT["id"]]


def test_a_change_moves_only_its_record_between_taps_and_a_delete_empties_the_tap() -> None:
    leases = Leases()
    prefix = "/routeplane/v1/endpoints/node1/"
    first, other = PORT["id"], "77aa0000-0000-4000-8000-000000000000"
    tap, other_tap = "tap9a7e0868-da", "tap77aa0000-00"
    snapshot = {
        prefix + port: KeyValue(prefix + port, encode(record(id=port)), 5, 5, 1)
        for port in (first, other)
    }
    leases.take(Snapshot(snapshot, 5), prefix)
    assert leases.tap_names() == [tap, other_tap]

    def event(port: str, value: EndpointRecord | None, revision: int) -> Event:
        kind = EventType.DELETE if value is None else EventType.PUT
        return Event(kind, prefix + port, None if value is None else encode(value), revision, 5, 2)

    renamed = record(id=other, name="renamed")
    leases.take([event(other, renamed, 6)], prefix)  # the same tap: changed in place
    assert leases.on_tap(other_tap) == [renamed]
    moved = record(id=other)
    moved["interface"] = tap
    leases.take([event(other, moved, 7)], prefix)  # onto the first port's tap
    assert [r["port_id"] for r in leases.on_tap(tap)] == [first, other]
    assert leases.on_tap(other_tap) == []
    assert leases.tap_names() == [tap]
    leases.take([event(first, None, 8), event(other, None, 8)], prefix)
    assert leases.on_tap(tap) == []
    assert leases.tap_names() == []
    assert leases.taps() == 0
