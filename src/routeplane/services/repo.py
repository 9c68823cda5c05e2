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

Across attempts and requests, a use case's reads are answered from what this process
last knew (:mod:`routeplane.services.shared_reads`) without a round trip, and the
transaction compares each key answered so: a stale answer costs a refused transaction,
never a wrong write. A use case that fails or writes nothing after such answers is run
again from the store, so an error or a no-op answer is never based on them. What a caller
needs from the store after the commit (``Change.read_after``: a port's status, its
host's agent) is read in the same transaction, at the revision it wrote.

Some keys are written by nearly every request of one kind (a project's quota usage):
concurrent threads of this process would all compare the same old revision and all but
one lose. :meth:`Repo.hold` makes them take turns on such a key, from the point where
the use case reads it to its commit, so each reads what the one before it wrote.
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
from routeplane.services.shared_reads import PRESUMED_ABSENT, Known, SharedReads
from routeplane.store import (
    Compare,
    Delete,
    Get,
    KeyValue,
    Op,
    Put,
    Store,
    TxnResult,
    absent,
    mod_revision_is,
)
from routeplane.store.codec import MAX_TXN_OPS

MAX_ATTEMPTS = 25
UNCHECKED = -1  # a key answered from what the process knew, not compared by the commit
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
    # keys read in the commit's own transaction, for the answer (Repo.after_commit)
    read_after: list[str] = field(default_factory=list)
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

    def __init__(self, store: Store, *, shared: SharedReads | None = None) -> None:
        """``shared``: what this process knows already (default: a table of its own)."""
        self.store = store
        self.shared = SharedReads() if shared is None else shared
        self._local = threading.local()
        self._turns: dict[str, threading.RLock] = {}
        # Checks of a change about to commit, which may refuse it or add compares
        # (quota enforcement).
        self.before_commit: builtins.list[Callable[[Change], None]] = []
        # Told the keys whose change refused a transaction (quota usage under contention).
        self.on_refused: builtins.list[Callable[[set[str]], None]] = []
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
        if cache is not None and k in cache:
            found = copy.deepcopy(cache[k])
        elif cache is not None and (known := self._presumed(k)) is not None:
            found = [] if known.value is None else [(k, known.value, known.mod_revision)]
            cache[k] = copy.deepcopy(found)
        else:
            kv = self.store.get(k)
            found = [] if kv is None else [(kv.key, kv.value, kv.mod_revision)]
            self.shared.learn(
                k, None if kv is None else kv.value, 0 if kv is None else kv.mod_revision
            )
            if cache is not None:
                cache[k] = copy.deepcopy(found)
        docs = _docs(found)
        return docs[0] if docs else None

    def _presumed(self, k: str) -> Known | None:
        """What this process knows of ``k``, when the running attempt may answer from it
        (recorded: the commit compares it)."""
        presumed: dict[str, int] | None = getattr(self._local, "presumed", None)
        if presumed is None:
            return None
        known = self.shared.lookup(k)
        if known is not None:
            # claims (addresses, MACs, pair holders) are looked at by the dozen in an
            # IPAM walk and compared only where they are relied on: the claim taken
            # compares its absence, a move its holder, the pair index its entries. A
            # stale answer elsewhere costs a free address skipped, so only those compares
            # are made (comparing every address walked past would fill the transaction)
            unchecked = k.startswith(PRESUMED_ABSENT)
            presumed[k] = UNCHECKED if unchecked else known.mod_revision
        return known

    def hold(self, k: str) -> None:
        """Take this process's turn on a hot key ``k`` until the running attempt commits or
        fails (keys are held in the order asked: ask in a fixed order)."""
        held: builtins.list[threading.RLock] | None = getattr(self._local, "held", None)
        if held is None:  # outside run: nothing to commit, nothing to wait for
            return
        with self._counting:
            turn = self._turns.setdefault(k, threading.RLock())
        if turn not in held:
            turn.acquire()
            held.append(turn)

    def after_commit(self) -> dict[str, KeyValue | None]:
        """The keys the last use case of this thread asked to read with its commit
        (``Change.read_after``), once: empty when it did not commit."""
        found: dict[str, KeyValue | None] = getattr(self._local, "after", {})
        self._local.after = {}
        return found

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
        saved = (self.attempt(), self._cache(), getattr(self._local, "presumed", None))
        saved_held = getattr(self._local, "held", None)
        seen: Reads = {}
        try:
            self._local.attempt, self._local.cache = 0, seen
            self._local.presumed, self._local.held = None, None  # from the store, no turns
            change = use_case().change
        finally:
            self._local.attempt, self._local.cache, self._local.presumed = saved
            self._local.held = saved_held
        compared = {c.key for c in change.compares}
        return {k: reads for k, reads in seen.items() if k in compared}

    def run(self, use_case: Callable[[], Outcome[T]], reads: Reads | None = None) -> T:
        """Commit what ``use_case`` decides; on a conflicting write run it again.

        ``reads``: what a :meth:`rehearse` of it read. A transaction built on them compares
        them; a decision to write nothing, or a refusal, made on them is not final (no
        transaction checked them): the use case then runs again from fresh reads, as one
        made on what this process knew (:attr:`shared`) is.
        """
        # a use case run inside another one: its own reads, then back
        outer = (self._cache(), getattr(self._local, "presumed", None))
        outer_held = getattr(self._local, "held", None)
        seen: Reads = dict(reads or {})
        rehearsed = reads is not None
        self._local.after = {}
        presuming = not rehearsed
        try:
            for attempt in range(MAX_ATTEMPTS):
                self._local.attempt = attempt
                self._local.cache = seen
                self._local.presumed = {} if presuming else None
                self._local.held = []
                try:
                    outcome = self._decide(use_case, provisional=rehearsed)
                    if outcome is None:  # answered from what was known, not read: again
                        presuming, rehearsed, seen = False, False, {}
                        continue
                    if not outcome.change.ops:
                        return outcome.result
                    result = self._commit(outcome.change)
                    if result is None:  # its presumptions would not fit one transaction
                        presuming, seen = False, {}
                        continue
                finally:
                    for turn in reversed(self._local.held):
                        turn.release()
                if result.succeeded:
                    return outcome.result
                rehearsed = False  # what it compared was read back as the transaction failed
                compared = self._compared(outcome.change)
                seen = _unchanged(outcome.change.compares, compared, result.results)
                for lost in self.on_refused:
                    lost({k for k in compared if k not in seen})
                with self._counting:
                    self.conflicts += 1
        finally:
            self._local.attempt = 0
            self._local.cache, self._local.presumed = outer
            self._local.held = outer_held
        with self._counting:
            self.gave_up += 1
        raise ApiFault(
            "HTTPConflict", 409, "The request could not be completed because of concurrent changes."
        )

    def _decide(
        self, use_case: Callable[[], Outcome[T]], *, provisional: bool = False
    ) -> Outcome[T] | None:
        """The attempt's outcome with its quota checks, or None when it must be run again
        from the store: it failed or wrote nothing after answers from :attr:`shared`, or
        from ``provisional`` reads (a rehearsal's)."""
        try:
            outcome = use_case()
            if outcome.change.ops:
                for check in self.before_commit:
                    check(outcome.change)
        except Exception:  # a refusal, or any other verdict (the controller's NotLeader)
            if provisional or self._local.presumed:  # on reads no transaction checked
                return None
            raise
        if not outcome.change.ops and (provisional or self._local.presumed):
            return None
        return outcome

    def _compared(self, change: Change) -> builtins.list[str]:
        return list(dict.fromkeys(c.key for c in change.compares))

    def _commit(self, change: Change) -> TxnResult | None:
        """One transaction: the change, on condition of what it read (what it presumed
        too), reading back what it compared if refused; what it learns goes to
        :attr:`shared`. None when the compares of what it presumed would take the
        transaction over etcd's limit (a change touching many ports): then it is run
        again from the store, as it was before presumptions."""
        presumed: dict[str, int] = self._local.presumed or {}
        compared = {c.key for c in change.compares}
        extra = [
            mod_revision_is(k, revision)
            for k, revision in presumed.items()
            if k not in compared and revision != UNCHECKED
        ]
        if extra and len(change.compares) + len(extra) > MAX_TXN_OPS:
            return None
        change.compares.extend(extra)
        keys = self._compared(change)
        after = list(dict.fromkeys(change.read_after))
        if len(change.ops) + len(after) > MAX_TXN_OPS:
            after = []  # the answer reads them as a GET does
        result = self.store.txn(
            change.compares, [*change.ops, *(Get(k) for k in after)], [Get(k) for k in keys]
        )
        if not result.succeeded:
            for k, kv in zip(keys, result.results, strict=True):
                self._learn_kv(k, kv)
            return result
        for op in change.ops:
            if isinstance(op, Put):
                self.shared.learn(op.key, op.value, result.revision)
            elif isinstance(op, Delete) and op.prefix:
                self.shared.forget_prefix(op.key)
            elif isinstance(op, Delete):
                self.shared.learn(op.key, None, 0)
        found = result.results[len(change.ops) :]
        self._local.after = {
            k: kv for k, kv in zip(after, found, strict=True) if not isinstance(kv, tuple | int)
        }
        for k, kv in zip(after, found, strict=True):
            self._learn_kv(k, kv)
        return result

    def _learn_kv(self, k: str, kv: object) -> None:
        if isinstance(kv, KeyValue):
            self.shared.learn(k, kv.value, kv.mod_revision)
        elif kv is None:
            self.shared.learn(k, None, 0)


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
