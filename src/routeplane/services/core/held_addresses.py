"""Which addresses a port may hold through ``allowed_address_pairs``, and who may set them.

In a flat routed space a port's allowed address pairs are not only allowed sources (the
anti-spoofing rule of its tap): a single address is also routed to the port's VM. Neutron
accepts any address or prefix there, which in routeplane would let one project take
another's VM address, or send from any source (``0.0.0.0/0``). So:

- **Who**: as Neutron's policy (``create_port:allowed_address_pairs``,
  ``update_port:allowed_address_pairs``): an admin, or a member of the project that owns
  the port's network. A member with a port on someone else's shared network may not.
- **What**: a new pair names one of the port's fixed IPs, one of its floating IPs' external
  addresses, or an address or prefix inside a subnet of the port's own network (the
  keepalived-VIP pattern: ports of one network sharing a VIP of that network). Anything
  else is refused with a 400 that states this rule, single addresses and prefixes alike.
- **Admin exception**: an admin may set pairs outside the network's subnets (an
  appliance VM that routes a prefix). Pairs already on the port are not checked again,
  so the owner's later updates keep an admin's grant. Even then:
- **One project per address**: a single address is never held by a port of one project
  while a port of another project holds it (as a fixed IP, a floating IP, or a pair); the
  transaction depends on the address's claim, so a racing claim is seen. Prefixes are
  allowed sources only, never routed, and are not compared.

The other direction too: every single-address pair is indexed under
``pair-holders/<address>`` (the project and the ports holding it), written in the
port's transaction and compared on its revision. Allocating a fixed IP reads that index:
automatic allocation skips an address another project holds as a pair (on a shared
network the admin may have set one), a request naming it is ``IpAddressAlreadyAllocated``,
and the transaction depends on the index entry, so a pair granted meanwhile is seen.
The same index answers the pair side's "held by another project's pair" without reading
every port. Pairs written before the index existed are not in it; ``routeplane store
check`` reports an address they share with another project.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from routeplane.ipam.pools import IPNetwork
from routeplane.services.attributes import policy_denied
from routeplane.services.context import Context
from routeplane.services.errors import invalid_input
from routeplane.services.repo import Change, Repo, key


def may_set_pairs(ctx: Context, network: dict[str, Any], action: str) -> None:
    """Neutron's ``ADMIN_OR_NET_OWNER_MEMBER`` for allowed address pairs."""
    if not ctx.is_admin and network.get("project_id") != ctx.project_id:
        raise policy_denied(action, "allowed_address_pairs")


def _network(address: str) -> IPNetwork:
    return ipaddress.ip_network(address, strict=False)


def _single(net: IPNetwork) -> bool:
    return net.num_addresses == 1


def outside_rule(address: str, port_id: str) -> str:
    return (
        f"Allowed address pair {address} is not allowed on port {port_id}: a port may "
        "hold only its fixed IPs, its floating IPs and addresses inside the subnets of its "
        "own network"
    )


def held_by_other_project(address: str, holder: str) -> str:
    return (
        f"Allowed address pair {address} is held by port {holder} of another project: "
        "an address is routed to the ports of one project only"
    )


PAIR_HOLDERS = "pair-holders"


def pair_key(ip: str) -> str:
    return key(PAIR_HOLDERS, ip)


def _singles(port: dict[str, Any] | None) -> set[str]:
    """The single addresses among a port's pairs (the routed ones)."""
    found: set[str] = set()
    for pair in (port or {}).get("allowed_address_pairs", []):
        net = _network(str(pair["ip_address"]))
        if _single(net):
            found.add(str(net.network_address))
    return found


class HeldAddresses:
    """The checks above for one port's new pairs, on the store as the request reads it."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def check(
        self,
        ctx: Context,
        change: Change,
        port: dict[str, Any],
        old_pairs: Iterable[dict[str, Any]],
    ) -> None:
        known = {str(p["ip_address"]) for p in old_pairs}
        new = [str(p["ip_address"]) for p in port.get("allowed_address_pairs", [])]
        fresh = [a for a in dict.fromkeys(new) if a not in known]
        if not fresh:
            return
        own = {ip["ip_address"] for ip in port.get("fixed_ips", [])}
        own |= {
            str(f.value.get("floating_ip_address"))
            for f in self.repo.list("fip_by_port", port["id"])
        }
        subnets = [
            _network(str(s.value["cidr"]))
            for s in self.repo.list("subnets")
            if s.value.get("network_id") == port["network_id"]
        ]
        for address in fresh:
            net = _network(address)
            if _single(net) and str(net.network_address) in own:
                continue
            inside = any(net.version == s.version and net.subnet_of(s) for s in subnets)  # type: ignore[arg-type]
            if not inside and not ctx.is_admin:
                raise invalid_input(outside_rule(address, port["id"]))
            if _single(net):
                self._one_project(change, port, str(net.network_address), address)

    def _one_project(self, change: Change, port: dict[str, Any], ip: str, given: str) -> None:
        project = port.get("project_id")
        claim_key = self._claim_key(ip)
        claim = None if claim_key is None else self.repo.get_key(claim_key)
        change.depends_on(claim, claim_key)  # a port claiming it meanwhile is seen
        if claim is not None:
            holder = self.repo.get("ports", str(claim.value.get("port_id")))
            if holder is not None and holder.value.get("project_id") != project:
                raise invalid_input(held_by_other_project(given, holder.value["id"]))
        holder_id = self.pair_holder(ip, str(project))
        if holder_id is not None:
            raise invalid_input(held_by_other_project(given, holder_id))

    # the pair-holders index -----------------------------------------------------------
    def pair_holder(self, ip: str, project: str) -> str | None:
        """A port of another project than ``project`` holding ``ip`` as a pair, if any."""
        entry = self.repo.get_key(pair_key(ip))
        if entry is None or entry.value.get("project_id") == project:
            return None
        ports = entry.value.get("ports") or [None]
        return str(ports[0])

    def guard_fixed(self, change: Change, project: str, addresses: Iterable[str]) -> None:
        """New fixed IPs of a port of ``project``: the transaction depends on each
        address's pair-holders entry, and none may be another project's pair."""
        for ip in addresses:
            entry = self.repo.get_key(pair_key(ip))
            change.depends_on(entry, pair_key(ip))
            if entry is not None and entry.value.get("project_id") != project:
                raise invalid_input(held_by_other_project(ip, str(entry.value["ports"][0])))

    def index(
        self, change: Change, port: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        """Keep ``pair-holders/`` true for a port created (``old`` None), changed or
        deleted (``port`` None), in the port's own transaction."""
        before, after = _singles(old), _singles(port)
        port_id = str((port or old or {}).get("id"))
        project = str((port or old or {}).get("project_id"))
        for ip in sorted(before ^ after):
            k = pair_key(ip)
            entry = self.repo.get_key(k)
            change.depends_on(entry, k)
            holders = [] if entry is None else list(entry.value.get("ports", []))
            holders = [h for h in holders if h != port_id]
            if ip in after:
                holders.append(port_id)
            if holders:
                change.put(k, {"project_id": project, "ports": holders})
            elif entry is not None:
                change.delete(k)

    def _claim_key(self, ip: str) -> str | None:
        """The claim key of ``ip`` in whichever subnet holds it (subnets never overlap)."""
        address = ipaddress.ip_address(ip)
        for subnet in self.repo.list("subnets"):
            if address in _network(str(subnet.value["cidr"])):
                return key("ipam", subnet.value["id"], ip)
        return None


__all__ = [
    "PAIR_HOLDERS",
    "HeldAddresses",
    "held_by_other_project",
    "may_set_pairs",
    "outside_rule",
    "pair_key",
]
