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

from dataclasses import dataclass

from routeplane.model.errors import Compacted, Unavailable
from routeplane.store.base import Event, KeyValue, Store, Watch


@dataclass(frozen=True)
class Snapshot:
    items: dict[str, KeyValue]
    revision: int


class Follower:
    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.revision = 0  # the last revision the consumer has seen; 0: needs a snapshot
        self._watch: Watch | None = None

    def poll(self, timeout: float) -> Snapshot | list[Event]:
        if self.revision == 0:
            return self._snapshot()
        if self._watch is None:
            self._watch = self.store.watch(self.prefix, self.revision + 1)
        try:
            events = self._watch.next_batch(timeout=timeout)
        except Compacted:
            self._drop()
            return self._snapshot()
        except Unavailable:
            self._drop()  # resume from self.revision + 1 on the next poll
            raise
        if events:
            self.revision = events[-1].revision
        return events

    def _snapshot(self) -> Snapshot:
        self._drop()
        result = self.store.range(self.prefix)
        self.revision = result.revision
        return Snapshot({kv.key: kv for kv in result.items}, result.revision)

    def _drop(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def close(self) -> None:
        self._drop()


__all__ = ["Follower", "Snapshot"]
