"""The embedded store's file layout, and how a write transaction records its changes.

Role: the tables of the sqlite file, and the one object through which every change is
written to the change log. Three modules write or read those tables (``sqlite.py`` for
keys and compaction, ``sqlite_leases.py`` for leases, ``sqlite_watch.py`` for the log),
and each must agree on the column order, the event kinds and how a revision is closed:
that agreement lives here, once.

The file holds:

- ``kv``: the live keys with create/mod revision, version and lease;
- ``events``: the change log, one row per changed key, keyed by (revision, seq); watches
  read it, compaction trims it;
- ``leases``: lease id, TTL and expiry time (wall clock, shared by all processes);
- ``meta``: the store revision and the compaction point.

What it must not do: open connections, begin or commit transactions, or decide anything
about keys, leases or watches; callers hold the transaction.
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
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
PUT, DELETE = 0, 1  # ``events.type``


def meta(conn: sqlite3.Connection, name: str) -> int:
    """One number of the ``meta`` table: ``revision`` or ``compact_revision``."""
    value: int = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]
    return value


class Tx:
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

    def delete_keys(self, keys: list[str]) -> int:
        """Delete ``keys``; like etcd's, a delete event carries only the key and revision."""
        for key in keys:
            self.conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            self.record(key, DELETE, None, 0, 0)
        return len(keys)

    def save_revision(self) -> None:
        """Publish :attr:`revision` as the store's; only after a change (``seq`` > 0)."""
        self.conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (self.revision,))


__all__ = ["DELETE", "PUT", "SCHEMA", "Tx", "meta"]
