"""A watch fed by a backend thread: events and a final error travel through one queue.

Both backends deliver watch events from a background thread (sqlite's poller, etcd's
stream reader). This class is the consumer side: it hands events out in batches, and once
the feeder reports an error (``Compacted``, ``Unavailable``) it raises it and is finished.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator

from routeplane.model.errors import StoreError
from routeplane.store.base import Event

_CLOSED = object()


class QueueWatch:
    """Consumer end of a watch; the backend calls :meth:`feed` and :meth:`fail`."""

    def __init__(self, prefix: str, start_revision: int, on_close: Callable[[], None]) -> None:
        self.prefix = prefix
        self.start_revision = start_revision
        self._queue: queue.SimpleQueue[list[Event] | StoreError | object] = queue.SimpleQueue()
        self._on_close = on_close
        self._error: StoreError | None = None
        self._ring: Callable[[], None] | None = None
        self.closed = False

    # feeder side -------------------------------------------------------------------
    def feed(self, events: list[Event]) -> None:
        if events and not self.closed:
            self._queue.put(events)
            if self._ring is not None:
                self._ring()

    def fail(self, error: StoreError) -> None:
        if not self.closed:
            self._queue.put(error)
            if self._ring is not None:
                self._ring()

    def notify(self, ring: Callable[[], None]) -> None:
        self._ring = ring
        if not self._queue.empty():
            ring()

    # consumer side -----------------------------------------------------------------
    def next_batch(self, timeout: float | None = None) -> list[Event]:
        if self._error is not None:
            raise self._error
        if self.closed:
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        batch: list[Event] = []
        while True:
            try:
                if batch:
                    item = self._queue.get_nowait()
                else:
                    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                    item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return batch
            if item is _CLOSED:
                return batch
            if isinstance(item, StoreError):
                self._error = item
                if batch:
                    return batch
                raise item
            assert isinstance(item, list)
            batch.extend(item)

    def __iter__(self) -> Iterator[Event]:
        while not self.closed:
            yield from self.next_batch(timeout=None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put(_CLOSED)
            self._on_close()

    def __enter__(self) -> QueueWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["QueueWatch"]
