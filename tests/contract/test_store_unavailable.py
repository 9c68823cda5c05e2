"""Store contract: an unreachable store gives a clear, typed error, and recovery works.

Each backend is made unreachable in its own way (etcd stopped or frozen; the sqlite file
locked by another writer, or in a directory that does not exist), but the caller sees the
same thing: ``Unavailable``, nothing half-written, and normal service once it is back.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from routeplane.model.errors import Unavailable
from routeplane.store import Put, absent, open_store
from routeplane.store.sqlite import SqliteStore
from routeplane.testing.etcd import EtcdServer

pytestmark = pytest.mark.contract


def test_stopped_etcd_is_unavailable_then_recovers(tmp_path: Path) -> None:
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        store = open_store(server.url + "?timeout=1")
        try:
            store.put("/t/kept", "before")
            server.stop()
            started = time.monotonic()
            with pytest.raises(Unavailable, match=r"127\.0\.0\.1"):
                store.get("/t/kept")
            with pytest.raises(Unavailable):
                store.txn([absent("/t/new")], [Put("/t/new", 1)])
            assert time.monotonic() - started < 10
            server.start()  # same data directory
            got = store.get("/t/kept")
            assert got is not None
            assert got.value == "before"
            assert store.get("/t/new") is None
            assert store.txn([absent("/t/new")], [Put("/t/new", 1)]).succeeded
        finally:
            store.close()


def test_frozen_etcd_times_out_as_unavailable(tmp_path: Path) -> None:
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        store = open_store(server.url + "?timeout=1")
        try:
            store.put("/t/k", 1)
            server.pause()
            try:
                started = time.monotonic()
                with pytest.raises(Unavailable):
                    store.put("/t/k", 2)
                assert time.monotonic() - started < 5
            finally:
                server.resume()
            assert store.get("/t/k") is not None
            store.put("/t/k", 3)
        finally:
            store.close()


def test_locked_sqlite_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path, busy_timeout=0.3)
    try:
        store.put("/t/k", "before")
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(Unavailable, match="locked"):
                store.put("/t/k", "during")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        got = store.get("/t/k")
        assert got is not None
        assert got.value == "before"
        store.put("/t/k", "after")
    finally:
        store.close()


def test_sqlite_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="unable to open"):
        SqliteStore(tmp_path / "no" / "such" / "dir" / "store.db")
