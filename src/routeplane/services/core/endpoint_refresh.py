"""Endpoint records that follow their subnets and network.

An endpoint record carries the gateways of the subnets its port has addresses on, which
the host agent answers neighbour solicitations for on the VM's tap, and what the host's
DHCP server hands out: each subnet's gateway, DNS servers and host routes, and the
network's MTU (:func:`~routeplane.services.core.endpoints.record_inputs`). When one of
those changes (:data:`SUBNET_FIELDS`, :data:`NETWORK_FIELDS`), the records of the bound
ports holding an address on the subnet (or the network) must change too, or the host
keeps proxying the old gateway and hands out yesterday's DNS servers at the next renewal.

How: the subnet's (network's) update's own transaction rewrites those records
(:func:`rewrites` with the new document as ``pending``, then :func:`add_rewrites`). The ports are found
through their address claims (``ipam/<subnet>/<ip>``). Each rewritten port is compared
and written back unchanged ("touched"), as a floating-IP association does: a concurrent
port write, which derives its record from the same reads, then conflicts and re-reads
instead of putting the old gateway back.

One transaction holds at most ``MAX_TXN_OPS`` operations, so it rewrites at most
:data:`PORTS_PER_TXN` ports. After it commits, :func:`converge` scans again and rewrites
whatever is still stale, :data:`PORTS_PER_TXN` ports per transaction, each derived from
the store as it is then. That pass covers a subnet with more bound ports than one
transaction holds, and a port bound between the update's scan and its commit (which the
update could not compare against). If the pass fails, the subnet change stands; sending
the same PUT again completes it.

What it must not do: create a record (binding a port does that) or touch unbound ports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from routeplane.model.endpoint import encode
from routeplane.services.core.endpoints import endpoint_key, endpoint_record, record_inputs
from routeplane.services.repo import Change, Doc, Outcome, Repo
from routeplane.store.codec import MAX_TXN_OPS

# One transaction: the subnet's own put, then two puts per port (the touch and the record).
PORTS_PER_TXN = (MAX_TXN_OPS - 1) // 2
# what a record derives from a subnet, and from its network
SUBNET_FIELDS = ("gateway_ip", "dns_nameservers", "host_routes", "enable_dhcp")
NETWORK_FIELDS = ("mtu",)


def changed(fields: Iterable[str], old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether any of ``fields`` differs between the two documents."""
    return any(old.get(f) != new.get(f) for f in fields)


@dataclass(frozen=True)
class Rewrite:
    """A bound port whose stored endpoint record differs from what it should say."""

    port: Doc
    record_key: str
    record: dict[str, Any]


def holders(repo: Repo, *subnet_ids: str) -> list[str]:
    """The ports holding an address on the subnets, once each."""
    claims = (d.value.get("port_id") for s in subnet_ids for d in repo.list("ipam", s))
    return list(dict.fromkeys(str(p) for p in claims if p))


def rewrites(
    repo: Repo, port_ids: Iterable[str], pending: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Rewrite]:
    """The records of ``port_ids`` that differ from their derivation (with ``pending``
    subnets or network in place of the stored ones); unbound ports and missing records
    are left."""
    found: list[Rewrite] = []
    for port_id in port_ids:
        port = repo.get("ports", port_id)
        host = None if port is None else port.value.get("binding:host_id")
        if port is None or not host:
            continue
        record_key = endpoint_key(str(host), port_id)
        current = repo.get_key(record_key)
        if current is None:
            continue
        floating = [d.value for d in repo.list("fip_by_port", port_id)]
        inputs = record_inputs(repo, port.value, pending)
        record = encode(endpoint_record(port.value, floating, inputs))
        if record != current.value:
            found.append(Rewrite(port, record_key, record))
    return found


def add_rewrites(change: Change, found: Iterable[Rewrite]) -> None:
    for rewrite in found:
        change.depends_on(rewrite.port)
        change.put(rewrite.port.key, rewrite.port.value)  # touched: see the module docstring
        change.put(rewrite.record_key, rewrite.record)


def converge(repo: Repo, *subnet_ids: str) -> int:
    """Rewrite every stale record of the subnets' bound ports, in transactions of at most
    :data:`PORTS_PER_TXN` ports; returns how many were found stale."""
    stale = [r.port.value["id"] for r in rewrites(repo, holders(repo, *subnet_ids))]
    for start in range(0, len(stale), PORTS_PER_TXN):
        chunk = stale[start : start + PORTS_PER_TXN]

        def use_case(chunk: list[str] = chunk) -> Outcome[None]:
            change = Change()
            add_rewrites(change, rewrites(repo, chunk))
            return Outcome(change, None)

        repo.run(use_case)
    return len(stale)


__all__ = [
    "NETWORK_FIELDS",
    "PORTS_PER_TXN",
    "SUBNET_FIELDS",
    "Rewrite",
    "add_rewrites",
    "changed",
    "converge",
    "holders",
    "rewrites",
]
