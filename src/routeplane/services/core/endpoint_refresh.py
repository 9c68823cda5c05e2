"""Endpoint records that follow a subnet's gateway.

An endpoint record carries the gateways of the subnets its port has addresses on
(:func:`~routeplane.services.core.endpoints.subnet_gateways`); the host agent answers
neighbour solicitations for them on the VM's tap. When a subnet's ``gateway_ip``
changes, the records of the bound ports holding an address on it must change too, or the
host keeps proxying the old gateway and the VMs cannot reach the new one.

How: the subnet update's own transaction rewrites those records (:func:`rewrites` with
the new subnet document as ``pending``, then :func:`add_rewrites`). The ports are found
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
from routeplane.services.core.endpoints import endpoint_key, endpoint_record, subnet_gateways
from routeplane.services.repo import Change, Doc, Outcome, Repo
from routeplane.store.codec import MAX_TXN_OPS

# One transaction: the subnet's own put, then two puts per port (the touch and the record).
PORTS_PER_TXN = (MAX_TXN_OPS - 1) // 2


@dataclass(frozen=True)
class Rewrite:
    """A bound port whose stored endpoint record differs from what it should say."""

    port: Doc
    record_key: str
    record: dict[str, Any]


def holders(repo: Repo, subnet_id: str) -> list[str]:
    """The ports holding an address on the subnet, once each."""
    claims = (d.value.get("port_id") for d in repo.list("ipam", subnet_id))
    return list(dict.fromkeys(str(p) for p in claims if p))


def rewrites(
    repo: Repo, port_ids: Iterable[str], pending: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Rewrite]:
    """The records of ``port_ids`` that differ from their derivation (with ``pending``
    subnets in place of the stored ones); unbound ports and missing records are left."""
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
        gateways = subnet_gateways(repo, port.value, pending)
        record = encode(endpoint_record(port.value, floating, gateways))
        if record != current.value:
            found.append(Rewrite(port, record_key, record))
    return found


def add_rewrites(change: Change, found: Iterable[Rewrite]) -> None:
    for rewrite in found:
        change.depends_on(rewrite.port)
        change.put(rewrite.port.key, rewrite.port.value)  # touched: see the module docstring
        change.put(rewrite.record_key, rewrite.record)


def converge(repo: Repo, subnet_id: str) -> int:
    """Rewrite every stale record of the subnet's bound ports, in transactions of at most
    :data:`PORTS_PER_TXN` ports; returns how many were found stale."""
    stale = [r.port.value["id"] for r in rewrites(repo, holders(repo, subnet_id))]
    for start in range(0, len(stale), PORTS_PER_TXN):
        chunk = stale[start : start + PORTS_PER_TXN]

        def use_case(chunk: list[str] = chunk) -> Outcome[None]:
            change = Change()
            add_rewrites(change, rewrites(repo, chunk))
            return Outcome(change, None)

        repo.run(use_case)
    return len(stale)


__all__ = ["PORTS_PER_TXN", "Rewrite", "add_rewrites", "converge", "holders", "rewrites"]
