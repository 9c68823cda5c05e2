"""Unit: the rtnetlink codec of the Linux driver, byte by byte — what it encodes for each
request, and how it reads the kernel's acknowledgements and error texts. No socket.

The same messages are checked against a real kernel by ``tests/contract/test_kernel.py``.
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from routeplane.dataplane.linux import rtnl

pytestmark = pytest.mark.unit


def attrs(body: bytes, offset: int) -> dict[int, bytes]:
    return rtnl._attrs(body, offset)


def test_a_route_replace_is_a_main_table_host_route_with_our_protocol() -> None:
    request = rtnl.route_replace("10.28.0.13", 7, 77)
    assert request.type == rtnl.RTM_NEWROUTE
    assert request.flags == rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE
    fam, dst_len, _, _, table, proto, scope, kind, _ = struct.unpack_from(
        "=BBBBBBBBI", request.body
    )
    assert (fam, dst_len, table, proto, scope, kind) == (socket.AF_INET, 32, 254, 77, 253, 1)
    found = attrs(request.body, 12)
    assert found[rtnl.RTA_DST] == socket.inet_aton("10.28.0.13")
    assert struct.unpack("=i", found[rtnl.RTA_OIF]) == (7,)


def test_a_route_delete_names_protocol_and_interface_so_it_cannot_hit_anothers() -> None:
    request = rtnl.route_delete("2001:db8::13", 9, 77)
    fam, dst_len, _, _, _, proto, scope, _, _ = struct.unpack_from("=BBBBBBBBI", request.body)
    assert (fam, dst_len, proto, scope) == (socket.AF_INET6, 128, 77, rtnl.RT_SCOPE_NOWHERE)
    assert struct.unpack("=i", attrs(request.body, 12)[rtnl.RTA_OIF]) == (9,)


def test_a_neighbour_replace_is_permanent_with_the_mac() -> None:
    request = rtnl.neighbour_replace("10.28.0.13", 3, "FA:16:3E:00:00:01")
    fam, index, state, _, _ = struct.unpack_from("=BxxxiHBB", request.body)
    assert (fam, index, state) == (socket.AF_INET, 3, rtnl.NUD_PERMANENT)
    assert attrs(request.body, 12)[rtnl.NDA_LLADDR] == bytes.fromhex("fa163e000001")


@pytest.mark.parametrize("mac", ["", "zz:00"])
def test_a_malformed_mac_is_a_value_error(mac: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        rtnl.neighbour_replace("10.28.0.13", 3, mac)


def test_a_request_carries_its_own_sequence_number_and_asks_for_an_ack_if_told() -> None:
    encoded = rtnl.link_up(5).encode(seq=4242)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", encoded)
    assert (length, kind, seq, pid) == (len(encoded), rtnl.RTM_NEWLINK, 4242, 0)
    assert flags & (rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK) == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    quiet = rtnl.link_up(5).encode(seq=4243, ack=False)
    _, _, flags, _, _ = struct.unpack_from("=IHHII", quiet)
    assert flags & (rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK) == rtnl.NLM_F_REQUEST


def error_payload(code: int, message: bytes = b"", *, capped: bool = True) -> tuple[int, bytes]:
    request = rtnl.route_replace("10.0.0.1", 1, 77).encode(seq=1)
    echoed = request[:16] if capped else request
    payload = struct.pack("=i", code) + echoed
    flags = rtnl.NLM_F_CAPPED if capped else 0
    if message:
        payload += rtnl._attr(rtnl.NLMSGERR_ATTR_MSG, message + b"\0")
        flags |= rtnl.NLM_F_ACK_TLVS
    return flags, payload


def test_an_acknowledgement_is_no_error() -> None:
    assert rtnl._error(*error_payload(0)) is None


@pytest.mark.parametrize("capped", [True, False])
def test_an_error_carries_errno_and_the_kernels_text(capped: bool) -> None:
    failure = rtnl._error(
        *error_payload(-errno.ENETDOWN, b"Nexthop device is not up", capped=capped)
    )
    assert failure == rtnl.NetlinkError(errno.ENETDOWN, "Nexthop device is not up")
    assert str(failure).endswith("(ENETDOWN): Nexthop device is not up")


def test_an_error_without_text_still_names_the_errno() -> None:
    failure = rtnl._error(*error_payload(-errno.ESRCH))
    assert failure == rtnl.NetlinkError(errno.ESRCH, "")
    assert "ESRCH" in str(failure)


def test_attributes_stop_at_a_truncated_or_malformed_one() -> None:
    good = rtnl._attr(1, b"abcd")
    assert attrs(good + b"\x02\x00", 0) == {1: b"abcd"}
    assert attrs(good + struct.pack("=HH", 2, 5), 0) == {1: b"abcd"}


def test_a_proxy_replace_is_an_ipv6_router_proxy_entry_with_our_protocol() -> None:
    request = rtnl.proxy_replace("2001:db8::1", 4, 77)
    assert request.type == rtnl.RTM_NEWNEIGH
    assert request.flags == rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE
    fam, index, _state, flags, _ = struct.unpack_from("=BxxxiHBB", request.body)
    assert (fam, index, flags) == (socket.AF_INET6, 4, rtnl.NTF_PROXY | rtnl.NTF_ROUTER)
    found = attrs(request.body, 12)
    assert found[rtnl.NDA_DST] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert found[rtnl.NDA_PROTOCOL] == bytes([77])


def test_a_proxy_delete_is_flagged_so_it_never_hits_a_neighbour_entry() -> None:
    request = rtnl.proxy_delete("2001:db8::1", 4)
    assert request.type == rtnl.RTM_DELNEIGH
    _, index, _, flags, _ = struct.unpack_from("=BxxxiHBB", request.body)
    assert (index, flags) == (4, rtnl.NTF_PROXY)


def link_message(kind: int, index: int, name: str, flags: int, family: int = 0) -> bytes:
    body = struct.pack("=BxHiII", family, 1, index, flags, 0)
    body += rtnl._attr(rtnl.IFLA_IFNAME, name.encode() + b"\0")
    body += rtnl._attr(rtnl.IFLA_ADDRESS, bytes.fromhex("02000000000a"))
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_link_messages_of_one_datagram_are_parsed_in_order() -> None:
    up = rtnl.IFF_UP | rtnl.IFF_LOWER_UP
    data = (
        link_message(rtnl.RTM_NEWLINK, 7, "tap9a7e0868-da", up)
        + link_message(rtnl.RTM_NEWLINK, 7, "tap9a7e0868-da", up, family=socket.AF_BRIDGE)
        + link_message(rtnl.RTM_DELLINK, 7, "tap9a7e0868-da", 0)
    )
    changes = rtnl.parse_link_changes(data)
    assert [(c.info.index, c.info.name, c.info.flags, c.deleted) for c in changes] == [
        (7, "tap9a7e0868-da", up, False),
        (7, "tap9a7e0868-da", 0, True),
    ]  # the bridge-port message is not about the interface itself: skipped
    assert changes[0].info.mac == "02:00:00:00:00:0a"


def test_a_truncated_link_message_is_skipped() -> None:
    whole = link_message(rtnl.RTM_NEWLINK, 7, "tapx", 0)
    assert rtnl.parse_link_changes(whole[:20]) == []


@pytest.mark.parametrize("address", ["10.28.0.13", "fd00::13", "2001:db8::ffff:1"])
def test_the_packed_requests_are_the_attributes_one_by_one(address: str) -> None:
    """A route on a link and a neighbour are packed in one go (a cold start builds tens
    of thousands): byte for byte what attribute-by-attribute packing gives."""
    ip = rtnl._ip(address)
    family = rtnl._family(ip)
    route = rtnl.route_replace(address, 7, 77, 1024)
    assert route.body == (
        rtnl._RTMSG.pack(family, ip.max_prefixlen, 0, 0, rtnl.RT_TABLE_MAIN, 77,
                         rtnl.RT_SCOPE_LINK, rtnl.RTN_UNICAST, 0)
        + rtnl._attr(rtnl.RTA_DST, ip.packed)
        + rtnl._attr(rtnl.RTA_OIF, struct.pack("=i", 7))
        + rtnl._attr(rtnl.RTA_PRIORITY, struct.pack("=I", 1024))
    )  # fmt: skip
    neighbour = rtnl.neighbour_replace(address, 7, "FA:16:3E:00:00:01")
    assert neighbour.body == (
        rtnl._NDMSG.pack(family, 7, rtnl.NUD_PERMANENT, 0, 0)
        + rtnl._attr(rtnl.NDA_DST, ip.packed)
        + rtnl._attr(rtnl.NDA_LLADDR, bytes.fromhex("fa163e000001"))
    )
