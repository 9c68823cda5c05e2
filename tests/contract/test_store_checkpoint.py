"""The embedded store checkpoints its WAL itself, outside any commit, and keeps it bounded.

Scope: ``SqliteStore`` with sqlite's automatic checkpoint off (it ran inside whichever
commit crossed 1,000 pages: most of one change's p99). What a user would notice if the
background checkpoint did not run: the database file never receives what was written
(everything stays in the WAL, which grows without limit, and every read walks it).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from routeplane.model.jsontypes import JSONValue
from routeplane.store.sqlite import SqliteStore
from tests.waiting import wait_for

pytestmark = pytest.mark.contract

VALUE: JSONValue = {"blob": "x" * 2000}  # a page or so per write
WRITES = 600  # ~1.2 MB: under the 1,000 pages (4 MB) at which sqlite checkpointed itself


def test_commits_reach_the_database_file_without_a_commit_checkpointing(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with SqliteStore(db) as store:
        before = db.stat().st_size
        for i in range(WRITES):
            store.put(f"/bulk/{i}", VALUE)
        # the checkpoint copies the WAL into the file in the background, soon after
        wait_for(lambda: db.stat().st_size > before + WRITES * 2000, timeout=10)
        assert store.get(f"/bulk/{WRITES - 1}") is not None


def test_no_connection_of_the_store_checkpoints_automatically(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with SqliteStore(db) as store:
        store.put("/k", 1)
        conn = store._conn()
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


def test_the_wal_file_stays_bounded_under_a_stream_of_writes(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    wal = Path(f"{db}-wal")
    with SqliteStore(db) as store:
        largest = 0
        deadline = time.monotonic() + 60
        for i in range(3 * WRITES):
            store.put(f"/bulk/{i % 50}", VALUE)
            if i % 100 == 0:
                time.sleep(0.2)  # a quiet moment: the checkpoint catches up, the WAL restarts
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
            assert time.monotonic() < deadline
        # each write appends several pages (kv, events, meta): 1,800 of them unchecked
        # would pass 20 MB; checkpointed in the quiet moments, the WAL is reused instead
        assert largest < 10 * 1024 * 1024
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT count(*) FROM kv WHERE key LIKE '/bulk/%'").fetchone()[0] == 50
    assert os.path.getsize(db) > 0
