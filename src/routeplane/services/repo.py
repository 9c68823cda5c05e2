"""Resource documents in the store: keys, reads, and optimistic transactions.

Every API change is one store transaction: the documents it read are compared on their
``mod_revision`` (someone else changed one → the whole use case runs again from fresh
reads), and the keys it claims (IP addresses, MACs) are create-if-absent. A use case is a
function that reads, validates, and returns a :class:`Change` plus its answer; :func:`run`
commits it and retries on conflict, so a failed request leaves nothing behind.

Within one attempt of a use case every key and prefix is read from the store once: the
parts of a use case (validation, the endpoint record, the quota check) ask for the same
network, subnet or quota again, and on etcd each read is a round trip. A repeated read
answers from the attempt's cache, as if it had been made at the time of the first; that
is safe because the transaction compares the revisions of what the attempt depends on,
so a conflict starts the next attempt afresh. Afresh but not empty: a refused
transaction reads back, in its failure branch, every key it compared, and the next
attempt starts with those that had not changed (read at the refusal, later than
anything the attempt had read). What had changed is read again when the attempt needs
it: a hot key (a project's quota usage, which every create counts) is then read as late
as before, just before the commit; seeded at the refusal instead, it would be as old as
the whole attempt, and lose every race.
Callers get copies: a document they change in place is not changed in the cache.
"""

from __future__ import annotations

import builtins
import copy
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from routeplane.model.jsontypes import JSONValue
from routeplane.model.keys import ROOT, key, prefix
from routeplane.services.errors import ApiFault
from routeplane.store import Compare, Delete, Get, KeyValue, Op, Put, Store, absent, mod_revision_is

MAX_ATTEMPTS = 25
T = TypeVar("T")


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_mac() -> str:
    """Neutron's default base MAC fa:16:3e with three random octets."""
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


_Read = tuple[str, JSONValue, int]  # a key-value as read: key, value, mod_revision
Reads = dict[str | tuple[str, str], list[_Read]]  # an attempt's reads, by key or range


@dataclass
class Doc:
    """A document as read: its value and the revision to compare against when writing."""

    key: str
    value: dict[str, Any]
    mod_revision: int


@dataclass
class Change:
    """What one request writes, and the reads it depends on."""

    compares: list[Compare] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    _written: set[str] = field(default_factory=set)

    def depends_on(self, doc: Doc | None, key_if_missing: str | None = None) -> None:
        """The request is valid only while ``doc`` is unchanged (or still missing)."""
        if doc is not None:
            self.compares.append(mod_revision_is(doc.key, doc.mod_revision))
        elif key_if_missing is not None:
            self.compares.append(absent(key_if_missing))

    def put(self, k: str, value: JSONValue) -> None:
        self._written.add(k)
        self.ops.append(Put(k, value))

    def delete(self, k: str) -> None:
        self._written.add(k)
        self.ops.append(Delete(k))

    def claim(self, k: str, value: JSONValue) -> None:
        """Create ``k`` only if nobody holds it: an address, a MAC, a default group."""
        self.compares.append(absent(k))
        self.put(k, value)

    def writes(self, k: str) -> bool:
        return k in self._written

    def puts(self) -> Iterator[tuple[str, JSONValue]]:
        return ((op.key, op.value) for op in self.ops if isinstance(op, Put))


def _unchanged(
    compares: list[Compare], keys: list[str], results: tuple[object, ...]
) -> dict[str | tuple[str, str], list[_Read]]:
    """The keys read back by a refused transaction whose revision compares all held."""
    found = dict(zip(keys, results, strict=True))
    for c in compares:
        kv = found.get(c.key)
        actual = getattr(kv, c.target, 0) if c.target != "value" else None
        if c.key in found and not (c.op == "==" and actual == c.operand):
            del found[c.key]
    return {
        k: [(kv.key, kv.value, kv.mod_revision)] if isinstance(kv, KeyValue) else []
        for k, kv in found.items()
    }


def _docs(reads: list[_Read]) -> list[Doc]:
    return [Doc(k, value, revision) for k, value, revision in reads if isinstance(value, dict)]


@dataclass
class Outcome(Generic[T]):
    change: Change
    result: T


class Repo:
    """Typed access to resource documents on a store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._local = threading.local()
        # Checks of a change about to commit, which may refuse it or add compares
        # (quota enforcement).
        self.before_commit: builtins.list[Callable[[Change], None]] = []
        # transactions refused because something they depend on changed (each one runs
        # its use case again), and use cases that lost every race (answered 409): counted
        # for the api's metrics
        self.conflicts = 0
        self.gave_up = 0
        self._counting = threading.Lock()

    def attempt(self) -> int:
        """How many times the running use case lost a race already (0 on the first try)."""
        return int(getattr(self._local, "attempt", 0))

    def get(self, kind: str, doc_id: str) -> Doc | None:
        return self.get_key(key(kind, doc_id))

    def get_key(self, k: str) -> Doc | None:
        cache = self._cache()
        if cache is None or k not in cache:
            kv = self.store.get(k)
            found = [] if kv is None else [(kv.key, kv.value, kv.mod_revision)]
            if cache is not None:
                cache[k] = copy.deepcopy(found)
        else:
            found = copy.deepcopy(cache[k])
        docs = _docs(found)
        return docs[0] if docs else None

    def list(self, kind: str, *parts: str) -> builtins.list[Doc]:
        return _docs(self._range(prefix(kind, *parts)))

    def keys(self, kind: str, *parts: str) -> Iterator[str]:
        base = prefix(kind, *parts)
        for k, _value, _revision in self._range(base):
            yield k[len(base) :]

    def _range(self, base: str) -> builtins.list[_Read]:
        """The key-values under ``base``, from the attempt's cache when it has them."""
        cache = self._cache()
        if cache is not None and (base, "*") in cache:
            return copy.deepcopy(cache[base, "*"])
        found = [(kv.key, kv.value, kv.mod_revision) for kv in self.store.range(base).items]
        if cache is not None:
            cache[base, "*"] = copy.deepcopy(found)
        return found

    def _cache(self) -> dict[str | tuple[str, str], builtins.list[_Read]] | None:
        """The running attempt's reads (None outside :meth:`run`)."""
        cache: dict[str | tuple[str, str], builtins.list[_Read]] | None
        cache = getattr(self._local, "cache", None)
        return cache

    def rehearse(self, use_case: Callable[[], Outcome[T]]) -> Reads:
        """Run ``use_case`` without committing anything: the reads its change compares,
        to hand to :meth:`run` later (``reads``).

        For a use case known before it is due (the controller's failover, while the
        active port is failing but not yet past its threshold): when it is due, its
        reads come from here and committing it is one round trip, its transaction. That
        transaction compares every one of these reads, so a read gone stale in between
        only makes it fail and run again from fresh reads, exactly as after a lost race
        (reads it does not compare are never kept: they are read again).
        """
        outer, attempt = self._cache(), self.attempt()
        seen: Reads = {}
        try:
            self._local.attempt, self._local.cache = 0, seen
            change = use_case().change
        finally:
            self._local.attempt, self._local.cache = attempt, outer
        compared = {c.key for c in change.compares}
        return {k: reads for k, reads in seen.items() if k in compared}

    def run(self, use_case: Callable[[], Outcome[T]], reads: Reads | None = None) -> T:
        """Commit what ``use_case`` decides; on a conflicting write run it again.

        ``reads``: what a :meth:`rehearse` of it read. A transaction built on them compares
        them; a decision to write nothing, or a refusal, made on them is not final (no
        transaction checked them): the use case then runs again from fresh reads.
        """
        outer = self._cache()  # a use case run inside another one: its own reads, then back
        seen: Reads = dict(reads or {})
        rehearsed = reads is not None
        try:
            for attempt in range(MAX_ATTEMPTS):
                self._local.attempt = attempt
                self._local.cache = seen
                try:
                    outcome = use_case()
                except ApiFault:
                    if not rehearsed:
                        raise
                    rehearsed, seen = False, {}  # refused on rehearsed reads: read again
                    continue
                if not outcome.change.ops:
                    if rehearsed:  # nothing to do, on rehearsed reads: read again
                        rehearsed, seen = False, {}
                        continue
                    return outcome.result
                for check in self.before_commit:
                    check(outcome.change)
                compared = list(dict.fromkeys(c.key for c in outcome.change.compares))
                result = self.store.txn(
                    outcome.change.compares, outcome.change.ops, [Get(k) for k in compared]
                )
                if result.succeeded:
                    return outcome.result
                seen = _unchanged(outcome.change.compares, compared, result.results)
                rehearsed = False  # read back by the store as the transaction failed
                with self._counting:
                    self.conflicts += 1
        finally:
            self._local.attempt = 0
            self._local.cache = outer
        with self._counting:
            self.gave_up += 1
        raise ApiFault(
            "HTTPConflict", 409, "The request could not be completed because of concurrent changes."
        )


__all__ = [
    "ROOT",
    "Change",
    "Doc",
    "Outcome",
    "Reads",
    "Repo",
    "key",
    "new_id",
    "new_mac",
    "now",
    "prefix",
]
