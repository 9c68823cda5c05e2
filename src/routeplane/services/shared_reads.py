"""What this api process last knew of each key: reads a commit checks need no round trip.

On etcd every read is a round trip (one in three members: a linearizable read asks the
leader), and a use case reads up to ten keys before its one write (issue #17). Most of
them are documents that seldom change (a network, its subnets, a project's limits and
default group) or that this process wrote itself (a port it just updated, a quota usage
it just counted), or keys that are almost always absent (a new MAC, the next free
address). So :class:`~routeplane.services.repo.Repo` answers a use case's reads from this
table, and its transaction compares the ``mod_revision`` of every key answered so (0: the
key was taken to be absent): a stale answer costs a refused transaction, whose failure
branch reads the compared keys back and teaches them here, never a wrong write.

The table learns from the store only: from reads, from this process's successful
transactions (what they put, at their revision) and from refused ones (the keys read
back). It never answers a request that does not commit (a ``GET``, a use case that ends
in an error or writes nothing): :class:`Repo` runs those again from the store.

Bounded: the least recently used entries go past :data:`MAX_ENTRIES`.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass

from routeplane.model.jsontypes import JSONValue
from routeplane.model.keys import ROOT

MAX_ENTRIES = 50_000
# Keys that are new far more often than not (claims of a fresh MAC, of the next address,
# a pair-holders entry, an address no service IP has, this process's quota grant):
# unknown here, they are taken to be absent. The commit compares those a use case relies
# on (the claim it takes, the grant it charges), not every one an IPAM walk looked at.
PRESUMED_ABSENT = tuple(
    f"{ROOT}{kind}/"
    for kind in ("macs", "ipam", "pair-holders", "service_ip_addresses", "quota_grants")
)


@dataclass(frozen=True, slots=True)
class Known:
    """A key as last known: its value (None: absent) and ``mod_revision`` (0 if absent)."""

    value: JSONValue
    mod_revision: int


ABSENT = Known(None, 0)


class SharedReads:
    """Thread-safe, bounded: key → :class:`Known`, copies in and out."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._known: OrderedDict[str, Known] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, key: str) -> Known | None:
        """What is known of ``key`` (a copy), the presumption for a claim, or None."""
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                self._known.move_to_end(key)
        if known is None:
            return ABSENT if key.startswith(PRESUMED_ABSENT) else None
        return Known(copy.deepcopy(known.value), known.mod_revision)

    def learn(self, key: str, value: JSONValue, mod_revision: int) -> None:
        """``key`` holds ``value`` (None: is absent) as of ``mod_revision``."""
        known = ABSENT if value is None else Known(copy.deepcopy(value), mod_revision)
        with self._lock:
            self._known[key] = known
            self._known.move_to_end(key)
            while len(self._known) > self.max_entries:
                self._known.popitem(last=False)

    def forget_prefix(self, prefix: str) -> None:
        """A prefix delete: what was known under it no longer is."""
        with self._lock:
            for key in [k for k in self._known if k.startswith(prefix)]:
                del self._known[key]

    def __len__(self) -> int:
        return len(self._known)


__all__ = ["ABSENT", "PRESUMED_ABSENT", "Known", "SharedReads"]
