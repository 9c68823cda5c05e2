"""Bring endpoint records written by an older routeplane up to :data:`RECORD_VERSION`.

:func:`~routeplane.model.endpoint.decode` lets an agent read yesterday's records, but it
can only default what they lack: a record of version ≤ 2 carries no addressing, so its
VM gets no DHCP answer, and one of version 3 names no IPv6 address mode, so its IPv6
addresses look static. Only the port knows the missing facts. :func:`migrate` finds
every record older than :data:`RECORD_VERSION` and rewrites it from its port, with the
machinery a subnet update uses (:mod:`~routeplane.services.core.endpoint_refresh`).

Who runs it: the api at start (``routeplane api``, in the background so serving does not
wait) and ``routeplane store migrate`` by hand. Several api processes may start at once:
each rewrite compares the port's revision (the port is touched with its record), so two
migrators rewriting the same port cannot both commit; the loser runs again, finds the
record current and writes nothing. One transaction holds at most
:data:`~routeplane.services.core.endpoint_refresh.PORTS_PER_TXN` ports.

Idempotent: a second run finds nothing older, and rewrites nothing. A record whose port
is gone, unbound or bound elsewhere is left as it is (it is no migration's business;
``routeplane store check`` and the port's next write deal with it).
"""

from __future__ import annotations

from dataclasses import dataclass

from routeplane.model.endpoint import RECORD_VERSION
from routeplane.model.keys import endpoints_prefix, split
from routeplane.services.core.endpoint_refresh import PORTS_PER_TXN, add_rewrites, rewrites
from routeplane.services.repo import Change, Outcome, Repo


@dataclass(frozen=True)
class Migration:
    """What one run found and did."""

    older: int  # records older than RECORD_VERSION when the run looked
    rewritten: int  # of those, rewritten by this run (others: by a concurrent writer, or left)


def older_ports(repo: Repo) -> list[str]:
    """The ports whose stored endpoint record is older than :data:`RECORD_VERSION`
    (absent version: 1), once each, in key order."""
    found: dict[str, None] = {}
    for kv in repo.store.range(endpoints_prefix()).items:
        value = kv.value
        if not isinstance(value, dict):
            continue
        version = value.get("version", 1)
        if isinstance(version, int) and version >= RECORD_VERSION:
            continue
        parts = split(kv.key)
        if len(parts) == 3:  # ("endpoints", host, port)
            found[parts[2]] = None
    return list(found)


def migrate(repo: Repo) -> Migration:
    """Rewrite every older record from its port, :data:`PORTS_PER_TXN` ports a
    transaction, each derived from the store as it is at that transaction."""
    older = older_ports(repo)
    rewritten = 0
    for start in range(0, len(older), PORTS_PER_TXN):
        chunk = older[start : start + PORTS_PER_TXN]

        def use_case(chunk: list[str] = chunk) -> Outcome[int]:
            change = Change()
            found = rewrites(repo, chunk)
            add_rewrites(change, found)
            return Outcome(change, len(found))

        rewritten += repo.run(use_case)
    return Migration(older=len(older), rewritten=rewritten)


__all__ = ["Migration", "migrate", "older_ports"]
