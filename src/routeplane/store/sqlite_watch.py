"""Watch delivery in the embedded store: one poller thread reads the change log for all.

Role: sqlite has no notifications between connections, let alone between processes, so a
watch on the embedded store is served by reading the ``events`` table. One
:class:`Poller` per store object does that for all of the object's watches: when
``PRAGMA data_version`` says some connection committed, it reads the new events in
windows of revisions and feeds each watch the ones under its prefix, in revision order.
A watch whose next revision has been compacted away gets ``Compacted`` and ends.

It looks when woken (``store/filewatch.py``): by inotify on the file's directory as soon
as any process writes the database or its WAL, by a thread of this process (a local
commit, a new watch, ``close``), or by a timer that is only a safety net, and the whole
polling schedule where inotify is unavailable. The same thread runs the store's lease
expiry every 100 ms, so a lease ends on time even when nobody writes.

Inputs: the database path, the timer intervals, and a callback that expires the leases
due (``sqlite.py`` owns transactions). Outputs: events and errors on each
:class:`~routeplane.store.watchqueue.QueueWatch`.

What it must not do: write to the database (expiry goes through the callback), or block
a writer: it reads through its own connection, one short read transaction per look.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from routeplane.model.errors import Compacted, StoreError, Unavailable
from routeplane.store import filewatch
from routeplane.store.base import Event, EventType
from routeplane.store.codec import decode_value, prefix_end
from routeplane.store.sqlite_schema import PUT, meta
from routeplane.store.watchqueue import QueueWatch

_EVENT_WINDOW = 2000  # revisions read per poller query, so one read stays bounded
_LEASE_CHECK_INTERVAL = 0.1  # seconds between the poller's looks for expired leases


@dataclass
class _WatchState:
    watch: QueueWatch
    end: str
    next_revision: int


class Poller:
    """The store object's background thread: watch delivery and the lease timer.

    The thread starts with the first watch or lease and runs until :meth:`close`.
    ``poll_interval`` and ``idle_poll_interval`` are the timer of
    :class:`~routeplane.store.filewatch.Wakeups`.
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float,
        poll_interval: float,
        idle_poll_interval: float,
        expire_leases: Callable[[], None],
    ) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._poll_interval = poll_interval
        self._idle_poll_interval = idle_poll_interval
        self._expire_leases = expire_leases
        self._lock = threading.Lock()
        self._watches: dict[int, _WatchState] = {}
        self._wakeups: filewatch.Wakeups | None = None  # exists while the thread runs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._watch_ids = itertools.count(1)

    @property
    def watching(self) -> bool:
        """Whether any watch is open: only then does a local commit need a nudge."""
        return bool(self._watches)

    def watch(self, prefix: str, start_revision: int) -> QueueWatch:
        """A new watch, fed from ``start_revision`` on."""
        watch_id = next(self._watch_ids)
        watch = QueueWatch(prefix, start_revision, lambda: self._unwatch(watch_id))
        state = _WatchState(watch, prefix_end(prefix), start_revision)
        with self._lock:
            self._watches[watch_id] = state
        self.start()
        self.nudge()
        return state.watch

    def _unwatch(self, watch_id: int) -> None:
        with self._lock:
            self._watches.pop(watch_id, None)

    def start(self) -> None:
        """Start the thread unless it runs or the poller is closed."""
        with self._lock:
            if self._thread is None and not self._closed:
                try:
                    self._wakeups = filewatch.Wakeups(
                        self._path,
                        poll_interval=self._poll_interval,
                        idle_interval=self._idle_poll_interval,
                    )
                except OSError as exc:  # out of descriptors: no eventfd for the poller
                    raise Unavailable(f"sqlite store {self._path}: {exc}") from exc
                self._thread = threading.Thread(
                    target=self._poll_loop,
                    args=(self._wakeups,),
                    name=f"routeplane-sqlite-poller:{self._path}",
                    daemon=True,
                )
                self._thread.start()

    def nudge(self) -> None:
        """Make the thread look now (a commit of this process, a new watch, close)."""
        wakeups = self._wakeups
        if wakeups is not None:
            wakeups.nudge()

    def _poll_loop(self, wakeups: filewatch.Wakeups) -> None:
        """Deliver events to watches and expire leases, until the poller is closed.

        ``data_version`` is read only when woken for it (a nudge, a file event, the poll
        timer), never on the lease timer, so a poller that sees a change at once was
        woken by the change.
        """
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, check_same_thread=False)
        conn.isolation_level = None
        seen_version = -1
        next_lease_check = 0.0
        try:
            while not self._stop.is_set():
                wake = wakeups.wait(until=next_lease_check)
                if self._stop.is_set():
                    break
                if wake.look:
                    try:
                        version = conn.execute("PRAGMA data_version").fetchone()[0]
                        changed = version != seen_version or wake.nudged
                        if changed:
                            seen_version = version
                            self._deliver(conn)
                    except (sqlite3.Error, StoreError):
                        changed = True  # retry soon; a locked or busy file is transient
                    wakeups.looked(active=changed or wake.touched)
                now = time.monotonic()
                if now >= next_lease_check:
                    next_lease_check = now + _LEASE_CHECK_INTERVAL
                    with contextlib.suppress(sqlite3.Error, StoreError):
                        self._expire_leases()
        finally:
            with self._lock:
                self._wakeups = None
            wakeups.close()
            conn.close()

    def _deliver(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            states = list(self._watches.items())
        if not states:
            return
        conn.execute("BEGIN")
        try:
            compact = meta(conn, "compact_revision")
            top = meta(conn, "revision")
            live: list[_WatchState] = []
            for watch_id, state in states:
                if state.next_revision < compact:
                    state.watch.fail(Compacted(state.next_revision, compact))
                    self._unwatch(watch_id)
                else:
                    live.append(state)
            while live:
                low = min(s.next_revision for s in live)
                if low > top:
                    break
                high = min(top, low + _EVENT_WINDOW)
                rows = conn.execute(
                    "SELECT revision, key, type, value, create_revision, version FROM events"
                    " WHERE revision >= ? AND revision <= ? ORDER BY revision, seq",
                    (low, high),
                ).fetchall()
                for state in live:
                    if state.next_revision > high:
                        continue
                    state.watch.feed(_matching(rows, state))
                    state.next_revision = high + 1
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """End every watch, then stop the thread; it wakes at once, whatever its timer."""
        with self._lock:
            self._closed = True
            watches = [s.watch for s in self._watches.values()]
            thread = self._thread
        for watch in watches:
            watch.close()
        self._stop.set()
        self.nudge()
        if thread is not None:
            thread.join(timeout=5)


def _matching(
    rows: list[tuple[int, str, int, str | None, int, int]], state: _WatchState
) -> list[Event]:
    prefix, end, start = state.watch.prefix, state.end, state.next_revision
    return [
        Event(
            EventType.PUT if kind == PUT else EventType.DELETE,
            key,
            None if value is None else decode_value(value),
            revision,
            create,
            version,
        )
        for revision, key, kind, value, create, version in rows
        if revision >= start and prefix <= key < end
    ]


__all__ = ["Poller"]
