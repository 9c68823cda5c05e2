"""Router advertisements for a VM's tap: what the host advertises, as ICMPv6 bytes (pure).

The host stands for the router of every IPv6 subnet its VMs have addresses on. Per
subnet (an ``Addressing`` entry of the endpoint record with an IPv6 mode):

- ``slaac``: the prefix with the autonomous flag (A) on: the guest forms its EUI-64
  address, which the api reports (``services.core.fixed_ips``);
- ``dhcpv6-stateless``: A on and the other-configuration flag (O): DNS from DHCPv6;
- ``dhcpv6-stateful``: the managed flag (M): the address from DHCPv6, A off.

The subnet's ``ipv6_ra_mode`` says which; without one, its ``ipv6_address_mode`` (Neutron
then expects a router outside OpenStack to advertise, but here the host is the only
router a guest has, so it advertises what the address mode needs).

The on-link flag (L) is always off: nothing is on-link, every packet goes to the host.
The router lifetime is non-zero, so the guest takes a default route via the host's
link-local address on the tap (the advertisement's source, which the kernel picks).
Options: the MTU (the network's) and RDNSS (RFC 8106: the subnets' IPv6 DNS servers).
No source link-layer address: the guest resolves the host's link-local address by
neighbour discovery, which the tap answers for its own address.

The checksum is left zero: an ICMPv6 raw socket has the kernel fill it in. A subnet
without an IPv6 mode gets no advertisement (its guest is configured otherwise).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from routeplane.model.endpoint import Addressing

ROUTER_SOLICIT = 133
ROUTER_ADVERT = 134
ROUTER_LIFETIME = 1800  # seconds: the guest's default route via the host
VALID_LIFETIME = 2_592_000  # the prefix's: 30 days, as radvd's default
PREFERRED_LIFETIME = 604_800  # 7 days
RDNSS_LIFETIME = 1800
HOP_LIMIT = 64
_MANAGED, _OTHER = 0x80, 0x40
_AUTONOMOUS = 0x40


@dataclass(frozen=True)
class Advert:
    """What one tap's advertisement says."""

    managed: bool
    other: bool
    prefixes: tuple[tuple[str, bool], ...]  # (prefix/len, autonomous)
    dns: tuple[str, ...]
    mtu: int


def advert_for(addressing: Sequence[Addressing], mtu: int) -> Advert | None:
    """The advertisement of a port's IPv6 subnets; None when none has an IPv6 mode."""
    managed = other = False
    prefixes: list[tuple[str, bool]] = []
    dns: list[str] = []
    for entry in addressing:
        mode = entry.get("ipv6_ra_mode") or entry.get("ipv6_address_mode") or ""
        if ":" not in entry["cidr"] or not mode:
            continue
        managed |= mode == "dhcpv6-stateful"
        other |= mode == "dhcpv6-stateless"
        prefix = (entry["cidr"], mode in ("slaac", "dhcpv6-stateless"))
        if prefix not in prefixes:
            prefixes.append(prefix)
        dns += [d for d in entry["dns_nameservers"] if ":" in d and d not in dns]
    if not prefixes:
        return None
    return Advert(managed, other, tuple(prefixes), tuple(dns), mtu)


def encode(advert: Advert) -> bytes:
    """The ICMPv6 message (checksum zero: the kernel fills it in)."""
    flags = (_MANAGED if advert.managed else 0) | (_OTHER if advert.other else 0)
    body = struct.pack("!BBHBBHII", ROUTER_ADVERT, 0, 0, HOP_LIMIT, flags, ROUTER_LIFETIME, 0, 0)
    if advert.mtu:
        body += struct.pack("!BBHI", 5, 1, 0, advert.mtu)
    for cidr, autonomous in advert.prefixes:
        net = ipaddress.IPv6Network(cidr)
        flag = _AUTONOMOUS if autonomous else 0  # never on-link (0x80)
        lifetimes = (VALID_LIFETIME, PREFERRED_LIFETIME, 0)
        body += struct.pack("!BBBBIII", 3, 4, net.prefixlen, flag, *lifetimes)
        body += net.network_address.packed
    if advert.dns:
        body += struct.pack("!BBHI", 25, 1 + 2 * len(advert.dns), 0, RDNSS_LIFETIME)
        body += b"".join(ipaddress.IPv6Address(d).packed for d in advert.dns)
    return body


def is_solicit(message: bytes) -> bool:
    """Whether ``message`` (ICMPv6, as a raw socket gives it) is a router solicitation."""
    return len(message) >= 8 and message[0] == ROUTER_SOLICIT and message[1] == 0


__all__ = ["ROUTER_ADVERT", "ROUTER_SOLICIT", "Advert", "advert_for", "encode", "is_solicit"]
