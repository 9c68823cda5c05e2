"""Building the security-group member index for ports written before it existed.

The api writes a bound port's member index entries (``model/members.py``) beside its
endpoint record, in the same transaction. A store written by an older routeplane has the
records and no index, and agents of this version learn remote groups' members only from
the index; so an upgrade runs ``routeplane store migrate`` once, after the api processes
are upgraded and before the agents are (docs/design/scale.md, "Upgrading"). Until the
agents are upgraded they follow every host's records, which the api still writes as
before: in a mixed deployment no host loses a route or a member.

How: every endpoint record is read, the entries it implies are compared with the index
as stored, and the difference (missing, stale and orphaned entries) is written in
transactions of at most ``MAX_TXN_OPS`` operations, each conditional on the records it
derived from being unchanged (a port the api rewrites meanwhile writes its own entries;
that chunk is derived again). Running it again finds nothing to do: it is idempotent.
What it must not do: change an endpoint record or any resource document.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from routeplane.model.endpoint import decode_or_none
from routeplane.model.jsontypes import JSONValue
from routeplane.model.keys import endpoints_prefix, members_prefix, split
from routeplane.model.members import record_entries
from routeplane.store import Compare, Delete, Op, Put, Store, mod_revision_is
from routeplane.store.codec import MAX_TXN_OPS

ATTEMPTS = 5


@dataclass(frozen=True)
class Migrated:
    written: int  # entries created or corrected
    deleted: int  # entries of no current record


def _plan(store: Store) -> list[tuple[list[Compare], list[Op]]]:
    """The writes that bring the index to what the records imply, grouped per record
    (with the compare that the record is as read) and the orphans' deletes last."""
    records = store.range(endpoints_prefix())
    stored = {kv.key: kv.value for kv in store.range(members_prefix()).items}
    wanted: dict[str, JSONValue] = {}
    plans: list[tuple[list[Compare], list[Op]]] = []
    for kv in records.items:
        parts = split(kv.key)
        record = decode_or_none(kv.value)
        if len(parts) != 3 or record is None:
            continue
        implied = record_entries(parts[2], record)
        wanted.update(implied)
        ops: list[Op] = [Put(k, v) for k, v in implied.items() if stored.get(k) != v]
        if ops:
            plans.append(([mod_revision_is(kv.key, kv.mod_revision)], ops))
    orphans: list[Op] = [Delete(k) for k in stored if k not in wanted]
    for start in range(0, len(orphans), MAX_TXN_OPS):
        plans.append(([], orphans[start : start + MAX_TXN_OPS]))
    return plans


def _chunks(
    plans: list[tuple[list[Compare], list[Op]]],
) -> Iterator[tuple[list[Compare], list[Op]]]:
    """Whole plans packed into transactions etcd accepts."""
    compares: list[Compare] = []
    ops: list[Op] = []
    for plan_compares, plan_ops in plans:
        if len(compares) + len(plan_compares) > MAX_TXN_OPS or len(ops) + len(plan_ops) > (
            MAX_TXN_OPS
        ):
            yield compares, ops
            compares, ops = [], []
        compares += plan_compares
        ops += plan_ops
    if ops:
        yield compares, ops


def migrate(store: Store) -> Migrated:
    """Bring the member index to what the endpoint records imply; returns what changed."""
    written = deleted = 0
    for _ in range(ATTEMPTS):
        plans = _plan(store)
        if not plans:
            break
        for compares, ops in _chunks(plans):
            if store.txn(compares, ops).succeeded:  # else: derived again on the next pass
                written += sum(isinstance(op, Put) for op in ops)
                deleted += sum(isinstance(op, Delete) for op in ops)
    return Migrated(written, deleted)


__all__ = ["Migrated", "migrate"]
