"""A port's fixed IPs: from what the request asks to the addresses it holds, Neutron's way.

Create: no ``fixed_ips`` → one IPv4 address from the first IPv4 subnet with room, plus one
from each IPv6 subnet; ``[]`` → none; each entry names a subnet, an address, or both.
Update (the service-IP case): the list is *replaced* — entries whose address the port
already holds are kept, new addresses are claimed, subnet-only entries reuse an address
the port has there or take a new one, and every address not asked for is released.
Specific addresses come before subnet-only entries. Specific addresses need only be
valid host addresses of the subnet; they may lie outside the allocation pools.

On an IPv6 subnet whose ``ipv6_address_mode`` is ``slaac`` or ``dhcpv6-stateless``
(Neutron's "auto-address" subnets) an automatic address is not taken from the pools: it
is the EUI-64 address the guest forms itself from the router advertisement's prefix and
its MAC, as Neutron reports it, so the API shows the address the VM really has.

The functions here decide; the port service claims the chosen addresses in the same
transaction as the port, so a lost race surfaces as ``IpAddressAlreadyAllocated``.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routeplane.ipam.pools import IPAddress, IPNetwork, eui64_address, valid_host, walk
from routeplane.services.attributes import ip_address, is_uuid
from routeplane.services.core.subnets import subnet_pools
from routeplane.services.errors import ApiFault, bad_request, invalid_input

AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")


def auto_address(subnet: Mapping[str, Any]) -> bool:
    """Whether the guest forms its own address on ``subnet`` (SLAAC)."""
    return subnet.get("ip_version") == 6 and subnet.get("ipv6_address_mode") in AUTO_ADDRESS_MODES


@dataclass(frozen=True)
class FixedIP:
    subnet_id: str
    ip_address: str

    def as_json(self) -> dict[str, str]:
        return {"subnet_id": self.subnet_id, "ip_address": self.ip_address}


def check_format(value: Any) -> str | None:
    """neutron-lib's validate_fixed_ips: the reason, or None.

    Keys other than ``subnet_id`` and ``ip_address`` are ignored (see :func:`clean`), as
    Neutron ignores them; an entry with neither is refused later, by allocation.
    """
    if not isinstance(value, list):
        return f"Invalid data format for fixed IP: '{value}'"
    seen: list[Any] = []
    for entry in value:
        if not isinstance(entry, dict):
            return f"Invalid data format for fixed IP: '{entry}'"
        if "ip_address" in entry:
            address = entry["ip_address"]
            if address in seen:
                return f"Duplicate IP address '{address}'"
            reason = ip_address(address)
            if reason:
                return reason
            seen.append(address)
        if "subnet_id" in entry:
            reason = is_uuid(entry["subnet_id"])
            if reason:
                return reason
    return None


def clean(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The entries as allocation reads them: only ``subnet_id`` and ``ip_address``."""
    return [{k: v for k, v in e.items() if k in ("subnet_id", "ip_address")} for e in entries]


@dataclass
class Resolver:
    """Chooses addresses on one network. ``taken(subnet_id)`` lists claimed addresses."""

    network_id: str
    subnets: Mapping[str, dict[str, Any]]  # the network's subnets, in creation order
    subnet_exists: Callable[[str], bool]
    hints: dict[str, IPAddress]  # per subnet: where the next automatic allocation starts
    holder: Callable[[str, str], str | None]  # (subnet_id, ip) -> port id holding it
    port_id: str
    attempt: int = 0  # lost races so far: spread automatic choices to stop colliding
    mac: str = ""  # the port's: its EUI-64 address on auto-address subnets

    def _subnet(self, subnet_id: str) -> dict[str, Any]:
        if subnet_id in self.subnets:
            return self.subnets[subnet_id]
        if self.subnet_exists(subnet_id):
            raise invalid_input(
                f"Failed to create port on network {self.network_id}, because fixed_ips "
                f"included invalid subnet {subnet_id}"
            )
        raise ApiFault("SubnetNotFound", 404, f"Subnet {subnet_id} could not be found.")

    def _specific(self, subnet_id: str | None, text: str) -> FixedIP:
        address = ipaddress.ip_address(text)
        if subnet_id is None:
            for sid, subnet in self.subnets.items():
                if valid_host(_net(subnet), address):
                    subnet_id = sid
                    break
            else:
                raise ApiFault(
                    "InvalidIpForNetwork",
                    400,
                    f"IP address {address} is not a valid IP for any of the subnets on the specified network.",
                )
        subnet = self._subnet(subnet_id)
        if not valid_host(_net(subnet), address):
            raise ApiFault(
                "InvalidIpForSubnet",
                400,
                f"IP address {address} is not a valid IP for the specified subnet.",
            )
        holder = self.holder(subnet_id, str(address))
        if holder is not None and holder != self.port_id:
            raise ApiFault(
                "IpAddressAlreadyAllocated",
                409,
                f"IP address {address} already allocated in subnet {subnet_id}",
            )
        return FixedIP(subnet_id, str(address))

    def _allocate(self, subnet_id: str, chosen: set[IPAddress]) -> FixedIP | None:
        """The next free address after the subnet's cursor. After a lost race, skip a
        random few free ones, so that concurrent allocators stop colliding."""
        subnet = self._subnet(subnet_id)
        if auto_address(subnet) and self.mac:
            return self._eui64(subnet_id, subnet, chosen)
        skip = 0 if self.attempt == 0 else secrets.randbelow(min(64, 4 << self.attempt))
        for address in walk(subnet_pools(subnet), self.hints.get(subnet_id)):
            if address in chosen or self.holder(subnet_id, str(address)) is not None:
                continue
            if skip:
                skip -= 1
                continue
            self.hints[subnet_id] = address + 1
            return FixedIP(subnet_id, str(address))
        return None

    def _eui64(self, subnet_id: str, subnet: Mapping[str, Any], chosen: set[IPAddress]) -> FixedIP:
        address = eui64_address(_net(subnet), self.mac)
        holder = self.holder(subnet_id, str(address))
        if address in chosen or (holder is not None and holder != self.port_id):
            raise ApiFault(
                "IpAddressAlreadyAllocated",
                409,
                f"IP address {address} already allocated in subnet {subnet_id}",
            )
        return FixedIP(subnet_id, str(address))

    def _exhausted(self) -> ApiFault:
        return ApiFault(
            "IpAddressGenerationFailure",
            409,
            f"No more IP addresses available on network {self.network_id}.",
        )

    def automatic(self) -> list[FixedIP]:
        """No ``fixed_ips`` in the request: one IPv4 address, and one per IPv6 subnet."""
        if not self.subnets:
            return []
        result: list[FixedIP] = []
        v4 = [sid for sid, s in self.subnets.items() if s["ip_version"] == 4]
        for sid in v4:
            got = self._allocate(sid, set())
            if got is not None:
                result.append(got)
                break
        else:
            if v4:
                raise self._exhausted()
        for sid, subnet in self.subnets.items():
            if subnet["ip_version"] == 6:
                got = self._allocate(sid, set())
                if got is None:
                    raise self._exhausted()
                result.append(got)
        return result

    def requested(
        self, entries: Sequence[Mapping[str, Any]], current: Sequence[FixedIP] = ()
    ) -> list[FixedIP]:
        """An explicit list, for create (``current`` empty) or update (replace semantics)."""
        if entries and not self.subnets:
            raise invalid_input("IP allocation requires subnets for network")
        held = {ip.ip_address: ip for ip in current}
        result: list[FixedIP] = []
        ordered = sorted(entries, key=lambda e: "ip_address" not in e)
        chosen: set[IPAddress] = set()
        for entry in ordered:
            subnet_id = entry.get("subnet_id")
            text = entry.get("ip_address")
            if text is not None:
                canonical = str(ipaddress.ip_address(text))
                if canonical in held:
                    fixed = held[canonical]  # kept: Neutron matches by address only
                else:
                    fixed = self._specific(subnet_id, canonical)
            elif subnet_id is not None:
                reuse = [ip for ip in current if ip.subnet_id == subnet_id and ip not in result]
                if reuse:
                    fixed = reuse[0]
                else:
                    allocated = self._allocate(subnet_id, chosen)
                    if allocated is None:
                        raise self._exhausted()
                    fixed = allocated
            else:
                # Neutron answers this on POST; on PUT it fails with a 500 (a KeyError in
                # _get_changed_ips_for_port). We give the POST answer on both.
                raise invalid_input("IP allocation requires subnet_id or ip_address")
            if any(f.ip_address == fixed.ip_address for f in result):
                raise bad_request(
                    f"Invalid input for fixed_ips. Reason: Duplicate IP address '{fixed.ip_address}'."
                )
            chosen.add(ipaddress.ip_address(fixed.ip_address))
            result.append(fixed)
        return result


def _net(subnet: Mapping[str, Any]) -> IPNetwork:
    return ipaddress.ip_network(subnet["cidr"])


def parse_held(raw: Any) -> list[FixedIP]:
    return [FixedIP(e["subnet_id"], e["ip_address"]) for e in raw or []]


__all__ = [
    "AUTO_ADDRESS_MODES",
    "FixedIP",
    "Resolver",
    "auto_address",
    "check_format",
    "clean",
    "parse_held",
]
