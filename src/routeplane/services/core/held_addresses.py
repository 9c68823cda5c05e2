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

A fixed IP claimed later by another project's port is not checked against existing pairs
(its allocation reads only the claim keys); ``routeplane store check`` reports such an
address, and the agent routes an address claimed twice to neither port.
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
        for other in self.repo.list("ports"):
            if other.value.get("project_id") == project or other.value["id"] == port["id"]:
                continue
            for pair in other.value.get("allowed_address_pairs", []):
                held = _network(str(pair["ip_address"]))
                if _single(held) and str(held.network_address) == ip:
                    raise invalid_input(held_by_other_project(given, other.value["id"]))

    def _claim_key(self, ip: str) -> str | None:
        """The claim key of ``ip`` in whichever subnet holds it (subnets never overlap)."""
        address = ipaddress.ip_address(ip)
        for subnet in self.repo.list("subnets"):
            if address in _network(str(subnet.value["cidr"])):
                return key("ipam", subnet.value["id"], ip)
        return None


__all__ = ["HeldAddresses", "held_by_other_project", "may_set_pairs", "outside_rule"]
