"""Leases in the embedded store: grant, keep alive, revoke, and expire on the wall clock.

Role: host liveness (``hosts/<host>`` keys) rests on leases, and the sqlite backend must
end them exactly as etcd does: a lease expires ``ttl`` seconds after its last keep-alive
and takes its keys with it, which watchers see as delete events, one revision per lease.
There is no server to run a timer, so expiry happens wherever the store is used: at the
start of every write transaction (``sqlite.py``), before a read that finds a lease due,
and on the poller's lease timer (``sqlite_watch.py``), so expiry does not wait for a write.

Inputs: an open write transaction (:class:`~routeplane.store.sqlite_schema.Tx`) or a
connection, and the time from the store's clock. Expiry times are wall-clock seconds
because every process sharing the file must agree on them.

What it must not do: begin or commit transactions, or read the clock itself (tests drive
expiry with a fake clock through the store's constructor).
"""

from __future__ import annotations

import secrets
import sqlite3

from routeplane.model.errors import InvalidRequest, LeaseNotFound
from routeplane.store.sqlite_schema import Tx


def check_ttl(ttl: int) -> None:
    """Refuse a TTL etcd would refuse, before any transaction starts."""
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        raise InvalidRequest(f"lease TTL must be a positive number of seconds, not {ttl!r}")


def _exists(conn: sqlite3.Connection, lease_id: int) -> bool:
    return conn.execute("SELECT 1 FROM leases WHERE id = ?", (lease_id,)).fetchone() is not None


def require(conn: sqlite3.Connection, lease_id: int) -> None:
    """Raise ``LeaseNotFound`` unless ``lease_id`` is live: a put may not attach to it."""
    if not _exists(conn, lease_id):
        raise LeaseNotFound(lease_id)


def grant(tx: Tx, ttl: int, now: float) -> int:
    """A new lease of ``ttl`` seconds from ``now``; returns its id."""
    # A random id, never the next rowid: sqlite would hand an expired lease's id to
    # the next grant, and a late revoke by the old holder would end the new lease.
    while True:
        lease_id = secrets.randbits(62) + 1
        if not _exists(tx.conn, lease_id):
            break
    tx.conn.execute(
        "INSERT INTO leases (id, ttl, expires_at) VALUES (?, ?, ?)",
        (lease_id, ttl, now + ttl),
    )
    return lease_id


def keepalive(tx: Tx, lease_id: int, now: float) -> int:
    """Push the lease's expiry to ``now`` + its TTL; returns the TTL."""
    row = tx.conn.execute("SELECT ttl FROM leases WHERE id = ?", (lease_id,)).fetchone()
    if row is None:
        raise LeaseNotFound(lease_id)
    tx.conn.execute("UPDATE leases SET expires_at = ? WHERE id = ?", (now + row[0], lease_id))
    ttl: int = row[0]
    return ttl


def revoke(tx: Tx, lease_id: int) -> Tx:
    """Delete a lease and its keys; like etcd, each revoked lease is its own revision."""
    tx.conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
    rows = tx.conn.execute(
        "SELECT key FROM kv WHERE lease = ? ORDER BY key", (lease_id,)
    ).fetchall()
    tx.delete_keys([key for (key,) in rows])
    return tx


def expire_due(tx: Tx, now: float) -> Tx:
    """Revoke every lease due at ``now``; returns the transaction for the caller's writes.

    Each revoked lease closes its own revision, so the caller's writes take the next one.
    """
    due = tx.conn.execute(
        "SELECT id FROM leases WHERE expires_at <= ? ORDER BY id", (now,)
    ).fetchall()
    for (lease_id,) in due:
        revoke(tx, lease_id)
        if tx.seq:
            tx.save_revision()
            tx = Tx(tx.conn, tx.revision)
    return tx


def any_due(conn: sqlite3.Connection, now: float) -> bool:
    """Whether some lease is due: a cheap read that spares a write transaction."""
    row = conn.execute("SELECT 1 FROM leases WHERE expires_at <= ? LIMIT 1", (now,)).fetchone()
    return row is not None


__all__ = ["any_due", "check_ttl", "expire_due", "grant", "keepalive", "require", "revoke"]
