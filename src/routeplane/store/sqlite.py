"""The embedded store: one sqlite file in WAL mode, with etcd's revision semantics.

Why sqlite: a one-machine deployment (the api and every agent on one host, the lab, the
demo) needs no server at all, yet must behave exactly like etcd so that code written
against one backend runs on the other. This module is the store's front: connections,
transactions, keys (get, range, txn) and compaction. Its parts live beside it:

- ``sqlite_schema.py``: the tables, and how a write records its changes in the log;
- ``sqlite_leases.py``: grant, keep-alive, revoke and expiry of leases;
- ``sqlite_watch.py``: the poller thread that feeds watches from the log and runs the
  lease timer, woken by inotify (``filewatch.py``) when any process writes the file.

Every write transaction runs under ``BEGIN IMMEDIATE`` (one writer at a time across all
processes), so compare-and-swap is atomic between processes. Leases due are expired at
the start of every write, in the same transaction.

Durability: ``synchronous=NORMAL``; a committed transaction survives a crash of any
process; a power loss may lose the last commits but never corrupts the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from routeplane.model.errors import Compacted, InvalidRequest, StoreError, Unavailable
from routeplane.store import sqlite_leases as leases
from routeplane.store.base import (
    Compare,
    Delete,
    Get,
    KeyValue,
    Op,
    OpResult,
    Put,
    RangeResult,
    TxnResult,
    WriteShortcuts,
)
from routeplane.store.codec import (
    EncodedCompare,
    EncodedOp,
    check_key,
    compare_number,
    decode_value,
    prefix_end,
    prepare_txn,
)
from routeplane.store.sqlite_checkpoint import AUTOCHECKPOINT_OFF, Checkpointer
from routeplane.store.sqlite_schema import PUT, SCHEMA, Tx, meta
from routeplane.store.sqlite_watch import Poller
from routeplane.store.watchqueue import QueueWatch

_AUTO_COMPACT_EVERY = 1000


def _kv(row: tuple[str, str, int, int, int, int | None]) -> KeyValue:
    return KeyValue(row[0], decode_value(row[1]), row[2], row[3], row[4], row[5])


@contextlib.contextmanager
def _mapped_errors(path: str) -> Iterator[None]:
    """Turn sqlite's exceptions into routeplane's at the boundary."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise Unavailable(f"sqlite store {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"sqlite store {path}: {exc}") from exc


class SqliteStore(WriteShortcuts):
    """The :class:`~routeplane.store.base.Store` on one sqlite file.

    ``poll_interval`` and ``idle_poll_interval`` are the poller's timer where inotify is
    unavailable: it looks ``poll_interval`` after a change and backs off to
    ``idle_poll_interval`` while idle. With inotify (the usual case on Linux), writes to
    the file wake the poller directly and the timer is only a safety net: a few looks in
    the 64 ms after activity, then one every ``max(idle_poll_interval, 0.1)`` seconds.
    inotify watches the file's directory, not the file: sqlite deletes and recreates the
    ``-wal`` file, which would orphan a watch on the file itself.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        poll_interval: float = 0.002,
        idle_poll_interval: float = 0.01,
        history: int = 100_000,
        clock: Callable[[], float] = time.time,
        url: str | None = None,
    ) -> None:
        self.path = str(path)
        self.url = url or f"sqlite://{self.path}"
        self._busy_timeout = busy_timeout
        self._history = history
        self._clock = clock
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._poller = Poller(
            self.path,
            busy_timeout=busy_timeout,
            poll_interval=poll_interval,
            idle_poll_interval=idle_poll_interval,
            expire_leases=self._expire_due_leases,
        )
        self._checkpointer = Checkpointer(self.path, busy_timeout=busy_timeout)
        with _mapped_errors(self.path):
            self._conn()  # creates the file and its schema, or fails now with a clear error

    # connections and transactions ----------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"sqlite store {self.path} is closed")
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(AUTOCHECKPOINT_OFF)  # the checkpointer's thread does it, off the write path
        conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
        with self._lock:
            self._conns.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot: every statement inside sees the same committed state."""
        with _mapped_errors(self.path):
            self._expire_due_leases()
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[Tx]:
        """One writer across all processes; leases due are expired first, in the same txn.

        Threads of this process queue on a lock first: sqlite's own busy handler waits by
        sleeping in steps of milliseconds, which would cost every contended write far more
        than the write itself. Other processes still meet at the file lock.
        """
        with _mapped_errors(self.path), self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                start = meta(conn, "revision")
                tx = leases.expire_due(Tx(conn, start), self._clock())
                yield tx
                if tx.seq:
                    tx.save_revision()
                    self._auto_compact(conn, tx.revision)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        if tx.revision != start:
            self._checkpointer.nudge()
            if self._poller.watching:
                self._poller.nudge()  # our own watches need not wait for the file event

    def _expire_due_leases(self) -> None:
        """Expire the leases due; a cheap read first spares a write transaction."""
        if leases.any_due(self._conn(), self._clock()):
            with self._write():
                pass  # _write expires what is due

    # reads ---------------------------------------------------------------------------
    def get(self, key: str) -> KeyValue | None:
        check_key(key)
        with self._read() as conn:
            return self._get(conn, key)

    @staticmethod
    def _get(conn: sqlite3.Connection, key: str) -> KeyValue | None:
        row = conn.execute(
            "SELECT key, value, create_revision, mod_revision, version, lease"
            " FROM kv WHERE key = ?",
            (key,),
        ).fetchone()
        return None if row is None else _kv(row)

    def range(self, prefix: str) -> RangeResult:
        check_key(prefix, what="prefix")
        with self._read() as conn:
            items = self._range(conn, prefix, prefix_end(prefix))
            return RangeResult(items, meta(conn, "revision"))

    @staticmethod
    def _range(conn: sqlite3.Connection, start: str, end: str) -> tuple[KeyValue, ...]:
        rows = conn.execute(
            "SELECT key, value, create_revision, mod_revision, version, lease FROM kv"
            " WHERE key >= ? AND key < ? ORDER BY key",
            (start, end),
        )
        return tuple(_kv(row) for row in rows)

    def revision(self) -> int:
        with self._read() as conn:
            return meta(conn, "revision")

    # writes --------------------------------------------------------------------------
    def txn(
        self,
        compares: Sequence[Compare],
        on_success: Sequence[Op] = (),
        on_failure: Sequence[Op] = (),
    ) -> TxnResult:
        prepared = prepare_txn(compares, on_success, on_failure)
        with self._write() as tx:
            ok = all(self._holds(tx.conn, c) for c in prepared.compares)
            branch = prepared.on_success if ok else prepared.on_failure
            results = tuple(self._run(tx, op) for op in branch)
        return TxnResult(ok, tx.revision, results)

    def _holds(self, conn: sqlite3.Connection, cmp: EncodedCompare) -> bool:
        row = conn.execute(
            "SELECT value, create_revision, mod_revision, version FROM kv WHERE key = ?",
            (cmp.compare.key,),
        ).fetchone()
        if cmp.compare.target == "value":
            if row is None:  # etcd: a value compare on a missing key is always false
                return False
            equal: bool = row[0] == cmp.encoded
            return equal == (cmp.compare.op == "==")
        index = ("create_revision", "mod_revision", "version").index(cmp.compare.target) + 1
        actual = 0 if row is None else int(row[index])
        return compare_number(actual, cmp.compare.op, cmp.number)

    def _run(self, tx: Tx, entry: EncodedOp) -> OpResult:
        op = entry.op
        if isinstance(op, Put):
            assert entry.encoded is not None
            self._put(tx, op.key, entry.encoded, op.lease)
            return None
        if isinstance(op, Delete):
            end = entry.end if entry.end is not None else op.key + "\x00"
            return self._delete_range(tx, op.key, end)
        if isinstance(op, Get):
            return self._get(tx.conn, op.key)
        assert entry.end is not None
        return self._range(tx.conn, op.prefix, entry.end)

    def _put(self, tx: Tx, key: str, encoded: str, lease: int | None) -> None:
        if lease is not None:
            leases.require(tx.conn, lease)
        row = tx.conn.execute(
            "SELECT create_revision, version FROM kv WHERE key = ?", (key,)
        ).fetchone()
        create, version = (tx.base + 1, 1) if row is None else (row[0], row[1] + 1)
        tx.conn.execute(
            "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?)",
            (key, encoded, create, tx.base + 1, version, lease),
        )
        tx.record(key, PUT, encoded, create, version)

    @staticmethod
    def _delete_range(tx: Tx, start: str, end: str) -> int:
        rows = tx.conn.execute(
            "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key", (start, end)
        ).fetchall()
        return tx.delete_keys([key for (key,) in rows])

    # compaction ----------------------------------------------------------------------
    def compact(self, revision: int) -> None:
        with self._write() as tx:
            current = meta(tx.conn, "compact_revision")
            if revision <= current:
                raise Compacted(revision, current)
            if revision > tx.base:
                raise InvalidRequest(f"cannot compact to future revision {revision}")
            self._compact_to(tx.conn, revision)

    @staticmethod
    def _compact_to(conn: sqlite3.Connection, revision: int) -> None:
        conn.execute("DELETE FROM events WHERE revision < ?", (revision,))
        conn.execute("UPDATE meta SET value = ? WHERE name = 'compact_revision'", (revision,))

    def _auto_compact(self, conn: sqlite3.Connection, revision: int) -> None:
        """Keep ``history`` revisions of events, trimming in steps so no commit is slow."""
        if revision % _AUTO_COMPACT_EVERY == 0 and revision > self._history:
            target = revision - self._history
            if target > meta(conn, "compact_revision"):
                self._compact_to(conn, target)

    # leases (sqlite_leases.py) -----------------------------------------------------
    def grant_lease(self, ttl: int) -> int:
        leases.check_ttl(ttl)
        with self._write() as tx:
            lease_id = leases.grant(tx, ttl, self._clock())
        self._poller.start()  # its timer expires the lease when nobody writes
        return lease_id

    def keepalive(self, lease_id: int) -> int:
        with self._write() as tx:
            return leases.keepalive(tx, lease_id, self._clock())

    def revoke_lease(self, lease_id: int) -> None:
        with self._write() as tx:
            leases.revoke(tx, lease_id)

    # watches (sqlite_watch.py) -------------------------------------------------------
    def watch(self, prefix: str, start_revision: int | None = None) -> QueueWatch:
        check_key(prefix, what="prefix")
        if start_revision is None:
            start_revision = self.revision() + 1
        return self._poller.watch(prefix, start_revision)

    # lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._poller.close()
        self._checkpointer.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SqliteStore"]
