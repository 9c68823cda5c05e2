"""Resource documents in the store: keys, reads, and optimistic transactions.

Every API change is one store transaction: the documents it read are compared on their
``mod_revision`` (someone else changed one → the whole use case runs again from fresh
reads), and the keys it claims (IP addresses, MACs) are create-if-absent. A use case is a
function that reads, validates, and returns a :class:`Change` plus its answer; :func:`run`
commits it and retries on conflict, so a failed request leaves nothing behind.
"""

from __future__ import annotations

import builtins
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
from routeplane.store import Compare, Delete, Op, Put, Store, absent, mod_revision_is

MAX_ATTEMPTS = 25
T = TypeVar("T")


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_mac() -> str:
    """Neutron's default base MAC fa:16:3e with three random octets."""
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


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
        kv = self.store.get(k)
        if kv is None or not isinstance(kv.value, dict):
            return None
        return Doc(kv.key, kv.value, kv.mod_revision)

    def list(self, kind: str, *parts: str) -> builtins.list[Doc]:
        result = self.store.range(prefix(kind, *parts))
        return [
            Doc(kv.key, kv.value, kv.mod_revision)
            for kv in result.items
            if isinstance(kv.value, dict)
        ]

    def keys(self, kind: str, *parts: str) -> Iterator[str]:
        base = prefix(kind, *parts)
        for kv in self.store.range(base).items:
            yield kv.key[len(base) :]

    def run(self, use_case: Callable[[], Outcome[T]]) -> T:
        """Commit what ``use_case`` decides; on a conflicting write run it again."""
        try:
            for attempt in range(MAX_ATTEMPTS):
                self._local.attempt = attempt
                outcome = use_case()
                if not outcome.change.ops:
                    return outcome.result
                for check in self.before_commit:
                    check(outcome.change)
                if self.store.txn(outcome.change.compares, outcome.change.ops).succeeded:
                    return outcome.result
                with self._counting:
                    self.conflicts += 1
        finally:
            self._local.attempt = 0
        with self._counting:
            self.gave_up += 1
        raise ApiFault(
            "HTTPConflict", 409, "The request could not be completed because of concurrent changes."
        )


__all__ = ["ROOT", "Change", "Doc", "Outcome", "Repo", "key", "new_id", "new_mac", "now", "prefix"]
