"""The store interface: a revisioned key-value store with transactions, watches and leases.

This is the contract every backend (sqlite, etcd) implements and the contract test suite
checks. Its semantics are etcd v3's, because etcd is the multi-host backend and the
embedded sqlite backend must behave the same way:

- every write transaction that changes something gets the next store-wide *revision*;
  all keys it writes carry that revision as their ``mod_revision``;
- ``range(prefix)`` answers with the revision it was read at, so a caller can take a
  snapshot and then ``watch(prefix, revision + 1)`` without missing or repeating anything;
- ``txn`` evaluates all compares atomically and runs either ``on_success`` or
  ``on_failure``; a compare on the value of a missing key is always false (as in etcd);
- ``watch`` yields events in revision order; a start revision older than the compaction
  point raises :class:`~routeplane.model.errors.Compacted`, telling the caller to re-snapshot;
- a lease expires ``ttl`` seconds after its last keep-alive and deletes the keys attached
  to it, which watchers see as delete events.

Values are JSON documents. Keys are printable ASCII paths starting with ``/``.
What this module must not do: import a backend, or do I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from routeplane.model.jsontypes import JSONValue


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key as stored, with etcd's revision metadata."""

    key: str
    value: JSONValue
    create_revision: int
    mod_revision: int
    version: int
    lease: int | None = None


@dataclass(frozen=True, slots=True)
class RangeResult:
    """The keys under a prefix, sorted by key, and the store revision they were read at."""

    items: tuple[KeyValue, ...]
    revision: int


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """One change seen by a watch. ``value`` is ``None`` for deletes."""

    type: EventType
    key: str
    value: JSONValue
    revision: int
    create_revision: int = 0
    version: int = 0


CompareTarget: TypeAlias = Literal["value", "mod_revision", "create_revision", "version"]
CompareOp: TypeAlias = Literal["==", "!=", "<", ">"]


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction.

    Revision targets compare integers; a missing key has create/mod revision and version 0.
    ``value`` compares JSON documents for (in)equality only, and is false on a missing key.
    """

    key: str
    target: CompareTarget
    op: CompareOp
    operand: JSONValue


def exists(key: str) -> Compare:
    """True when ``key`` is present."""
    return Compare(key, "create_revision", ">", 0)


def absent(key: str) -> Compare:
    """True when ``key`` is missing: the create-if-absent claim."""
    return Compare(key, "create_revision", "==", 0)


def mod_revision_is(key: str, revision: int) -> Compare:
    """True when ``key`` was last written at ``revision`` (0: the key is missing)."""
    return Compare(key, "mod_revision", "==", revision)


def value_is(key: str, value: JSONValue) -> Compare:
    """True when ``key`` is present and holds ``value``."""
    return Compare(key, "value", "==", value)


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: JSONValue
    lease: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``key``, or every key under it with ``prefix=True``."""

    key: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Get:
    key: str


@dataclass(frozen=True, slots=True)
class Range:
    prefix: str


Op: TypeAlias = Put | Delete | Get | Range
# Per operation: Put -> None, Delete -> number of keys deleted, Get -> KeyValue | None,
# Range -> tuple of KeyValue.
OpResult: TypeAlias = int | KeyValue | tuple[KeyValue, ...] | None


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Which branch ran, the store revision after it, and one result per operation run."""

    succeeded: bool
    revision: int
    results: tuple[OpResult, ...]


class WriteShortcuts:
    """``put`` and ``delete`` as one-operation transactions, shared by the backends.

    Every write then takes one code path (validation, lease checks, revision handling),
    so the shortcuts cannot drift from ``txn``.
    """

    def txn(
        self,
        compares: Sequence[Compare],
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
    ) -> TxnResult:
        raise NotImplementedError

    def put(self, key: str, value: JSONValue, *, lease: int | None = None) -> int:
        """Write unconditionally; returns the new revision."""
        return self.txn((), (Put(key, value, lease),)).revision

    def delete(self, key: str) -> bool:
        """Delete one key; True when it existed."""
        return self.txn((), (Delete(key),)).results[0] == 1


class Watch(Protocol):
    """A stream of events under a prefix, from a start revision, in revision order."""

    def next_batch(self, timeout: float | None = None) -> list[Event]:
        """Wait up to ``timeout`` seconds for events; ``[]`` when none arrived.

        Raises ``Compacted`` when the start revision is no longer available and
        ``Unavailable`` when the stream broke; the watch is then finished and the caller
        starts a new one (from its last seen revision + 1, or from a fresh snapshot).
        """
        ...

    def notify(self, ring: Callable[[], None]) -> None:
        """Call ``ring()`` (from the feeder's thread) whenever events or an error arrive,
        and at once if some are waiting: a reader of several watches waits for any of
        them (``store.watcher.Bell``)."""
        ...

    def close(self) -> None: ...

    def __iter__(self) -> Iterator[Event]: ...

    def __enter__(self) -> Watch: ...

    def __exit__(self, *exc: object) -> None: ...


class Store(Protocol):
    """The revisioned store. Every method is safe to call from several threads."""

    url: str

    def get(self, key: str) -> KeyValue | None: ...

    def range(self, prefix: str) -> RangeResult: ...

    def put(self, key: str, value: JSONValue, *, lease: int | None = None) -> int:
        """Write unconditionally; returns the new revision."""
        ...

    def delete(self, key: str) -> bool:
        """Delete one key; True when it existed."""
        ...

    def txn(
        self,
        compares: Sequence[Compare],
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
    ) -> TxnResult: ...

    def revision(self) -> int:
        """The store's current revision."""
        ...

    def watch(self, prefix: str, start_revision: int | None = None) -> Watch:
        """Watch keys under ``prefix`` from ``start_revision`` (default: the next one)."""
        ...

    def compact(self, revision: int) -> None:
        """Forget history before ``revision``: watches from older revisions get ``Compacted``."""
        ...

    def grant_lease(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id."""
        ...

    def keepalive(self, lease_id: int) -> int:
        """Renew a lease; returns its TTL. Raises ``LeaseNotFound`` when it has expired."""
        ...

    def revoke_lease(self, lease_id: int) -> None:
        """End a lease now, deleting its keys. Unknown leases are ignored."""
        ...

    def close(self) -> None: ...


__all__ = [
    "Compare",
    "CompareOp",
    "CompareTarget",
    "Delete",
    "Event",
    "EventType",
    "Get",
    "KeyValue",
    "Op",
    "OpResult",
    "Put",
    "Range",
    "RangeResult",
    "Store",
    "TxnResult",
    "Watch",
    "WriteShortcuts",
    "absent",
    "exists",
    "mod_revision_is",
    "value_is",
]
