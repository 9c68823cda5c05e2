"""WAL checkpoints of the embedded store, off the write path.

Why: sqlite's automatic checkpoint runs inside whichever commit makes the WAL cross
1,000 pages, and that commit then copies the WAL into the database file and syncs it —
most of one change's p99 at 10,000 endpoints (issue #17). So every connection of the
store turns it off (``PRAGMA wal_autocheckpoint=0``) and this thread, one per store
object, checkpoints instead: a PASSIVE checkpoint (it never waits for a reader or a
writer, and a writer never waits for it) soon after this process's commits. Bounded:
when the WAL is still larger than ``limit_bytes`` after one (readers held pages back),
a TRUNCATE checkpoint waits for them (within the busy timeout) and empties the file.

Every process that opens the store runs its own; they do not interfere (a checkpoint
that finds another running returns busy and the next one catches up). sqlite itself
checkpoints when the last connection to the file closes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

AUTOCHECKPOINT_OFF = "PRAGMA wal_autocheckpoint=0"
DELAY = 0.05  # seconds after a commit before checkpointing: commits in a burst share one
LIMIT_BYTES = 64 * 1024 * 1024


class Checkpointer:
    """A daemon thread checkpointing ``path``'s WAL after :meth:`nudge`."""

    def __init__(self, path: str, *, busy_timeout: float, limit_bytes: int = LIMIT_BYTES) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.limit_bytes = limit_bytes
        self.checkpoints = 0  # completed, for tests and curiosity
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def nudge(self) -> None:
        """This process committed: checkpoint soon (starts the thread on first use)."""
        with self._lock:
            if self._stop.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"checkpoint {self.path}", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            conn.execute(AUTOCHECKPOINT_OFF)
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            while not self._stop.is_set():
                self._wake.wait()
                if self._stop.wait(DELAY):
                    break
                self._wake.clear()
                with contextlib.suppress(sqlite3.Error):
                    self._checkpoint(conn, page_size)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection, page_size: int) -> None:
        _busy, wal_pages, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        if wal_pages * page_size > self.limit_bytes and done < wal_pages:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Stop the thread (after a checkpoint under way). Never raises."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout=self.busy_timeout + 1)


__all__ = ["AUTOCHECKPOINT_OFF", "Checkpointer"]
