"""Follow a prefix: snapshot, then every change after it, recovering from gaps by itself.

``Follower.poll()`` returns what a consumer must do next: a :class:`Snapshot` (replace
everything you knew under the prefix — the first time, and again whenever the history
it needed was compacted away) or a list of events (apply them in order). A broken
watch is resumed from the last revision seen; while the store is unreachable ``poll``
raises ``Unavailable`` and the consumer keeps what it has (the agent keeps the kernel as
it is) and calls again later. (networking-calico's EtcdWatcher and client-go's
reflector do the same: list, then watch from the list's revision + 1.)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from routeplane.model.errors import Compacted, StoreError, Unavailable
from routeplane.store.base import Event, EventType, KeyValue, Store, Watch

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    items: dict[str, KeyValue]
    revision: int


class Bell:
    """Wakes a reader of several followers when any of them has news.

    A follower made with a bell rings it when its watch receives something (or fails);
    the reader waits on the bell, then polls each of its followers without waiting. The
    agent reads its own host's endpoint records, the security groups and the member
    index of a changing set of groups this way, from one loop, with no thread of its
    own per prefix.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def ring(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> None:
        """Until rung (at once if rung since the last wait) or ``timeout`` seconds."""
        if timeout > 0:
            self._event.wait(timeout)
        self._event.clear()


class Follower:
    def __init__(self, store: Store, prefix: str, bell: Bell | None = None) -> None:
        self.store = store
        self.prefix = prefix
        self.bell = bell
        self.revision = 0  # the last revision the consumer has seen; 0: needs a snapshot
        self._watch: Watch | None = None

    def poll(self, timeout: float) -> Snapshot | list[Event]:
        if self.revision == 0:
            return self._snapshot()
        if self._watch is None:
            self._open()
            assert self._watch is not None
        try:
            events = self._watch.next_batch(timeout=timeout)
        except Compacted:
            LOG.warning(
                "watch %s: the history after revision %d was compacted; reading a snapshot",
                self.prefix,
                self.revision,
            )
            self._drop()
            return self._snapshot()
        except Unavailable:
            self._drop()  # resume from self.revision + 1 on the next poll
            raise
        if events:
            self.revision = events[-1].revision
        return events

    def _open(self) -> None:
        self._watch = self.store.watch(self.prefix, self.revision + 1)
        if self.bell is not None:
            self._watch.notify(self.bell.ring)

    def _snapshot(self) -> Snapshot:
        self._drop()
        result = self.store.range(self.prefix)
        self.revision = result.revision
        if self.bell is not None:
            # watching from here on, so that a reader waiting on the bell hears of the
            # next change (a failure to start is met again at the next poll)
            with contextlib.suppress(StoreError):
                self._open()
        return Snapshot({kv.key: kv for kv in result.items}, result.revision)

    def _drop(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def close(self) -> None:
        self._drop()


class Feed(Protocol):
    """What a consumer of a prefix reads: a :class:`Follower`, or a :class:`Branch` of one."""

    def poll(self, timeout: float) -> Snapshot | list[Event]: ...

    def close(self) -> None: ...


def _applied(items: dict[str, KeyValue], events: Iterable[Event]) -> None:
    """``items`` (a snapshot's) brought forward by ``events``, in place."""
    for event in events:
        if event.type is EventType.PUT:
            items[event.key] = KeyValue(
                event.key, event.value, event.create_revision, event.revision, event.version
            )
        else:
            items.pop(event.key, None)


class Fanout:
    """One :class:`Follower` read by its owner, whose news also reaches other readers of
    the same prefix in the same process (:meth:`branch`).

    The agent's process has three readers of its host's endpoint records (the reconcile
    loop, the health checker, the metadata service), each in a thread of its own. With a
    follower each, every record was read and decoded three times at a start, and every
    change three times after; with a fan-out the store is read once, by the owner (the
    loop), and the others get what it got as soon as it got it.

    A branch made late starts from a snapshot of everything the owner has seen; a branch
    may follow a narrower prefix than the owner's (the agent's loop reads every host's
    records, for its security groups' members, and the health checker only its own host's).
    Branches never touch the store, so while the store is unreachable they hear nothing.
    """

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self._lock = threading.Lock()
        self._items: dict[str, KeyValue] = {}
        self._revision = 0  # 0: the owner has not read a snapshot yet
        self._branches: list[Branch] = []

    def poll(self, timeout: float) -> Snapshot | list[Event]:
        """The owner's read: as ``Follower.poll``, and passed on to every branch."""
        news = self.follower.poll(timeout)
        if not self._branches and isinstance(news, list) and not news:
            return news
        with self._lock:
            if isinstance(news, Snapshot):
                self._items = dict(news.items)
                self._revision = news.revision
            elif news:
                _applied(self._items, news)
                self._revision = news[-1].revision
            for branch in self._branches:
                branch.feed(news)
        return news

    def branch(self, prefix: str = "") -> Branch:
        """Another reader of the keys under ``prefix`` (within the owner's; "": all of
        them), starting from everything seen so far."""
        if prefix and not prefix.startswith(self.follower.prefix):
            raise ValueError(f"{prefix!r} is not within {self.follower.prefix!r}")
        branch = Branch(self, prefix)
        with self._lock:
            if self._revision:
                branch.feed(Snapshot(dict(self._items), self._revision))
            self._branches.append(branch)
        return branch

    def _remove(self, branch: Branch) -> None:
        with self._lock:
            if branch in self._branches:
                self._branches.remove(branch)

    def close(self) -> None:
        self.follower.close()


class Branch:
    """A :class:`Fanout`'s other reader: ``poll`` as a ``Follower``'s, fed by the owner."""

    def __init__(self, fanout: Fanout, prefix: str = "") -> None:
        self._fanout = fanout
        self.prefix = prefix
        self._news: queue.SimpleQueue[Snapshot | list[Event]] = queue.SimpleQueue()

    def feed(self, news: Snapshot | list[Event]) -> None:
        prefix = self.prefix
        if isinstance(news, Snapshot):
            if prefix:
                items = {k: kv for k, kv in news.items.items() if k.startswith(prefix)}
                news = Snapshot(items, news.revision)
            self._news.put(news)
            return
        if prefix:
            news = [event for event in news if event.key.startswith(prefix)]
        if news:
            self._news.put(news)

    def poll(self, timeout: float) -> Snapshot | list[Event]:
        """Everything the owner read since the last poll, as one snapshot (when one is
        among it, brought forward by what came after) or one list of events; ``[]``
        after ``timeout`` seconds without news."""
        try:
            first = self._news.get(timeout=timeout) if timeout > 0 else self._news.get_nowait()
        except queue.Empty:
            return []
        pending = [first]
        while True:
            try:
                pending.append(self._news.get_nowait())
            except queue.Empty:
                break
        base: Snapshot | None = None
        events: list[Event] = []
        for news in pending:
            if isinstance(news, Snapshot):
                base, events = news, []  # what came before it is superseded
            else:
                events += news
        if base is None or not events:
            return base if base is not None else events
        items = dict(base.items)
        _applied(items, events)
        return Snapshot(items, events[-1].revision)

    def close(self) -> None:
        self._fanout._remove(self)


__all__ = ["Bell", "Branch", "Fanout", "Feed", "Follower", "Snapshot"]
