"""What ``routeplane store check`` reports: data that breaks the one address space.

Stores written before subnets were kept apart (:mod:`~routeplane.services.core.address_space`)
or before allowed address pairs were limited
(:mod:`~routeplane.services.core.held_addresses`) may hold:

- two subnets whose CIDRs overlap (on any networks);
- one address claimed twice: ``ipam/<subnet>/<address>`` under two subnets;
- one address routed to the ports of two projects: endpoint records of ports of
  different projects both carrying it (fixed IP, single-address pair, floating IP).
  Ports of one project sharing an address (a keepalived VIP) are not a finding.

:func:`findings` is pure, on the documents as read; :func:`check_store` reads them.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from routeplane.services.repo import Repo


def _overlapping_subnets(subnets: Iterable[Mapping[str, Any]]) -> list[str]:
    parsed = sorted(
        ((ipaddress.ip_network(str(s["cidr"])), str(s["id"])) for s in subnets),
        key=lambda item: (item[0].version, int(item[0].network_address), item[0].prefixlen),
    )
    found = []
    for i, (left, left_id) in enumerate(parsed):
        for right, right_id in parsed[i + 1 :]:
            if right.version != left.version or int(right.network_address) > int(
                left.broadcast_address
            ):
                break
            found.append(f"overlapping subnets: {left} ({left_id}) and {right} ({right_id})")
    return found


def _claimed_twice(claims: Iterable[str]) -> list[str]:
    """``claims``: ``<subnet>/<address>`` as the ipam keys name them."""
    by_address: dict[str, list[str]] = defaultdict(list)
    for claim in claims:
        subnet_id, _, address = claim.partition("/")
        by_address[address].append(subnet_id)
    return [
        f"address {address} claimed twice: in subnets {', '.join(sorted(subnet_ids))}"
        for address, subnet_ids in sorted(by_address.items())
        if len(subnet_ids) > 1
    ]


def routed(record: Mapping[str, Any]) -> list[str]:
    """The addresses an endpoint record routes to its port's tap."""
    single = []
    for pair in record.get("allowed_addresses", []):
        net = ipaddress.ip_network(str(pair), strict=False)
        if net.num_addresses == 1:
            single.append(str(net.network_address))
    floating = [str(f["floating_ip_address"]) for f in record.get("floating_ips", [])]
    return [*map(str, record.get("fixed_ips", [])), *single, *floating]


def _routed_to_two_projects(records: Iterable[Mapping[str, Any]]) -> list[str]:
    holders: dict[str, dict[str, str]] = defaultdict(dict)  # address → port → project
    for record in records:
        for address in routed(record):
            holders[address][str(record["port_id"])] = str(record.get("project_id"))
    found = []
    for address, ports in sorted(holders.items()):
        if len(set(ports.values())) > 1:
            named = ", ".join(
                f"{port} (project {project})" for port, project in sorted(ports.items())
            )
            found.append(f"address {address} routed to ports of two projects: {named}")
    return found


def findings(
    subnets: Iterable[Mapping[str, Any]],
    claims: Iterable[str],
    records: Iterable[Mapping[str, Any]],
) -> list[str]:
    """One line per problem, in a stable order; empty when the store is sound."""
    return [
        *_overlapping_subnets(subnets),
        *_claimed_twice(claims),
        *_routed_to_two_projects(records),
    ]


def check_store(repo: Repo) -> list[str]:
    return findings(
        [d.value for d in repo.list("subnets")],
        list(repo.keys("ipam")),
        [d.value for d in repo.list("endpoints")],
    )


__all__ = ["check_store", "findings", "routed"]
