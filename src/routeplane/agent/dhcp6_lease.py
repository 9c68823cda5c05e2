"""The DHCPv6 decision: what the host answers a client's message on a tap. Pure.

Stateless, as the DHCPv4 decision (``agent/dhcp_lease.py``): a port's binding *is* its
fixed IPv6 address on a ``dhcpv6-stateful`` subnet, so the answer is a function of the
message and the endpoint records on the tap it came in on. Only the record on *this* tap
whose MAC is the frame's sender gets an answer, and only when the client's DUID, if it
is a DUID-LL or DUID-LLT, names that MAC too (other DUID kinds name no MAC; the frame's
sender and the tap identify the guest).

- Solicit → Advertise (Reply with rapid commit), Request/Renew/Rebind → Reply: one IA_NA
  with the port's addresses on its stateful subnets (lifetime :data:`LEASE`, T1/T2 at
  1/2 and 4/5); an address the client names that is no longer the port's is in it with
  lifetimes 0, so the guest drops it (RFC 8415 18.3.4). Nothing when the port has no
  stateful address.
- Information-Request (``dhcpv6-stateless``, or any client wanting only options) → Reply.
- Release/Decline → Reply with status Success (nothing is held, nothing to free).
- Every answer carries the DNS servers (option 23) of the port's IPv6 subnets with a
  DHCPv6 mode, and the server DUID :data:`SERVER_DUID`, the same on every host (a guest
  that moves keeps renewing with "its" server, as DHCPv4's server identifier is the
  subnet's gateway on every host).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from routeplane.dataplane import dhcp6_packet as wire
from routeplane.model.endpoint import EndpointRecord

LEASE = 86400  # as DHCPv4's (Neutron's dhcp_lease_duration)
T1, T2 = LEASE // 2, LEASE * 4 // 5
DUID_UUID = 4  # RFC 6355
SERVER_DUID = DUID_UUID.to_bytes(2) + uuid.uuid5(uuid.NAMESPACE_URL, "routeplane:dhcpv6").bytes
DHCP_MODES = ("dhcpv6-stateful", "dhcpv6-stateless")
_NEEDS_OUR_ID = (wire.REQUEST, wire.RENEW, wire.RELEASE, wire.DECLINE)
_MUST_NOT_NAME_ONE = (wire.SOLICIT, wire.REBIND, wire.CONFIRM)


@dataclass(frozen=True)
class Answer:
    """A DHCPv6 message for ``destination`` (the client's address), on the asking tap."""

    destination: ipaddress.IPv6Address
    payload: bytes


def _v6_entries(record: EndpointRecord, modes: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(address, DNS servers) of the port's IPv6 fixed IPs whose subnet is in ``modes``
    and has DHCP on."""
    return [
        (entry["ip_address"], entry["dns_nameservers"])
        for entry in record.get("addressing", [])
        if ":" in entry["cidr"]
        and entry.get("enable_dhcp", True)
        and entry.get("ipv6_address_mode", "") in modes
    ]


def _dns(record: EndpointRecord) -> list[bytes]:
    servers: list[str] = []
    for _address, dns in _v6_entries(record, DHCP_MODES):
        servers += [d for d in dns if ":" in d and d not in servers]
    return [wire.dns_servers(servers)] if servers else []


def _sender(
    request: wire.Request, records: Sequence[EndpointRecord], mac: str
) -> EndpointRecord | None:
    """The record the message is from: its MAC is the frame's, and so is its DUID's."""
    mac = mac.lower()
    record = next((r for r in records if r.get("mac_address", "").lower() == mac), None)
    if record is None:
        return None
    if request.client_id is not None and wire.duid_mac(request.client_id) not in (None, mac):
        return None  # a DUID naming another MAC
    return record


def _ias(request: wire.Request, addresses: list[str]) -> list[bytes]:
    """The IA_NA options of the answer: the port's addresses in the client's first IA,
    the addresses it names that are not the port's with lifetimes 0."""
    ias = []
    for number, ia in enumerate(request.ias):
        if number:  # one IA holds them all; another gets none
            inner = wire.status(wire.NO_ADDRS_AVAIL, "one IA per port")
            ias.append(wire.option(wire.IA_NA, ia.iaid + bytes(8) + inner))
            continue
        current = [(a, LEASE, LEASE) for a in addresses]
        gone = [(str(a), 0, 0) for a in ia.addresses if str(a) not in addresses]
        ias.append(wire.ia_na(ia.iaid, T1, T2, current + gone))
    return ias


def answer(request: wire.Request, records: Sequence[EndpointRecord], mac: str) -> Answer | None:
    """The answer to ``request`` from the frame sender ``mac``, given the endpoint
    records on the tap it came in on; None: no answer."""
    record = _sender(request, records, mac)
    if record is None or (request.client_id is None and request.kind != wire.INFORMATION_REQUEST):
        return None
    if request.kind in _NEEDS_OUR_ID and request.server_id != SERVER_DUID:
        return None
    if request.kind in _MUST_NOT_NAME_ONE and request.server_id is not None:
        return None
    head = [wire.option(wire.SERVERID, SERVER_DUID)]
    if request.client_id is not None:
        head.append(wire.option(wire.CLIENTID, request.client_id))
    if request.kind == wire.INFORMATION_REQUEST:
        if not _v6_entries(record, DHCP_MODES):
            return None
        return Answer(
            request.source, wire.message(wire.REPLY, request.transaction, head + _dns(record))
        )
    if request.kind in (wire.RELEASE, wire.DECLINE):
        body = [*head, wire.status(wire.SUCCESS)]
        return Answer(request.source, wire.message(wire.REPLY, request.transaction, body))
    if request.kind not in (wire.SOLICIT, wire.REQUEST, wire.RENEW, wire.REBIND):
        return None  # Confirm and the rest: no answer, as a server that cannot tell
    addresses = [address for address, _dns in _v6_entries(record, ("dhcpv6-stateful",))]
    if not addresses or not request.ias:
        return None
    kind = wire.REPLY
    body = head + _ias(request, addresses) + _dns(record)
    if request.kind == wire.SOLICIT:
        if request.rapid_commit:
            body.append(wire.option(wire.RAPID_COMMIT, b""))
        else:
            kind = wire.ADVERTISE
    return Answer(request.source, wire.message(kind, request.transaction, body))


__all__ = ["LEASE", "SERVER_DUID", "T1", "T2", "Answer", "answer"]
