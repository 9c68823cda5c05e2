"""One address space: no two subnets overlap, whichever networks they are on.

In a flat routed space every VM address is a /32 (or /128) route that all hosts share.
Two subnets with overlapping CIDRs on different networks would let two ports hold one
address, and BGP would pick which VM gets its traffic. So routeplane behaves as Neutron
with ``allow_overlapping_ips = False``: a subnet must not overlap any subnet anywhere,
refused with Neutron's own ``InvalidInput`` "... overlaps with another subnet".

The check must hold under racing creates, and overlap is not equality: ``10.0.0.0/16``
and ``10.0.5.0/24`` clash although no per-CIDR claim key would collide. Claiming a key
for every covering prefix would work but costs up to 128 compares per IPv6 subnet and
still needs a range read for the covered ones. A subnet create instead reads and rewrites
one *address-space generation* key (``address-space/generation``): every create compares
it on the revision it read, so of two creates that both read the same set of subnets only
one commits, and the other runs again from fresh reads and sees the winner. This
serialises subnet creates only (a few per tenant per day); ports and their address claims
never touch the key. Deleting a subnet does not bump it: a create racing a delete can at
worst be refused for a subnet that is just going away, never admitted wrongly.

Address claims stay keyed ``ipam/<subnet>/<address>`` as today's stores have them: with
no two subnets overlapping, an address lies in exactly one subnet, so a per-subnet claim
is a global one. Stores written before this rule may hold overlapping subnets;
``routeplane store check`` reports them (:mod:`routeplane.services.core.store_check`).
"""

from __future__ import annotations

import ipaddress

from routeplane.ipam.pools import IPNetwork
from routeplane.services.errors import invalid_input
from routeplane.services.repo import Change, Repo, key

GENERATION_KEY = key("address-space", "generation")


def overlap_message(cidr: IPNetwork, network_id: str) -> str:
    return (
        f"Requested subnet with cidr: {cidr} for network: {network_id} overlaps with another subnet"
    )


def claim_generation(repo: Repo, change: Change) -> list[IPNetwork]:
    """The subnets of the address space, read under its generation key.

    The transaction ``change`` will commit only if no subnet was created since they were
    read here (it rewrites the generation key it compared). Every subnet create calls
    this once, whether it names its CIDR or has one chosen from a pool.
    """
    generation = repo.get_key(GENERATION_KEY)
    change.depends_on(generation, GENERATION_KEY)
    count = 0 if generation is None else int(generation.value.get("generation", 0))
    change.put(GENERATION_KEY, {"generation": count + 1})
    return [ipaddress.ip_network(str(s.value.get("cidr"))) for s in repo.list("subnets")]


def check_free(used: list[IPNetwork], cidr: IPNetwork, network_id: str) -> None:
    for other in used:
        if other.version == cidr.version and other.overlaps(cidr):
            raise invalid_input(overlap_message(cidr, network_id))


def reserve(repo: Repo, change: Change, cidr: IPNetwork, network_id: str) -> None:
    """Admit a new subnet ``cidr`` into the one address space, or refuse it."""
    check_free(claim_generation(repo, change), cidr, network_id)


__all__ = ["GENERATION_KEY", "check_free", "claim_generation", "overlap_message", "reserve"]
