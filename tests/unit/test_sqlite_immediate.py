"""``lab/sqlite_immediate``: a plain ``BEGIN`` takes the write lock at once, so a second
writer waits on the busy timeout at its BEGIN instead of failing at its first write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from routeplane.lab import sqlite_immediate


def test_begin_takes_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "db"
    first = sqlite_immediate.connect(path, isolation_level=None, timeout=0)
    second = sqlite_immediate.connect(path, isolation_level=None, timeout=0)
    first.cursor().execute("CREATE TABLE t (x)")
    first.cursor().execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        second.cursor().execute("BEGIN")  # deferred, this would have succeeded
    first.cursor().execute("INSERT INTO t VALUES (1)")
    first.cursor().execute("COMMIT")
    second.cursor().execute("begin")
    second.cursor().execute("COMMIT")
    assert sqlite3.connect is not sqlite_immediate.connect  # importing it patches nothing
