"""The embedded store: one sqlite file in WAL mode, with etcd's revision semantics.

Why sqlite: a one-machine deployment (the api and every agent on one host, the lab, the
demo) needs no server at all, yet must behave exactly like etcd so that code written
against one backend runs on the other. The file holds:

- ``kv``: the live keys with create/mod revision, version and lease;
- ``events``: the change log, one row per changed key, keyed by (revision, seq); watches
  read it, compaction trims it;
- ``leases``: lease id, TTL and expiry time (wall clock, shared by all processes);
- ``meta``: the store revision and the compaction point.

Every write transaction runs under ``BEGIN IMMEDIATE`` (one writer at a time across all
processes), so compare-and-swap is atomic between processes. Watches are served by one
poller thread per store object, which reads the new events when ``PRAGMA data_version``
says another connection committed. It looks when woken (``store/filewatch.py``): by
inotify on the file's directory as soon as any process writes the database or its WAL, by
a thread of this process (a local commit, a new watch), or by a timer that is only a
safety net, and the whole polling schedule where inotify is unavailable. The same poller
expires leases every 100 ms, so lease expiry does not depend on someone writing.

Durability: ``synchronous=NORMAL``; a committed transaction survives a crash of any
process; a power loss may lose the last commits but never corrupts the file.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from routeplane.model.errors import (
    Compacted,
    InvalidRequest,
    LeaseNotFound,
    StoreError,
    Unavailable,
)
from routeplane.store import filewatch
from routeplane.store.base import (
    Compare,
    Delete,
    Event,
    EventType,
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
from routeplane.store.watchqueue import QueueWatch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv(lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL,
    type INTEGER NOT NULL, value TEXT, create_revision INTEGER NOT NULL,
    version INTEGER NOT NULL, PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL, expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_expiry ON leases(expires_at);
INSERT OR IGNORE INTO meta VALUES ('revision', 1), ('compact_revision', 0), ('schema', 1);
"""
_PUT, _DELETE = 0, 1
_EVENT_WINDOW = 2000  # revisions read per poller query, so one read stays bounded
_AUTO_COMPACT_EVERY = 1000
_LEASE_CHECK_INTERVAL = 0.1  # seconds between the poller's looks for expired leases


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


class _Tx:
    """One write transaction: the cursor, the revision it will write at, and its events."""

    def __init__(self, conn: sqlite3.Connection, revision: int) -> None:
        self.conn = conn
        self.base = revision
        self.seq = 0

    @property
    def revision(self) -> int:
        """The store revision as this transaction leaves it."""
        return self.base + (1 if self.seq else 0)

    def record(self, key: str, kind: int, value: str | None, create: int, version: int) -> None:
        self.conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.base + 1, self.seq, key, kind, value, create, version),
        )
        self.seq += 1


@dataclass
class _WatchState:
    watch: QueueWatch
    end: str
    next_revision: int


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
        self._poll_interval = poll_interval
        self._idle_poll_interval = idle_poll_interval
        self._history = history
        self._clock = clock
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._watches: dict[int, _WatchState] = {}
        self._wakeups: filewatch.Wakeups | None = None  # exists while the poller runs
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._closed = False
        self._watch_ids = itertools.count(1)
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
        conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
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
            if self._lease_due():
                self._expire_leases()
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[_Tx]:
        """One writer across all processes; leases due are expired first, in the same txn.

        Threads of this process queue on a lock first: sqlite's own busy handler waits by
        sleeping in steps of milliseconds, which would cost every contended write far more
        than the write itself. Other processes still meet at the file lock.
        """
        with _mapped_errors(self.path), self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                start = self._meta(conn, "revision")
                tx = self._expire_in(_Tx(conn, start))
                yield tx
                if tx.seq:
                    conn.execute(
                        "UPDATE meta SET value = ? WHERE name = 'revision'", (tx.revision,)
                    )
                    self._auto_compact(conn, tx.revision)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        if tx.revision != start and self._watches:
            self._nudge()  # our own watches need not wait for the file event

    @staticmethod
    def _meta(conn: sqlite3.Connection, name: str) -> int:
        value: int = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]
        return value

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
            return RangeResult(items, self._meta(conn, "revision"))

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
            return self._meta(conn, "revision")

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

    def _run(self, tx: _Tx, entry: EncodedOp) -> OpResult:
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

    def _put(self, tx: _Tx, key: str, encoded: str, lease: int | None) -> None:
        if (
            lease is not None
            and not tx.conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone()
        ):
            raise LeaseNotFound(lease)
        row = tx.conn.execute(
            "SELECT create_revision, version FROM kv WHERE key = ?", (key,)
        ).fetchone()
        create, version = (tx.base + 1, 1) if row is None else (row[0], row[1] + 1)
        tx.conn.execute(
            "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?)",
            (key, encoded, create, tx.base + 1, version, lease),
        )
        tx.record(key, _PUT, encoded, create, version)

    def _delete_range(self, tx: _Tx, start: str, end: str) -> int:
        rows = tx.conn.execute(
            "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key", (start, end)
        ).fetchall()
        return self._delete_keys(tx, [key for (key,) in rows])

    @staticmethod
    def _delete_keys(tx: _Tx, keys: list[str]) -> int:
        """Delete ``keys``; like etcd's, a delete event carries only the key and revision."""
        for key in keys:
            tx.conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            tx.record(key, _DELETE, None, 0, 0)
        return len(keys)

    # compaction ----------------------------------------------------------------------
    def compact(self, revision: int) -> None:
        with self._write() as tx:
            current = self._meta(tx.conn, "compact_revision")
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
            if target > self._meta(conn, "compact_revision"):
                self._compact_to(conn, target)

    # leases --------------------------------------------------------------------------
    def grant_lease(self, ttl: int) -> int:
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
            raise InvalidRequest(f"lease TTL must be a positive number of seconds, not {ttl!r}")
        # A random id, never the next rowid: sqlite would hand an expired lease's id to
        # the next grant, and a late revoke by the old holder would end the new lease.
        with self._write() as tx:
            while True:
                lease_id = secrets.randbits(62) + 1
                if not tx.conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease_id,)).fetchone():
                    break
            tx.conn.execute(
                "INSERT INTO leases (id, ttl, expires_at) VALUES (?, ?, ?)",
                (lease_id, ttl, self._clock() + ttl),
            )
        self._ensure_poller()
        return lease_id

    def keepalive(self, lease_id: int) -> int:
        with self._write() as tx:
            row = tx.conn.execute("SELECT ttl FROM leases WHERE id = ?", (lease_id,)).fetchone()
            if row is None:
                raise LeaseNotFound(lease_id)
            tx.conn.execute(
                "UPDATE leases SET expires_at = ? WHERE id = ?", (self._clock() + row[0], lease_id)
            )
            ttl: int = row[0]
        return ttl

    def revoke_lease(self, lease_id: int) -> None:
        with self._write() as tx:
            self._revoke(tx, lease_id)

    def _revoke(self, tx: _Tx, lease_id: int) -> _Tx:
        """Delete a lease and its keys; like etcd, each revoked lease is its own revision."""
        tx.conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
        rows = tx.conn.execute(
            "SELECT key FROM kv WHERE lease = ? ORDER BY key", (lease_id,)
        ).fetchall()
        self._delete_keys(tx, [key for (key,) in rows])
        return tx

    def _expire_in(self, tx: _Tx) -> _Tx:
        due = tx.conn.execute(
            "SELECT id FROM leases WHERE expires_at <= ? ORDER BY id", (self._clock(),)
        ).fetchall()
        for (lease_id,) in due:
            self._revoke(tx, lease_id)
            if tx.seq:  # close this revision; the caller's writes take the next one
                tx.conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (tx.revision,))
                tx = _Tx(tx.conn, tx.revision)
        return tx

    def _lease_due(self) -> bool:
        row = (
            self._conn()
            .execute("SELECT 1 FROM leases WHERE expires_at <= ? LIMIT 1", (self._clock(),))
            .fetchone()
        )
        return row is not None

    def _expire_leases(self) -> None:
        with self._write():
            pass  # _write expires what is due

    # watches -------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int | None = None) -> QueueWatch:
        check_key(prefix, what="prefix")
        if start_revision is None:
            start_revision = self.revision() + 1
        watch_id = next(self._watch_ids)
        watch = QueueWatch(prefix, start_revision, lambda: self._unwatch(watch_id))
        state = _WatchState(watch, prefix_end(prefix), start_revision)
        with self._lock:
            self._watches[watch_id] = state
        self._ensure_poller()
        self._nudge()
        return state.watch

    def _unwatch(self, watch_id: int) -> None:
        with self._lock:
            self._watches.pop(watch_id, None)

    def _ensure_poller(self) -> None:
        with self._lock:
            if self._poller is None and not self._closed:
                try:
                    self._wakeups = filewatch.Wakeups(
                        self.path,
                        poll_interval=self._poll_interval,
                        idle_interval=self._idle_poll_interval,
                    )
                except OSError as exc:  # out of descriptors: no eventfd for the poller
                    raise Unavailable(f"sqlite store {self.path}: {exc}") from exc
                self._poller = threading.Thread(
                    target=self._poll_loop,
                    args=(self._wakeups,),
                    name=f"routeplane-sqlite-poller:{self.path}",
                    daemon=True,
                )
                self._poller.start()

    def _nudge(self) -> None:
        wakeups = self._wakeups
        if wakeups is not None:
            wakeups.nudge()

    def _poll_loop(self, wakeups: filewatch.Wakeups) -> None:
        """Deliver events to watches and expire leases, until the store is closed.

        ``data_version`` is read only when woken for it (a nudge, a file event, the poll
        timer), never on the lease timer, so a poller that sees a change at once was
        woken by the change.
        """
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, check_same_thread=False)
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
                        if self._lease_due():
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
            compact = self._meta(conn, "compact_revision")
            top = self._meta(conn, "revision")
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
                    state.watch.feed(self._matching(rows, state))
                    state.next_revision = high + 1
        finally:
            conn.execute("COMMIT")

    @staticmethod
    def _matching(
        rows: list[tuple[int, str, int, str | None, int, int]], state: _WatchState
    ) -> list[Event]:
        prefix, end, start = state.watch.prefix, state.end, state.next_revision
        return [
            Event(
                EventType.PUT if kind == _PUT else EventType.DELETE,
                key,
                None if value is None else decode_value(value),
                revision,
                create,
                version,
            )
            for revision, key, kind, value, create, version in rows
            if revision >= start and prefix <= key < end
        ]

    # lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watches = [s.watch for s in self._watches.values()]
            poller = self._poller
        for watch in watches:
            watch.close()
        self._stop.set()
        self._nudge()
        if poller is not None:
            poller.join(timeout=5)
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
