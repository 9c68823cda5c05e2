"""In the lab's OpenStack processes: every sqlite transaction takes the write lock at BEGIN.

oslo.db runs sqlite with its own plain ``BEGIN`` (deferred): a transaction that reads and
then writes must upgrade its lock, and when another process wrote in between, sqlite
answers "database is locked" at once, without waiting (waiting could deadlock), whatever
the busy timeout. Nova's conductor, scheduler and api, Placement and Keystone do exactly
that from several processes on the same files, so a busy lab lost boots to it
("Failure prepping block device", ``NoValidHost``). ``BEGIN IMMEDIATE`` takes the lock
first, so transactions queue on the busy timeout instead (serialised: plenty for a lab).

Installed (:func:`install`) by a ``.pth`` file that ``openstack_install`` writes into the
OpenStack venv, only where routeplane is importable (the lab runs those processes with it
on PYTHONPATH); importing it changes nothing.
What this module must not do: import anything outside the standard library.
"""

from __future__ import annotations

import sqlite3
import sqlite3.dbapi2
from typing import Any


class _Cursor(sqlite3.Cursor):
    def execute(self, sql: str, *args: Any) -> _Cursor:
        return super().execute("BEGIN IMMEDIATE" if sql.strip().upper() == "BEGIN" else sql, *args)


class _Connection(sqlite3.Connection):
    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)


_connect = sqlite3.connect


def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    kwargs.setdefault("factory", _Connection)
    connection: sqlite3.Connection = _connect(*args, **kwargs)
    return connection


def install() -> None:
    """Both names: SQLAlchemy connects through ``sqlite3.dbapi2``."""
    sqlite3.connect = connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = connect  # type: ignore[assignment]
